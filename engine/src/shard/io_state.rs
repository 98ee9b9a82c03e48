//! What the shard is doing with one connection's socket, as one state
//! machine: which receive is in flight, whether back-pressure paused it, and
//! how far its close has gone. [`crate::conn::Conn`] owns the protocol; this
//! owns the I/O around it. Pure: the shard calls a transition, then issues
//! the operation it names, so every path is tested here without a socket.
//!
//! ```text
//!            arm / recv_ended
//!   Open{recv} ◄────────────► Open{recv}       (a receive in flight or not)
//!     │   ▲
//!  defer  │ last deferred completion taken
//!     ▼   │
//!   Paused{recv, deferred ≥ 1}               (receive not re-armed)
//!     │
//!     ├─ begin_close / peer_gone ─► Closing{since, shut_down}
//!     └─ abort ──────────────────► Aborted   (socket shut down, no deadline)
//!
//!   Open{Multishot} ─ cancel_multishot ─► Cancelling ─ recv_ended ─► Open{None}
//!                     (credit in force)     │    ▲
//!                                     defer ▼    │ last deferred completion taken
//!                                   Paused{Multishot}  (from Open too: its
//!                                                       cancel was asked at the pause)
//! ```
//!
//! A multishot receive is cancelled at most once: when the connection is
//! paused (its first deferred completion), or when the shard's receive
//! credit comes into force ([`IoState::cancel_multishot`]). Either way the
//! connection is `Cancelling` (or paused) until the receive's last
//! completion (`-ECANCELED`, or data that raced in and ended it) has come,
//! and completions carrying data before it are processed as usual: a
//! cancel never loses bytes the kernel had already put in a buffer.
//!
//! Every state but `Open { recv: None }` has a reason not to arm a receive;
//! a paused connection always has the receive whose completions wait (its
//! last completion is still queued or to come), so "paused with nothing in
//! flight" cannot be written down.

use std::num::NonZeroU32;
use std::time::Instant;

/// The kind of receive in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvOp {
    /// Multishot receive into the shard's provided buffer ring.
    Multishot,
    /// Single-shot receive into one provided buffer (buffer select): one
    /// buffer per arming, while the shard's receive credit is in force.
    /// Its one completion is its last, so it is never cancelled to stop it.
    SingleShot,
    /// Single-shot receive of an exact length into the connection's own
    /// buffer (record-exact handshake reads).
    Exact,
}

/// One connection's I/O state in the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoState {
    /// Receiving; `recv` is the receive in flight, if any.
    Open { recv: Option<RecvOp> },
    /// Back-pressure: `deferred` receive completions of `recv` wait in the
    /// shard's queue, in order; the receive is not re-armed until the last
    /// of them has been taken out.
    Paused { recv: RecvOp, deferred: NonZeroU32 },
    /// Open, its multishot receive cancelled and its last completion still
    /// to come (completions with data before it are processed as usual):
    /// then `Open { recv: None }`, and it is re-armed in the shard's order.
    Cancelling,
    /// Closing politely: no more receives; what is queued to send (an alert)
    /// goes out, then the socket closes. `since` starts `close_timeout_ms`.
    /// `shut_down`: shutdown(2) was called to end a receive still in flight.
    Closing {
        recv: Option<RecvOp>,
        since: Instant,
        shut_down: bool,
    },
    /// Cut: the socket is shut down and queued bytes dropped; the slot is
    /// freed once the operations still in flight complete. No deadline.
    Aborted { recv: Option<RecvOp> },
}

/// What [`IoState::defer`] asks of the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferred {
    /// This completion paused the connection: count a pause, and cancel
    /// `cancel` if set (a multishot receive would otherwise keep taking
    /// provided buffers until none is left for anyone).
    Paused { cancel: Option<RecvOp> },
    /// Already paused: the completion queues behind the others.
    Queued,
}

impl Default for IoState {
    fn default() -> Self {
        IoState::Open { recv: None }
    }
}

impl IoState {
    /// The receive in flight, if any (to cancel it, or to wait for it).
    pub fn recv(&self) -> Option<RecvOp> {
        match *self {
            IoState::Open { recv } | IoState::Closing { recv, .. } | IoState::Aborted { recv } => {
                recv
            }
            IoState::Paused { recv, .. } => Some(recv),
            IoState::Cancelling => Some(RecvOp::Multishot),
        }
    }

