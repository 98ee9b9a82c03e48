//! One connection's bytes to send (handshake flights, alerts, KeyUpdate
//! answers), without IO: the shard asks for the next slice to send, and
//! reports how much of it the kernel took. One send is in flight at a
//! time; what is produced meanwhile waits behind it, in order.
//!
//! A peer that never reads lets these bytes pile up (every KeyUpdate with
//! update_requested earns an answer it does not read), so the queue is
//! bounded by `max_send_queue_bytes`: past it, queueing fails and the
//! connection is closed.

use crate::conn::LocalClose;

#[derive(Default)]
pub struct SendQueue {
    /// The bytes of the send in flight (or the next one), from `off` on.
    sending: Vec<u8>,
    off: usize,
    /// Bytes produced while a send was in flight.
    waiting: Vec<u8>,
    in_flight: bool,
}

impl SendQueue {
    /// Bytes queued and not yet taken by the kernel.
    pub fn queued_bytes(&self) -> usize {
        self.sending.len() - self.off + self.waiting.len()
    }

    pub fn in_flight(&self) -> bool {
        self.in_flight
    }

    /// Nothing in flight and nothing left to send.
    pub fn is_empty(&self) -> bool {
        !self.in_flight && self.queued_bytes() == 0
    }

    /// Takes `out` (leaving it empty). Fails, dropping `out`, when the queue
    /// would hold more than `max_send_queue_bytes`.
    pub fn queue(
        &mut self,
        out: &mut Vec<u8>,
        max_send_queue_bytes: usize,
    ) -> Result<(), LocalClose> {
        if out.is_empty() {
            return Ok(());
        }
        if self.queued_bytes() + out.len() > max_send_queue_bytes {
            out.clear();
            return Err(LocalClose::SendQueueFull {
                max_send_queue_bytes,
            });
        }
        if !self.in_flight && self.off >= self.sending.len() && self.waiting.is_empty() {
            self.sending.clear();
            self.off = 0;
            self.sending.append(out);
        } else {
            self.waiting.append(out);
        }
        Ok(())
    }

    /// The next bytes to send, now marked in flight; `None` while a send is
    /// in flight or nothing waits. The slice stays valid and unmoved until
    /// [`SendQueue::on_sent`] (the kernel reads it meanwhile).
    pub fn start(&mut self) -> Option<&[u8]> {
        if self.in_flight {
            return None;
        }
        if self.off >= self.sending.len() {
            if self.waiting.is_empty() {
                return None;
            }
            std::mem::swap(&mut self.sending, &mut self.waiting);
            self.waiting.clear();
            self.off = 0;
        }
        self.in_flight = true;
        Some(&self.sending[self.off..])
    }

    /// The send in flight completed with `res` (bytes sent, or -errno). On
    /// an error nothing more can be sent: everything queued is dropped.
    pub fn on_sent(&mut self, res: i32) {
        debug_assert!(self.in_flight, "a completion without a send");
        self.in_flight = false;
        match usize::try_from(res) {
            Ok(n) => {
                self.off += n;
                debug_assert!(self.off <= self.sending.len());
                if self.off >= self.sending.len() {
                    // Freed, not kept: idle connections hold no buffer.
                    self.sending = Vec::new();
                    self.off = 0;
                }
            }
            Err(_) => self.discard(),
        }
    }

    /// Drops everything not in flight (the connection is being cut).
    pub fn discard(&mut self) {
        self.waiting = Vec::new();
        if !self.in_flight {
            self.sending = Vec::new();
            self.off = 0;
        }
    }

    /// Heap bytes held (for memory accounting).
    pub fn capacity(&self) -> usize {
        self.sending.capacity() + self.waiting.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_UPDATE_ANSWER_BYTES: usize = 22;

    /// A peer that never reads: the first answer's send never completes,
    /// and every further KeyUpdate request queues another answer. The queue
    /// refuses at the limit instead of growing.
    #[test]
    fn a_peer_that_never_reads_fills_the_queue_to_its_limit_and_no_further() {
        let max_send_queue_bytes = 32 * 1024;
        let mut q = SendQueue::default();
        let mut answers = 0usize;
        let mut refused = None;
        for _ in 0..1_000_000 {
            let mut out = vec![0x17; KEY_UPDATE_ANSWER_BYTES];
            match q.queue(&mut out, max_send_queue_bytes) {
                Ok(()) => answers += 1,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
            assert!(out.is_empty());
            // The shard starts a send whenever none is in flight; the
            // first never completes.
            let _ = q.start();
        }
        assert_eq!(
            refused,
            Some(LocalClose::SendQueueFull {
                max_send_queue_bytes
            })
        );
        assert_eq!(answers, max_send_queue_bytes / KEY_UPDATE_ANSWER_BYTES);
        assert!(q.queued_bytes() <= max_send_queue_bytes);
        assert!(q.capacity() <= 2 * max_send_queue_bytes + 64);
    }

    #[test]
    fn order_is_kept_across_partial_sends_and_waiting_bytes() {
        let mut q = SendQueue::default();
        q.queue(&mut b"abcdef".to_vec(), 1024).unwrap();
        assert_eq!(q.start(), Some(&b"abcdef"[..]));
        assert_eq!(q.start(), None, "one send at a time");
        q.queue(&mut b"gh".to_vec(), 1024).unwrap();
        q.on_sent(4);
        assert_eq!(q.start(), Some(&b"ef"[..]), "the rest of the first");
        // Produced between a completion and the next start: still behind.
        q.on_sent(2);
        q.queue(&mut b"ij".to_vec(), 1024).unwrap();
        assert_eq!(q.start(), Some(&b"ghij"[..]));
        q.on_sent(4);
        assert!(q.is_empty());
        assert_eq!(q.capacity(), 0, "no buffer kept when idle");
    }

    #[test]
    fn a_failed_send_drops_what_is_queued() {
        let mut q = SendQueue::default();
        q.queue(&mut b"abc".to_vec(), 1024).unwrap();
        let _ = q.start();
        q.queue(&mut b"def".to_vec(), 1024).unwrap();
        q.on_sent(-libc::EPIPE);
        assert!(q.is_empty());
        assert_eq!(q.start(), None);
    }
}
