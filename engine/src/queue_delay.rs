//! Rings sized by time as well as by bytes: how long a batch would wait
//! behind the others already queued for its writer, estimated from the
//! bytes queued and the writer's measured drain rate.
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
//! Two rules keep this from starving the writer:
//! - an empty queue always takes a batch, so the writer never idles while a
//!   shard holds one back, and rounds grow with the load until the rate
//!   measured on them lets more in;
//! - before the writer has measured anything the rate is unknown (0), and
//!   only the byte bound applies.
//!
//! The rate is measured over busy time, retries included: after a disk
//! outage it reads low until about [`RATE_WINDOW_MS`] of normal writing
//! has replaced the outage in the window, and the queue stays short (one
//! batch at a time) meanwhile. That errs towards latency, never loss.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The rate is measured over roughly this much of the writer's busy time;
/// older rounds fade out by halves.
pub const RATE_WINDOW_MS: u64 = 50;

/// Shared by one writer and the shards it drains.
#[derive(Default, Debug)]
pub struct WriterLoad {
    /// Bytes handed to this writer and not yet written: in its rings or in
    /// the round it is writing.
    pub queued_bytes: AtomicU64,
    /// Bytes per second of the writer's busy time (writing, not idling);
    /// 0 until the first round is written.
    pub drain_bytes_per_s: AtomicU64,
    /// Bytes of batches written so far (for /metrics).
    pub drained_bytes_total: AtomicU64,
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

    /// Whether one more batch may join the queue without the queue in
    /// front of it exceeding `max_queue_delay_ms`.
    pub fn has_room(&self, max_queue_delay_ms: u64) -> bool {
        within_delay(
            self.queued_bytes.load(Ordering::Acquire),
            self.drain_bytes_per_s.load(Ordering::Acquire),
            max_queue_delay_ms,
        )
    }
}

/// Whether a batch queued behind `queued_bytes` starts being written within
/// `max_queue_delay_ms` at `drain_bytes_per_s`. An empty queue, an unknown
/// rate (0) or no limit (0 ms) always take it.
pub fn within_delay(queued_bytes: u64, drain_bytes_per_s: u64, max_queue_delay_ms: u64) -> bool {
    if max_queue_delay_ms == 0 || queued_bytes == 0 || drain_bytes_per_s == 0 {
        return true;
    }
    // queued / rate <= max_ms / 1000, in integers (u128: no overflow).
    u128::from(queued_bytes) * 1000
        <= u128::from(drain_bytes_per_s) * u128::from(max_queue_delay_ms)
}

/// The writer's drain rate: bytes over busy time, for roughly the last
/// [`RATE_WINDOW_MS`] of busy time. Weighted by time, not by round, so a
/// burst of tiny rounds (whose fixed cost dominates) does not outvote the
/// big rounds that matter under load.
#[derive(Debug, Default, Clone, Copy)]
pub struct DrainRate {
    bytes: u64,
    busy_ns: u64,
}

impl DrainRate {
    /// Adds one round of `bytes` written in `busy`; returns the new rate in
    /// bytes per second.
    pub fn add(&mut self, bytes: u64, busy: Duration) -> u64 {
        let ns = u64::try_from(busy.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.bytes = self.bytes.saturating_add(bytes);
        self.busy_ns = self.busy_ns.saturating_add(ns);
        let window_ns = RATE_WINDOW_MS * 1_000_000;
        while self.busy_ns > 2 * window_ns {
            self.bytes /= 2;
            self.busy_ns /= 2;
        }
        self.bytes_per_s()
    }

    pub fn bytes_per_s(&self) -> u64 {
        if self.busy_ns == 0 {
            return 0;
        }
        let r = u128::from(self.bytes) * 1_000_000_000 / u128::from(self.busy_ns);
        u64::try_from(r).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    #[test]
    fn a_queue_longer_than_the_limit_at_the_measured_rate_has_no_room() {
        // 100 MB/s: 2 ms is 200 kB.
        assert!(within_delay(200_000, 100 * MB, 2));
        assert!(!within_delay(200_001, 100 * MB, 2));
        // Twice the rate, twice the bytes.
        assert!(within_delay(400_000, 200 * MB, 2));
    }

    #[test]
    fn an_empty_queue_always_takes_a_batch_so_the_writer_never_starves() {
        assert!(within_delay(0, 1, 1));
    }

    #[test]
    fn an_unknown_rate_or_no_limit_leaves_only_the_byte_bound() {
        assert!(within_delay(u64::MAX, 0, 2));
        assert!(within_delay(u64::MAX, MB, 0));
    }

    #[test]
    fn huge_values_do_not_overflow() {
        assert!(!within_delay(u64::MAX, 1, 60_000));
        assert!(within_delay(u64::MAX / 1000, u64::MAX, 1));
    }

    #[test]
    fn drain_rate_is_bytes_over_busy_time() {
        let mut r = DrainRate::default();
        assert_eq!(r.bytes_per_s(), 0, "unknown until measured");
        assert_eq!(r.add(1_000_000, Duration::from_millis(10)), 100 * MB);
        // A tiny round adds its bytes and time, not a vote.
        let after = r.add(1_000, Duration::from_micros(100));
        assert!((99 * MB..100 * MB).contains(&after), "{after}");
    }

    #[test]
    fn drain_rate_follows_a_change_within_a_few_windows() {
        let mut r = DrainRate::default();
        for _ in 0..100 {
            r.add(100_000, Duration::from_millis(1)); // 100 MB/s
        }
        for _ in 0..(4 * RATE_WINDOW_MS) {
            r.add(1_000_000, Duration::from_millis(1)); // 1 GB/s
        }
        let rate = r.bytes_per_s();
        assert!(rate > 900 * MB, "{rate}");
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
        l.drain_bytes_per_s.store(100 * MB, Ordering::Relaxed);
        assert!(!l.has_room(2));
        assert!(l.has_room(3));
    }
}
