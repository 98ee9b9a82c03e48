//! Each message of a round parsed at most once, whatever reads its fields.
//!
//! Three steps of a round read parsed fields: routing (filters,
//! [`route`](super::route)), the `json` format ([`encode`](super::encode))
//! and path templates ([`placement`](super::placement)), and a round may
//! hold several `json` or templated destinations. Each asks [`Parsed`] for
//! the message; the first ask parses it ([`crate::parse::parse`], the one
//! parser) and keeps the result for the others.
//!
//! - **Lazy.** A message nobody asks for is never parsed, and a round in
//!   which nobody asks (raw destinations, no filter) costs nothing: the
//!   cells are made at the first ask.
//! - **One mode per source.** A message is read with its source's `parse`
//!   mode, and a source with `parse = "none"` as `auto`: what filters and
//!   templates need. The `json` format does not ask for such a source's
//!   messages (it writes them unparsed).
//! - **Counted where parsed.** A message that matches no format is counted
//!   in its source's `ringest_parse_errors_total{reason}` when it is
//!   parsed: once, whichever step asked first and however many read it
//!   (syslog-ng, too, parses a message once, at its source). A message
//!   nobody asks for is not parsed, so not counted.
//! - **Logged where counted, rarely.** The same failed parse is offered to
//!   the writer's [`ParseErrorLog`], which logs it with its peer, reason
//!   and hint once per (source, peer, reason) per
//!   `parse_error_log_interval_ms`: a bad message costs the count, a look
//!   in a small table and, once per round, a clock read.
//! - **No allocation per message.** The parsed [`Message`]s borrow the
//!   round's batches; their cells are one vector whose allocation the
//!   writer keeps from round to round ([`ParseScratch`]).

use std::cell::{Cell, OnceCell, RefCell};
use std::time::Instant;

use super::parse_error_log::ParseErrorLog;
use crate::batch::Batch;
use crate::parse::{self, Message, ParseError, ParseMode};
use crate::stats::SourceStats;

/// What a writer keeps between rounds: the allocations of a round's cells,
/// and which parse errors it logged lately.
pub struct ParseScratch {
    /// Per batch of the round: the index of its first message's cell.
    starts: Vec<usize>,
    /// Emptied; only its allocation is kept.
    cells: Vec<OnceCell<Message<'static>>>,
    /// Lent to each round and given back by [`ParseScratch::recycle`]: an
    /// `Option`, so lending it moves it and makes no new one (a log's key
    /// table is an allocation and its budget a clock read).
    log: Option<ParseErrorLog>,
}

impl Default for ParseScratch {
    /// Parse errors logged under unnamed sources (tests).
    fn default() -> ParseScratch {
        ParseScratch::new(ParseErrorLog::default())
    }
}

impl ParseScratch {
    /// A writer's scratch, logging parse errors with `log`.
    pub fn new(log: ParseErrorLog) -> ParseScratch {
        ParseScratch {
            starts: Vec::new(),
            cells: Vec::new(),
            log: Some(log),
        }
    }

    /// The parsed view of `round`, whose sources are read with `modes`
    /// (by source index; `auto` past its end) and count their parse errors
    /// in `counted` (by source index; not counted past its end). Nothing
    /// is parsed yet.
    pub fn round<'r>(
        &mut self,
        round: &'r [(usize, Batch)],
        modes: &'r [ParseMode],
        counted: &'r [SourceStats],
    ) -> Parsed<'r> {
        let mut starts = std::mem::take(&mut self.starts);
        starts.clear();
        let mut total = 0;
        for (_, b) in round {
            starts.push(total);
            total += b.len();
        }
        Parsed {
            round,
            modes,
            counted,
            starts,
            total,
            cells: OnceCell::new(),
            spare: Cell::new(relabel(std::mem::take(&mut self.cells))),
            log: RefCell::new(self.log.take()),
            now: Cell::new(None),
        }
    }

    /// Takes back the allocations of a round that is over.
    pub fn recycle(&mut self, parsed: Parsed<'_>) {
        let Parsed {
            starts,
            cells,
            spare,
            log,
            ..
        } = parsed;
        self.log = log.into_inner();
        self.starts = starts;
        self.cells = relabel(cells.into_inner().unwrap_or_else(|| spare.into_inner()));
    }

    /// Messages the kept allocation holds without growing.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.cells.capacity()
    }
}