    /// Closing or aborted: nothing is received any more.
    pub fn is_closing(&self) -> bool {
        matches!(self, IoState::Closing { .. } | IoState::Aborted { .. })
    }

    /// Completions of this connection wait in the shard's deferred queue.
    pub fn is_paused(&self) -> bool {
        matches!(self, IoState::Paused { .. })
    }

    /// Only an open connection with no receive in flight may arm one.
    pub fn can_arm(&self) -> bool {
        matches!(self, IoState::Open { recv: None })
    }

    /// When its polite close started, for `close_timeout_ms`.
    pub fn closing_since(&self) -> Option<Instant> {
        match *self {
            IoState::Closing { since, .. } => Some(since),
            _ => None,
        }
    }

    /// Waiting for the peer: open with a receive in flight and not paused
    /// (a connection paused by back-pressure, or waiting for buffers, is not
    /// idle), for `idle_timeout_ms`. A receive being cancelled is still in
    /// flight: should its cancel find nothing to stop, it waits for the
    /// peer like any other.
    pub fn is_waiting_for_peer(&self) -> bool {
        matches!(self, IoState::Open { recv: Some(_) } | IoState::Cancelling)
    }

    /// A receive was armed.
    pub fn armed(&mut self, op: RecvOp) {
        debug_assert!(self.can_arm(), "arming a receive in {self:?}");
        if let IoState::Open { recv } = self {
            *recv = Some(op);
        }
    }

    /// The receive in flight reported its last completion (or, for a
    /// completion taken out of the deferred queue, that completion was its
    /// last).
    pub fn recv_ended(&mut self) {
        match self {
            IoState::Open { recv } | IoState::Closing { recv, .. } | IoState::Aborted { recv } => {
                *recv = None
            }
            IoState::Paused { .. } => {
                // The last completion queues behind the others, so it is taken
                // out after them, once the connection is open again.
                debug_assert!(false, "receive ended while paused");
                *self = IoState::Open { recv: None };
            }
            IoState::Cancelling => *self = IoState::Open { recv: None },
        }
    }

    /// The shard's receive credit came into force: a multishot receive in
    /// flight would keep taking every buffer given back for as long as it
    /// keeps up with its socket, ahead of the connections parked for want
    /// of one. True when the caller must cancel it now (its completions
    /// then come as usual, the last one ends it; see [`Self::recv_ended`]).
    /// False for any other state: no receive, a single-shot or exact one
    /// (it ends by itself), a cancel already asked for (paused, or
    /// cancelling), or a close under way (its receive is being ended).
    pub fn cancel_multishot(&mut self) -> bool {
        match self {
            IoState::Open {
                recv: Some(RecvOp::Multishot),
            } => {
                *self = IoState::Cancelling;
                true
            }
            _ => false,
        }
    }

    /// Whether a receive completion must wait in the deferred queue: earlier
    /// ones wait (order), or the writer's ring is full and the connection
    /// could produce frames. A closing connection's completions are never
    /// held: they only end its receive.
    pub fn must_defer(&self, ring_full: bool, handshaking: bool) -> bool {
        match self {
            IoState::Paused { .. } => true,
            IoState::Open { recv: Some(_) } | IoState::Cancelling => ring_full && !handshaking,
            // No receive in flight: no completion can belong to it.
            IoState::Open { recv: None } | IoState::Closing { .. } | IoState::Aborted { .. } => {
                false
            }
        }
    }

    /// A receive completion went into the deferred queue (only after
    /// [`Self::must_defer`] said so).
    pub fn defer(&mut self) -> Deferred {
        match self {
            IoState::Open { recv: Some(op) } => {
                let op = *op;
                *self = IoState::Paused {
                    recv: op,
                    deferred: NonZeroU32::MIN,
                };
                Deferred::Paused {
                    cancel: (op == RecvOp::Multishot).then_some(op),
                }
            }
            IoState::Cancelling => {
                // Its cancel was asked for already.
                *self = IoState::Paused {
                    recv: RecvOp::Multishot,
                    deferred: NonZeroU32::MIN,
                };
                Deferred::Paused { cancel: None }
            }
            IoState::Paused { deferred, .. } => {
                *deferred = deferred.saturating_add(1);
                Deferred::Queued
            }
            IoState::Open { recv: None } | IoState::Closing { .. } | IoState::Aborted { .. } => {
                debug_assert!(false, "deferring a completion in {self:?}");
                Deferred::Queued
            }
        }
    }

