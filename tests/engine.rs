//! End-to-end: the real binary on loopback with a generated PKI.

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

use e2e::client::{client_config, close, connect, octet_frame};
use e2e::pki::Pki;
use e2e::server::{bin, count_lines, free_port, temp_dir, Server};
use e2e::{basic_config, loopback};

const CONNS: usize = 8;
const PER_CONN: usize = 12_500;

fn start(name: &str) -> (Server, Pki, u16, u16) {
    let dir = temp_dir(name);
    let pki = Pki::generate(&dir.join("pki"));
    let (tls, tcp, stats) = (free_port(), free_port(), free_port());
    let cfg = basic_config(&pki, loopback(tls), loopback(tcp), loopback(stats), "");
    (Server::start(&dir, &cfg), pki, tls, tcp)
}

/// Sends `count` messages `c=<conn> s=<seq> <padding>` on one TLS connection, in records of `per_write`.
fn send_numbered(
    addr: std::net::SocketAddr,
    pki: &Pki,
    conn: usize,
    count: usize,
    per_write: usize,
) {
    let cfg = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    let mut s = connect(addr, cfg).expect("connect");
    let mut buf = Vec::with_capacity(per_write * 320);
    for seq in 0..count {
        let msg = format!(
            "<14>1 2026-11-26T00:00:00Z host app - - - c={conn} s={seq} {}",
            "x".repeat(200)
        );
        octet_frame(&mut buf, msg.as_bytes());
        if (seq + 1) % per_write == 0 || seq + 1 == count {
            s.write_all(&buf).expect("write");
            buf.clear();
        }
    }
    close(s).expect("clean close");
}

#[test]
fn tls_100k_messages_over_8_connections_arrive_complete_and_in_order() {
    let (server, pki, tls, _) = start("tls100k");
    let threads: Vec<_> = (0..CONNS)
        .map(|c| {
            let pki = pki.clone();
            std::thread::spawn(move || {
                send_numbered(
                    loopback(tls),
                    &pki,
                    c,
                    PER_CONN,
                    if c % 2 == 0 { 50 } else { 1 },
                )
            })
        })
        .collect();
    for t in threads {
        t.join().expect("sender");
    }
    let total = (CONNS * PER_CONN) as u64;
    let written = server.wait_metric(
        "ringest_messages_written_total{source=\"tls\"",
        total,
        Duration::from_secs(30),
    );
    assert_eq!(written, total);
    let dir = server.dir.clone();
    assert!(server.stop().success());
    let text = std::fs::read_to_string(dir.join("data/messages.log")).expect("output");
    let mut next: HashMap<usize, usize> = HashMap::new();
    let mut lines = 0;
    for line in text.lines() {
        lines += 1;
        let mut it = line.split(' ').skip(7);
        let c: usize = it
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .and_then(|v| v.parse().ok())
            .expect("conn id");
        let s: usize = it
            .next()
            .and_then(|f| f.strip_prefix("s="))
            .and_then(|v| v.parse().ok())
            .expect("seq");
        let want = next.entry(c).or_insert(0);
        assert_eq!(s, *want, "connection {c}: out of order or missing");
        *want += 1;
    }
    assert_eq!(lines, CONNS * PER_CONN);
    assert!(next.values().all(|&n| n == PER_CONN));
}

fn s_client(port: u16, pki: &Pki, with_cert: bool, input: &str) -> std::process::Output {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-quiet",
        "-no_ign_eof",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-CAfile",
    ])
    .arg(&pki.ca);
    if with_cert {
        cmd.arg("-cert")
            .arg(&pki.client_cert)
            .arg("-key")
            .arg(&pki.client_key);
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl s_client (install openssl)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).expect("stdin write");
    // Keep stdin open briefly so s_client finishes the handshake and sends before EOF.
    std::thread::sleep(Duration::from_millis(500));
    drop(stdin);
    child.wait_with_output().expect("s_client")
}

