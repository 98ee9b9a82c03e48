//! PeerIdentity as the engine computes it: from what the server connection
//! reports after a real (in-memory) handshake.

use std::net::{IpAddr, Ipv4Addr};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType,
};
use rustls::version::{TLS12, TLS13};
use rustls::ServerConnection;

use super::fixture::Fixture;
use super::pki::Leaf;
use super::pump::{client_config, connect, ClientAuth};
use crate::tls::{build_server_config, PeerIdentity, PeerVerify, TlsSettings};

fn identity_of(server: &ServerConnection) -> PeerIdentity {
    PeerIdentity::from_parts(
        server.protocol_version().unwrap(),
        server.negotiated_cipher_suite(),
        server.peer_certificates(),
    )
}

#[test]
fn identity_of_cert_with_cn_and_sans() {
    let fx = Fixture::new("identity");
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "HU");
    dn.push(DnType::OrganizationName, "Ringest Test");
    dn.push(DnType::CommonName, "relay-01");
    params.distinguished_name = dn;
    params.subject_alt_names = vec![
        SanType::DnsName("relay-01.example.com".try_into().unwrap()),
        SanType::DnsName("logs.example.com".try_into().unwrap()),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
        SanType::Rfc822Name("ops@example.com".try_into().unwrap()),
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params
        .signed_by(&key, fx.client_ca.cert(), fx.client_ca.key())
        .unwrap();
    let leaf = Leaf {
        cert: cert.der().clone(),
        key_pkcs8: key.serialize_der(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    };
    let session = connect(
        build_server_config(&fx.base).unwrap(),
        client_config(&fx.server_ca_der(), ClientAuth::Cert(&leaf), &[&TLS13]),
    );
    session.server_result.unwrap();
    let id = identity_of(&session.server);
    let fingerprint =
        crate::tls::fingerprint::colon_hex(&crate::tls::fingerprint::sha256(&leaf.cert));
    assert_eq!(
        id,
        PeerIdentity {
            tls_version: "TLSv1.3",
            cipher: "TLS_AES_128_GCM_SHA256",
            client_cn: Some("relay-01".into()),
            client_sans: vec![
                "relay-01.example.com".into(),
                "logs.example.com".into(),
                "192.0.2.7".into(),
                "ops@example.com".into(),
            ],
            client_sha256: Some(fingerprint.clone()),
            client_issuer: Some("CN=Ringest Test Client CA, O=Ringest Test".into()),
        }
    );
    // Held for the connection's whole life: no spare capacity.
    assert_eq!(id.client_sans.capacity(), id.client_sans.len());
    for s in [&id.client_cn, &id.client_issuer].into_iter().flatten() {
        assert_eq!(s.capacity(), s.len(), "{s}");
    }
    // The fingerprint is in the form trusted_keys accepts.
    assert_eq!(fingerprint.len(), 32 * 3 - 1);
    let pinned = TlsSettings {
        trusted_keys: vec![fingerprint],
        ..fx.base.clone()
    };
    build_server_config(&pinned).unwrap();
}

#[test]
fn identity_without_client_cert() {
    let fx = Fixture::new("identity-none");
    let settings = TlsSettings {
        peer_verify: PeerVerify::OptionalUntrusted,
        ..fx.base.clone()
    };
    let session = connect(
        build_server_config(&settings).unwrap(),
        client_config(&fx.server_ca_der(), ClientAuth::None, &[&TLS12]),
    );
    session.server_result.unwrap();
    assert_eq!(
        identity_of(&session.server),
        PeerIdentity {
            tls_version: "TLSv1.2",
            cipher: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            client_cn: None,
            client_sans: vec![],
            client_sha256: None,
            client_issuer: None,
        }
    );
}

/// In the untrusted modes an unparsable certificate could get through the
/// policy-free path; the identity then carries only its fingerprint.
#[test]
fn identity_of_unparsable_cert_keeps_fingerprint() {
    let junk = rustls::pki_types::CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    let id = PeerIdentity::from_parts(rustls::ProtocolVersion::TLSv1_3, None, Some(&[junk][..]));
    assert!(id.client_sha256.is_some());
    assert_eq!(
        (id.client_cn, id.client_issuer, id.cipher),
        (None, None, "unknown")
    );
}