/// Empties `cells` and gives its allocation to cells of another lifetime.
/// The collect reuses the allocation in place (the element types have one
/// layout), so a writer's rounds allocate only when a round is larger than
/// any before it (`recycling_keeps_the_allocation` checks it).
fn relabel<'a, 'b>(mut cells: Vec<OnceCell<Message<'a>>>) -> Vec<OnceCell<Message<'b>>> {
    cells.clear();
    cells
        .into_iter()
        .map(|_| unreachable!("the vector was just cleared"))
        .collect()
}

/// One round, each message parsed at its first ask (see the module doc).
pub struct Parsed<'r> {
    round: &'r [(usize, Batch)],
    modes: &'r [ParseMode],
    /// Each source's stats, where its parse errors are counted.
    counted: &'r [SourceStats],
    starts: Vec<usize>,
    /// Messages in the round.
    total: usize,
    /// One cell per message of the round, made at the first ask.
    cells: OnceCell<Vec<OnceCell<Message<'r>>>>,
    /// The kept allocation, until the cells are made from it.
    spare: Cell<Vec<OnceCell<Message<'r>>>>,
    /// The writer's parse-error lines, for the round (always there: the
    /// writer recycles every round, which gives the log back).
    log: RefCell<Option<ParseErrorLog>>,
    /// The clock, read at the round's first parse error.
    now: Cell<Option<Instant>>,
}

impl<'r> Parsed<'r> {
    /// The round's batches, as the writer took them.
    pub fn round(&self) -> &'r [(usize, Batch)] {
        self.round
    }

    /// Batch `bi` of the round.
    pub fn batch(&self, bi: usize) -> ParsedBatch<'_, 'r> {
        ParsedBatch { parsed: self, bi }
    }

    /// Each batch of the round, in order.
    pub fn batches(&self) -> impl Iterator<Item = ParsedBatch<'_, 'r>> {
        (0..self.round.len()).map(|bi| self.batch(bi))
    }

    /// Message `m` of batch `bi`, of source `source`, parsed with the
    /// source's mode (`none` read as `auto`); parsed on the first ask only.
    fn message(&self, bi: usize, source: usize, m: usize) -> Message<'r> {
        let round = self.round;
        let mode = match self.modes.get(source).copied().unwrap_or(ParseMode::Auto) {
            ParseMode::None => ParseMode::Auto,
            read => read,
        };
        let parse = || {
            let frame = round.get(bi).map_or(&[][..], |(_, b)| b.message(m));
            parse::parse(frame, mode)
        };
        let cells = self.cells.get_or_init(|| {
            let mut cells = self.spare.take();
            cells.resize_with(self.total, OnceCell::new);
            cells
        });
        let at = round
            .get(bi)
            .filter(|(_, b)| m < b.len())
            .and(self.starts.get(bi))
            .map(|s| s + m);
        // Counted here, in the cell's one initialisation: once per message
        // of the round, whichever step asks first.
        let parse_and_count = || {
            let msg = parse();
            if let (Some(e), Some(s)) = (msg.error, self.counted.get(source)) {
                s.parse_errors.inc(e.label());
                self.log_error(bi, source, m, e);
            }
            msg
        };
        match at.and_then(|at| cells.get(at)) {
            Some(cell) => *cell.get_or_init(parse_and_count),
            // Not a message of the round (a caller's bug): parsed as asked,
            // neither kept nor counted.
            None => parse(),
        }
    }
}

