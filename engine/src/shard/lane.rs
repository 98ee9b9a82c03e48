//! One destination group's lane through a shard: its batcher (towards the
//! group's ring and writer), the receive completions held back while that
//! ring has no room, and since when it has had none.
//!
//! A connection feeds the lane of its source's group
//! ([`crate::config::groups`]), always the same one, so its frames keep
//! their order. Back-pressure is per lane: a full lane pauses only the
//! connections that feed it; the other lanes' connections, handshakes,
//! timeouts and shutdown go on. Pure: no sockets, tested in memory.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch::{Batcher, Ring, WriterWaker};

/// A receive completion held back (user data, result, flags) and the loop
/// turn that reaped it (its frames' latency starts there).
pub(super) type HeldCompletion = (u64, i32, u32, Instant);

pub(super) struct Lane {
    pub(super) batcher: Batcher,
    /// Back-pressure: receive completions of this lane's connections not
    /// processed because its writer's ring was full, in arrival order.
    /// Their buffers stay out of the provided ring, so the kernel soon has
    /// nowhere to put more data for them and TCP's window closes on the
    /// senders. Bounded by the shard's provided buffers plus one error or
    /// end per connection.
    pub(super) deferred: VecDeque<HeldCompletion>,
    /// Since when the batcher has been holding a batch back, if it is.
    paused_since: Option<Instant>,
}

impl Lane {
    pub(super) fn new(
        ring: Arc<Ring>,
        waker: Arc<WriterWaker>,
        batch_max_bytes: usize,
        max_queue_delay_ms: u64,
    ) -> Lane {
        Lane {
            batcher: Batcher::new(ring, waker, batch_max_bytes)
                .with_max_queue_delay_ms(max_queue_delay_ms),
            deferred: VecDeque::new(),
            paused_since: None,
        }
    }

    /// At the start of a loop turn: notes whether the batcher holds a batch
    /// back, keeping the instant the pause began.
    pub(super) fn note_pause(&mut self, now: Instant) {
        self.paused_since = if self.batcher.is_full() {
            Some(self.paused_since.unwrap_or(now))
        } else {
            None
        };
    }

    /// Whether there is anything to resume: held completions, or a batch
    /// held back.
    pub(super) fn is_held(&self) -> bool {
        !self.deferred.is_empty() || self.batcher.is_full()
    }
}

/// The lane of a connection of `source`: its destination group's.
pub(super) fn lane_for(lane_of_source: &[usize], source: u16) -> usize {
    lane_of_source.get(source as usize).copied().unwrap_or(0)
}

/// The shortest pause of any lane at `now` (`None`: no lane is paused):
/// the most recent pause decides how soon the shard polls for room, so a
/// lane stuck for long (a failing destination) does not slow the resume of
/// one that filled a moment ago.
pub(super) fn shortest_pause(lanes: &[Lane], now: Instant) -> Option<Duration> {
    lanes
        .iter()
        .filter_map(|l| l.paused_since)
        .map(|t| now.saturating_duration_since(t))
        .min()
}

/// Steps every lane's [`Batcher::try_close`] until all are closed, so a
/// lane whose writer is stuck (until it gives up) holds up none of the
/// others. Returns the messages counted as lost (the writer had gone).
pub(super) fn close_all(lanes: &mut [Lane]) -> u64 {
    // Bounded: each batcher closes once its writer took everything or has
    // gone (a writer gives up a bounded time after shutdown).
    loop {
        let mut open = 0;
        for l in lanes.iter_mut() {
            open += usize::from(!l.batcher.try_close());
        }
        if open == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    lanes.iter().map(|l| l.batcher.lost_messages).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::ConnMeta;
    use std::sync::atomic::Ordering;

    fn lane(capacity: usize) -> (Lane, Arc<Ring>) {
        let ring = Arc::new(Ring::new(capacity));
        let lane = Lane::new(Arc::clone(&ring), Arc::new(WriterWaker::new()), 4096, 0);
        (lane, ring)
    }

    /// Fills `lane` until its batcher holds a batch back (its ring is full).
    fn fill(lane: &mut Lane) {
        let m = Arc::new(ConnMeta {
            source: 0,
            peer: "127.0.0.1:1".parse().expect("addr"),
            identity: None,
        });
        for _ in 0..64 {
            if lane.batcher.is_full() {
                return;
            }
            lane.batcher.push(&m, 0, &[b'x'; 3000]);
            lane.batcher.flush();
        }
        panic!("the lane never filled");
    }

    /// One lane stuck for a minute, another full since a moment ago: the
    /// shard polls as for the recent one; with neither paused, not at all.
    #[test]
    fn the_most_recent_pause_decides_how_soon_the_shard_polls() {
        let (mut stuck, _r1) = lane(1);
        let (mut recent, _r2) = lane(1);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(60);
        fill(&mut stuck);
        stuck.note_pause(t0);
        recent.note_pause(t0);
        assert_eq!(
            shortest_pause(&[stuck, recent], later),
            Some(Duration::from_secs(60))
        );
        let (mut stuck, _r1) = lane(1);
        let (mut recent, _r2) = lane(1);
        fill(&mut stuck);
        stuck.note_pause(t0);
        fill(&mut recent);
        recent.note_pause(later - Duration::from_millis(3));
        stuck.note_pause(later);
        let lanes = [stuck, recent];
        assert_eq!(
            shortest_pause(&lanes, later),
            Some(Duration::from_millis(3)),
            "the stuck lane keeps its start; the recent one decides"
        );
        let (free, _r) = lane(4);
        assert_eq!(shortest_pause(&[free], later), None);
    }

    /// Shutdown with one lane's writer stuck: the other lane closes at once
    /// (its writer sees its ring closed and can finish), and closing ends
    /// once the stuck writer has gone, counting what it never took.
    #[test]
    fn closing_does_not_wait_for_a_stuck_lane_before_closing_the_others() {
        let (mut stuck, stuck_ring) = lane(1);
        let (healthy, healthy_ring) = lane(4);
        fill(&mut stuck);
        assert!(stuck.is_held() && !healthy.is_held());
        let mut lanes = vec![stuck, healthy];
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(close_all(&mut lanes));
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        while !healthy_ring.closed.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the healthy lane never closed");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!stuck_ring.closed.load(Ordering::Acquire));
        assert!(rx.try_recv().is_err(), "still waiting for the stuck writer");
        stuck_ring.abandoned.store(true, Ordering::Release);
        let lost = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("close_all returns once the stuck writer has gone");
        assert_eq!(lost, 1, "the batch held back");
        assert!(stuck_ring.closed.load(Ordering::Acquire));
    }
}
