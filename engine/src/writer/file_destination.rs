//! A file destination as the writer drives it: its file, the sources that feed
//! it, its health, and what it could not guarantee.
//!
//! A failing write or fsync pauses the writer on this destination: the rings
//! fill and the shards stop reading (back-pressure), nothing is dropped. It
//! is logged once when it starts and once when it ends, counted on every
//! failed call, and retried with backoff until it succeeds. Only after
//! shutdown, past the give-up instant, does the writer stop retrying; from
//! then on this destination's messages are counted as not written, so the
//! process can exit and say what is missing.
//!
//! A path with template fields (`logs/{host}/{day}.log`, see
//! [`template`](super::template)) makes a destination of many files: each
//! round's messages are placed ([`Placement`]) and written file by file
//! through a bounded set of open files ([`FileSet`]), with the same
//! retries, back-pressure and accounting, per file. A failing open counts
//! as a failing write (it is retried; the messages wait). After SIGHUP
//! every open file is closed (fsynced first when the policy syncs) and
//! opened by name again by its next message. If this destination gives up
//! part-way through a round, the messages of the files it did not finish
//! are counted as not written, exactly; the writer's per-source
//! `messages_written` then counts only the round's messages up to the
//! first one missing, so it may count fewer than were written, never more.

use std::io;
use std::mem;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::destination::GiveUp;
use super::encode::Out;
use super::failure::{Backoff, Health, WriteFailure};
use super::file::{FileSink, Opened};
use super::file_set::{Closed, FileSet};
use super::parsed::Parsed;
use super::placement::Placement;
use super::report::DestinationLoss;
use super::sys::Fs;
use crate::config::{DestinationConfig, OutputFormat};
use crate::stats::{DestinationStats, Labelled};

/// Waits between tries of a failing write or fsync. The cap is how soon
/// writing resumes once space returns.
const RETRY_BACKOFF: Backoff = Backoff {
    min: Duration::from_millis(10),
    max: Duration::from_millis(1_000),
};

/// Waits between tries of a reopen that failed after SIGHUP.
const REOPEN_BACKOFF: Backoff = Backoff {
    min: Duration::from_millis(100),
    max: Duration::from_millis(10_000),
};

#[derive(Debug, Clone, Copy)]
enum Op {
    Open,
    Write,
    Fsync,
}

impl Op {
    fn counter(self, stats: &DestinationStats) -> &Labelled {
        match self {
            Op::Open | Op::Write => &stats.write_errors,
            Op::Fsync => &stats.fsync_errors,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Open => "open",
            Op::Write => "write",
            Op::Fsync => "fsync",
        }
    }
}

/// What a file destination writes to.
enum Files<F: Fs> {
    /// A plain path: one file, reopened in place after SIGHUP.
    One {
        sink: FileSink<F>,
        /// Messages written since the last successful fsync.
        unsynced: u64,
    },
    /// A path template: the open files, and this round's placement.
    Split(Box<Split<F>>),
}

struct Split<F: Fs> {
    set: FileSet<F>,
    placement: Placement,
    /// Files closed by the last call into `set`, to account for.
    closed: Vec<Closed>,
    /// A value had to be made safe; logged the first time only.
    sanitized_logged: bool,
}

pub struct FileDestination<F: Fs> {
    name: String,
    format: OutputFormat,
    files: Files<F>,
    /// For each source, whether it feeds this destination.
    pub feeds: Vec<bool>,
    health: Health,
    /// This writer's share of the destination's failing gauge, as last
    /// published (`health` decides it; reopens after SIGHUP do not count).
    failing_published: u64,
    reopen_health: Health,
    /// When to try the pending reopen; `None` when there is none.
    reopen_due: Option<Instant>,
    gave_up: bool,
    loss: DestinationLoss,
}

impl<F: Fs + Clone> FileDestination<F> {
    /// Opens the file; with a path template, opens nothing until a message
    /// needs a file.
    pub fn open(
        fs: F,
        cfg: &DestinationConfig,
        feeds: Vec<bool>,
        stats: &DestinationStats,
    ) -> io::Result<FileDestination<F>> {
        let files = match cfg.template() {
            None => {
                let (sink, opened) = FileSink::open(fs, cfg)?;
                note_opened(&cfg.name, &sink.path, opened, stats);
                Files::One { sink, unsynced: 0 }
            }
            Some(template) => Files::Split(Box::new(Split {
                set: FileSet::new(fs, cfg, cfg.max_open_files),
                placement: Placement::new(template, cfg.date_from),
                closed: Vec::new(),
                sanitized_logged: false,
            })),
        };
        Ok(FileDestination {
            name: cfg.name.clone(),
            format: cfg.format,
            files,
            feeds,
            health: Health::new(RETRY_BACKOFF),
            failing_published: 0,
            reopen_health: Health::new(REOPEN_BACKOFF),
            reopen_due: None,
            gave_up: false,
            loss: DestinationLoss {
                name: cfg.name.clone(),
                ..Default::default()
            },
        })
    }

