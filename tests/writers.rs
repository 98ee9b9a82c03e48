//! End-to-end: the writer pool. Two shards, two writers, small batches and
//! rings bounded at 1 ms of queue, so batches of both writers interleave in
//! one file and the shards pause connections often: every message must
//! still arrive exactly once (loadgen verify) and each connection's lines
//! in the order they were sent.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::cmd::run;
use e2e::loadgen::{loadgen_send, loadgen_verify};
use e2e::pki::Pki;
use e2e::server::{bin, free_port, temp_dir, Server};
use e2e::{basic_config, loopback};

/// 16 connections: SO_REUSEPORT spreads them over both shards (all on one
/// shard has odds of 2 in 65,536), so both writers write.
const CONNECTIONS: u64 = 16;
const MESSAGES: u64 = 40_000;

/// Per (run, connection) in the marker `lg=RUN/CONN/SEQ`: the sequence
/// numbers must come 0, 1, 2, ... Returns the lines checked.
fn assert_in_order_per_connection(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).expect("output file");
    let mut next: HashMap<(String, String), u64> = HashMap::new();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let marker = line
            .split(' ')
            .find_map(|f| f.strip_prefix("lg="))
            .unwrap_or_else(|| panic!("line {lines} has no marker: {line}"));
        let mut it = marker.split('/');
        let (run, conn, seq) = (it.next(), it.next(), it.next());
        let (Some(run), Some(conn), Some(seq)) = (run, conn, seq) else {
            panic!("line {lines}: bad marker {marker}");
        };
        let seq: u64 = seq
            .parse()
            .unwrap_or_else(|_| panic!("line {lines}: seq {seq}"));
        let want = next.entry((run.into(), conn.into())).or_insert(0);
        assert_eq!(seq, *want, "line {lines}: connection {conn} out of order");
        *want += 1;
    }
    assert_eq!(next.len() as u64, CONNECTIONS, "every connection wrote");
    lines
}

#[test]
fn two_shards_two_writers_deliver_exactly_once_and_in_order_per_connection() {
    let dir = temp_dir("writers2");
    let pki = Pki::generate(&dir.join("pki"));
    let (tls, tcp, stats) = (free_port(), free_port(), free_port());
    let cfg = format!(
        "writers = 2\nmax_queue_delay_ms = 1\nring_capacity_batches = 4\nbatch_max_bytes = 4096\n{}",
        basic_config(&pki, loopback(tls), loopback(tcp), loopback(stats), "")
    );
    std::fs::write(dir.join("check.toml"), &cfg).expect("config");
    let check = run(Command::new(bin("ringest"))
        .args(["check-config", "--config"])
        .arg(dir.join("check.toml")));
    let said = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        said.contains(": ok (2 shards, 2 writers, max_queue_delay_ms 1)"),
        "{said}"
    );

    let server = Server::start(&dir, &cfg);
    assert!(
        server.stderr().contains("2 writers for 2 shards"),
        "{}",
        server.stderr()
    );
    let send_json = dir.join("send.json");
    let (conns, count) = (CONNECTIONS.to_string(), MESSAGES.to_string());
    run(&mut loadgen_send(
        loopback(tls),
        &pki,
        &["--connections", &conns, "--count", &count],
        &send_json,
    ));
    let written = server.wait_metric(
        "ringest_messages_written_total{source=\"tls\"",
        MESSAGES,
        Duration::from_secs(60),
    );
    assert_eq!(written, MESSAGES);
    let metrics = server.metrics();
    let count = "ringest_destination_write_latency_seconds_count{destination=\"messages\"} ";
    assert!(
        metrics.lines().any(|l| l == format!("{count}{MESSAGES}")),
        "every message's latency is recorded once per destination:\n{metrics}"
    );
    for q in ["0.5", "0.99", "0.999"] {
        let p = format!("ringest_destination_write_latency_seconds{{destination=\"messages\",quantile=\"{q}\"}} ");
        assert!(
            metrics.lines().any(|l| l.starts_with(&p)),
            "{p} missing:\n{metrics}"
        );
    }
    // Both writers wrote, together exactly the bytes written, and left
    // nothing counted as queued (the time bound's accounting balances).
    let writer =
        |name: &str, w: u32| e2e::server::metric_in(&metrics, &format!("{name}{{writer=\"{w}\"}}"));
    let drained: Vec<u64> = (0..2)
        .map(|w| writer("ringest_writer_drained_bytes_total", w))
        .collect();
    assert!(drained.iter().all(|d| *d > 0), "{drained:?}\n{metrics}");
    let written = e2e::server::metric_in(&metrics, "ringest_bytes_written_total");
    assert_eq!(drained.iter().sum::<u64>(), written, "{metrics}");
    for w in 0..2 {
        assert_eq!(writer("ringest_writer_queued_bytes", w), 0, "{metrics}");
        assert!(
            writer("ringest_writer_drain_bytes_per_second", w) > 0,
            "{metrics}"
        );
    }
    let out_dir = server.dir.clone();
    assert!(server.stop().success(), "clean exit");

    let out = out_dir.join("data/messages.log");
    let report = loadgen_verify(&send_json, &[out.to_str().expect("utf-8 path")]);
    assert!(
        report.contains(&format!(
            "received {MESSAGES}, missing 0, duplicated 0, corrupted 0"
        )),
        "{report}"
    );
    assert_eq!(assert_in_order_per_connection(&out), MESSAGES);
}
