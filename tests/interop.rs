//! Interop with real syslog peers as mutual-TLS clients (issue 3): syslog-ng
//! 3.38 and rsyslog 8.2302 send to the real `ringest` binary under
//! `peer_verify = "required-trusted"`. Every message must arrive exactly
//! once, the raw output must have exactly one clean line per message (no
//! blank lines from syslog-ng's LF inside the octet count), and every JSON
//! line must carry the peer's client certificate identity.
//!
//! The peers come from tests/interop/setup-peers.sh: syslog-ng-core from
//! apt, rsyslog unpacked with `apt-get download` + `dpkg -x` (it conflicts
//! with syslog-ng-core) into target/peers/rsyslog, or $RINGEST_PEERS_DIR.
//! A missing peer fails the test with that hint; nothing is skipped.
//!
//! Every process is bounded in time: peers are killed on timeout and on
//! drop, and each test finishes within about a minute.

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use e2e::jsonl;
use e2e::peer::{spawn_syslog_ng_client, syslog_ng_bin, Peer, Rsyslog};
use e2e::server::{count_lines, free_port, temp_dir, Server};
use e2e::trust_pki::{openssl_fingerprint, openssl_rehash, Ca, LeafSpec};

/// Messages each peer sends.
const N: usize = 5_000;
/// How long a peer may take to deliver all N messages.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(40);

/// The shared fixture: a CA, ringest's server cert, the peer's client cert,
/// a hashed CA folder, and ringest serving one TLS source under
/// required-trusted with a raw and a JSON destination.
struct Setup {
    dir: PathBuf,
    server: Server,
    port: u16,
    ca_file: PathBuf,
    ca_dir: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    client_cn: String,
    client_sha256: String,
    ca_dn: String,
}

impl Setup {
    fn new(tag: &str, client_cn: &str, use_ca_dir: bool) -> Setup {
        let dir = temp_dir(tag);
        let pki = dir.join("pki");
        let ca = Ca::new("Interop CA");
        let (server_cert, server_key) = ca.issue(&LeafSpec::server(1)).write(&pki, "server");
        let (client_cert, client_key) = ca
            .issue(&LeafSpec::client(client_cn, 2))
            .write(&pki, "client");
        let ca_file = ca.write(&pki.join("ca.pem"));
        let ca_dir = pki.join("ca.d");
        ca.write(&ca_dir.join("interop-ca.pem"));
        openssl_rehash(&ca_dir);
        let port = free_port();
        let stats = free_port();
        let trust = if use_ca_dir {
            format!("ca_dir = {ca_dir:?}")
        } else {
            format!("ca_file = {ca_file:?}")
        };
        let cfg = format!(
            "shards = 2\ndrain_timeout_ms = 3000\n\n[[source]]\nname = \"tls\"\n\
             listen = \"127.0.0.1:{port}\"\ntransport = \"tls\"\nframing = \"octet-counted\"\n\
             [source.tls]\ncert_file = {server_cert:?}\nkey_file = {server_key:?}\n{trust}\n\
             peer_verify = \"required-trusted\"\n\n\
             [[destination]]\nname = \"raw\"\ntype = \"file\"\nformat = \"raw\"\n\
             path = \"data/raw.log\"\nfsync = \"never\"\n\n\
             [[destination]]\nname = \"json\"\ntype = \"file\"\nformat = \"json\"\n\
             path = \"data/out.jsonl\"\nfsync = \"never\"\n\n\
             [stats]\nlisten = \"127.0.0.1:{stats}\"\n"
        );
        let server = Server::start(&dir, &cfg);
        Setup {
            client_sha256: openssl_fingerprint(&client_cert, "sha256"),
            dir,
            server,
            port,
            ca_file,
            ca_dir,
            client_cert,
            client_key,
            client_cn: client_cn.to_string(),
            ca_dn: ca.dn(),
        }
    }

