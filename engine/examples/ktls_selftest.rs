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

// ---------------------------------------------------------------- cases

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ServerReads {
    /// Header, then exactly the body: nothing past the handshake is read.
    RecordExact,
    /// Whatever the socket has, up to GREEDY_READ_BYTES: the records after
    /// Finished are decrypted in userspace and the tail of a cut record is
    /// read exactly before the switch.
    Greedy,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Twist {
    None,
    /// The client writes its first messages before the handshake ends, so
    /// they leave in the same flight as its Finished.
    EarlyWrite,
    /// KeyUpdate after this many messages, then the rest.
    KeyUpdateAfter(usize),
    /// Raw bytes on the TCP stream after this many messages.
    GarbageAfter(usize),
}

struct Case {
    name: String,
    version: &'static SupportedProtocolVersion,
    suite: SupportedCipherSuite,
    rsa: bool,
    reads: ServerReads,
    twist: Twist,
    /// Run a full handshake first, so this connection resumes. A resumed
    /// TLS 1.2 handshake ends with the client's Finished, which the client
    /// may send together with its first records: the TLS 1.2 leftover path.
    resume: bool,
    messages: usize,
}

fn cases(messages: usize) -> Vec<Case> {
    let mut v = Vec::new();
    let case = |name: &str, version, suite, rsa, reads, twist| Case {
        name: name.to_string(),
        version,
        suite,
        rsa,
        reads,
        twist,
        resume: false,
        messages,
    };
    use ServerReads::*;
    use Twist::None as Plain;
    let t13 = &rustls::version::TLS13;
    let t12 = &rustls::version::TLS12;
    v.push(case(
        "tls1.3 aes128gcm ecdsa",
        t13,
        cs::TLS13_AES_128_GCM_SHA256,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.3 aes256gcm ecdsa",
        t13,
        cs::TLS13_AES_256_GCM_SHA384,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.3 chacha20 ecdsa",
        t13,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.3 aes128gcm rsa",
        t13,
        cs::TLS13_AES_128_GCM_SHA256,
        true,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-ecdsa-aes128gcm",
        t12,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-ecdsa-aes256gcm",
        t12,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-ecdsa-chacha20",
        t12,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-rsa-aes128gcm",
        t12,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        true,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-rsa-aes256gcm",
        t12,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        true,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-rsa-chacha20",
        t12,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        true,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.3 leftover (greedy reads)",
        t13,
        cs::TLS13_AES_128_GCM_SHA256,
        false,
        Greedy,
        Twist::EarlyWrite,
    ));
    v.push(Case {
        resume: true,
        ..case(
            "tls1.2 leftover (greedy reads, resumed)",
            t12,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            true,
            Greedy,
            Twist::EarlyWrite,
        )
    });
    v.push(case(
        "tls1.3 keyupdate",
        t13,
        cs::TLS13_AES_128_GCM_SHA256,
        false,
        RecordExact,
        Twist::KeyUpdateAfter(messages / 2),
    ));
    v.push(case(
        "tls1.3 garbage after handshake",
        t13,
        cs::TLS13_AES_256_GCM_SHA384,
        false,
        RecordExact,
        Twist::GarbageAfter(messages / 2),
    ));
    v.push(case(
        "tls1.2 garbage after handshake",
        t12,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        false,
        RecordExact,
        Twist::GarbageAfter(messages / 2),
    ));
    v
}

/// Message `i`, RFC 5424 with octet counting; lengths vary from ~60 to ~460
/// bytes so records hold different numbers of messages.
fn message(i: usize) -> Vec<u8> {
    let body = format!(
        "<13>1 2026-11-01T00:00:00Z host ktls-selftest {i} - - msg {i:06} {}",
        "x".repeat(i * 37 % 400)
    );
    format!("{} {}", body.len(), body).into_bytes()
}

fn messages_bytes(range: std::ops::Range<usize>) -> Vec<u8> {
    range.flat_map(message).collect()
}

/// How many messages the client writes per `write()` (one rustls record
/// per write, split at 16 KiB): small and large records alternate.
const WRITE_BATCHES: [usize; 6] = [1, 1, 3, 50, 1, 120];

// ---------------------------------------------------------------- PKI

struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Identity {
    fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

struct Pki {
    roots: Arc<RootCertStore>,
    server_ecdsa: Identity,
    server_rsa: Identity,
    client: Identity,
}

impl Pki {
    fn new() -> Self {
        // The workspace's one test PKI builder.
        let ca = testkit::Ca::new("ktls selftest CA");
        let identity = |spec: testkit::LeafSpec| {
            let leaf = ca.issue(&spec);
            Identity {
                chain: vec![CertificateDer::from(leaf.cert_der)],
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der)),
            }
        };
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(ca.der())).expect("root");
        Pki {
            roots: Arc::new(roots),
            server_ecdsa: identity(testkit::LeafSpec::server(1)),
            server_rsa: identity(testkit::LeafSpec {
                alg: testkit::KeyAlg::Rsa2048,
                ..testkit::LeafSpec::server(2)
            }),
            client: identity(testkit::LeafSpec::client("client.example", 3)),
        }
    }
}

