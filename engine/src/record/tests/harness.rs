//! In-memory TLS peers for the record-layer tests: an rcgen PKI, a buffered
//! rustls client, an unbuffered rustls server driven exactly as the module
//! docs' handover procedure says, and a "forger" that encrypts arbitrary
//! records under the client's key.

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, OnceLock};

use rustls::client::ClientConnection;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::crypto::cipher::{MessageEncrypter, OutboundChunks, OutboundPlainMessage};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::{
    ClientConfig, ContentType, ProtocolVersion, RootCertStore, ServerConfig, SupportedCipherSuite,
    SupportedProtocolVersion,
};

use crate::record::{self, keys, RecordReader, RecordWriter};
use crate::tls::driver::{self, Progress};

const SERVER_NAME: &str = "ringest.test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Ecdsa,
    Rsa,
}

/// One suite under test and the certificate it needs.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub suite: SupportedCipherSuite,
    pub key: KeyKind,
}

impl Case {
    pub fn is_tls13(&self) -> bool {
        matches!(self.suite, SupportedCipherSuite::Tls13(_))
    }

    fn version(&self) -> &'static SupportedProtocolVersion {
        if self.is_tls13() {
            &rustls::version::TLS13
        } else {
            &rustls::version::TLS12
        }
    }
}

pub const TLS13_AES128: Case = Case {
    suite: cipher_suite::TLS13_AES_128_GCM_SHA256,
    key: KeyKind::Ecdsa,
};
pub const TLS13_AES256: Case = Case {
    suite: cipher_suite::TLS13_AES_256_GCM_SHA384,
    key: KeyKind::Ecdsa,
};
pub const TLS13_CHACHA: Case = Case {
    suite: cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    key: KeyKind::Ecdsa,
};
pub const TLS12_RSA_AES128: Case = Case {
    suite: cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    key: KeyKind::Rsa,
};
pub const TLS12_ECDSA_AES256: Case = Case {
    suite: cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    key: KeyKind::Ecdsa,
};
pub const TLS12_ECDSA_CHACHA: Case = Case {
    suite: cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    key: KeyKind::Ecdsa,
};
pub const ALL_CASES: [Case; 6] = [
    TLS13_AES128,
    TLS13_AES256,
    TLS13_CHACHA,
    TLS12_RSA_AES128,
    TLS12_ECDSA_AES256,
    TLS12_ECDSA_CHACHA,
];

struct Pki {
    ca: CertificateDer<'static>,
    ecdsa: (CertificateDer<'static>, Vec<u8>),
    rsa: (CertificateDer<'static>, Vec<u8>),
}

/// CA (ECDSA P-256), an ECDSA P-256 server cert and an RSA-2048 one, made
/// once per test binary (RSA key generation is slow).
fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = testkit::Ca::new("ringest test CA");
        let leaf = |alg| {
            let mut spec = testkit::LeafSpec::server(1);
            spec.dns_sans = vec![SERVER_NAME.to_string()];
            spec.alg = alg;
            let l = ca.issue(&spec);
            (CertificateDer::from(l.cert_der), l.key_der)
        };
        let ecdsa = leaf(testkit::KeyAlg::EcdsaP256);
        let rsa = leaf(testkit::KeyAlg::Rsa2048);
        Pki {
            ca: CertificateDer::from(ca.der()),
            ecdsa,
            rsa,
        }
    })
}

fn provider(case: Case) -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![case.suite],
        ..aws_lc_rs::default_provider()
    })
}

pub fn server_config(case: Case) -> Arc<ServerConfig> {
    let (cert, key) = match case.key {
        KeyKind::Ecdsa => &pki().ecdsa,
        KeyKind::Rsa => &pki().rsa,
    };
    let mut config = ServerConfig::builder_with_provider(provider(case))
        .with_protocol_versions(&[case.version()])
        .expect("server versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.clone())),
        )
        .expect("server cert");
    config.enable_secret_extraction = true;
    Arc::new(config)
}

pub fn client_config(case: Case) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(pki().ca.clone()).expect("root");
    let mut config = ClientConfig::builder_with_provider(provider(case))
        .with_protocol_versions(&[case.version()])
        .expect("client versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Only for `Forger`: lets a test encrypt records under the client's key.
    config.enable_secret_extraction = true;
    Arc::new(config)
}

pub fn new_client(config: &Arc<ClientConfig>) -> ClientConnection {
    ClientConnection::new(
        config.clone(),
        ServerName::try_from(SERVER_NAME).expect("name"),
    )
    .expect("client")
}

/// Everything the client has to send.
pub fn client_wire(client: &mut ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut out).expect("write_tls");
    }
    out
}

