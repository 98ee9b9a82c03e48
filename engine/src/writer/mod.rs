//! A writer thread: drains its shards' rings in rounds and writes each
//! round to every destination of its group with as few syscalls as
//! possible. The [`pool`] runs several per destination group, shard i's
//! ring drained by the group's writer i % writers, each with destinations
//! (file descriptors) of its own.
//!
//! The writer never tears, duplicates or lies:
//! - a write that fails part-way resumes at the byte where it stopped
//!   ([`file`]); a failing destination pauses the writer (back-pressure)
//!   and is retried with backoff, logged once per outage ([`destination`]);
//! - after SIGTERM, a destination still failing `drain_timeout_ms` +
//!   [`GIVE_UP_AFTER_DRAIN_MS`] after shutdown began is given up, and what
//!   it did not write is counted;
//! - [`Writer::run`] returns a [`WriterReport`] of what was not written or
//!   may not be on disk; the runtime turns it into the exit status.

pub mod destination;
pub mod direct;
#[cfg(test)]
mod direct_tests;
pub mod encode;
#[cfg(test)]
mod failing_gauge_tests;
pub mod failure;
#[cfg(test)]
mod fake;
pub mod file;
pub mod file_destination;
pub mod file_set;
pub mod forward;
#[cfg(test)]
mod group_tests;
pub mod json;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod parse_error_log;
#[cfg(test)]
mod parse_once_tests;
pub mod parsed;
pub mod placement;
pub mod pool;
pub mod report;
pub mod route;
pub mod sys;
pub mod template;
#[cfg(test)]
mod template_tests;
#[cfg(test)]
mod tests;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::batch::{Batch, Ring, WriterWaker};
use crate::config::{Config, OutputFormat};
use crate::queue_delay::DrainModel;
use crate::stats::{Latency, Stats};
use destination::{Destination, GiveUp};
use encode::{encode_fed, messages_per_source, Encoding, Origin, Out, Taken};
use forward::ForwardPlans;
use parsed::ParseScratch;
use report::{DestinationLoss, WriterReport};
use route::Router;
use sys::{Fs, RealFs};

/// Batches taken from the rings per round: bounds the round's latency and memory.
const ROUND_MAX_BATCHES: usize = 256;

/// How long the writer sleeps when every ring is empty (a shard wakes it sooner).
const IDLE_PARK_MS: u64 = 20;

/// After SIGTERM, a destination still failing this long past
/// `drain_timeout_ms` is given up: what it could not write is counted and
/// the process exits non-zero. Shards stop within `drain_timeout_ms` + 1 s;
/// this gives the disk one more second to come back.
pub const GIVE_UP_AFTER_DRAIN_MS: u64 = 2_000;

/// Once every destination has given up, the writer only counts what the
/// shards hand over. A shard that has not closed its ring this long after
/// the give-up instant is left behind, so the process can still exit.
pub const SHARD_STOP_WAIT_MS: u64 = 3_000;

/// At start-up with several writers, how long the newline that ends a torn
/// last line may keep failing before start-up fails.
pub const REPAIR_GIVE_UP_MS: u64 = 5_000;

/// What the control plane tells the writers: reopen files (SIGHUP), and
/// when shutdown began (SIGTERM). One for the whole pool.
#[derive(Default)]
pub struct WriterControl {
    /// SIGHUPs so far: each writer reopens when it sees this move.
    reopens: AtomicU64,
    shutdown_at: OnceLock<Instant>,
}

impl WriterControl {
    /// SIGHUP: every writer reopens its files at its next turn.
    pub fn request_reopen(&self) {
        self.reopens.fetch_add(1, Ordering::AcqRel);
    }

