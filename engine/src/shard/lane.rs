//! One destination group's lane through a shard: its batcher (towards the
//! group's ring and writer), the receive completions held back while that
//! ring has no room, and since when it has had none.
//!
//! A connection feeds the lane of its source's group
//! ([`crate::config::groups`]), always the same one, so its frames keep
//! their order. Back-pressure is per lane: a full lane pauses only the
//! connections that feed it; the other lanes' connections, handshakes,
//! timeouts and shutdown go on. Pure: no sockets, tested in memory.
//!
//! The lanes of a shard share its provided receive buffers. A held
//! completion keeps its buffer, so a stuck group with many busy
//! connections (each paused with a completion or more in hand) could hold
//! every buffer and leave the other groups' connections none. So each lane
//! of a shard with several keeps at most [`held_buffers_max`] buffers: past
//! that, a held completion's bytes are copied out and its buffer goes back
//! at once. The copy keeps the completion's place in the queue, so a
//! connection's bytes are still processed in order and none is lost.
//!
//! Why copy rather than stop the connections sooner: a multishot receive
//! armed before the lane filled can always complete into a buffer (the
//! kernel picks it, not us), and cancelling every connection of a lane the
//! moment it fills would still race with completions already posted; only
//! a copy bounds the buffers held. The copies are bounded too: a
//! connection is paused, and its receive cancelled, at its first held
//! completion, so what is copied for it is at most what the kernel had
//! already received for it then (its socket's receive buffer). A shard
//! with one lane has no cap: nothing is copied and its cost is unchanged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::cqueue;

use crate::batch::{Batcher, Ring, WriterWaker};

/// A receive completion held back: user data, result and flags as reaped,
/// the loop turn that reaped it (its frames' latency starts there), and,
/// when its lane was at its cap, its bytes copied out of the provided
/// buffer, which was given back at once.
pub(super) struct Held {
    pub(super) ud: u64,
    pub(super) res: i32,
    pub(super) flags: u32,
    pub(super) reaped: Instant,
    pub(super) copied: Option<Box<[u8]>>,
}

impl Held {
    /// The provided buffer this completion still keeps, if any.
    pub(super) fn buffer(&self) -> Option<u16> {
        kept_buffer(self.flags, self.copied.is_some())
    }
}

/// The provided buffer a receive completion with `flags` keeps: the one the
/// kernel filled, unless its bytes were `copied` out (and it went back).
pub(super) fn kept_buffer(flags: u32, copied: bool) -> Option<u16> {
    if copied {
        None
    } else {
        cqueue::buffer_select(flags)
    }
}

/// The most provided buffers one lane's held completions may keep, of a
/// shard's `recv_buffers` shared by `lanes` lanes: together the lanes keep
/// at most half, so the other half is always there for connections that
/// are not held. `None` with one lane: all its buffers are its own, and it
/// keeps what it holds, as before destination groups (no copy).
pub(super) fn held_buffers_max(recv_buffers: usize, lanes: usize) -> Option<usize> {
    (lanes > 1).then(|| (recv_buffers / (2 * lanes)).max(1))
}

pub(super) struct Lane {
    pub(super) batcher: Batcher,
    /// Back-pressure: receive completions of this lane's connections not
    /// processed because its writer's ring was full, in arrival order.
    /// Those that keep their buffer keep it out of the provided ring, so
    /// the kernel soon has nowhere to put more data for them and TCP's
    /// window closes on the senders. At most `held_buffers_max` keep one;
    /// plus one error or end per connection.
    deferred: VecDeque<Held>,
    /// How many of `deferred` keep a provided buffer.
    held_buffers: usize,
    /// See [`held_buffers_max`].
    held_buffers_max: Option<usize>,
    /// Since when the lane has been held (see [`Self::is_held`]), if it is.
    paused_since: Option<Instant>,
    /// The batcher's `handed_over` at the last [`Self::note_pause`].
    handed_over_seen: u64,
}

impl Lane {
    pub(super) fn new(
        ring: Arc<Ring>,
        waker: Arc<WriterWaker>,
        batch_max_bytes: usize,
        max_queue_delay_ms: u64,
        held_buffers_max: Option<usize>,
    ) -> Lane {
        Lane {
            batcher: Batcher::new(ring, waker, batch_max_bytes)
                .with_max_queue_delay_ms(max_queue_delay_ms),
            deferred: VecDeque::new(),
            held_buffers: 0,
            held_buffers_max,
            paused_since: None,
            handed_over_seen: 0,
        }
    }