    /// One deferred completion was taken out of the queue to be processed.
    /// True when it was the connection's last: it is open again and its
    /// receive may be re-armed once this one has ended. A paused multishot
    /// receive had its cancel asked for, so it comes back `Cancelling`
    /// (not cancelled again when the receive credit comes into force).
    pub fn deferred_taken(&mut self) -> bool {
        let IoState::Paused { recv, deferred } = *self else {
            // Closed meanwhile: its completions are processed as they come.
            return false;
        };
        match NonZeroU32::new(deferred.get() - 1) {
            Some(left) => {
                *self = IoState::Paused {
                    recv,
                    deferred: left,
                };
                false
            }
            None => {
                *self = match recv {
                    RecvOp::Multishot => IoState::Cancelling,
                    RecvOp::SingleShot | RecvOp::Exact => IoState::Open { recv: Some(recv) },
                };
                true
            }
        }
    }

    /// Starts a polite close; a close already under way keeps its deadline.
    pub fn begin_close(&mut self, now: Instant) {
        match *self {
            IoState::Open { recv } => {
                *self = IoState::Closing {
                    recv,
                    since: now,
                    shut_down: false,
                }
            }
            IoState::Paused { recv, .. } => {
                *self = IoState::Closing {
                    recv: Some(recv),
                    since: now,
                    shut_down: false,
                }
            }
            IoState::Cancelling => {
                *self = IoState::Closing {
                    recv: Some(RecvOp::Multishot),
                    since: now,
                    shut_down: false,
                }
            }
            IoState::Closing { .. } | IoState::Aborted { .. } => {}
        }
    }

    /// The peer is gone (EOF or a receive error, the receive's last
    /// completion): closing with nothing in flight to receive.
    pub fn peer_gone(&mut self, now: Instant) {
        self.begin_close(now);
        self.recv_ended();
    }

    /// Cuts the connection. True when the caller must call shutdown(2) now
    /// (it was not called yet).
    pub fn abort(&mut self) -> bool {
        let (recv, shut_down) = match *self {
            IoState::Open { recv } => (recv, false),
            IoState::Paused { recv, .. } => (Some(recv), false),
            IoState::Cancelling => (Some(RecvOp::Multishot), false),
            IoState::Closing {
                recv, shut_down, ..
            } => (recv, shut_down),
            IoState::Aborted { .. } => return false,
        };
        *self = IoState::Aborted { recv };
        !shut_down
    }

