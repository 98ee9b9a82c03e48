//! A real rustls client in memory against `Conn`, with a fake kTLS
//! socket: the handshake's exact reads, the policy's choice, the switch,
//! and every control-record action, without a kernel that has kTLS.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::OnceLock;

use rustls::crypto::aws_lc_rs::{self as provider, cipher_suite as cs};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, SupportedCipherSuite};

use super::*;
use crate::batch::{Batcher, Ring, WriterWaker};
use crate::framing::{FramingMode, OversizePolicy};
use crate::ktls::{CipherSet, KtlsSupport};

struct TestPki {
    ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = testkit::Ca::new("conn test CA");
        let leaf = ca.issue(&testkit::LeafSpec::server(1));
        TestPki {
            ca: CertificateDer::from(ca.der()),
            cert: CertificateDer::from(leaf.cert_der),
            key: leaf.key_der,
        }
    })
}

fn configs(suite: SupportedCipherSuite) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let prov = Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![suite],
        ..provider::default_provider()
    });
    let version = match suite {
        SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
        SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
    };
    let mut server = ServerConfig::builder_with_provider(prov.clone())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![pki().cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki().key.clone())),
        )
        .unwrap();
    server.enable_secret_extraction = true;
    server.send_tls13_tickets = 0;
    let mut roots = RootCertStore::empty();
    roots.add(pki().ca.clone()).unwrap();
    let client = ClientConfig::builder_with_provider(prov)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

fn kernel(ulp: bool, rekey: bool) -> Arc<KtlsSupport> {
    let all = if ulp { CipherSet::ALL } else { CipherSet::NONE };
    Arc::new(KtlsSupport::simulated(ulp, all, all, rekey))
}

fn batcher() -> Batcher {
    Batcher::new(
        Arc::new(Ring::new(4)),
        Arc::new(WriterWaker::new()),
        1 << 24,
    )
}

fn frame(i: usize) -> Vec<u8> {
    let body = format!("<13>1 - host app - - - message {i}");
    format!("{} {body}", body.len()).into_bytes()
}

/// What the fake kTLS socket was asked to do, and what it returns.
#[derive(Default)]
struct FakeSocket {
    enabled: Option<(u64, u64)>,
    fail_enable: bool,
    records: VecDeque<io::Result<(u8, Vec<u8>)>>,
    rx_installed: Vec<u64>,
    close_notify_sent: usize,
    alerts_sent: Vec<(u8, u8)>,
}

impl KtlsSocket for FakeSocket {
    fn enable(&mut self, tx: &CryptoInfo, rx: &CryptoInfo) -> io::Result<()> {
        if self.fail_enable {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        self.enabled = Some((tx.seq(), rx.seq()));
        Ok(())
    }
    fn recv_record(&mut self, buf: &mut [u8]) -> io::Result<(u8, usize)> {
        let (ct, payload) = self.records.pop_front().unwrap_or(Ok((23, Vec::new())))?;
        buf[..payload.len()].copy_from_slice(&payload);
        Ok((ct, payload.len()))
    }
    fn set_rx(&mut self, rx: &CryptoInfo) -> io::Result<()> {
        self.rx_installed.push(rx.seq());
        Ok(())
    }
    fn send_close_notify(&mut self) -> io::Result<()> {
        self.close_notify_sent += 1;
        Ok(())
    }
    fn send_alert(&mut self, level: u8, description: u8) -> io::Result<()> {
        self.alerts_sent.push((level, description));
        Ok(())
    }
}

struct Run {
    conn: Conn,
    client: ClientConnection,
    /// Client bytes not yet received by the server (the socket).
    wire: VecDeque<u8>,
    batcher: Batcher,
    exact_reads: usize,
}

impl Run {
    fn new(suite: SupportedCipherSuite, mode: KtlsMode, support: Arc<KtlsSupport>) -> Run {
        let (server, client) = configs(suite);
        let meta = Arc::new(ConnMeta {
            source: 0,
            peer: ([127, 0, 0, 1], 1).into(),
            identity: None,
        });
        let decoder = Decoder::new(FramingMode::OctetCounted, 8192, OversizePolicy::Truncate);
        let conn = Conn::new_tls(server, meta, decoder, KtlsPlan { mode, support }).unwrap();
        let client =
            ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
        Run {
            conn,
            client,
            wire: VecDeque::new(),
            batcher: batcher(),
            exact_reads: 0,
        }
    }