    pub fn format(&self) -> OutputFormat {
        self.format
    }

    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// With a path template, the round's output must be encoded message by
    /// message and placed ([`place`](Self::place)) before [`deliver`](Self::deliver).
    pub fn is_split(&self) -> bool {
        matches!(self.files, Files::Split(_))
    }

    /// Decides the file of each message of the round this destination
    /// takes (see [`Placement::place`]); a no-op for a plain path.
    pub fn place(
        &mut self,
        parsed: &Parsed<'_>,
        routed: Option<(&[Vec<u64>], usize)>,
        names: &[String],
    ) {
        if let Files::Split(s) = &mut self.files {
            s.placement.place(parsed, &self.feeds, routed, names);
        }
    }

    /// Writes `out` and applies the fsync policy (`force`: fsync whatever
    /// the policy), retrying until both succeed. Returns how many of `out`'s
    /// messages, from the first, are wholly in the file: all of them, unless
    /// this destination gave up (a failure after `give_up`'s instant), in
    /// which case what is missing is counted in the loss.
    pub fn deliver(
        &mut self,
        out: &Out<'_, '_>,
        force: bool,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> u64 {
        let messages = out.messages();
        if self.gave_up {
            self.loss.not_written(messages, out.len_bytes());
            return 0;
        }
        if self.is_split() {
            return self.deliver_split(out, force, stats, give_up);
        }
        let parts = out.parts();
        self.write_retrying(
            None,
            &parts,
            messages,
            &|done| out.messages_from(done),
            force,
            stats,
            give_up,
        )
    }

    /// Writes `parts` (`messages` of them, `messages_from(done)` not wholly
    /// within the first `done` bytes) to the file at `path` (the only file
    /// when `None`), then applies the fsync policy, retrying both until
    /// they succeed or the give-up instant passes. Returns how many of the
    /// messages, from the first, are wholly in the file.
    #[allow(clippy::too_many_arguments)]
    fn write_retrying(
        &mut self,
        path: Option<&[u8]>,
        parts: &[&[u8]],
        messages: u64,
        messages_from: &dyn Fn(usize) -> u64,
        force: bool,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> u64 {
        // Everything before `done` is in the file; a retry resumes there.
        let mut done = 0;
        let mut written = false;
        loop {
            let result = self.attempt(path, parts, &mut done, &mut written, messages, force, stats);
            self.account_closed(stats);
            let (op, e, unsynced) = match result {
                Ok(()) => {
                    self.recovered(path, stats);
                    return messages;
                }
                Err(failure) => failure,
            };
            let now = Instant::now();
            let retry_in = self.failed(now, op, &e, unsynced, path, stats);
            let give_up_at = give_up.at();
            if give_up_at.is_some_and(|t| now >= t) {
                let whole = if written {
                    // In the file; only the fsync failed (counted as unsynced).
                    messages
                } else {
                    let missing = messages_from(done);
                    // The messages wholly before `done` are in the file, unsynced.
                    if let Some(u) = self.unsynced_of(path) {
                        *u += messages - missing;
                    }
                    let total: usize = parts.iter().map(|p| p.len()).sum();
                    self.loss.not_written_messages += missing;
                    self.loss.not_written_bytes += (total - done) as u64;
                    messages - missing
                };
                self.give_up();
                return whole;
            }
            let wait = give_up_at.map_or(retry_in, |t| retry_in.min(t - now));
            std::thread::sleep(wait);
        }
    }

    /// One try: open (templated), write from `done`, fsync per policy.
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &mut self,
        path: Option<&[u8]>,
        parts: &[&[u8]],
        done: &mut usize,
        written: &mut bool,
        messages: u64,
        force: bool,
        stats: &DestinationStats,
    ) -> Result<(), (Op, io::Error, u64)> {
        let (sink, unsynced) = match &mut self.files {
            Files::One { sink, unsynced } => (sink, unsynced),
            // Nothing to write (an idle tick's fsync): only a file that is
            // open, and its place in the LRU order stays.
            Files::Split(s) if parts.is_empty() => match s.set.peek_mut(path.unwrap_or_default()) {
                Some(f) => (&mut f.sink, &mut f.unsynced),
                None => return Ok(()),
            },
            Files::Split(s) => {
                let (f, opened) = s
                    .set
                    .get(path.unwrap_or_default(), &mut s.closed)
                    .map_err(|e| (Op::Open, e, 0))?;
                if let Some(o) = opened {
                    note_opened(&self.name, &f.sink.path, o, stats);
                }
                (&mut f.sink, &mut f.unsynced)
            }
        };
        sink.write_from(parts, done)
            .map_err(|e| (Op::Write, e, 0))?;
        if !*written {
            *written = true;
            *unsynced += messages;
        }
        sync(sink, unsynced, &mut self.loss, force, stats).map_err(|(e, n)| (Op::Fsync, e, n))
    }

    /// A templated round: each file's messages in one write (one writev
    /// slice per run of consecutive messages), files in order of first use.
    fn deliver_split(
        &mut self,
        out: &Out<'_, '_>,
        force: bool,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> u64 {
        let Files::Split(s) = &mut self.files else {
            return 0;
        };
        let spans = Spans::of(out);
        if spans.is_empty() {
            // An idle tick: the fsync policy of every dirty file.
            for path in s.set.dirty_paths() {
                self.write_retrying(Some(&path), &[], 0, &|_| 0, force, stats, give_up);
            }
            return 0;
        }
        let p = &s.placement;
        assert_eq!(
            p.targets().len(),
            spans.len(),
            "a templated destination's output is placed before it is delivered"
        );
        stats.path_values_sanitized.fetch_add(p.sanitized, Relaxed);
        stats.path_values_missing.fetch_add(p.missing, Relaxed);
        if let (Some(peer), false) = (p.sanitized_peer, s.sanitized_logged) {
            s.sanitized_logged = true;
            log::warn!(
                "destination {}: peer {peer} sent a field value that is not a safe file name (a /, a leading ., a NUL, empty, non-ASCII or over 128 bytes); it was escaped as %XX (counted in ringest_path_values_sanitized_total; logged once)",
                self.name
            );
        }
        let paths = p.paths().to_vec();
        let mut by_path: Vec<Vec<usize>> = vec![Vec::new(); paths.len()];
        for (i, &t) in p.targets().iter().enumerate() {
            by_path[t as usize].push(i);
        }
        let mut whole = vec![true; spans.len()];
        for (path, idx) in paths.iter().zip(&by_path) {
            if self.gave_up {
                for &i in idx {
                    whole[i] = false;
                    self.loss.not_written_messages += 1;
                    self.loss.not_written_bytes += spans.bytes(i) as u64;
                }
                continue;
            }
            let parts = spans.parts(idx);
            let ends: Vec<usize> = idx
                .iter()
                .scan(0, |end, &i| {
                    *end += spans.bytes(i);
                    Some(*end)
                })
                .collect();
            let from = |done: usize| (ends.len() - ends.partition_point(|&e| e <= done)) as u64;
            let n = idx.len() as u64;
            let w = self.write_retrying(Some(path), &parts, n, &from, force, stats, give_up);
            for &i in &idx[w as usize..] {
                whole[i] = false;
            }
        }
        whole.iter().position(|w| !w).unwrap_or(whole.len()) as u64
    }

    /// The unsynced count of the file at `path` (the only one when `None`),
    /// if it is open.
    fn unsynced_of(&mut self, path: Option<&[u8]>) -> Option<&mut u64> {
        match &mut self.files {
            Files::One { unsynced, .. } => Some(unsynced),
            Files::Split(s) => s.set.peek_mut(path?).map(|f| &mut f.unsynced),
        }
    }

    fn display_path(&self, path: Option<&[u8]>) -> String {
        match (&self.files, path) {
            (Files::One { sink, .. }, _) => sink.path.display().to_string(),
            (Files::Split(_), Some(p)) => String::from_utf8_lossy(p).into_owned(),
            (Files::Split(_), None) => "its files".into(),
        }
    }

    /// Counts the files a call into the file set closed, and any fsync
    /// that failed as they closed.
    fn account_closed(&mut self, stats: &DestinationStats) {
        let Files::Split(s) = &mut self.files else {
            return;
        };
        for c in s.closed.drain(..) {
            stats.files_closed.fetch_add(1, Relaxed);
            if let Err(e) = c.sync {
                let reason = WriteFailure::classify(&e);
                stats.fsync_errors.inc(reason.label());
                self.loss.unsynced_messages += c.unsynced;
                self.loss.reason = Some(reason);
                stats.unsynced_messages.fetch_add(c.unsynced, Relaxed);
                log::error!(
                    "destination {}: fsync of {} as it was closed failed ({reason}): {} messages may not be on disk",
                    self.name,
                    c.path.display(),
                    c.unsynced
                );
            }
        }
    }

    /// Counts a failure and logs the first of an outage (and any fsync
    /// failure that leaves messages maybe lost); returns the wait.
    fn failed(
        &mut self,
        now: Instant,
        op: Op,
        e: &io::Error,
        unsynced: u64,
        path: Option<&[u8]>,
        stats: &DestinationStats,
    ) -> Duration {
        let reason = WriteFailure::classify(e);
        op.counter(stats).inc(reason.label());
        self.loss.reason = Some(reason);
        let f = self.health.failed(now, reason);
        stats.publish_failing(&mut self.failing_published, self.health.is_failing());
        if f.log || unsynced > 0 {
            let lost = if unsynced > 0 {
                format!(
                    "; {unsynced} messages written since the last good fsync may not be on disk"
                )
            } else {
                String::new()
            };
            log::error!(
                "destination {}: {} to {} failed: {reason}{lost}; writing paused, retrying until it succeeds ({})",
                self.name,
                op.name(),
                self.display_path(path),
                reason.hint()
            );
        }
        f.retry_in
    }

    fn recovered(&mut self, path: Option<&[u8]>, stats: &DestinationStats) {
        let ended = self.health.succeeded();
        stats.publish_failing(&mut self.failing_published, self.health.is_failing());
        if let Some(o) = ended {
            log::warn!(
                "destination {}: writing to {} resumed after {:.1} s and {} failed attempts (last: {})",
                self.name,
                self.display_path(path),
                o.since.elapsed().as_secs_f64(),
                o.failures,
                o.reason
            );
        }
    }

    fn give_up(&mut self) {
        self.gave_up = true;
        log::error!(
            "destination {}: still failing after shutdown and the drain timeout; giving up: {} messages ({} bytes) not written so far, later ones are counted too",
            self.name,
            self.loss.not_written_messages,
            self.loss.not_written_bytes
        );
    }

    /// SIGHUP: reopen at the next [`reopen_if_due`](Self::reopen_if_due).
    pub fn request_reopen(&mut self, now: Instant) {
        self.reopen_due = Some(now);
    }

    /// Tries a pending reopen. On failure the old (rotated) file stays in
    /// use, and the reopen is tried again after a backoff, without a new
    /// SIGHUP. A templated destination closes its files instead: the next
    /// message of each opens it by name.
    pub fn reopen_if_due(&mut self, now: Instant, stats: &DestinationStats) {
        if self.reopen_due.is_none_or(|t| now < t) {
            return;
        }
        let (sink, unsynced) = match &mut self.files {
            Files::One { sink, unsynced } => (sink, unsynced),
            Files::Split(s) => {
                self.reopen_due = None;
                let n = s.set.len();
                s.set.close_all(false, &mut s.closed);
                log::info!(
                    "destination {}: closed its {n} open files; each is opened by name again by its next message",
                    self.name
                );
                self.account_closed(stats);
                return;
            }
        };
        match sink.reopen() {
            Ok((opened, old_sync)) => {
                self.reopen_due = None;
                match self.reopen_health.succeeded() {
                    Some(o) => log::warn!(
                        "destination {}: reopened {} after {} failed attempts",
                        self.name,
                        sink.path.display(),
                        o.failures
                    ),
                    None => log::info!(
                        "destination {}: reopened {}",
                        self.name,
                        sink.path.display()
                    ),
                }
                let n = mem::take(unsynced);
                if let Err(e) = old_sync {
                    let reason = WriteFailure::classify(&e);
                    stats.fsync_errors.inc(reason.label());
                    self.loss.unsynced_messages += n;
                    self.loss.reason = Some(reason);
                    stats.unsynced_messages.fetch_add(n, Relaxed);
                    log::error!(
                        "destination {}: fsync of the rotated file failed ({reason}): {n} messages may not be on disk",
                        self.name
                    );
                }
                note_opened(&self.name, &sink.path, opened, stats);
            }
            Err(e) => {
                let reason = WriteFailure::classify(&e);
                stats.reopen_errors.inc(reason.label());
                let f = self.reopen_health.failed(now, reason);
                self.reopen_due = Some(now + f.retry_in);
                if f.log {
                    log::error!(
                        "destination {}: cannot reopen {} after SIGHUP: {reason}; still writing to the old (rotated) file, retrying ({})",
                        self.name,
                        sink.path.display(),
                        reason.hint()
                    );
                }
            }
        }
    }

    /// The final fsync (one try: a retried fsync proves nothing), then what
    /// this destination could not guarantee.
    pub fn finish(mut self, stats: &DestinationStats) -> DestinationLoss {
        match &mut self.files {
            Files::One { sink, unsynced } => {
                if let Err((e, n)) = sync(sink, unsynced, &mut self.loss, true, stats) {
                    let reason = WriteFailure::classify(&e);
                    Op::Fsync.counter(stats).inc(reason.label());
                    self.loss.reason = Some(reason);
                    log::error!(
                        "destination {}: final fsync of {} failed: {reason}; {n} more messages may not be on disk ({} in all)",
                        self.name,
                        sink.path.display(),
                        self.loss.unsynced_messages
                    );
                }
            }
            Files::Split(s) => {
                s.set.close_all(true, &mut s.closed);
                self.account_closed(stats);
            }
        }
        self.loss
    }
}

/// The fsync policy. When an fsync fails, the messages written since the
/// last good one are counted as maybe lost at once (returned with the
/// error): Linux may drop the failed pages' dirty state, so a later fsync
/// can succeed without them.
fn sync<F: Fs>(
    sink: &mut FileSink<F>,
    unsynced: &mut u64,
    loss: &mut DestinationLoss,
    force: bool,
    stats: &DestinationStats,
) -> Result<(), (io::Error, u64)> {
    match sink.after_round(force) {
        Ok(true) => {
            *unsynced = 0;
            Ok(())
        }
        Ok(false) => Ok(()),
        Err(e) => {
            let n = mem::take(unsynced);
            loss.unsynced_messages += n;
            stats.unsynced_messages.fetch_add(n, Relaxed);
            Err((e, n))
        }
    }
}

fn note_opened(name: &str, path: &std::path::Path, opened: Opened, stats: &DestinationStats) {
    // Counted on every open, logged on the destination's first only.
    if opened.direct_refused && stats.direct_io_fallbacks.fetch_add(1, Relaxed) == 0 {
        log::warn!(
            "destination {name}: the file system of {} refuses O_DIRECT (EINVAL); io = \"direct\" falls back to buffered writes (logged once per destination, counted in ringest_direct_io_fallbacks_total)",
            path.display()
        );
    }
    if opened.torn_last_line {
        stats.torn_lines_repaired.fetch_add(1, Relaxed);
        log::warn!(
            "destination {name}: {} does not end with a newline (a line torn by a crash); a newline goes in before the next message",
            path.display()
        );
    }
}

/// Where each message of `out` is: (buffer, start, end), in order; the
/// buffers are `out`'s parts.
struct Spans<'a> {
    bufs: Vec<&'a [u8]>,
    at: Vec<(usize, usize, usize)>,
}

impl<'a> Spans<'a> {
    fn of(out: &'a Out<'_, '_>) -> Spans<'a> {
        let bufs = out.parts();
        let at = match out {
            Out::Encoded { ends, .. } => {
                let mut start = 0;
                ends.iter()
                    .map(|&e| (0, std::mem::replace(&mut start, e), e))
                    .collect()
            }
            Out::Batches(parsed) => parsed
                .round()
                .iter()
                .enumerate()
                .flat_map(|(bi, (_, b))| {
                    let mut start = 0;
                    b.ends.iter().map(move |&e| {
                        let e = e as usize;
                        (bi, std::mem::replace(&mut start, e), e)
                    })
                })
                .collect(),
        };
        Spans { bufs, at }
    }

    fn len(&self) -> usize {
        self.at.len()
    }

    fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    fn bytes(&self, i: usize) -> usize {
        let (_, start, end) = self.at[i];
        end - start
    }

    /// The messages `idx` (ascending) as writev parts: messages next to
    /// each other in the output are one part.
    fn parts(&self, idx: &[usize]) -> Vec<&'a [u8]> {
        let mut runs: Vec<(usize, usize, usize)> = Vec::with_capacity(idx.len());
        for &i in idx {
            let (b, start, end) = self.at[i];
            match runs.last_mut() {
                Some(last) if last.0 == b && last.2 == start => last.2 = end,
                _ => runs.push((b, start, end)),
            }
        }
        runs.into_iter()
            .map(|(b, start, end)| &self.bufs[b][start..end])
            .collect()
    }
}
