//! kTLS on this host: the real binary, a kernel without kTLS (`CONFIG_TLS`
//! unset, so `TCP_ULP "tls"` fails with ENOENT).
//!
//! - `ktls = "auto"` (the default) falls back cleanly: one start-up line
//!   says kTLS is unavailable, TLS is served by the userspace record layer,
//!   every message arrives, and the path metric says why.
//! - `ktls = "on"` refuses to start, with a message that names kTLS and
//!   says what to do.
//!
//! The offload path itself is tested in a guest kernel that has kTLS:
//! tests/ktls-vm/ci.sh. On a host that does have kTLS these tests skip.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::client::{client_config, close, connect, octet_frame};
use e2e::pki::Pki;
use e2e::server::{bin, count_lines, free_port, temp_dir, Server};
use e2e::{basic_config, host_has_ktls, loopback};

const CONNS: usize = 3;
const PER_CONN: usize = 500;

fn config(pki: &Pki, ktls: &str) -> (String, u16) {
    let (tls, tcp, stats) = (free_port(), free_port(), free_port());
    let extra = format!("ktls = \"{ktls}\"\n");
    (
        basic_config(pki, loopback(tls), loopback(tcp), loopback(stats), &extra),
        tls,
    )
}

#[test]
fn auto_falls_back_to_userspace_and_loses_nothing() {
    // On a kernel with kTLS the same run checks the other branch of `auto`:
    // nothing lost, no connection said to lack kTLS (tests/ktls-vm covers
    // the offload itself in detail).
    let has_ktls = host_has_ktls();
    let dir = temp_dir("ktls-auto");
    let pki = Pki::generate(&dir.join("pki"));
    let (cfg, tls) = config(&pki, "auto");
    let server = Server::start(&dir, &cfg);

    let senders: Vec<_> = (0..CONNS)
        .map(|c| {
            let cfg = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
            std::thread::spawn(move || {
                let mut s = connect(loopback(tls), cfg).expect("connect");
                let mut buf = Vec::new();
                for i in 0..PER_CONN {
                    let msg = format!("<14>1 2026-11-26T00:00:00Z host app - - - c={c} i={i}");
                    octet_frame(&mut buf, msg.as_bytes());
                    if buf.len() > 4000 {
                        s.write_all(&buf).expect("write");
                        buf.clear();
                    }
                }
                s.write_all(&buf).expect("write");
                close(s).expect("clean close");
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    let total = (CONNS * PER_CONN) as u64;
    let written = server.wait_metric(
        "ringest_messages_written_total{source=\"tls\"",
        total,
        Duration::from_secs(20),
    );
    assert_eq!(written, total);
    let metrics = server.metrics();
    let path = |label: &str| {
        e2e::server::metric_in(
            &metrics,
            &format!("ringest_tls_connections_total{{source=\"tls\",path=\"{label}\"}}"),
        )
    };
    if has_ktls {
        assert_eq!(path("userspace_kernel_lacks_ktls"), 0, "{metrics}");
        let dir = server.dir.clone();
        assert!(server.stop().success());
        assert_eq!(
            count_lines(&dir.join("data/messages.log")),
            CONNS * PER_CONN
        );
        return;
    }
    assert_eq!(
        path("userspace_kernel_lacks_ktls"),
        CONNS as u64,
        "{metrics}"
    );
    assert_eq!(path("ktls"), 0);
    assert!(
        metrics.contains("# TYPE ringest_ktls_control_records_total counter"),
        "{metrics}"
    );
    let stderr = server.stderr();
    let probe: Vec<&str> = stderr.lines().filter(|l| l.contains("kTLS: ")).collect();
    assert_eq!(probe.len(), 1, "one start-up line:\n{stderr}");
    assert!(
        probe[0].starts_with("INFO  kTLS: unavailable (")
            && probe[0].contains("all connections stay in userspace rustls"),
        "{}",
        probe[0]
    );
    // One debug line per connection says which path it took, and why.
    let paths = stderr
        .lines()
        .filter(|l| l.contains("data path: userspace") && l.ends_with("(kernel_lacks_ktls)"))
        .count();
    assert_eq!(paths, CONNS, "debug line per connection:\n{stderr}");
    let dir = server.dir.clone();
    assert!(server.stop().success());
    assert_eq!(
        count_lines(&dir.join("data/messages.log")),
        CONNS * PER_CONN
    );
}

#[test]
fn on_refuses_to_start_without_kernel_ktls() {
    let dir = temp_dir("ktls-on");
    let pki = Pki::generate(&dir.join("pki"));
    let (cfg, _) = config(&pki, "on");
    if host_has_ktls() {
        // The other branch: with kTLS, `on` starts and serves.
        let server = Server::start(&dir, &cfg);
        assert!(server.stop().success());
        return;
    }
    let file = dir.join("ringest.toml");
    std::fs::write(&file, cfg).expect("config");
    let mut child = Command::new(bin("ringest"))
        .args(["serve", "--config"])
        .arg(&file)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Bounded: start-up fails at once; a hang would be a bug.
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("ringest with ktls = \"on\" kept running on a kernel without kTLS");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!status.success(), "exit status {status}");
    assert!(!stdout.contains("ringest: ready"), "{stdout}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("ringest: "))
        .unwrap_or_else(|| panic!("no error line:\n{stderr}"));
    assert!(
        line.contains("source tls")
            && line.contains("ktls = \"on\"")
            && line.contains("no kTLS")
            && line.contains("ENOENT")
            && line.contains("ktls = \"auto\""),
        "{line}"
    );
}
