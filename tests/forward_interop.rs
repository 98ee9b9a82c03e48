//! ringest as a TLS client of real syslog servers: a relay forwards what
//! loadgen sends to syslog-ng 3.38 (`syslog()` TLS source,
//! `peer-verify(required-trusted)`, `ca-dir`) and to rsyslog's imtcp (gtls,
//! `x509/name`, `PermittedPeer` = the relay's CN), with its client
//! certificate. syslog-ng writes the client CN it saw (`${.tls.x509_cn}`);
//! rsyslog admits only the permitted CN; `loadgen verify` checks every
//! message arrived exactly once. Peers come from
//! tests/interop/setup-peers.sh; a missing one fails the test.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::loadgen::{send_tcp_all, verify_raw};
use e2e::peer::{spawn_syslog_ng, spawn_syslog_ng_client, syslog_ng_bin, Peer, Rsyslog};
use e2e::pki::Pki;
use e2e::relay_config;
use e2e::server::{count_lines, free_port, temp_dir, Server};

const N: u64 = 5_000;
const CLIENT_CN: &str = "test-client";

fn relay(dir: &Path, pki: &Pki, upstream: u16) -> (Server, u16) {
    let (port, stats) = (free_port(), free_port());
    let cfg = relay_config(pki, port, stats, &[format!("127.0.0.1:{upstream}")], "");
    std::fs::create_dir_all(dir).expect("relay dir");
    (Server::start(dir, &cfg), port)
}

fn send(dir: &Path, port: u16) -> PathBuf {
    let json = dir.join("send.json");
    send_tcp_all(port, N, 2, &json);
    json
}

/// Waits until `out` has N lines (or the peer died / time ran out).
fn wait_lines(out: &Path, peer: &mut Peer, relay: &Server) {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let n = if out.exists() {
            count_lines(out) as u64
        } else {
            0
        };
        if n >= N {
            return;
        }
        if peer.exited().is_some() || Instant::now() > deadline {
            panic!(
                "{}: {n} of {N} lines\n--- peer log:\n{}\n--- relay stderr:\n{}",
                peer.name,
                peer.log_text(),
                relay.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// loadgen verify finds each message exactly once. With `cn_prefix` each
/// line is `CN message` (syslog-ng's `${.tls.x509_cn}`): the CN, when
/// there, is the relay's, and it is there at least once. syslog-ng 3.38
/// sets it only on the first message of each read, so the others have it
/// empty (a line starting with a space), never another name.
fn check(out: &Path, json: &Path, peer: &str, cn_prefix: bool) {
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(out).expect("peer output");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() as u64, N, "{peer}: one line per message");
    if cn_prefix {
        let with_cn = format!("{CLIENT_CN} ");
        let other: Vec<&&str> = lines
            .iter()
            .filter(|l| !l.starts_with(&with_cn) && !l.starts_with(' '))
            .take(3)
            .collect();
        assert!(other.is_empty(), "{peer}: lines with another CN: {other:?}");
        let seen = lines.iter().filter(|l| l.starts_with(&with_cn)).count();
        assert!(
            seen > 0,
            "{peer}: the relay's CN {CLIENT_CN} was never seen"
        );
    }
    verify_raw(json, out);
}

/// Sends N messages through the relay, waits for the peer's output, stops
/// both and checks it.
fn deliver_and_check(
    dir: &Path,
    in_port: u16,
    relay: Server,
    mut peer: Peer,
    out: &Path,
    cn_prefix: bool,
) {
    let json = send(dir, in_port);
    wait_lines(out, &mut peer, &relay);
    assert_eq!(
        relay.wait_metric(
            "ringest_messages_written_total{source=\"in\"",
            N,
            Duration::from_secs(10)
        ),
        N
    );
    assert!(relay.stop().success());
    let name = peer.name;
    peer.stop(Duration::from_secs(5));
    check(out, &json, name, cn_prefix);
}

#[test]
fn relay_to_syslog_ng_tls_source_with_required_trusted_and_ca_dir() {
    syslog_ng_bin();
    let dir = temp_dir("fwd-syslog-ng");
    let pki = Pki::generate(&dir.join("pki"));
    let ca_dir = dir.join("pki/ca.d");
    std::fs::create_dir_all(&ca_dir).expect("ca dir");
    std::fs::copy(&pki.ca, ca_dir.join("ca.pem")).expect("ca copy");
    testkit::openssl_rehash(&ca_dir);
    let work = dir.join("syslog-ng");
    std::fs::create_dir_all(&work).expect("work");
    let port = free_port();
    let out = work.join("out.log");
    let conf = work.join("syslog-ng.conf");
    std::fs::write(
        &conf,
        format!(
            r#"@version: 3.38
options {{ stats-freq(0); use-dns(no); keep-hostname(yes); log-fifo-size(20000); }};
source s_tls {{
  syslog(ip("127.0.0.1") port({port}) transport("tls") log-iw-size(20000)
    tls(key-file("{key}") cert-file("{cert}") ca-dir("{ca_dir}") peer-verify(required-trusted)));
}};
destination d_out {{ file("{out}" template("${{.tls.x509_cn}} $MSG\n")); }};
log {{ source(s_tls); destination(d_out); flags(flow-control); }};
"#,
            key = pki.server_key.display(),
            cert = pki.server_cert.display(),
            ca_dir = ca_dir.display(),
            out = out.display(),
        ),
    )
    .expect("conf");
    let peer = spawn_syslog_ng(&conf, &work);
    let (relay, in_port) = relay(&dir.join("relay"), &pki, port);
    deliver_and_check(&dir, in_port, relay, peer, &out, true);
}

#[test]
fn relay_to_rsyslog_imtcp_gtls_x509_name_with_permitted_peer() {
    let rsyslog = Rsyslog::find();
    let dir = temp_dir("fwd-rsyslog");
    let pki = Pki::generate(&dir.join("pki"));
    let work = dir.join("rsyslog");
    std::fs::create_dir_all(&work).expect("work");
    let port = free_port();
    let out = work.join("out.log");
    let internal = work.join("internal.log");
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(processInternalMessages="on" workDirectory="{work}" maxMessageSize="64k"
       DefaultNetstreamDriver="gtls" DefaultNetstreamDriverCAFile="{ca}"
       DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1"
       StreamDriver.AuthMode="x509/name" PermittedPeer=["{CLIENT_CN}"])
template(name="msg" type="string" string="%msg%\n")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfile" file="{out}" template="msg")
}}
*.* action(type="omfile" file="{internal}")
"#,
            work = work.display(),
            ca = pki.ca.display(),
            cert = pki.server_cert.display(),
            key = pki.server_key.display(),
            out = out.display(),
            internal = internal.display(),
        ),
    )
    .expect("conf");
    let peer = rsyslog.spawn(&conf, &work);
    let (relay, in_port) = relay(&dir.join("relay"), &pki, port);
    deliver_and_check(&dir, in_port, relay, peer, &out, false);
}

