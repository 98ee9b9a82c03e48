//! Trust-check order and the verifier's finer points beyond the matrix.

use std::sync::Arc;

use rcgen::{date_time_ymd, ExtendedKeyUsagePurpose};
use rustls::sign::SingleCertAndKey;
use rustls::version::{TLS12, TLS13};
use rustls::SupportedProtocolVersion;

use super::fixture::Fixture;
use super::pki::{self, Leaf, LeafSpec, TestCa};
use super::pump::{client_config, connect, ClientAuth};
use crate::tls::fingerprint::{colon_hex, sha256};
use crate::tls::{build_server_config, HandshakeFailure, PeerVerify, TlsSettings};

/// The server's verdict for `leaf` under `settings`: None = accepted.
fn verdict(fx: &Fixture, settings: &TlsSettings, auth: ClientAuth<'_>) -> Option<HandshakeFailure> {
    verdict_with(fx, settings, auth, &[&TLS13])
}

fn verdict_with(
    fx: &Fixture,
    settings: &TlsSettings,
    auth: ClientAuth<'_>,
    versions: &[&'static SupportedProtocolVersion],
) -> Option<HandshakeFailure> {
    let session = connect(
        build_server_config(settings).unwrap(),
        client_config(&fx.server_ca_der(), auth, versions),
    );
    session
        .server_result
        .as_ref()
        .err()
        .map(HandshakeFailure::classify)
}

fn pin(leaf: &Leaf) -> String {
    colon_hex(&sha256(&leaf.cert))
}

/// Chain first, then trusted_keys, then trusted_dn, then permitted_peer;
/// the first failure is the reason, and all configured checks must pass.
#[test]
fn check_order_is_chain_keys_dn_peer() {
    let fx = Fixture::new("order");
    let good_dn = fx
        .client_ca
        .issue(&LeafSpec::client("a.example.com", &["a.example.com"], 1));
    let bad_dn = fx.client_ca.issue(&LeafSpec {
        org: "Evil Corp",
        ..LeafSpec::client("b.example.com", &["b.example.com"], 2)
    });
    let wrong_name = fx.client_ca.issue(&LeafSpec::client(
        "c.elsewhere.test",
        &["c.elsewhere.test"],
        3,
    ));
    let expired = fx.client_ca.issue(&LeafSpec {
        not_before: date_time_ymd(2000, 1, 1),
        not_after: date_time_ymd(2001, 1, 1),
        ..LeafSpec::client("d.example.com", &["d.example.com"], 4)
    });
    let settings = TlsSettings {
        trusted_keys: vec![pin(&good_dn), pin(&bad_dn), pin(&wrong_name)],
        trusted_dn: vec!["*, O=Ringest Test, C=HU".into()],
        permitted_peer: vec!["*.example.com".into()],
        ..fx.base.clone()
    };
    let unpinned_bad_dn = fx.client_ca.issue(&LeafSpec {
        org: "Evil Corp",
        ..LeafSpec::client("e.example.com", &["e.example.com"], 5)
    });
    let unpinned_good_dn =
        fx.client_ca
            .issue(&LeafSpec::client("f.example.com", &["f.example.com"], 6));

    #[rustfmt::skip]
    let cases: [(&str, &Leaf, Option<HandshakeFailure>); 6] = [
        ("passes every check",              &good_dn,          None),
        ("expired and not pinned: chain",   &expired,          Some(HandshakeFailure::Expired)),
        ("not pinned, bad DN: keys first",  &unpinned_bad_dn,  Some(HandshakeFailure::FingerprintNotTrusted)),
        ("not pinned, good DN",             &unpinned_good_dn, Some(HandshakeFailure::FingerprintNotTrusted)),
        ("pinned, bad DN",                  &bad_dn,           Some(HandshakeFailure::DnNotTrusted)),
        ("pinned, good DN, name not permitted", &wrong_name,   Some(HandshakeFailure::PeerNotPermitted)),
    ];
    for (what, leaf, want) in cases {
        assert_eq!(
            verdict(&fx, &settings, ClientAuth::Cert(leaf)),
            want,
            "{what}"
        );
    }
}

/// required-untrusted does not validate the chain, but a client must still
/// prove it holds the key of the certificate it presents: a copied public
/// certificate with some other key is refused, under both TLS versions.
#[test]
fn required_untrusted_still_checks_proof_of_possession() {
    let fx = Fixture::new("pop");
    let settings = TlsSettings {
        peer_verify: PeerVerify::RequiredUntrusted,
        ..fx.base.clone()
    };
    let victim = fx
        .client_ca
        .issue(&LeafSpec::client("victim.example.com", &[], 1));
    let thief = pki::self_signed(&LeafSpec::client("thief.example.com", &[], 2));
    let forged = Arc::new(SingleCertAndKey::from(victim.certified_with(thief.key())));
    for version in [&TLS13, &TLS12] {
        assert_eq!(
            verdict_with(
                &fx,
                &settings,
                ClientAuth::Resolver(forged.clone()),
                &[version]
            ),
            Some(HandshakeFailure::BadCertificate),
            "{version:?}"
        );
        // The same certificate with its own key is fine.
        assert_eq!(
            verdict_with(&fx, &settings, ClientAuth::Cert(&victim), &[version]),
            None
        );
    }
}

/// required-untrusted + trusted_keys = rsyslog's x509/fingerprint: pinned
/// self-signed certificates, no CA at all.
#[test]
fn required_untrusted_with_trusted_keys_pins_self_signed_certs() {
    let fx = Fixture::new("pin");
    let pinned = pki::self_signed(&LeafSpec::client("pinned.example.com", &[], 1));
    let other = pki::self_signed(&LeafSpec::client("other.example.com", &[], 2));
    let settings = TlsSettings {
        peer_verify: PeerVerify::RequiredUntrusted,
        ca_file: None,
        trusted_keys: vec![pin(&pinned)],
        ..fx.base.clone()
    };
    assert_eq!(verdict(&fx, &settings, ClientAuth::Cert(&pinned)), None);
    assert_eq!(
        verdict(&fx, &settings, ClientAuth::Cert(&other)),
        Some(HandshakeFailure::FingerprintNotTrusted)
    );
    assert_eq!(
        verdict(&fx, &settings, ClientAuth::None),
        Some(HandshakeFailure::NoClientCert)
    );
}

/// In optional-untrusted, constraints apply to a certificate that is sent
/// (syslog-ng would ignore them); a client sending none is still accepted.
#[test]
fn optional_untrusted_applies_constraints_to_presented_certs() {
    let fx = Fixture::new("opt-untrusted");
    let good = fx
        .client_ca
        .issue(&LeafSpec::client("a.example.com", &[], 1));
    let bad = fx.client_ca.issue(&LeafSpec {
        org: "Evil",
        ..LeafSpec::client("b.example.com", &[], 2)
    });
    let settings = TlsSettings {
        peer_verify: PeerVerify::OptionalUntrusted,
        trusted_dn: vec!["*, O=Ringest Test, C=HU".into()],
        allow_unverified_names: true,
        ..fx.base.clone()
    };
    assert_eq!(verdict(&fx, &settings, ClientAuth::Cert(&good)), None);
    assert_eq!(
        verdict(&fx, &settings, ClientAuth::Cert(&bad)),
        Some(HandshakeFailure::DnNotTrusted)
    );
    assert_eq!(verdict(&fx, &settings, ClientAuth::None), None);
}

/// CRL edge cases: an expired CRL refuses (fail closed), a client whose
/// issuer has no CRL loaded is accepted (syslog-ng's behaviour).
#[test]
fn crl_expired_refuses_and_missing_crl_for_issuer_accepts() {
    let fx = Fixture::new("crl-edges");
    let client = fx
        .client_ca
        .issue(&LeafSpec::client("a.example.com", &[], 1));
    let stale = TlsSettings {
        crl_file: Some(fx.dir.write(
            "stale.crl",
            fx.client_ca.crl_pem(&[], date_time_ymd(2021, 1, 1)),
        )),
        ..fx.base.clone()
    };
    assert_eq!(
        verdict(&fx, &stale, ClientAuth::Cert(&client)),
        Some(HandshakeFailure::CrlExpired)
    );

    let unrelated = TestCa::new("Unrelated CA");
    let other_issuer = TlsSettings {
        crl_file: Some(fx.dir.write(
            "other.crl",
            unrelated.crl_pem(&[1], date_time_ymd(2090, 1, 1)),
        )),
        ..fx.base.clone()
    };
    assert_eq!(verdict(&fx, &other_issuer, ClientAuth::Cert(&client)), None);
}

/// A certificate whose extendedKeyUsage is serverAuth only is refused as a
/// client certificate (syslog-ng would warn and accept; see mod.rs).
#[test]
fn server_only_eku_is_wrong_purpose() {
    let fx = Fixture::new("purpose");
    let server_only = fx.client_ca.issue(&LeafSpec {
        eku: ExtendedKeyUsagePurpose::ServerAuth,
        ..LeafSpec::client("a.example.com", &[], 1)
    });
    assert_eq!(
        verdict(&fx, &fx.base, ClientAuth::Cert(&server_only)),
        Some(HandshakeFailure::WrongPurpose)
    );
}

/// ca_file holds only the root; the client sends its intermediate.
#[test]
fn client_chain_through_intermediate_is_accepted() {
    let fx = Fixture::new("intermediate");
    let intermediate = fx.client_ca.intermediate("Ringest Test Issuing CA");
    let leaf = intermediate.issue(&LeafSpec::client("a.example.com", &[], 1));
    let mut chain = leaf.certified_with(leaf.key());
    Arc::get_mut(&mut chain)
        .unwrap()
        .cert
        .push(intermediate.cert().der().clone());
    let with_chain = Arc::new(SingleCertAndKey::from(chain));
    assert_eq!(
        verdict(&fx, &fx.base, ClientAuth::Resolver(with_chain)),
        None
    );
    // Without the intermediate the root cannot be reached.
    assert_eq!(
        verdict(&fx, &fx.base, ClientAuth::Cert(&leaf)),
        Some(HandshakeFailure::UnknownCa)
    );
}

/// A client's certificate names reach the refusal log line through
/// `refusal_detail`: control characters in them (a newline that forges a
/// second log line, an ANSI escape that repaints the terminal) must come
/// out escaped, for the DN as for the names tried against permitted_peer.
#[test]
fn peer_names_with_control_characters_are_escaped_in_the_refusal_detail() {
    let fx = Fixture::new("escape-names");
    let hostile = fx.client_ca.issue(&LeafSpec {
        org: "Evil\r\nINFO forged",
        ..LeafSpec::client(
            "evil\nERROR forged line \u{1b}[2J\u{202e}",
            &["a\u{7}b.example.org"],
            7,
        )
    });
    for settings in [
        TlsSettings {
            permitted_peer: vec!["*.example.com".into()],
            ..fx.base.clone()
        },
        TlsSettings {
            trusted_dn: vec!["*, O=Ringest Test, C=HU".into()],
            ..fx.base.clone()
        },
    ] {
        let session = connect(
            build_server_config(&settings).unwrap(),
            client_config(&fx.server_ca_der(), ClientAuth::Cert(&hostile), &[&TLS13]),
        );
        let err = session.server_result.expect_err("refused");
        let detail = crate::tls::refusal_detail(&err).expect("a policy refusal");
        assert!(
            !detail.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "raw control character in {detail:?}"
        );
        assert!(detail.contains(r"\u{1b}[2J"), "{detail}");
    }
}