    fn pump_client(&mut self) {
        let mut out = Vec::new();
        while self.client.wants_write() {
            self.client.write_tls(&mut out).unwrap();
        }
        self.wire.extend(out);
    }

    fn deliver_to_client(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            self.client.read_tls(&mut bytes).unwrap();
            self.client.process_new_packets().unwrap();
        }
    }

    /// Runs the handshake the way the shard does; `early` is written
    /// by the client before it is done, so it leaves with its Finished.
    fn handshake(&mut self, early: &[u8]) {
        self.client.writer().write_all(early).unwrap();
        for _ in 0..200 {
            self.pump_client();
            let mut out = Vec::new();
            match self.conn.recv_plan() {
                RecvPlan::Exact => {
                    let want = self.conn.exact_read_buf().unwrap().len();
                    let n = want.min(self.wire.len());
                    if n == 0 {
                        continue;
                    }
                    let bytes: Vec<u8> = self.wire.drain(..n).collect();
                    self.conn.exact_read_buf().unwrap()[..n].copy_from_slice(&bytes);
                    self.exact_reads += 1;
                    let r = self.conn.on_exact_read(n, 0, &mut self.batcher, &mut out);
                    assert_eq!(r, Ok(Outcome::Continue));
                }
                RecvPlan::Multishot if self.conn.is_handshaking() => {
                    let mut bytes: Vec<u8> = self.wire.drain(..).collect();
                    let r = self
                        .conn
                        .on_data(&mut bytes, 0, &mut self.batcher, &mut out);
                    assert_eq!(r, Ok(Outcome::Continue));
                }
                _ => {}
            }
            self.deliver_to_client(&out);
            if !self.conn.is_handshaking() && !self.client.is_handshaking() {
                self.pump_client();
                return;
            }
        }
        panic!("handshake did not finish");
    }

    /// The socket's remaining bytes through the multishot path.
    fn deliver_rest(&mut self) -> Result<Outcome, CloseReason> {
        let mut bytes: Vec<u8> = self.wire.drain(..).collect();
        let mut out = Vec::new();
        self.conn
            .on_data(&mut bytes, 0, &mut self.batcher, &mut out)
    }

    fn messages(&self) -> usize {
        self.batcher.current.len()
    }
}

fn frames(range: std::ops::Range<usize>) -> Vec<u8> {
    range.flat_map(frame).collect()
}

#[test]
fn tls13_under_on_is_read_record_exactly_and_offloaded() {
    let mut run = Run::new(
        cs::TLS13_AES_128_GCM_SHA256,
        KtlsMode::On,
        kernel(true, false),
    );
    assert_eq!(run.conn.recv_plan(), RecvPlan::Exact);
    // Data right behind Finished stays in the socket for the kernel.
    let early = frames(0..20);
    run.handshake(&early);
    assert!(run.exact_reads >= 4, "header and body per record");
    assert!(run.conn.is_ktls_pending());
    assert_eq!(run.conn.recv_plan(), RecvPlan::Wait);
    assert!(!run.wire.is_empty(), "the early data was not read");
    assert_eq!(run.messages(), 0);
    assert_eq!(
        run.conn.take_events().tls_path,
        None,
        "counted once enabled"
    );
    let mut sock = FakeSocket::default();
    run.conn.enable_ktls(&mut sock).unwrap();
    // No tickets: our last record was Finished (handshake keys), so
    // both application-data sequences start at 0.
    assert_eq!(sock.enabled, Some((0, 0)));
    assert!(run.conn.is_offloaded());
    assert_eq!(run.conn.recv_plan(), RecvPlan::Multishot);
    assert_eq!(run.conn.take_events().tls_path, Some("ktls"));
    // The kernel now hands over plaintext.
    let mut plain = frames(0..20);
    let r = run
        .conn
        .on_data(&mut plain, 0, &mut run.batcher, &mut Vec::new());
    assert_eq!(r, Ok(Outcome::Continue));
    assert_eq!(run.messages(), 20);
    assert_eq!(run.conn.buffered_bytes(), 0, "no handshake buffer kept");
}

