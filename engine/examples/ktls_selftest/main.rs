//! ktls_selftest: the kTLS switch end to end, in one process, on loopback.
//!
//! A rustls client (a thread, buffered `ClientConnection`) talks mutual TLS
//! to a server driven exactly as the engine drives one: an
//! `UnbufferedServerConnection`, whose handshake is read so that nothing past
//! it stays in userspace, then `dangerous_into_kernel_connection`,
//! `CryptoInfo`, `ktls::enable`. The server then reads plaintext with plain
//! `read()`, picks control records up with `recv_record` when `read()` fails
//! with EIO, and answers close_notify through the kernel's TX key.
//!
//! Cases: TLS 1.3 × {AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305} and TLS 1.2
//! × the same three × {ECDHE-ECDSA, ECDHE-RSA}; two cases where the client's
//! first records arrive together with its Finished and the server reads
//! greedily (the leftover path); a client KeyUpdate; garbage after the
//! handshake. One line per case, then `N passed, M failed`; exit 1 on any
//! failure.
//!
//! Usage: `ktls_selftest [--require] [--messages N]`. Without kTLS in the
//! kernel it prints "skipped: kernel lacks kTLS" and exits 0, unless
//! `--require` (the guest test passes it). `--handoff-only` runs every
//! handshake and hand-off up to, not including, the setsockopt calls, so the
//! userspace half can be checked on a kernel without kTLS.
//!
//! Files: `cases.rs` (what each case does), `pki.rs` (certificates and
//! configs), `client.rs` (the rustls client thread), `server.rs` (the
//! handshake through the engine's driver, then the kernel's reads); this
//! file runs the cases and checks what each delivered.

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ringest::ktls::{
    self, ControlAction, ControlRecord, CryptoInfo, Decision, KtlsMode, KtlsSupport,
};
use ringest::tls::driver::{self, DriveError, Progress};
use rustls::crypto::aws_lc_rs::{self as provider, cipher_suite as cs};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{UnbufferedServerConnection, WebPkiClientVerifier};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned, SupportedCipherSuite,
    SupportedProtocolVersion,
};

mod cases;
mod client;
mod pki;
mod server;

use cases::*;
use client::*;
use pki::*;
use server::*;

