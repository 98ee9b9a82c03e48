//! Rings sized by time as well as by bytes: how long the queue in front of
//! a writer takes to drain, predicted from the bytes queued and a cost
//! model fitted on the writer's recent rounds.
//!
//! `ring_capacity_batches` bounds memory; it says nothing about time. 64
//! batches of 256 KiB in front of a writer that drains 120 MB/s are 140 ms
//! of queue, and every batch behind them waits that long. So a shard also
//! asks [`WriterLoad::has_room`] before it hands a batch over: once the
//! writer's queue would take longer than `max_queue_delay_ms` to drain, the
//! batch waits in the shard's batcher, which says "full", and the shard
//! pauses the connections that would feed it (the existing deferral; never
//! a sleep). The delay is bounded when the writer keeps up on average; when
//! it does not, back-pressure reaches the senders sooner instead of the
//! queue growing.
//!
//! The model: a round of `x` bytes takes `fixed + x / rate` ([`DrainModel`],
//! a least-squares fit over about the last [`MODEL_ROUNDS`] rounds). The
//! fixed part matters: with `fsync = "batch"` every round pays an fsync of
//! milliseconds, and a plain average rate (bytes over time) measured on
//! small rounds would be mostly fsync, allow only small rounds, and so stay
//! low: throughput would collapse to a batch per fsync.
//!
//! Three rules keep the bound from starving the writer:
//! - an empty queue always takes a batch, so the writer never idles while a
//!   shard holds one back;
//! - the bytes' budget is the bound less the fixed cost, but never less
//!   than the fixed cost itself: when an fsync takes about the whole bound,
//!   rounds may still grow until they take twice the fsync, so at least
//!   half of the writer's time goes to writing;
//! - before the writer has measured anything the rate is unknown (0), and
//!   only the byte bound applies.
//!
//! Rounds retried through a disk outage count too: after one, the model
//! reads slow until its rounds have faded out, and the queue stays short
//! meanwhile. That errs towards latency, never loss.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The model weighs rounds by `1 - 1/MODEL_ROUNDS` per newer round: about
/// this many recent rounds count.
pub const MODEL_ROUNDS: u32 = 32;

/// Shared by one writer and the shards it drains.
#[derive(Default, Debug)]
pub struct WriterLoad {
    /// Bytes handed to this writer and not yet written: in its rings or in
    /// the round it is writing.
    pub queued_bytes: AtomicU64,
    /// The model's marginal rate, bytes per second; 0 until the first round
    /// is written.
    pub drain_bytes_per_s: AtomicU64,
    /// The model's fixed cost of a round (an fsync, the syscalls), µs.
    pub round_fixed_us: AtomicU64,
    /// Bytes of batches written so far (for /metrics).
    pub drained_bytes_total: AtomicU64,
    /// How long this writer's rounds take, µs (for /metrics): with the
    /// destinations' latency, it tells time spent writing from time spent
    /// waiting to be written.
    pub round_latency: crate::stats::Latency,
    /// Per message, µs: from its batch's hand-over to this writer's ring to
    /// the round that takes it beginning (time queued in front of the
    /// writer).
    pub queue_wait: crate::stats::Latency,
    /// Per message, µs: from the receive of its batch's oldest frame to the
    /// batch's hand-over (time held in the shard: filling the batch, a
    /// batch held back while the writer's queue was long). An upper bound
    /// for the batch's later frames.
    pub shard_hold: crate::stats::Latency,
}

impl WriterLoad {
    /// A shard handed over a batch of `bytes`.
    pub fn queued(&self, bytes: usize) {
        self.queued_bytes.fetch_add(bytes as u64, Ordering::AcqRel);
    }

    /// The writer wrote a batch of `bytes`.
    pub fn drained(&self, bytes: usize) {
        self.drained_bytes_total
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.unqueued(bytes);
    }

