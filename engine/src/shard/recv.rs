//! The data path's completions: bytes received (multishot or record-exact)
//! go to the connection's state machine, what it returns is sent, and the
//! kernel takes the socket once a kTLS handshake has been sent.

use super::*;

impl Shard {
    /// A multishot receive completion, its bytes in the provided buffer
    /// its flags name.
    pub(super) fn on_recv(&mut self, slot: u32, gen: u32, res: i32, flags: u32, now_ns: u64) {
        self.on_recv_held(slot, gen, res, flags, None, now_ns);
    }

    /// [`on_recv`](Self::on_recv), or for a held completion whose bytes
    /// were `copied` out of its buffer (given back already) because its
    /// lane was at its cap of held buffers.
    pub(super) fn on_recv_held(
        &mut self,
        slot: u32,
        gen: u32,
        res: i32,
        flags: u32,
        mut copied: Option<Box<[u8]>>,
        now_ns: u64,
    ) {
        let bid = lane::kept_buffer(flags, copied.is_some());
        let more = cqueue::more(flags);
        let Some(e) = self
            .slots
            .get_mut(slot as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.entry.as_mut())
        else {
            // A completion for a connection already gone: just return its buffer.
            if let Some(bid) = bid {
                self.bufs.give_back(bid);
            }
            return;
        };
        if !more {
            e.io.recv_ended();
        }
        if res > 0 {
            let data = match (copied.as_deref_mut(), bid) {
                (Some(c), _) => c,
                (None, Some(bid)) => self.bufs.slice_mut(bid, res as usize),
                (None, None) => {
                    debug_assert!(false, "recv with data but no buffer");
                    return;
                }
            };
            let source = e.source as usize;
            e.last_recv = self.turn_now;
            let max_send_queue_bytes = self.shared.sources[source].config.max_send_queue_bytes;
            let lane = lane::lane_for(&self.lane_of_source, e.source);
            let batcher = &mut self.lanes[lane].batcher;
            let result = feed(e, &mut self.out_scratch, max_send_queue_bytes, |e, out| {
                e.conn.on_data(data, now_ns, batcher, out)
            });
            if let Some(bid) = bid {
                self.bufs.give_back(bid);
            }
            self.settle(slot, source, result);
            self.flush_send(slot);
        } else if res == -libc::ECANCELED && !e.io.is_closing() {
            // Our own cancel (back-pressure paused this connection, or the
            // receive credit came into force): the receive ended, the
            // connection did not. Re-armed on resume, or at the end of this
            // turn in the fair order (single-shot, under the credit).
            if let Some(bid) = bid {
                self.bufs.give_back(bid);
            }
        } else if res < 0 && e.conn.is_offloaded() && !e.io.is_closing() && -res != libc::ENOBUFS {
            if let Some(bid) = bid {
                self.bufs.give_back(bid);
            }
            if -res == libc::EIO {
                // Not application data at the head of the socket.
                self.on_ktls_control(slot, now_ns);
            } else if let Some(reason) = e.conn.on_ktls_recv_error(-res) {
                // The kernel refused a record (garbage, forgery): every
                // message before it has been framed already.
                self.refuse(slot, reason);
            } else {
                self.on_peer_gone(slot, res, now_ns);
                return;
            }
        } else if res == 0 || (res < 0 && -res != libc::ENOBUFS) {
            if let Some(bid) = bid {
                self.bufs.give_back(bid);
            }
            self.on_peer_gone(slot, res, now_ns);
            return;
        }
        // Multishot ended: for lack of buffers, parked until the kernel has
        // some again (the end of the turn decides); else re-armed after this
        // turn's buffers are given back.
        let Some(e) = self.slots[slot as usize].entry.as_ref() else {
            return;
        };
        if e.io.can_arm() {
            if res == -libc::ENOBUFS {
                self.arms.park(slot);
            } else {
                self.arms.ready(slot);
            }
        }
        if self.slots[slot as usize]
            .entry
            .as_ref()
            .is_some_and(|e| e.io.is_closing() && e.io.recv().is_none())
        {
            self.finish_close(slot);
        }
    }

