//! The trust matrix: every peer_verify mode and extra check against every
//! kind of client, with the exact outcome the semantics in `tls/mod.rs`
//! require. One line per client, one cell per mode; each cell is one full
//! in-memory handshake.

use rcgen::date_time_ymd;
use rustls::version::{TLS12, TLS13};

use super::fixture::Fixture;
use super::pki::{self, Leaf, LeafSpec};
use super::pump::{client_config, connect, ClientAuth};
use crate::tls::{build_server_config, HandshakeFailure, PeerVerify, TlsSettings};

/// None = accepted; Some(reason) = refused for exactly that reason.
type Expect = Option<HandshakeFailure>;
const OK: Expect = None;
const UNKNOWN_CA: Expect = Some(HandshakeFailure::UnknownCa);
const EXPIRED: Expect = Some(HandshakeFailure::Expired);
const NOT_YET: Expect = Some(HandshakeFailure::NotYetValid);
const REVOKED: Expect = Some(HandshakeFailure::Revoked);
const NO_CERT: Expect = Some(HandshakeFailure::NoClientCert);
const DN: Expect = Some(HandshakeFailure::DnNotTrusted);
const FPR: Expect = Some(HandshakeFailure::FingerprintNotTrusted);
const PEER: Expect = Some(HandshakeFailure::PeerNotPermitted);

/// The columns. The last five are required-trusted plus one extra check.
const MODES: [&str; 9] = [
    "optional-untrusted",
    "optional-trusted",
    "required-untrusted",
    "required-trusted",
    "trusted_dn",
    "trusted_keys sha256",
    "trusted_keys sha1",
    "permitted_peer",
    "crl",
];

/// The rows: what each client presents.
#[derive(Debug, Clone, Copy)]
enum Client {
    /// Signed by the client CA, CN/SAN client.example.com, O=Ringest Test.
    Valid,
    NoCert,
    /// Same names, signed by a CA the server does not know.
    OtherCa,
    Expired,
    NotYetValid,
    /// Valid, but its serial is in the CRL.
    Revoked,
    SelfSigned,
    /// Signed by the client CA, but CN=intruder.evil.test, O=Evil Corp.
    WrongDn,
    /// Signed by the client CA, right DN pattern, but not the pinned key.
    WrongFingerprint,
}

const REVOKED_SERIAL: u64 = 666;

#[rustfmt::skip]
const TABLE: &[(Client, [Expect; 9])] = &[
    //                          opt-untr  opt-tr      req-untr  req-tr      trusted_dn  keys256  keys1  permitted  crl
    (Client::Valid,            [OK,       OK,         OK,       OK,         OK,         OK,      OK,    OK,        OK]),
    (Client::NoCert,           [OK,       OK,         NO_CERT,  NO_CERT,    NO_CERT,    NO_CERT, NO_CERT, NO_CERT, NO_CERT]),
    (Client::OtherCa,          [OK,       UNKNOWN_CA, OK,       UNKNOWN_CA, UNKNOWN_CA, UNKNOWN_CA, UNKNOWN_CA, UNKNOWN_CA, UNKNOWN_CA]),
    (Client::Expired,          [OK,       EXPIRED,    OK,       EXPIRED,    EXPIRED,    EXPIRED, EXPIRED, EXPIRED, EXPIRED]),
    (Client::NotYetValid,      [OK,       NOT_YET,    OK,       NOT_YET,    NOT_YET,    NOT_YET, NOT_YET, NOT_YET, NOT_YET]),
    (Client::Revoked,          [OK,       OK,         OK,       OK,         OK,         FPR,     FPR,   OK,        REVOKED]),
    (Client::SelfSigned,       [OK,       UNKNOWN_CA, OK,       UNKNOWN_CA, UNKNOWN_CA, UNKNOWN_CA, UNKNOWN_CA, UNKNOWN_CA, UNKNOWN_CA]),
    (Client::WrongDn,          [OK,       OK,         OK,       OK,         DN,         FPR,     FPR,   PEER,      OK]),
    (Client::WrongFingerprint, [OK,       OK,         OK,       OK,         OK,         FPR,     FPR,   OK,        OK]),
];

struct Clients {
    valid: Leaf,
    other_ca: Leaf,
    expired: Leaf,
    not_yet_valid: Leaf,
    revoked: Leaf,
    self_signed: Leaf,
    wrong_dn: Leaf,
    wrong_fingerprint: Leaf,
}