fn provider_with(suite: SupportedCipherSuite) -> Arc<CryptoProvider> {
    let mut p = provider::default_provider();
    p.cipher_suites = vec![suite];
    Arc::new(p)
}

fn server_config(case: &Case, pki: &Pki) -> Result<Arc<ServerConfig>, String> {
    let provider = provider_with(case.suite);
    let verifier = WebPkiClientVerifier::builder_with_provider(pki.roots.clone(), provider.clone())
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    let id = if case.rsa {
        &pki.server_rsa
    } else {
        &pki.server_ecdsa
    };
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[case.version])
        .map_err(|e| format!("server versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.key())
        .map_err(|e| format!("server cert: {e}"))?;
    // Required by dangerous_into_kernel_connection.
    cfg.enable_secret_extraction = true;
    Ok(Arc::new(cfg))
}

fn client_config(case: &Case, pki: &Pki) -> Result<Arc<ClientConfig>, String> {
    let cfg = ClientConfig::builder_with_provider(provider_with(case.suite))
        .with_protocol_versions(&[case.version])
        .map_err(|e| format!("client versions: {e}"))?
        .with_root_certificates(pki.roots.clone())
        .with_client_auth_cert(pki.client.chain.clone(), pki.client.key())
        .map_err(|e| format!("client cert: {e}"))?;
    Ok(Arc::new(cfg))
}

// ---------------------------------------------------------------- client

#[derive(Default, Debug)]
struct ClientReport {
    /// The server's close_notify arrived (our kernel TX path works).
    saw_server_close_notify: bool,
    error: Option<String>,
}

fn run_client(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    twist: Twist,
    messages: usize,
) -> ClientReport {
    let mut report = ClientReport::default();
    if let Err(e) = client_inner(addr, cfg, twist, messages, &mut report) {
        report.error = Some(e.to_string());
    }
    report
}

fn client_inner(
    addr: SocketAddr,
    cfg: Arc<ClientConfig>,
    twist: Twist,
    messages: usize,
    report: &mut ClientReport,
) -> io::Result<()> {
    let sock = TcpStream::connect(addr)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(Duration::from_millis(SOCKET_TIMEOUT_MS)))?;
    let name = ServerName::try_from("localhost").expect("name");
    let conn = ClientConnection::new(cfg, name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, sock);
    let mut next = 0;
    if twist == Twist::EarlyWrite {
        // Buffered by rustls until the handshake is done, then sent right
        // behind Finished, in the same write.
        let early = 40.min(messages);
        tls.conn.writer().write_all(&messages_bytes(0..early))?;
        next = early;
    }
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    let mut batch = 0;
    while next < messages {
        if let Twist::KeyUpdateAfter(k) = twist {
            if next == k {
                tls.flush()?;
                tls.conn.refresh_traffic_keys().map_err(io::Error::other)?;
            }
        }
        if let Twist::GarbageAfter(k) = twist {
            if next == k {
                tls.flush()?;
                tls.sock.write_all(GARBAGE)?;
                break;
            }
        }
        let mut end = (next + WRITE_BATCHES[batch % WRITE_BATCHES.len()]).min(messages);
        if let Twist::KeyUpdateAfter(k) | Twist::GarbageAfter(k) = twist {
            if next < k {
                end = end.min(k);
            }
        }
        tls.write_all(&messages_bytes(next..end))?;
        next = end;
        batch += 1;
    }
    if !matches!(twist, Twist::GarbageAfter(_)) {
        tls.conn.send_close_notify();
        tls.flush()?;
    }
    // Wait for the server's close_notify, sent by its kernel.
    let mut sink = Vec::new();
    match tls.read_to_end(&mut sink) {
        Ok(_) => report.saw_server_close_notify = true,
        Err(e) => return Err(e),
    }
    Ok(())
}

