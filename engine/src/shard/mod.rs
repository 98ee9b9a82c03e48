//! One io_uring loop per core. It accepts connections (multishot accept),
//! receives into a provided buffer ring (multishot recv), hands the bytes to
//! each connection's state machine ([`crate::conn::Conn`]) and sends what that
//! returns. Completions are reaped in batches; submissions go in once per turn.
//!
//! kTLS: a connection that may be offloaded reads its handshake with
//! single-shot receives of exact lengths into its own buffer
//! ([`RecvPlan::Exact`]); once its last handshake flight is sent the shard
//! calls [`Conn::enable_ktls`] and arms the multishot receive as for any
//! connection, which then yields plaintext. EIO on that receive means a
//! control record: [`Conn::on_ktls_control`] reads it with a synchronous
//! `recvmsg` (rare: alerts, KeyUpdate).

pub mod bufring;
pub mod listener;

use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::{self, Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::batch::{Batcher, ConnMeta, Ring, WriterWaker};
use crate::config::Transport;
use crate::conn::{CloseReason, Conn, FdSocket, KtlsPlan, Outcome, RecvPlan};
use crate::framing::Decoder;
use crate::ratelog::RateLog;
use crate::runtime::Shared;
use crate::tls::HandshakeFailure;
use bufring::BufRing;

const KIND_ACCEPT: u64 = 1;
const KIND_RECV: u64 = 2;
const KIND_SEND: u64 = 3;
const KIND_CANCEL: u64 = 4;
/// A single-shot receive of an exact length into the connection's own
/// buffer (record-exact handshake reads).
const KIND_RECV_EXACT: u64 = 5;
/// How long one wait for completions may last: bounds how late timeouts and
/// shutdown are noticed.
const WAIT_MS: u64 = 50;
/// Refusal log lines per shard per second; the rest are counted only.
const LOG_LINES_PER_SECOND: u32 = 20;

fn user_data(kind: u64, slot: u32, gen: u32) -> u64 {
    (kind << 56) | ((gen as u64 & 0xff_ffff) << 32) | slot as u64
}

fn split_user_data(ud: u64) -> (u64, u32, u32) {
    (ud >> 56, ((ud >> 32) & 0xff_ffff) as u32, ud as u32)
}

struct Entry {
    fd: RawFd,
    source: u16,
    conn: Conn,
    accepted: Instant,
    /// A receive is in flight (multishot or exact); `recv_kind` says which.
    recv_armed: bool,
    recv_kind: u64,
    /// Bytes being sent (owned here until the send completes) and how far it got.
    send_buf: Vec<u8>,
    send_off: usize,
    send_inflight: bool,
    /// Bytes produced while a send was in flight.
    pending_out: Vec<u8>,
    closing: bool,
    shut_down: bool,
}

struct Slot {
    gen: u32,
    entry: Option<Entry>,
}

struct ListenerSlot {
    socket: Option<socket2::Socket>,
    source: u16,
}

/// Per-turn counters per source, added to shared stats once per turn.
#[derive(Default, Clone, Copy)]
struct Local {
    messages: u64,
    bytes: u64,
    copied_frame: u64,
    copied_tls: u64,
    oversize: u64,
    leading_zero: u64,
}

pub struct Shard {
    id: usize,
    // Field order matters: the ring must drop before the buffers it points at.
    ring: IoUring,
    bufs: BufRing,
    shared: Arc<Shared>,
    listeners: Vec<ListenerSlot>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    batcher: Batcher,
    rearm: Vec<u32>,
    cqes: Vec<(u64, i32, u32)>,
    local: Vec<Local>,
    out_scratch: Vec<u8>,
    ratelog: RateLog,
    draining_since: Option<Instant>,
}

impl Shard {
    /// Builds the shard inside its own thread (io_uring SINGLE_ISSUER wants the
    /// creating thread to be the submitting one).
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        listeners: Vec<(u16, socket2::Socket)>,
        ring_to_writer: Arc<Ring>,
        waker: Arc<WriterWaker>,
    ) -> std::io::Result<Shard> {
        let cfg = &shared.config;
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .setup_cqsize(cfg.uring_entries * 8)
            .build(cfg.uring_entries)?;
        let bufs = BufRing::new(
            &ring,
            cfg.recv_buffers_per_shard as u16,
            cfg.recv_buffer_bytes,
            0,
        )?;
        let batcher = Batcher::new(ring_to_writer, waker, cfg.batch_max_bytes);
        let sources = shared.sources.len();
        let mut shard = Shard {
            id,
            ring,
            bufs,
            shared,
            listeners: listeners
                .into_iter()
                .map(|(source, s)| ListenerSlot {
                    socket: Some(s),
                    source,
                })
                .collect(),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            batcher,
            rearm: Vec::new(),
            cqes: Vec::with_capacity(4096),
            local: vec![Local::default(); sources],
            out_scratch: Vec::new(),
            ratelog: RateLog::new(LOG_LINES_PER_SECOND),
            draining_since: None,
        };
        for i in 0..shard.listeners.len() {
            shard.arm_accept(i);
        }
        Ok(shard)
    }

    fn push_sqe(&mut self, sqe: squeue::Entry) {
        // Bounded: a full queue is drained by submitting; a few tries always suffice.
        for _ in 0..64 {
            // SAFETY: every buffer an SQE points at (send buffers in Entry, the
            // provided buffer ring) stays alive until its completion is reaped.
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                log::error!("shard {}: io_uring submit failed: {e}", self.id);
            }
        }
        log::error!(
            "shard {}: submission queue stayed full; dropped an operation",
            self.id
        );
    }

    fn arm_accept(&mut self, i: usize) {
        let Some(sock) = &self.listeners[i].socket else {
            return;
        };
        let fd = sock.as_raw_fd();
        let sqe = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(KIND_ACCEPT, i as u32, 0));
        self.push_sqe(sqe);
    }

    fn arm_recv(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        if e.recv_armed || e.closing {
            return;
        }
        let sqe = match e.conn.recv_plan() {
            RecvPlan::Multishot => opcode::RecvMulti::new(types::Fd(e.fd), self.bufs.bgid)
                .build()
                .user_data(user_data(KIND_RECV, slot, gen)),
            RecvPlan::Exact => {
                let fd = e.fd;
                let Some(buf) = e.conn.exact_read_buf() else {
                    return;
                };
                // The buffer is the connection's heap memory; it stays put
                // until the completion comes back to `on_recv_exact`, and the
                // entry is not freed while `recv_armed` (see finish_close).
                opcode::Recv::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32)
                    .build()
                    .user_data(user_data(KIND_RECV_EXACT, slot, gen))
            }
            RecvPlan::Wait => return,
        };
        e.recv_kind = sqe.get_user_data() >> 56;
        e.recv_armed = true;
        self.push_sqe(sqe);
    }

    /// The loop: wait, reap a batch of completions, process them, hand frames
    /// to the writer, submit once.
    pub fn run(mut self) {
        let mut last_tick = Instant::now();
        loop {
            let ts = types::Timespec::from(Duration::from_millis(WAIT_MS));
            let args = types::SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                    ) => {}
                Err(e) => {
                    log::error!("shard {}: io_uring wait failed: {e}", self.id);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            self.cqes.clear();
            for cqe in self.ring.completion() {
                self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
            }
            let now_ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let cqes = std::mem::take(&mut self.cqes);
            for &(ud, res, flags) in &cqes {
                let (kind, gen, slot) = split_user_data(ud);
                match kind {
                    KIND_ACCEPT => self.on_accept(slot as usize, res, flags),
                    KIND_RECV => self.on_recv(slot, gen, res, flags, now_ns),
                    KIND_RECV_EXACT => self.on_recv_exact(slot, gen, res, now_ns),
                    KIND_SEND => self.on_send(slot, gen, res),
                    _ => {}
                }
            }
            self.cqes = cqes;
            self.bufs.publish();
            for slot in std::mem::take(&mut self.rearm) {
                self.arm_recv(slot);
            }
            self.batcher.flush();
            self.publish_stats();
            let now = Instant::now();
            if now.duration_since(last_tick) >= Duration::from_millis(100) {
                last_tick = now;
                self.check_timeouts(now);
            }
            if self.shared.shutdown.load(Ordering::Acquire) && self.drain_step(now) {
                break;
            }
        }
        self.batcher.close();
        log::debug!("shard {} stopped", self.id);
    }

    /// Returns true when the shard may exit: no connection left, or the drain time is over.
    fn drain_step(&mut self, now: Instant) -> bool {
        let since = *self.draining_since.get_or_insert_with(|| {
            log::debug!("shard {}: draining {} connections", self.id, self.live);
            now
        });
        for i in 0..self.listeners.len() {
            // Shutting the listener down stops new connections and ends the
            // multishot accept; its completion is ignored while draining.
            if let Some(sock) = self.listeners[i].socket.take() {
                let _ = sock.shutdown(std::net::Shutdown::Both);
                let sqe = opcode::AsyncCancel::new(user_data(KIND_ACCEPT, i as u32, 0))
                    .build()
                    .user_data(user_data(KIND_CANCEL, i as u32, 0));
                self.push_sqe(sqe);
            }
        }
        let timeout = Duration::from_millis(self.shared.config.drain_timeout_ms);
        if self.live > 0 && now.duration_since(since) >= timeout {
            for slot in 0..self.slots.len() as u32 {
                if self.slots[slot as usize]
                    .entry
                    .as_ref()
                    .is_some_and(|e| !e.closing)
                {
                    self.count_close(slot, "drain_timeout");
                    self.begin_close(slot);
                }
            }
        }
        // A second of grace after the drain timeout for cancels to complete.
        self.live == 0 || now.duration_since(since) >= timeout + Duration::from_secs(1)
    }

    fn check_timeouts(&mut self, now: Instant) {
        for slot in 0..self.slots.len() as u32 {
            let Some(e) = self.slots[slot as usize].entry.as_ref() else {
                continue;
            };
            if e.closing || !e.conn.is_handshaking() {
                continue;
            }
            let limit = Duration::from_millis(
                self.shared.sources[e.source as usize]
                    .config
                    .handshake_timeout_ms,
            );
            if now.duration_since(e.accepted) >= limit {
                self.refuse(slot, CloseReason::Handshake(HandshakeFailure::Timeout));
            }
        }
    }

    fn on_accept(&mut self, li: usize, res: i32, flags: u32) {
        if !cqueue::more(flags) && self.draining_since.is_none() {
            self.arm_accept(li);
        }
        if res < 0 {
            if self.draining_since.is_none() && -res != libc::ECANCELED {
                log::warn!(
                    "shard {}: accept failed: {}",
                    self.id,
                    std::io::Error::from_raw_os_error(-res)
                );
            }
            return;
        }
        let fd: RawFd = res;
        if self.draining_since.is_some() {
            // SAFETY: fd was just returned by accept and is owned by nobody else.
            unsafe { libc::close(fd) };
            return;
        }
        let source = self.listeners[li].source;
        let src = &self.shared.sources[source as usize];
        let stats = &self.shared.stats.sources[source as usize];
        stats.connections_accepted.fetch_add(1, Relaxed);
        let active = stats.connections_active.fetch_add(1, Relaxed) + 1;
        let peer = listener::peer_addr(fd).unwrap_or_else(|_| ([0, 0, 0, 0], 0).into());
        if active as usize > src.config.max_connections {
            stats.connections_active.fetch_sub(1, Relaxed);
            stats.connections_refused_limit.fetch_add(1, Relaxed);
            if self.ratelog.allow(Instant::now()) {
                log::warn!(
                    "{peer} source {}: connection refused: max_connections ({}) reached",
                    src.config.name,
                    src.config.max_connections
                );
            }
            // SAFETY: fd was just returned by accept and is owned by nobody else.
            unsafe { libc::close(fd) };
            return;
        }
        if let Err(e) = listener::tune_accepted(fd, src.config.keepalive_idle_ms) {
            log::debug!("{peer}: socket options: {e}");
        }
        let meta = Arc::new(ConnMeta {
            source,
            peer,
            identity: None,
        });
        let decoder = Decoder::new(
            src.config.framing,
            src.config.max_message_bytes,
            src.config.oversize,
        );
        let conn = match (src.config.transport, &src.tls) {
            (Transport::Tls, Some(tls)) => match Conn::new_tls(
                tls.current(),
                meta,
                decoder,
                KtlsPlan {
                    mode: src.config.ktls,
                    support: Arc::clone(&self.shared.ktls),
                },
            ) {
                Ok(c) => c,
                Err(e) => {
                    log::error!("{peer}: cannot start TLS: {e}");
                    stats.connections_active.fetch_sub(1, Relaxed);
                    // SAFETY: fd was just returned by accept and is owned by nobody else.
                    unsafe { libc::close(fd) };
                    return;
                }
            },
            _ => Conn::new_plain(meta, decoder),
        };
        let entry = Entry {
            fd,
            source,
            conn,
            accepted: Instant::now(),
            recv_armed: false,
            recv_kind: KIND_RECV,
            send_buf: Vec::new(),
            send_off: 0,
            send_inflight: false,
            pending_out: Vec::new(),
            closing: false,
            shut_down: false,
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

    fn entry_mut(&mut self, slot: u32, gen: u32) -> Option<&mut Entry> {
        let s = self.slots.get_mut(slot as usize)?;
        if s.gen != gen {
            return None;
        }
        s.entry.as_mut()
    }

    fn on_recv(&mut self, slot: u32, gen: u32, res: i32, flags: u32, now_ns: u64) {
        let bid = cqueue::buffer_select(flags);
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
            e.recv_armed = false;
        }
        if res > 0 {
            let Some(bid) = bid else {
                debug_assert!(false, "recv with data but no buffer");
                return;
            };
            let source = e.source as usize;
            let result = if e.closing {
                Ok(Outcome::Continue)
            } else {
                let data = self.bufs.slice_mut(bid, res as usize);
                let mut out = std::mem::take(&mut self.out_scratch);
                let r = e.conn.on_data(data, now_ns, &mut self.batcher, &mut out);
                Self::queue_out(e, &mut out);
                self.out_scratch = out;
                r
            };
            self.bufs.give_back(bid);
            self.take_conn_counters(slot, source);
            match result {
                Ok(Outcome::Continue) => {}
                Ok(Outcome::PeerClosed) => self.begin_close(slot),
                Err(reason) => self.refuse(slot, reason),
            }
            self.flush_send(slot);
        } else if res < 0 && e.conn.is_offloaded() && !e.closing && -res != libc::ENOBUFS {
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
        // Multishot ended (ENOBUFS, or the kernel stopped it): re-arm after this
        // turn's buffers are given back.
        let Some(e) = self.slots[slot as usize].entry.as_ref() else {
            return;
        };
        if !e.recv_armed && !e.closing {
            self.rearm.push(slot);
        }
        if self.slots[slot as usize]
            .entry
            .as_ref()
            .is_some_and(|e| e.closing && !e.recv_armed)
        {
            self.finish_close(slot);
        }
    }

    /// A record-exact handshake read completed.
    fn on_recv_exact(&mut self, slot: u32, gen: u32, res: i32, now_ns: u64) {
        let Some(e) = self
            .slots
            .get_mut(slot as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.entry.as_mut())
        else {
            return;
        };
        e.recv_armed = false;
        if res <= 0 {
            if -res == libc::ECANCELED || e.closing {
                self.finish_close(slot);
            } else {
                self.on_peer_gone(slot, res, now_ns);
            }
            return;
        }
        let source = e.source as usize;
        let result = if e.closing {
            Ok(Outcome::Continue)
        } else {
            let mut out = std::mem::take(&mut self.out_scratch);
            let r = e
                .conn
                .on_exact_read(res as usize, now_ns, &mut self.batcher, &mut out);
            Self::queue_out(e, &mut out);
            self.out_scratch = out;
            r
        };
        self.take_conn_counters(slot, source);
        match result {
            Ok(Outcome::Continue) => {}
            Ok(Outcome::PeerClosed) => self.begin_close(slot),
            Err(reason) => self.refuse(slot, reason),
        }
        self.flush_send(slot);
        self.maybe_enable_ktls(slot);
        let Some(e) = self.slots[slot as usize].entry.as_ref() else {
            return;
        };
        if e.closing {
            self.finish_close(slot);
        } else {
            // The next exact read, or the multishot once the handshake is over.
            self.rearm.push(slot);
        }
    }

    /// Once the keys are ready and the last handshake flight has left, the
    /// kernel takes the socket; then the multishot receive is armed.
    fn maybe_enable_ktls(&mut self, slot: u32) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        let sent = !e.send_inflight && e.send_off >= e.send_buf.len() && e.pending_out.is_empty();
        if e.closing || !sent || !e.conn.is_ktls_pending() {
            return;
        }
        let source = e.source as usize;
        let result = e.conn.enable_ktls(&mut FdSocket(e.fd));
        self.take_conn_counters(slot, source);
        match result {
            Ok(()) => self.rearm.push(slot),
            Err(reason) => self.refuse(slot, reason),
        }
    }

    /// EIO on an offloaded socket: a control record waits at its head.
    fn on_ktls_control(&mut self, slot: u32, now_ns: u64) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        let source = e.source as usize;
        let result = e
            .conn
            .on_ktls_control(&mut FdSocket(e.fd), now_ns, &mut self.batcher);
        self.take_conn_counters(slot, source);
        match result {
            Ok(Outcome::Continue) => {}
            Ok(Outcome::PeerClosed) => self.begin_close(slot),
            Err(reason) => self.refuse(slot, reason),
        }
    }

    /// EOF or a receive error: keep what was decoded, flush the decoder, close.
    fn on_peer_gone(&mut self, slot: u32, res: i32, now_ns: u64) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        let source = e.source as usize;
        if !e.closing {
            let result = e.conn.on_eof(now_ns, &mut self.batcher);
            self.take_conn_counters(slot, source);
            if let Err(reason) = result {
                self.refuse(slot, reason);
            } else if res < 0 {
                let err = std::io::Error::from_raw_os_error(-res);
                let label = if -res == libc::ECONNRESET {
                    "reset"
                } else {
                    "recv_error"
                };
                self.count_close(slot, label);
                self.log_close(slot, &format!("connection error: {err}"));
            }
        }
        if let Some(e) = self.slots[slot as usize].entry.as_mut() {
            e.closing = true;
            e.recv_armed = false;
        }
        self.finish_close(slot);
    }

    fn queue_out(e: &mut Entry, out: &mut Vec<u8>) {
        if out.is_empty() {
            return;
        }
        if e.send_inflight {
            e.pending_out.append(out);
        } else {
            e.send_buf.clear();
            e.send_buf.append(out);
            e.send_off = 0;
        }
    }

    /// Starts a send of whatever is waiting, if none is in flight.
    fn flush_send(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        if e.send_inflight {
            return;
        }
        if e.send_off >= e.send_buf.len() {
            if e.pending_out.is_empty() {
                return;
            }
            std::mem::swap(&mut e.send_buf, &mut e.pending_out);
            e.pending_out.clear();
            e.send_off = 0;
        }
        let rest = &e.send_buf[e.send_off..];
        let sqe = opcode::Send::new(types::Fd(e.fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(KIND_SEND, slot, gen));
        e.send_inflight = true;
        self.push_sqe(sqe);
    }

    fn on_send(&mut self, slot: u32, gen: u32, res: i32) {
        let Some(e) = self.entry_mut(slot, gen) else {
            return;
        };
        e.send_inflight = false;
        if res < 0 {
            // The peer is gone; nothing more can be sent. Receiving decides the rest.
            e.send_buf.clear();
            e.pending_out.clear();
            e.send_off = 0;
        } else {
            e.send_off += res as usize;
            if e.send_off >= e.send_buf.len() {
                e.send_buf = Vec::new();
                e.send_off = 0;
            }
        }
        let closing = e.closing;
        self.flush_send(slot);
        if closing {
            self.finish_close(slot);
        } else {
            self.maybe_enable_ktls(slot);
        }
    }

    fn count_close(&mut self, slot: u32, label: &'static str) {
        let Some(e) = self.slots[slot as usize].entry.as_ref() else {
            return;
        };
        self.shared.stats.sources[e.source as usize]
            .connection_errors
            .inc(label);
    }

    fn log_close(&mut self, slot: u32, why: &str) {
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
    fn refuse(&mut self, slot: u32, reason: CloseReason) {
        let Some(e) = self.slots[slot as usize].entry.as_ref() else {
            return;
        };
        let stats = &self.shared.stats.sources[e.source as usize];
        match &reason {
            CloseReason::Handshake(h) | CloseReason::Refused(h, _) => {
                stats.handshake_failures.inc(h.label())
            }
            CloseReason::Framing(f) => stats.framing_errors.inc(f.label()),
            CloseReason::Tls(_) | CloseReason::Ktls(_) | CloseReason::Internal(_) => {
                stats.connection_errors.inc(reason.label())
            }
        }
        self.log_close(slot, &reason.to_string());
        self.begin_close(slot);
    }

    /// Stops receiving; the socket closes once the alert (if any) is sent and
    /// the receive has ended.
    fn begin_close(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        if !e.closing {
            e.closing = true;
        }
        if e.recv_armed {
            let sqe = opcode::AsyncCancel::new(user_data(e.recv_kind, slot, gen))
                .build()
                .user_data(user_data(KIND_CANCEL, slot, gen));
            self.push_sqe(sqe);
        }
        self.flush_send(slot);
        self.finish_close(slot);
    }

    /// Frees the slot once nothing in flight refers to it.
    fn finish_close(&mut self, slot: u32) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        if e.send_inflight || e.send_off < e.send_buf.len() {
            return;
        }
        if e.recv_armed {
            if !e.shut_down {
                e.shut_down = true;
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
        self.free.push(slot);
        self.live -= 1;
    }

    fn take_conn_counters(&mut self, slot: u32, source: usize) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        let c = std::mem::take(&mut e.conn.counters);
        let d = e.conn.take_decoder_counters();
        let ev = e.conn.take_events();
        let stats = &self.shared.stats.sources[source];
        if let Some(path) = ev.tls_path {
            stats.tls_path.inc(path);
        }
        if let Some(kind) = ev.ktls_control {
            stats.ktls_control_records.inc(kind);
        }
        let l = &mut self.local[source];
        l.messages += c.messages;
        l.bytes += c.bytes;
        l.copied_tls += c.tls_copied_bytes;
        l.copied_frame += d.copied_bytes;
        l.oversize += d.oversize_frames;
        l.leading_zero += d.leading_zero_frames;
    }

    fn publish_stats(&mut self) {
        let pauses = self.batcher.take_pauses();
        for (i, l) in self.local.iter_mut().enumerate() {
            let s = &self.shared.stats.sources[i];
            if l.messages > 0 {
                s.messages_received.fetch_add(l.messages, Relaxed);
                s.bytes_received.fetch_add(l.bytes, Relaxed);
            }
            if l.copied_frame > 0 {
                s.copied_bytes_frame_span.fetch_add(l.copied_frame, Relaxed);
            }
            if l.copied_tls > 0 {
                s.copied_bytes_tls_reassembly
                    .fetch_add(l.copied_tls, Relaxed);
            }
            if l.oversize > 0 {
                s.frames_oversize.fetch_add(l.oversize, Relaxed);
            }
            if l.leading_zero > 0 {
                s.frames_leading_zero.fetch_add(l.leading_zero, Relaxed);
            }
            *l = Local::default();
        }
        if pauses > 0 {
            // A shard's ring carries every source; the pause is counted on the first.
            self.shared.stats.sources[0]
                .backpressure_pauses
                .fetch_add(pauses, Relaxed);
        }
    }
}
