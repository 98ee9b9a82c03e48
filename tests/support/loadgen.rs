//! Driving `loadgen` (send, verify) and other commands from the tests.

use std::ffi::OsStr;
use std::fmt::Display;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::pki::Pki;
use crate::server::bin;

/// Runs `cmd` to its end; a failure (or a missing program) fails the test
/// with its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: cannot run: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `loadgen send` over mutual TLS with the test PKI; its JSON summary goes
/// to `json` (for [`verify`]).
pub fn send(target: impl Display, pki: &Pki, args: &[&str], json: &Path) -> Command {
    let mut c = Command::new(bin("loadgen"));
    c.arg("send")
        .arg("--target")
        .arg(target.to_string())
        .arg("--ca")
        .arg(&pki.ca)
        .arg("--cert")
        .arg(&pki.client_cert)
        .arg("--key")
        .arg(&pki.client_key)
        .args(["--confirm-timeout", "0", "--json", "--quiet"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(json).expect("send json"));
    c
}

/// `loadgen verify`: every message of the run in `send_json` is in `files`
/// exactly once (it exits non-zero on a missing, duplicated or corrupted one).
pub fn verify(send_json: &Path, files: &[impl AsRef<OsStr>]) -> String {
    let out = run(Command::new(bin("loadgen"))
        .args(["verify", "--format", "raw", "--expect-json"])
        .arg(send_json)
        .args(files));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
