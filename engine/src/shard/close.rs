//! Closing connections: refusals a peer caused (counted, logged once), the
//! polite close and the abort, the handshake, idle, close and drain
//! deadlines, and freeing the slot once nothing in flight refers to it.

use super::*;

impl Shard {
    /// Returns true when the shard may exit: no connection left, or the drain time is over.
    pub(super) fn drain_step(&mut self, now: Instant) -> bool {
        let since = *self.draining_since.get_or_insert_with(|| {
            log::debug!("shard {}: draining {} connections", self.id, self.live);
            now
        });
        for i in 0..self.listeners.len() {
            // Shutting the listener down stops new connections and ends the
            // multishot accept; its completion is ignored while draining.
            if let Some(sock) = self.listeners[i].socket.take() {
                let _ = sock.shutdown(std::net::Shutdown::Both);
                self.push_cancel(user_data(KIND_ACCEPT, i as u32, 0), i as u32, 0);
            }
        }
        let timeout = Duration::from_millis(self.shared.config.drain_timeout_ms);
        if self.live > 0 && now.duration_since(since) >= timeout {
            for slot in 0..self.slots.len() as u32 {
                if self.slots[slot as usize]
                    .entry
                    .as_ref()
                    .is_some_and(|e| !e.io.is_closing())
                {
                    self.count_close(slot, LocalClose::DrainTimeout.label());
                    self.begin_close(slot);
                }
            }
        }
        // A second of grace after the drain timeout for cancels to complete.
        self.live == 0 || now.duration_since(since) >= timeout + Duration::from_secs(1)
    }

    /// Handshake, idle and close deadlines, checked every 100 ms.
    pub(super) fn check_timeouts(&mut self, now: Instant) {
        for slot in 0..self.slots.len() as u32 {
            let Some(e) = self.slots[slot as usize].entry.as_ref() else {
                continue;
            };
            let cfg = &self.shared.sources[e.source as usize].config;
            if let Some(since) = e.io.closing_since() {
                if now.duration_since(since) >= Duration::from_millis(cfg.close_timeout_ms) {
                    let close_timeout_ms = cfg.close_timeout_ms;
                    self.count_close(slot, LocalClose::CloseTimeout { close_timeout_ms }.label());
                    self.abort(slot);
                }
                continue;
            }
            if e.io.is_closing() {
                continue;
            }
            if e.conn.is_handshaking() {
                if now.duration_since(e.accepted) >= Duration::from_millis(cfg.handshake_timeout_ms)
                {
                    self.refuse(slot, CloseReason::Handshake(HandshakeFailure::Timeout));
                }
            } else if cfg.idle_timeout_ms > 0
                // Only while we read from it: a connection paused by
                // back-pressure (or waiting for buffers) is not idle.
                && e.io.is_waiting_for_peer()
                && now.duration_since(e.last_recv) >= Duration::from_millis(cfg.idle_timeout_ms)
            {
                let idle_timeout_ms = cfg.idle_timeout_ms;
                self.refuse(
                    slot,
                    CloseReason::Local(LocalClose::IdleTimeout { idle_timeout_ms }),
                );
            }
        }
    }

    /// Cuts a connection that cannot finish closing politely: whatever is
    /// queued to send is dropped and the socket is shut down, which ends
    /// the operations still in flight; the slot is freed when they complete.
    pub(super) fn abort(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        e.send.discard();
        if e.io.abort() {
            // SAFETY: fd is this connection's socket, still open.
            unsafe { libc::shutdown(e.fd, libc::SHUT_RDWR) };
        }
        let mut cancels = Vec::new();
        if e.send.in_flight() {
            cancels.push(user_data(KIND_SEND, slot, gen));
        }
        if let Some(op) = e.io.recv() {
            cancels.push(user_data(recv_kind(op), slot, gen));
        }
        for ud in cancels {
            self.push_cancel(ud, slot, gen);
        }
        self.finish_close(slot);
    }

