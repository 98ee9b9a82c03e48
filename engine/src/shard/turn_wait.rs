//! How long a shard waits for completions before a loop turn (sans-IO: the
//! shard asks [`TurnWait::plan`] and passes the answer to
//! `io_uring_enter`).
//!
//! Why: a loop turn has a cost of its own besides its completions (reaping,
//! re-arming, handing the batch to the writer, publishing counters), and
//! the batch it hands over is as big as what the turn received. Waking on
//! every completion is right at full load, where each wake finds many, and
//! wrong at moderate load: measured on 2 vCPUs (session 9, mtls-large-8 at
//! 40% of the maximum rate, 30 s), the shards turned ~31,000 times a
//! second each, handed the writer 62,000 batches of ~10 KiB a second, the
//! writer wrote 39,000 rounds a second, and the machine was 88% busy at
//! 40% of the load that keeps it 76% busy at the maximum (server CPU per
//! message 0.39 µs against 0.14; loadgen's, which runs the loopback
//! receive path, 0.44 against 0.07).
//!
//! How: with `recv_batch_wait_us` > 0 the shard asks the kernel for
//! [`TURN_COMPLETIONS`] completions and a minimum wait (`min_wait_usec`,
//! `IORING_FEAT_MIN_TIMEOUT`, Linux 6.12): the wait returns as soon as that
//! many have come, or once `recv_batch_wait_us` has passed with at least
//! one; with none by then, at the first one (so an idle shard adds no
//! delay to the first frame after a quiet spell beyond the rest of that
//! window). A frame so waits at most `recv_batch_wait_us` in the
//! completion queue before its turn; ringest's own latency histograms
//! start at the turn, so that wait is outside them (and inside the
//! client's).
//!
//! Without the kernel feature, or with `recv_batch_wait_us = 0`, the shard
//! turns on every completion, as before.

use std::time::Duration;

/// Completions that make a turn worth taking without waiting longer: at
/// full load they come within microseconds, so the minimum wait never
/// delays a busy shard.
pub const TURN_COMPLETIONS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TurnWait {
    /// 0: a turn on every completion.
    min_wait_us: u32,
}

/// What to ask `io_uring_enter` for: wait for `want` completions, but once
/// `min_wait_us` (0 = not set) has passed, for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPlan {
    pub want: usize,
    pub min_wait_us: u32,
}

impl TurnWait {
    /// `recv_batch_wait_us` from the config; `kernel_has_min_timeout`:
    /// the ring reported `IORING_FEAT_MIN_TIMEOUT`.
    pub fn new(recv_batch_wait_us: u64, kernel_has_min_timeout: bool) -> TurnWait {
        let min_wait_us = if kernel_has_min_timeout {
            u32::try_from(recv_batch_wait_us).unwrap_or(u32::MAX)
        } else {
            0
        };
        TurnWait { min_wait_us }
    }

    /// Whether turns are batched (for the start-up log line).
    pub fn is_batching(&self) -> bool {
        self.min_wait_us > 0
    }

    /// The wait for one turn whose overall timeout is `timeout`: the
    /// minimum wait never exceeds it.
    pub fn plan(&self, timeout: Duration) -> WaitPlan {
        if self.min_wait_us == 0 {
            return WaitPlan {
                want: 1,
                min_wait_us: 0,
            };
        }
        let timeout_us = u32::try_from(timeout.as_micros()).unwrap_or(u32::MAX);
        let min_wait_us = self.min_wait_us.min(timeout_us);
        if min_wait_us == 0 {
            // A zero timeout: a poll, which wants nothing.
            return WaitPlan {
                want: 1,
                min_wait_us: 0,
            };
        }
        WaitPlan {
            want: TURN_COMPLETIONS,
            min_wait_us,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_waits_for_one_completion() {
        for t in [TurnWait::new(0, true), TurnWait::new(250, false)] {
            assert!(!t.is_batching());
            assert_eq!(
                t.plan(Duration::from_millis(50)),
                WaitPlan {
                    want: 1,
                    min_wait_us: 0
                }
            );
        }
    }

    #[test]
    fn on_waits_for_a_batch_within_the_minimum_wait() {
        let t = TurnWait::new(250, true);
        assert!(t.is_batching());
        assert_eq!(
            t.plan(Duration::from_millis(50)),
            WaitPlan {
                want: TURN_COMPLETIONS,
                min_wait_us: 250
            }
        );
    }

    #[test]
    fn the_minimum_wait_never_exceeds_the_timeout() {
        let t = TurnWait::new(2_000, true);
        assert_eq!(t.plan(Duration::from_micros(500)).min_wait_us, 500);
        assert_eq!(
            t.plan(Duration::ZERO),
            WaitPlan {
                want: 1,
                min_wait_us: 0
            }
        );
    }

    #[test]
    fn huge_settings_saturate() {
        let t = TurnWait::new(u64::MAX, true);
        assert_eq!(t.plan(Duration::from_secs(1)).min_wait_us, 1_000_000);
    }
}
