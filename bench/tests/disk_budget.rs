//! `bench latency` refuses a point whose output would not fit on the disk
//! (bench/src/disk_budget.rs), says so in one line, records it in the
//! report and goes on with the rest of the curve. The rate is absurd
//! (`--max-rate 1e9` for 300 s: terabytes per point), so no disk fits it
//! and no engine is ever started.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// short_compare is not used here.
#[allow(dead_code)]
mod support;
use support::{bench, out_dir};

/// Runs `bench latency` with `args` on top of the absurd curve; returns its
/// exit code and stderr. Bounded: killed after two minutes. Needs ringest
/// and loadgen built next to bench (`cargo build --workspace --bins`), as
/// bench checks them before any run.
fn bench_latency(out: &Path, args: &[&str]) -> (i32, String) {
    let stderr = out.with_extension("stderr");
    let mut child = Command::new(bench())
        .args([
            "latency",
            "--only",
            "ringest",
            "--max-rate",
            "1000000000",
            "--points",
            "20,95",
            "--duration",
            "300",
            "--write-probe-mib",
            "1",
            "--quiet-timeout",
            "1",
        ])
        .arg("--out")
        .arg(out)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("start bench");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for bench") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bench latency did not end within 120 s: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&stderr).expect("bench's stderr");
    let code = status
        .code()
        .unwrap_or_else(|| panic!("bench ended by a signal ({status}): {text}"));
    (code, text)
}

/// Every point refused with the one line, the report written, no engine run.
fn check_refused(out: &Path, state: &str, text: &str, pool_words: &str) {
    for pct in [20, 95] {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("bench latency: point {pct}%: ringest needs ")))
            .unwrap_or_else(|| panic!("no refusal line for {pct}%:\n{text}"));
        assert!(
            line.contains(" GB of disk for its output, ")
                && line.contains(&format!(
                    " GB free{pool_words}; use --duration N or free disk"
                )),
            "{line}"
        );
        let run = out
            .join("curve/runs")
            .join(state)
            .join(format!("mtls-large-8-at-{pct}pct/ringest-1"));
        let json = std::fs::read_to_string(run.join("run.json"))
            .unwrap_or_else(|e| panic!("{}: {e}\n{text}", run.display()));
        assert!(json.contains("\"disk_refused\": true"), "{json}");
        assert!(json.contains("\"status\": \"failed\""), "{json}");
        // Refused: the pool is left as it was for the runs that fit.
        assert!(json.contains("\"pool_trimmed_bytes\": null"), "{json}");
        assert!(
            !run.join("ringest.stderr").exists(),
            "ringest was started for a refused point"
        );
    }
    // The whole curve's need was printed before the first run.
    assert!(
        text.contains("bench latency: disk: the curve's 2 runs of 300 s write about "),
        "{text}"
    );
    let md = std::fs::read_to_string(out.join("latency.md")).expect("latency.md");
    assert_eq!(md.matches("| refused: needs ").count(), 2, "{md}");
    assert!(out.join("latency.json").is_file() && out.join("latency.svg").is_file());
}

#[test]
fn fresh_state_points_that_cannot_fit_are_refused_and_the_curve_goes_on() {
    let dir = out_dir("disk-fresh");
    let out = dir.join("out");
    let (code, text) = bench_latency(&out, &["--states", "fresh", "--fresh-wait", "0"]);
    // 1: points not measured; not a crash (that would be an error line and
    // no report).
    assert_eq!(code, 1, "{text}");
    check_refused(&out, "fresh", &text, "");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn steady_state_refusal_counts_the_pool_and_leaves_it() {
    let dir = out_dir("disk-steady");
    let out = dir.join("out");
    // A MemFree target far above any machine's memory: the fill is reached
    // at once and writes nothing; the pool holds the write probes only.
    let (code, text) = bench_latency(
        &out,
        &[
            "--states",
            "steady",
            "--free-target-mib",
            "100000000",
            "--pool-max-mib",
            "64",
        ],
    );
    assert_eq!(code, 1, "{text}");
    check_refused(&out, "steady", &text, " even after trimming the pool");
    let _ = std::fs::remove_dir_all(&dir);
}