/// Bounds every blocking socket call, so a bug hangs no guest.
const SOCKET_TIMEOUT_MS: u64 = 20_000;
const MESSAGES_DEFAULT: usize = 1000;
/// The greedy cases read at most this much per `read()`, so that a read
/// often ends inside a record.
const GREEDY_READ_BYTES: usize = 3000;
const HANDSHAKE_BUF_BYTES: usize = 64 * 1024;
const GARBAGE: &[u8] = b"GARBAGE, NOT A TLS RECORD\n";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let require = args.iter().any(|a| a == "--require");
    let handoff_only = args.iter().any(|a| a == "--handoff-only");
    let messages = args
        .iter()
        .position(|a| a == "--messages")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse().expect("--messages N"))
        .unwrap_or(MESSAGES_DEFAULT);

    let started = Instant::now();
    let support = KtlsSupport::probe();
    println!("{support}");
    if !support.ulp && !handoff_only {
        if require {
            println!("FAIL: kernel lacks kTLS and --require was given");
            std::process::exit(1);
        }
        println!("skipped: kernel lacks kTLS");
        return;
    }
    for mode in [KtlsMode::Auto, KtlsMode::On] {
        let d13 = ktls::decide(
            mode,
            &support,
            rustls::ProtocolVersion::TLSv1_3,
            cs::TLS13_AES_128_GCM_SHA256,
        );
        let d12 = ktls::decide(
            mode,
            &support,
            rustls::ProtocolVersion::TLSv1_2,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        );
        println!(
            "policy ktls={}: tls1.3 -> {}, tls1.2 -> {}",
            mode.label(),
            d13.label(),
            d12.label()
        );
    }

    let pki = Pki::new();
    println!("pki ready in {} ms", started.elapsed().as_millis());
    let (mut passed, mut failed) = (0, 0);
    for case in cases(messages) {
        let t = Instant::now();
        let result = run_case(&case, &pki, &support, handoff_only);
        let ms = t.elapsed().as_millis();
        match result {
            Ok(summary) => {
                passed += 1;
                println!("PASS {}: {summary} ({ms} ms)", case.name);
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {}: {why} ({ms} ms)", case.name);
            }
        }
    }
    println!("ktls_selftest: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}

fn run_case(
    case: &Case,
    pki: &Pki,
    support: &KtlsSupport,
    handoff_only: bool,
) -> Result<String, String> {
    let server_cfg = server_config(case, pki)?;
    let client_cfg = client_config(case, pki)?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    if case.resume {
        warm_up(&listener, &server_cfg, &client_cfg)?;
    }
    let (twist, messages) = (case.twist, case.messages);
    let client = thread::spawn(move || run_client(addr, client_cfg, twist, messages));

    let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
    sock.set_nodelay(true).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(SOCKET_TIMEOUT_MS)))
        .map_err(|e| e.to_string())?;
    let mut conn = UnbufferedServerConnection::new(server_cfg).map_err(|e| e.to_string())?;
    let handoff = server_handshake(&mut sock, &mut conn, case.reads)?;
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    if resumed != case.resume {
        return Err(format!("handshake kind {:?}", conn.handshake_kind()));
    }

    let version = conn.protocol_version().ok_or("no version")?;
    let suite = conn.negotiated_cipher_suite().ok_or("no suite")?;
    if suite.suite() != case.suite.suite() {
        return Err(format!("negotiated {:?}", suite.suite()));
    }
    // These cases test the kernel path, so `on`: `auto` keeps TLS 1.3 in
    // userspace on a kernel without rekey, and says so.
    let auto = ktls::decide(KtlsMode::Auto, support, version, suite);
    let decision = ktls::decide(KtlsMode::On, support, version, suite);
    if decision != Decision::Offload && !handoff_only {
        return Err(format!("policy says {}", decision.label()));
    }
    let (secrets, mut kconn) = conn
        .dangerous_into_kernel_connection()
        .map_err(|e| format!("into kernel: {e}"))?;
    let (tx_seq, rx_seq) = (secrets.tx.0, secrets.rx.0);
    let tx = CryptoInfo::new(version, tx_seq, &secrets.tx.1).map_err(|e| e.to_string())?;
    let rx = CryptoInfo::new(version, rx_seq, &secrets.rx.1).map_err(|e| e.to_string())?;
    let handoff_note = format!(
        "seq tx {tx_seq} rx {rx_seq}, userspace {} records / {} bytes, boundary read {} bytes, auto: {}",
        handoff.userspace_records,
        handoff.plaintext.len(),
        handoff.boundary_reads_bytes,
        auto.label()
    );
    if case.reads == ServerReads::RecordExact && handoff.userspace_records != 0 {
        return Err(format!(
            "record-exact reads left records in userspace: {handoff_note}"
        ));
    }
    if handoff_only {
        drop(sock);
        let _ = client.join();
        return Ok(format!("handoff only: {handoff_note}"));
    }
    ktls::enable(sock.as_raw_fd(), &tx, &rx).map_err(|e| format!("enable: {}", errno_text(&e)))?;

    let kr = kernel_read_loop(&mut sock, &mut kconn, support);
    drop(sock);
    let report = client
        .join()
        .map_err(|_| "client thread panicked".to_string())?;

    let mut got = handoff.plaintext;
    got.extend_from_slice(&kr.plaintext);
    let controls: Vec<&str> = kr.controls.iter().map(|c| c.label()).collect();
    let lines = count_frames(&got);
    let summary = format!(
        "{lines} msgs {} bytes, controls [{}], rekeys {}, end {}, client {}; {handoff_note}",
        got.len(),
        controls.join(" "),
        kr.rekeys,
        end_text(&kr.end),
        client_text(&report),
    );

    match case.twist {
        Twist::None | Twist::EarlyWrite => {
            let want = messages_bytes(0..messages);
            check_bytes(&got, &want, &summary)?;
            if !matches!(
                kr.end,
                End::Control(ControlRecord::CloseNotify, ControlAction::Finish)
            ) {
                return Err(format!("did not end on close_notify: {summary}"));
            }
            if !report.saw_server_close_notify {
                return Err(format!("client did not get our close_notify: {summary}"));
            }
        }
        Twist::KeyUpdateAfter(k) => {
            if !kr
                .controls
                .iter()
                .any(|c| matches!(c, ControlRecord::KeyUpdate { .. }))
            {
                return Err(format!("no KeyUpdate seen: {summary}"));
            }
            if support.tls13_rekey {
                check_bytes(&got, &messages_bytes(0..messages), &summary)?;
                if kr.rekeys != 1 {
                    return Err(format!("expected one rekey: {summary}"));
                }
            } else {
                // Kernel cannot follow: everything before the KeyUpdate
                // arrived, the connection was closed on purpose.
                check_bytes(&got, &messages_bytes(0..k), &summary)?;
                if !matches!(
                    kr.end,
                    End::Control(_, ControlAction::CloseRekeyUnsupported)
                ) {
                    return Err(format!("expected close_rekey_unsupported: {summary}"));
                }
                return Ok(format!(
                    "{summary}; on this kernel: {}",
                    kr.after_unfollowed_key_update.unwrap_or_default()
                ));
            }
        }
        Twist::GarbageAfter(k) => {
            check_bytes(&got, &messages_bytes(0..k), &summary)?;
            if !matches!(kr.end, End::ReadError(_)) {
                return Err(format!("garbage did not fail the read: {summary}"));
            }
        }
    }
    Ok(summary)
}

