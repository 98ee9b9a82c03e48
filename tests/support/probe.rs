//! A TLS client for policy tests: it knows its own address before the
//! handshake (so the server's refusal log line can be matched to it),
//! pins the protocol version, presents any certificate (expired,
//! self-signed, ...; a client does not check its own), and reports every
//! step's outcome instead of panicking, because a refused client is an
//! expected result.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};

use crate::client::{close, TlsStream};

/// A client config trusting the CAs in `ca_pem`, presenting `cert_key`
/// (PEM certificate, PEM key) if given, speaking only `versions`.
pub fn config(
    ca_pem: &str,
    cert_key: Option<(&str, &str)>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("add ca");
    }
    let b = ClientConfig::builder_with_protocol_versions(versions).with_root_certificates(roots);
    let cfg = match cert_key {
        Some((cert, key)) => {
            let certs: Vec<_> = CertificateDer::pem_slice_iter(cert.as_bytes())
                .map(|c| c.expect("cert pem"))
                .collect();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key pem");
            b.with_client_auth_cert(certs, key).expect("client auth")
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// What happened to one client session.
#[derive(Debug)]
pub struct Session {
    /// The client's own address: what the server logs as the peer.
    pub local: SocketAddr,
    /// The client's view of its handshake.
    pub handshake: Result<(), String>,
    /// Writing every record (not attempted if the handshake failed).
    pub send: Result<(), String>,
    /// close_notify, FIN, and reading until the server's close.
    pub close: Result<(), String>,
}

impl Session {
    /// Every step succeeded: the server accepted and read everything.
    pub fn clean(&self) -> bool {
        self.handshake.is_ok() && self.send.is_ok() && self.close.is_ok()
    }
}

/// Opens a TCP connection (its local address known up front), then
/// handshakes. The stream's reads time out after 10 s.
pub fn open(addr: SocketAddr, cfg: Arc<ClientConfig>) -> (SocketAddr, io::Result<TlsStream>) {
    let tcp = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(t) => t,
        Err(e) => return (SocketAddr::from(([0, 0, 0, 0], 0)), Err(e)),
    };
    let local = tcp.local_addr().expect("local addr");
    let result = (|| {
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
        let name = ServerName::try_from("localhost").expect("name");
        let conn = ClientConnection::new(cfg, name).map_err(io::Error::other)?;
        let mut s = StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(s)
    })();
    (local, result)
}

/// One session: handshake, each of `records` written as its own TLS record
/// (and its own write), then a clean close.
pub fn session(addr: SocketAddr, cfg: Arc<ClientConfig>, records: &[Vec<u8>]) -> Session {
    let (local, stream) = open(addr, cfg);
    let mut s = match stream {
        Ok(s) => s,
        Err(e) => {
            let skipped = Err("not attempted".to_string());
            return Session {
                local,
                handshake: Err(e.to_string()),
                send: skipped.clone(),
                close: skipped,
            };
        }
    };
    let mut send = Ok(());
    for r in records {
        if let Err(e) = s.write_all(r).and_then(|()| s.flush()) {
            send = Err(e.to_string());
            break;
        }
    }
    let close = close(s).map_err(|e| e.to_string());
    Session {
        local,
        handshake: Ok(()),
        send,
        close,
    }
}
