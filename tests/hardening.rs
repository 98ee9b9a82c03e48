//! Faults and hostile inputs found by review and by trying real clients
//! (issue 9): each test here failed before its fix.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use e2e::client::{client_config, close, connect, octet_frame};
use e2e::loopback;
use e2e::server::{count_lines, free_port, temp_dir, Launch, Server};
use e2e::trust_pki::{Ca, LeafSpec};

/// The tests here measure CPU and hold many sockets: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A one-TLS-source config with the given CA, server cert/key and extra
/// source options.
fn tls_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
    port: u16,
    stats: u16,
    extra: &str,
    extra_top: &str,
) -> String {
    format!(
        r#"shards = 2
drain_timeout_ms = 3000
{extra_top}
[[source]]
name = "tls"
listen = "127.0.0.1:{port}"
transport = "tls"
framing = "auto"
handshake_timeout_ms = 1500
{extra}
[source.tls]
cert_file = "{}"
key_file = "{}"
ca_file = "{}"
peer_verify = "required-trusted"

[[destination]]
name = "messages"
type = "file"
path = "data/messages.log"
format = "json"
fsync = "never"

[stats]
listen = "127.0.0.1:{stats}"
"#,
        cert.display(),
        key.display(),
        ca.display()
    )
}

/// Sends `line` through `openssl s_client` with `args`; returns its exit status and stderr.
fn openssl_send(port: u16, args: &[&str], line: &str) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-no_ign_eof", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (tests/install-deps.sh)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(line.as_bytes())
        .expect("write to openssl");
    let out = child.wait_with_output().expect("openssl exits");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `openssl s_client -max_send_frag 512` with a 26 KiB client certificate
/// (400 DNS names): its Certificate message spans dozens of records.
#[test]
fn openssl_with_a_26_kib_client_certificate_in_512_byte_records_is_accepted() {
    let _serial = serial();
    let dir = temp_dir("fragmented-handshake");
    let pki = dir.join("pki");
    let ca = Ca::new("Fragment CA");
    let ca_file = ca.write(&pki.join("ca.pem"));
    let (cert, key) = ca.issue(&LeafSpec::server(1)).write(&pki, "server");
    let mut big = LeafSpec::client("big-client", 2);
    big.dns_sans = (0..400)
        .map(|i| format!("host-{i:04}.a-rather-long-subdomain-name-for-testing.example.org"))
        .collect();
    let (ccert, ckey) = ca.issue(&big).write(&pki, "big-client");
    let der_bytes = std::fs::read_to_string(&ccert).expect("cert").len() * 3 / 4;
    assert!(der_bytes > 24 * 1024, "certificate is {der_bytes} bytes");
    let (port, stats) = (free_port(), free_port());
    let server = Server::start(
        &dir,
        &tls_config(&ca_file, &cert, &key, port, stats, "", ""),
    );
    let client_args = |frag: Option<&'static str>| {
        let mut a = vec![
            "-CAfile".to_string(),
            ca_file.display().to_string(),
            "-cert".to_string(),
            ccert.display().to_string(),
            "-key".to_string(),
            ckey.display().to_string(),
        ];
        if let Some(f) = frag {
            a.extend(["-max_send_frag".to_string(), f.to_string()]);
        }
        a
    };
    for (i, frag) in [Some("512"), None, Some("1024")].into_iter().enumerate() {
        let args = client_args(frag);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, err) = openssl_send(
            port,
            &args,
            &format!("<14>1 - host app - - - fragmented handshake {i}\n"),
        );
        assert!(ok, "openssl with -max_send_frag {frag:?} failed: {err}");
    }
    let out = dir.join("data/messages.log");
    let start = std::time::Instant::now();
    while count_lines(&out) < 3 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    for i in 0..3 {
        assert!(
            text.contains(&format!("fragmented handshake {i}")),
            "message {i} missing ({} lines written); stderr:\n{}",
            text.lines().count(),
            server.stderr()
        );
    }
    assert!(
        text.contains("big-client"),
        "identity on the JSON line: {text}"
    );
    assert_eq!(server.metric("ringest_handshake_failures_total"), 0);
    assert!(server.stop().success());
}

fn pki_config(dir: &Path, port: u16, stats: u16, extra: &str) -> (e2e::pki::Pki, String) {
    let pki = e2e::pki::Pki::generate(&dir.join("pki"));
    let cfg = tls_config(
        &pki.ca,
        &pki.server_cert,
        &pki.server_key,
        port,
        stats,
        extra,
        "",
    );
    (pki, cfg)
}

