//! `tuning measure --quick --kafka` end to end: it drives bench, which
//! starts the real ringest and loadgen built next to it (and, for the
//! Kafka points, a real Apache Kafka broker: tests/kafka/broker.sh), and
//! must write a complete profile. A figure may be absent only when measure refused it for its
//! spread and said so; anything else missing fails the test.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn measure_quick_writes_a_complete_profile() {
    let tuning = PathBuf::from(env!("CARGO_BIN_EXE_tuning"));
    let bin_dir = tuning.parent().expect("bin dir").to_path_buf();
    for b in ["bench", "ringest", "loadgen"] {
        assert!(
            bin_dir.join(b).exists(),
            "{b} is not built next to tuning ({}): run `cargo build --workspace --bins` first",
            bin_dir.display()
        );
    }
    let out = std::env::temp_dir().join(format!("tuning-measure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(&tuning)
        .args(["measure", "--quick", "--kafka", "--out"])
        .arg(&out)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .output()
        .expect("run tuning measure");
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "tuning measure failed:\n{err}");
    let text = std::fs::read_to_string(out.join("profile.json")).expect("profile.json");
    let p: serde_json::Value = serde_json::from_str(&text).expect("profile parses");
    let refused = |name: &str| err.contains(&format!("refused {name}"));
    let cpu = p["cpu"].as_array().expect("cpu points");
    for bytes in [128, 300, 1024, 4096] {
        for rpw in [1, 50] {
            let name = format!("cpu t-{bytes}b-{rpw}rpw");
            let found = cpu
                .iter()
                .any(|c| c["bytes"] == bytes && c["records_per_write"] == rpw);
            assert!(
                found || refused(&name),
                "{name} missing and not refused:\n{err}"
            );
        }
    }
    let kafka = p["kafka"].as_array().expect("kafka points");
    for rpw in [1, 50] {
        let name = format!("kafka cpu t-kafka-300b-{rpw}rpw");
        let point = kafka
            .iter()
            .find(|k| k["bytes"] == 300 && k["records_per_write"] == rpw);
        match point {
            Some(k) => {
                assert!(
                    k["cpu_us_per_msg"]["value"]
                        .as_f64()
                        .is_some_and(|v| v > 0.0),
                    "{text}"
                );
                let broker = format!("kafka broker t-kafka-300b-{rpw}rpw");
                assert!(
                    k["broker_cpu_us_per_msg"]["value"]
                        .as_f64()
                        .is_some_and(|v| v > 0.0)
                        || refused(&broker),
                    "{broker} missing and not refused:\n{err}"
                );
            }
            None => assert!(refused(&name), "{name} missing and not refused:\n{err}"),
        }
    }
    for (key, name) in [
        ("handshakes_per_cpu_s", "handshakes"),
        ("writer_cpu_s_per_gb_buffered", "buffered write"),
        ("writer_cpu_s_per_gb_direct", "direct write"),
    ] {
        assert!(
            p[key].is_object() || refused(name),
            "{key} missing and not refused:\n{err}"
        );
    }
    assert!(
        p["idle_rss_bytes_per_conn"]["value"]
            .as_f64()
            .is_some_and(|v| v > 0.0),
        "{text}"
    );
    let curve = p["curve"].as_array().expect("curve");
    assert!(curve.len() >= 3, "curve too short: {text}");
    assert!(
        p["machine"]["cores"].as_u64().is_some_and(|c| c > 0),
        "{text}"
    );
    // The planner takes what measure wrote.
    let plan = Command::new(&tuning)
        .args(["plan", "--profile"])
        .arg(out.join("profile.json"))
        .arg("--workload")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/workload-2m.toml"
        ))
        .output()
        .expect("run tuning plan");
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    // Into Kafka: the plan adds the measured extra, or says it is
    // unmeasured where measure refused the 1-per-record point.
    let kafka_plan = Command::new(&tuning)
        .args(["plan", "--profile"])
        .arg(out.join("profile.json"))
        .arg("--workload")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/workload-2m-kafka.toml"
        ))
        .output()
        .expect("run tuning plan");
    let md = String::from_utf8_lossy(&kafka_plan.stdout);
    assert!(
        kafka_plan.status.success(),
        "{}",
        String::from_utf8_lossy(&kafka_plan.stderr)
    );
    let row = md
        .lines()
        .find(|l| l.starts_with("| Kafka output's extra CPU per message |"))
        .unwrap_or_else(|| panic!("no Kafka row in the plan:\n{md}"));
    assert!(
        !row.contains("unmeasured") || refused("kafka cpu t-kafka-300b-1rpw"),
        "{row}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
