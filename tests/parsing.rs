//! `parse = "auto"` on a source with a `json` destination: RFC 5424 and
//! RFC 3164 fields in every line, a message that matches neither kept
//! whole with `parse_error` and counted, through the real binary.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use e2e::loopback;
use e2e::server::{count_lines, free_port, temp_dir, Server};

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