impl Parsed<'_> {
    /// Offers message `m` of batch `bi`'s failed parse to the log, with
    /// the connection of the run that holds it.
    fn log_error(&self, bi: usize, source: usize, m: usize, error: ParseError) {
        let Some((_, b)) = self.round.get(bi) else {
            return;
        };
        // The last run that starts at or before `m` holds it.
        let Some(run) = b
            .runs
            .partition_point(|r| r.first as usize <= m)
            .checked_sub(1)
            .and_then(|i| b.runs.get(i))
        else {
            return;
        };
        let now = match self.now.get() {
            Some(now) => now,
            None => {
                let now = Instant::now();
                self.now.set(Some(now));
                now
            }
        };
        let mode = self.modes.get(source).copied().unwrap_or(ParseMode::Auto);
        // Never re-entered (the line is only written); refused, it is skipped.
        let Ok(mut log) = self.log.try_borrow_mut() else {
            return;
        };
        let Some(log) = log.as_mut() else {
            return;
        };
        if let Some(line) = log.check(source, &run.conn, mode, error, now) {
            log::warn!("{line}");
        }
    }
}

/// One batch of a [`Parsed`] round.
#[derive(Clone, Copy)]
pub struct ParsedBatch<'a, 'r> {
    parsed: &'a Parsed<'r>,
    bi: usize,
}