    /// A batch of `bytes` left the queue (written, or not taken after all).
    /// Saturating: a test may push into a ring without a batcher.
    pub fn unqueued(&self, bytes: usize) {
        let _ = self
            .queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(bytes as u64))
            });
    }

    /// The writer's newest model, for the shards.
    pub fn publish(&self, fit: Fit) {
        self.round_fixed_us.store(fit.fixed_us, Ordering::Release);
        self.drain_bytes_per_s
            .store(fit.bytes_per_s, Ordering::Release);
    }

    /// Whether one more batch may join the queue without the queue in
    /// front of it exceeding `max_queue_delay_ms`.
    pub fn has_room(&self, max_queue_delay_ms: u64) -> bool {
        within_delay(
            self.queued_bytes.load(Ordering::Acquire),
            Fit {
                bytes_per_s: self.drain_bytes_per_s.load(Ordering::Acquire),
                fixed_us: self.round_fixed_us.load(Ordering::Acquire),
            },
            max_queue_delay_ms,
        )
    }
}

/// Whether a queue of `queued_bytes` drains within `max_queue_delay_ms`
/// by `fit`, its fixed cost counted once (the writer takes what is queued
/// in one round). An empty queue, an unknown rate (0) or no limit (0 ms)
/// always take a batch.
pub fn within_delay(queued_bytes: u64, fit: Fit, max_queue_delay_ms: u64) -> bool {
    if max_queue_delay_ms == 0 || queued_bytes == 0 || fit.bytes_per_s == 0 {
        return true;
    }
    let limit_us = max_queue_delay_ms.saturating_mul(1000);
    let budget_us = limit_us.saturating_sub(fit.fixed_us).max(fit.fixed_us);
    // queued / rate <= budget, in integers (u128: no overflow).
    u128::from(queued_bytes) * 1_000_000 <= u128::from(fit.bytes_per_s) * u128::from(budget_us)
}

/// A round of `x` bytes takes `fixed_us + x / bytes_per_s`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub bytes_per_s: u64,
    pub fixed_us: u64,
}

/// Least squares of round time against round bytes, over recent rounds
/// (older ones fade by `1 - 1/MODEL_ROUNDS` per round). When the rounds
/// are all about the same size, or the fit says bigger rounds are faster
/// (noise), it falls back to the average rate with no fixed cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct DrainModel {
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

impl DrainModel {
    /// Adds a round of `bytes` that took `took`; returns the new fit.
    pub fn add(&mut self, bytes: u64, took: Duration) -> Fit {
        let keep = 1.0 - 1.0 / f64::from(MODEL_ROUNDS);
        let (x, y) = (bytes as f64, took.as_secs_f64().max(1e-9));
        self.n = self.n * keep + 1.0;
        self.sx = self.sx * keep + x;
        self.sy = self.sy * keep + y;
        self.sxx = self.sxx * keep + x * x;
        self.sxy = self.sxy * keep + x * y;
        self.fit()
    }