/// Client writes `data` (rustls splits it into records of at most 2^14).
pub fn client_send(client: &mut ClientConnection, data: &[u8]) -> Vec<u8> {
    client.writer().write_all(data).expect("client write");
    client_wire(client)
}

/// Feeds server bytes to the client.
pub fn client_receive(client: &mut ClientConnection, mut bytes: &[u8]) -> rustls::IoState {
    while !bytes.is_empty() {
        client.read_tls(&mut bytes).expect("read_tls");
        client.process_new_packets().expect("client process");
    }
    client.process_new_packets().expect("client process")
}

pub enum Phase {
    NeedMore,
    Ready,
    PeerClosed,
}

/// One pass of handover step 2 over `inbuf`, through the engine's
/// handshake driver: returns what the server sends.
pub fn server_step(
    server: &mut UnbufferedServerConnection,
    inbuf: &mut Vec<u8>,
    drained: &mut Vec<u8>,
    drained_records: &mut usize,
) -> (Vec<u8>, Phase) {
    let mut out = Vec::new();
    let d = driver::drive(server, inbuf, &mut out, &mut |p: &[u8]| {
        drained.extend_from_slice(p);
        *drained_records += 1;
        Ok::<(), Infallible>(())
    });
    inbuf.drain(..d.consumed);
    let phase = match d.result.expect("server handshake") {
        Progress::NeedMore => Phase::NeedMore,
        // Half-RTT data (off by default) would give WriteTraffic before the
        // client's Finished: keep reading then, as for BlockedHandshake.
        Progress::Traffic if server.is_handshaking() => Phase::NeedMore,
        Progress::Traffic => Phase::Ready,
        Progress::PeerClosed | Progress::Closed => Phase::PeerClosed,
    };
    (out, phase)
}

/// The result of a handshake and handover.
pub struct Handover {
    pub client: ClientConnection,
    pub reader: RecordReader,
    pub writer: RecordWriter,
    /// Bytes left in the server's buffer at conversion (a partial record):
    /// the reader's input starts with these.
    pub leftover: Vec<u8>,
    /// Plaintext rustls decrypted before the conversion (step 2, ReadTraffic).
    pub drained: Vec<u8>,
    pub drained_records: usize,
    /// See [`HandshakeOpts::hold_back`]: arrives after `leftover`.
    pub held_back: Vec<u8>,
}

impl Handover {
    /// The reader's input so far: the kept partial record, then the bytes
    /// that were still in flight at conversion.
    pub fn pending_wire(&self) -> Vec<u8> {
        let mut wire = self.leftover.clone();
        wire.extend_from_slice(&self.held_back);
        wire
    }
}

/// Options for [`handshake`].
#[derive(Default)]
pub struct HandshakeOpts<'a> {
    /// Application data the client writes before the handshake completes, so
    /// it goes out right behind its Finished.
    pub early_client_data: &'a [u8],
    /// Withhold the last `hold_back` bytes of the client's final flight from
    /// the server (a read that ended mid-record); returned in `Handover::held_back`.
    pub hold_back: usize,
    /// Reuse these configs (for resumption).
    pub client_config: Option<Arc<ClientConfig>>,
    pub server_config: Option<Arc<ServerConfig>>,
}

/// Runs the handshake to handover step 3; the server is not yet converted.
pub struct Handshaken {
    pub client: ClientConnection,
    pub server: UnbufferedServerConnection,
    /// The server's buffer after the last discard.
    pub inbuf: Vec<u8>,
    pub drained: Vec<u8>,
    pub drained_records: usize,
    pub held_back: Vec<u8>,
}

pub fn handshake(case: Case, opts: HandshakeOpts<'_>) -> Handover {
    let hs = handshake_unconverted(case, opts);
    // Step 4.
    let (secrets, kernel) = hs
        .server
        .dangerous_into_kernel_connection()
        .expect("into kernel connection");
    let (reader, writer) = record::split(kernel, secrets).expect("split");
    Handover {
        client: hs.client,
        reader,
        writer,
        leftover: hs.inbuf,
        drained: hs.drained,
        drained_records: hs.drained_records,
        held_back: hs.held_back,
    }
}