    /// SIGHUPs so far: a forward destination reloads its TLS files when it
    /// sees this grow, even while it is busy retrying inside a round.
    pub fn sighups(&self) -> u64 {
        self.reopens.load(Ordering::Acquire)
    }

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
    /// The destinations of this writer's group, in config order.
    dests: Vec<Destination<F>>,
    /// Each of `dests`' config index: its stats, its bit in the router's
    /// masks and its place in the report.
    ids: Vec<usize>,
    stats: Arc<Stats>,
    waker: Arc<WriterWaker>,
    control: Arc<WriterControl>,
    /// The reopen requests this writer has acted on.
    reopens_seen: u64,
    drain_timeout: Duration,
    round: Vec<(usize, Batch)>,
    scratch: Vec<u8>,
    scratch_ends: Vec<usize>,
    /// Where each encoded message came from, for destinations that key by sender.
    scratch_origins: Vec<Origin>,
    prefix: Vec<u8>,
    /// Each source's parse mode: how its messages are parsed, once per
    /// round, for routing, json and path templates ([`parsed`]).
    parse: Vec<crate::parse::ParseMode>,
    /// The parsed view's allocations, kept from round to round.
    parse_scratch: ParseScratch,
    /// Each destination's `include_raw`.
    include_raw: Vec<bool>,
    /// Per destination of `dests`: it takes every message its rings can
    /// carry ([`takes_every_source`]), so an unrouted raw round goes out
    /// as the batches are, without copying.
    takes_every_source: Vec<bool>,
    /// Filters, final and fallback, when the config has any.
    router: Option<Router>,
    /// With a router: per batch of the round, each message's destinations.
    masks: Vec<Vec<u64>>,
    /// How long a round takes by its bytes, published to the shards
    /// through the rings' [`crate::queue_delay::WriterLoad`].
    model: DrainModel,
}

impl<F: Fs + Clone> Writer<F> {
    /// A writer of every destination whose files go through `fs` (tests
    /// pass a failing disk). `stats` must hold one entry per destination
    /// ([`Stats::with_destinations`]).
    pub fn with_fs(
        fs: F,
        config: &Config,
        forwards: &ForwardPlans,
        rings: Vec<Arc<Ring>>,
        stats: Arc<Stats>,
        waker: Arc<WriterWaker>,
        control: Arc<WriterControl>,
    ) -> io::Result<Writer<F>> {
        let all: Vec<usize> = (0..config.destinations.len()).collect();
        Writer::for_destinations(fs, config, forwards, &all, rings, stats, waker, control)
    }