impl Clients {
    fn new(fx: &Fixture) -> Clients {
        let other_ca = pki::TestCa::new("Some Other CA");
        let valid = LeafSpec::client("client.example.com", &["client.example.com"], 10);
        Clients {
            valid: fx.client_ca.issue(&valid),
            other_ca: other_ca.issue(&valid),
            expired: fx.client_ca.issue(&LeafSpec {
                not_before: date_time_ymd(2000, 1, 1),
                not_after: date_time_ymd(2001, 1, 1),
                ..LeafSpec::client("expired.example.com", &["expired.example.com"], 11)
            }),
            not_yet_valid: fx.client_ca.issue(&LeafSpec {
                not_before: date_time_ymd(2090, 1, 1),
                not_after: date_time_ymd(2091, 1, 1),
                ..LeafSpec::client("future.example.com", &["future.example.com"], 12)
            }),
            revoked: fx.client_ca.issue(&LeafSpec::client(
                "revoked.example.com",
                &["revoked.example.com"],
                REVOKED_SERIAL,
            )),
            self_signed: pki::self_signed(&valid),
            wrong_dn: fx.client_ca.issue(&LeafSpec {
                org: "Evil Corp",
                country: "XX",
                ..LeafSpec::client("intruder.evil.test", &["intruder.evil.test"], 13)
            }),
            wrong_fingerprint: fx.client_ca.issue(&LeafSpec::client(
                "other.example.com",
                &["other.example.com"],
                14,
            )),
        }
    }

    fn get(&self, client: Client) -> Option<&Leaf> {
        match client {
            Client::Valid => Some(&self.valid),
            Client::NoCert => None,
            Client::OtherCa => Some(&self.other_ca),
            Client::Expired => Some(&self.expired),
            Client::NotYetValid => Some(&self.not_yet_valid),
            Client::Revoked => Some(&self.revoked),
            Client::SelfSigned => Some(&self.self_signed),
            Client::WrongDn => Some(&self.wrong_dn),
            Client::WrongFingerprint => Some(&self.wrong_fingerprint),
        }
    }
}

fn mode_settings(fx: &Fixture, clients: &Clients, mode: &str) -> TlsSettings {
    let trusted = TlsSettings {
        peer_verify: PeerVerify::RequiredTrusted,
        ..fx.base.clone()
    };
    let sha256 =
        crate::tls::fingerprint::colon_hex(&crate::tls::fingerprint::sha256(&clients.valid.cert));
    let sha1 =
        crate::tls::fingerprint::colon_hex(&crate::tls::fingerprint::sha1(&clients.valid.cert));
    match mode {
        "trusted_dn" => TlsSettings {
            trusted_dn: vec!["*, O=Ringest Test, C=HU".into()],
            ..trusted
        },
        "trusted_keys sha256" => TlsSettings {
            trusted_keys: vec![sha256],
            ..trusted
        },
        // syslog-ng's own form, lower-cased to check case-insensitivity.
        "trusted_keys sha1" => TlsSettings {
            trusted_keys: vec![format!("SHA1:{}", sha1.to_lowercase())],
            ..trusted
        },
        "permitted_peer" => TlsSettings {
            permitted_peer: vec!["*.example.com".into()],
            ..trusted
        },
        "crl" => TlsSettings {
            crl_file: Some(
                fx.dir.write(
                    "client-ca.crl.pem",
                    fx.client_ca
                        .crl_pem(&[REVOKED_SERIAL], date_time_ymd(2090, 1, 1)),
                ),
            ),
            ..trusted
        },
        plain => TlsSettings {
            peer_verify: PeerVerify::parse(plain).unwrap(),
            ..fx.base.clone()
        },
    }
}

fn run_matrix(versions: &[&'static rustls::SupportedProtocolVersion]) {
    let fx = Fixture::new("matrix");
    let clients = Clients::new(&fx);
    let mut failures = Vec::new();
    let mut cells = 0;
    for (column, mode) in MODES.iter().enumerate() {
        let server_config = build_server_config(&mode_settings(&fx, &clients, mode)).unwrap();
        for (client, expects) in TABLE {
            let leaf = clients.get(*client);
            let auth = leaf.map_or(ClientAuth::None, ClientAuth::Cert);
            let client_cfg = client_config(&fx.server_ca_der(), auth, versions);
            let session = connect(server_config.clone(), client_cfg);
            let got = session
                .server_result
                .as_ref()
                .err()
                .map(HandshakeFailure::classify);
            let want = &expects[column];
            cells += 1;
            if &got != want {
                failures.push(format!(
                    "{mode:>20} x {client:<16?}: want {want:?}, got {got:?} ({:?})",
                    session.server_result
                ));
                continue;
            }
            // An accepted client with a certificate is visible to the
            // engine; one without is not.
            if got.is_none() {
                let presented = session.server.peer_certificates().map(|c| c[0].clone());
                assert_eq!(
                    presented.as_ref(),
                    leaf.map(|l| &l.cert),
                    "{mode} x {client:?}"
                );
            }
        }
    }
    assert_eq!(cells, MODES.len() * TABLE.len());
    assert!(
        failures.is_empty(),
        "matrix mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn trust_matrix_tls13() {
    run_matrix(&[&TLS13]);
}

/// Under TLS 1.2 the client certificate is checked before the client's
/// Finished, a different code path in rustls; the verdicts must not change.
#[test]
fn trust_matrix_tls12() {
    run_matrix(&[&TLS12]);
}
