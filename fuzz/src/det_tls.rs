//! A TLS handshake with fixed keys, so a fuzz input can hold real records.
//!
//! The record layer can only be built from a finished rustls handshake
//! (`dangerous_into_kernel_connection()`), and a real handshake gives new
//! keys every time: records saved in a corpus would never decrypt again, and
//! a crash could depend on the keys. So both peers here use a crypto
//! provider whose every input to the key schedule is fixed:
//!
//! - `secure_random` returns the same byte stream for every handshake
//!   (client and server randoms, session ids);
//! - the only key-exchange group claims to be X25519 but sends a constant
//!   share and returns a constant shared secret;
//! - the server "signs" with a constant signature (ED25519, or RSA-PSS for
//!   the ECDHE_RSA suite) and the client accepts any certificate and any
//!   signature;
//! - no session tickets, no resumption.
//!
//! The transcript, and so every traffic secret, is then the same in every
//! run, on every machine, for a given suite and rustls version. The AEAD,
//! the key schedule and the record code are the real ones; only the parts
//! that authenticate the handshake are faked, which the record layer never
//! sees. **Insecure by construction: for fuzzing only.**
//!
//! [`handshake`] drives the server exactly as `engine/src/record/mod.rs`
//! says (handover steps 1 to 4) and returns the engine's [`RecordReader`]
//! plus a [`Forger`] holding the client's sending key and key schedule.

use std::cell::Cell;
use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConnectionData, Resumption, UnbufferedClientConnection};
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::crypto::cipher::{MessageEncrypter, OutboundChunks, OutboundPlainMessage, NONCE_LEN};
use rustls::crypto::{
    ActiveKeyExchange, CryptoProvider, GetRandomFailed, SecureRandom, SharedSecret,
    SupportedKxGroup,
};
use rustls::kernel::KernelConnection;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, UnbufferedServerConnection,
};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{
    ClientConfig, ConnectionTrafficSecrets, ContentType, DigitallySignedStruct, Error, NamedGroup,
    ProtocolVersion, ServerConfig, SignatureAlgorithm, SignatureScheme, SupportedCipherSuite,
};

use ringest::record::{self, RecordReader, RecordWriter};
use ringest::tls::driver::{self, Progress, Unbuffered};

/// The six suites the engine accepts, in a fixed order (a fuzz input picks
/// one by index).
pub const SUITES: [SupportedCipherSuite; 6] = [
    cipher_suite::TLS13_AES_128_GCM_SHA256,
    cipher_suite::TLS13_AES_256_GCM_SHA384,
    cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
];

pub fn is_tls13(suite: SupportedCipherSuite) -> bool {
    matches!(suite, SupportedCipherSuite::Tls13(_))
}

thread_local! {
    /// Position in the fixed random stream; reset at the start of each handshake.
    static RANDOM_POS: Cell<u64> = const { Cell::new(0) };
}

#[derive(Debug)]
struct FixedRandom;

impl SecureRandom for FixedRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        RANDOM_POS.with(|pos| {
            for b in buf {
                // splitmix64 of the position: deterministic, not all zeros
                // (all zeros could look like a TLS downgrade sentinel).
                let mut z = pos.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
                pos.set(pos.get() + 1);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                *b = (z ^ (z >> 31)) as u8;
            }
        });
        Ok(())
    }
}

/// Claims X25519; every share and every shared secret is a constant.
#[derive(Debug)]
struct FixedKx;

struct FixedKxActive;

impl SupportedKxGroup for FixedKx {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        Ok(Box::new(FixedKxActive))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

impl ActiveKeyExchange for FixedKxActive {
    fn complete(self: Box<Self>, _peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        Ok(SharedSecret::from(&[0x5e; 32][..]))
    }

    fn pub_key(&self) -> &[u8] {
        &[0x9b; 32]
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

static FIXED_RANDOM: FixedRandom = FixedRandom;
static FIXED_KX: FixedKx = FixedKx;

/// A server key that signs with a constant; RSA for the ECDHE_RSA suite.
#[derive(Debug)]
struct FakeKey(SignatureAlgorithm);

#[derive(Debug)]
struct FakeSigner(SignatureScheme);

impl SigningKey for FakeKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let wanted = match self.0 {
            SignatureAlgorithm::RSA => SignatureScheme::RSA_PSS_SHA256,
            _ => SignatureScheme::ED25519,
        };
        offered
            .contains(&wanted)
            .then(|| Box::new(FakeSigner(wanted)) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.0
    }
}

impl Signer for FakeSigner {
    fn sign(&self, _message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(vec![0x51; 64])
    }

