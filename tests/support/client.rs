//! A small blocking rustls client for tests: connect, handshake, send, close
//! cleanly (close_notify, shut down writes, read to EOF).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

pub fn client_config(ca: &Path, cert_key: Option<(&Path, &Path)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("ca cert")).expect("add ca");
    }
    let b = ClientConfig::builder().with_root_certificates(roots);
    let cfg = match cert_key {
        Some((cert, key)) => {
            let certs: Vec<_> = CertificateDer::pem_file_iter(cert)
                .expect("cert")
                .map(|c| c.expect("cert"))
                .collect();
            let key = PrivateKeyDer::from_pem_file(key).expect("key");
            b.with_client_auth_cert(certs, key).expect("client auth")
        }
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

pub fn connect(addr: SocketAddr, cfg: Arc<ClientConfig>) -> io::Result<TlsStream> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").expect("name");
    let conn = ClientConnection::new(cfg, name).map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

/// close_notify, FIN, then read until the server closes (bounded by the read timeout).
pub fn close(mut s: TlsStream) -> io::Result<()> {
    s.conn.send_close_notify();
    s.flush()?;
    while s.conn.wants_write() {
        s.conn.write_tls(&mut s.sock)?;
    }
    s.sock.shutdown(Shutdown::Write)?;
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Octet-counted frame for `msg`.
pub fn octet_frame(out: &mut Vec<u8>, msg: &[u8]) {
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg);
}
