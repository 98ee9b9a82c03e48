//! Rate-limited logging for events a peer can trigger (refused handshakes,
//! framing errors): one line per event up to a budget per second, then a
//! single line saying how many were suppressed.

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
}
