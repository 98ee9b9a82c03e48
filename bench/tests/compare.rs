//! `bench compare` end to end: a 2-second run of one small scenario against
//! ringest, syslog-ng and rsyslog (raw work: each must write the same bytes
//! per message), plus a scenario whose syslog-ng config is deliberately
//! broken. The steady state's fill is kept to 64 MiB (`--pool-max-mib`). Needs the peers (`bench setup`, as root on Debian)
//! and ringest + loadgen built next to bench (`cargo build --workspace --bins`).
//! It fails, with the command to run, when any of them is missing.

use std::process::Command;

use serde_json::Value;

mod support;
use support::{bench, out_dir, short_compare};

const SCENARIOS: &str = r#"
[[scenario]]
name = "small"
title = "mutual TLS, 50 msgs per record, 2 conns"
transport = "tls"
framing = "octet-counted"
connections = 2
records_per_write = 50

[[scenario]]
name = "broken-peer"
title = "syslog-ng given a source option that does not exist"
transport = "tls"
framing = "octet-counted"
connections = 1
records_per_write = 50
engines = ["syslog-ng", "rsyslog"]
[scenario.extra_source]
syslog-ng = "no-such-option(1)"
[scenario.unsupported]
rsyslog = "declared unsupported by this test"
"#;

fn runs_of<'a>(json: &'a Value, scenario: &str, engine: &str) -> Vec<&'a Value> {
    json["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter(|r| r["scenario"] == scenario && r["engine"] == engine)
        .collect()
}

