//! The shipped scenario files of issues 12 and 13 end to end, 1-second
//! runs (functional only: no figure is checked, only that every engine
//! starts with its generated config and that every count is exact):
//! - durability.toml: every level for ringest, syslog-ng and rsyslog;
//! - relay.toml: syslog-ng and rsyslog relaying to the final receiver
//!   (ringest's forward destination is issue 13's; its row is left out);
//! - scaling.toml: ringest with one and two shards, pinned with taskset;
//! - `bench latency` with a given maximum: the curve files and both
//!   latency figures.
//!
//! Needs the peers (`bench setup`, as root on Debian), taskset, and ringest
//! and loadgen built next to bench (`cargo build --workspace --bins`); it
//! fails, with the command to run, when any of them is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn bench() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bench"))
}

fn scenarios(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(file)
}

fn out_dir(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Fresh state: no page-cache fill, no waiting; a 1 MiB write probe.
const FRESH: [&str; 8] = [
    "--states",
    "fresh",
    "--fresh-wait",
    "0",
    "--write-probe-mib",
    "1",
    "--quiet-timeout",
    "1",
];
/// compare's: 1-s runs, no reruns, no AES measure.
const QUICK: [&str; 6] = [
    "--duration",
    "1",
    "--steal-reruns",
    "0",
    "--aes-seconds",
    "0",
];

/// Runs `bench compare` and returns results.json, failing clearly when
/// bench cannot run at all.
fn compare(name: &str, file: &str, extra: &[&str]) -> (Value, String, PathBuf) {
    let out = out_dir(name);
    let o = Command::new(bench())
        .arg("compare")
        .args(FRESH)
        .args(QUICK)
        .args(["--repeat", "1"])
        .arg("--scenarios")
        .arg(scenarios(file))
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run bench");
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !stderr.contains("missing peers") && !stderr.contains("not found. Build it"),
        "bench cannot run: the peers or binaries are missing. Run, as root: `{} setup`, \
         and `cargo build --workspace --bins`.\n{stderr}",
        bench().display()
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{file}: exit status; stderr:\n{stderr}"
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    (json, stderr, out)
}

fn runs(json: &Value) -> Vec<&Value> {
    json["runs"].as_array().expect("runs").iter().collect()
}

/// ok, nothing lost, every message sent found, 301 bytes a line.
fn assert_exact(r: &Value) {
    let who = format!("{} {}", r["scenario"], r["engine"]);
    assert_eq!(r["status"], "ok", "{who}: {r:#}");
    assert_eq!(r["lost"], 0, "{who}: {r:#}");
    assert_eq!(r["duplicated"], 0, "{who}: {r:#}");
    assert_eq!(r["corrupted"], 0, "{who}: {r:#}");
    let sent = r["sent"].as_u64().unwrap_or(0);
    assert!(
        sent > 0 && r["written"].as_u64() == Some(sent),
        "{who}: {r:#}"
    );
    assert_eq!(r["bytes_per_msg"].as_f64(), Some(301.0), "{who}: {r:#}");
}

fn file_in(r: &Value, name: &str) -> String {
    let p = Path::new(r["run_dir"].as_str().unwrap()).join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn durability_levels_run_every_engine_with_its_matching_setting() {
    let (json, stderr, out) = compare("durability", "durability.toml", &[]);
    let rs = runs(&json);
    assert_eq!(rs.len(), 9, "3 levels × 3 engines; stderr:\n{stderr}");
    for r in &rs {
        assert_exact(r);
        let level = r["scenario"]
            .as_str()
            .unwrap()
            .trim_start_matches("durability-");
        match r["engine"].as_str().unwrap() {
            "ringest" => {
                let c = file_in(r, "ringest.toml");
                assert!(c.contains(&format!("fsync = \"{level}\"")), "{c}");
            }
            "syslog-ng" => {
                let c = file_in(r, "syslog-ng.conf");
                assert_eq!(c.contains("fsync(yes)"), level != "never", "{c}");
            }
            "rsyslog" => {
                let c = file_in(r, "rsyslog.conf");
                assert_eq!(c.contains(r#"sync="on""#), level != "never", "{c}");
                // Accepted by rsyslog's own check, with no error line.
                let check = file_in(r, "rsyslog.config-check");
                assert!(!check.to_lowercase().contains("error"), "{check}");
            }
            e => panic!("engine {e}"),
        }
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("## Against a baseline scenario (paired by repeat)"),
        "{md}"
    );
    assert!(
        md.contains("| fresh | durability-batch | durability-never | rsyslog | "),
        "{md}"
    );
    let pairs = json["against_baseline"].as_array().unwrap();
    assert_eq!(pairs.len(), 6, "2 levels × 3 engines: {pairs:#?}");
    assert!(pairs.iter().all(|p| p["msg_per_s"]["n"] == 1), "{pairs:#?}");
}

#[test]
fn relay_rows_verify_the_final_receivers_file_exactly() {
    let (json, stderr, _) = compare(
        "relay",
        "relay.toml",
        &[
            "--only",
            "syslog-ng,rsyslog",
            "--pick",
            "relay-mtls-large-8",
        ],
    );
    let rs = runs(&json);
    assert_eq!(rs.len(), 2, "{stderr}");
    for r in rs {
        assert_exact(r);
        // The relay forwarded: it wrote no file of its own, and the final
        // receiver (a ringest requiring the bench client certificate) did.
        let fin = file_in(r, "final/ringest.toml");
        assert!(fin.contains("peer_verify = \"required-trusted\""), "{fin}");
        match r["engine"].as_str().unwrap() {
            "syslog-ng" => {
                let c = file_in(r, "syslog-ng.conf");
                assert!(
                    c.contains("transport(\"tls\")") && !c.contains("{ file("),
                    "{c}"
                );
            }
            _ => {
                let c = file_in(r, "rsyslog.conf");
                assert!(
                    c.contains(r#"type="omfwd""#) && !c.contains("out.log"),
                    "{c}"
                );
            }
        }
    }
}

#[test]
fn scaling_pins_ringest_and_pairs_two_shards_with_one() {
    let (json, stderr, out) = compare("scaling", "scaling.toml", &["--only", "ringest"]);
    let rs = runs(&json);
    assert_eq!(rs.len(), 2, "{stderr}");
    for r in &rs {
        assert_exact(r);
        let shards = if r["scenario"] == "scale-shards-1" {
            1
        } else {
            2
        };
        let c = file_in(r, "ringest.toml");
        assert!(c.contains(&format!("\nshards = {shards}\n")), "{c}");
        let pin = r["pinning"].as_str().unwrap_or("");
        assert!(pin.starts_with("pinned: server on CPU"), "{r:#}");
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("| fresh | scale-shards-2 | scale-shards-1 | ringest | "),
        "{md}"
    );
}

/// A paced run's machine-wide busy CPU holds ringest's and loadgen's own,
/// however the kernel's tick samples fell (bench/src/sys.rs CpuWindow: a
/// load on loadgen's 1-ms grid escapes them), and the raw /proc/stat
/// samples are kept.
fn machine_cpu_holds_the_processes(r: &Value) {
    let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("no {k}: {r:#}"));
    let cpus = r["proc_stat_cpu"]["cpus"].as_f64().unwrap_or(0.0);
    assert!(cpus >= 1.0, "no /proc/stat samples: {r:#}");
    let machine_s = f("machine_busy_pct") / 100.0 * f("window_s") * cpus;
    let own_s = f("server_cpu_s") + f("client_cpu_s");
    // The idle clock reaches /proc/stat in 10-ms ticks, truncated.
    assert!(
        machine_s + 0.05 >= own_s,
        "machine busy {machine_s:.3} CPU-s < ringest + loadgen {own_s:.3}: {r:#}"
    );
    assert!(f("proc_stat_counted_pct") > 0.0, "{r:#}");
    assert!(r["machine_busy_sampled_pct"].as_f64().is_some(), "{r:#}");
}

#[test]
fn latency_writes_the_curve_with_both_latency_figures() {
    let out = out_dir("latency");
    let o = Command::new(bench())
        .args(["latency", "--only", "ringest", "--max-rate", "4000"])
        .args(["--points", "25,50", "--duration", "1"])
        .args(FRESH)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run bench latency");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("not found. Build it"),
        "build ringest and loadgen: `cargo build --workspace --bins`\n{stderr}"
    );
    assert_eq!(o.status.code(), Some(0), "stderr:\n{stderr}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("latency.json")).unwrap()).unwrap();
    let points = json["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{json:#}");
    for (p, rate) in points.iter().zip([1000.0, 2000.0]) {
        assert_eq!(p["status"], "ok", "{p:#}");
        assert_eq!(p["lost"], 0, "{p:#}");
        assert_eq!(p["rate_msg_per_s"].as_f64(), Some(rate), "{p:#}");
        assert!(
            p["client_us"]["p99"].as_f64().is_some_and(|v| v > 0.0),
            "{p:#}"
        );
        let own = &p["engine_us"]["ringest_write_latency_seconds"];
        assert!(own["p999"].as_f64().is_some_and(|v| v > 0.0), "{p:#}");
    }
    for r in json["runs"].as_array().unwrap() {
        assert_exact(r);
        let args = file_in(r, "loadgen.args");
        assert!(args.contains("--rate "), "{args}");
        machine_cpu_holds_the_processes(r);
    }
    let md = std::fs::read_to_string(out.join("latency.md")).unwrap();
    assert!(md.contains("| ringest | 50 | 2000 |"), "{md}");
    let svg = std::fs::read_to_string(out.join("latency.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("ringest client p99"),
        "{svg}"
    );
}
