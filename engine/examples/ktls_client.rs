//! ktls_client: the client side of the kTLS guest test (tests/ktls-vm/engine.sh).
//!
//! A rustls client (mutual TLS, one cipher suite) that sends octet-counted
//! syslog messages to a running `ringest`, and can misbehave on purpose
//! after a given number of messages per connection: send close_notify in
//! the middle of its stream, send a TLS 1.3 KeyUpdate and go on, or write
//! bytes that are not TLS. It also makes the test PKI and reads /metrics,
//! so the guest needs nothing but busybox.
//!
//! ```text
//! ktls_client pki DIR
//! ktls_client send --target ADDR --ca CA --cert CERT --key KEY --suite IANA_NAME
//!                  [--connections C] [--count N] [--twist none|close-notify|key-update|garbage]
//!                  [--twist-at K] [--records-per-write R]
//! ktls_client metrics ADDR
//! ```
//!
//! `send` splits N messages over C connections and prints one line,
//! `sent TOTAL before_twist BEFORE conns C suite NAME`: BEFORE counts the
//! messages written before each connection's twist (all of them without
//! one). Messages after a twist may be lost by design (the server closes),
//! so the test expects BEFORE, or TOTAL where nothing may be lost.
//! Exit status 1 on any error that the twist does not explain.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rustls::crypto::aws_lc_rs as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedCipherSuite};

const SOCKET_TIMEOUT_MS: u64 = 30_000;
const GARBAGE: &[u8] = b"GARBAGE, NOT A TLS RECORD\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("pki") => match args.get(1) {
            Some(dir) => make_pki(Path::new(dir)),
            None => Err("usage: ktls_client pki DIR".into()),
        },
        Some("send") => Send::parse(&args[1..]).and_then(|s| s.run()),
        Some("metrics") => match args.get(1) {
            Some(addr) => metrics(addr),
            None => Err("usage: ktls_client metrics ADDR".into()),
        },
        _ => Err("usage: ktls_client pki DIR | send ... | metrics ADDR (see the source)".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ktls_client: {e}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- pki

/// CA (ECDSA P-256), server certificates for localhost/127.0.0.1 with an
/// ECDSA and an RSA-2048 key (TLS 1.2 ECDHE-ECDSA and ECDHE-RSA suites),
/// and an ECDSA client certificate. RSA key generation is slow under TCG:
/// run this on the host.
fn make_pki(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The workspace's one test PKI builder.
    let ca = testkit::Ca::new("ringest ktls-vm CA");
    ca.write(&dir.join("ca.pem"));
    let ecdsa = testkit::LeafSpec::server(1);
    let rsa = testkit::LeafSpec {
        alg: testkit::KeyAlg::Rsa2048,
        ..testkit::LeafSpec::server(2)
    };
    ca.issue(&ecdsa).write(dir, "server-ecdsa");
    ca.issue(&rsa).write(dir, "server-rsa");
    ca.issue(&testkit::LeafSpec::client("ktls-client", 3))
        .write(dir, "client");
    println!("pki written to {}", dir.display());
    Ok(())
}

// ---------------------------------------------------------------- send

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Twist {
    None,
    /// close_notify right behind the last records, in the same write.
    CloseNotify,
    /// `refresh_traffic_keys()`, then the rest of the messages.
    KeyUpdate,
    /// Raw bytes on the TCP stream instead of the rest.
    Garbage,
}

struct Send {
    target: SocketAddr,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    suite: SupportedCipherSuite,
    connections: usize,
    count: usize,
    twist: Twist,
    twist_at: usize,
    records_per_write: usize,
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn need<'a>(args: &'a [String], name: &str) -> Result<&'a str, String> {
    flag(args, name).ok_or_else(|| format!("send: {name} is required"))
}

fn number(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    flag(args, name).map_or(Ok(default), |v| {
        v.parse()
            .map_err(|_| format!("{name}: {v:?} is not a number"))
    })
}

impl Send {
    fn parse(args: &[String]) -> Result<Send, String> {
        let suite_name = need(args, "--suite")?;
        let suite = provider::ALL_CIPHER_SUITES
            .iter()
            .find(|s| format!("{:?}", s.suite()) == suite_name)
            .copied()
            .ok_or_else(|| {
                let names: Vec<String> = provider::ALL_CIPHER_SUITES
                    .iter()
                    .map(|s| format!("{:?}", s.suite()))
                    .collect();
                format!("--suite {suite_name}: not one of {}", names.join(" "))
            })?;
        let twist = match flag(args, "--twist").unwrap_or("none") {
            "none" => Twist::None,
            "close-notify" => Twist::CloseNotify,
            "key-update" => Twist::KeyUpdate,
            "garbage" => Twist::Garbage,
            t => {
                return Err(format!(
                    "--twist {t}: none, close-notify, key-update or garbage"
                ))
            }
        };
        let count = number(args, "--count", 1000)?;
        let connections = number(args, "--connections", 1)?.max(1);
        Ok(Send {
            target: need(args, "--target")?
                .parse()
                .map_err(|e| format!("--target: {e}"))?,
            ca: need(args, "--ca")?.into(),
            cert: need(args, "--cert")?.into(),
            key: need(args, "--key")?.into(),
            suite,
            connections,
            count,
            twist,
            twist_at: number(args, "--twist-at", count / connections / 2)?,
            records_per_write: number(args, "--records-per-write", 50)?.max(1),
        })
    }

    fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca).map_err(|e| format!("ca: {e}"))? {
            roots
                .add(c.map_err(|e| format!("ca: {e}"))?)
                .map_err(|e| format!("ca: {e}"))?;
        }
        let chain = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| format!("cert: {e}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("cert: {e}"))?;
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| format!("key: {e}"))?;
        let version = match self.suite {
            SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
            SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
        };
        let prov = rustls::crypto::CryptoProvider {
            cipher_suites: vec![self.suite],
            ..provider::default_provider()
        };
        let cfg = ClientConfig::builder_with_provider(Arc::new(prov))
            .with_protocol_versions(&[version])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("client cert: {e}"))?;
        Ok(Arc::new(cfg))
    }

    fn run(self) -> Result<(), String> {
        let cfg = self.client_config()?;
        let per_conn = self.count / self.connections;
        let extra = self.count % self.connections;
        let this = Arc::new(self);
        let handles: Vec<_> = (0..this.connections)
            .map(|c| {
                let n = per_conn + usize::from(c < extra);
                let (this, cfg) = (Arc::clone(&this), Arc::clone(&cfg));
                thread::spawn(move || this.one_connection(c, n, cfg))
            })
            .collect();
        let (mut total, mut before, mut errors) = (0, 0, Vec::new());
        for (c, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(Ok((sent, sent_before))) => {
                    total += sent;
                    before += sent_before;
                }
                Ok(Err(e)) => errors.push(format!("connection {c}: {e}")),
                Err(_) => errors.push(format!("connection {c}: panicked")),
            }
        }
        println!(
            "sent {total} before_twist {before} conns {} suite {:?} twist {:?}",
            this.connections,
            this.suite.suite(),
            this.twist
        );
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Returns (messages written, of which before the twist).
    fn one_connection(
        &self,
        c: usize,
        n: usize,
        cfg: Arc<ClientConfig>,
    ) -> Result<(usize, usize), String> {
        let sock = TcpStream::connect(self.target).map_err(|e| format!("connect: {e}"))?;
        let timeout = Some(Duration::from_millis(SOCKET_TIMEOUT_MS));
        sock.set_nodelay(true).map_err(|e| e.to_string())?;
        sock.set_read_timeout(timeout).map_err(|e| e.to_string())?;
        sock.set_write_timeout(timeout).map_err(|e| e.to_string())?;
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let conn = ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| format!("handshake: {e}"))?;
        }
        let twist_at = if self.twist == Twist::None {
            n
        } else {
            self.twist_at.min(n)
        };
        let mut next = 0;
        let mut buf = Vec::new();
        // Up to the twist: everything here must arrive.
        while next < twist_at {
            let end = (next + self.records_per_write).min(twist_at);
            buf.clear();
            for i in next..end {
                message(&mut buf, c, i);
            }
            tls.write_all(&buf).map_err(|e| format!("write: {e}"))?;
            next = end;
        }
        let before = next;
        match self.twist {
            Twist::None => {
                tls.conn.send_close_notify();
                tls.flush().map_err(|e| format!("close_notify: {e}"))?;
            }
            Twist::CloseNotify => {
                // The last records and close_notify leave in one write.
                tls.conn.send_close_notify();
                tls.flush().map_err(|e| format!("close_notify: {e}"))?;
            }
            Twist::Garbage => {
                tls.flush().map_err(|e| format!("flush: {e}"))?;
                // Let the records before it arrive first, then break the stream.
                thread::sleep(Duration::from_millis(100));
                tls.sock
                    .write_all(GARBAGE)
                    .map_err(|e| format!("garbage: {e}"))?;
            }
            Twist::KeyUpdate => {
                tls.flush().map_err(|e| format!("flush: {e}"))?;
                tls.conn
                    .refresh_traffic_keys()
                    .map_err(|e| format!("KeyUpdate: {e}"))?;
                // Then the rest. A server that cannot follow the KeyUpdate
                // closes; writes after it may fail, and that is the case
                // under test, not an error of this client.
                let mut failed = false;
                while next < n && !failed {
                    let end = (next + self.records_per_write).min(n);
                    buf.clear();
                    for i in next..end {
                        message(&mut buf, c, i);
                    }
                    failed = tls.write_all(&buf).is_err();
                    if !failed {
                        next = end;
                    }
                }
                if !failed {
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            }
        }
        // Wait for the server to close (its close_notify, or EOF/reset):
        // only then is every message known to be received. After garbage
        // the TLS state is broken on purpose: read the raw socket.
        let mut sink = Vec::new();
        if self.twist == Twist::Garbage {
            let _ = tls.sock.read_to_end(&mut sink);
        } else {
            let _ = tls.read_to_end(&mut sink);
        }
        Ok((next, before))
    }
}

/// Message `i` of connection `c`, octet-counted; sizes vary.
fn message(out: &mut Vec<u8>, c: usize, i: usize) {
    let body = format!(
        "<13>1 2026-11-26T00:00:00Z guest ktls-client - - - conn={c} seq={i} {}",
        "x".repeat(i * 37 % 300)
    );
    out.extend_from_slice(format!("{} ", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
}

// ---------------------------------------------------------------- metrics

fn metrics(addr: &str) -> Result<(), String> {
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("stats {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut body = String::new();
    s.read_to_string(&mut body).map_err(|e| e.to_string())?;
    let body = body
        .split_once("\r\n\r\n")
        .map_or(body.as_str(), |(_, b)| b);
    print!("{body}");
    io::stdout().flush().map_err(|e| e.to_string())
}