fn good_client_sends(pki: &e2e::pki::Pki, port: u16, text: &str) {
    let cfg = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    let mut s = connect(loopback(port), cfg).expect("good client connects");
    let mut buf = Vec::new();
    octet_frame(
        &mut buf,
        format!("<14>1 - host good - - - {text}").as_bytes(),
    );
    s.write_all(&buf).expect("write");
    close(s).expect("clean close");
}

fn wait_for_text(path: &Path, text: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(text)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// An established connection that sends nothing for `idle_timeout_ms` is
/// closed, keeping what it sent.
#[test]
fn idle_timeout_closes_a_silent_connection_after_its_messages() {
    let _serial = serial();
    let dir = temp_dir("idle-timeout");
    let (port, stats) = (free_port(), free_port());
    let (pki, cfg) = pki_config(&dir, port, stats, "idle_timeout_ms = 300\n");
    let server = Server::start(&dir, &cfg);
    let ccfg = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    let mut s = connect(loopback(port), ccfg).expect("connect");
    let mut buf = Vec::new();
    octet_frame(&mut buf, b"<14>1 - host idle - - - before going quiet");
    s.write_all(&buf).expect("write");
    s.flush().expect("flush");
    assert_eq!(
        server.wait_metric(
            "ringest_connection_errors_total{source=\"tls\",reason=\"idle_timeout\"",
            1,
            Duration::from_secs(5)
        ),
        1
    );
    assert!(wait_for_text(
        &dir.join("data/messages.log"),
        "before going quiet",
        Duration::from_secs(5)
    ));
    let mut rest = Vec::new();
    s.sock
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.sock.read_to_end(&mut rest);
    assert_eq!(
        server.metric("ringest_connections_active{source=\"tls\"}"),
        0
    );
    assert!(server.stop().success());
}

/// A panic in a shard outside any connection's guard (injected in debug
/// builds) stops the process with a non-zero status and a clear message,
/// instead of leaving the writer waiting for the dead shard forever.
#[test]
fn a_shard_that_panics_stops_the_engine_non_zero() {
    let _serial = serial();
    let dir = temp_dir("shard-panic");
    let (port, stats) = (free_port(), free_port());
    let (pki, cfg) = pki_config(&dir, port, stats, "");
    let launch = Launch {
        env: vec![("RINGEST_FAULT_SHARD_PANIC_AFTER_ACCEPTS".into(), "1".into())],
        nofile: None,
    };
    let mut server = Server::start_with(&dir, &cfg, &launch);
    let ccfg = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    let _ = connect(loopback(port), ccfg);
    let status = server.wait_exit(Duration::from_secs(15));
    let err = server.stderr();
    let status = status.unwrap_or_else(|| panic!("still running 15 s after a shard died:\n{err}"));
    assert!(!status.success(), "exit status {status}");
    assert!(err.contains("a shard panicked"), "stderr:\n{err}");
}

/// Under `ulimit -n 256`, 400 idle connections exhaust the descriptors:
/// accepts back off instead of spinning (CPU stays low), the log line is
/// rate-limited, start-up warned with the numbers, and a good client is
/// served once the others close.
#[test]
fn emfile_backs_off_quietly_and_serves_again_when_descriptors_return() {
    let _serial = serial();
    let dir = temp_dir("emfile");
    let (port, stats) = (free_port(), free_port());
    let (pki, cfg) = pki_config(&dir, port, stats, "");
    let cfg = cfg.replace(
        "handshake_timeout_ms = 1500",
        "handshake_timeout_ms = 60000",
    );
    let launch = Launch {
        env: Vec::new(),
        nofile: Some(256),
    };
    let server = Server::start_with(&dir, &cfg, &launch);
    let mut idle = Vec::new();
    for _ in 0..400 {
        match std::net::TcpStream::connect_timeout(&loopback(port), Duration::from_secs(2)) {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    assert!(idle.len() >= 300, "only {} connections opened", idle.len());
    std::thread::sleep(Duration::from_millis(500));
    let cpu_before = server.cpu_seconds();
    let window = Duration::from_secs(3);
    std::thread::sleep(window);
    let cpu = server.cpu_seconds() - cpu_before;
    let err = server.stderr();
    let accept_lines = err.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        cpu < 0.3 * window.as_secs_f64(),
        "server used {cpu:.2} CPU-s in {window:?} while out of descriptors \
         ({accept_lines} accept-failure log lines)"
    );
    assert!(
        server.metric("ringest_accept_errors_total{source=\"tls\",reason=\"emfile\"") > 0,
        "no EMFILE counted"
    );
    // 2 shards, at most one line per shard per second (+1 for the window edges).
    assert!(
        accept_lines <= 2 * 6,
        "{accept_lines} accept-failure log lines"
    );
    assert!(
        err.contains("open file limit 256"),
        "start-up warning:\n{err}"
    );
    drop(idle);
    good_client_sends(&pki, port, "served after EMFILE");
    assert!(wait_for_text(
        &dir.join("data/messages.log"),
        "served after EMFILE",
        Duration::from_secs(10)
    ));
    assert!(server.stop().success());
}

/// (messages sent, per second) by a mutual-TLS client from `local` sending
/// as fast as it can for `window`.
fn good_rate(
    pki: &e2e::pki::Pki,
    port: u16,
    local: std::net::IpAddr,
    window: Duration,
) -> (u64, f64) {
    let cfg = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&std::net::SocketAddr::new(local, 0).into())
        .expect("bind the good client's address");
    sock.connect(&loopback(port).into()).expect("connect");
    let tcp: std::net::TcpStream = sock.into();
    tcp.set_nodelay(true).expect("nodelay");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(cfg, name).expect("client");
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("handshake");
    }
    let mut batch = Vec::new();
    for i in 0..100 {
        octet_frame(
            &mut batch,
            format!("<14>1 - good app - - - rate probe {i:03} padding padding padding").as_bytes(),
        );
    }
    let start = Instant::now();
    let mut sent = 0u64;
    // Bounded by time and count.
    while start.elapsed() < window && sent < 50_000_000 {
        s.write_all(&batch).expect("good client writes");
        sent += 100;
    }
    let rate = sent as f64 / start.elapsed().as_secs_f64();
    close(s).expect("close");
    (sent, rate)
}

