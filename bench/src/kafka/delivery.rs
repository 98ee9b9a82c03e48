//! The watermark arithmetic, and the wait for the topic to hold every
//! message sent, as a state machine fed with (time, count) samples: the
//! poller thread feeds it from the broker, the tests from memory.
//!
//! A fresh topic starts every partition at offset 0, and nothing deletes
//! from it during a run, so the messages it holds are the sum of its
//! partitions' high watermarks (an idempotent producer's retries do not
//! move them; a duplicate does).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Messages in a fresh topic: the sum of its partitions' high watermarks.
/// A negative watermark is librdkafka's "unknown" and is an error, not 0.
pub fn count(high_watermarks: &[i64]) -> Result<u64> {
    let mut n: u64 = 0;
    for (p, &h) in high_watermarks.iter().enumerate() {
        if h < 0 {
            bail!("partition {p}: high watermark unknown ({h})");
        }
        n = n.saturating_add(h as u64);
    }
    Ok(n)
}

/// What the topic holds against what loadgen sent: fewer is loss, more is
/// duplication (either fails the row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
}

pub fn tally(sent: u64, delivered: u64) -> Tally {
    Tally {
        delivered,
        lost: sent.saturating_sub(delivered),
        duplicated: delivered.saturating_sub(sent),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Without the feature `kafka` only the tests feed it.
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub enum State {
    /// Sending, or the topic is still filling.
    Waiting,
    /// The topic holds at least the target; `at` is the first sample that
    /// saw its current count (the end of the delivery window).
    Complete { at: Instant, count: u64 },
    /// Short of the target and unchanged for the stable time, or past the
    /// limit: `at` is when the count last grew.
    Stalled { at: Instant, count: u64 },
}

#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub struct Watch {
    target: Option<u64>,
    last: u64,
    last_change: Instant,
    stable: Duration,
    limit: Duration,
    target_set_at: Option<Instant>,
}

#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
impl Watch {
    /// `stable`: how long a count short of the target may stay unchanged;
    /// `limit`: how long after the target is known to wait at most.
    pub fn new(start: Instant, stable: Duration, limit: Duration) -> Watch {
        Watch {
            target: None,
            last: 0,
            last_change: start,
            stable,
            limit,
            target_set_at: None,
        }
    }

    /// The count to wait for (loadgen's sent), known once loadgen ended.
    pub fn set_target(&mut self, now: Instant, target: u64) {
        self.target = Some(target);
        self.target_set_at = Some(now);
    }

    pub fn observe(&mut self, now: Instant, count: u64) -> State {
        if count != self.last {
            self.last = count;
            self.last_change = now;
        }
        let (Some(target), Some(set_at)) = (self.target, self.target_set_at) else {
            return State::Waiting;
        };
        if count >= target {
            return State::Complete {
                at: self.last_change,
                count,
            };
        }
        let still = now.saturating_duration_since(self.last_change) >= self.stable;
        let late = now.saturating_duration_since(set_at) >= self.limit;
        if still || late {
            return State::Stalled {
                at: self.last_change,
                count,
            };
        }
        State::Waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_sums_the_partitions_and_refuses_an_unknown_one() {
        assert_eq!(count(&[10, 0, 7, 3]).unwrap(), 20);
        assert_eq!(count(&[]).unwrap(), 0);
        assert!(count(&[5, -1001, 2, 2]).is_err());
    }

    #[test]
    fn tally_calls_fewer_lost_and_more_duplicated() {
        assert_eq!(
            tally(100, 100),
            Tally {
                delivered: 100,
                lost: 0,
                duplicated: 0
            }
        );
        assert_eq!(tally(100, 97).lost, 3);
        assert_eq!(tally(100, 97).duplicated, 0);
        assert_eq!(tally(100, 104).duplicated, 4);
        assert_eq!(tally(100, 104).lost, 0);
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn complete_at_the_first_sample_that_saw_the_final_count() {
        let t0 = Instant::now();
        let mut w = Watch::new(t0, Duration::from_secs(5), Duration::from_secs(60));
        assert_eq!(w.observe(ms(t0, 10), 50), State::Waiting);
        // The topic is full before loadgen has even exited: no target yet.
        assert_eq!(w.observe(ms(t0, 20), 100), State::Waiting);
        assert_eq!(w.observe(ms(t0, 30), 100), State::Waiting);
        w.set_target(ms(t0, 40), 100);
        assert_eq!(
            w.observe(ms(t0, 50), 100),
            State::Complete {
                at: ms(t0, 20),
                count: 100
            }
        );
    }

    #[test]
    fn more_than_sent_is_complete_with_the_count_that_shows_duplicates() {
        let t0 = Instant::now();
        let mut w = Watch::new(t0, Duration::from_secs(5), Duration::from_secs(60));
        w.set_target(t0, 10);
        assert_eq!(
            w.observe(ms(t0, 5), 12),
            State::Complete {
                at: ms(t0, 5),
                count: 12
            }
        );
        assert_eq!(tally(10, 12).duplicated, 2);
    }

    #[test]
    fn a_count_short_of_the_target_stalls_after_the_stable_time() {
        let t0 = Instant::now();
        let mut w = Watch::new(t0, Duration::from_secs(5), Duration::from_secs(60));
        w.set_target(t0, 100);
        assert_eq!(w.observe(ms(t0, 100), 90), State::Waiting);
        assert_eq!(w.observe(ms(t0, 4_000), 90), State::Waiting);
        // Still growing: the stable time restarts.
        assert_eq!(w.observe(ms(t0, 4_500), 95), State::Waiting);
        assert_eq!(w.observe(ms(t0, 9_000), 95), State::Waiting);
        assert_eq!(
            w.observe(ms(t0, 9_500), 95),
            State::Stalled {
                at: ms(t0, 4_500),
                count: 95
            }
        );
    }

    #[test]
    fn a_slowly_growing_count_stops_at_the_limit() {
        let t0 = Instant::now();
        let mut w = Watch::new(t0, Duration::from_secs(5), Duration::from_secs(10));
        w.set_target(t0, 1_000);
        for k in 1..10u64 {
            assert_eq!(w.observe(ms(t0, k * 1_000), k), State::Waiting);
        }
        assert!(matches!(
            w.observe(ms(t0, 10_000), 10),
            State::Stalled { count: 10, .. }
        ));
    }
}
