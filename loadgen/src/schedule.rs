//! Fixed-rate schedule (sans-IO). Message `k` of a connection is *intended*
//! to leave at `start + k * period`. Latency is measured from that intended
//! time, not from when the sender got round to it, so a stall shows up in
//! the latency of every message scheduled during it (wrk2's correction for
//! coordinated omission).
//!
//! The same type paces `--connect-rate`.

/// Times are nanoseconds on one monotonic clock.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    start_ns: u64,
    period_ns: f64,
}

impl Schedule {
    /// `rate_per_s` must be positive and finite.
    pub fn new(start_ns: u64, rate_per_s: f64) -> Self {
        assert!(
            rate_per_s.is_finite() && rate_per_s > 0.0,
            "rate must be positive"
        );
        Schedule {
            start_ns,
            period_ns: 1e9 / rate_per_s,
        }
    }

    /// When event `k` is intended to happen.
    pub fn intended_ns(&self, k: u64) -> u64 {
        self.start_ns + (k as f64 * self.period_ns) as u64
    }

    /// How many events are due by `now_ns`: the count of `k` with
    /// `intended_ns(k) <= now_ns`. Consistent with `intended_ns` despite
    /// floating-point rounding.
    pub fn due_count(&self, now_ns: u64) -> u64 {
        if now_ns < self.start_ns {
            return 0;
        }
        let mut k = ((now_ns - self.start_ns) as f64 / self.period_ns) as u64 + 1;
        // Rounding can put the estimate one off either way; each loop runs at
        // most a couple of times.
        while k > 0 && self.intended_ns(k - 1) > now_ns {
            k -= 1;
        }
        while self.intended_ns(k) <= now_ns {
            k += 1;
        }
        k
    }
}

/// `--tick-us`: the grid paced sends keep to. A sender sends what is due
/// by the last grid point, then sleeps until the next: each wake-up sends
/// a tick's worth in full records. Chasing the schedule to the nanosecond
/// instead (one more message is due every few µs at millions per second)
/// sends records of one or two messages back to back, and the sender
/// spends a whole core on them (measured: 0.44 client CPU-µs per message
/// at 40% of the maximum rate against 0.07 unpaced).
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    origin_ns: u64,
    /// 0: no grid (a wake-up per message).
    tick_ns: u64,
}

impl Tick {
    pub fn new(origin_ns: u64, tick_ns: u64) -> Self {
        Tick { origin_ns, tick_ns }
    }

    /// The last grid point at or before `t` (`t` itself without a grid, or
    /// before the origin).
    pub fn floor(&self, t: u64) -> u64 {
        if self.tick_ns == 0 || t < self.origin_ns {
            return t;
        }
        self.origin_ns + (t - self.origin_ns) / self.tick_ns * self.tick_ns
    }

    /// The first grid point at or after `t` (`t` itself without a grid, or
    /// before the origin).
    pub fn ceil(&self, t: u64) -> u64 {
        if self.tick_ns == 0 || t < self.origin_ns {
            return t;
        }
        self.origin_ns + (t - self.origin_ns).div_ceil(self.tick_ns) * self.tick_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_evenly_spaced() {
        let s = Schedule::new(1_000, 1000.0);
        assert_eq!(s.intended_ns(0), 1_000);
        assert_eq!(s.intended_ns(1), 1_001_000);
        assert_eq!(s.intended_ns(1000), 1_000_001_000);
    }

    #[test]
    fn due_count_matches_intended() {
        let s = Schedule::new(5_000, 3.0); // period 333_333_333.33 ns
        assert_eq!(s.due_count(0), 0);
        assert_eq!(s.due_count(4_999), 0);
        assert_eq!(s.due_count(5_000), 1);
        assert_eq!(s.due_count(s.intended_ns(1) - 1), 1);
        assert_eq!(s.due_count(s.intended_ns(1)), 2);
        assert_eq!(s.due_count(5_000 + 1_000_000_000), 4);
        for rate in [1.0, 7.0, 1234.5, 3e6, 1e9] {
            let s = Schedule::new(123, rate);
            for k in [0u64, 1, 2, 10, 999, 1_000_000, 123_456_789] {
                let t = s.intended_ns(k);
                assert!(s.due_count(t) > k, "rate {rate} k {k}");
                assert!(t == 0 || s.due_count(t - 1) <= k, "rate {rate} k {k}");
            }
        }
    }

    #[test]
    fn a_stall_makes_many_messages_due_at_once() {
        let s = Schedule::new(0, 1_000_000.0);
        // After a 10 ms stall, 10k messages are due: the sender must catch up
        // and their latency counts from their own intended times.
        assert_eq!(s.due_count(10_000_000), 10_001);
        assert_eq!(10_000_000 - s.intended_ns(0), 10_000_000);
    }

    #[test]
    fn tick_grid_rounds_both_ways_and_is_idempotent() {
        let g = Tick::new(1_000, 100);
        assert_eq!((g.floor(1_000), g.ceil(1_000)), (1_000, 1_000));
        assert_eq!((g.floor(1_099), g.ceil(1_001)), (1_000, 1_100));
        assert_eq!((g.floor(1_100), g.ceil(1_100)), (1_100, 1_100));
        assert_eq!(g.floor(g.ceil(1_234)), g.ceil(1_234));
        // Before the origin and without a grid: unchanged.
        assert_eq!((g.floor(5), g.ceil(5)), (5, 5));
        let none = Tick::new(1_000, 0);
        assert_eq!((none.floor(1_234), none.ceil(1_234)), (1_234, 1_234));
    }

    #[test]
    fn on_the_grid_nothing_more_is_due_until_the_next_point() {
        // 3M msg/s, a 1 ms grid: at any instant between two grid points the
        // count due at the floor is the same, so a sender that keeps to the
        // floor sends one batch per tick.
        let s = Schedule::new(0, 3e6);
        let g = Tick::new(0, 1_000_000);
        let at = |t: u64| s.due_count(g.floor(t));
        assert_eq!(at(1_000_000), at(1_999_999));
        assert_eq!(at(2_000_000) - at(1_000_000), 3_000);
        // The next message's time, rounded up, is the next grid point.
        let next = s.intended_ns(at(1_500_000));
        assert_eq!(g.ceil(next), 2_000_000);
    }
}