    /// At the start of a loop turn: notes whether the lane is held (its
    /// batcher holds a batch back, or completions wait in it), keeping the
    /// instant the pause began. Held completions count although the batcher
    /// has room: when the end of the last turn's flush made room, they are
    /// processed at the start of the next turn, and their connections'
    /// receives are paused, so nothing else may end the shard's wait soon;
    /// counted only while the batcher was full, the shard waited `WAIT_MS`
    /// (50 ms) for them. A batch handed over since
    /// the last turn starts it again: the writer took one, so it is behind,
    /// not stuck. Without that, a lane under sustained back-pressure (a
    /// Kafka destination slower than its input) is full at the start of
    /// every turn, counted as paused for over `PAUSED_POLL_MS`, and polled
    /// every 50 ms instead of 500 µs: it received a batch per 50 ms.
    pub(super) fn note_pause(&mut self, now: Instant) {
        let progressed = self.batcher.handed_over != self.handed_over_seen;
        self.handed_over_seen = self.batcher.handed_over;
        self.paused_since = match (self.is_held(), self.paused_since) {
            (false, _) => None,
            (true, Some(t)) if !progressed => Some(t),
            (true, _) => Some(now),
        };
    }

    /// Held back for longer than `stuck_after` at `now` with no batch taken
    /// meanwhile: its writer is failing (a destination down), not merely
    /// behind.
    pub(super) fn is_stuck(&self, now: Instant, stuck_after: Duration) -> bool {
        self.paused_since
            .is_some_and(|t| now.saturating_duration_since(t) > stuck_after)
    }

    /// Whether there is anything to resume: held completions, or a batch
    /// held back.
    pub(super) fn is_held(&self) -> bool {
        !self.deferred.is_empty() || self.batcher.is_full()
    }

    /// Whether a completion to be held may keep its provided buffer; if
    /// not, the caller copies its bytes into [`Held::copied`] and gives the
    /// buffer back before [`Self::hold`].
    pub(super) fn may_keep_buffer(&self) -> bool {
        self.held_buffers_max
            .is_none_or(|max| self.held_buffers < max)
    }

    /// Holds `h` behind this lane's other held completions.
    pub(super) fn hold(&mut self, h: Held) {
        if h.buffer().is_some() {
            self.held_buffers += 1;
            debug_assert!(
                self.held_buffers_max
                    .is_none_or(|max| self.held_buffers <= max),
                "a lane keeps more buffers than its cap"
            );
        }
        self.deferred.push_back(h);
    }

    /// The oldest held completion, to be processed now.
    pub(super) fn take(&mut self) -> Option<Held> {
        let h = self.deferred.pop_front()?;
        if h.buffer().is_some() {
            self.held_buffers -= 1;
        }
        Some(h)
    }

