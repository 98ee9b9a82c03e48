//! An unbuffered client against an unbuffered server, both through
//! [`drive`], in memory: the handshake, data that comes with the client's
//! Finished, a refusal and its alert, and close_notify both ways.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::UnbufferedServerConnection;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::*;

struct Pki {
    ca: CertificateDer<'static>,
    other_ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: Vec<u8>,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = testkit::Ca::new("driver test CA");
        let other = testkit::Ca::new("driver other CA");
        let leaf = ca.issue(&testkit::LeafSpec::server(1));
        Pki {
            ca: CertificateDer::from(ca.der()),
            other_ca: CertificateDer::from(other.der()),
            cert: CertificateDer::from(leaf.cert_der),
            key: leaf.key_der,
        }
    })
}

fn server() -> UnbufferedServerConnection {
    let mut cfg = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![pki().cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki().key.clone())),
        )
        .expect("server config");
    cfg.send_tls13_tickets = 0;
    UnbufferedServerConnection::new(Arc::new(cfg)).expect("server")
}

fn client(trust: &CertificateDer<'static>) -> UnbufferedClientConnection {
    let mut roots = RootCertStore::empty();
    roots.add(trust.clone()).expect("root");
    let cfg = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    UnbufferedClientConnection::new(Arc::new(cfg), name).expect("client")
}

/// One side's received-but-unconsumed bytes, and what it read as plaintext.
#[derive(Default)]
struct Side {
    inbuf: Vec<u8>,
    plain: Vec<u8>,
}

impl Side {
    /// One call; the bytes to send are returned, the consumed ones dropped.
    fn step<C: Unbuffered>(&mut self, conn: &mut C) -> (Vec<u8>, Driven<Infallible>) {
        let mut out = Vec::new();
        let plain = &mut self.plain;
        let d = drive(conn, &mut self.inbuf, &mut out, &mut |p: &[u8]| {
            plain.extend_from_slice(p);
            Ok::<(), Infallible>(())
        });
        self.inbuf.drain(..d.consumed);
        (out, d)
    }
}

/// Plays the handshake until both ends report `Traffic`; bounded.
fn handshake(
    c: &mut UnbufferedClientConnection,
    s: &mut UnbufferedServerConnection,
) -> (Side, Side) {
    let (mut cs, mut ss) = (Side::default(), Side::default());
    let (mut c_done, mut s_done) = (false, false);
    for _ in 0..16 {
        let (out, d) = cs.step(c);
        c_done = matches!(d.result, Ok(Progress::Traffic));
        ss.inbuf.extend_from_slice(&out);
        let (out, d) = ss.step(s);
        s_done = matches!(d.result, Ok(Progress::Traffic));
        cs.inbuf.extend_from_slice(&out);
        if c_done && s_done {
            return (cs, ss);
        }
    }
    panic!("no handshake in 16 rounds: client done {c_done}, server done {s_done}");
}

#[test]
fn client_and_server_reach_traffic_through_the_same_driver() {
    let (mut c, mut s) = (client(&pki().ca), server());
    let (cs, ss) = handshake(&mut c, &mut s);
    assert!(!c.is_handshaking() && !s.is_handshaking());
    assert!(
        cs.inbuf.is_empty() && ss.inbuf.is_empty(),
        "every byte consumed"
    );
}

#[test]
fn data_after_the_handshake_goes_to_the_plaintext_callback_in_order() {
    let (mut c, mut s) = (client(&pki().ca), server());
    let (_, mut ss) = handshake(&mut c, &mut s);
    for msg in [&b"first "[..], b"second"] {
        let mut out = vec![0u8; 256];
        let n = match c.process_tls_records(&mut []).state {
            Ok(ConnectionState::WriteTraffic(mut w)) => w.encrypt(msg, &mut out).expect("encrypt"),
            other => panic!("client cannot write: {other:?}"),
        };
        ss.inbuf.extend_from_slice(&out[..n]);
    }
    let (_, d) = ss.step(&mut s);
    assert!(matches!(d.result, Ok(Progress::Traffic)), "{:?}", d.result);
    assert!(d.consumed_established > 0, "records after the handshake");
    assert_eq!(ss.plain, b"first second");
}

