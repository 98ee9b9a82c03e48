//! `tuning plan` through the binary: the files it writes, and a bad
//! workload's error naming the field. The arithmetic itself is unit-tested
//! in src/plan.rs; the fixture profile is made up, not measured.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tuning() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tuning"))
}

fn here(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tuning-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

#[test]
fn plan_writes_markdown_json_and_svg_with_unmeasured_figures_named() {
    let out = scratch("plan");
    let run = tuning()
        .args(["plan", "--profile"])
        .arg(here("tests/fixtures/profile-fixed.json"))
        .arg("--workload")
        .arg(here("examples/workload-2m.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run tuning");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let md = std::fs::read_to_string(out.join("plan.md")).expect("plan.md");
    // The fixture predates the machine-wide CPU figure: 2M × 1.5 process
    // CPU-µs × 1.3 headroom = 3.90 cores, and the plan says so.
    assert!(md.contains("| cores, whole tier | 3.90 cores |"), "{md}");
    assert!(
        md.contains("| profile server process CPU (no machine-wide figure) at 1 records per write"),
        "{md}"
    );
    assert!(
        md.contains("\n- the profile has no machine-wide CPU figure at 1 records per write"),
        "{md}"
    );
    // 602 MB/s × 1.3 over 500 MB/s disks: 2 nodes, bound by the disk.
    assert!(md.contains("| nodes | 2.00 nodes |"), "{md}");
    assert!(md.contains("bound by node_disk_mb_s"), "{md}");
    // The fixture has no handshake figure: the storm is unmeasured, not 0.
    assert!(
        md.contains("| reconnect storm absorbed in | unmeasured |"),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).expect("plan.json"))
            .expect("plan.json parses");
    assert!(json["rows"].as_array().is_some_and(|r| r.len() > 8));
    let svg = std::fs::read_to_string(out.join("curve.svg")).expect("curve.svg");
    assert!(
        svg.contains("<polyline") && svg.contains("planned"),
        "{svg}"
    );
}

#[test]
fn a_bad_workload_is_an_error_naming_the_field() {
    let dir = scratch("bad-workload");
    let w = dir.join("w.toml");
    let text = std::fs::read_to_string(here("examples/workload-2m.toml")).expect("example");
    std::fs::write(&w, text.replace("share = 1.0", "share = 0.4")).expect("write");
    let run = tuning()
        .args(["plan", "--profile"])
        .arg(here("tests/fixtures/profile-fixed.json"))
        .arg("--workload")
        .arg(&w)
        .output()
        .expect("run tuning");
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(
        err.contains("workload field `sizes`: the shares add up to 0.400, not 1"),
        "{err}"
    );
}
