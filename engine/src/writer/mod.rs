//! The writer thread: drains every shard's ring in rounds and writes each
//! round to every destination with as few syscalls as possible.

pub mod failure;
#[cfg(test)]
mod fake;
pub mod file;
pub mod json;
pub mod report;
pub mod sys;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::batch::{Batch, Ring, WriterWaker};
use crate::config::{Config, OutputFormat};
use crate::stats::Stats;
use file::FileSink;
use report::{DestinationLoss, WriterReport};
use sys::{Fs, RealFs};

/// Batches taken from the rings per round: bounds the round's latency and memory.
const ROUND_MAX_BATCHES: usize = 256;

/// After SIGTERM, a destination still failing this long past
/// `drain_timeout_ms` is given up: what it could not write is counted and
/// the process exits non-zero.
pub const GIVE_UP_AFTER_DRAIN_MS: u64 = 2_000;

/// What the control plane tells the writer: reopen files (SIGHUP), and
/// when shutdown began (SIGTERM).
#[derive(Default)]
pub struct WriterControl {
    pub reopen: AtomicBool,
    shutdown_at: OnceLock<Instant>,
}

impl WriterControl {
    /// Records the start of shutdown; later calls keep the first instant.
    pub fn begin_shutdown(&self, now: Instant) {
        let _ = self.shutdown_at.set(now);
    }

    pub fn shutdown_at(&self) -> Option<Instant> {
        self.shutdown_at.get().copied()
    }
}

pub struct Writer<F: Fs = RealFs> {
    rings: Vec<Arc<Ring>>,
    sinks: Vec<FileSink<F>>,
    /// For each destination, which sources feed it.
    feeds: Vec<Vec<bool>>,
    stats: Arc<Stats>,
    waker: Arc<WriterWaker>,
    control: Arc<WriterControl>,
    round: Vec<(usize, Batch)>,
    scratch: Vec<u8>,
    prefix: Vec<u8>,
}

impl Writer<RealFs> {
    pub fn new(
        config: &Config,
        rings: Vec<Arc<Ring>>,
        stats: Arc<Stats>,
        waker: Arc<WriterWaker>,
        control: Arc<WriterControl>,
    ) -> std::io::Result<Writer<RealFs>> {
        Writer::with_fs(RealFs, config, rings, stats, waker, control)
    }
}

impl<F: Fs + Clone> Writer<F> {
    /// A writer whose files go through `fs` (tests pass a failing disk).
    pub fn with_fs(
        fs: F,
        config: &Config,
        rings: Vec<Arc<Ring>>,
        stats: Arc<Stats>,
        waker: Arc<WriterWaker>,
        control: Arc<WriterControl>,
    ) -> std::io::Result<Writer<F>> {
        let sinks = config
            .destinations
            .iter()
            .map(|d| FileSink::open(fs.clone(), d))
            .collect::<std::io::Result<Vec<_>>>()?;
        let routes = config.routes();
        let feeds = (0..sinks.len())
            .map(|d| routes.iter().map(|r| r.contains(&d)).collect())
            .collect();
        Ok(Writer {
            rings,
            sinks,
            feeds,
            stats,
            waker,
            control,
            round: Vec::with_capacity(ROUND_MAX_BATCHES),
            scratch: Vec::with_capacity(1 << 20),
            prefix: Vec::with_capacity(512),
        })
    }

    /// Runs until every ring is closed and empty, then syncs every file.
    pub fn run(mut self) -> WriterReport {
        while self.step() {}
        self.finish()
    }

    /// One turn: reopen if asked, then write one round (or idle). Returns
    /// false once every ring is closed and empty.
    pub fn step(&mut self) -> bool {
        if self.control.reopen.swap(false, Ordering::AcqRel) {
            for s in &mut self.sinks {
                match s.reopen() {
                    Ok(()) => log::info!("reopened {}", s.path.display()),
                    Err(e) => log::error!("cannot reopen {}: {e}", s.path.display()),
                }
            }
        }
        let mut round = std::mem::take(&mut self.round);
        for (ri, ring) in self.rings.iter().enumerate() {
            while round.len() < ROUND_MAX_BATCHES {
                match ring.full.pop() {
                    Some(b) => round.push((ri, b)),
                    None => break,
                }
            }
        }
        if round.is_empty() {
            self.round = round;
            self.idle_tick();
            // Closed flags are set after the last push, so check them before
            // looking at the queues one final time.
            let all_closed = self.rings.iter().all(|r| r.closed.load(Ordering::Acquire));
            if all_closed && self.rings.iter().all(|r| r.full.is_empty()) {
                return false;
            }
            self.waker.sleeping.store(true, Ordering::Release);
            if self.rings.iter().all(|r| r.full.is_empty()) {
                std::thread::park_timeout(Duration::from_millis(20));
            }
            self.waker.sleeping.store(false, Ordering::Release);
            return true;
        }
        self.write_round(&round);
        for (ri, mut b) in round.drain(..) {
            b.clear();
            let _ = self.rings[ri].empty.push(b);
        }
        self.round = round;
        true
    }