/// syslog-ng client (its own certificate) -> ringest relay with
/// `forward_identity = true` -> ringest final writing JSON: the final's
/// JSON names the relay as the client, and each message carries syslog-ng's
/// identity in `[tls@32473 cn=".." fp=".."]`.
#[test]
fn identity_of_the_first_sender_survives_the_relay() {
    use e2e::jsonl;
    use e2e::trust_pki::{openssl_fingerprint, Ca, LeafSpec};

    syslog_ng_bin();
    let dir = temp_dir("fwd-identity");
    let pki = dir.join("pki");
    let ca = Ca::new("Relay chain CA");
    let ca_file = ca.write(&pki.join("ca.pem"));
    let (server_cert, server_key) = ca.issue(&LeafSpec::server(1)).write(&pki, "server");
    let (relay_cert, relay_key) = ca
        .issue(&LeafSpec::client("relay-1", 2))
        .write(&pki, "relay");
    let (sng_cert, sng_key) = ca
        .issue(&LeafSpec::client("syslog-ng-client", 3))
        .write(&pki, "syslog-ng");
    let sng_fp = openssl_fingerprint(&sng_cert, "sha256");
    let source = |port: u16| {
        format!(
            "[[source]]\nname = \"in\"\nlisten = \"127.0.0.1:{port}\"\ntransport = \"tls\"\n\
             framing = \"octet-counted\"\n[source.tls]\ncert_file = {server_cert:?}\n\
             key_file = {server_key:?}\nca_file = {ca_file:?}\npeer_verify = \"required-trusted\"\n"
        )
    };
    let (final_port, relay_port) = (free_port(), free_port());
    let (final_stats, relay_stats) = (free_port(), free_port());
    let final_dir = dir.join("final");
    std::fs::create_dir_all(&final_dir).expect("final dir");
    let fin = Server::start(
        &final_dir,
        &format!(
            "shards = 1\n{}\n[[destination]]\nname = \"json\"\ntype = \"file\"\nformat = \"json\"\n\
             path = \"data/out.jsonl\"\nfsync = \"never\"\n\n[stats]\nlisten = \"127.0.0.1:{final_stats}\"\n",
            source(final_port)
        ),
    );
    let relay_dir = dir.join("relay");
    std::fs::create_dir_all(&relay_dir).expect("relay dir");
    let relay = Server::start(
        &relay_dir,
        &format!(
            "shards = 1\n{}\n[[destination]]\nname = \"up\"\ntype = \"forward\"\n\
             servers = [\"localhost:{final_port}\"]\nforward_identity = true\n\
             [destination.tls]\nca_file = {ca_file:?}\ncert_file = {relay_cert:?}\nkey_file = {relay_key:?}\n\n\
             [stats]\nlisten = \"127.0.0.1:{relay_stats}\"\n",
            source(relay_port)
        ),
    );
    let mut text = String::new();
    for i in 0..N {
        text += &format!("relay identity seq={i:06} {}\n", "p".repeat(60));
    }
    let tls = format!(
        "ca-file(\"{}\") key-file(\"{}\") cert-file(\"{}\") peer-verify(required-trusted)",
        ca_file.display(),
        sng_key.display(),
        sng_cert.display()
    );
    let mut peer = spawn_syslog_ng_client(&dir.join("syslog-ng"), &text, relay_port, &tls);
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let got = fin.metric("ringest_messages_written_total{source=\"in\"");
        if got >= N {
            break;
        }
        assert!(
            peer.exited().is_none() && Instant::now() < deadline,
            "{got} of {N} at the final\n--- syslog-ng:\n{}\n--- relay:\n{}",
            peer.log_text(),
            relay.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    peer.stop(Duration::from_secs(5));
    assert!(relay.stop().success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(fin.stop().success());
    let lines = jsonl::read_file(&final_dir.join("data/out.jsonl"));
    assert_eq!(lines.len() as u64, N, "one JSON line per message");
    let element = format!("[tls@32473 cn=\"syslog-ng-client\" fp=\"{sng_fp}\"]");
    let mut seen = vec![0u32; N as usize];
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(
            l.req("client_cn"),
            "relay-1",
            "line {i}: the final sees the relay"
        );
        let msg = l.req("message");
        assert!(msg.contains(&element), "line {i}: no {element} in {msg:?}");
        let seq: usize = msg
            .split_once("seq=")
            .and_then(|(_, r)| r.get(..6))
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("line {i}: no seq in {msg:?}"));
        seen[seq] += 1;
    }
    assert!(seen.iter().all(|&c| c == 1), "every message exactly once");
}