    fn scheme(&self) -> SignatureScheme {
        self.0
    }
}

#[derive(Debug)]
struct FakeCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FakeCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Accepts any certificate and any handshake signature.
#[derive(Debug)]
struct AcceptAnything;

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519, SignatureScheme::RSA_PSS_SHA256]
    }
}

fn provider(suite: SupportedCipherSuite) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![suite],
        kx_groups: vec![&FIXED_KX],
        secure_random: &FIXED_RANDOM,
        ..aws_lc_rs::default_provider()
    })
}

fn version(suite: SupportedCipherSuite) -> &'static rustls::SupportedProtocolVersion {
    if is_tls13(suite) {
        &rustls::version::TLS13
    } else {
        &rustls::version::TLS12
    }
}

struct Configs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn build_configs(suite: SupportedCipherSuite) -> Configs {
    let algorithm = match suite {
        SupportedCipherSuite::Tls12(s) if s.sign.contains(&SignatureScheme::RSA_PSS_SHA256) => {
            SignatureAlgorithm::RSA
        }
        _ => SignatureAlgorithm::ED25519,
    };
    // Never parsed: the client accepts anything and the server only sends it.
    let cert = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    let key = Arc::new(CertifiedKey::new(vec![cert], Arc::new(FakeKey(algorithm))));
    let mut server = ServerConfig::builder_with_provider(provider(suite))
        .with_protocol_versions(&[version(suite)])
        .expect("server versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(FakeCert(key)));
    server.enable_secret_extraction = true; // handover step 1
    server.send_tls13_tickets = 0;
    server.session_storage = Arc::new(NoServerSessionStorage {});
    let mut client = ClientConfig::builder_with_provider(provider(suite))
        .with_protocol_versions(&[version(suite)])
        .expect("client versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything))
        .with_no_client_auth();
    client.enable_secret_extraction = true; // for the Forger
    client.resumption = Resumption::disabled();
    Configs {
        server: Arc::new(server),
        client: Arc::new(client),
    }
}

fn configs(suite_index: usize) -> &'static Configs {
    static CONFIGS: OnceLock<Vec<Configs>> = OnceLock::new();
    &CONFIGS.get_or_init(|| SUITES.iter().map(|&s| build_configs(s)).collect())[suite_index]
}

/// Both ends after a handshake under the fixed keys.
pub struct Peers {
    /// The engine's reader for the server's receive side.
    pub reader: RecordReader,
    /// The engine's writer for the server's send side.
    pub writer: RecordWriter,
    /// The client's sending side, to produce records the reader accepts.
    pub forger: Forger,
}

/// Handover step 2 for either end, through the engine's handshake driver:
/// processes `inbuf`, returns what the end sends and whether it is done
/// with the handshake (`Traffic`, which rustls gives only when every whole
/// record was processed and nothing is left to send).
fn step<C: Unbuffered>(conn: &mut C, inbuf: &mut Vec<u8>) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let d = driver::drive(
        conn,
        inbuf,
        &mut out,
        &mut |_: &[u8]| -> Result<(), Infallible> {
            panic!("no application data during this handshake")
        },
    );
    inbuf.drain(..d.consumed);
    let done = match d.result.expect("handshake") {
        Progress::NeedMore => false,
        Progress::Traffic => !conn.is_handshaking(),
        other => panic!("unexpected state {other:?}"),
    };
    (out, done)
}

