//! `bench compare` on the kafka rows (issue 15), end to end: a 1-second
//! smoke run of bench/scenarios/kafka.toml against ringest, syslog-ng
//! (kafka-c) and rsyslog (omkafka), all producing into one real Apache
//! Kafka broker that bench starts and stops itself. Every row must count
//! exactly in the topic (sum of high watermarks = sent), read back clean
//! through `loadgen verify`, with the same value bytes in every engine.
//! No figure is checked: a 1-s run on a test machine means nothing.
//!
//! Needs: bench built with `--features kafka`, ringest built with
//! `--features kafka` next to it, the peers' Kafka modules (`bench setup`,
//! or tests/interop/setup-peers.sh) and the broker's jars
//! (`bash tests/kafka/broker.sh fetch`). It fails, saying which, when one
//! is missing.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod support;
use support::{out_dir, short_compare};

fn kafka_scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/kafka.toml")
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                out.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

#[test]
fn kafka_rows_count_every_message_in_the_topic_for_every_engine() {
    let dir = out_dir("kafka");
    let out = dir.join("out");
    let o = short_compare(1, &kafka_scenarios(), &out)
        .args(["--kafka-warm-up", "2"])
        .output()
        .expect("run bench");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(0),
        "bench compare on the kafka rows (build bench and ringest with --features kafka, \
         install the peers' Kafka modules with `bench setup`, fetch the broker with \
         `bash tests/kafka/broker.sh fetch`):\n{stderr}"
    );
    let broker_dir = out.join("kafka-broker");
    assert!(
        processes_with(&broker_dir.display().to_string()).is_empty(),
        "the broker outlived bench: {:?}",
        processes_with(&broker_dir.display().to_string())
    );

    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().expect("runs");
    for scenario in ["kafka-mtls-large-8", "kafka-mtls-1rec-8"] {
        let mut topics = Vec::new();
        for engine in ["ringest", "syslog-ng", "rsyslog"] {
            let r: Vec<&Value> = runs
                .iter()
                .filter(|r| r["scenario"] == scenario && r["engine"] == engine)
                .collect();
            assert_eq!(r.len(), 1, "{scenario}/{engine}: one run");
            let r = r[0];
            assert_eq!(r["status"], "ok", "{scenario}/{engine}: {r:#}\n{stderr}");
            let sent = r["sent"].as_u64().unwrap_or(0);
            assert!(sent > 0, "{scenario}/{engine}: nothing sent");
            let marks: i64 = r["kafka_high_watermarks"]
                .as_array()
                .map(|v| v.iter().filter_map(Value::as_i64).sum())
                .unwrap_or(-1);
            assert_eq!(
                r["kafka_high_watermarks"].as_array().map(Vec::len),
                Some(4),
                "{scenario}/{engine}: 4 partitions: {r:#}"
            );
            assert_eq!(
                marks, sent as i64,
                "{scenario}/{engine}: topic vs sent: {r:#}"
            );
            assert_eq!(
                r["written"].as_u64(),
                Some(sent),
                "{scenario}/{engine}: read back"
            );
            for k in ["lost", "duplicated", "corrupted"] {
                assert_eq!(r[k], 0, "{scenario}/{engine}: {k}: {r:#}");
            }
            // The same bytes in every engine: the 300-byte message as received.
            assert_eq!(
                r["bytes_per_msg"].as_f64(),
                Some(300.0),
                "{scenario}/{engine}"
            );
            for k in ["server_cpu_s", "broker_cpu_s", "written_msg_per_s"] {
                assert!(
                    r[k].as_f64().is_some_and(|v| v > 0.0),
                    "{scenario}/{engine}: {k}: {r:#}"
                );
            }
            assert!(
                r["kafka_broker"]
                    .as_str()
                    .is_some_and(|b| b.starts_with("Apache Kafka 4.")),
                "{r:#}"
            );
            // Warmed up by bench's producer: a count of at least one.
            let warmed = r["kafka_broker"]
                .as_str()
                .and_then(|b| b.split_once("own producer (the same settings): "))
                .and_then(|(_, rest)| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok());
            assert!(warmed.is_some_and(|n| n > 0), "warm-up: {r:#}");
            topics.push(r["kafka_topic"].as_str().unwrap_or("").to_string());
        }
        topics.sort();
        topics.dedup();
        assert_eq!(topics.len(), 3, "a fresh topic per engine: {topics:?}");
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("## Kafka rows: the topic and the broker"),
        "{md}"
    );
    assert!(
        md.contains("| steady | `kafka-mtls-1rec-8` | rsyslog | 1 of 1 | 300.0 |"),
        "{md}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