    /// A record-exact handshake read completed.
    pub(super) fn on_recv_exact(&mut self, slot: u32, gen: u32, res: i32, now_ns: u64) {
        let Some(e) = self
            .slots
            .get_mut(slot as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.entry.as_mut())
        else {
            return;
        };
        e.io.recv_ended();
        if res <= 0 {
            if -res == libc::ECANCELED || e.io.is_closing() {
                self.finish_close(slot);
            } else {
                self.on_peer_gone(slot, res, now_ns);
            }
            return;
        }
        let source = e.source as usize;
        e.last_recv = self.turn_now;
        let max_send_queue_bytes = self.shared.sources[source].config.max_send_queue_bytes;
        let lane = lane::lane_for(&self.lane_of_source, e.source);
        let batcher = &mut self.lanes[lane].batcher;
        let result = feed(e, &mut self.out_scratch, max_send_queue_bytes, |e, out| {
            e.conn.on_exact_read(res as usize, now_ns, batcher, out)
        });
        self.settle(slot, source, result);
        self.flush_send(slot);
        self.maybe_enable_ktls(slot);
        let Some(e) = self.slots[slot as usize].entry.as_ref() else {
            return;
        };
        if e.io.is_closing() {
            self.finish_close(slot);
        } else {
            // The next exact read, or the multishot once the handshake is over.
            self.arms.ready(slot);
        }
    }

    /// Once the keys are ready and the last handshake flight has left, the
    /// kernel takes the socket; then the multishot receive is armed.
    pub(super) fn maybe_enable_ktls(&mut self, slot: u32) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        let sent = e.send.is_empty();
        if e.io.is_closing() || !sent || !e.conn.is_ktls_pending() {
            return;
        }
        let source = e.source as usize;
        let result = e.conn.enable_ktls(&mut FdSocket(e.fd));
        self.take_conn_counters(slot, source);
        match result {
            Ok(()) => self.arms.ready(slot),
            Err(reason) => self.refuse(slot, reason),
        }
    }

    /// EIO on an offloaded socket: a control record waits at its head.
    pub(super) fn on_ktls_control(&mut self, slot: u32, now_ns: u64) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        let source = e.source as usize;
        let lane = lane::lane_for(&self.lane_of_source, e.source);
        let result =
            e.conn
                .on_ktls_control(&mut FdSocket(e.fd), now_ns, &mut self.lanes[lane].batcher);
        self.settle(slot, source, result);
    }

    /// After the connection's state machine ran: its counters into the
    /// source's, then what it decided (go on, the peer closed, refuse).
    fn settle(&mut self, slot: u32, source: usize, result: Result<Outcome, CloseReason>) {
        self.take_conn_counters(slot, source);
        match result {
            Ok(Outcome::Continue) => {}
            Ok(Outcome::PeerClosed) => self.begin_close(slot),
            Err(reason) => self.refuse(slot, reason),
        }
    }

    /// Queues bytes the connection produced; a peer that lets more than
    /// `max_send_queue_bytes` pile up by never reading is closed.
    pub(super) fn queue_out(
        e: &mut Entry,
        out: &mut Vec<u8>,
        max_send_queue_bytes: usize,
    ) -> Result<Outcome, CloseReason> {
        e.send
            .queue(out, max_send_queue_bytes)
            .map(|()| Outcome::Continue)
            .map_err(CloseReason::Local)
    }

    /// Starts a send of whatever is waiting, if none is in flight.
    pub(super) fn flush_send(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        let fd = e.fd;
        let Some(rest) = e.send.start() else {
            return;
        };
        // The slice stays put until on_send (SendQueue keeps it unmoved).
        let sqe = opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(KIND_SEND, slot, gen));
        self.push_sqe(sqe);
    }

    pub(super) fn on_send(&mut self, slot: u32, gen: u32, res: i32) {
        let Some(e) = self.entry_mut(slot, gen) else {
            return;
        };
        // A failed send means the peer is gone; receiving decides the rest.
        e.send.on_sent(res);
        let closing = e.io.is_closing();
        self.flush_send(slot);
        if closing {
            self.finish_close(slot);
        } else {
            self.maybe_enable_ktls(slot);
        }
    }
}

/// Runs the connection's state machine on what arrived (`step`), then
/// queues what it wants sent. A closing connection takes nothing more.
fn feed(
    e: &mut Entry,
    out_scratch: &mut Vec<u8>,
    max_send_queue_bytes: usize,
    step: impl FnOnce(&mut Entry, &mut Vec<u8>) -> Result<Outcome, CloseReason>,
) -> Result<Outcome, CloseReason> {
    if e.io.is_closing() {
        return Ok(Outcome::Continue);
    }
    let mut out = std::mem::take(out_scratch);
    let r = step(e, &mut out);
    let r = Shard::queue_out(e, &mut out, max_send_queue_bytes).and(r);
    *out_scratch = out;
    r
}