#[test]
fn a_refusal_is_an_error_and_the_alert_reaches_the_peer() {
    // The client does not trust the server's CA: it fails on the server's
    // certificate and queues an alert the server then reads as an error.
    let (mut c, mut s) = (client(&pki().other_ca), server());
    let (mut cs, mut ss) = (Side::default(), Side::default());
    let mut refused = None;
    for _ in 0..8 {
        let (out, d) = cs.step(&mut c);
        ss.inbuf.extend_from_slice(&out);
        if let Err(e) = d.result {
            refused = Some(e);
            break;
        }
        let (out, d) = ss.step(&mut s);
        assert!(d.result.is_ok(), "server: {:?}", d.result);
        cs.inbuf.extend_from_slice(&out);
    }
    let Some(DriveError::Tls(rustls::Error::InvalidCertificate(_))) = refused else {
        panic!("client should refuse the certificate: {refused:?}");
    };
    let mut alert = Vec::new();
    pending_alert(&mut c, &mut alert);
    assert!(!alert.is_empty(), "an alert for the server");
    pending_alert(&mut c, &mut alert);
    ss.inbuf.extend_from_slice(&alert);
    let (_, d) = ss.step(&mut s);
    assert!(
        matches!(
            d.result,
            Err(DriveError::Tls(rustls::Error::AlertReceived(_)))
        ),
        "{:?}",
        d.result
    );
}

#[test]
fn close_notify_is_reported_and_answered() {
    let (mut c, mut s) = (client(&pki().ca), server());
    let (mut cs, mut ss) = handshake(&mut c, &mut s);
    let mut out = Vec::new();
    let (discard, queued) = queue_close_notify(&mut c, &mut [], &mut out);
    assert_eq!(discard, 0);
    assert!(queued.expect("encrypt") && !out.is_empty());
    ss.inbuf.extend_from_slice(&out);
    let (_, d) = ss.step(&mut s);
    assert!(
        matches!(d.result, Ok(Progress::PeerClosed)),
        "{:?}",
        d.result
    );
    let mut answer = Vec::new();
    let (_, queued) = queue_close_notify(&mut s, &mut ss.inbuf, &mut answer);
    assert!(
        queued.expect("encrypt"),
        "the server may still write after the peer's close_notify"
    );
    cs.inbuf.extend_from_slice(&answer);
    let (_, d) = cs.step(&mut c);
    assert!(
        matches!(d.result, Ok(Progress::PeerClosed)),
        "{:?}",
        d.result
    );
}

#[test]
fn a_cut_handshake_needs_more_and_resumes_where_it_stopped() {
    let (mut c, mut s) = (client(&pki().ca), server());
    let (mut cs, mut ss) = (Side::default(), Side::default());
    let (hello, _) = cs.step(&mut c);
    // The ClientHello in two reads: rustls waits for the rest.
    ss.inbuf.extend_from_slice(&hello[..hello.len() / 2]);
    let (out, d) = ss.step(&mut s);
    assert!(matches!(d.result, Ok(Progress::NeedMore)), "{:?}", d.result);
    assert!(out.is_empty());
    ss.inbuf.extend_from_slice(&hello[hello.len() / 2..]);
    let (out, d) = ss.step(&mut s);
    assert!(matches!(d.result, Ok(Progress::NeedMore)), "{:?}", d.result);
    assert!(!out.is_empty(), "the server's flight");
    cs.inbuf.extend_from_slice(&out);
    let (_, d) = cs.step(&mut c);
    assert!(matches!(d.result, Ok(Progress::Traffic)), "{:?}", d.result);
    assert_eq!(d.consumed_established, 0, "all of it was handshake");
}
