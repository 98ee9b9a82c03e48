//! Every hostile input leaves the server alive and other connections
//! unaffected: each case is closed or resynchronised, counted by reason and
//! logged once with the peer address, while a good client keeps sending.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::client::{client_config, close, connect, octet_frame};
use e2e::pki::Pki;
use e2e::server::{count_lines, free_port, temp_dir, Server};
use e2e::{basic_config, loopback};

fn tcp_send(port: u16, bytes: &[u8]) {
    let mut s = TcpStream::connect(loopback(port)).expect("connect");
    s.write_all(bytes).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut sink = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.read_to_end(&mut sink);
}

#[test]
fn hostile_inputs_are_contained_and_counted() {
    let dir = temp_dir("hostile");
    let pki = Pki::generate(&dir.join("pki"));
    let (tls, tcp, stats) = (free_port(), free_port(), free_port());
    let server = Server::start(
        &dir,
        &basic_config(&pki, loopback(tls), loopback(tcp), loopback(stats), ""),
    );

    // A well-behaved TLS client sends throughout, one message every few ms.
    let stop = Arc::new(AtomicBool::new(false));
    let good = {
        let stop = Arc::clone(&stop);
        let cfg = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
        std::thread::spawn(move || {
            let mut s = connect(loopback(tls), cfg).expect("good client connects");
            let mut sent = 0u64;
            while !stop.load(Ordering::Acquire) && sent < 100_000 {
                let mut buf = Vec::new();
                octet_frame(
                    &mut buf,
                    format!("<14>1 - host good - - - seq={sent}").as_bytes(),
                );
                s.write_all(&buf).expect("good client keeps writing");
                s.flush().expect("flush");
                sent += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            close(s).expect("good client closes cleanly");
            sent
        })
    };

    // Framing: not a digit where a header must be (octet-counted already chosen by auto),
    // and digits not ended by a space.
    tcp_send(tcp, b"5 hellofoo");
    tcp_send(tcp, b"4 byes12x 3");
    // Framing: a length that does not fit (25 digits).
    tcp_send(tcp, b"1234567890123456789012345 x");
    // Oversize frame (max 1024 on the tcp source) arriving in pieces, then a normal one:
    // truncated, and the stream resynchronises.
    {
        let mut s = TcpStream::connect(loopback(tcp)).expect("connect");
        s.write_all(b"5000 ").expect("w");
        for _ in 0..50 {
            s.write_all(&[b'o'; 100]).expect("w");
            std::thread::sleep(Duration::from_millis(1));
        }
        s.write_all(b"5 after").expect("w");
        drop(s);
    }
    // Plaintext on the TLS port.
    tcp_send(tls, b"<14>1 - host app - - - plaintext on a tls port\n");
    // Garbage that starts like a TLS record but is not one.
    tcp_send(tls, b"\x16\x03\x01\x00\x05garbage-garbage-garbage");
    // A client certificate from a CA the server does not trust.
    let rogue = client_config(&pki.ca, Some((&pki.rogue_cert, &pki.rogue_key)));
    if let Ok(mut s) = connect(loopback(tls), rogue) {
        // TLS 1.3: the client finishes before the server refuses; its write is lost.
        let _ = s.write_all(b"7 refused");
        let _ = s.flush();
        let mut b = [0u8; 64];
        let _ = s.read(&mut b);
    }
    // Half-open: connects, never speaks. Closed by handshake_timeout_ms (1500 in this config).
    let silent = TcpStream::connect(loopback(tls)).expect("connect");
    // Garbage after a successful handshake: closed with a TLS error.
    {
        let cfg = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
        let mut s = connect(loopback(tls), cfg).expect("connect");
        let mut buf = Vec::new();
        octet_frame(&mut buf, b"<14>1 - host app - - - before-garbage");
        s.write_all(&buf).expect("w");
        s.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(100));
        s.sock
            .write_all(b"\x17\x03\x03\x00\x10not-a-real-record")
            .expect("raw write");
        std::thread::sleep(Duration::from_millis(200));
    }

    let timeout = Duration::from_secs(10);
    let framing =
        |r: &str| format!("ringest_framing_errors_total{{source=\"tcp\",reason=\"{r}\"}}");
    let handshake =
        |r: &str| format!("ringest_handshake_failures_total{{source=\"tls\",reason=\"{r}\"}}");
    // Each hostile case above is counted exactly once, under its own reason.
    let counted_once = [
        (framing("header_not_digit"), "invalid header counted"),
        (framing("missing_space"), "header without space counted"),
        (framing("header_too_long"), "25-digit length counted"),
        (
            "ringest_frames_oversize_total{source=\"tcp\"".to_string(),
            "oversize frame counted",
        ),
        (handshake("not_tls"), "plaintext on TLS port counted"),
        (handshake("unknown_ca"), "rogue CA counted"),
        (
            handshake("handshake_timeout"),
            "half-open closed by timeout",
        ),
    ];
    for (metric, what) in &counted_once {
        assert_eq!(server.wait_metric(metric, 1, timeout), 1, "{what}");
    }
    // Garbage after the handshake: refused by the record layer, under its own reason.
    assert!(
        server.wait_metric(
            "ringest_connection_errors_total{source=\"tls\",reason=\"decrypt_failed\"",
            1,
            timeout
        ) >= 1
    );
    assert!(
        server.metric("ringest_handshake_failures_total{source=\"tls\"") >= 4,
        "the TLS-looking garbage counted too"
    );
    drop(silent);

    stop.store(true, Ordering::Release);
    let sent = good.join().expect("good client");
    assert!(
        sent > 100,
        "the good client kept sending during the attacks ({sent})"
    );
    let tls_good_and_before_garbage = sent + 1;
    assert_eq!(
        server.wait_metric(
            "ringest_messages_written_total{source=\"tls\"",
            tls_good_and_before_garbage,
            timeout
        ),
        tls_good_and_before_garbage,
        "every good message (and the one before the garbage) was written"
    );
    let stderr = server.stderr();
    for needle in ["not TLS", "handshake timeout", "127.0.0.1:"] {
        assert!(stderr.contains(needle), "log lacks {needle:?}:\n{stderr}");
    }
    let dir = server.dir.clone();
    assert!(
        server.stop().success(),
        "server still healthy and exits cleanly"
    );
    let out = std::fs::read_to_string(dir.join("data/messages.log")).expect("output");
    assert!(
        out.lines().any(|l| l == "hello"),
        "frame before the bad header kept"
    );
    assert!(
        out.lines().any(|l| l == "byes"),
        "frame before the bad header kept"
    );
    assert!(
        out.lines().any(|l| l == "after"),
        "stream resynchronised after the oversize frame"
    );
    assert!(
        out.lines()
            .any(|l| l.len() == 1024 && l.bytes().all(|b| b == b'o')),
        "oversize frame truncated to 1024"
    );
    assert!(!out.contains("refused"), "nothing from the refused client");
    assert_eq!(
        count_lines(&dir.join("data/messages.log")) as u64,
        tls_good_and_before_garbage + 4
    );
}
