//! `parse = "auto"` on a source with a `json` destination: RFC 5424 and
//! RFC 3164 fields in every line, a message that matches neither kept
//! whole with `parse_error`, counted and logged once per peer, through the
//! real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use e2e::client::{client_config, close, connect, octet_frame};
use e2e::jsonl;
use e2e::pki::Pki;
use e2e::server::{count_lines, free_port, temp_dir, Server};
use e2e::{json_file_destination, loopback, source_tls};

#[test]
fn auto_parsing_writes_the_fields_and_keeps_unparsable_messages_whole() {
    let dir = temp_dir("parse-auto");
    let (tcp, stats) = (free_port(), free_port());
    let cfg = format!(
        r#"shards = 1
[[source]]
name = "tcp"
listen = "127.0.0.1:{tcp}"
transport = "tcp"
framing = "newline"
parse = "auto"

[[destination]]
name = "json"
type = "file"
path = "out.jsonl"
format = "json"
include_raw = true
fsync = "never"

[stats]
listen = "127.0.0.1:{stats}"
"#
    );
    let server = Server::start(&dir, &cfg);
    let lines = [
        "<34>1 2026-11-29T18:00:00.123Z web1 sshd 4242 ID47 [origin@32473 ip=\"10.0.0.1\" x=\"a\\]b\"] Failed password for root",
        "<13>Nov 29 18:00:01 db2 cron[77]: (root) CMD (run-parts /etc/cron.hourly)",
        "no priority at all, just text",
    ];
    send_lines(tcp, &lines);
    let out = dir.join("out.jsonl");
    let start = std::time::Instant::now();
    while count_lines(&out) < lines.len() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&out).expect("output");
    let objs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON"))
        .collect();
    assert_eq!(objs.len(), 3);
    let (a, b, c) = (Line(&objs[0]), Line(&objs[1]), Line(&objs[2]));
    assert_eq!(a.req("facility"), "auth");
    assert_eq!(a.req("severity"), "crit");
    assert_eq!(a.req("host"), "web1");
    assert_eq!(a.req("app"), "sshd");
    assert_eq!(a.req("procid"), "4242");
    assert_eq!(a.req("msgid"), "ID47");
    assert_eq!(a.req("timestamp"), "2026-11-29T18:00:00.123Z");
    assert_eq!(a.req("message"), "Failed password for root");
    assert_eq!(a.req("raw"), lines[0]);
    assert_eq!(a.req("source"), "tcp");
    assert!(!a.has("parse_error"));
    assert_eq!(a.0["sd"]["origin@32473"]["x"], "a]b", "SD unescaped");
    assert_eq!(b.req("host"), "db2");
    assert_eq!(b.req("app"), "cron");
    assert_eq!(b.req("procid"), "77");
    assert_eq!(b.req("severity"), "notice");
    assert_eq!(b.req("message"), "(root) CMD (run-parts /etc/cron.hourly)");
    assert_eq!(c.req("message"), lines[2], "kept whole");
    assert_eq!(c.req("parse_error"), "no_pri");
    assert_eq!(
        server.metric("ringest_parse_errors_total{source=\"tcp\",reason=\"no_pri\"}"),
        1
    );
    assert!(server.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The parse-error count follows the parse, not the destinations: source
/// `a`'s bad message is not taken by its first json destination (a
/// filter), is written by the second and names a templated file, and is
/// counted once; source `b` (`parse = "none"`, raw files) is parsed only
/// for a filter, and its bad message is counted too, in its own source.
#[test]
fn a_bad_message_is_counted_once_in_its_source_whatever_reads_it() {
    let dir = temp_dir("parse-count-once");
    let (a, b, stats) = (free_port(), free_port(), free_port());
    let cfg = format!(
        r#"shards = 1
[[source]]
name = "a"
listen = "127.0.0.1:{a}"
transport = "tcp"
framing = "newline"
parse = "auto"
destinations = ["auth", "all", "hosts"]

[[source]]
name = "b"
listen = "127.0.0.1:{b}"
transport = "tcp"
framing = "newline"
destinations = ["web", "rest"]

[[destination]]
name = "auth"
type = "file"
path = "auth.jsonl"
format = "json"
fsync = "never"
filter = {{ facility = "auth" }}

[[destination]]
name = "all"
type = "file"
path = "all.jsonl"
format = "json"
fsync = "never"

[[destination]]
name = "hosts"
type = "file"
path = "hosts/{{host}}.log"
fsync = "never"

[[destination]]
name = "web"
type = "file"
path = "web.log"
fsync = "never"
filter = {{ host = "web*" }}

[[destination]]
name = "rest"
type = "file"
path = "rest.log"
fsync = "never"
fallback = true

[stats]
listen = "127.0.0.1:{stats}"
"#
    );
    let server = Server::start(&dir, &cfg);
    send_lines(
        a,
        &[
            "<38>1 2026-11-30T10:00:00Z web1 sshd 1 - - login",
            "garbage a",
        ],
    );
    send_lines(
        b,
        &[
            "<38>1 2026-11-30T10:00:00Z web2 sshd 1 - - login",
            "garbage b",
        ],
    );
    let outs = [
        ("all.jsonl", 2),
        ("auth.jsonl", 1),
        ("hosts/@unknown.log", 1),
        ("web.log", 1),
        ("rest.log", 1),
    ];
    let start = std::time::Instant::now();
    while outs.iter().any(|(f, n)| count_lines(&dir.join(f)) < *n)
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for (f, n) in outs {
        assert_eq!(count_lines(&dir.join(f)), n, "{f}");
    }
    let rest = std::fs::read_to_string(dir.join("rest.log")).expect("rest.log");
    assert_eq!(rest, "garbage b\n");
    for source in ["a", "b"] {
        let name = format!("ringest_parse_errors_total{{source=\"{source}\",reason=\"no_pri\"}}");
        assert_eq!(server.metric(&name), 1, "{name}\n{}", server.metrics());
    }
    assert!(server.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bad messages, and as many good ones, each peer sends in the burst.
const BAD_PER_PEER: usize = 300;
const PEERS: usize = 2;

/// A burst of RFC 3164 messages (not RFC 5424, so `bad_version`) between
/// good ones, from two TLS peers with client certificates, to a source
/// with `parse = "rfc5424"` and a json file: every message is in the file
/// (the bad ones whole, with `parse_error`), the counter has every bad one,
/// and the JSON log has exactly one line per peer naming the peer, its
/// certificate, the source, the reason and a hint.
#[test]
fn a_burst_of_unparseable_messages_is_logged_once_per_peer() {
    let dir = temp_dir("parse-error-log");
    let pki = Pki::generate(&dir.join("pki"));
    let (tls, stats) = (free_port(), free_port());
    let cfg = format!(
        r#"shards = 2
log_format = "json"

[[source]]
name = "tls"
listen = "127.0.0.1:{tls}"
transport = "tls"
framing = "octet-counted"
parse = "rfc5424"
{}
{}
[stats]
listen = "127.0.0.1:{stats}"
"#,
        source_tls(&pki),
        json_file_destination("json", "out.jsonl")
    );
    let server = Server::start(&dir, &cfg);
    // Both connections open at once, so they are two peers of one burst.
    let client = client_config(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    let mut conns: Vec<_> = (0..PEERS)
        .map(|_| connect(loopback(tls), client.clone()).expect("connect"))
        .collect();
    let peers: BTreeSet<String> = conns
        .iter()
        .map(|c| c.sock.local_addr().expect("local addr").to_string())
        .collect();
    assert_eq!(peers.len(), PEERS);
    // What the peers sent: message text (the body of a good one, the
    // whole frame of a bad one) -> its parse_error, if any.
    let mut sent: BTreeMap<String, Option<&str>> = BTreeMap::new();
    for round in 0..BAD_PER_PEER / 50 {
        for (p, conn) in conns.iter_mut().enumerate() {
            let mut buf = Vec::new();
            for i in round * 50..(round + 1) * 50 {
                let good = format!("good p{p} n{i}");
                octet_frame(
                    &mut buf,
                    format!("<14>1 2026-11-30T10:00:00Z web{p} app - - - {good}").as_bytes(),
                );
                sent.insert(good, None);
                let bad = format!("<13>Nov 30 10:00:00 bsd{p} cron[1]: bad p{p} n{i}");
                octet_frame(&mut buf, bad.as_bytes());
                sent.insert(bad, Some("bad_version"));
            }
            conn.write_all(&buf).expect("write");
        }
    }
    for c in conns {
        close(c).expect("clean close");
    }
    let total = PEERS * BAD_PER_PEER * 2;
    let out = dir.join("out.jsonl");
    let start = std::time::Instant::now();
    while count_lines(&out) < total && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let written: BTreeMap<String, Option<&str>> = jsonl::read_file(&out)
        .iter()
        .map(|o| {
            assert!(peers.contains(o.req("peer")), "{o:?}");
            assert_eq!(o.req("client_cn"), "test-client");
            let error = o.str("parse_error").map(|e| {
                assert_eq!(e, "bad_version", "{o:?}");
                "bad_version"
            });
            (o.req("message").to_string(), error)
        })
        .collect();
    assert_eq!(count_lines(&out), total, "every message, once");
    assert_eq!(
        written, sent,
        "the good ones parsed, the bad ones kept whole"
    );
    assert_eq!(
        server.metric("ringest_parse_errors_total{source=\"tls\",reason=\"bad_version\"}"),
        (PEERS * BAD_PER_PEER) as u64,
        "{}",
        server.metrics()
    );
    let stderr = server.stderr();
    let lines: Vec<jsonl::Object> = stderr
        .lines()
        .filter(|l| l.contains("message not parsed"))
        .map(|l| jsonl::parse_line(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let logged: BTreeSet<String> = lines.iter().map(|o| o.req("peer").to_string()).collect();
    assert_eq!(
        (lines.len(), &logged),
        (PEERS, &peers),
        "exactly one line per peer for the burst:\n{stderr}"
    );
    for o in &lines {
        assert_eq!(o.req("level"), "warn");
        assert_eq!(o.req("source"), "tls");
        assert_eq!(
            o.req("reason"),
            "message not parsed (bad_version): RFC 5424 expected: VERSION 1 does not follow the PRI"
        );
        let client = o.req("client");
        assert!(client.starts_with("CN=test-client, sha256="), "{client}");
        let hint = o.req("hint");
        for part in [
            "set parse = \"auto\"",
            "kept whole with parse_error = \"bad_version\"",
            "source parse = \"rfc5424\"",
            "not logged for 60000 ms (parse_error_log_interval_ms)",
        ] {
            assert!(hint.contains(part), "{part:?} not in {hint:?}");
        }
    }
    assert!(
        !stderr.contains("similar log lines suppressed"),
        "nothing beyond the budget:\n{stderr}"
    );
    assert!(server.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `lines` on one TCP connection to `port`, each ended by a newline,
/// and closes it.
fn send_lines(port: u16, lines: &[&str]) {
    let mut s = TcpStream::connect(loopback(port)).expect("connect");
    for l in lines {
        s.write_all(l.as_bytes()).expect("write");
        s.write_all(b"\n").expect("write");
    }
}

/// One parsed JSON line.
struct Line<'a>(&'a serde_json::Value);

impl Line<'_> {
    fn req(&self, key: &str) -> &str {
        self.0[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string {key:?} in {}", self.0))
    }

    fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some()
    }
}