    /// EOF or a receive error: keep what was decoded, flush the decoder, close.
    pub(super) fn on_peer_gone(&mut self, slot: u32, res: i32, now_ns: u64) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        let source = e.source as usize;
        if !e.io.is_closing() {
            let lane = lane::lane_for(&self.lane_of_source, e.source);
            let result = e.conn.on_eof(now_ns, &mut self.lanes[lane].batcher);
            self.take_conn_counters(slot, source);
            if let Err(reason) = result {
                self.refuse(slot, reason);
            } else if res < 0 {
                let local = if -res == libc::ECONNRESET {
                    LocalClose::Reset
                } else {
                    LocalClose::RecvError(-res)
                };
                self.count_close(slot, local.label());
                self.log_close(slot, &local.to_string());
            }
        }
        let now = self.turn_now;
        if let Some(e) = self.slots[slot as usize].entry.as_mut() {
            // A send still in flight gets close_timeout_ms like any close.
            e.io.peer_gone(now);
        }
        self.finish_close(slot);
    }

    pub(super) fn count_close(&mut self, slot: u32, label: &'static str) {
        let Some(e) = self.slots[slot as usize].entry.as_ref() else {
            return;
        };
        self.shared.stats.sources[e.source as usize]
            .connection_errors
            .inc(label);
    }

    pub(super) fn log_close(&mut self, slot: u32, why: &str) {
        let Some(e) = self.slots[slot as usize].entry.as_ref() else {
            return;
        };
        if self.ratelog.allow(Instant::now()) {
            let src = &self.shared.sources[e.source as usize].config.name;
            log::warn!(
                "{} source {src}: {why}; connection closed",
                e.conn.meta().peer
            );
        }
    }

    /// Closes a connection for a reason a peer caused: counted, logged once.
    pub(super) fn refuse(&mut self, slot: u32, reason: CloseReason) {
        let Some(e) = self.slots[slot as usize].entry.as_ref() else {
            return;
        };
        let stats = &self.shared.stats.sources[e.source as usize];
        match &reason {
            CloseReason::Handshake(h) | CloseReason::Refused(h, _) => {
                stats.handshake_failures.inc(h.label())
            }
            CloseReason::Framing(f) => stats.framing_errors.inc(f.label()),
            CloseReason::Record(_)
            | CloseReason::PeerAlert(_)
            | CloseReason::Rustls(_)
            | CloseReason::Ktls(_)
            | CloseReason::Internal(_)
            | CloseReason::Local(_) => stats.connection_errors.inc(reason.label()),
        }
        self.log_close(slot, &reason.to_string());
        if matches!(reason, CloseReason::Local(LocalClose::SendQueueFull { .. })) {
            // Waiting for a peer that does not read to take our last bytes
            // would hold the slot: cut at once.
            self.abort(slot);
        } else {
            self.begin_close(slot);
        }
    }

    /// Stops receiving; the socket closes once the alert (if any) is sent and
    /// the receive has ended.
    pub(super) fn begin_close(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        e.io.begin_close(self.turn_now);
        if let Some(op) = e.io.recv() {
            self.push_cancel(user_data(recv_kind(op), slot, gen), slot, gen);
        }
        self.flush_send(slot);
        self.finish_close(slot);
    }

    /// Frees the slot once nothing in flight refers to it.
    pub(super) fn finish_close(&mut self, slot: u32) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        if !e.send.is_empty() {
            return;
        }
        if e.io.recv().is_some() {
            if e.io.shut_down_receive() {
                // SAFETY: fd is this connection's socket, still open.
                unsafe { libc::shutdown(e.fd, libc::SHUT_RDWR) };
            }
            return;
        }
        let Some(e) = self.slots[slot as usize].entry.take() else {
            return;
        };
        // SAFETY: no operation in flight refers to fd any more; we own it.
        unsafe { libc::close(e.fd) };
        self.shared.stats.sources[e.source as usize]
            .connections_active
            .fetch_sub(1, Relaxed);
        self.shared.sources[e.source as usize].per_ip.close(e.ip);
        self.free.push(slot);
        self.live -= 1;
    }
}