    /// A writer of the destinations `ids` (config indexes, ascending: one
    /// destination group's), fed by `rings`, which carry only messages of
    /// sources that feed no other destination. Forward destinations open
    /// from `forwards`, built by `Plan::build` for this config load.
    #[allow(clippy::too_many_arguments)]
    pub fn for_destinations(
        fs: F,
        config: &Config,
        forwards: &ForwardPlans,
        ids: &[usize],
        rings: Vec<Arc<Ring>>,
        stats: Arc<Stats>,
        waker: Arc<WriterWaker>,
        control: Arc<WriterControl>,
    ) -> io::Result<Writer<F>> {
        if stats.destinations.len() != config.destinations.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "stats need one entry per destination (Stats::with_destinations)",
            ));
        }
        if ids.iter().any(|&d| d >= config.destinations.len()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a writer's destination is not in the config",
            ));
        }
        let routes = config.routes();
        let dests = ids
            .iter()
            .map(|&d| {
                let feeds = routes.iter().map(|r| r.contains(&d)).collect();
                let cfg = &config.destinations[d];
                let forward = forwards.get(d);
                Destination::open(fs.clone(), cfg, forward, feeds, &stats.destinations[d])
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Writer {
            rings,
            dests,
            ids: ids.to_vec(),
            stats,
            waker,
            control,
            reopens_seen: 0,
            drain_timeout: Duration::from_millis(config.drain_timeout_ms),
            round: Vec::with_capacity(ROUND_MAX_BATCHES),
            scratch: Vec::with_capacity(1 << 20),
            scratch_ends: Vec::with_capacity(1 << 14),
            scratch_origins: Vec::new(),
            prefix: Vec::with_capacity(512),
            parse: config.sources.iter().map(|s| s.parse).collect(),
            parse_scratch: ParseScratch::new(parse_error_log::ParseErrorLog::new(&config.sources)),
            include_raw: config.destinations.iter().map(|d| d.include_raw).collect(),
            takes_every_source: ids
                .iter()
                .map(|&d| takes_every_source(&routes, ids, d))
                .collect(),
            router: Router::new(config),
            masks: Vec::new(),
            model: DrainModel::default(),
        })
    }

    /// Runs until every ring is closed and empty, then syncs every file.
    pub fn run(mut self) -> WriterReport {
        while self.step() {}
        self.finish()
    }

    /// One turn: reopen if asked, then write one round (or idle). Returns
    /// false once every ring is closed and empty (or, after giving up on
    /// every destination, a shard did not stop in time).
    pub fn step(&mut self) -> bool {
        let now = Instant::now();
        let reopens = self.control.reopens.load(Ordering::Acquire);
        if reopens != self.reopens_seen {
            self.reopens_seen = reopens;
            for d in &mut self.dests {
                d.request_reopen(now);
            }
        }
        for (d, &id) in self.dests.iter_mut().zip(&self.ids) {
            d.reopen_if_due(now, &self.stats.destinations[id]);
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
            if self.shards_left_behind(now) {
                return false;
            }
            // SeqCst, with the shard's SeqCst swap in `wake`: the store
            // must be visible before this thread reads the rings below. A
            // Release store may wait in the store buffer while the loads go
            // first (x86 reorders exactly this), so a shard could push,
            // find `sleeping` still false and not wake us, and we would
            // sleep IDLE_PARK_MS with a batch waiting: it was the largest
            // part of the write latency's tail at moderate load.
            self.waker.sleeping.store(true, Ordering::SeqCst);
            if self.rings.iter().all(|r| r.full.is_empty()) {
                std::thread::park_timeout(Duration::from_millis(IDLE_PARK_MS));
            }
            self.waker.sleeping.store(false, Ordering::Release);
            return true;
        }
        let started = Instant::now();
        self.note_waits(&round, started);
        self.write_round(&round);
        let bytes: usize = round.iter().map(|(_, b)| b.bytes.len()).sum();
        let took = started.elapsed();
        let fit = self.model.add(bytes as u64, took);
        for ring in &self.rings {
            ring.load.publish(fit);
        }
        if let Some(mut h) = self.rings.first().and_then(|r| r.load.round_latency.lock()) {
            h.saturating_record(took.as_micros() as u64);
        }
        for (ri, mut b) in round.drain(..) {
            self.rings[ri].load.drained(b.bytes.len());
            b.clear();
            // A full `empty` queue drops the batch: the shard allocated
            // more while the writer held a round (it never waits for one).
            let _ = self.rings[ri].empty.push(b);
        }
        self.round = round;
        true
    }

    /// Records, per message, how long each batch of `round` was held in
    /// its shard and queued in front of this writer (`/metrics`: they tell
    /// where a slow message waited, with the round's own duration).
    fn note_waits(&self, round: &[(usize, Batch)], started: Instant) {
        let Some(load) = self.rings.first().map(|r| &r.load) else {
            return;
        };
        let (Some(mut wait), Some(mut hold)) = (load.queue_wait.lock(), load.shard_hold.lock())
        else {
            return;
        };
        for (_, b) in round {
            let (Some(handed), Some(first)) = (b.handed_at, b.runs.first()) else {
                continue;
            };
            let n = b.len() as u64;
            let queued_us = started.saturating_duration_since(handed).as_micros() as u64;
            let held_us = handed.saturating_duration_since(first.received).as_micros() as u64;
            let _ = wait.record_n(queued_us.max(1), n);
            let _ = hold.record_n(held_us.max(1), n);
        }
    }

    /// Writes now the newline that ends a torn last line (a crash), so the
    /// writers opened after this one find their files ending in `\n` and
    /// add none of their own. Costs no syscall for a file that is not torn.
    /// Fails when that one-byte write keeps failing for
    /// [`REPAIR_GIVE_UP_MS`].
    pub fn repair_torn_lines(&mut self) -> Result<(), String> {
        let control = WriterControl::default();
        control.begin_shutdown(Instant::now());
        let give_up = GiveUp {
            control: &control,
            after_shutdown: Duration::from_millis(REPAIR_GIVE_UP_MS),
        };
        for (d, &id) in self.dests.iter_mut().zip(&self.ids) {
            d.deliver(&Out::NOTHING, false, &self.stats.destinations[id], give_up);
            if d.gave_up() {
                let name = self
                    .stats
                    .destination_names
                    .get(id)
                    .map_or("?", String::as_str);
                return Err(format!(
                    "destination {name}: cannot end the torn last line of its file: \
                     writing kept failing for {REPAIR_GIVE_UP_MS} ms"
                ));
            }
        }
        Ok(())
    }

    /// Syncs every file and says what may be missing: one entry per
    /// configured destination, in config order (those of other groups
    /// clean), so the pool merges reports by position.
    pub fn finish(self) -> WriterReport {
        let after_shutdown = self.give_up_after_shutdown();
        let give_up = GiveUp {
            control: &self.control,
            after_shutdown,
        };
        let stats = &self.stats;
        let mut destinations: Vec<DestinationLoss> = stats
            .destination_names
            .iter()
            .map(|name| DestinationLoss {
                name: name.clone(),
                ..Default::default()
            })
            .collect();
        for (d, id) in self.dests.into_iter().zip(self.ids) {
            let loss = d.finish(&stats.destinations[id], give_up);
            if let Some(slot) = destinations.get_mut(id) {
                *slot = loss;
            }
        }
        WriterReport { destinations }
    }

    /// How long after shutdown began a failing destination is given up.
    fn give_up_after_shutdown(&self) -> Duration {
        self.drain_timeout + Duration::from_millis(GIVE_UP_AFTER_DRAIN_MS)
    }

    /// True when every destination has given up and a shard still has not
    /// closed its ring [`SHARD_STOP_WAIT_MS`] later.
    fn shards_left_behind(&self, now: Instant) -> bool {
        let Some(t) = self.control.shutdown_at() else {
            return false;
        };
        let t = t + self.give_up_after_shutdown();
        if !self.dests.iter().all(Destination::gave_up)
            || now < t + Duration::from_millis(SHARD_STOP_WAIT_MS)
        {
            return false;
        }
        let open = self
            .rings
            .iter()
            .filter(|r| !r.closed.load(Ordering::Acquire))
            .count();
        // The rings were found empty just before this: what is not counted
        // is only what a stuck shard may push from now on.
        log::error!(
            "{open} shards did not stop {SHARD_STOP_WAIT_MS} ms after the writer gave up; exiting without them"
        );
        true
    }

    fn idle_tick(&mut self) {
        let give_up = GiveUp {
            control: &self.control,
            after_shutdown: self.give_up_after_shutdown(),
        };
        for (d, &id) in self.dests.iter_mut().zip(&self.ids) {
            d.deliver(&Out::NOTHING, false, &self.stats.destinations[id], give_up);
        }
    }

    fn write_round(&mut self, round: &[(usize, Batch)]) {
        let give_up = GiveUp {
            control: &self.control,
            after_shutdown: self.give_up_after_shutdown(),
        };
        // Per destination of this writer (its index in `dests`).
        let mut complete = vec![false; self.dests.len()];
        // Per destination: how many of its messages, from the first, are in the file.
        let mut whole = vec![0u64; self.dests.len()];
        // Routing, json, path templates and kafka keys read each message
        // parsed once; a failed parse is counted then, once per message.
        let parsed = self
            .parse_scratch
            .round(round, &self.parse, &self.stats.sources);
        if let Some(router) = &self.router {
            // Each message's destinations, decided once for the round.
            self.masks.resize_with(round.len(), Vec::new);
            for (b, masks) in parsed.batches().zip(self.masks.iter_mut()) {
                masks.clear();
                router.route_batch(b, masks);
            }
        }
        for (k, (dest, &d)) in self.dests.iter_mut().zip(&self.ids).enumerate() {
            let format = dest.format();
            let enc = Encoding {
                format,
                parse: &self.parse,
                include_raw: self.include_raw.get(d).copied().unwrap_or(false),
            };
            let routed = self.router.is_some();
            if dest.is_split() {
                let masks = routed.then_some((self.masks.as_slice(), d));
                dest.place(&parsed, masks, &self.stats.source_names);
            }
            let whole_round = self.takes_every_source[k] && !routed && !dest.is_split();
            let out = if format == OutputFormat::Raw && whole_round {
                Out::Batches(&parsed)
            } else {
                // Encoded once per round: a retry writes the same bytes.
                self.scratch.clear();
                self.scratch_ends.clear();
                self.scratch_origins.clear();
                let wants_origins = dest.wants_origins();
                for b in parsed.batches() {
                    let taken = routed.then(|| Taken {
                        masks: self.masks.get(b.index()).map_or(&[][..], Vec::as_slice),
                        dest: d,
                    });
                    encode_fed(
                        &mut self.scratch,
                        &mut self.scratch_ends,
                        &mut self.prefix,
                        b,
                        dest.feeds(),
                        taken,
                        enc,
                        &self.stats,
                        wants_origins.then_some(&mut self.scratch_origins),
                    );
                }
                Out::Encoded {
                    bytes: &self.scratch,
                    ends: &self.scratch_ends,
                    round: Some(&parsed),
                    origins: &self.scratch_origins,
                }
            };
            let messages = out.messages();
            whole[k] = dest.deliver(&out, false, &self.stats.destinations[d], give_up);
            complete[k] = whole[k] == messages;
            if !complete[k] {
                // Given up at shutdown: not written, so no latency.
                continue;
            }
            let masks = routed.then_some(self.masks.as_slice());
            let feeds = dest.feeds();
            record_latency(
                &self.stats.destinations[d].latency,
                round,
                Instant::now(),
                |bi, b, ri| taken_in_run(b, ri, feeds, masks.and_then(|m| m.get(bi)), d),
            );
        }
        self.parse_scratch.recycle(parsed);
        self.count_round(round, &complete, &whole);
    }

    /// A message counts as written once it is in the file of every
    /// destination its source feeds.
    fn count_round(&self, round: &[(usize, Batch)], complete: &[bool], whole: &[u64]) {
        let sources = self.stats.sources.len();
        let per_source = if complete.iter().all(|c| *c) {
            record_latency(&self.stats.latency, round, Instant::now(), |_, b, ri| {
                b.run_len(ri) as u64
            });
            let bytes: u64 = round.iter().map(|(_, b)| b.bytes.len() as u64).sum();
            self.stats.bytes_written.fetch_add(bytes, Ordering::Relaxed);
            self.stats
                .batches_written
                .fetch_add(round.len() as u64, Ordering::Relaxed);
            messages_per_source(round, sources)
        } else {
            self.written_per_source(round, whole)
        };
        for (s, n) in per_source.into_iter().enumerate() {
            self.stats.sources[s]
                .messages_written
                .fetch_add(n, Ordering::Relaxed);
        }
    }

    /// After a give-up, message by message: each destination took its
    /// messages in round order, the first `whole[k]` of them wholly (`k`
    /// its index in `dests`).
    fn written_per_source(&self, round: &[(usize, Batch)], whole: &[u64]) -> Vec<u64> {
        let mut per_source = vec![0u64; self.stats.sources.len()];
        let mut rank = vec![0u64; self.dests.len()];
        for (bi, (_, b)) in round.iter().enumerate() {
            for (i, run) in b.runs.iter().enumerate() {
                let s = run.conn.source as usize;
                let end = b.runs.get(i + 1).map_or(b.len(), |r| r.first as usize);
                for m in run.first as usize..end {
                    let mut everywhere = true;
                    // Routed: the destinations that took it; else all it feeds.
                    let mask = self
                        .router
                        .as_ref()
                        .and_then(|_| self.masks.get(bi)?.get(m).copied());
                    for (k, (dest, &d)) in self.dests.iter().zip(&self.ids).enumerate() {
                        let took = match mask {
                            Some(mask) => mask & (1 << d) != 0,
                            None => dest.feeds().get(s).copied().unwrap_or(false),
                        };
                        if took {
                            everywhere &= rank[k] < whole[k];
                            rank[k] += 1;
                        }
                    }
                    if let (true, Some(c)) = (everywhere, per_source.get_mut(s)) {
                        *c += 1;
                    }
                }
            }
        }
        per_source
    }
}