/// 5,000 connections from one address that open TCP and never start a
/// handshake, while a good client with a certificate sends at full rate
/// from another address: past `max_connections_per_ip` the attacker's
/// connections are closed at once, the rest by `handshake_timeout_ms`,
/// each counted by reason, and the good client is served throughout with
/// every message written. Its rate with and without the attack is printed,
/// not asserted: on a shared 2-core machine the same run varied from 0.57×
/// to 1.32× (timed assertions are for benchmarks, not tests).
#[test]
fn one_address_cannot_exhaust_max_connections() {
    let _serial = serial();
    let dir = temp_dir("per-ip");
    let (port, stats) = (free_port(), free_port());
    let (pki, cfg) = pki_config(
        &dir,
        port,
        stats,
        "max_connections = 1000\nmax_connections_per_ip = 100\n",
    );
    let server = Server::start(&dir, &cfg);
    let good: std::net::IpAddr = "127.0.0.2".parse().expect("ip");
    let window = Duration::from_secs(2);
    let (sent_alone, baseline) = good_rate(&pki, port, good, window);

    // The attack: 5,000 bare TCP connections from 127.0.0.1, held open.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attacker = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for _ in 0..5_000 {
                if let Ok(s) =
                    std::net::TcpStream::connect_timeout(&loopback(port), Duration::from_secs(2))
                {
                    held.push(s);
                }
            }
            let opened = held.len();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
            }
            opened
        })
    };
    // Measure while the attack connections are opened and held.
    std::thread::sleep(Duration::from_millis(200));
    let (sent_attacked, under_attack) = good_rate(&pki, port, good, window);
    stop.store(true, std::sync::atomic::Ordering::Release);
    let opened = attacker.join().expect("attacker");
    eprintln!(
        "good client: {baseline:.0} msg/s alone, {under_attack:.0} msg/s under attack ({:.2}); \
         attacker opened {opened}",
        under_attack / baseline
    );
    assert!(opened >= 4_000, "attacker opened only {opened}");
    let refused = server.wait_metric(
        "ringest_connections_refused_total{source=\"tls\",limit=\"max_connections_per_ip\"",
        4_000,
        Duration::from_secs(10),
    );
    assert!(refused >= 4_000, "refused by the per-IP limit: {refused}");
    let timed_out = server.wait_metric(
        "ringest_handshake_failures_total{source=\"tls\",reason=\"handshake_timeout\"",
        1,
        Duration::from_secs(5),
    );
    assert!(timed_out >= 1, "handshake timeouts: {timed_out}");
    assert_eq!(
        server.metric("ringest_connections_refused_total{source=\"tls\",limit=\"max_connections\""),
        0,
        "the source-wide limit was never reached"
    );
    let sent = sent_alone + sent_attacked;
    assert_eq!(
        server.wait_metric(
            "ringest_messages_written_total{source=\"tls\"}",
            sent,
            Duration::from_secs(20)
        ),
        sent,
        "every message of the good client written"
    );
    assert!(server.stop().success());
}
