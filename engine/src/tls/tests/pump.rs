//! Drives a rustls client and server against each other in memory.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, RootCertStore, ServerConfig, ServerConnection,
};

use super::pki::Leaf;

/// Rounds of client->server->client flights; a full handshake needs 2-3.
const ROUNDS_MAX: usize = 16;

/// The end state of one in-memory connection.
pub(crate) struct Session {
    /// What the server's `process_new_packets` said: Ok, or why it refused.
    pub server_result: Result<(), rustls::Error>,
    pub server: ServerConnection,
    pub client: ClientConnection,
}

/// Moves everything `from` wants to send into `to` and lets `to` process
/// it. Returns the byte count; the error is `to`'s.
fn transfer<A, B>(
    from: &mut ConnectionCommon<A>,
    to: &mut ConnectionCommon<B>,
) -> Result<usize, rustls::Error> {
    let mut bytes = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut bytes).unwrap();
    }
    let mut slice = &bytes[..];
    while !slice.is_empty() {
        to.read_tls(&mut slice).unwrap();
        to.process_new_packets()?;
    }
    Ok(bytes.len())
}

/// Runs a handshake, then (if the server accepted) sends one syslog line
/// from the client and checks that the server reads it back. Under TLS 1.3
/// the client believes it is done before the server has checked its
/// certificate, exactly as the real clients in peers.md do; the server's
/// verdict is what counts.
pub(crate) fn connect(
    server_config: Arc<ServerConfig>,
    client_config: Arc<ClientConfig>,
) -> Session {
    let name = ServerName::try_from("localhost").unwrap();
    let mut client = ClientConnection::new(client_config, name).unwrap();
    let mut server = ServerConnection::new(server_config).unwrap();
    let mut server_result = Ok(());
    for _ in 0..ROUNDS_MAX {
        let to_server = match transfer(&mut client, &mut server) {
            Ok(n) => n,
            Err(e) => {
                server_result = Err(e);
                break;
            }
        };
        // A client-side error shows up as an alert the server reads next
        // round, so it is not recorded separately.
        let to_client = transfer(&mut server, &mut client).unwrap_or(1);
        if to_server == 0 && to_client == 0 && !server.is_handshaking() && !client.is_handshaking()
        {
            break;
        }
    }
    if server_result.is_ok() {
        assert!(
            !server.is_handshaking(),
            "handshake did not finish in {ROUNDS_MAX} rounds"
        );
        let line = b"<14>1 2024-01-01T00:00:00Z host app - - - hello\n";
        client.writer().write_all(line).unwrap();
        if let Err(e) = transfer(&mut client, &mut server) {
            server_result = Err(e);
        } else {
            let mut got = vec![0u8; line.len()];
            server.reader().read_exact(&mut got).unwrap();
            assert_eq!(&got[..], &line[..]);
        }
    }
    Session {
        server_result,
        server,
        client,
    }
}

/// Bytes the server sends after the handshake without being asked (a TLS
/// 1.3 NewSessionTicket would show up here).
pub(crate) fn unsolicited_server_bytes(session: &mut Session) -> usize {
    let mut out = Vec::new();
    while session.server.wants_write() {
        session.server.write_tls(&mut out).unwrap();
    }
    out.len()
}

/// How the test client authenticates.
pub(crate) enum ClientAuth<'a> {
    None,
    Cert(&'a Leaf),
    /// Any resolver, e.g. a certificate with someone else's key.
    Resolver(Arc<dyn ResolvesClientCert>),
}

/// A client trusting `server_ca`, offering the given versions.
pub(crate) fn client_config(
    server_ca: &CertificateDer<'static>,
    auth: ClientAuth<'_>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(server_ca.clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Cert(leaf) => builder
            .with_client_auth_cert(vec![leaf.cert.clone()], leaf.key())
            .unwrap(),
        ClientAuth::Resolver(resolver) => builder.with_client_cert_resolver(resolver),
    };
    Arc::new(config)
}
