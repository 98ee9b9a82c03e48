//! Protocol choices: versions, suites, tickets, 0-RTT, and refusals that
//! are not about certificates.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::aws_lc_rs::{self, cipher_suite as cs};
use rustls::server::UnbufferedServerConnection;
use rustls::version::{TLS12, TLS13};
use rustls::{
    CipherSuite, ClientConfig, HandshakeKind, ProtocolVersion, RootCertStore, ServerConnection,
};

use super::fixture::Fixture;
use super::pki::LeafSpec;
use super::pump::{client_config, connect, unsolicited_server_bytes, ClientAuth};
use crate::tls::{build_server_config, HandshakeFailure, PeerVerify, TlsSettings, TlsVersion};

fn untrusted(fx: &Fixture) -> TlsSettings {
    TlsSettings {
        peer_verify: PeerVerify::OptionalUntrusted,
        ..fx.base.clone()
    }
}

/// RFC 9662's mandatory TLS 1.2 suite with an RSA-2048 server certificate:
/// chosen by default, and selectable by its OpenSSL name.
#[test]
fn tls12_ecdhe_rsa_aes128_gcm_with_rsa2048_server() {
    let fx = Fixture::with_server_alg("proto-rsa", &rcgen::PKCS_RSA_SHA256);
    let explicit = TlsSettings {
        cipher_suites: vec!["ECDHE-RSA-AES128-GCM-SHA256".into()],
        tls_version_max: TlsVersion::Tls12,
        ..untrusted(&fx)
    };
    for settings in [untrusted(&fx), explicit] {
        let session = connect(
            build_server_config(&settings).unwrap(),
            client_config(&fx.server_ca_der(), ClientAuth::None, &[&TLS12]),
        );
        session.server_result.unwrap();
        assert_eq!(
            session.server.protocol_version(),
            Some(ProtocolVersion::TLSv1_2)
        );
        assert_eq!(
            session.server.negotiated_cipher_suite().unwrap().suite(),
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        );
    }
}

#[test]
fn config_flags_for_ktls_no_0rtt_no_tickets() {
    let fx = Fixture::new("proto-flags");
    let config = build_server_config(&fx.base).unwrap();
    assert!(config.enable_secret_extraction);
    assert_eq!(config.max_early_data_size, 0);
    assert_eq!(config.send_tls13_tickets, 0);
    assert!(config.ignore_client_order);
    assert!(!config.send_half_rtt_data);
    // The engine's connection type accepts the config.
    UnbufferedServerConnection::new(config).unwrap();
}

/// No ticket is sent after a TLS 1.3 handshake, no TLS 1.2 session is
/// cached, so a client that tries to resume always gets a full handshake.
#[test]
fn tickets_and_resumption_are_off() {
    let fx = Fixture::new("proto-tickets");
    let server_config = build_server_config(&untrusted(&fx)).unwrap();
    for version in [&TLS13, &TLS12] {
        let mut client = Arc::unwrap_or_clone(client_config(
            &fx.server_ca_der(),
            ClientAuth::None,
            &[version],
        ));
        client.resumption = Resumption::in_memory_sessions(16);
        client.enable_early_data = true;
        let client = Arc::new(client);
        for attempt in 0..2 {
            let mut session = connect(server_config.clone(), client.clone());
            session.server_result.as_ref().unwrap();
            assert_eq!(
                unsolicited_server_bytes(&mut session),
                0,
                "{version:?} #{attempt}"
            );
            assert_eq!(
                session.server.handshake_kind(),
                Some(HandshakeKind::Full),
                "{version:?} #{attempt}"
            );
            assert!(!session.client.is_early_data_accepted());
        }
    }
}

/// The server's order wins: a client that prefers ChaCha20 still gets
/// AES-128-GCM.
#[test]
fn server_prefers_aes_gcm_over_client_order() {
    let fx = Fixture::new("proto-order");
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites = vec![
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_AES_128_GCM_SHA256,
    ];
    let mut roots = RootCertStore::empty();
    roots.add(fx.server_ca_der()).unwrap();
    let client = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let session = connect(
        build_server_config(&untrusted(&fx)).unwrap(),
        Arc::new(client),
    );
    session.server_result.unwrap();
    assert_eq!(
        session.server.negotiated_cipher_suite().unwrap().suite(),
        CipherSuite::TLS13_AES_128_GCM_SHA256
    );
}

#[test]
fn version_and_suite_mismatch_is_no_shared_protocol() {
    let fx = Fixture::new("proto-mismatch");
    let tls13_only = TlsSettings {
        tls_version_min: TlsVersion::Tls13,
        ..untrusted(&fx)
    };
    let session = connect(
        build_server_config(&tls13_only).unwrap(),
        client_config(&fx.server_ca_der(), ClientAuth::None, &[&TLS12]),
    );
    let err = session.server_result.unwrap_err();
    assert_eq!(
        HandshakeFailure::classify(&err),
        HandshakeFailure::NoSharedProtocol,
        "{err}"
    );

    let chacha_only = TlsSettings {
        cipher_suites: vec!["TLS_CHACHA20_POLY1305_SHA256".into()],
        tls_version_min: TlsVersion::Tls13,
        ..untrusted(&fx)
    };
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites = vec![cs::TLS13_AES_128_GCM_SHA256];
    let mut roots = RootCertStore::empty();
    roots.add(fx.server_ca_der()).unwrap();
    let client = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let session = connect(build_server_config(&chacha_only).unwrap(), Arc::new(client));
    let err = session.server_result.unwrap_err();
    assert_eq!(
        HandshakeFailure::classify(&err),
        HandshakeFailure::NoSharedProtocol,
        "{err}"
    );
}

/// Plain syslog or HTTP sent to the TLS port: the sniffer says so from
/// the first bytes, and rustls' own error classifies the same way.
#[test]
fn plaintext_on_tls_port_is_not_tls() {
    let fx = Fixture::new("proto-plain");
    let config = build_server_config(&fx.base).unwrap();
    for bytes in [
        &b"<14>1 2024-01-01T00:00:00Z host app - - - hello\n"[..],
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        assert!(!crate::tls::looks_like_tls(bytes));
        let mut server = ServerConnection::new(config.clone()).unwrap();
        server.read_tls(&mut &bytes[..]).unwrap();
        let err = server.process_new_packets().unwrap_err();
        assert_eq!(
            HandshakeFailure::classify(&err),
            HandshakeFailure::NotTls,
            "{err}"
        );
    }
    // And a real ClientHello passes the sniffer.
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(
        client_config(&fx.server_ca_der(), ClientAuth::None, &[&TLS13]),
        name,
    )
    .unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    assert!(crate::tls::looks_like_tls(&hello[..5]));
}

/// The client refuses our server certificate (it trusts another CA): the
/// server sees the client's alert.
#[test]
fn client_refusing_server_cert_is_peer_alert() {
    let fx = Fixture::new("proto-alert");
    let stranger = super::pki::TestCa::new("Stranger CA");
    let client = fx
        .client_ca
        .issue(&LeafSpec::client("c.example.com", &["c.example.com"], 3));
    let session = connect(
        build_server_config(&fx.base).unwrap(),
        client_config(stranger.cert().der(), ClientAuth::Cert(&client), &[&TLS13]),
    );
    let failure = HandshakeFailure::classify(&session.server_result.unwrap_err());
    assert_eq!(failure, HandshakeFailure::PeerAlert("UnknownCA".into()));
    assert_eq!(failure.label(), "peer_alert");
}
