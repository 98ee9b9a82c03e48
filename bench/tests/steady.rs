//! The steady state's page-cache fill (bench/src/steady.rs) leaves no file
//! behind, however bench ends: a normal end, Ctrl-C during a run, a failed
//! run, and an error that ends bench while the fill is held.
//!
//! The fill is kept small with `--pool-max-mib 32` (the test knob: the pool
//! never holds more on disk), so no test writes gigabytes; `--keep` keeps the
//! output folder's `work/`, so a fill file left behind would be seen. Only
//! ringest runs (1-2 s, debug build): build it next to bench first
//! (`cargo build -p ringest -p loadgen`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bench() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bench"))
}

fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-steady-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const SMALL: &str = r#"
[[scenario]]
name = "small"
title = "mutual TLS, 50 msgs per record, 1 conn"
transport = "tls"
framing = "octet-counted"
connections = 1
records_per_write = 50
"#;

const BROKEN: &str = r#"
[[scenario]]
name = "broken"
title = "ringest given a config key that does not exist"
transport = "tls"
framing = "octet-counted"
connections = 1
records_per_write = 50
[scenario.extra_source]
ringest = "no_such_key = 1"
"#;

/// bench compare, ringest only, with a 32 MiB fill pool.
fn compare(dir: &Path, scenarios: &str, duration_s: u32) -> Command {
    let scen = dir.join("scenarios.toml");
    std::fs::write(&scen, scenarios).unwrap();
    let mut c = Command::new(bench());
    c.args([
        "compare",
        "--only",
        "ringest",
        "--repeat",
        "1",
        "--states",
        "steady",
        "--pool-max-mib",
        "32",
        // A target no machine reaches: the fill always writes its whole
        // 32 MiB pool, even where other work has already brought MemFree
        // under the 3 GiB default.
        "--free-target-mib",
        "1",
        "--write-probe-mib",
        "4",
        "--aes-seconds",
        "0",
        "--quiet-timeout",
        "1",
        "--keep",
    ])
    .arg("--duration")
    .arg(duration_s.to_string())
    .arg("--scenarios")
    .arg(&scen)
    .arg("--out")
    .arg(dir.join("out"));
    c
}

fn check_runnable(o: &Output) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("not found. Build it"),
        "ringest and loadgen must be built next to bench: `cargo build -p ringest -p loadgen`\n{stderr}"
    );
}

/// Every file under `dir` that the steady state's pool writes or keeps.
fn pool_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                if name == "steady" && p.parent().is_some_and(|x| x.ends_with("work")) {
                    found.push(p.clone());
                }
                todo.push(p);
            } else if name.starts_with("fill-")
                || name.starts_with("probe-")
                || name.starts_with("out-")
                || name == "write-probe.bin"
            {
                found.push(p);
            }
        }
    }
    found
}

fn results(dir: &Path) -> Value {
    let p = dir.join("out/results.json");
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

#[test]
fn a_normal_end_leaves_no_fill_behind_and_says_which_state_it_measured() {
    let dir = out_dir("normal");
    let o = compare(&dir, SMALL, 1).output().expect("run bench");
    check_runnable(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    // The fill happened: 32 MiB written, and the target (3 GiB free) not
    // reached with such a small pool, which the results say.
    assert!(stderr.contains("32 MiB written"), "{stderr}");
    let j = results(&dir);
    let run = &j["runs"][0];
    assert_eq!(run["state"], "steady", "{run:#}");
    assert_eq!(run["steady_reached"], false, "{run:#}");
    assert!(run["write_cost_cpu_s_per_gb"].as_f64().is_some(), "{run:#}");
    assert!(
        run["bytes_per_msg"].as_f64().is_some_and(|b| b > 300.0),
        "{run:#}"
    );
    assert!(run["steal_pct"].as_f64().is_some(), "{run:#}");
    assert!(run["machine_cpu_us_per_msg"].as_f64().is_some(), "{run:#}");
    let md = std::fs::read_to_string(dir.join("out/results.md")).unwrap();
    assert!(md.contains("Memory state: **steady**"), "{md}");
    assert!(
        md.contains("not steady"),
        "a state not reached is said: {md}"
    );
    // --keep kept work/ and the output; the pool is gone.
    assert!(dir.join("out/work").is_dir());
    assert_eq!(pool_files(&dir), Vec::<PathBuf>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctrl_c_during_a_run_leaves_no_fill_behind() {
    let dir = out_dir("sigint");
    let mut child = compare(&dir, SMALL, 30)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bench");
    // Wait until the load runs, with the fill held.
    let args = dir.join("out/runs/steady/small/ringest-1/loadgen.args");
    let pool = dir.join("out/work/steady");
    let start = Instant::now();
    while !(args.exists() && pool.is_dir()) {
        if let Some(st) = child.try_wait().unwrap() {
            let o = child.wait_with_output().unwrap();
            check_runnable(&o);
            panic!(
                "bench ended before the load started ({st}): {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the load never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !pool_files(&dir).is_empty(),
        "the fill is held during the run"
    );
    // SAFETY: kill(2) on the PID of our own child, which has not been reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "bench did not end after SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    };
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert_eq!(pool_files(&dir), Vec::<PathBuf>::new(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_run_leaves_no_fill_behind() {
    let dir = out_dir("failed");
    let o = compare(&dir, BROKEN, 1).output().expect("run bench");
    check_runnable(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "a failed run: exit 1\n{stderr}");
    assert!(stderr.contains("FAILED"), "{stderr}");
    assert!(
        stderr.contains("32 MiB written"),
        "the fill happened: {stderr}"
    );
    assert_eq!(pool_files(&dir), Vec::<PathBuf>::new(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_error_that_ends_bench_while_the_fill_is_held_leaves_no_fill_behind() {
    let dir = out_dir("error");
    // A file where the run's folder must go: creating it fails after the
    // first fill, and bench ends with an error (exit 2).
    std::fs::create_dir_all(dir.join("out/runs")).unwrap();
    std::fs::write(dir.join("out/runs/steady"), b"in the way").unwrap();
    let o = compare(&dir, SMALL, 1).output().expect("run bench");
    check_runnable(&o);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("32 MiB written"),
        "the fill happened: {stderr}"
    );
    assert_eq!(pool_files(&dir), Vec::<PathBuf>::new(), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
