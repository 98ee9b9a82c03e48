//! One upstream connection's queue and confirmation state, without IO.
//!
//! Frames wait in `pending` until they are written. What happens to a frame
//! once its bytes are wholly handed to the kernel depends on whether the
//! server has shown that it accepted this connection:
//! - **confirmed** (TCP, TLS 1.2, or TLS 1.3 after confirmation): the frame
//!   counts as delivered and is dropped. RFC 5425 has no application
//!   acknowledgement, so this is as far as a sender can know.
//! - **unconfirmed** (TLS 1.3, new connection): the frame is *held*. Under
//!   TLS 1.3 the client's handshake ends before the server has checked the
//!   client certificate; a server that refuses it sends an alert only after
//!   the client may already have written. Held frames go back to the front
//!   of `pending`, in order, when the connection fails (any failure: a
//!   close is no proof of acceptance, so a duplicate is preferred to a
//!   loss); they are released as delivered once the server sends any record
//!   after the handshake (a NewSessionTicket, which a server sends only
//!   after checking the client certificate; `openssl s_server` does by
//!   default, syslog-ng 3.38, rsyslog 8.2302 and ringest do not) or once
//!   `confirm_ms` passed without an alert.
//!
//! Writes go out in chunks of whole frames (at most one TLS record of
//! plaintext, unless a frame is larger), so a chunk the kernel did not wholly
//! take is an incomplete record the server cannot decrypt: it is resent
//! whole, and nothing is duplicated.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Plaintext bytes per chunk: one TLS record.
pub const CHUNK_BYTES_MAX: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirm {
    Confirmed,
    /// Held frames are released at this instant if no alert came.
    Until(Instant),
}

#[derive(Debug)]
pub struct Session {
    pending: VecDeque<Vec<u8>>,
    held: VecDeque<Vec<u8>>,
    /// None while there is no connection.
    state: Option<Confirm>,
    /// Frames of the chunk being written (taken from `pending`'s front).
    in_chunk: usize,
    confirm_window: Duration,
    /// Frames delivered since the session began (written on a confirmed
    /// connection, or released by a confirmation).
    delivered: u64,
}

impl Session {
    pub fn new(confirm_window: Duration) -> Session {
        Session {
            pending: VecDeque::new(),
            held: VecDeque::new(),
            state: None,
            in_chunk: 0,
            confirm_window,
            delivered: 0,
        }
    }

    pub fn push(&mut self, frame: Vec<u8>) {
        self.pending.push_back(frame);
    }

    /// Nothing left to write and nothing held.
    pub fn is_done(&self) -> bool {
        self.pending.is_empty() && self.held.is_empty()
    }

    pub fn is_connected(&self) -> bool {
        self.state.is_some()
    }

    pub fn is_confirmed(&self) -> bool {
        self.state == Some(Confirm::Confirmed)
    }

    /// When held frames are released without news from the server.
    pub fn confirm_deadline(&self) -> Option<Instant> {
        match self.state {
            Some(Confirm::Until(t)) => Some(t),
            _ => None,
        }
    }

    /// A new connection is up; `needs_confirm` for TLS 1.3.
    pub fn connected(&mut self, now: Instant, needs_confirm: bool) {
        assert!(
            self.held.is_empty() && self.in_chunk == 0,
            "held frames from an old connection"
        );
        self.state = Some(if needs_confirm && !self.confirm_window.is_zero() {
            Confirm::Until(now + self.confirm_window)
        } else {
            Confirm::Confirmed
        });
    }

    /// Copies the next chunk of whole frames into `out` (cleared first);
    /// false when there is nothing to write. Call [`written`](Self::written)
    /// once the kernel took all of it.
    pub fn next_chunk(&mut self, out: &mut Vec<u8>) -> bool {
        assert!(self.state.is_some(), "writing without a connection");
        out.clear();
        self.in_chunk = 0;
        for f in &self.pending {
            if self.in_chunk > 0 && out.len() + f.len() > CHUNK_BYTES_MAX {
                break;
            }
            out.extend_from_slice(f);
            self.in_chunk += 1;
        }
        self.in_chunk > 0
    }

    /// The chunk is wholly in the kernel. Returns the frames now delivered.
    pub fn written(&mut self) -> u64 {
        let n = std::mem::take(&mut self.in_chunk);
        let frames = self.pending.drain(..n);
        if self.state == Some(Confirm::Confirmed) {
            let n = frames.count() as u64;
            self.delivered += n;
            n
        } else {
            self.held.extend(frames);
            0
        }
    }

    /// The server sent a record after the handshake: it accepted us.
    /// Returns the frames released as delivered.
    pub fn server_spoke(&mut self) -> u64 {
        self.confirm()
    }

    /// Releases the held frames once the window passed. Returns how many.
    pub fn tick(&mut self, now: Instant) -> u64 {
        match self.state {
            Some(Confirm::Until(t)) if now >= t => self.confirm(),
            _ => 0,
        }
    }