    /// A closing connection whose sends are done but whose receive is still
    /// in flight: shutdown(2) ends that receive. True when the caller must
    /// call it now (once per connection).
    pub fn shut_down_receive(&mut self) -> bool {
        match self {
            IoState::Closing { shut_down, .. } => !std::mem::replace(shut_down, true),
            IoState::Aborted { .. } => false,
            IoState::Open { .. } | IoState::Paused { .. } | IoState::Cancelling => {
                debug_assert!(false, "shutting down an open connection");
                self.abort()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn armed(op: RecvOp) -> IoState {
        let mut s = IoState::default();
        assert!(s.can_arm());
        s.armed(op);
        s
    }

    #[test]
    fn a_new_connection_may_arm_and_an_armed_one_may_not_arm_again() {
        let s = armed(RecvOp::Multishot);
        assert!(!s.can_arm());
        assert_eq!(s.recv(), Some(RecvOp::Multishot));
        assert!(s.is_waiting_for_peer());
        let mut s = s;
        s.recv_ended();
        assert!(s.can_arm());
        assert!(!s.is_waiting_for_peer());
    }

    #[test]
    fn only_a_full_ring_defers_and_never_a_handshake() {
        let s = armed(RecvOp::Multishot);
        assert!(!s.must_defer(false, false));
        assert!(s.must_defer(true, false));
        assert!(!s.must_defer(true, true));
        // No receive in flight: nothing to hold.
        assert!(!IoState::default().must_defer(true, false));
    }

    #[test]
    fn the_first_deferred_completion_pauses_and_cancels_a_multishot_receive() {
        let mut s = armed(RecvOp::Multishot);
        assert_eq!(
            s.defer(),
            Deferred::Paused {
                cancel: Some(RecvOp::Multishot)
            }
        );
        assert!(s.is_paused());
        assert!(!s.can_arm());
        assert!(!s.is_waiting_for_peer(), "a paused connection is not idle");
        // Later completions queue behind, whether or not the ring has room.
        assert!(s.must_defer(false, false));
        assert!(s.must_defer(false, true));
        assert_eq!(s.defer(), Deferred::Queued);
    }

    #[test]
    fn an_exact_or_single_shot_receive_is_paused_without_a_cancel() {
        for op in [RecvOp::Exact, RecvOp::SingleShot] {
            let mut s = armed(op);
            assert_eq!(s.defer(), Deferred::Paused { cancel: None }, "{op:?}");
            assert!(s.deferred_taken());
            assert_eq!(s, IoState::Open { recv: Some(op) });
        }
    }

    #[test]
    fn the_credit_cancels_a_running_multishot_once_and_it_rearms_after_its_last_completion() {
        let mut s = armed(RecvOp::Multishot);
        assert!(s.cancel_multishot(), "cancel it");
        assert_eq!(s, IoState::Cancelling);
        assert!(!s.cancel_multishot(), "asked for once");
        // Still in flight: not armed again, cancelled again on shutdown,
        // and, should its cancel find nothing, idle-timed like any receive.
        assert!(!s.can_arm());
        assert_eq!(s.recv(), Some(RecvOp::Multishot));
        assert!(s.is_waiting_for_peer());
        assert!(!s.is_paused() && !s.is_closing());
        // Its last completion (-ECANCELED, or data that raced in).
        s.recv_ended();
        assert!(s.can_arm());
    }

    #[test]
    fn only_a_running_multishot_is_cancelled_for_the_credit() {
        let t0 = Instant::now();
        let mut idle = IoState::default();
        assert!(!idle.cancel_multishot());
        assert_eq!(idle, IoState::default());
        for op in [RecvOp::SingleShot, RecvOp::Exact] {
            let mut s = armed(op);
            assert!(!s.cancel_multishot(), "{op:?} ends by itself");
            assert_eq!(s, IoState::Open { recv: Some(op) });
        }
        // Paused: its cancel was asked for when it paused.
        let mut s = armed(RecvOp::Multishot);
        s.defer();
        assert!(!s.cancel_multishot());
        assert!(s.is_paused());
        // Resumed, its receive still ending: not cancelled a second time.
        assert!(s.deferred_taken());
        assert!(!s.cancel_multishot());
        // Closing or aborted: its receive is being ended already.
        let mut s = armed(RecvOp::Multishot);
        s.begin_close(t0);
        assert!(!s.cancel_multishot());
        s.abort();
        assert!(!s.cancel_multishot());
    }

    #[test]
    fn data_that_raced_a_credit_cancel_is_held_without_a_second_cancel() {
        let mut s = armed(RecvOp::Multishot);
        assert!(s.cancel_multishot());
        // Data completions may still come; with the ring full they wait.
        assert!(!s.must_defer(false, false));
        assert!(s.must_defer(true, false));
        assert!(!s.must_defer(true, true));
        assert_eq!(s.defer(), Deferred::Paused { cancel: None });
        assert_eq!(s.defer(), Deferred::Queued);
        assert!(!s.deferred_taken());
        assert!(s.deferred_taken());
        assert_eq!(s, IoState::Cancelling);
        s.recv_ended();
        assert!(s.can_arm());
    }

    #[test]
    fn a_cancelling_connection_closes_or_aborts_with_its_receive_in_flight() {
        let t0 = Instant::now();
        let mut s = armed(RecvOp::Multishot);
        s.cancel_multishot();
        s.begin_close(t0);
        assert_eq!(
            s,
            IoState::Closing {
                recv: Some(RecvOp::Multishot),
                since: t0,
                shut_down: false
            }
        );
        let mut s = armed(RecvOp::Multishot);
        s.cancel_multishot();
        assert!(s.abort());
        assert_eq!(
            s,
            IoState::Aborted {
                recv: Some(RecvOp::Multishot)
            }
        );
        s.recv_ended();
        assert_eq!(s.recv(), None);
    }

    #[test]
    fn the_connection_resumes_when_its_last_deferred_completion_is_taken() {
        let mut s = armed(RecvOp::Multishot);
        s.defer();
        s.defer();
        s.defer();
        assert!(!s.deferred_taken());
        assert!(!s.deferred_taken());
        assert!(s.is_paused());
        assert!(s.deferred_taken(), "the third was the last");
        // Open again, its (cancelled) receive still to report its end.
        assert_eq!(s, IoState::Cancelling);
        assert!(!s.is_paused());
        assert!(!s.can_arm());
        s.recv_ended();
        assert!(s.can_arm());
    }

    #[test]
    fn closing_a_paused_connection_keeps_waiting_for_its_receive() {
        let now = Instant::now();
        let mut s = armed(RecvOp::Multishot);
        s.defer();
        s.defer();
        s.begin_close(now);
        assert!(s.is_closing());
        assert_eq!(s.recv(), Some(RecvOp::Multishot));
        assert_eq!(s.closing_since(), Some(now));
        // Its completions are no longer held, and the ones still queued do
        // not reopen it.
        assert!(!s.must_defer(true, false));
        assert!(!s.deferred_taken());
        assert!(!s.deferred_taken());
        assert!(s.is_closing());
        assert!(!s.can_arm());
        s.recv_ended();
        assert_eq!(s.recv(), None);
    }

    #[test]
    fn a_second_close_keeps_the_first_deadline() {
        let t0 = Instant::now();
        let mut s = armed(RecvOp::Multishot);
        s.begin_close(t0);
        s.begin_close(t0 + Duration::from_secs(5));
        assert_eq!(s.closing_since(), Some(t0));
        s.peer_gone(t0 + Duration::from_secs(6));
        assert_eq!(s.closing_since(), Some(t0));
        assert_eq!(s.recv(), None);
    }

    #[test]
    fn peer_gone_closes_with_nothing_in_flight() {
        let t0 = Instant::now();
        let mut s = armed(RecvOp::Exact);
        s.peer_gone(t0);
        assert_eq!(
            s,
            IoState::Closing {
                recv: None,
                since: t0,
                shut_down: false
            }
        );
    }

    #[test]
    fn shutdown_is_called_once_per_connection_whatever_the_path() {
        let t0 = Instant::now();
        let mut s = armed(RecvOp::Multishot);
        s.begin_close(t0);
        assert!(s.shut_down_receive());
        assert!(!s.shut_down_receive());
        assert!(!s.abort(), "already shut down by the polite close");
        assert_eq!(
            s,
            IoState::Aborted {
                recv: Some(RecvOp::Multishot)
            }
        );
        assert!(!s.shut_down_receive());

        let mut s = armed(RecvOp::Multishot);
        assert!(s.abort());
        assert!(!s.abort());
        assert!(!s.shut_down_receive());
    }

    #[test]
    fn an_aborted_connection_has_no_deadline_and_stays_aborted() {
        let t0 = Instant::now();
        let mut s = armed(RecvOp::Multishot);
        s.defer();
        s.begin_close(t0);
        s.abort();
        assert_eq!(s.closing_since(), None);
        assert!(s.is_closing());
        s.begin_close(t0);
        s.peer_gone(t0);
        assert_eq!(s, IoState::Aborted { recv: None });
        assert!(!s.can_arm());
    }

    #[test]
    fn aborting_a_paused_connection_keeps_its_receive_in_flight() {
        let mut s = armed(RecvOp::Multishot);
        s.defer();
        assert!(s.abort());
        assert_eq!(s.recv(), Some(RecvOp::Multishot));
        assert!(!s.deferred_taken());
        s.recv_ended();
        assert_eq!(s.recv(), None);
    }
}
