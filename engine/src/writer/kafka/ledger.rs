//! What a Kafka destination holds that the brokers have not acknowledged,
//! without IO: messages handed to the producer (in flight) and messages
//! whose delivery failed, kept to be produced again after a backoff.
//!
//! The writer may only hand new messages to the producer while nothing
//! waits for a retry ([`Ledger::has_retries`]): a failed message goes out
//! again before newer ones, and the retry queue never grows past what was
//! in flight, which the producer's queue bounds.

use std::collections::VecDeque;
use std::time::Instant;

/// A message to produce again: owned, since the ring's batch is reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub value: Vec<u8>,
    pub key: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct Ledger {
    in_flight_messages: u64,
    in_flight_bytes: u64,
    retries: VecDeque<Pending>,
    retry_bytes: u64,
    /// When the retries may go out again.
    retry_due: Option<Instant>,
}

impl Ledger {
    /// A message of `bytes` went into the producer's queue.
    pub fn produced(&mut self, bytes: u64) {
        self.in_flight_messages += 1;
        self.in_flight_bytes += bytes;
    }

    /// `n` messages of `bytes` in all were acknowledged.
    pub fn delivered(&mut self, n: u64, bytes: u64) {
        debug_assert!(n <= self.in_flight_messages && bytes <= self.in_flight_bytes);
        self.in_flight_messages = self.in_flight_messages.saturating_sub(n);
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(bytes);
    }

    /// A message in flight failed: it waits until `due` (or the retries'
    /// earlier due time) to be produced again.
    pub fn failed(&mut self, p: Pending, due: Instant) {
        let bytes = p.value.len() as u64;
        self.delivered(1, bytes);
        self.keep(p, due);
    }

    /// A message the producer refused outright: kept like a failed one.
    pub fn refused(&mut self, p: Pending, due: Instant) {
        self.keep(p, due);
    }

    fn keep(&mut self, p: Pending, due: Instant) {
        self.retry_bytes += p.value.len() as u64;
        self.retries.push_back(p);
        self.retry_due = Some(self.retry_due.map_or(due, |d| d.min(due)));
    }

    pub fn has_retries(&self) -> bool {
        !self.retries.is_empty()
    }

    /// When the retries may go out, if there are any.
    pub fn retry_due(&self) -> Option<Instant> {
        self.retry_due.filter(|_| self.has_retries())
    }

    /// The next retry, if its time has come.
    pub fn take_due(&mut self, now: Instant) -> Option<Pending> {
        if self.retry_due.is_none_or(|d| now < d) {
            return None;
        }
        let p = self.retries.pop_front()?;
        self.retry_bytes -= p.value.len() as u64;
        if self.retries.is_empty() {
            self.retry_due = None;
        }
        Some(p)
    }

    /// A retry taken with [`take_due`](Self::take_due) that the producer's
    /// queue had no room for: first in line again, still due.
    pub fn put_back(&mut self, p: Pending) {
        self.retry_bytes += p.value.len() as u64;
        self.retries.push_front(p);
        if self.retry_due.is_none() {
            self.retry_due = Some(Instant::now());
        }
    }

    pub fn in_flight_bytes(&self) -> u64 {
        self.in_flight_bytes
    }

    /// Messages and bytes not acknowledged: in flight or waiting for a retry.
    pub fn undelivered(&self) -> (u64, u64) {
        (
            self.in_flight_messages + self.retries.len() as u64,
            self.in_flight_bytes + self.retry_bytes,
        )
    }

    pub fn is_empty(&self) -> bool {
        self.undelivered() == (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn p(v: &str) -> Pending {
        Pending {
            value: v.as_bytes().to_vec(),
            key: None,
        }
    }

    #[test]
    fn a_failed_message_leaves_in_flight_and_waits_for_its_backoff() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        l.produced(3);
        l.produced(5);
        assert_eq!(l.undelivered(), (2, 8));
        l.failed(p("abc"), t0 + Duration::from_millis(100));
        assert_eq!(l.undelivered(), (2, 8), "kept, not dropped");
        assert_eq!(l.in_flight_bytes(), 5);
        assert!(l.has_retries());
        assert_eq!(l.take_due(t0), None, "not before its backoff");
        assert_eq!(l.take_due(t0 + Duration::from_millis(100)), Some(p("abc")));
        assert!(!l.has_retries());
        assert_eq!(l.undelivered(), (1, 5));
        l.delivered(1, 5);
        assert!(l.is_empty());
    }

    #[test]
    fn a_retry_without_room_goes_back_first_in_line() {
        let t0 = Instant::now();
        let mut l = Ledger::default();
        l.refused(p("a"), t0);
        l.refused(p("bb"), t0 + Duration::from_secs(9));
        assert_eq!(l.retry_due(), Some(t0), "the earliest due time wins");
        let a = l.take_due(t0).expect("due");
        l.put_back(a);
        assert_eq!(l.take_due(t0), Some(p("a")));
        assert_eq!(l.take_due(t0), Some(p("bb")));
        assert_eq!(l.take_due(t0), None);
        assert_eq!(l.retry_due(), None);
        assert!(l.is_empty());
    }
}