/// Whether destination `d` of the group `ids` takes every message of that
/// group's rings: every source that feeds one of the group's destinations
/// feeds `d` too. Sources of other groups are not asked: their messages
/// never reach these rings. `routes`: each source's destinations.
fn takes_every_source(routes: &[Vec<usize>], ids: &[usize], d: usize) -> bool {
    routes
        .iter()
        .filter(|r| r.iter().any(|x| ids.contains(x)))
        .all(|r| r.contains(&d))
}

/// Records, for each run of the round, `taken(batch index, batch, run
/// index)` of its messages as having waited from the run's receive
/// completion until `done`. One lock per round.
fn record_latency(
    latency: &Latency,
    round: &[(usize, Batch)],
    done: Instant,
    taken: impl Fn(usize, &Batch, usize) -> u64,
) {
    let Some(mut h) = latency.lock() else { return };
    for (bi, (_, b)) in round.iter().enumerate() {
        for (ri, run) in b.runs.iter().enumerate() {
            let n = taken(bi, b, ri);
            if n > 0 {
                let us = done.saturating_duration_since(run.received).as_micros();
                let _ = h.record_n(u64::try_from(us).unwrap_or(u64::MAX).max(1), n);
            }
        }
    }
}

/// How many messages of run `ri` destination `d` took: with a router, the
/// messages whose mask names it; without, all of them if the run's source
/// feeds it.
fn taken_in_run(b: &Batch, ri: usize, feeds: &[bool], masks: Option<&Vec<u64>>, d: usize) -> u64 {
    let Some(run) = b.runs.get(ri) else { return 0 };
    let first = run.first as usize;
    let len = b.run_len(ri);
    match masks {
        Some(m) => m
            .iter()
            .skip(first)
            .take(len)
            .filter(|mask| *mask & (1 << d) != 0)
            .count() as u64,
        None if feeds
            .get(run.conn.source as usize)
            .copied()
            .unwrap_or(false) =>
        {
            len as u64
        }
        None => 0,
    }
}