// ---------------------------------------------------------------- server

/// What the handshake left for the switch.
struct Handoff {
    /// Plaintext rustls decrypted past the handshake: it goes to the framer
    /// before the first kernel read.
    plaintext: Vec<u8>,
    /// Records rustls decrypted after the handshake.
    userspace_records: usize,
    /// Bytes read with an exact length to finish a record cut by a read.
    boundary_reads_bytes: usize,
}

fn read_exact_or_err(sock: &mut TcpStream, buf: &mut [u8]) -> Result<(), String> {
    sock.read_exact(buf)
        .map_err(|e| format!("handshake read: {e}"))
}

/// Drives an UnbufferedServerConnection to the end of the handshake and to a
/// record boundary, through the engine's handshake driver; only the reads
/// (record-exact or greedy) and writes are this example's.
fn server_handshake(
    sock: &mut TcpStream,
    conn: &mut UnbufferedServerConnection,
    reads: ServerReads,
) -> Result<Handoff, String> {
    let mut incoming = vec![0u8; HANDSHAKE_BUF_BYTES];
    let mut filled = 0usize;
    let mut outgoing = Vec::new();
    let mut handoff = Handoff {
        plaintext: Vec::new(),
        userspace_records: 0,
        boundary_reads_bytes: 0,
    };
    loop {
        // Only reachable after the handshake: records that arrived with
        // Finished. rustls has already advanced its read seq.
        let (plaintext, records) = (&mut handoff.plaintext, &mut handoff.userspace_records);
        let d = driver::drive(
            conn,
            &mut incoming[..filled],
            &mut outgoing,
            &mut |p: &[u8]| {
                plaintext.extend_from_slice(p);
                *records += 1;
                Ok::<(), Infallible>(())
            },
        );
        if !outgoing.is_empty() {
            sock.write_all(&outgoing)
                .map_err(|e| format!("handshake write: {e}"))?;
            outgoing.clear();
        }
        incoming.copy_within(d.consumed..filled, 0);
        filled -= d.consumed;
        let progress = d.result.map_err(|e| match e {
            DriveError::Tls(e) => format!("handshake: {e}"),
            DriveError::Record(e) => format!("leftover record: {e}"),
            DriveError::Encode(e) => format!("encode: {e:?}"),
            DriveError::Plain(never) => match never {},
        })?;
        match progress {
            Progress::Traffic => {
                // The handshake is over and every whole record has been
                // processed; what is left is at most the start of one record.
                let b = ktls::record_boundary(&incoming[..filled]).map_err(|e| e.to_string())?;
                assert_eq!(b.whole_bytes, 0, "rustls leaves no whole record behind");
                if b.is_aligned() {
                    return Ok(handoff);
                }
                // Finish the cut record with an exact read, then let rustls
                // decrypt it: the kernel cannot take over mid-record.
                let end = filled + b.missing_bytes;
                read_exact_or_err(sock, &mut incoming[filled..end])?;
                handoff.boundary_reads_bytes += b.missing_bytes;
                filled = end;
            }
            Progress::NeedMore => match reads {
                ServerReads::RecordExact => {
                    let b =
                        ktls::record_boundary(&incoming[..filled]).map_err(|e| e.to_string())?;
                    let want = if b.missing_bytes > 0 {
                        b.missing_bytes
                    } else {
                        ringest::record::HEADER_LEN
                    };
                    let end = filled + want;
                    if end > incoming.len() {
                        return Err("handshake record larger than the buffer".into());
                    }
                    read_exact_or_err(sock, &mut incoming[filled..end])?;
                    filled = end;
                }
                ServerReads::Greedy => {
                    let end = (filled + GREEDY_READ_BYTES).min(incoming.len());
                    let n = sock
                        .read(&mut incoming[filled..end])
                        .map_err(|e| format!("handshake read: {e}"))?;
                    if n == 0 {
                        return Err("EOF during the handshake".into());
                    }
                    filled += n;
                }
            },
            Progress::PeerClosed | Progress::Closed => {
                return Err("peer closed during the handshake".into())
            }
        }
    }
}

/// How the kernel-side read loop ended.
#[derive(Debug)]
enum End {
    Control(ControlRecord, ControlAction),
    ControlParseError(String),
    Eof,
    ReadError(io::Error),
}

struct KernelRead {
    plaintext: Vec<u8>,
    controls: Vec<ControlRecord>,
    rekeys: usize,
    end: End,
    /// What the kernel did on the read after a KeyUpdate it cannot follow.
    after_unfollowed_key_update: Option<String>,
}

fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EBADMSG) => "EBADMSG".into(),
        Some(libc::EIO) => "EIO".into(),
        Some(libc::EINVAL) => "EINVAL".into(),
        Some(libc::EMSGSIZE) => "EMSGSIZE".into(),
        Some(libc::EKEYEXPIRED) => "EKEYEXPIRED".into(),
        Some(libc::ECONNRESET) => "ECONNRESET".into(),
        Some(libc::EAGAIN) => "EAGAIN (timeout)".into(),
        _ => e.to_string(),
    }
}

fn kernel_read_loop(
    sock: &mut TcpStream,
    kconn: &mut rustls::kernel::KernelConnection<rustls::server::ServerConnectionData>,
    support: &KtlsSupport,
) -> KernelRead {
    let fd = sock.as_raw_fd();
    let version = ktls::KtlsVersion::from_rustls(kconn.protocol_version()).expect("1.2 or 1.3");
    let mut out = KernelRead {
        plaintext: Vec::new(),
        controls: Vec::new(),
        rekeys: 0,
        end: End::Eof,
        after_unfollowed_key_update: None,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut record = vec![0u8; ktls::CONTROL_RECORD_BYTES_MIN + 1024];
    // The engine's policy on control records, with its limits.
    let mut budget = ringest::record::ControlBudget::new(&ringest::record::ReaderLimits::default());
    loop {
        match sock.read(&mut buf) {
            Ok(0) => {
                out.end = End::Eof;
                return out;
            }
            Ok(n) => {
                budget.on_data();
                out.plaintext.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                // Not application data: fetch the record with its type.
                let (content_type, n) = match ktls::recv_record(fd, &mut record) {
                    Ok(r) => r,
                    Err(e) => {
                        out.end = End::ReadError(e);
                        return out;
                    }
                };
                if content_type == ktls::CONTENT_TYPE_APPLICATION_DATA {
                    out.plaintext.extend_from_slice(&record[..n]);
                    continue;
                }
                let rec = match ktls::parse_control_record(content_type, &record[..n]) {
                    Ok(rec) => rec,
                    Err(e) => {
                        out.end = End::ControlParseError(e.to_string());
                        let _ = ktls::send_alert(fd, 2, 10); // unexpected_message
                        return out;
                    }
                };
                out.controls.push(rec);
                let action = ktls::action_for(&rec, version, support.tls13_rekey, &mut budget);
                match action {
                    ControlAction::Ignore => continue,
                    ControlAction::Rekey { .. } => {
                        let installed = kconn
                            .update_rx_secret()
                            .map_err(|e| io::Error::other(e.to_string()))
                            .and_then(|(seq, secrets)| {
                                let rx = CryptoInfo::new(kconn.protocol_version(), seq, &secrets)
                                    .map_err(io::Error::other)?;
                                ktls::set_rx(fd, &rx)
                            });
                        if let Err(e) = installed {
                            out.end = End::ReadError(e);
                            return out;
                        }
                        out.rekeys += 1;
                        continue;
                    }
                    ControlAction::CloseRekeyUnsupported => {
                        // Close at once: the kernel has not touched the next
                        // record (under the peer's new key) yet, so the
                        // socket is still sound and close_notify goes out.
                        let sent = match ktls::send_close_notify(fd) {
                            Ok(()) => "close_notify sent".to_string(),
                            Err(e) => format!("close_notify failed: {}", errno_text(&e)),
                        };
                        // Then, to document this kernel: what one more read
                        // does with the record under the new key.
                        let next = match sock.read(&mut buf) {
                            Ok(0) => "next read: EOF".to_string(),
                            Ok(n) => format!("next read: {n} bytes (!)"),
                            Err(e) => format!("next read: {}", errno_text(&e)),
                        };
                        out.after_unfollowed_key_update = Some(format!("{sent}, then {next}"));
                    }
                    ControlAction::Finish => {
                        // Every byte before close_notify has been read.
                        if let Err(e) = ktls::send_close_notify(fd) {
                            out.end = End::ReadError(e);
                            return out;
                        }
                    }
                    ControlAction::CloseAlert { .. } | ControlAction::CloseProtocolError(_) => {}
                }
                out.end = End::Control(rec, action);
                return out;
            }
            Err(e) => {
                out.end = End::ReadError(e);
                return out;
            }
        }
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