    /// Every held completion, oldest first, for shutdown (their buffers
    /// go back, nothing processes them any more).
    pub(super) fn take_all(&mut self) -> impl Iterator<Item = Held> + '_ {
        self.held_buffers = 0;
        self.deferred.drain(..)
    }

    /// The provided buffers its held completions keep.
    pub(super) fn held_buffers(&self) -> usize {
        self.held_buffers
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
        let lane = Lane::new(
            Arc::clone(&ring),
            Arc::new(WriterWaker::new()),
            4096,
            0,
            None,
        );
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

    /// Flags of a completion whose bytes are in provided buffer `bid`
    /// (the kernel's layout: IORING_CQE_F_BUFFER, the id above bit 16).
    fn in_buffer(bid: u16) -> u32 {
        let flags = 1 | (u32::from(bid) << 16);
        assert_eq!(cqueue::buffer_select(flags), Some(bid));
        flags
    }

    fn held(ud: u64, res: i32, flags: u32, copied: Option<&[u8]>) -> Held {
        Held {
            ud,
            res,
            flags,
            reaped: Instant::now(),
            copied: copied.map(Box::from),
        }
    }

    #[test]
    fn one_lane_has_no_cap_and_several_keep_half_the_buffers_at_most() {
        assert_eq!(held_buffers_max(512, 1), None);
        assert_eq!(held_buffers_max(512, 2), Some(128));
        assert_eq!(held_buffers_max(16, 2), Some(4));
        assert_eq!(held_buffers_max(16, 3), Some(2), "rounded down");
        assert_eq!(held_buffers_max(8, 8), Some(1), "at least one");
        for lanes in 2..=64 {
            let max = held_buffers_max(4096, lanes).expect("a cap");
            assert!(max >= 1 && max * lanes <= 2048, "{lanes} lanes: {max}");
        }
    }

    /// A stuck lane at its cap: a further completion must not keep its
    /// buffer; its copy waits in its place, so the connection's bytes come
    /// out in the order they arrived. An end of stream keeps no buffer and
    /// is held whatever the count.
    #[test]
    fn a_lane_at_its_cap_keeps_no_more_buffers_and_its_copies_keep_their_place() {
        let (mut l, _r) = lane(1);
        l.held_buffers_max = Some(2);
        assert!(l.may_keep_buffer());
        l.hold(held(1, 100, in_buffer(7), None));
        assert!(l.may_keep_buffer());
        l.hold(held(2, 100, in_buffer(9), None));
        assert!(!l.may_keep_buffer(), "at its cap");
        assert_eq!(l.held_buffers(), 2);
        // The shard copies the bytes and gives buffer 3 back.
        let copy = held(3, 3, in_buffer(3), Some(b"abc"));
        assert_eq!(copy.buffer(), None, "a copy keeps no buffer");
        l.hold(copy);
        l.hold(held(4, 0, 0, None));
        assert_eq!(l.held_buffers(), 2, "neither the copy nor the end counts");
        assert!(l.is_held());

        let first = l.take().expect("first");
        assert_eq!((first.ud, first.buffer()), (1, Some(7)));
        assert_eq!(l.held_buffers(), 1);
        assert!(l.may_keep_buffer(), "below the cap again");
        assert_eq!(l.take().map(|h| h.ud), Some(2));
        let third = l.take().expect("third");
        assert_eq!(third.ud, 3);
        assert_eq!(third.copied.as_deref(), Some(&b"abc"[..]));
        assert_eq!(l.take().map(|h| h.ud), Some(4));
        assert!(l.take().is_none());
        assert_eq!(l.held_buffers(), 0);
        assert!(!l.is_held());
    }

    /// One lane: every held completion keeps its buffer, as before groups.
    #[test]
    fn a_lone_lane_keeps_every_buffer_it_holds() {
        let (mut l, _r) = lane(1);
        for bid in 0..512u16 {
            assert!(l.may_keep_buffer());
            l.hold(held(u64::from(bid), 1, in_buffer(bid), None));
        }
        assert_eq!(l.held_buffers(), 512);
        let all: Vec<u16> = l.take_all().filter_map(|h| h.buffer()).collect();
        assert_eq!(all, (0..512).collect::<Vec<u16>>(), "given back in order");
        assert_eq!(l.held_buffers(), 0);
        assert!(l.take().is_none());
    }

    /// A lane held back past the bound counts as stuck (its writer failing),
    /// one held for less, or not held, does not.
    #[test]
    fn a_lane_is_stuck_only_once_held_back_past_the_bound() {
        let (mut l, _r) = lane(1);
        let t0 = Instant::now();
        let bound = Duration::from_secs(1);
        l.note_pause(t0);
        assert!(!l.is_stuck(t0 + Duration::from_secs(5), bound), "not held");
        fill(&mut l);
        l.note_pause(t0);
        assert!(!l.is_stuck(t0 + Duration::from_millis(500), bound));
        l.note_pause(t0 + Duration::from_millis(900));
        assert!(
            l.is_stuck(t0 + Duration::from_millis(1500), bound),
            "since t0"
        );
    }

    /// Sustained back-pressure: full at the start of every turn, but the
    /// writer keeps taking batches. Each batch taken starts the pause
    /// again, so the lane is behind, never stuck.
    #[test]
    fn a_lane_whose_writer_keeps_taking_batches_is_never_stuck() {
        let (mut l, ring) = lane(1);
        let t0 = Instant::now();
        let bound = Duration::from_secs(1);
        fill(&mut l);
        l.note_pause(t0);
        for k in 1..=5u64 {
            let now = t0 + Duration::from_millis(800 * k);
            // The writer takes the queued batch; the shard's next flush
            // hands over the one held back, and the lane fills again.
            assert!(ring.full.pop().is_some(), "a batch was queued");
            l.batcher.flush();
            fill(&mut l);
            l.note_pause(now);
            assert!(l.is_held());
            assert!(
                !l.is_stuck(now + Duration::from_millis(500), bound),
                "turn {k}"
            );
        }
        // Then the writer stops taking: after the bound, stuck.
        let last = t0 + Duration::from_millis(4000);
        l.note_pause(last + Duration::from_millis(100));
        assert!(l.is_stuck(last + Duration::from_millis(1500), bound));
    }

    /// The end-of-turn flush made room (the writer took a batch) while a
    /// completion that came in meanwhile is still held: the lane still
    /// counts as paused, so the next turn, which processes the completion,
    /// comes after the short poll and not after `WAIT_MS`. (Session 4's
    /// bounded batch pool made this the usual state: tests/writers.rs's
    /// loadgen timed out waiting for its close.)
    #[test]
    fn a_lane_with_held_completions_counts_as_paused_after_its_writer_made_room() {
        use super::super::{wait_for, PAUSED_WAIT_US};
        let (mut l, ring) = lane(1);
        let t0 = Instant::now();
        fill(&mut l);
        l.hold(held(1, 100, in_buffer(7), None));
        l.note_pause(t0);
        assert!(ring.full.pop().is_some(), "the writer takes a batch");
        l.batcher.flush();
        assert!(!l.batcher.is_full(), "room again");
        assert!(l.is_held(), "the completion still waits");
        let next = t0 + Duration::from_millis(1);
        l.note_pause(next);
        let paused = shortest_pause(std::slice::from_ref(&l), next);
        assert_eq!(paused, Some(Duration::ZERO), "paused again since this turn");
        assert_eq!(wait_for(paused), Duration::from_micros(PAUSED_WAIT_US));
        // Processed: nothing held, no pause.
        assert_eq!(l.take().map(|h| h.ud), Some(1));
        l.note_pause(next);
        assert_eq!(shortest_pause(std::slice::from_ref(&l), next), None);
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
