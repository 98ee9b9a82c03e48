//! Accepting: the multishot accept per listener, the limits checked on each
//! new connection (`max_connections`, `max_connections_per_ip`), and the
//! backoff after resource errors (EMFILE, ENFILE, ENOMEM).

use super::*;

impl Shard {
    pub(super) fn arm_accept(&mut self, i: usize) {
        let l = &mut self.listeners[i];
        let Some(sock) = &l.socket else {
            return;
        };
        if l.armed || l.resume_at.is_some() {
            return;
        }
        l.armed = true;
        let fd = sock.as_raw_fd();
        let sqe = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(KIND_ACCEPT, i as u32, 0));
        self.push_sqe(sqe);
    }

    /// Re-arms accepts paused after a resource error once their backoff passed.
    pub(super) fn resume_accepts(&mut self, now: Instant) {
        if self.draining_since.is_some() {
            return;
        }
        for i in 0..self.listeners.len() {
            // A cancelled multishot accept must report its end first.
            let l = &self.listeners[i];
            if !l.armed && l.resume_at.is_some_and(|t| now >= t) {
                self.listeners[i].resume_at = None;
                self.arm_accept(i);
            }
        }
    }

    pub(super) fn on_accept(&mut self, li: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.listeners[li].armed = false;
        }
        if res < 0 {
            self.on_accept_error(li, -res, cqueue::more(flags));
            return;
        }
        if !cqueue::more(flags) && self.draining_since.is_none() {
            self.arm_accept(li);
        }
        self.listeners[li].backoff_ms = ACCEPT_BACKOFF_MS_MIN;
        let fd: RawFd = res;
        if self.draining_since.is_some() {
            // SAFETY: fd was just returned by accept and is owned by nobody else.
            unsafe { libc::close(fd) };
            return;
        }
        self.accepted_total += 1;
        if self
            .panic_after_accepts
            .is_some_and(|n| self.accepted_total >= n)
        {
            panic!("fault injection: RINGEST_FAULT_SHARD_PANIC_AFTER_ACCEPTS reached");
        }
        let source = self.listeners[li].source;
        let src = &self.shared.sources[source as usize];
        let stats = &self.shared.stats.sources[source as usize];
        stats.connections_accepted.fetch_add(1, Relaxed);
        let active = stats.connections_active.fetch_add(1, Relaxed) + 1;
        let peer = listener::peer_addr(fd).unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        let refused = if active as usize > src.config.max_connections {
            stats.connections_refused_limit.fetch_add(1, Relaxed);
            Some(("max_connections", src.config.max_connections))
        } else if !src.per_ip.try_open(peer.ip()) {
            Some(("max_connections_per_ip", src.config.max_connections_per_ip))
        } else {
            None
        };
        if let Some((limit, value)) = refused {
            stats.connections_active.fetch_sub(1, Relaxed);
            stats.connections_refused.inc(limit);
            if self.ratelog.allow(self.turn_now) {
                log::warn!(
                    "{peer} source {}: connection refused: {limit} ({value}) reached",
                    src.config.name,
                );
            }
            // SAFETY: fd was just returned by accept and is owned by nobody else.
            unsafe { libc::close(fd) };
            return;
        }
        if let Err(e) = listener::tune_accepted(
            fd,
            src.config.keepalive_idle_ms,
            src.config.tcp_user_timeout_ms,
        ) {
            log::debug!("{peer}: socket options: {e}");
        }
        let meta = Arc::new(ConnMeta {
            source,
            peer,
            identity: None,
        });
        let conn = match src.new_conn(meta, &self.shared.ktls) {
            Ok(c) => c,
            Err(e) => {
                log::error!("{peer}: cannot start TLS: {e}");
                stats.connections_active.fetch_sub(1, Relaxed);
                src.per_ip.close(peer.ip());
                // SAFETY: fd was just returned by accept and is owned by nobody else.
                unsafe { libc::close(fd) };
                return;
            }
        };
        let entry = Entry {
            fd,
            source,
            ip: peer.ip(),
            conn,
            accepted: self.turn_now,
            last_recv: self.turn_now,
            io: IoState::default(),
            send: SendQueue::default(),
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    entry: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[slot as usize];
        s.gen = s.gen.wrapping_add(1) & 0xff_ffff;
        s.entry = Some(entry);
        self.live += 1;
        self.arm_recv(slot);
    }

    /// An accept failed. Resource errors (no file descriptors, no memory)
    /// repeat at once if the accept is re-armed at once: every shard spins
    /// and logs without end. So accepting pauses with a growing backoff (the
    /// connections wait in the backlog), and the log line is rate-limited.
    pub(super) fn on_accept_error(&mut self, li: usize, errno: i32, more: bool) {
        if self.draining_since.is_some() || errno == libc::ECANCELED {
            return;
        }
        let source = self.listeners[li].source as usize;
        let label = match errno {
            libc::EMFILE => "emfile",
            libc::ENFILE => "enfile",
            libc::ENOMEM | libc::ENOBUFS => "enomem",
            _ => "other",
        };
        self.shared.stats.sources[source].accept_errors.inc(label);
        let backoff_ms = self.listeners[li].backoff_ms;
        if label != "other" {
            let l = &mut self.listeners[li];
            l.resume_at = Some(self.turn_now + Duration::from_millis(backoff_ms));
            l.backoff_ms = (backoff_ms * 2).min(ACCEPT_BACKOFF_MS_MAX);
            if more {
                // Stop the multishot accept; resume_accepts re-arms it.
                self.push_cancel(user_data(KIND_ACCEPT, li as u32, 0), li as u32, 0);
            }
        } else if !more {
            self.arm_accept(li);
        }
        if self.accept_errors_log.allow(self.turn_now) {
            let src = &self.shared.sources[source].config;
            let hint = match label {
                "emfile" => {
                    " (open file limit reached: raise LimitNOFILE / ulimit -n, or lower max_connections)"
                }
                "enfile" => " (system-wide file limit: fs.file-max)",
                _ => "",
            };
            log::warn!(
                "shard {} source {}: accept failed: {}{hint}; pausing accepts for {backoff_ms} ms",
                self.id,
                src.name,
                std::io::Error::from_raw_os_error(errno),
            );
        }
    }
}
