//! What the bench end-to-end tests share: the binary, a fresh folder per
//! test, and `bench compare` with the settings of a short test run.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn bench() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bench"))
}

/// A fresh, empty folder for one test of this process.
pub fn out_dir(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("test folder");
    d
}

/// `bench compare` of `scenarios` into `out` for `seconds` per run, one
/// repeat, with a small steady-state pool and write probe; a loaded test
/// machine must not turn into reruns.
pub fn short_compare(seconds: u32, scenarios: &Path, out: &Path) -> Command {
    let mut c = Command::new(bench());
    c.args([
        "compare",
        "--duration",
        &seconds.to_string(),
        "--repeat",
        "1",
    ])
    .args(["--quiet-timeout", "5", "--pool-max-mib", "64"])
    .args(["--write-probe-mib", "8", "--aes-seconds", "1"])
    .args(["--steal-reruns", "0"])
    .arg("--scenarios")
    .arg(scenarios)
    .arg("--out")
    .arg(out);
    c
}
