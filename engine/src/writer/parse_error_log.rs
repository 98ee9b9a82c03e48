//! The log line of a message that failed to parse: once per (source, peer,
//! reason) per `parse_error_log_interval_ms`, within a budget of lines per
//! second, so a sender of millions of bad messages costs the writer a
//! counter bump and a table look-up per message, and the log one line.
//!
//! Sans-IO: [`ParseErrorLog::check`] says whether to log and gives the line
//! ([`ParseErrorLine`], a `Display`); the caller ([`super::parsed`]) writes
//! it. The rate limiting is [`KeyedRateLog`]'s, the reason and the hint
//! [`ParseError`]'s (its `Display`, `label` and `hint`: one owner), the
//! identity the connection's ([`ConnMeta`]), computed once at its handshake.
//!
//! The line has the shape of the other lines about one peer, so the JSON
//! log format gives `peer`, `source`, `reason`, `client` and `hint`:
//!
//! ```text
//! 127.0.0.1:40000 source tls: message not parsed (bad_version): RFC 5424 expected: VERSION 1 does not follow the PRI (client: CN=web1, sha256=AA:..) (hint: ...)
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::batch::ConnMeta;
use crate::config::SourceConfig;
use crate::parse::{ParseError, ParseMode};
use crate::ratelog::KeyedRateLog;

/// Parse-error lines a writer logs per second at most, over all sources
/// and peers; the rest are suppressed and counted in one line a second.
pub const PARSE_ERROR_LOG_LINES_PER_SECOND: u32 = 10;

/// (source, peer, reason) keys a writer remembers: past this many at once,
/// the one logged longest ago may be logged again before its quiet period
/// ends (the budget above still holds).
pub const PARSE_ERROR_LOG_KEYS_MAX: usize = 64;

/// One source's part of the line: its name and its quiet period.
struct SourceLog {
    name: String,
    quiet: Duration,
}

/// A writer's parse-error lines (see the module doc).
pub struct ParseErrorLog {
    sources: Vec<SourceLog>,
    limit: KeyedRateLog<(usize, SocketAddr, ParseError)>,
}

impl Default for ParseErrorLog {
    /// No sources configured: every source is named `?` and quiet for the
    /// default period (tests that do not look at the log).
    fn default() -> ParseErrorLog {
        ParseErrorLog::with_sources(Vec::new())
    }
}

impl ParseErrorLog {
    /// The lines of `sources` (by source index, as in the batches' runs).
    pub fn new(sources: &[SourceConfig]) -> ParseErrorLog {
        ParseErrorLog::with_sources(
            sources
                .iter()
                .map(|s| (s.name.clone(), s.parse_error_log_interval_ms))
                .collect(),
        )
    }

    /// `(name, parse_error_log_interval_ms)` per source.
    fn with_sources(sources: Vec<(String, u64)>) -> ParseErrorLog {
        ParseErrorLog {
            sources: sources
                .into_iter()
                .map(|(name, quiet_ms)| SourceLog {
                    name,
                    quiet: Duration::from_millis(quiet_ms),
                })
                .collect(),
            limit: KeyedRateLog::new(PARSE_ERROR_LOG_LINES_PER_SECOND, PARSE_ERROR_LOG_KEYS_MAX),
        }
    }

    /// A message of `source` from `conn`, read with `mode` (the source's
    /// `parse`), failed with `error` at `now`: the line to log, or `None`
    /// when this (source, peer, reason) was logged within the source's
    /// quiet period or the budget is spent. Allocates nothing.
    pub fn check<'a>(
        &'a mut self,
        source: usize,
        conn: &'a ConnMeta,
        mode: ParseMode,
        error: ParseError,
        now: Instant,
    ) -> Option<ParseErrorLine<'a>> {
        let (name, quiet) = match self.sources.get(source) {
            Some(s) => (s.name.as_str(), s.quiet),
            None => (
                "?",
                Duration::from_millis(crate::config::defaults::parse_error_log_interval_ms()),
            ),
        };
        self.limit
            .allow((source, conn.peer, error), quiet, now)
            .then_some(ParseErrorLine {
                source: name,
                conn,
                mode,
                error,
                quiet,
            })
    }
}

