//! Handshake messages that span several TLS records: a client certificate
//! chain over 16 KiB (one Certificate message cannot fit one record), sent
//! in 512-byte fragments the way embedded stacks and `openssl s_client
//! -max_send_frag 512` do. rustls joins such a message in the caller's
//! buffer and leaves the records it has not finished at the front of it, so
//! `Conn` must keep them, in order, until rustls discards them.

use rustls::server::WebPkiClientVerifier;

use super::*;

/// A client CA and a client certificate of about 26 KiB: 400 DNS names.
fn big_client_pki() -> &'static (CertificateDer<'static>, testkit::Leaf) {
    static BIG: OnceLock<(CertificateDer<'static>, testkit::Leaf)> = OnceLock::new();
    BIG.get_or_init(|| {
        let ca = testkit::Ca::new("fragment CA");
        let mut spec = testkit::LeafSpec::client("big-client", 2);
        spec.dns_sans = (0..400)
            .map(|i| format!("host-{i:04}.a-rather-long-subdomain.example.org"))
            .collect();
        let leaf = ca.issue(&spec);
        assert!(leaf.cert_der.len() > 16 * 1024, "{}", leaf.cert_der.len());
        (CertificateDer::from(ca.der()), leaf)
    })
}

fn mutual_configs(fragment_bytes: usize) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let (client_ca, leaf) = big_client_pki();
    let mut client_roots = RootCertStore::empty();
    client_roots.add(client_ca.clone()).unwrap();
    let prov = Arc::new(provider::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), prov.clone())
            .build()
            .unwrap();
    let mut server = ServerConfig::builder_with_provider(prov.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![pki().cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki().key.clone())),
        )
        .unwrap();
    server.enable_secret_extraction = true;
    server.send_tls13_tickets = 0;
    let mut roots = RootCertStore::empty();
    roots.add(pki().ca.clone()).unwrap();
    let mut client = ClientConfig::builder_with_provider(prov)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(leaf.cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der.clone())),
        )
        .unwrap();
    client.max_fragment_size = Some(fragment_bytes);
    (Arc::new(server), Arc::new(client))
}

fn fragmented_run(mode: KtlsMode, support: Arc<KtlsSupport>) -> Run {
    let (server, client) = mutual_configs(512);
    let mut run = Run::new(cs::TLS13_AES_128_GCM_SHA256, mode, support);
    let meta = Arc::new(ConnMeta {
        source: 0,
        peer: ([127, 0, 0, 1], 1).into(),
        identity: None,
    });
    let decoder = Decoder::new(FramingMode::OctetCounted, 8192, OversizePolicy::Truncate);
    run.conn = Conn::new_tls(
        server,
        meta,
        decoder,
        KtlsPlan {
            mode,
            support: run_support(&run),
        },
    )
    .unwrap();
    run.client = ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
    run
}

fn run_support(run: &Run) -> Arc<KtlsSupport> {
    run.conn.ktls.as_ref().unwrap().support.clone()
}

/// Every TLS record of `bytes`, each as its own buffer.
fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let len = 5 + u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]) as usize;
        out.push(bytes[at..at + len].to_vec());
        at += len;
    }
    assert_eq!(at, bytes.len(), "whole records only");
    out
}

/// How the client's bytes are cut into receives.
#[derive(Clone, Copy)]
enum Reads {
    OneRecordEach,
    WholeFlight,
    /// TCP segments that ignore record boundaries.
    Bytes(usize),
}

/// Drives the handshake through the multishot path, giving the server the
/// client's bytes cut as `reads` says.
fn multishot_handshake(run: &mut Run, reads: Reads) {
    for _ in 0..50 {
        run.pump_client();
        let bytes: Vec<u8> = run.wire.drain(..).collect();
        let reads = match reads {
            Reads::OneRecordEach => records(&bytes),
            Reads::WholeFlight => vec![bytes],
            Reads::Bytes(n) => bytes.chunks(n).map(<[u8]>::to_vec).collect(),
        };
        let mut out = Vec::new();
        for mut read in reads {
            let r = run.conn.on_data(&mut read, 0, &mut run.batcher, &mut out);
            assert_eq!(r, Ok(Outcome::Continue));
        }
        run.deliver_to_client(&out);
        if !run.conn.is_handshaking() && !run.client.is_handshaking() {
            return;
        }
    }
    panic!("handshake did not finish");
}

fn sends_after_the_handshake(run: &mut Run) {
    run.client.writer().write_all(&frames(0..50)).unwrap();
    run.pump_client();
    assert_eq!(run.deliver_rest(), Ok(Outcome::Continue));
    assert_eq!(run.messages(), 50);
    let cn = run
        .conn
        .meta()
        .identity
        .as_ref()
        .map(|i| i.client_cn.clone());
    assert!(cn.is_some(), "identity set");
}

#[test]
fn big_client_certificate_in_512_byte_records_one_record_per_read() {
    let mut run = fragmented_run(KtlsMode::Off, kernel(false, false));
    multishot_handshake(&mut run, Reads::OneRecordEach);
    sends_after_the_handshake(&mut run);
}

#[test]
fn big_client_certificate_in_512_byte_records_whole_flight_in_one_read() {
    let mut run = fragmented_run(KtlsMode::Off, kernel(false, false));
    multishot_handshake(&mut run, Reads::WholeFlight);
    sends_after_the_handshake(&mut run);
}

#[test]
fn big_client_certificate_in_512_byte_records_read_in_1000_byte_segments() {
    let mut run = fragmented_run(KtlsMode::Off, kernel(false, false));
    multishot_handshake(&mut run, Reads::Bytes(1000));
    sends_after_the_handshake(&mut run);
}

#[test]
fn big_client_certificate_in_512_byte_records_read_record_exactly() {
    let mut run = fragmented_run(KtlsMode::On, kernel(true, true));
    assert_eq!(run.conn.recv_plan(), RecvPlan::Exact);
    run.handshake(b"");
    assert!(run.exact_reads > 60, "{} reads", run.exact_reads);
    assert!(run.conn.is_ktls_pending());
    let mut sock = FakeSocket::default();
    run.conn.enable_ktls(&mut sock).unwrap();
    assert_eq!(sock.enabled, Some((0, 0)));
    assert_eq!(run.conn.buffered_bytes(), 0, "no handshake buffer kept");
}

/// One 16 KiB record cannot hold the Certificate message either; cut by
/// TCP segments anywhere, its records still arrive in pieces.
fn unfragmented(reads: Reads) {
    let (server, client) = mutual_configs(16 * 1024);
    let mut run = fragmented_run(KtlsMode::Off, kernel(false, false));
    let meta = Arc::new(ConnMeta {
        source: 0,
        peer: ([127, 0, 0, 1], 1).into(),
        identity: None,
    });
    let decoder = Decoder::new(FramingMode::OctetCounted, 8192, OversizePolicy::Truncate);
    let plan = KtlsPlan {
        mode: KtlsMode::Off,
        support: kernel(false, false),
    };
    run.conn = Conn::new_tls(server, meta, decoder, plan).unwrap();
    run.client = ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
    multishot_handshake(&mut run, reads);
    sends_after_the_handshake(&mut run);
}

#[test]
fn big_client_certificate_unfragmented_in_one_read() {
    unfragmented(Reads::WholeFlight);
}

#[test]
fn big_client_certificate_unfragmented_in_4096_byte_segments() {
    unfragmented(Reads::Bytes(4096));
}

#[test]
fn big_client_certificate_unfragmented_one_record_per_read() {
    unfragmented(Reads::OneRecordEach);
}
