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

use std::io;
use std::mem;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::destination::GiveUp;
use super::encode::Out;
use super::failure::{Backoff, Health, WriteFailure};
use super::file::{FileSink, Opened};
use super::report::DestinationLoss;
use super::sys::Fs;
use crate::config::DestinationConfig;
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
    Write,
    Fsync,
}

impl Op {
    fn counter(self, stats: &DestinationStats) -> &Labelled {
        match self {
            Op::Write => &stats.write_errors,
            Op::Fsync => &stats.fsync_errors,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::Fsync => "fsync",
        }
    }
}

pub struct FileDestination<F: Fs> {
    pub sink: FileSink<F>,
    /// For each source, whether it feeds this destination.
    pub feeds: Vec<bool>,
    health: Health,
    reopen_health: Health,
    /// When to try the pending reopen; `None` when there is none.
    reopen_due: Option<Instant>,
    /// Messages written since the last successful fsync.
    unsynced: u64,
    gave_up: bool,
    loss: DestinationLoss,
}

impl<F: Fs> FileDestination<F> {
    pub fn open(
        fs: F,
        cfg: &DestinationConfig,
        feeds: Vec<bool>,
        stats: &DestinationStats,
    ) -> io::Result<FileDestination<F>> {
        let (sink, opened) = FileSink::open(fs, cfg)?;
        let d = FileDestination {
            sink,
            feeds,
            health: Health::new(RETRY_BACKOFF),
            reopen_health: Health::new(REOPEN_BACKOFF),
            reopen_due: None,
            unsynced: 0,
            gave_up: false,
            loss: DestinationLoss {
                name: cfg.name.clone(),
                ..Default::default()
            },
        };
        d.note_opened(opened, stats);
        Ok(d)
    }

    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// Writes `out` and applies the fsync policy (`force`: fsync whatever
    /// the policy), retrying until both succeed. Returns how many of `out`'s
    /// messages, from the first, are wholly in the file: all of them, unless
    /// this destination gave up (a failure after `give_up`'s instant), in
    /// which case what is missing is counted in the loss.
    pub fn deliver(
        &mut self,
        out: &Out<'_>,
        force: bool,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> u64 {
        let messages = out.messages();
        if self.gave_up {
            self.loss.not_written(messages, out.len_bytes());
            return 0;
        }
        let parts = out.parts();
        // Everything before `done` is in the file; a retry resumes there.
        let mut done = 0;
        let mut written = false;
        loop {
            let result = match self.sink.write_from(&parts, &mut done) {
                Ok(()) => {
                    if !written {
                        written = true;
                        self.unsynced += messages;
                    }
                    self.sync(force, stats).map_err(|(e, n)| (Op::Fsync, e, n))
                }
                Err(e) => Err((Op::Write, e, 0)),
            };
            let (op, e, unsynced) = match result {
                Ok(()) => {
                    self.recovered(stats);
                    return messages;
                }
                Err(failure) => failure,
            };
            let now = Instant::now();
            let retry_in = self.failed(now, op, &e, unsynced, stats);
            let give_up_at = give_up.at();
            if give_up_at.is_some_and(|t| now >= t) {
                let whole = if written {
                    // In the file; only the fsync failed (counted as unsynced).
                    messages
                } else {
                    let missing = out.messages_from(done);
                    // The messages wholly before `done` are in the file, unsynced.
                    self.unsynced += messages - missing;
                    self.loss.not_written_messages += missing;
                    self.loss.not_written_bytes += (out.len_bytes() - done) as u64;
                    messages - missing
                };
                self.give_up();
                return whole;
            }
            let wait = give_up_at.map_or(retry_in, |t| retry_in.min(t - now));
            std::thread::sleep(wait);
        }
    }

    /// The fsync policy. When an fsync fails, the messages written since the
    /// last good one are counted as maybe lost at once (returned with the
    /// error): Linux may drop the failed pages' dirty state, so a later
    /// fsync can succeed without them.
    fn sync(&mut self, force: bool, stats: &DestinationStats) -> Result<(), (io::Error, u64)> {
        match self.sink.after_round(force) {
            Ok(true) => {
                self.unsynced = 0;
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => {
                let n = mem::take(&mut self.unsynced);
                self.loss.unsynced_messages += n;
                stats.unsynced_messages.fetch_add(n, Relaxed);
                Err((e, n))
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
        stats: &DestinationStats,
    ) -> Duration {
        let reason = WriteFailure::classify(e);
        op.counter(stats).inc(reason.label());
        stats.failing.store(1, Relaxed);
        self.loss.reason = Some(reason);
        let f = self.health.failed(now, reason);
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
                self.sink.name,
                op.name(),
                self.sink.path.display(),
                reason.hint()
            );
        }
        f.retry_in
    }

    fn recovered(&mut self, stats: &DestinationStats) {
        if let Some(o) = self.health.succeeded() {
            stats.failing.store(0, Relaxed);
            log::warn!(
                "destination {}: writing to {} resumed after {:.1} s and {} failed attempts (last: {})",
                self.sink.name,
                self.sink.path.display(),
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
            self.sink.name,
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
    /// SIGHUP.
    pub fn reopen_if_due(&mut self, now: Instant, stats: &DestinationStats) {
        if self.reopen_due.is_none_or(|t| now < t) {
            return;
        }
        match self.sink.reopen() {
            Ok((opened, old_sync)) => {
                self.reopen_due = None;
                match self.reopen_health.succeeded() {
                    Some(o) => log::warn!(
                        "destination {}: reopened {} after {} failed attempts",
                        self.sink.name,
                        self.sink.path.display(),
                        o.failures
                    ),
                    None => log::info!(
                        "destination {}: reopened {}",
                        self.sink.name,
                        self.sink.path.display()
                    ),
                }
                let n = mem::take(&mut self.unsynced);
                if let Err(e) = old_sync {
                    let reason = WriteFailure::classify(&e);
                    stats.fsync_errors.inc(reason.label());
                    self.loss.unsynced_messages += n;
                    self.loss.reason = Some(reason);
                    stats.unsynced_messages.fetch_add(n, Relaxed);
                    log::error!(
                        "destination {}: fsync of the rotated file failed ({reason}): {n} messages may not be on disk",
                        self.sink.name
                    );
                }
                self.note_opened(opened, stats);
            }
            Err(e) => {
                let reason = WriteFailure::classify(&e);
                stats.reopen_errors.inc(reason.label());
                let f = self.reopen_health.failed(now, reason);
                self.reopen_due = Some(now + f.retry_in);
                if f.log {
                    log::error!(
                        "destination {}: cannot reopen {} after SIGHUP: {reason}; still writing to the old (rotated) file, retrying ({})",
                        self.sink.name,
                        self.sink.path.display(),
                        reason.hint()
                    );
                }
            }
        }
    }

    fn note_opened(&self, opened: Opened, stats: &DestinationStats) {
        if opened.torn_last_line {
            stats.torn_lines_repaired.fetch_add(1, Relaxed);
            log::warn!(
                "destination {}: {} does not end with a newline (a line torn by a crash); a newline goes in before the next message",
                self.sink.name,
                self.sink.path.display()
            );
        }
    }

    /// The final fsync (one try: a retried fsync proves nothing), then what
    /// this destination could not guarantee.
    pub fn finish(mut self, stats: &DestinationStats) -> DestinationLoss {
        if let Err((e, n)) = self.sync(true, stats) {
            let reason = WriteFailure::classify(&e);
            Op::Fsync.counter(stats).inc(reason.label());
            self.loss.reason = Some(reason);
            log::error!(
                "destination {}: final fsync of {} failed: {reason}; {n} more messages may not be on disk ({} in all)",
                self.sink.name,
                self.sink.path.display(),
                self.loss.unsynced_messages
            );
        }
        self.loss
    }
}