/// One parse-error line; its `Display` is the whole line.
pub struct ParseErrorLine<'a> {
    source: &'a str,
    conn: &'a ConnMeta,
    mode: ParseMode,
    error: ParseError,
    quiet: Duration,
}

impl fmt::Display for ParseErrorLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.error;
        write!(
            f,
            "{} source {}: message not parsed ({}): {e}",
            self.conn.peer,
            self.source,
            e.label()
        )?;
        if let Some(id) = &self.conn.identity {
            // The certificate's names first, then its fingerprint, which
            // is there whenever the client sent a certificate.
            let name = id
                .client_cn
                .as_deref()
                .map(|cn| ("CN", cn))
                .or_else(|| id.client_sans.first().map(|san| ("SAN", san.as_str())));
            match (name, &id.client_sha256) {
                (Some((k, v)), Some(sha)) => write!(f, " (client: {k}={v}, sha256={sha})")?,
                (Some((k, v)), None) => write!(f, " (client: {k}={v})")?,
                (None, Some(sha)) => write!(f, " (client: sha256={sha})")?,
                (None, None) => {}
            }
        }
        write!(f, " (hint: {}; the message was kept whole", e.hint())?;
        write!(
            f,
            " with parse_error = \"{}\" and counted in ringest_parse_errors_total; source parse = \"{}\"",
            e.label(),
            self.mode.name()
        )?;
        if self.mode == ParseMode::None {
            f.write_str(", read as \"auto\" for a filter, a path template or a kafka key")?;
        }
        if !self.quiet.is_zero() {
            write!(
                f,
                "; the next ones from this peer for this reason are not logged for {} ms \
                 (parse_error_log_interval_ms)",
                self.quiet.as_millis()
            )?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logger::fields;
    use crate::tls::PeerIdentity;

    fn conn(peer: &str, identity: Option<PeerIdentity>) -> ConnMeta {
        ConnMeta {
            source: 0,
            peer: peer.parse().expect("addr"),
            identity,
        }
    }

    fn identity(cn: Option<&str>, sans: &[&str]) -> PeerIdentity {
        PeerIdentity {
            tls_version: "TLSv1.3",
            cipher: "TLS_AES_128_GCM_SHA256",
            client_cn: cn.map(String::from),
            client_sans: sans.iter().map(|s| s.to_string()).collect(),
            client_sha256: Some("AA:BB".into()),
            client_issuer: Some("CN=ca".into()),
        }
    }

    fn quiet_log(quiet_ms: u64) -> ParseErrorLog {
        ParseErrorLog::with_sources(vec![("tls".into(), quiet_ms), ("tcp".into(), quiet_ms)])
    }

    /// How many of `n` bad messages, one every `step`, are logged.
    fn logged(
        log: &mut ParseErrorLog,
        source: usize,
        c: &ConnMeta,
        e: ParseError,
        t0: Instant,
        n: u32,
        step: Duration,
    ) -> usize {
        (0..n)
            .filter(|&i| {
                log.check(source, c, ParseMode::Rfc5424, e, t0 + step * i)
                    .is_some()
            })
            .count()
    }

    #[test]
    fn a_burst_is_one_line_per_source_peer_and_reason() {
        let mut log = quiet_log(60_000);
        let t0 = Instant::now();
        let (a, b) = (conn("10.0.0.1:1000", None), conn("10.0.0.2:1000", None));
        let step = Duration::from_micros(10);
        let bad = ParseError::BadVersion;
        assert_eq!(logged(&mut log, 0, &a, bad, t0, 100_000, step), 1);
        assert_eq!(logged(&mut log, 0, &b, bad, t0, 1_000, step), 1, "peer");
        assert_eq!(logged(&mut log, 1, &a, bad, t0, 1_000, step), 1, "source");
        let other = ParseError::NoPri;
        assert_eq!(logged(&mut log, 0, &a, other, t0, 1_000, step), 1, "reason");
        // Another port of the same host is another connection, so another peer.
        let a2 = conn("10.0.0.1:1001", None);
        assert_eq!(logged(&mut log, 0, &a2, bad, t0, 10, step), 1);
    }

    #[test]
    fn the_quiet_period_ends_and_zero_leaves_the_budget() {
        let a = conn("10.0.0.1:1000", None);
        let bad = ParseError::BadSd;
        let mut log = quiet_log(60_000);
        let t0 = Instant::now();
        // A message a second for five minutes: one line a minute.
        let second = Duration::from_secs(1);
        assert_eq!(logged(&mut log, 0, &a, bad, t0, 300, second), 5);
        // The budget's second starts when the log is made: t0 is later.
        let mut log = quiet_log(0);
        let t0 = Instant::now();
        let ms = Duration::from_micros(999);
        assert_eq!(
            logged(&mut log, 0, &a, bad, t0, 1_000, ms),
            PARSE_ERROR_LOG_LINES_PER_SECOND as usize,
            "no quiet period: the budget of a second"
        );
    }

    #[test]
    fn the_line_names_peer_source_reason_client_and_hint() {
        let mut log = quiet_log(60_000);
        let c = conn(
            "127.0.0.1:40000",
            Some(identity(Some("web1"), &["web1.example"])),
        );
        let t0 = Instant::now();
        let line = log
            .check(0, &c, ParseMode::Rfc5424, ParseError::BadVersion, t0)
            .expect("first")
            .to_string();
        assert_eq!(
            line,
            format!(
                "127.0.0.1:40000 source tls: message not parsed (bad_version): RFC 5424 \
                 expected: VERSION 1 does not follow the PRI (client: CN=web1, sha256=AA:BB) \
                 (hint: {}; the message was kept whole with parse_error = \"bad_version\" and \
                 counted in ringest_parse_errors_total; source parse = \"rfc5424\"; the next \
                 ones from this peer for this reason are not logged for 60000 ms \
                 (parse_error_log_interval_ms))",
                ParseError::BadVersion.hint()
            )
        );
        let f = fields(&line);
        assert_eq!(f.peer, Some("127.0.0.1:40000"));
        assert_eq!(f.source, Some("tls"));
        assert_eq!(
            f.reason,
            Some("message not parsed (bad_version): RFC 5424 expected: VERSION 1 does not follow the PRI")
        );
        assert_eq!(f.client, Some("CN=web1, sha256=AA:BB"));
        let hint = f.hint.expect("hint");
        assert!(hint.starts_with(ParseError::BadVersion.hint()), "{hint}");
        assert!(hint.ends_with("(parse_error_log_interval_ms)"), "{hint}");
    }

    #[test]
    fn the_client_is_its_first_san_without_a_cn_and_absent_without_tls() {
        let mut log = quiet_log(0);
        let t0 = Instant::now();
        let mut line = |c: &ConnMeta, mode| {
            log.check(0, c, mode, ParseError::NoPri, t0)
                .expect("no quiet period")
                .to_string()
        };
        let san = conn("[::1]:5", Some(identity(None, &["host.example", "x"])));
        let l = line(&san, ParseMode::Auto);
        assert_eq!(
            fields(&l).client,
            Some("SAN=host.example, sha256=AA:BB"),
            "{l}"
        );
        let tcp = conn("[::1]:6", None);
        let l = line(&tcp, ParseMode::None);
        let f = fields(&l);
        assert_eq!((f.peer, f.client), (Some("[::1]:6"), None), "{l}");
        assert_eq!(
            f.reason,
            Some("message not parsed (no_pri): no <PRI> at the start")
        );
        assert!(
            l.ends_with(
                "source parse = \"none\", read as \"auto\" for a filter, a path template or \
                 a kafka key)"
            ),
            "no quiet period, so none named: {l}"
        );
    }

    #[test]
    fn the_documented_budget_is_the_constant() {
        let (_, default, meaning) = crate::config::options::OPTIONS
            .iter()
            .find(|(k, _, _)| *k == "source.parse_error_log_interval_ms")
            .expect("documented");
        assert_eq!(
            *default,
            crate::config::defaults::parse_error_log_interval_ms().to_string()
        );
        let budget =
            format!("within {PARSE_ERROR_LOG_LINES_PER_SECOND} lines per second per writer");
        assert!(meaning.contains(&budget), "{meaning}");
    }

    #[test]
    fn an_unknown_source_is_named_by_a_question_mark() {
        let mut log = ParseErrorLog::default();
        let c = conn("10.0.0.9:1", None);
        let line = log
            .check(3, &c, ParseMode::Auto, ParseError::BadPri, Instant::now())
            .expect("first")
            .to_string();
        assert!(line.starts_with("10.0.0.9:1 source ?: "), "{line}");
    }
}