#[test]
fn tls12_under_auto_is_offloaded_with_rustls_sequence_numbers() {
    let mut run = Run::new(
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        KtlsMode::Auto,
        kernel(true, false),
    );
    run.handshake(b"");
    assert!(run.conn.is_ktls_pending());
    let mut sock = FakeSocket::default();
    run.conn.enable_ktls(&mut sock).unwrap();
    // Each side's Finished was record 0 under the new keys.
    assert_eq!(sock.enabled, Some((1, 1)));
}

#[test]
fn tls13_under_auto_without_rekey_stays_in_userspace_and_loses_nothing() {
    let mut run = Run::new(
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        KtlsMode::Auto,
        kernel(true, false),
    );
    let early = frames(0..5);
    run.handshake(&early);
    assert_eq!(
        run.conn.take_events().tls_path,
        Some("userspace_tls13_rekey_unsupported")
    );
    assert_eq!(run.conn.recv_plan(), RecvPlan::Multishot);
    // A KeyUpdate mid-stream: the record layer follows it.
    run.client.writer().write_all(&frames(5..10)).unwrap();
    run.client.refresh_traffic_keys().unwrap();
    run.client.writer().write_all(&frames(10..15)).unwrap();
    run.pump_client();
    assert_eq!(run.deliver_rest(), Ok(Outcome::Continue));
    assert_eq!(run.messages(), 15);
}

#[test]
fn no_ktls_in_the_kernel_changes_nothing() {
    let mut run = Run::new(
        cs::TLS13_AES_128_GCM_SHA256,
        KtlsMode::Auto,
        kernel(false, false),
    );
    assert_eq!(run.conn.recv_plan(), RecvPlan::Multishot);
    let early = frames(0..3);
    run.handshake(&early);
    assert_eq!(run.exact_reads, 0);
    assert_eq!(
        run.conn.take_events().tls_path,
        Some("userspace_kernel_lacks_ktls")
    );
    assert_eq!(run.deliver_rest(), Ok(Outcome::Continue));
    assert_eq!(run.messages(), 3);
}

#[test]
fn data_and_close_notify_with_finished_carry_the_identity_and_the_path() {
    let mut run = Run::new(
        cs::TLS13_AES_128_GCM_SHA256,
        KtlsMode::Auto,
        kernel(false, false),
    );
    // Everything the client has, in one read: ClientHello first, then
    // its Finished, data and close_notify together.
    run.pump_client();
    let mut hello: Vec<u8> = run.wire.drain(..).collect();
    let mut out = Vec::new();
    let r = run.conn.on_data(&mut hello, 0, &mut run.batcher, &mut out);
    assert_eq!(r, Ok(Outcome::Continue));
    run.deliver_to_client(&out);
    run.client.writer().write_all(&frames(0..4)).unwrap();
    run.client.send_close_notify();
    run.pump_client();
    assert_eq!(run.deliver_rest(), Ok(Outcome::PeerClosed));
    assert_eq!(run.messages(), 4);
    let meta = &run.batcher.current.runs[0].conn;
    let id = meta.identity.as_ref().expect("identity on early frames");
    assert_eq!(id.tls_version, "TLSv1.3");
    assert_eq!(
        run.conn.take_events().tls_path,
        Some("userspace_kernel_lacks_ktls")
    );
}

#[test]
fn mode_off_reads_greedily_and_says_why() {
    let mut run = Run::new(
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        KtlsMode::Off,
        kernel(true, true),
    );
    assert_eq!(run.conn.recv_plan(), RecvPlan::Multishot);
    run.handshake(b"");
    assert_eq!(run.conn.take_events().tls_path, Some("userspace_mode_off"));
}

