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
//! ```
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
    /// idle), for `idle_timeout_ms`.
    pub fn is_waiting_for_peer(&self) -> bool {
        matches!(self, IoState::Open { recv: Some(_) })
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
        }
    }

    /// Whether a receive completion must wait in the deferred queue: earlier
    /// ones wait (order), or the writer's ring is full and the connection
    /// could produce frames. A closing connection's completions are never
    /// held: they only end its receive.
    pub fn must_defer(&self, ring_full: bool, handshaking: bool) -> bool {
        match self {
            IoState::Paused { .. } => true,
            IoState::Open { recv: Some(_) } => ring_full && !handshaking,
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
    /// receive may be re-armed once this one has ended.
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
                *self = IoState::Open { recv: Some(recv) };
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
            IoState::Open { .. } | IoState::Paused { .. } => {
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
    fn an_exact_receive_is_paused_without_a_cancel() {
        let mut s = armed(RecvOp::Exact);
        assert_eq!(s.defer(), Deferred::Paused { cancel: None });
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
        // Open again, its receive still to report its end.
        assert_eq!(
            s,
            IoState::Open {
                recv: Some(RecvOp::Multishot)
            }
        );
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
