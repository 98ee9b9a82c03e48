//! Rate-limited logging for events a peer can trigger (refused handshakes,
//! framing errors): one line per event up to a budget per second, then a
//! single line saying how many were suppressed ([`RateLog`]); and, for
//! events a peer can repeat on every message (parse errors), one line per
//! key per quiet period within such a budget ([`KeyedRateLog`]).

use std::time::{Duration, Instant};

pub struct RateLog {
    per_second: u32,
    window_start: Instant,
    used: u32,
    suppressed: u64,
}

impl RateLog {
    pub fn new(per_second: u32) -> RateLog {
        RateLog {
            per_second,
            window_start: Instant::now(),
            used: 0,
            suppressed: 0,
        }
    }

    /// Returns true if this event may be logged now.
    pub fn allow(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            if self.suppressed > 0 {
                log::warn!(
                    "{} similar log lines suppressed in the last second (counted in stats)",
                    self.suppressed
                );
            }
            self.window_start = now;
            self.used = 0;
            self.suppressed = 0;
        }
        if self.used < self.per_second {
            self.used += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// One line per key per quiet period, within a [`RateLog`] budget: for an
/// event one peer can repeat millions of times (a sender of unparseable
/// messages), where one line per (peer, reason) says all there is to say
/// and the counters say how many.
///
/// The keys logged recently are a table of at most `keys_max` entries,
/// allocated once; a key seen again within its quiet period costs one
/// comparison (the last key found) or one scan of the table, and nothing
/// is allocated. When the table is full, a new key takes the place of the
/// one logged longest ago: with more keys than that in play at once, each
/// may be logged again sooner, and the budget still bounds the lines.
pub struct KeyedRateLog<K> {
    budget: RateLog,
    /// Each key logged recently, and when.
    recent: Vec<(K, Instant)>,
    keys_max: usize,
    /// Where the last key looked up was found: a burst from one peer
    /// finds it at once.
    last: usize,
}

impl<K: PartialEq + Copy> KeyedRateLog<K> {
    /// At most `per_second` lines a second over all keys; `keys_max`
    /// keys remembered (at least 1).
    pub fn new(per_second: u32, keys_max: usize) -> KeyedRateLog<K> {
        let keys_max = keys_max.max(1);
        KeyedRateLog {
            budget: RateLog::new(per_second),
            recent: Vec::with_capacity(keys_max),
            keys_max,
            last: 0,
        }
    }

    /// Returns true if an event of `key` may be logged now: `key` was not
    /// logged within `quiet` before `now`, and the budget has room. A key
    /// refused for the budget alone is not remembered, so its next event
    /// may still be logged once the budget has room again.
    pub fn allow(&mut self, key: K, quiet: Duration, now: Instant) -> bool {
        let found = match self.recent.get(self.last) {
            Some((k, _)) if *k == key => Some(self.last),
            _ => self.recent.iter().position(|(k, _)| *k == key),
        };
        if let Some(i) = found {
            self.last = i;
            if now.saturating_duration_since(self.recent[i].1) < quiet {
                return false;
            }
        }
        if !self.budget.allow(now) {
            return false;
        }
        let at = match found {
            Some(i) => i,
            None if self.recent.len() < self.keys_max => {
                self.recent.push((key, now));
                self.recent.len() - 1
            }
            // Full: the entry logged longest ago gives way.
            None => self
                .recent
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t))| *t)
                .map_or(0, |(i, _)| i),
        };
        self.recent[at] = (key, now);
        self.last = at;
        true
    }

    /// Keys remembered now (at most `keys_max`).
    #[cfg(test)]
    pub fn keys(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_budget_then_suppresses_until_next_second() {
        let t0 = Instant::now();
        let mut r = RateLog::new(2);
        assert!(r.allow(t0));
        assert!(r.allow(t0));
        assert!(!r.allow(t0));
        assert!(r.allow(t0 + Duration::from_millis(1001)));
    }

    const QUIET: Duration = Duration::from_secs(60);

    #[test]
    fn a_key_is_logged_once_per_quiet_period() {
        let t0 = Instant::now();
        let mut r = KeyedRateLog::new(100, 8);
        assert!(r.allow(1, QUIET, t0));
        for i in 0..1000 {
            assert!(!r.allow(1, QUIET, t0 + Duration::from_millis(i)));
        }
        assert!(r.allow(2, QUIET, t0), "another key has its own line");
        assert!(!r.allow(1, QUIET, t0 + QUIET - Duration::from_millis(1)));
        assert!(r.allow(1, QUIET, t0 + QUIET), "quiet period over");
        assert!(!r.allow(1, QUIET, t0 + QUIET));
        assert_eq!(r.keys(), 2);
    }

    #[test]
    fn zero_quiet_leaves_only_the_budget() {
        let t0 = Instant::now();
        let mut r = KeyedRateLog::new(3, 8);
        let allowed = (0..10).filter(|_| r.allow(7, Duration::ZERO, t0)).count();
        assert_eq!(allowed, 3);
    }

    #[test]
    fn a_key_refused_for_the_budget_is_logged_when_there_is_room() {
        // The budget's second starts when it is made: t0 is later.
        let mut r = KeyedRateLog::new(1, 8);
        let t0 = Instant::now();
        assert!(r.allow(1, QUIET, t0));
        assert!(!r.allow(2, QUIET, t0), "budget spent");
        assert!(!r.allow(2, QUIET, t0));
        let t1 = t0 + Duration::from_secs(1);
        assert!(r.allow(2, QUIET, t1), "not remembered while refused");
        assert!(!r.allow(1, QUIET, t1), "key 1 still quiet");
    }

    #[test]
    fn a_full_table_forgets_the_key_logged_longest_ago() {
        let t0 = Instant::now();
        let mut r = KeyedRateLog::new(100, 2);
        let ms = Duration::from_millis;
        assert!(r.allow(1, QUIET, t0));
        assert!(r.allow(2, QUIET, t0 + ms(1)));
        assert!(r.allow(3, QUIET, t0 + ms(2)), "takes key 1's place");
        assert_eq!(r.keys(), 2, "bounded");
        assert!(!r.allow(2, QUIET, t0 + ms(3)));
        assert!(!r.allow(3, QUIET, t0 + ms(3)));
        assert!(r.allow(1, QUIET, t0 + ms(3)), "forgotten, so logged again");
    }
}
