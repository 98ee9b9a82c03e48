//! kTLS on forward (client) connections, on this host: the real binaries.
//!
//! - `ktls = "on"` on a forward destination refuses to start (serve and
//!   check-config) on a kernel without kTLS, naming the destination and
//!   what to do.
//! - `ktls = "auto"` falls back to userspace rustls: one log line, the
//!   path counted in `ringest_upstream_tls_connections_total`, and every
//!   message delivered exactly once (`loadgen verify`).
//!
//! The offload itself (TLS 1.2 and 1.3, TX and RX in the kernel) is tested
//! in a guest kernel that has kTLS: tests/ktls-vm/ci.sh (forward.sh).

use std::process::Command;
use std::time::Duration;

use e2e::loadgen::{send_tcp_all, verify_raw};
use e2e::pki::Pki;
use e2e::server::{bin, free_port, metric_in, temp_dir, Server};
use e2e::{basic_config, host_has_ktls, loopback, relay_config};

const NO_KTLS: &str = "this test is about a kernel without kTLS (CONFIG_TLS unset); \
                       on a kernel with it, run tests/ktls-vm/ci.sh instead";

#[test]
fn forward_ktls_on_refuses_to_start_without_kernel_ktls() {
    assert!(!host_has_ktls(), "{NO_KTLS}");
    let dir = temp_dir("ktlsfwd-on");
    let pki = Pki::generate(&dir.join("pki"));
    let upstream = [format!("127.0.0.1:{}", free_port())];
    let cfg = relay_config(&pki, free_port(), free_port(), &upstream, "ktls = \"on\"\n");
    let err = match Server::try_start(&dir, &cfg) {
        Ok(s) => {
            s.stop();
            panic!("ringest started with a forward ktls = \"on\" on a kernel without kTLS");
        }
        Err(e) => e,
    };
    let want = |text: &str| {
        let line = text
            .lines()
            .find(|l| l.contains("ktls = \"on\""))
            .unwrap_or_else(|| panic!("no ktls line:\n{text}"));
        assert!(
            line.contains("destination upstream")
                && line.contains("no kTLS")
                && line.contains("ENOENT")
                && line.contains("ktls = \"auto\""),
            "{line}"
        );
    };
    want(&err);
    // check-config says the same, from the same plan.
    let out = Command::new(bin("ringest"))
        .args(["check-config", "--config"])
        .arg(dir.join("ringest.toml"))
        .output()
        .expect("run ringest check-config");
    assert!(!out.status.success(), "check-config accepted it");
    want(&String::from_utf8_lossy(&out.stderr));
}

#[test]
fn forward_ktls_auto_falls_back_to_userspace_and_delivers_exactly() {
    assert!(!host_has_ktls(), "{NO_KTLS}");
    let dir = temp_dir("ktlsfwd-auto");
    let pki = Pki::generate(&dir.join("pki"));
    for sub in ["final", "relay"] {
        std::fs::create_dir_all(dir.join(sub)).expect("dir");
    }
    let (final_tls, final_tcp, final_stats) = (free_port(), free_port(), free_port());
    let fin = Server::start(
        &dir.join("final"),
        &basic_config(
            &pki,
            loopback(final_tls),
            loopback(final_tcp),
            loopback(final_stats),
            "",
        ),
    );
    let (port, stats) = (free_port(), free_port());
    let upstream = [format!("127.0.0.1:{final_tls}")];
    let relay = Server::start(
        &dir.join("relay"),
        &relay_config(&pki, port, stats, &upstream, "ktls = \"auto\"\n"),
    );
    let n = 5_000;
    let json = dir.join("send.json");
    send_tcp_all(port, n, 4, &json);
    let written = fin.wait_metric(
        "ringest_messages_written_total{source=\"tls\"",
        n,
        Duration::from_secs(30),
    );
    assert_eq!(written, n, "final wrote");
    let metrics = relay.metrics();
    let path = |p: &str| {
        metric_in(
            &metrics,
            &format!(
                "ringest_upstream_tls_connections_total{{destination=\"upstream\",path=\"{p}\"}}"
            ),
        )
    };
    let fallbacks = path("userspace_kernel_lacks_ktls");
    assert!(fallbacks >= 1, "no fallback counted:\n{metrics}");
    assert_eq!(path("ktls"), 0, "{metrics}");
    let stderr = relay.stderr();
    let lines = stderr
        .lines()
        .filter(|l| l.contains("kTLS not used for the upstream connection"))
        .collect::<Vec<_>>();
    // One line per writer thread (the relay has two), not per connection.
    assert!(
        (1..=2).contains(&lines.len()) && lines.len() as u64 <= fallbacks,
        "{lines:?}"
    );
    assert!(
        lines[0].contains("the kernel has no kTLS") && lines[0].contains("userspace rustls"),
        "{}",
        lines[0]
    );
    assert!(relay.stop().success());
    assert!(fin.stop().success());
    verify_raw(&json, &dir.join("final/data/messages.log"));
}