impl<'r> ParsedBatch<'_, 'r> {
    /// Its index in the round.
    pub fn index(&self) -> usize {
        self.bi
    }

    pub fn batch(&self) -> &'r Batch {
        let round: &'r [(usize, Batch)] = self.parsed.round;
        &round[self.bi].1
    }

    /// Its message `m`, of source `source` (the message's run's), parsed
    /// once per round.
    pub fn message(&self, source: usize, m: usize) -> Message<'r> {
        self.parsed.message(self.bi, source, m)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::batch::ConnMeta;
    use crate::parse::{Format, PARSE_CALLS};

    fn batch(source: u16, msgs: &[&str]) -> Batch {
        let meta = Arc::new(ConnMeta {
            source,
            peer: "127.0.0.1:1".parse().expect("addr"),
            identity: None,
        });
        let mut b = Batch::with_capacity(1024);
        b.begin_run(&meta, 1);
        for m in msgs {
            b.push(m.as_bytes());
        }
        b
    }

    fn calls() -> u64 {
        PARSE_CALLS.with(Cell::get)
    }

    const BSD: &str = "<13>Nov 29 00:00:00 db2 cron[7]: run";
    const IETF: &str = "<38>1 2026-11-29T00:00:00Z web1 sshd 1 - - x";

    #[test]
    fn each_message_is_parsed_at_its_first_ask_only() {
        let round = vec![(0, batch(0, &[BSD, IETF])), (0, batch(1, &[IETF]))];
        let modes = [ParseMode::Auto, ParseMode::Rfc3164];
        let mut scratch = ParseScratch::default();
        let parsed = scratch.round(&round, &modes, &[]);
        let before = calls();
        for _ in 0..3 {
            let first = parsed.batch(0);
            assert_eq!(first.message(0, 1).format, Format::Rfc5424);
            assert_eq!(first.message(0, 1).host, Some(&b"web1"[..]));
            // Source 1 reads as rfc3164: the "1" is the tag.
            assert_eq!(parsed.batch(1).message(1, 0).app, Some(&b"1"[..]));
        }
        assert_eq!(
            calls() - before,
            2,
            "two messages asked for, each parsed once"
        );
        scratch.recycle(parsed);
    }

    #[test]
    fn a_round_nobody_asks_about_parses_and_allocates_nothing() {
        let round = vec![(0, batch(0, &[BSD, IETF]))];
        let mut scratch = ParseScratch::default();
        let before = calls();
        let parsed = scratch.round(&round, &[ParseMode::Auto], &[]);
        assert_eq!(parsed.batches().count(), 1);
        scratch.recycle(parsed);
        assert_eq!(calls(), before);
        assert_eq!(scratch.capacity(), 0);
    }

    #[test]
    fn none_is_read_as_auto_and_a_missing_mode_too() {
        let round = vec![(0, batch(0, &[IETF])), (0, batch(5, &[BSD]))];
        let parsed = ParseScratch::default().round(&round, &[ParseMode::None], &[]);
        assert_eq!(parsed.batch(0).message(0, 0).format, Format::Rfc5424);
        assert_eq!(parsed.batch(1).message(5, 0).format, Format::Rfc3164);
    }

    #[test]
    fn a_failed_parse_is_counted_once_in_its_source_at_the_first_ask() {
        let stats = crate::stats::Stats::new(vec!["a".into(), "b".into()]);
        let round = vec![(0, batch(0, &[IETF, "garbage"])), (0, batch(1, &["<x>"]))];
        let parsed = ParseScratch::default().round(&round, &[], &stats.sources);
        let count = |s: usize, reason: &str| stats.sources[s].parse_errors.get(reason);
        assert_eq!(count(0, "no_pri"), 0, "nothing counted before an ask");
        for _ in 0..3 {
            assert!(parsed.batch(0).message(0, 1).error.is_some());
            assert!(parsed.batch(0).message(0, 0).error.is_none());
        }
        assert_eq!(count(0, "no_pri"), 1, "three asks, one parse, one count");
        assert_eq!(stats.sources[0].parse_errors.snapshot(), [("no_pri", 1)]);
        assert!(
            stats.sources[1].parse_errors.snapshot().is_empty(),
            "source 1's bad message was never asked for"
        );
        let _ = parsed.batch(1).message(1, 0);
        assert_eq!(
            stats.sources[1].parse_errors.snapshot(),
            [("bad_pri", 1)],
            "counted in its own source"
        );
    }

    #[test]
    fn a_failed_parse_is_logged_with_the_connection_of_its_run() {
        let conn = |port: u16| {
            Arc::new(ConnMeta {
                source: 0,
                peer: ([10, 0, 0, 1], port).into(),
                identity: None,
            })
        };
        let (a, b, c) = (conn(1), conn(2), conn(3));
        let mut bad = Batch::with_capacity(1024);
        bad.begin_run(&a, 1);
        bad.push(IETF.as_bytes());
        bad.push(b"garbage");
        bad.begin_run(&b, 2);
        bad.push(b"garbage");
        bad.begin_run(&c, 3);
        bad.push(IETF.as_bytes());
        let stats = crate::stats::Stats::new(vec!["a".into()]);
        let round = vec![(0, bad)];
        let mut scratch = ParseScratch::default();
        let parsed = scratch.round(&round, &[ParseMode::Rfc5424], &stats.sources);
        for m in 0..4 {
            let _ = parsed.batch(0).message(0, m);
        }
        scratch.recycle(parsed);
        assert_eq!(stats.sources[0].parse_errors.get("no_pri"), 2);
        // The log came back with the round: a and b were logged (so are
        // quiet now); c sent no bad message.
        let now = std::time::Instant::now();
        let mut logged = |conn: &ConnMeta| {
            scratch
                .log
                .as_mut()
                .expect("recycle gave the log back")
                .check(0, conn, ParseMode::Rfc5424, ParseError::NoPri, now)
                .is_none()
        };
        assert!(logged(&a), "a's second message");
        assert!(logged(&b), "b's only message, in the second run");
        assert!(!logged(&c), "c's message parsed");
    }

    #[test]
    fn recycling_keeps_the_allocation() {
        let big = vec![(0, batch(0, &[BSD; 100]))];
        let mut scratch = ParseScratch::default();
        let parsed = scratch.round(&big, &[], &[]);
        let _ = parsed.batch(0).message(0, 99);
        scratch.recycle(parsed);
        let kept = scratch.capacity();
        assert!(kept >= 100, "{kept}");
        // A smaller round, in another borrow of other batches, reuses it.
        let small = vec![(0, batch(0, &[IETF; 3]))];
        let parsed = scratch.round(&small, &[], &[]);
        assert_eq!(parsed.batch(0).message(0, 2).format, Format::Rfc5424);
        scratch.recycle(parsed);
        assert_eq!(scratch.capacity(), kept);
    }
}
