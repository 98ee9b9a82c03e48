//! A round parses each message once, however many of its steps read the
//! fields: routing (a filter), two `json` destinations, two path templates.

use std::cell::Cell;
use std::path::Path;

use super::fake::FakeFs;
use super::tests;
use crate::config::Config;
use crate::parse::PARSE_CALLS;

/// `auth` (json, filtered), `hosts` (json, templated by host and app) and
/// `days` (raw, templated by the message's own date) all read the fields.
const DESTS: &str = r#"
[[destination]]
name = "auth"
type = "file"
format = "json"
path = "/fake/auth.log"
filter = { facility = "auth" }
[[destination]]
name = "hosts"
type = "file"
format = "json"
path = "/fake/hosts/{host}/{app}.log"
[[destination]]
name = "days"
type = "file"
path = "/fake/days/{year}-{month}-{day}.log"
date_from = "message"
"#;

const FRAMES: [&str; 4] = [
    "<38>1 2026-11-28T10:00:00Z web1 sshd 1 - - login one",
    "<13>1 2026-11-29T10:00:00Z db1 cron - - - run",
    "<38>Nov 29 10:00:00 web2 sshd[4]: login two",
    "garbage",
];

fn lines(fs: &FakeFs, path: &str) -> Vec<String> {
    String::from_utf8_lossy(&fs.content(Path::new(path)))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn routing_json_and_templates_share_one_parse_per_message() {
    let text = format!(
        "drain_timeout_ms = 0\n[[source]]\nname = \"in\"\nlisten = \"127.0.0.1:1\"\n\
         transport = \"tcp\"\nparse = \"auto\"\n{DESTS}"
    );
    let cfg = Config::from_toml(&text, Path::new("/fake/ringest.toml"), Path::new("/fake"))
        .expect("config");
    let mut r = tests::rig_on(FakeFs::default(), &cfg);
    // Two batches in one round, received 2026-11-29T18:30:00Z.
    let received = 1_795_977_000_000_000_000;
    r.ring
        .full
        .push(tests::batch(received, &FRAMES[..2]))
        .expect("room");
    r.ring
        .full
        .push(tests::batch(received, &FRAMES[2..]))
        .expect("room");
    let before = PARSE_CALLS.with(Cell::get);
    assert!(r.writer.step());
    let calls = PARSE_CALLS.with(Cell::get) - before;
    assert_eq!(
        calls,
        FRAMES.len() as u64,
        "one parse per message of the round, not one per step that reads it"
    );

    // Each step still read the right fields.
    let auth = lines(&r.fs, "/fake/auth.log");
    assert_eq!(auth.len(), 2, "{auth:?}");
    assert!(auth[0].contains(r#""host":"web1""#), "{}", auth[0]);
    assert!(auth[1].contains(r#""message":"login two""#), "{}", auth[1]);
    let web1 = lines(&r.fs, "/fake/hosts/web1/sshd.log");
    assert_eq!(web1, auth[..1], "the same json line in both destinations");
    assert_eq!(lines(&r.fs, "/fake/hosts/web2/sshd.log"), auth[1..]);
    assert_eq!(lines(&r.fs, "/fake/hosts/db1/cron.log").len(), 1);
    let unknown = lines(&r.fs, "/fake/hosts/@unknown/@unknown.log");
    assert!(
        unknown.len() == 1 && unknown[0].contains(r#""parse_error":"no_pri""#),
        "{unknown:?}"
    );
    assert_eq!(lines(&r.fs, "/fake/days/2026-11-28.log"), [FRAMES[0]]);
    // The BSD stamp takes the receive year; garbage the receive date.
    assert_eq!(
        lines(&r.fs, "/fake/days/2026-11-29.log"),
        FRAMES[1..].to_vec()
    );
}
