//! A round parses each message once, however many of its steps read the
//! fields: routing (a filter), two `json` destinations, two path templates,
//! a kafka key; and a message that fails to parse is counted once.

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

/// A writer over `dests` for one source with `parse`, fed `frames` in one round.
fn write_one_round(parse: &str, dests: &str, frames: &[&str]) -> tests::Rig {
    let text = format!(
        "drain_timeout_ms = 0\n[[source]]\nname = \"in\"\nlisten = \"127.0.0.1:1\"\n\
         transport = \"tcp\"\nparse = \"{parse}\"\n{dests}"
    );
    let cfg = Config::from_toml(&text, Path::new("/fake/ringest.toml"), Path::new("/fake"))
        .expect("config");
    let mut r = tests::rig_on(FakeFs::default(), &cfg);
    r.ring
        .full
        .push(tests::batch(1_795_977_000_000_000_000, frames))
        .expect("room");
    assert!(r.writer.step());
    r
}

/// Source 0's parse errors, by reason.
fn parse_errors(r: &tests::Rig) -> Vec<(&'static str, u64)> {
    r.stats.sources[0].parse_errors.snapshot()
}

/// The count follows the parse, not the destinations: the first json
/// destination (filtered) does not take the bad message, the second
/// does, a template reads it too; it is counted once.
#[test]
fn a_bad_message_is_counted_once_whichever_destinations_read_it() {
    let r = write_one_round("auto", DESTS, &FRAMES);
    assert_eq!(
        lines(&r.fs, "/fake/auth.log").len(),
        2,
        "the first json destination did not take the bad message"
    );
    assert_eq!(parse_errors(&r), [("no_pri", 1)]);

    // Two json destinations that both take it, and a bad PRI too.
    let two = r#"
[[destination]]
name = "a"
type = "file"
format = "json"
path = "/fake/a.log"
[[destination]]
name = "b"
type = "file"
format = "json"
path = "/fake/b.log"
"#;
    let r = write_one_round("auto", two, &[FRAMES[0], "garbage", "<x> bad"]);
    assert_eq!(lines(&r.fs, "/fake/b.log").len(), 3);
    assert_eq!(parse_errors(&r), [("bad_pri", 1), ("no_pri", 1)]);
}

/// Messages parsed only for a filter (a source with the default `parse =
/// "none"`, raw destinations) or a path template count their failures
/// too; a round nobody parses counts nothing.
#[test]
fn a_bad_message_parsed_only_for_routing_or_a_template_is_counted() {
    let routed = r#"
[[destination]]
name = "web"
type = "file"
path = "/fake/web.log"
filter = { host = "web*" }
[[destination]]
name = "rest"
type = "file"
path = "/fake/rest.log"
fallback = true
"#;
    let r = write_one_round("none", routed, &FRAMES);
    assert_eq!(lines(&r.fs, "/fake/web.log").len(), 2);
    assert_eq!(lines(&r.fs, "/fake/rest.log"), [FRAMES[1], FRAMES[3]]);
    assert_eq!(parse_errors(&r), [("no_pri", 1)]);

    let templated =
        "[[destination]]\nname = \"h\"\ntype = \"file\"\npath = \"/fake/h/{host}.log\"\n";
    let r = write_one_round("none", templated, &FRAMES);
    assert_eq!(lines(&r.fs, "/fake/h/@unknown.log"), ["garbage"]);
    assert_eq!(parse_errors(&r), [("no_pri", 1)]);

    // Raw, unrouted, untemplated: nothing reads the fields, nothing parses.
    let raw = "[[destination]]\nname = \"r\"\ntype = \"file\"\npath = \"/fake/r.log\"\n";
    let before = PARSE_CALLS.with(Cell::get);
    let r = write_one_round("auto", raw, &FRAMES);
    assert_eq!(PARSE_CALLS.with(Cell::get), before);
    assert_eq!(lines(&r.fs, "/fake/r.log").len(), FRAMES.len());
    assert!(parse_errors(&r).is_empty());
}

/// A kafka destination keyed by host, next to json and templated files:
/// its keys read the round's parsed view, so each message is still parsed
/// once. No broker: the producer only queues the records (librdkafka
/// connects lazily), which is all the round needs.
#[cfg(feature = "kafka")]
#[test]
fn a_kafka_host_key_shares_the_rounds_one_parse_per_message() {
    let kafka = "[[destination]]\nname = \"k\"\ntype = \"kafka\"\n\
                 brokers = [\"127.0.0.1:1\"]\ntopic = \"logs\"\nkey = \"host\"\n";
    let before = PARSE_CALLS.with(Cell::get);
    let r = write_one_round("auto", &format!("{DESTS}{kafka}"), &FRAMES);
    assert_eq!(
        PARSE_CALLS.with(Cell::get) - before,
        FRAMES.len() as u64,
        "one parse per message with a kafka host key in the round"
    );
    assert_eq!(parse_errors(&r), [("no_pri", 1)]);
    // Alone, the key is what parses them: still once each.
    let before = PARSE_CALLS.with(Cell::get);
    let r = write_one_round("none", kafka, &FRAMES);
    assert_eq!(PARSE_CALLS.with(Cell::get) - before, FRAMES.len() as u64);
    assert_eq!(parse_errors(&r), [("no_pri", 1)]);
}
