//! ringest's own log lines on stderr; level from RINGEST_LOG (default info).
//!
//! Two formats, chosen by the config's `log_format`:
//! - `text` (the default): `LEVEL message`, for a terminal or journald,
//!   which stamps the time itself;
//! - `json`: one object per line for log shippers, with `time` (RFC 3339
//!   UTC), `level`, `message` (the text line, whole), and the fields the
//!   message names: `peer`, `client`, `source`, `destination`, `shard`,
//!   `reason` and `hint`.
//!
//! The fields come from the shape every connection event is logged in
//! (shard/, conn.rs): `PEER source NAME: REASON (hint: HINT); connection
//! closed`, and a message's parse error (writer/parse_error_log.rs):
//! `PEER source NAME: REASON (client: IDENTITY) (hint: HINT)`; and
//! `source NAME: ...`, `destination NAME: ...`,
//! `shard N source NAME: ...` for the others. `reason` is given only for a
//! line about one peer (what was refused or closed, and why); every other
//! line keeps its words in `message`. A line in another shape loses nothing:
//! it simply has no extra fields.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};
use serde::Deserialize;

/// The `log_format` config key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

static FORMAT: AtomicU8 = AtomicU8::new(0);

/// Switches every later line to `format` (set once the config is read;
/// lines before that are text).
pub fn set_format(format: LogFormat) {
    FORMAT.store(format as u8, Ordering::Relaxed);
}

fn format() -> LogFormat {
    match FORMAT.load(Ordering::Relaxed) {
        1 => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) || !r.target().starts_with("ringest") {
            return;
        }
        let line = match format() {
            LogFormat::Text => {
                let level = match r.level() {
                    Level::Error => "ERROR",
                    Level::Warn => "WARN ",
                    Level::Info => "INFO ",
                    Level::Debug => "DEBUG",
                    Level::Trace => "TRACE",
                };
                format!("{level} {}\n", r.args())
            }
            LogFormat::Json => json_line(unix_ns_now(), r.level(), &r.args().to_string()),
        };
        // One write per line, so lines from several threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

pub fn init() {
    let level = match std::env::var("RINGEST_LOG").as_deref() {
        Ok("error") => LevelFilter::Error,
        Ok("warn") => LevelFilter::Warn,
        Ok("debug") => LevelFilter::Debug,
        Ok("trace") => LevelFilter::Trace,
        _ => LevelFilter::Info,
    };
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

fn unix_ns_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The fields a log message names (see the module doc for the shapes).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub peer: Option<&'a str>,
    /// The client certificate's identity, from a `(client: ...)`.
    pub client: Option<&'a str>,
    pub source: Option<&'a str>,
    pub destination: Option<&'a str>,
    pub shard: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub hint: Option<&'a str>,
}

/// Finds the fields in `msg`: the subject before the first `": "`
/// (`PEER`, `source NAME`, `destination NAME`, `shard N`, in any
/// combination), then a `(client: ...)` and a `(hint: ...)` anywhere
/// after it; the reason of a line about one peer ends at the first of them.
pub fn fields(msg: &str) -> Fields<'_> {
    let mut f = Fields::default();
    let (subject, rest) = match msg.split_once(": ") {
        Some((s, r)) => (s, Some(r)),
        // "PEER: ..." without a space after the colon does not occur; a
        // line with no ": " has no subject.
        None => return f,
    };
    let mut words = subject.split(' ').peekable();
    if let Some(first) = words.peek() {
        if first.parse::<SocketAddr>().is_ok() {
            f.peer = Some(first);
            words.next();
        }
    }
    while let Some(w) = words.next() {
        let slot = match w {
            "source" => &mut f.source,
            "destination" => &mut f.destination,
            "shard" => &mut f.shard,
            // Not a subject after all (e.g. "signal 15: draining"): no fields.
            _ => return Fields::default(),
        };
        match words.next() {
            Some(name) if !name.is_empty() => *slot = Some(name),
            _ => return Fields::default(),
        }
    }
    let Some(rest) = rest else { return f };
    let hint_at = rest.find("(hint: ");
    if let Some(start) = hint_at {
        f.hint = balanced(&rest[start + "(hint: ".len()..]);
    }
    let client_at = rest.find("(client: ");
    if let Some(start) = client_at {
        f.client = balanced(&rest[start + "(client: ".len()..]);
    }
    if f.peer.is_some() {
        let end = match (client_at, hint_at) {
            (Some(c), Some(h)) => c.min(h),
            (c, h) => c.or(h).unwrap_or(rest.len()),
        };
        let reason = rest[..end]
            .trim_end_matches("; connection closed")
            .trim_end();
        f.reason = (!reason.is_empty()).then_some(reason);
    }
    f
}