    /// Waits until ringest has written `N` messages or the peer gives up.
    fn wait_delivered(&self, peer: &mut Peer, extra_log: impl Fn() -> String) {
        let start = Instant::now();
        loop {
            let written = self
                .server
                .metric("ringest_messages_written_total{source=\"tls\"}");
            if written >= N as u64 {
                return;
            }
            let gone = peer.exited();
            if gone.is_some() || start.elapsed() > DELIVERY_TIMEOUT {
                panic!(
                    "{}: {written} of {N} delivered after {:.1?} (peer exit: {gone:?})\n\
                     --- {} log:\n{}\n{}\n--- ringest stderr:\n{}",
                    peer.name,
                    start.elapsed(),
                    peer.name,
                    peer.log_text(),
                    extra_log(),
                    self.server.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops ringest and checks both outputs: exactly N messages, each
    /// sequence number once, the client identity on every JSON line.
    fn check_outputs(self, peer: &str) {
        // Let a straggler (a duplicate, say) show up before counting.
        std::thread::sleep(Duration::from_millis(300));
        let refusals = self
            .server
            .metric("ringest_handshake_failures_total{source=\"tls\"");
        let stderr_path = self.server.stderr_path.clone();
        assert!(self.server.stop().success(), "ringest exits cleanly");
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        assert_eq!(refusals, 0, "{peer}: no refused handshakes:\n{stderr}");

        let raw_path = self.dir.join("data/raw.log");
        assert_eq!(
            count_lines(&raw_path),
            N,
            "{peer}: raw output has exactly one line per message"
        );
        let raw = std::fs::read_to_string(&raw_path).expect("raw output");
        let mut seen = vec![0u32; N];
        for line in raw.lines() {
            assert!(!line.trim().is_empty(), "{peer}: blank line in raw output");
            assert!(!line.ends_with('\r'), "{peer}: CR left in {line:?}");
            let seq = seq_of(line).unwrap_or_else(|| panic!("{peer}: no seq in raw {line:?}"));
            seen[seq] += 1;
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "{peer}: raw output: every message exactly once (missing: {:?})",
            seen.iter()
                .enumerate()
                .filter(|(_, &c)| c != 1)
                .map(|(i, _)| i)
                .take(10)
                .collect::<Vec<_>>()
        );

        let lines = jsonl::read_file(&self.dir.join("data/out.jsonl"));
        assert_eq!(
            lines.len(),
            N,
            "{peer}: JSON output has one line per message"
        );
        let anonymous: Vec<String> = lines
            .iter()
            .filter(|l| !l.has("client_cn"))
            .map(|l| l.req("message").chars().take(90).collect())
            .collect();
        assert!(
            anonymous.is_empty(),
            "{peer}: {} of {N} JSON lines lack the client identity; first: {:?}",
            anonymous.len(),
            &anonymous[..anonymous.len().min(3)]
        );
        let mut seen = vec![0u32; N];
        for (i, l) in lines.iter().enumerate() {
            let msg = l.req("message");
            assert!(
                !msg.ends_with('\n'),
                "{peer}: line {i}: trailing LF kept in {msg:?}"
            );
            let seq = seq_of(msg).unwrap_or_else(|| panic!("{peer}: no seq in {msg:?}"));
            seen[seq] += 1;
            assert_eq!(l.req("source"), "tls");
            assert_eq!(
                l.req("client_cn"),
                self.client_cn,
                "{peer}: line {i}: {l:?}"
            );
            assert_eq!(
                l.req("client_sha256"),
                self.client_sha256,
                "{peer}: line {i}"
            );
            assert_eq!(l.req("client_issuer"), self.ca_dn, "{peer}: line {i}");
            assert_eq!(
                l.strs("client_sans"),
                std::slice::from_ref(&self.client_cn),
                "{peer}: line {i}"
            );
            assert_eq!(l.req("tls_version"), "TLSv1.3", "{peer}: line {i}");
            assert!(l.req("cipher").starts_with("TLS_"), "{peer}: line {i}");
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "{peer}: JSON: every message once"
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The number after `seq=` in a message.
fn seq_of(text: &str) -> Option<usize> {
    let rest = text.split_once("seq=")?.1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&s| s < N)
}

/// syslog-ng 3.38 reads N lines from a file and sends them with the
/// `syslog()` driver over mutual TLS (hashed `ca-dir`, client key and
/// cert, peer-verify(required-trusted)); ringest trusts the same hashed
/// folder through `ca_dir`.
#[test]
fn syslog_ng_tls_client_delivers_every_message_with_its_cn() {
    // Before any setup: a missing peer fails at once with the hint.
    syslog_ng_bin();
    let started = Instant::now();
    let s = Setup::new("interop-syslog-ng", "syslog-ng-client", true);
    let work = s.dir.join("syslog-ng");
    std::fs::create_dir_all(&work).expect("work dir");
    let mut text = String::with_capacity(N * 120);
    for i in 0..N {
        text += &format!("interop syslog-ng seq={i:06} {}\n", "p".repeat(80));
    }
    let tls = format!(
        "ca-dir(\"{}\") key-file(\"{}\") cert-file(\"{}\") peer-verify(required-trusted)",
        s.ca_dir.display(),
        s.client_key.display(),
        s.client_cert.display()
    );
    let mut peer = spawn_syslog_ng_client(&work, &text, s.port, &tls);
    s.wait_delivered(&mut peer, String::new);
    let delivered = started.elapsed();
    peer.stop(Duration::from_secs(5));
    s.check_outputs("syslog-ng");
    eprintln!("syslog-ng: {N} messages delivered in {delivered:.1?}");
}

/// rsyslog 8.2302 (unpacked, not installed) forwards N messages that the
/// test feeds to its imtcp input, through `omfwd` with the gtls stream
/// driver in x509/name mode (it checks ringest's name is `localhost`).
#[test]
fn rsyslog_gtls_client_delivers_every_message_with_its_cn() {
    let rsyslog = Rsyslog::find();
    let started = Instant::now();
    let s = Setup::new("interop-rsyslog", "rsyslog-client", false);
    let work = s.dir.join("rsyslog");
    std::fs::create_dir_all(&work).expect("work dir");
    let in_port = free_port();
    let internal = work.join("internal.log");
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(processInternalMessages="on" workDirectory="{work}" maxMessageSize="64k")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{in_port}" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogRFC5424Format"
         StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
         StreamDriverPermittedPeers="localhost"
         streamDriver.CAFile="{ca}" streamDriver.CertFile="{cert}" streamDriver.KeyFile="{key}"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}}
*.* action(type="omfile" file="{internal}")
"#,
            work = work.display(),
            port = s.port,
            ca = s.ca_file.display(),
            cert = s.client_cert.display(),
            key = s.client_key.display(),
            internal = internal.display(),
        ),
    )
    .expect("conf");
    let mut peer = rsyslog.spawn(&conf, &work);
    let internal_log = || {
        format!(
            "--- rsyslog internal.log:\n{}",
            std::fs::read_to_string(&internal).unwrap_or_default()
        )
    };
    // Feed imtcp once it listens: N newline-framed RFC 5424 messages.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut feed = loop {
        match TcpStream::connect(("127.0.0.1", in_port)) {
            Ok(c) => break c,
            Err(e) => {
                if peer.exited().is_some() || Instant::now() > deadline {
                    panic!(
                        "rsyslog imtcp on {in_port} not reachable: {e}\n{}\n{}",
                        peer.log_text(),
                        internal_log()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let mut text = String::with_capacity(N * 120);
    for i in 0..N {
        text += &format!(
            "<14>1 2026-11-26T00:00:00Z interop-host rsyslog-feed - - - interop rsyslog seq={i:06} {}\n",
            "p".repeat(60)
        );
    }
    feed.write_all(text.as_bytes()).expect("feed rsyslog");
    drop(feed);
    s.wait_delivered(&mut peer, internal_log);
    let delivered = started.elapsed();
    peer.stop(Duration::from_secs(10));
    s.check_outputs("rsyslog");
    eprintln!("rsyslog: {N} messages delivered in {delivered:.1?}");
}