/// A handshake over suite `SUITES[suite_index % 6]`; the same keys every time.
pub fn handshake(suite_index: usize) -> Peers {
    let suite_index = suite_index % SUITES.len();
    let configs = configs(suite_index);
    RANDOM_POS.with(|pos| pos.set(0));
    let name = ServerName::try_from("ringest.fuzz").expect("name");
    let mut client = UnbufferedClientConnection::new(configs.client.clone(), name).expect("client");
    let mut server = UnbufferedServerConnection::new(configs.server.clone()).expect("server");
    let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
    for _round in 0..8 {
        let (sent, client_done) = step(&mut client, &mut to_client);
        to_server.extend_from_slice(&sent);
        let (sent, server_done) = step(&mut server, &mut to_server);
        to_client.extend_from_slice(&sent);
        if client_done && server_done && to_client.is_empty() {
            // Handover step 3: the client sent nothing after its Finished.
            assert!(to_server.is_empty(), "bytes left at handover");
            let (secrets, kernel) = server
                .dangerous_into_kernel_connection()
                .expect("server into kernel connection");
            let (reader, writer) = record::split(kernel, secrets).expect("record::split");
            let (secrets, kernel) = client
                .dangerous_into_kernel_connection()
                .expect("client into kernel connection");
            let forger = Forger::new(SUITES[suite_index], secrets.tx, kernel);
            return Peers {
                reader,
                writer,
                forger,
            };
        }
    }
    panic!("handshake did not complete");
}

/// Encrypts arbitrary records under the client's sending key, in sequence,
/// and follows the client's key schedule across KeyUpdates (TLS 1.3).
pub struct Forger {
    suite: SupportedCipherSuite,
    enc: Box<dyn MessageEncrypter>,
    seq: u64,
    kernel: KernelConnection<ClientConnectionData>,
}

impl Forger {
    fn new(
        suite: SupportedCipherSuite,
        (seq, secrets): (u64, ConnectionTrafficSecrets),
        kernel: KernelConnection<ClientConnectionData>,
    ) -> Forger {
        let mut forger = Forger {
            suite,
            enc: encrypter(suite, secrets),
            seq: 0,
            kernel,
        };
        forger.start_at(seq);
        forger
    }

    /// aws-lc-rs's AES-GCM sealing key takes its first nonce as counter 0
    /// and then wants increasing counters, which `iv ^ seq` gives only from
    /// seq 0 (TLS 1.2 starts at 1: the client's Finished used 0). Burn seq 0.
    fn start_at(&mut self, seq: u64) {
        if seq != 0 {
            let _ = self.record(ContentType::ApplicationData, b"");
        }
        self.seq = seq;
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

    /// TLS 1.3 only: a KeyUpdate record under the current key, then the
    /// next key for every record after it (as a client's rustls would do).
    pub fn key_update(&mut self, update_requested: bool) -> Vec<u8> {
        let rec = self.record(
            ContentType::Handshake,
            &[24, 0, 0, 1, u8::from(update_requested)],
        );
        self.rekey();
        rec
    }

    /// TLS 1.3 only: switches to the next sending key, as after sending a
    /// KeyUpdate (which a fuzzer may also spell as a raw handshake record).
    pub fn rekey(&mut self) {
        assert!(is_tls13(self.suite), "KeyUpdate is TLS 1.3 only");
        let (seq, secrets) = self.kernel.update_tx_secret().expect("client key update");
        self.enc = encrypter(self.suite, secrets);
        self.start_at(seq);
    }

    pub fn suite(&self) -> SupportedCipherSuite {
        self.suite
    }
}

/// Same mapping as `engine/src/record/keys.rs` (private there): TLS 1.2
/// splits `iv` into the fixed IV and the explicit-nonce seed.
fn encrypter(
    suite: SupportedCipherSuite,
    secrets: ConnectionTrafficSecrets,
) -> Box<dyn MessageEncrypter> {
    let (key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
        _ => panic!("secrets of an AEAD the engine does not use"),
    };
    match suite {
        SupportedCipherSuite::Tls13(s) => s.aead_alg.encrypter(key, iv),
        SupportedCipherSuite::Tls12(s) => {
            let shape = s.aead_alg.key_block_shape();
            let (fixed, explicit) = (shape.fixed_iv_len, shape.explicit_nonce_len);
            assert_eq!(fixed + explicit, NONCE_LEN);
            let iv = iv.as_ref();
            s.aead_alg.encrypter(key, &iv[..fixed], &iv[fixed..])
        }
    }
}