/// The text up to the `)` that closes an already opened parenthesis.
fn balanced(s: &str) -> Option<&str> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(&s[..i]),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// One JSON log line, newline included.
pub fn json_line(unix_ns: u64, level: Level, msg: &str) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(msg.len() + 96);
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(crate::writer::json::rfc3339_ns(unix_ns).as_bytes());
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(level.as_str().to_ascii_lowercase().as_bytes());
    out.extend_from_slice(b"\",\"message\":\"");
    crate::writer::json::escape_bytes(&mut out, msg.as_bytes());
    out.push(b'"');
    let f = fields(msg);
    for (key, value) in [
        ("peer", f.peer),
        ("client", f.client),
        ("source", f.source),
        ("destination", f.destination),
        ("shard", f.shard),
        ("reason", f.reason),
        ("hint", f.hint),
    ] {
        if let Some(v) = value {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":\"");
            crate::writer::json::escape_bytes(&mut out, v.as_bytes());
            out.push(b'"');
        }
    }
    out.extend_from_slice(b"}\n");
    // Only UTF-8 went in: the message is a Rust string and escapes are ASCII.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_handshake_names_peer_source_reason_and_hint() {
        let msg = "127.0.0.1:40000 source tls: TLS handshake refused: client certificate \
                   issued by an unknown CA (hint: add the issuing CA to ca_file (PEM)); \
                   connection closed";
        assert_eq!(
            fields(msg),
            Fields {
                peer: Some("127.0.0.1:40000"),
                source: Some("tls"),
                reason: Some("TLS handshake refused: client certificate issued by an unknown CA"),
                hint: Some("add the issuing CA to ca_file (PEM)"),
                ..Fields::default()
            }
        );
    }

    #[test]
    fn ipv6_peer_and_a_reason_without_hint() {
        let msg = "[::1]:5 source s: framing error: length header too long; connection closed";
        let f = fields(msg);
        assert_eq!(f.peer, Some("[::1]:5"));
        assert_eq!(f.source, Some("s"));
        assert_eq!(f.reason, Some("framing error: length header too long"));
        assert_eq!(f.hint, None);
    }

    #[test]
    fn peer_only_lines() {
        let f = fields("10.0.0.1:9: cannot start TLS: boom");
        assert_eq!(f.peer, Some("10.0.0.1:9"));
        assert_eq!(f.source, None);
        assert_eq!(f.reason, Some("cannot start TLS: boom"));
        let f = fields("10.0.0.1:9 source a: connection refused: max_connections (5) reached");
        assert_eq!(f.peer, Some("10.0.0.1:9"));
        assert_eq!(
            f.reason,
            Some("connection refused: max_connections (5) reached")
        );
    }

    #[test]
    fn shard_source_and_destination_subjects_have_no_reason() {
        let f = fields("shard 1 source tls: accept failed: Too many open files (hint: x); pausing");
        assert_eq!(f.shard, Some("1"));
        assert_eq!(f.source, Some("tls"));
        assert_eq!(f.hint, Some("x"));
        assert_eq!(f.reason, None);
        let f = fields("destination messages: reopened /var/log/ringest/messages.log");
        assert_eq!(f.destination, Some("messages"));
        assert_eq!(f.reason, None);
    }

    #[test]
    fn other_lines_have_no_fields() {
        assert_eq!(fields("signal 15: draining connections"), Fields::default());
        assert_eq!(
            fields("listening on 127.0.0.1:1 (Tls, 2 shards)"),
            Fields::default()
        );
        assert_eq!(fields(""), Fields::default());
        assert_eq!(fields("source : x"), Fields::default());
    }

    #[test]
    fn a_parse_error_line_names_the_client_apart_from_the_reason() {
        let msg = "127.0.0.1:4 source tls: message not parsed (bad_sd): bad (x) sd \
                   (client: CN=a (b), sha256=AA) (hint: fix (it))";
        let f = fields(msg);
        assert_eq!(f.peer, Some("127.0.0.1:4"));
        assert_eq!(f.reason, Some("message not parsed (bad_sd): bad (x) sd"));
        assert_eq!(f.client, Some("CN=a (b), sha256=AA"));
        assert_eq!(f.hint, Some("fix (it)"));
        let line = json_line(0, Level::Warn, msg);
        assert!(
            line.contains(
                "\"peer\":\"127.0.0.1:4\",\"client\":\"CN=a (b), sha256=AA\",\"source\":\"tls\""
            ),
            "{line}"
        );
    }

    #[test]
    fn json_line_is_one_escaped_object() {
        let line = json_line(
            1_700_000_000_123_000_000,
            Level::Warn,
            "[::1]:5 source a\"b: bad \\ thing\n(hint: h); connection closed",
        );
        assert_eq!(
            line,
            "{\"time\":\"2023-11-14T22:13:20.123000000Z\",\"level\":\"warn\",\
             \"message\":\"[::1]:5 source a\\\"b: bad \\\\ thing\\n(hint: h); connection closed\",\
             \"peer\":\"[::1]:5\",\"source\":\"a\\\"b\",\"reason\":\"bad \\\\ thing\",\"hint\":\"h\"}\n"
        );
    }
}
