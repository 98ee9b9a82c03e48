//! The wait before the next reconnect: doubles from `reconnect_min_ms` up to
//! `reconnect_max_ms`, each wait drawn uniformly from its upper half
//! ("equal jitter"), so relays that lost the same upstream at the same
//! moment do not all come back in the same millisecond, and a wait is never
//! shorter than half the nominal one. Sans-IO: the caller owns the clock.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Reconnect {
    min: Duration,
    max: Duration,
    /// The nominal wait of the next failure.
    next: Duration,
    rng: u64,
}

impl Reconnect {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Reconnect {
        assert!(min > Duration::ZERO && min <= max, "0 < min <= max");
        Reconnect {
            min,
            max,
            next: min,
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    /// After a failed attempt (every server tried): how long to wait.
    pub fn failed(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = nominal / 2;
        let span = (nominal - half).as_micros() as u64;
        let jitter = if span == 0 {
            0
        } else {
            self.random() % (span + 1)
        };
        half + Duration::from_micros(jitter)
    }

    /// After a connection was confirmed: the next failure starts over.
    pub fn succeeded(&mut self) {
        self.next = self.min;
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_stay_in_the_upper_half_and_stop_at_the_cap() {
        let ms = Duration::from_millis;
        let mut r = Reconnect::new(ms(100), ms(1000), 42);
        let mut nominal = ms(100);
        for _ in 0..20 {
            let w = r.failed();
            assert!(w >= nominal / 2 && w <= nominal, "{w:?} vs {nominal:?}");
            assert!(w <= ms(1000));
            nominal = (nominal * 2).min(ms(1000));
        }
        r.succeeded();
        assert!(r.failed() <= ms(100));
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let ms = Duration::from_millis;
        let waits: std::collections::HashSet<Duration> = (0..10)
            .map(|seed| Reconnect::new(ms(1000), ms(1000), seed * 2 + 1).failed())
            .collect();
        assert!(waits.len() > 5, "{waits:?}");
    }
}