pub fn handshake_unconverted(case: Case, opts: HandshakeOpts<'_>) -> Handshaken {
    let client_config = opts
        .client_config
        .clone()
        .unwrap_or_else(|| client_config(case));
    let server_config = opts
        .server_config
        .clone()
        .unwrap_or_else(|| server_config(case));
    let mut client = new_client(&client_config);
    if !opts.early_client_data.is_empty() {
        client
            .writer()
            .write_all(opts.early_client_data)
            .expect("buffer early data");
    }
    let mut server = UnbufferedServerConnection::new(server_config).expect("server");
    let mut inbuf = Vec::new();
    let mut drained = Vec::new();
    let mut drained_records = 0;
    let mut held_back = Vec::new();

    for _round in 0..16 {
        let mut flight = client_wire(&mut client);
        if !client.is_handshaking() && held_back.is_empty() && opts.hold_back > 0 {
            // The client's final flight: part of it "arrives" only later.
            assert!(opts.hold_back < flight.len(), "hold_back too large");
            held_back = flight.split_off(flight.len() - opts.hold_back);
        }
        inbuf.extend_from_slice(&flight);
        let (out, phase) = server_step(&mut server, &mut inbuf, &mut drained, &mut drained_records);
        client_receive(&mut client, &out);
        match phase {
            Phase::NeedMore => continue,
            Phase::PeerClosed => panic!("client closed during handshake"),
            Phase::Ready => {
                // Step 3: what is left is the start of the next record.
                assert!(!client.is_handshaking());
                return Handshaken {
                    client,
                    server,
                    inbuf,
                    drained,
                    drained_records,
                    held_back,
                };
            }
        }
    }
    panic!("handshake did not complete");
}

/// Encrypts arbitrary records under the client's traffic key, continuing the
/// client's sequence. The client is consumed: its secrets are extracted.
pub struct Forger {
    enc: Box<dyn MessageEncrypter>,
    seq: u64,
}

impl Forger {
    #[allow(deprecated)] // dangerous_extract_secrets: the simplest way to a client key in a test.
    pub fn from_client(client: ClientConnection, suite: SupportedCipherSuite) -> Forger {
        let secrets = client.dangerous_extract_secrets().expect("client secrets");
        let (seq, tx) = secrets.tx;
        let mut forger = Forger {
            enc: keys::encrypter(suite, tx).expect("forger encrypter"),
            seq: 0,
        };
        // aws-lc-rs's AES-GCM sealing key takes its first nonce as counter 0
        // and then insists on increasing counters, which `iv ^ seq` only gives
        // when the first seq is 0. Burn seq 0 (output discarded: it is a test).
        if seq != 0 {
            let _ = forger.record(ContentType::ApplicationData, b"");
        }
        forger.seq = seq;
        forger
    }

    /// One record of content type `typ` (the inner type under TLS 1.3).
    pub fn record(&mut self, typ: ContentType, payload: &[u8]) -> Vec<u8> {
        let msg = OutboundPlainMessage {
            typ,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(payload),
        };
        let rec = self.enc.encrypt(msg, self.seq).expect("forge");
        self.seq += 1;
        rec.encode()
    }

    pub fn app_data(&mut self, payload: &[u8]) -> Vec<u8> {
        self.record(ContentType::ApplicationData, payload)
    }
}

/// Feeds `wire` to `reader` in chunks of the given sizes (cycled), keeping
/// the unconsumed tail exactly as the engine would. Returns the plaintext,
/// the first event, and the bytes left unconsumed at the end.
pub struct Fed {
    pub plaintext: Vec<u8>,
    pub event: Option<record::ControlEvent>,
    pub records: u32,
    pub key_updates: u32,
    pub key_update_requested: bool,
    pub unconsumed: Vec<u8>,
}

pub fn feed(
    reader: &mut RecordReader,
    wire: &[u8],
    chunk_sizes: &[usize],
) -> Result<Fed, record::RecordError> {
    assert!(chunk_sizes.iter().all(|&c| c > 0));
    let mut fed = Fed {
        plaintext: Vec::new(),
        event: None,
        records: 0,
        key_updates: 0,
        key_update_requested: false,
        unconsumed: Vec::new(),
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut pos = 0;
    let mut sizes = chunk_sizes.iter().cycle();
    while pos < wire.len() {
        let n = (*sizes.next().expect("cycle")).min(wire.len() - pos);
        buf.extend_from_slice(&wire[pos..pos + n]);
        pos += n;
        let progress =
            reader.process(&mut buf, &mut |p: &[u8]| fed.plaintext.extend_from_slice(p))?;
        fed.records += progress.records;
        fed.key_updates += progress.key_updates;
        fed.key_update_requested |= progress.key_update_requested;
        buf.drain(..progress.consumed);
        if progress.event.is_some() {
            fed.event = progress.event;
            buf.extend_from_slice(&wire[pos..]);
            break;
        }
    }
    fed.unconsumed = buf;
    Ok(fed)
}

/// Deterministic message of `len` bytes; `seed` makes messages distinct.
pub fn message(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x & 0xff) as u8
        })
        .collect()
}

/// Deterministic pseudo-random chunk sizes in `1..=max`.
pub fn chunk_sizes(seed: u32, count: usize, max: usize) -> Vec<usize> {
    message(seed, count * 2)
        .chunks(2)
        .map(|c| (usize::from(u16::from_le_bytes([c[0], c[1]])) % max) + 1)
        .collect()
}