#[test]
fn plaintext_on_a_tls_port_is_refused_after_five_bytes() {
    let mut run = Run::new(
        cs::TLS13_AES_128_GCM_SHA256,
        KtlsMode::On,
        kernel(true, true),
    );
    let buf = run.conn.exact_read_buf().unwrap();
    assert_eq!(buf.len(), 5);
    buf.copy_from_slice(b"<13>1");
    let r = run
        .conn
        .on_exact_read(5, 0, &mut run.batcher, &mut Vec::new());
    assert_eq!(r, Err(CloseReason::Handshake(HandshakeFailure::NotTls)));
}

#[test]
fn a_failed_enable_closes_with_a_reason() {
    let mut run = Run::new(
        cs::TLS13_AES_128_GCM_SHA256,
        KtlsMode::On,
        kernel(true, false),
    );
    run.handshake(b"");
    let mut sock = FakeSocket {
        fail_enable: true,
        ..FakeSocket::default()
    };
    let err = run.conn.enable_ktls(&mut sock).unwrap_err();
    assert_eq!(err.label(), "ktls_enable_failed");
    assert!(err.to_string().contains("ENOENT"), "{err}");
}

/// An offloaded TLS 1.3 connection with 10 messages received.
fn offloaded(can_rekey: bool) -> Run {
    let mut run = Run::new(
        cs::TLS13_AES_256_GCM_SHA384,
        KtlsMode::On,
        kernel(true, can_rekey),
    );
    run.handshake(b"");
    run.conn.enable_ktls(&mut FakeSocket::default()).unwrap();
    let _ = run.conn.take_events();
    let mut plain = frames(0..10);
    let r = run
        .conn
        .on_data(&mut plain, 0, &mut run.batcher, &mut Vec::new());
    assert_eq!(r, Ok(Outcome::Continue));
    run
}

fn control(run: &mut Run, sock: &mut FakeSocket) -> Result<Outcome, CloseReason> {
    run.conn.on_ktls_control(sock, 0, &mut run.batcher)
}

#[test]
fn close_notify_finishes_with_every_message() {
    let mut run = offloaded(false);
    // A frame cut by a record boundary still completes before the alert.
    let whole = frame(10);
    let mut first = whole[..7].to_vec();
    let mut sock = FakeSocket::default();
    sock.records.push_back(Ok((23, whole[7..].to_vec())));
    sock.records.push_back(Ok((21, vec![1, 0])));
    let r = run
        .conn
        .on_data(&mut first, 0, &mut run.batcher, &mut Vec::new());
    assert_eq!(r, Ok(Outcome::Continue));
    // A data record seen by recvmsg (a race) is data.
    assert_eq!(control(&mut run, &mut sock), Ok(Outcome::Continue));
    assert_eq!(run.conn.take_events().ktls_control, None);
    assert_eq!(control(&mut run, &mut sock), Ok(Outcome::PeerClosed));
    assert_eq!(run.messages(), 11);
    assert_eq!(sock.close_notify_sent, 1);
    assert_eq!(run.conn.take_events().ktls_control, Some("close_notify"));
}

#[test]
fn a_fatal_alert_closes_and_names_it() {
    let mut run = offloaded(false);
    let mut sock = FakeSocket::default();
    sock.records.push_back(Ok((21, vec![2, 20])));
    let err = control(&mut run, &mut sock).unwrap_err();
    assert_eq!(err.label(), "peer_alert");
    assert!(err.to_string().contains("BadRecordMac"), "{err}");
    assert_eq!(run.messages(), 10);
}

#[test]
fn key_update_without_rekey_sends_close_notify_and_keeps_what_came_before() {
    let mut run = offloaded(false);
    let mut sock = FakeSocket::default();
    sock.records.push_back(Ok((22, vec![24, 0, 0, 1, 1])));
    let err = control(&mut run, &mut sock).unwrap_err();
    assert_eq!(err, CloseReason::Ktls(KtlsClose::KeyUpdateUnfollowable));
    assert_eq!(sock.close_notify_sent, 1);
    assert!(sock.rx_installed.is_empty());
    assert_eq!(run.messages(), 10);
    assert_eq!(run.conn.take_events().ktls_control, Some("key_update"));
}