    fn confirm(&mut self) -> u64 {
        if self.state.is_none() {
            return 0;
        }
        self.state = Some(Confirm::Confirmed);
        let n = self.held.len() as u64;
        self.held.clear();
        self.delivered += n;
        n
    }

    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// After [`failed`](Self::failed): every frame not delivered, in order,
    /// to go elsewhere (the disk buffer).
    pub fn take_pending(&mut self) -> Vec<Vec<u8>> {
        assert!(
            self.held.is_empty() && self.state.is_none(),
            "take_pending on a live connection"
        );
        self.pending.drain(..).collect()
    }

    /// The connection failed: held frames go back to the front, in order.
    /// Returns how many were put back.
    pub fn failed(&mut self) -> u64 {
        self.state = None;
        self.in_chunk = 0;
        let n = self.held.len() as u64;
        while let Some(f) = self.held.pop_back() {
            self.pending.push_front(f);
        }
        n
    }

    /// Gives up: everything not delivered, as (messages, bytes).
    pub fn abandon(&mut self) -> (u64, u64) {
        self.failed();
        let bytes = self.pending.iter().map(|f| f.len() as u64).sum();
        let n = self.pending.len() as u64;
        self.pending.clear();
        (n, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(frames: &[&str]) -> Session {
        let mut s = Session::new(Duration::from_millis(500));
        for f in frames {
            s.push(f.as_bytes().to_vec());
        }
        s
    }

    fn drain(s: &mut Session) -> (String, u64) {
        let mut out = Vec::new();
        let mut wire = String::new();
        let mut delivered = 0;
        while s.next_chunk(&mut out) {
            wire.push_str(std::str::from_utf8(&out).expect("utf8"));
            delivered += s.written();
        }
        (wire, delivered)
    }

    #[test]
    fn confirmed_connection_delivers_on_write() {
        let mut s = session(&["a", "b"]);
        s.connected(Instant::now(), false);
        assert_eq!(drain(&mut s), ("ab".into(), 2));
        assert!(s.is_done());
    }

    #[test]
    fn tls13_refusal_after_the_handshake_puts_held_frames_back_in_order() {
        let t0 = Instant::now();
        let mut s = session(&["1", "2", "3"]);
        s.connected(t0, true);
        assert_eq!(drain(&mut s), ("123".into(), 0));
        assert!(!s.is_done(), "held until confirmed");
        s.push(b"4".to_vec());
        // The server's unknown_ca alert arrives: all four wait, in order.
        assert_eq!(s.failed(), 3);
        s.connected(t0, false);
        assert_eq!(drain(&mut s), ("1234".into(), 4));
    }

    #[test]
    fn a_record_from_the_server_confirms_at_once() {
        let t0 = Instant::now();
        let mut s = session(&["1"]);
        s.connected(t0, true);
        drain(&mut s);
        assert_eq!(s.server_spoke(), 1);
        assert!(s.is_done() && s.is_confirmed());
        s.push(b"2".to_vec());
        assert_eq!(drain(&mut s).1, 1, "confirmed: delivered on write");
    }

    #[test]
    fn the_window_passing_without_an_alert_confirms() {
        let t0 = Instant::now();
        let mut s = session(&["1", "2"]);
        s.connected(t0, true);
        drain(&mut s);
        assert_eq!(s.tick(t0 + Duration::from_millis(499)), 0);
        assert_eq!(s.tick(t0 + Duration::from_millis(500)), 2);
        assert_eq!(s.failed(), 0, "nothing held after confirmation");
    }

    #[test]
    fn a_chunk_the_kernel_did_not_take_is_resent_whole() {
        let mut s = session(&["aa", "bb"]);
        s.connected(Instant::now(), false);
        let mut out = Vec::new();
        assert!(s.next_chunk(&mut out));
        // The write failed: `written` is never called for this chunk.
        s.failed();
        s.connected(Instant::now(), false);
        assert_eq!(drain(&mut s), ("aabb".into(), 2));
    }

    #[test]
    fn chunks_hold_whole_frames_up_to_one_record_and_a_big_frame_alone() {
        let big = vec![b'x'; CHUNK_BYTES_MAX + 10];
        let mut s = Session::new(Duration::ZERO);
        s.push(vec![b'a'; CHUNK_BYTES_MAX - 5]);
        s.push(vec![b'b'; 10]);
        s.push(big.clone());
        s.connected(Instant::now(), true);
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        while s.next_chunk(&mut out) {
            sizes.push(out.len());
            s.written();
        }
        assert_eq!(sizes, [CHUNK_BYTES_MAX - 5, 10, big.len()]);
        assert!(s.is_confirmed(), "confirm_ms = 0 trusts the handshake");
    }

    #[test]
    fn abandon_counts_pending_and_held() {
        let mut s = session(&["12", "345"]);
        s.connected(Instant::now(), true);
        let mut out = Vec::new();
        s.next_chunk(&mut out);
        s.written();
        s.push(b"6".to_vec());
        assert_eq!(s.abandon(), (3, 6));
        assert!(s.is_done());
    }
}