/// One full handshake with the same configs, so that the next connection
/// resumes its session (both configs keep their session caches).
fn warm_up(
    listener: &TcpListener,
    server_cfg: &Arc<ServerConfig>,
    client_cfg: &Arc<ClientConfig>,
) -> Result<(), String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let cfg = client_cfg.clone();
    let client = thread::spawn(move || run_client(addr, cfg, Twist::None, 0));
    let (mut sock, _) = listener.accept().map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_millis(SOCKET_TIMEOUT_MS)))
        .map_err(|e| e.to_string())?;
    let mut conn =
        UnbufferedServerConnection::new(server_cfg.clone()).map_err(|e| e.to_string())?;
    server_handshake(&mut sock, &mut conn, ServerReads::RecordExact)?;
    drop(sock);
    // The client ends on an unexpected EOF (no close_notify from us): fine.
    let _ = client.join();
    Ok(())
}

fn check_bytes(got: &[u8], want: &[u8], summary: &str) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let first_diff = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    Err(format!(
        "got {} bytes, want {} (first difference at {first_diff}): {summary}",
        got.len(),
        want.len()
    ))
}

/// Counts octet-counted frames ("LEN SP BODY"); stops at the first bad one.
fn count_frames(mut buf: &[u8]) -> usize {
    let mut n = 0;
    while let Some(sp) = buf.iter().position(|&b| b == b' ') {
        let Some(len) = std::str::from_utf8(&buf[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if buf.len() < sp + 1 + len {
            break;
        }
        buf = &buf[sp + 1 + len..];
        n += 1;
    }
    n
}

fn end_text(end: &End) -> String {
    match end {
        End::Control(rec, action) => format!("{} -> {}", rec, action.label()),
        End::ControlParseError(e) => format!("bad control record: {e}"),
        End::Eof => "EOF".into(),
        End::ReadError(e) => format!("read error {}", errno_text(e)),
    }
}

fn client_text(r: &ClientReport) -> String {
    match (&r.error, r.saw_server_close_notify) {
        (None, true) => "got our close_notify".into(),
        (None, false) => "ok".into(),
        (Some(e), _) => format!("error: {e}"),
    }
}