#[test]
fn openssl_s_client_with_client_cert_is_accepted_and_without_is_refused() {
    let (server, pki, tls, _) = start("s_client");
    s_client(tls, &pki, true, "<14>1 - host app - - - with-cert\n");
    assert_eq!(
        server.wait_metric(
            "ringest_messages_written_total{source=\"tls\"",
            1,
            Duration::from_secs(10)
        ),
        1
    );
    s_client(tls, &pki, false, "<14>1 - host app - - - without-cert\n");
    let failures = server.wait_metric(
        "ringest_handshake_failures_total{source=\"tls\"",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(failures, 1, "the refusal is counted");
    assert_eq!(
        server.metric("ringest_messages_written_total{source=\"tls\""),
        1
    );
    let stderr = server.stderr();
    assert!(
        stderr.contains("127.0.0.1:") && stderr.contains("refused"),
        "refusal logged with peer: {stderr}"
    );
    let dir = server.dir.clone();
    assert!(server.stop().success());
    let out = std::fs::read_to_string(dir.join("data/messages.log")).expect("output");
    assert_eq!(out, "<14>1 - host app - - - with-cert\n");
}

#[test]
fn sigterm_after_clean_close_loses_nothing() {
    let (server, pki, tls, _) = start("sigterm");
    let n = 20_000;
    send_numbered(loopback(tls), &pki, 0, n, 25);
    // No waiting for the writer: SIGTERM right away must still flush everything read.
    let dir = server.dir.clone();
    assert!(server.stop().success());
    assert_eq!(count_lines(&dir.join("data/messages.log")), n);
}

#[test]
fn plain_tcp_octet_counted_and_newline_framing() {
    let (server, _pki, _, tcp) = start("tcp");
    let mut a = std::net::TcpStream::connect(loopback(tcp)).expect("connect");
    a.write_all(b"5 hello6 world!005 zeros").expect("write");
    drop(a);
    let mut b = std::net::TcpStream::connect(loopback(tcp)).expect("connect");
    b.write_all(b"line one\nline two\nunterminated")
        .expect("write");
    drop(b);
    server.wait_metric(
        "ringest_messages_written_total{source=\"tcp\"",
        6,
        Duration::from_secs(10),
    );
    assert_eq!(
        server.metric("ringest_frames_leading_zero_total{source=\"tcp\""),
        1
    );
    let dir = server.dir.clone();
    assert!(server.stop().success());
    let mut lines: Vec<String> = std::fs::read_to_string(dir.join("data/messages.log"))
        .expect("out")
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "hello",
            "line one",
            "line two",
            "unterminated",
            "world!",
            "zeros"
        ]
    );
}

#[test]
fn check_config_names_file_key_and_reason() {
    let dir = temp_dir("checkcfg");
    let cfg = dir.join("bad.toml");
    std::fs::write(
        &cfg,
        "[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\nmax_message_bytes = 0\n[[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x.log\"\n",
    )
    .expect("write");
    let out = Command::new(bin("ringest"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml")
            && err.contains("source[0].max_message_bytes")
            && err.contains("out of range"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        "[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\nbogus = 1\n",
    )
    .expect("write");
    let out = Command::new(bin("ringest"))
        .args(["check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("bogus"), "{err}");
}

#[test]
fn sighup_reopens_output_files_for_logrotate() {
    let (server, pki, tls, _) = start("reopen");
    send_numbered(loopback(tls), &pki, 0, 100, 10);
    server.wait_metric(
        "ringest_messages_written_total{source=\"tls\"",
        100,
        Duration::from_secs(10),
    );
    let log = server.dir.join("data/messages.log");
    let rotated = server.dir.join("data/messages.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    server.signal(libc::SIGHUP);
    // The writer reopens before its next round; wait until the new file exists.
    let start = std::time::Instant::now();
    while !log.exists() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    send_numbered(loopback(tls), &pki, 1, 50, 10);
    server.wait_metric(
        "ringest_messages_written_total{source=\"tls\"",
        150,
        Duration::from_secs(10),
    );
    let dir = server.dir.clone();
    assert!(server.stop().success());
    assert_eq!(
        count_lines(&dir.join("data/messages.log.1")),
        100,
        "old file keeps what was written before"
    );
    assert_eq!(
        count_lines(&dir.join("data/messages.log")),
        50,
        "new file gets what came after SIGHUP"
    );
}

#[test]
fn each_source_feeds_only_its_named_destination() {
    let dir = temp_dir("routing");
    let (a, b, stats) = (free_port(), free_port(), free_port());
    let cfg = format!(
        "[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:{a}\"\ntransport = \"tcp\"\ndestinations = [\"out-a\"]\n\
         [[source]]\nname = \"b\"\nlisten = \"127.0.0.1:{b}\"\ntransport = \"tcp\"\ndestinations = [\"out-b\", \"all\"]\n\
         [[destination]]\nname = \"out-a\"\ntype = \"file\"\npath = \"a.log\"\n\
         [[destination]]\nname = \"out-b\"\ntype = \"file\"\npath = \"b.log\"\nformat = \"json\"\n\
         [[destination]]\nname = \"all\"\ntype = \"file\"\npath = \"all.log\"\n\
         [stats]\nlisten = \"127.0.0.1:{stats}\"\n"
    );
    let server = Server::start(&dir, &cfg);
    for (port, text) in [(a, "from-a\n"), (b, "from-b\n"), (a, "again-a\n")] {
        let mut s = std::net::TcpStream::connect(loopback(port)).expect("connect");
        s.write_all(text.as_bytes()).expect("write");
    }
    assert_eq!(
        server.wait_metric("ringest_messages_written_total", 3, Duration::from_secs(10)),
        3
    );
    assert!(server.stop().success(), "exits cleanly");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let mut got_a: Vec<_> = read("a.log").lines().map(String::from).collect();
    got_a.sort();
    assert_eq!(got_a, ["again-a", "from-a"]);
    assert_eq!(read("all.log"), "from-b\n");
    assert!(
        read("b.log").contains("\"source\":\"b\"")
            && read("b.log").contains("\"message\":\"from-b\"")
    );
    assert_eq!(read("b.log").lines().count(), 1);
}