#[test]
fn compare_three_engines_for_two_seconds_and_report_a_broken_peer_as_failed() {
    let dir = out_dir("compare");
    let scen = dir.join("scenarios.toml");
    std::fs::write(&scen, SCENARIOS).unwrap();
    let out = dir.join("out");
    let o = short_compare(2, &scen, &out).output().expect("run bench");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !stderr.contains("missing peers") && !stderr.contains("not found. Build it"),
        "bench cannot run: the peers or binaries are missing. Run, as root: `{} setup`, \
         and `cargo build --workspace --bins`.\n{stderr}",
        bench().display()
    );
    // The broken peer is a failed run, so bench must exit 1 (not 0, not 2).
    assert_eq!(o.status.code(), Some(1), "exit status; stderr:\n{stderr}");

    for f in ["results.md", "results.csv", "results.json", "results.svg"] {
        let p = out.join(f);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 100,
            "{} missing or empty; stderr:\n{stderr}",
            p.display()
        );
    }
    let svg = std::fs::read_to_string(out.join("results.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("syslog-ng") && svg.contains("small"));

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    for engine in ["ringest", "syslog-ng", "rsyslog"] {
        let runs = runs_of(&json, "small", engine);
        assert_eq!(runs.len(), 1, "{engine}: one run of `small`");
        let r = runs[0];
        assert_eq!(r["status"], "ok", "{engine}: {r:#}\nstderr:\n{stderr}");
        assert_eq!(r["lost"], 0, "{engine} lost messages: {r:#}");
        assert_eq!(r["duplicated"], 0, "{engine}: {r:#}");
        assert_eq!(r["corrupted"], 0, "{engine}: {r:#}");
        let written = r["written"].as_u64().unwrap_or(0);
        assert!(
            written > 0 && written >= r["sent"].as_u64().unwrap(),
            "{engine}: written {written} vs sent: {r:#}"
        );
        // Like for like: the whole message plus LF, 300 + 1 bytes, in every engine.
        assert_eq!(r["bytes_per_msg"].as_f64(), Some(301.0), "{engine}: {r:#}");
        assert_eq!(r["state"], "steady", "{engine}");
        for k in [
            "written_msg_per_s",
            "offered_msg_per_s",
            "server_cpu_us_per_msg",
            "machine_cpu_us_per_msg",
            "client_cpu_s",
            "peak_rss_kib",
            "busy_before",
            "steal_pct",
            "write_cost_cpu_s_per_gb",
        ] {
            assert!(
                r[k].as_f64()
                    .map(|v| v > 0.0 || k == "busy_before" || k == "steal_pct")
                    .unwrap_or(false),
                "{engine}: {k} missing: {r:#}"
            );
        }
    }

    // The engines of the repeat ran in a random order, one after the other.
    let mut order: Vec<u64> = ["ringest", "syslog-ng", "rsyslog"]
        .iter()
        .map(|e| runs_of(&json, "small", e)[0]["order"].as_u64().unwrap())
        .collect();
    order.sort();
    assert_eq!(order, [1, 2, 3]);
    assert!(json["machine"]["aes_128_gcm_bytes_per_s"]
        .as_f64()
        .is_some_and(|b| b > 1e8));

    // The broken syslog-ng config: a failed run with the reason, no figures.
    let broken = runs_of(&json, "broken-peer", "syslog-ng");
    assert_eq!(broken.len(), 1);
    let b = broken[0];
    assert_eq!(b["status"], "failed", "{b:#}");
    let reason = b["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("syslog-ng exited at start-up"),
        "reason: {reason}"
    );
    assert!(
        b["written_msg_per_s"].is_null() && b["server_cpu_us_per_msg"].is_null(),
        "a failed run has no figures: {b:#}"
    );
    let sum = json["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scenario"] == "broken-peer" && s["engine"] == "syslog-ng")
        .expect("summary row");
    assert_eq!(sum["measured"], 0);
    assert!(
        sum["written_msg_per_s"].is_null(),
        "no median from a failed run: {sum:#}"
    );
    // rsyslog was declared unable to run it: n/a, not silently skipped.
    let na = runs_of(&json, "broken-peer", "rsyslog");
    assert_eq!(na.len(), 1);
    assert_eq!(na[0]["status"], "not-applicable");

    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| `broken-peer` | syslog-ng |"))
        .unwrap_or_else(|| panic!("no broken-peer row in results.md:\n{md}"));
    assert!(row.contains("FAILED"), "{row}");
    assert!(
        md.lines()
            .any(|l| l.starts_with("| `broken-peer` | rsyslog | n/a: declared unsupported")),
        "{md}"
    );
    assert!(
        md.contains("AMD") || md.contains("Intel") || md.contains("×"),
        "{md}"
    );
    // The ratio table comes first, paired, with the bytes per message.
    let ratios = md
        .find("ratios against syslog-ng (paired)")
        .expect("a paired ratio table");
    let figures = md.find("figures on this machine").expect("a figures table");
    assert!(ratios < figures, "ratios first");
    let row = md
        .lines()
        .find(|l| l.starts_with("| `small` (raw) | ringest |"))
        .unwrap_or_else(|| panic!("no ratio row for small/ringest:\n{md}"));
    assert!(row.contains("| 301.0 |"), "{row}");
    for engine in ["ringest", "syslog-ng", "rsyslog"] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| `small` | {engine} |")))
            .unwrap_or_else(|| panic!("no small/{engine} row:\n{md}"));
        assert!(!row.contains("FAILED") && row.contains("| 1/1"), "{row}");
    }
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 3 + 2, "{csv}");
    // One progress line per run on stderr.
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("bench: [")).count(),
        5,
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_peers_are_named_with_the_commands_to_run() {
    let dir = out_dir("missing");
    let o = Command::new(bench())
        .args([
            "compare",
            "--duration",
            "1",
            "--repeat",
            "1",
            "--only",
            "rsyslog",
            "--peers-dir",
        ])
        .arg(dir.join("no-peers-here"))
        .arg("--out")
        .arg(dir.join("out"))
        .output()
        .expect("run bench");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    if stderr.contains("not found. Build it") {
        panic!("ringest/loadgen are not built next to bench: run `cargo build --workspace --bins`\n{stderr}");
    }
    assert!(
        stderr.contains("apt-get download rsyslog rsyslog-gnutls rsyslog-openssl"),
        "{stderr}"
    );
    assert!(stderr.contains("setup --peers-dir"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