    /// Syncs every file and says what may be missing.
    pub fn finish(mut self) -> WriterReport {
        for s in &mut self.sinks {
            if let Err(e) = s.after_round(true) {
                log::error!("final fsync of {} failed: {e}", s.path.display());
            }
        }
        WriterReport {
            destinations: self
                .sinks
                .iter()
                .map(|s| DestinationLoss {
                    name: s.name.clone(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn idle_tick(&mut self) {
        for (d, s) in self.sinks.iter_mut().enumerate() {
            if let Err(e) = s.after_round(false) {
                if let Some(ds) = self.stats.destinations.get(d) {
                    ds.fsync_errors.inc("unclassified");
                }
                log::error!("fsync of {} failed: {e}", s.path.display());
            }
        }
    }

    fn write_round(&mut self, round: &[(usize, Batch)]) {
        for d in 0..self.sinks.len() {
            self.write_destination(d, round);
        }
        let done = Instant::now();
        let mut per_source = vec![0u64; self.stats.sources.len()];
        let mut bytes = 0u64;
        if let Ok(mut h) = self.stats.latency_us.lock() {
            for (_, b) in round {
                if let Some(t) = b.first_decoded {
                    let us = done.saturating_duration_since(t).as_micros().max(1) as u64;
                    let _ = h.record_n(us, b.len() as u64);
                }
            }
        }
        for (_, b) in round {
            bytes += b.bytes.len() as u64;
            for (i, run) in b.runs.iter().enumerate() {
                let end = b.runs.get(i + 1).map_or(b.len(), |r| r.first as usize);
                if let Some(c) = per_source.get_mut(run.conn.source as usize) {
                    *c += (end - run.first as usize) as u64;
                }
            }
        }
        for (s, n) in per_source.into_iter().enumerate() {
            self.stats.sources[s]
                .messages_written
                .fetch_add(n, Ordering::Relaxed);
        }
        self.stats
            .batches_written
            .fetch_add(round.len() as u64, Ordering::Relaxed);
        self.stats.bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Writes one round to destination `d`, retrying until it succeeds: a
    /// failing disk stalls the pipeline (back-pressure) rather than losing data.
    fn write_destination(&mut self, d: usize, round: &[(usize, Batch)]) {
        let feeds = &self.feeds[d];
        let all_fed = feeds.iter().all(|f| *f);
        let sink = &mut self.sinks[d];
        let mut attempt = 0u32;
        loop {
            let result = match sink.format {
                OutputFormat::Raw if all_fed => {
                    let parts: Vec<&[u8]> = round.iter().map(|(_, b)| b.bytes.as_slice()).collect();
                    sink.write_all(&parts)
                }
                format => {
                    self.scratch.clear();
                    for (_, b) in round {
                        encode_fed(
                            &mut self.scratch,
                            &mut self.prefix,
                            b,
                            feeds,
                            format,
                            &self.stats,
                        );
                    }
                    sink.write_all(&[&self.scratch])
                }
            };
            let result = result.and_then(|()| sink.after_round(false));
            match result {
                Ok(()) => return,
                Err(e) => {
                    if let Some(ds) = self.stats.destinations.get(d) {
                        ds.write_errors.inc("unclassified");
                    }
                    if attempt == 0 {
                        log::error!(
                            "write to {} failed: {e}; retrying until it succeeds",
                            sink.path.display()
                        );
                    }
                    attempt = attempt.saturating_add(1);
                    std::thread::sleep(Duration::from_millis(100));
                    // A partial write may have landed before the error; retrying the
                    // whole round could duplicate lines, but never loses any.
                }
            }
        }
    }
}

/// Encodes the messages of `batch` whose source feeds this destination.
fn encode_fed(
    out: &mut Vec<u8>,
    prefix: &mut Vec<u8>,
    batch: &Batch,
    feeds: &[bool],
    format: OutputFormat,
    stats: &Stats,
) {
    for (i, run) in batch.runs.iter().enumerate() {
        let source = run.conn.source as usize;
        if !feeds.get(source).copied().unwrap_or(false) {
            continue;
        }
        let end = batch
            .runs
            .get(i + 1)
            .map_or(batch.len(), |r| r.first as usize);
        match format {
            OutputFormat::Raw => {
                let start = if run.first == 0 {
                    0
                } else {
                    batch.ends[run.first as usize - 1] as usize
                };
                let stop = if end == 0 {
                    0
                } else {
                    batch.ends[end - 1] as usize
                };
                out.extend_from_slice(&batch.bytes[start..stop]);
            }
            OutputFormat::Json => {
                let name = stats.source_names.get(source).map_or("", String::as_str);
                json::run_prefix(prefix, run, name);
                for m in run.first as usize..end {
                    out.extend_from_slice(prefix);
                    json::escape_bytes(out, batch.message(m));
                    out.extend_from_slice(b"\"}\n");
                }
            }
        }
    }
}