#[test]
fn key_update_with_rekey_installs_the_next_key() {
    let mut run = offloaded(true);
    let mut sock = FakeSocket::default();
    sock.records.push_back(Ok((22, vec![24, 0, 0, 1, 0])));
    sock.records.push_back(Ok((22, vec![24, 0, 0, 1, 1])));
    assert_eq!(control(&mut run, &mut sock), Ok(Outcome::Continue));
    assert_eq!(control(&mut run, &mut sock), Ok(Outcome::Continue));
    // Each new key starts its records at 0.
    assert_eq!(sock.rx_installed, vec![0, 0]);
    assert_eq!(sock.close_notify_sent, 0);
    assert!(run.conn.is_offloaded());
}

/// One policy with the userspace record layer: a client's NewSessionTicket
/// (only servers send one) closes the connection with an alert there, so it
/// does here too.
#[test]
fn client_new_session_ticket_closes_as_in_userspace() {
    let mut run = offloaded(false);
    let mut sock = FakeSocket::default();
    sock.records.push_back(Ok((22, vec![4, 0, 0, 2, 0, 0])));
    let err = control(&mut run, &mut sock).unwrap_err();
    assert_eq!(err.label(), "ktls_protocol_error", "{err}");
    assert_eq!(sock.alerts_sent, vec![(2, 10)]);
    assert_eq!(
        run.conn.take_events().ktls_control,
        Some("new_session_ticket")
    );
}

/// A skippable warning (TLS 1.3 user_canceled) is skipped on both paths;
/// before, an offloaded connection closed on it while userspace did not.
#[test]
fn user_canceled_warning_is_skipped_on_an_offloaded_connection_as_in_userspace() {
    let mut run = offloaded(false);
    let mut sock = FakeSocket::default();
    sock.records.push_back(Ok((21, vec![1, 90])));
    assert_eq!(control(&mut run, &mut sock), Ok(Outcome::Continue));
    assert!(run.conn.is_offloaded());
}

#[test]
fn malformed_or_unexpected_control_records_close_with_an_alert() {
    for (ct, payload, label) in [
        (21u8, vec![2u8], "ktls_bad_control_record"),
        (22, vec![1, 0, 0, 1, 0], "ktls_protocol_error"),
        (20, vec![1], "ktls_protocol_error"),
    ] {
        let mut run = offloaded(false);
        let mut sock = FakeSocket::default();
        sock.records.push_back(Ok((ct, payload)));
        let err = control(&mut run, &mut sock).unwrap_err();
        assert_eq!(err.label(), label, "{err}");
        assert_eq!(sock.alerts_sent, vec![(2, 10)]);
    }
}

#[test]
fn kernel_refusals_are_close_reasons_and_resets_are_not() {
    let mut run = offloaded(false);
    assert_eq!(run.conn.on_ktls_recv_error(libc::ECONNRESET), None);
    let r = run.conn.on_ktls_recv_error(libc::EMSGSIZE).unwrap();
    assert_eq!(r.label(), "ktls_not_a_record");
    assert!(r.to_string().contains("not a TLS record"), "{r}");
    let mut sock = FakeSocket::default();
    let mut run = offloaded(false);
    sock.records
        .push_back(Err(io::Error::from_raw_os_error(libc::EBADMSG)));
    let err = control(&mut run, &mut sock).unwrap_err();
    assert_eq!(err.label(), "ktls_record_auth_failed");
}

#[test]
fn eof_on_recvmsg_flushes_and_closes() {
    let mut run = offloaded(false);
    let mut sock = FakeSocket::default();
    sock.records.push_back(Ok((23, Vec::new())));
    assert_eq!(control(&mut run, &mut sock), Ok(Outcome::PeerClosed));
    assert_eq!(run.messages(), 10);
}

mod fragmented;