    pub fn fit(&self) -> Fit {
        if self.n <= 0.0 || self.sy <= 0.0 || self.sx <= 0.0 {
            return Fit::default();
        }
        let (mx, my) = (self.sx / self.n, self.sy / self.n);
        let var = self.sxx / self.n - mx * mx;
        let cov = self.sxy / self.n - mx * my;
        // Sizes spread by at least 10% of their mean: enough to tell the
        // fixed cost from the per-byte one.
        if var > (0.1 * mx).powi(2) && cov > 0.0 {
            let secs_per_byte = cov / var;
            let fixed = (my - secs_per_byte * mx).clamp(0.0, my);
            return Fit {
                bytes_per_s: (1.0 / secs_per_byte).min(u64::MAX as f64) as u64,
                fixed_us: (fixed * 1e6) as u64,
            };
        }
        Fit {
            bytes_per_s: (mx / my).min(u64::MAX as f64) as u64,
            fixed_us: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn rate(bytes_per_s: u64) -> Fit {
        Fit {
            bytes_per_s,
            fixed_us: 0,
        }
    }

    #[test]
    fn a_queue_longer_than_the_limit_at_the_measured_rate_has_no_room() {
        // 100 MB/s: 2 ms is 200 kB.
        assert!(within_delay(200_000, rate(100 * MB), 2));
        assert!(!within_delay(200_001, rate(100 * MB), 2));
        // Twice the rate, twice the bytes.
        assert!(within_delay(400_000, rate(200 * MB), 2));
    }

    #[test]
    fn the_fixed_cost_of_a_round_comes_out_of_the_budget() {
        // 100 MB/s and 0.5 ms per round: 1.5 ms of bytes, 150 kB.
        let fit = Fit {
            bytes_per_s: 100 * MB,
            fixed_us: 500,
        };
        assert!(within_delay(150_000, fit, 2));
        assert!(!within_delay(150_001, fit, 2));
    }

    /// An fsync of 5 ms per round against a 2 ms bound: the bound cannot
    /// hold, and rounds may grow to twice the fsync (5 ms of bytes) rather
    /// than shrink to one batch per fsync.
    #[test]
    fn a_fixed_cost_above_the_bound_still_lets_rounds_take_as_long_as_it() {
        let fit = Fit {
            bytes_per_s: 100 * MB,
            fixed_us: 5_000,
        };
        assert!(within_delay(500_000, fit, 2));
        assert!(!within_delay(500_001, fit, 2));
    }

    #[test]
    fn an_empty_queue_always_takes_a_batch_so_the_writer_never_starves() {
        assert!(within_delay(0, rate(1), 1));
    }

    #[test]
    fn an_unknown_rate_or_no_limit_leaves_only_the_byte_bound() {
        assert!(within_delay(u64::MAX, rate(0), 2));
        assert!(within_delay(u64::MAX, rate(MB), 0));
    }

    #[test]
    fn huge_values_do_not_overflow() {
        assert!(!within_delay(u64::MAX, rate(1), 60_000));
        assert!(within_delay(u64::MAX / 1000, rate(u64::MAX), 1));
        let fit = Fit {
            bytes_per_s: u64::MAX,
            fixed_us: u64::MAX,
        };
        assert!(within_delay(u64::MAX, fit, u64::MAX));
    }

    /// Rounds of 5 ms fsync plus 1 GB/s: the fit finds both, where the
    /// average rate of 256 KiB rounds would read 49 MB/s.
    #[test]
    fn model_separates_the_fsync_from_the_per_byte_cost() {
        let mut m = DrainModel::default();
        let mut fit = Fit::default();
        for i in 0..200u64 {
            let bytes = 64 * 1024 * (1 + i % 8);
            let took = Duration::from_micros(5_000) + Duration::from_nanos(bytes);
            fit = m.add(bytes, took);
        }
        assert!((990 * MB..1010 * MB).contains(&fit.bytes_per_s), "{fit:?}");
        assert!((4_990..5_010).contains(&fit.fixed_us), "{fit:?}");
    }

    #[test]
    fn rounds_all_of_one_size_give_the_average_rate() {
        let mut m = DrainModel::default();
        assert_eq!(m.fit(), Fit::default(), "unknown until measured");
        let fit = m.add(1_000_000, Duration::from_millis(10));
        assert_eq!(fit, rate(100 * MB));
        let fit = m.add(1_000_000, Duration::from_millis(10));
        assert_eq!(fit.fixed_us, 0);
        assert!((99 * MB..=101 * MB).contains(&fit.bytes_per_s), "{fit:?}");
    }

    #[test]
    fn model_follows_a_change_within_a_few_windows() {
        let mut m = DrainModel::default();
        for i in 0..100u64 {
            m.add(100_000 * (1 + i % 2), Duration::from_millis(1 + i % 2)); // 100 MB/s
        }
        let mut fit = Fit::default();
        for i in 0..(8 * u64::from(MODEL_ROUNDS)) {
            fit = m.add(1_000_000 * (1 + i % 2), Duration::from_millis(1 + i % 2));
            // 1 GB/s
        }
        assert!(fit.bytes_per_s > 900 * MB, "{fit:?}");
    }

    #[test]
    fn load_counts_bytes_in_and_out_and_never_underflows() {
        let l = WriterLoad::default();
        l.queued(300);
        l.drained(100);
        assert_eq!(l.queued_bytes.load(Ordering::Relaxed), 200);
        l.drained(1_000);
        assert_eq!(l.queued_bytes.load(Ordering::Relaxed), 0);
        assert_eq!(l.drained_bytes_total.load(Ordering::Relaxed), 1_100);
        l.queued(50);
        l.unqueued(50);
        assert_eq!(
            l.drained_bytes_total.load(Ordering::Relaxed),
            1_100,
            "not taken is not drained"
        );
        l.queued(300_000);
        l.publish(rate(100 * MB));
        assert!(!l.has_room(2));
        assert!(l.has_room(3));
    }
}
