//! The order in which a shard arms its connections' receives, which is the
//! order in which they are served while buffers are short. Pure.
//!
//! While a lane is held back, the kernel may hold only a few provided
//! buffers (the receive credit, `bufring::Credit`), and a multishot
//! receive armed on a socket with data waiting takes buffers at once,
//! several in a row, before the next receive in the submission queue runs.
//! So whoever is armed first is served, and the others' receives end for
//! lack of buffers (ENOBUFS): they are *parked* until the kernel has
//! buffers again. Armed in the order they came (a connection that just had
//! its completions processed first, the parked ones after it), the same
//! connection won every turn: in session 8's bench, 8 mutual-TLS senders at
//! the maximum rate, two connections (one per shard) had 30M messages
//! written each and the other six about 100k each, while syslog-ng served
//! all eight alike. Their senders' data waited in the kernel meanwhile,
//! which ringest's own latency histogram does not see but loadgen's does.
//!
//! The rule here, as in any fair queue: a parked connection goes before any
//! connection that was served since, and parked connections go in the order
//! they were parked. While they cannot go (the kernel has no buffers, or
//! held completions keep most of them), a served connection whose receive
//! would take buffers waits behind them instead of taking what is there.
//! Receives that take no provided buffer (a handshake's record-exact read)
//! are never held back.
//!
//! The order only counts if every receive goes through it: so while the
//! credit is in force a receive is single-shot (one buffer per arming), and
//! when the credit comes into force the multishot receives armed before it
//! are cancelled (`Shard::cancel_multishots`). Left running, one that keeps
//! up with its socket took each buffer given back until it ended, and its
//! connection got about 2.5× the others' share.

/// Receives to arm at the end of this turn, and parked connections.
#[derive(Debug, Default)]
pub struct ArmQueue {
    /// To arm at the end of this turn, in this order.
    ready: Vec<u32>,
    /// Receives that ended for lack of buffers, first parked first.
    parked: Vec<u32>,
    /// Scratch for [`Self::take`], kept to save an allocation per turn.
    order: Vec<u32>,
}

impl ArmQueue {
    /// `slot`'s receive is to be armed at the end of this turn.
    pub fn ready(&mut self, slot: u32) {
        self.ready.push(slot);
    }

    /// `slot`'s receive ended for lack of buffers.
    pub fn park(&mut self, slot: u32) {
        self.parked.push(slot);
    }

    #[cfg(test)]
    fn has_parked(&self) -> bool {
        !self.parked.is_empty()
    }

    /// Moves the parked connections that may go (not `held_back`: with
    /// several lanes, a connection whose lane is full stays parked) to the
    /// front of this turn's receives.
    pub fn release_parked(&mut self, held_back: impl Fn(u32) -> bool) {
        if self.parked.is_empty() {
            return;
        }
        self.order.clear();
        let mut kept = 0;
        for i in 0..self.parked.len() {
            let slot = self.parked[i];
            if held_back(slot) {
                self.parked[kept] = slot;
                kept += 1;
            } else {
                self.order.push(slot);
            }
        }
        self.parked.truncate(kept);
        self.order.append(&mut self.ready);
        std::mem::swap(&mut self.order, &mut self.ready);
    }

    /// The receives to arm at the end of a turn, in order. `buffers`: the
    /// kernel has buffers to spare, so parked connections go first (see
    /// [`Self::release_parked`]); else, while any are parked, the receives
    /// that `take_buffers` join the back of the parked queue.
    pub fn take(
        &mut self,
        buffers: bool,
        take_buffers: impl Fn(u32) -> bool,
        held_back: impl Fn(u32) -> bool,
    ) -> Vec<u32> {
        if buffers {
            self.release_parked(held_back);
        } else if !self.parked.is_empty() {
            let parked = &mut self.parked;
            self.ready.retain(|&slot| {
                let wait = take_buffers(slot);
                if wait {
                    parked.push(slot);
                }
                !wait
            });
        }
        std::mem::take(&mut self.ready)
    }

    /// Gives back the vector [`Self::take`] returned, emptied, so the
    /// next turn reuses its allocation.
    pub fn recycle(&mut self, mut armed: Vec<u32>) {
        armed.clear();
        if self.ready.is_empty() && armed.capacity() > self.ready.capacity() {
            self.ready = armed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(q: &mut ArmQueue, buffers: bool) -> Vec<u32> {
        q.take(buffers, |_| true, |_| false)
    }

    #[test]
    fn without_parked_connections_receives_go_in_the_order_they_came() {
        let mut q = ArmQueue::default();
        q.ready(3);
        q.ready(1);
        assert_eq!(take(&mut q, false), vec![3, 1]);
        assert_eq!(take(&mut q, true), Vec::<u32>::new());
    }

    #[test]
    fn a_starved_connection_goes_before_one_that_was_just_served() {
        let mut q = ArmQueue::default();
        q.park(5);
        q.park(6);
        // Connection 1's completions were processed this turn.
        q.ready(1);
        assert_eq!(take(&mut q, true), vec![5, 6, 1]);
        assert!(!q.has_parked());
    }

    #[test]
    fn while_buffers_are_short_a_served_connection_queues_behind_the_starved() {
        let mut q = ArmQueue::default();
        q.park(5);
        q.ready(1);
        assert_eq!(take(&mut q, false), Vec::<u32>::new());
        q.ready(2);
        assert_eq!(take(&mut q, true), vec![5, 1, 2]);
    }

    #[test]
    fn receives_that_take_no_provided_buffer_never_wait() {
        let mut q = ArmQueue::default();
        q.park(5);
        q.ready(1);
        q.ready(7); // a handshake's exact read
        assert_eq!(q.take(false, |s| s != 7, |_| false), vec![7]);
        assert_eq!(take(&mut q, true), vec![5, 1]);
    }

    #[test]
    fn a_connection_whose_lane_is_full_stays_parked_in_its_place() {
        let mut q = ArmQueue::default();
        q.park(4);
        q.park(5);
        q.park(6);
        q.ready(1);
        assert_eq!(q.take(true, |_| true, |s| s == 5), vec![4, 6, 1]);
        assert!(q.has_parked());
        q.park(8);
        assert_eq!(take(&mut q, true), vec![5, 8]);
    }

    /// Eight connections, buffers for one per turn: whoever is armed first
    /// takes them, the rest are parked. Every connection is served within
    /// eight turns, where arming in arrival order served only the first.
    #[test]
    fn with_buffers_for_one_connection_per_turn_every_connection_takes_its_turn() {
        let mut q = ArmQueue::default();
        for slot in 0..8 {
            q.ready(slot);
        }
        let mut served = Vec::new();
        for _ in 0..16 {
            let order = take(&mut q, true);
            let mut order = order.into_iter();
            // The first takes the buffers and is served...
            if let Some(first) = order.next() {
                served.push(first);
                q.ready(first);
            }
            // ...the others' receives end with ENOBUFS.
            for slot in order {
                q.park(slot);
            }
        }
        let mut first_eight = served[..8].to_vec();
        first_eight.sort_unstable();
        assert_eq!(first_eight, (0..8).collect::<Vec<u32>>());
        assert_eq!(served[8..], served[..8]);
    }

    #[test]
    fn a_recycled_vector_is_reused() {
        let mut q = ArmQueue::default();
        for slot in 0..100 {
            q.ready(slot);
        }
        let armed = take(&mut q, true);
        let cap = armed.capacity();
        q.recycle(armed);
        assert!(q.ready.capacity() >= cap);
        assert!(q.ready.is_empty());
    }
}
