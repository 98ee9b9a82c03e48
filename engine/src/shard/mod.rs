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
pub mod per_ip;
pub mod send_queue;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::{self, Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::batch::{Batcher, ConnMeta, Ring, WriterWaker};
use crate::conn::{CloseReason, Conn, FdSocket, LocalClose, Outcome, RecvPlan};
use crate::plan::Shared;
use crate::ratelog::RateLog;
use crate::tls::HandshakeFailure;
use bufring::BufRing;
use send_queue::SendQueue;

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
/// The wait while the batcher holds a batch its writer has no room for:
/// bounds how late the shard notices the writer made room (the writer does
/// not signal the shard's io_uring), so a paused connection resumes within
/// this much of the queue draining.
const PAUSED_WAIT_US: u64 = 500;
/// A pause longer than this means the writer is stuck (a failing disk):
/// the shard goes back to `WAIT_MS` rather than polling for hours.
const PAUSED_POLL_MS: u64 = 1_000;

/// How long one wait for completions lasts, given how long the batcher has
/// been holding a batch back (`None`: it is not).
fn wait_for(paused_for: Option<Duration>) -> Duration {
    match paused_for {
        Some(d) if d < Duration::from_millis(PAUSED_POLL_MS) => {
            Duration::from_micros(PAUSED_WAIT_US)
        }
        _ => Duration::from_millis(WAIT_MS),
    }
}
/// Refusal log lines per shard per second; the rest are counted only.
const LOG_LINES_PER_SECOND: u32 = 20;
/// Accept failures (EMFILE, ENFILE, ENOMEM) logged per shard per second.
const ACCEPT_ERROR_LOG_LINES_PER_SECOND: u32 = 1;
/// After an accept failure for lack of resources, wait this long before
/// accepting again, doubling up to the max while it keeps failing. Pending
/// connections wait in the listen backlog meanwhile.
const ACCEPT_BACKOFF_MS_MIN: u64 = 20;
const ACCEPT_BACKOFF_MS_MAX: u64 = 1_000;
/// Shutdown: how long to wait for cancelled operations to complete before
/// the buffer ring they may write into is unmapped.
const QUIESCE_MS_MAX: u64 = 2_000;

fn user_data(kind: u64, slot: u32, gen: u32) -> u64 {
    (kind << 56) | ((gen as u64 & 0xff_ffff) << 32) | slot as u64
}

fn split_user_data(ud: u64) -> (u64, u32, u32) {
    (ud >> 56, ((ud >> 32) & 0xff_ffff) as u32, ud as u32)
}

struct Entry {
    fd: RawFd,
    source: u16,
    /// The peer's address, counted in the source's per-IP limit until closed.
    ip: IpAddr,
    conn: Conn,
    accepted: Instant,
    /// When bytes last arrived (for `idle_timeout_ms`), to the loop turn.
    last_recv: Instant,
    /// When we started closing it (for `close_timeout_ms`).
    closing_since: Option<Instant>,
    /// Receive completions of this connection waiting in the shard's
    /// deferred queue (back-pressure); while > 0 its receive is not re-armed.
    deferred: u32,
    /// A receive is in flight (multishot or exact); `recv_kind` says which.
    recv_armed: bool,
    recv_kind: u64,
    /// Bytes to send; the one send in flight points into it.
    send: SendQueue,
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
    /// A multishot accept is in flight.
    armed: bool,
    /// Accepting paused after a resource error, until then.
    resume_at: Option<Instant>,
    backoff_ms: u64,
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
    pauses: u64,
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
    accept_errors_log: RateLog,
    draining_since: Option<Instant>,
    /// Operations the submission queue had no room for; pushed first next
    /// turn, so an operation is delayed, never dropped (its entry's
    /// `recv_armed`/`send_inflight` stay true). At most a few per slot.
    overflow: Vec<squeue::Entry>,
    /// The time at the start of this loop turn.
    turn_now: Instant,
    /// Since when the batcher has been holding a batch back, if it is.
    paused_since: Option<Instant>,
    /// Back-pressure: receive completions not processed because the writer's
    /// ring was full, in arrival order. Their buffers stay out of the
    /// provided ring, so the kernel soon has nowhere to put more data for
    /// anyone and TCP's window closes on the senders. Bounded by the
    /// provided buffers plus one error or end per connection.
    deferred: VecDeque<(u64, i32, u32, Instant)>,
    /// Provided buffers held by `deferred`.
    deferred_buffers: usize,
    /// Connections whose multishot receive ended for lack of buffers while
    /// `deferred` held some: re-armed once it has given them back, so an
    /// empty buffer ring is not re-armed into in a loop.
    rearm_later: Vec<u32>,
    /// Test-only fault injection (debug builds): panic in the shard loop,
    /// outside any connection's guard, once this many connections were accepted.
    panic_after_accepts: Option<usize>,
    accepted_total: usize,
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
        let batcher = Batcher::new(ring_to_writer, waker, cfg.batch_max_bytes)
            .with_max_queue_delay_ms(cfg.max_queue_delay_ms);
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
                    armed: false,
                    resume_at: None,
                    backoff_ms: ACCEPT_BACKOFF_MS_MIN,
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
            accept_errors_log: RateLog::new(ACCEPT_ERROR_LOG_LINES_PER_SECOND),
            draining_since: None,
            overflow: Vec::new(),
            turn_now: Instant::now(),
            paused_since: None,
            deferred: VecDeque::new(),
            deferred_buffers: 0,
            rearm_later: Vec::new(),
            panic_after_accepts: fault_panic_after_accepts(),
            accepted_total: 0,
        };
        for i in 0..shard.listeners.len() {
            shard.arm_accept(i);
        }
        Ok(shard)
    }

    /// Queues an operation. A full submission queue is drained by
    /// submitting; if it stays full (the kernel refused the submit, e.g.
    /// EBUSY with completions to reap), the operation waits in `overflow`
    /// for the next turn instead of being lost.
    fn push_sqe(&mut self, sqe: squeue::Entry) {
        if !self.overflow.is_empty() {
            // Keep submission order: behind what already waits.
            self.overflow.push(sqe);
            return;
        }
        // Bounded: one submit frees the whole queue unless the kernel refuses it.
        for _ in 0..2 {
            // SAFETY: every buffer an SQE points at (send buffers in Entry, the
            // provided buffer ring) stays alive until its completion is reaped.
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return;
            }
            if let Err(e) = self.ring.submit() {
                log::debug!("shard {}: io_uring submit: {e}", self.id);
                break;
            }
        }
        self.overflow.push(sqe);
        // Each slot has at most a receive, a send and a cancel in flight.
        debug_assert!(self.overflow.len() <= 4 * (self.slots.len() + self.listeners.len()) + 64);
    }

    /// Moves operations that waited for room into the submission queue.
    fn push_overflow(&mut self) {
        if self.overflow.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.overflow);
        let mut rest = waiting.into_iter();
        for sqe in rest.by_ref() {
            // SAFETY: as in push_sqe; these buffers are still owned by live entries.
            if unsafe { self.ring.submission().push(&sqe) }.is_err() {
                self.overflow.push(sqe);
                break;
            }
        }
        self.overflow.extend(rest);
    }

    fn arm_accept(&mut self, i: usize) {
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

    fn arm_recv(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        if e.recv_armed || e.closing || e.deferred > 0 {
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
            self.push_overflow();
            self.paused_since = if self.batcher.is_full() {
                Some(self.paused_since.unwrap_or(self.turn_now))
            } else {
                None
            };
            let paused_for = self.paused_since.map(|t| self.turn_now.duration_since(t));
            let ts = types::Timespec::from(wait_for(paused_for));
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
            self.turn_now = Instant::now();
            // The receive completions just reaped: their frames' latency
            // starts here.
            self.batcher.received_at = self.turn_now;
            let now_ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            self.resume_deferred(now_ns);
            let cqes = std::mem::take(&mut self.cqes);
            for &(ud, res, flags) in &cqes {
                let (kind, gen, slot) = split_user_data(ud);
                match kind {
                    KIND_ACCEPT => self.on_accept(slot as usize, res, flags),
                    KIND_RECV | KIND_RECV_EXACT if self.must_defer(slot, gen) => {
                        self.defer(slot, (ud, res, flags))
                    }
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
                self.resume_accepts(now);
            }
            if self.shared.shutdown.load(Ordering::Acquire) && self.drain_step(now) {
                break;
            }
        }
        self.quiesce();
        self.batcher.close();
        if self.batcher.lost_messages > 0 {
            log::error!(
                "shard {}: {} messages decoded after the writer stopped were not written",
                self.id,
                self.batcher.lost_messages
            );
        }
        log::debug!("shard {} stopped", self.id);
    }

    /// Before the shard's memory goes: cancel every operation still in
    /// flight and reap their completions, so the kernel writes into no
    /// buffer (the provided ring, an exact-read buffer) after it is freed.
    /// Bounded by QUIESCE_MS_MAX; then fds are closed, which ends the rest.
    fn quiesce(&mut self) {
        // Deferred completions still hold provided buffers: give them back
        // (nothing will process them any more).
        while let Some((ud, _, flags, _)) = self.deferred.pop_front() {
            if let Some(bid) = cqueue::buffer_select(flags) {
                self.bufs.give_back(bid);
            }
            let (kind, gen, slot) = split_user_data(ud);
            if let Some(e) = self.entry_mut(slot, gen) {
                e.deferred -= 1;
                if kind == KIND_RECV_EXACT || !cqueue::more(flags) {
                    // That was the receive's last completion.
                    e.recv_armed = false;
                }
            }
        }
        self.deferred_buffers = 0;
        for slot in 0..self.slots.len() as u32 {
            let gen = self.slots[slot as usize].gen;
            let Some(e) = self.slots[slot as usize].entry.as_mut() else {
                continue;
            };
            let mut cancels = Vec::new();
            if e.recv_armed {
                cancels.push(user_data(e.recv_kind, slot, gen));
            }
            if e.send.in_flight() {
                cancels.push(user_data(KIND_SEND, slot, gen));
            }
            if !e.shut_down {
                e.shut_down = true;
                // SAFETY: fd is this connection's socket, still open.
                unsafe { libc::shutdown(e.fd, libc::SHUT_RDWR) };
            }
            for ud in cancels {
                let sqe = opcode::AsyncCancel::new(ud).build().user_data(user_data(
                    KIND_CANCEL,
                    slot,
                    gen,
                ));
                self.push_sqe(sqe);
            }
        }
        let deadline = Instant::now() + Duration::from_millis(QUIESCE_MS_MAX);
        while self.in_flight() > 0 && Instant::now() < deadline {
            self.push_overflow();
            let ts = types::Timespec::from(Duration::from_millis(10));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            let done: Vec<(u64, i32, u32)> = self
                .ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags()))
                .collect();
            for (ud, _res, flags) in done {
                let (kind, gen, slot) = split_user_data(ud);
                if let Some(bid) = cqueue::buffer_select(flags) {
                    self.bufs.give_back(bid);
                }
                let Some(e) = self.entry_mut(slot, gen) else {
                    continue;
                };
                match kind {
                    KIND_RECV if !cqueue::more(flags) => e.recv_armed = false,
                    KIND_RECV_EXACT => e.recv_armed = false,
                    KIND_SEND => e.send.on_sent(-libc::ECANCELED),
                    _ => {}
                }
            }
        }
        let left = self.in_flight();
        if left > 0 {
            log::warn!(
                "shard {}: {left} operations still in flight at exit; closing their sockets",
                self.id
            );
        }
        for s in &mut self.slots {
            if let Some(e) = s.entry.take() {
                // SAFETY: we own fd; nothing else closes it. An operation
                // still in flight holds its own reference to the file.
                unsafe { libc::close(e.fd) };
                self.shared.stats.sources[e.source as usize]
                    .connections_active
                    .fetch_sub(1, Relaxed);
                self.shared.sources[e.source as usize].per_ip.close(e.ip);
                if e.recv_armed || e.send.in_flight() {
                    // The kernel may still write into its exact-read buffer
                    // or read its send buffer: never free them (the
                    // process is exiting).
                    std::mem::forget(e);
                }
            }
        }
        self.live = 0;
    }

    fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.entry.as_ref())
            .map(|e| e.recv_armed as usize + e.send.in_flight() as usize)
            .sum()
    }

    /// Whether a receive completion of this connection must wait: its
    /// earlier ones wait (order), or the writer's ring is full and the
    /// connection could produce frames. Handshakes go on: they produce
    /// none (but for data sent with the client's Finished, which is small).
    fn must_defer(&self, slot: u32, gen: u32) -> bool {
        let Some(e) = self
            .slots
            .get(slot as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.entry.as_ref())
        else {
            return false;
        };
        if e.closing {
            return false;
        }
        e.deferred > 0 || (self.batcher.is_full() && !e.conn.is_handshaking())
    }

    /// Keeps a receive completion for later and pauses its connection (its
    /// receive is not re-armed until the completion has been processed).
    fn defer(&mut self, slot: u32, cqe: (u64, i32, u32)) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        let cancel = if e.deferred == 0 {
            self.local[e.source as usize].pauses += 1;
            // Stop its multishot receive: otherwise it keeps taking provided
            // buffers until none is left for anyone (handshakes included).
            (e.recv_armed && e.recv_kind == KIND_RECV).then_some(e.recv_kind)
        } else {
            None
        };
        e.deferred += 1;
        if cqueue::buffer_select(cqe.2).is_some() {
            self.deferred_buffers += 1;
        }
        self.deferred
            .push_back((cqe.0, cqe.1, cqe.2, self.turn_now));
        if let Some(kind) = cancel {
            let gen = self.slots[slot as usize].gen;
            let sqe = opcode::AsyncCancel::new(user_data(kind, slot, gen))
                .build()
                .user_data(user_data(KIND_CANCEL, slot, gen));
            self.push_sqe(sqe);
        }
    }

    /// Once the writer has made room, processes the deferred completions in
    /// order, as long as there is room, and resumes connections with none left.
    fn resume_deferred(&mut self, now_ns: u64) {
        if self.deferred.is_empty() && !self.batcher.is_full() {
            return;
        }
        if !self.batcher.try_resume() {
            return;
        }
        while !self.batcher.is_full() {
            let Some((ud, res, flags, reaped)) = self.deferred.pop_front() else {
                break;
            };
            // Its latency counts from when it was reaped, not resumed.
            self.batcher.received_at = reaped;
            let (kind, gen, slot) = split_user_data(ud);
            if cqueue::buffer_select(flags).is_some() {
                self.deferred_buffers -= 1;
            }
            if let Some(e) = self.entry_mut(slot, gen) {
                e.deferred -= 1;
                if e.deferred == 0 {
                    self.rearm.push(slot);
                }
            }
            match kind {
                KIND_RECV => self.on_recv(slot, gen, res, flags, now_ns),
                _ => self.on_recv_exact(slot, gen, res, now_ns),
            }
        }
        self.batcher.received_at = self.turn_now;
        // Parked connections (their multishot ended for lack of buffers)
        // go again once half the buffers are back, not only when all are:
        // under sustained overload that might never happen.
        if self.deferred_buffers <= self.shared.config.recv_buffers_per_shard / 2 {
            self.rearm.append(&mut self.rearm_later);
        }
    }

    /// Re-arms accepts paused after a resource error once their backoff passed.
    fn resume_accepts(&mut self, now: Instant) {
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
                    self.count_close(slot, LocalClose::DrainTimeout.label());
                    self.begin_close(slot);
                }
            }
        }
        // A second of grace after the drain timeout for cancels to complete.
        self.live == 0 || now.duration_since(since) >= timeout + Duration::from_secs(1)
    }

    /// Handshake, idle and close deadlines, checked every 100 ms.
    fn check_timeouts(&mut self, now: Instant) {
        for slot in 0..self.slots.len() as u32 {
            let Some(e) = self.slots[slot as usize].entry.as_ref() else {
                continue;
            };
            let cfg = &self.shared.sources[e.source as usize].config;
            if let Some(since) = e.closing_since {
                if now.duration_since(since) >= Duration::from_millis(cfg.close_timeout_ms) {
                    let close_timeout_ms = cfg.close_timeout_ms;
                    self.count_close(slot, LocalClose::CloseTimeout { close_timeout_ms }.label());
                    self.abort(slot);
                }
                continue;
            }
            if e.closing {
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
                && e.recv_armed
                && e.deferred == 0
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
    fn abort(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        e.closing = true;
        e.closing_since = None;
        e.send.discard();
        if !e.shut_down {
            e.shut_down = true;
            // SAFETY: fd is this connection's socket, still open.
            unsafe { libc::shutdown(e.fd, libc::SHUT_RDWR) };
        }
        let mut cancels = Vec::new();
        if e.send.in_flight() {
            cancels.push(user_data(KIND_SEND, slot, gen));
        }
        if e.recv_armed {
            cancels.push(user_data(e.recv_kind, slot, gen));
        }
        for ud in cancels {
            let sqe =
                opcode::AsyncCancel::new(ud)
                    .build()
                    .user_data(user_data(KIND_CANCEL, slot, gen));
            self.push_sqe(sqe);
        }
        self.finish_close(slot);
    }

    fn on_accept(&mut self, li: usize, res: i32, flags: u32) {
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
            closing_since: None,
            deferred: 0,
            recv_armed: false,
            recv_kind: KIND_RECV,
            send: SendQueue::default(),
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

    /// An accept failed. Resource errors (no file descriptors, no memory)
    /// repeat at once if the accept is re-armed at once: every shard spins
    /// and logs without end. So accepting pauses with a growing backoff (the
    /// connections wait in the backlog), and the log line is rate-limited.
    fn on_accept_error(&mut self, li: usize, errno: i32, more: bool) {
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
                let sqe = opcode::AsyncCancel::new(user_data(KIND_ACCEPT, li as u32, 0))
                    .build()
                    .user_data(user_data(KIND_CANCEL, li as u32, 0));
                self.push_sqe(sqe);
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
            e.last_recv = self.turn_now;
            let max_send_queue_bytes = self.shared.sources[source].config.max_send_queue_bytes;
            let result = if e.closing {
                Ok(Outcome::Continue)
            } else {
                let data = self.bufs.slice_mut(bid, res as usize);
                let mut out = std::mem::take(&mut self.out_scratch);
                let r = e.conn.on_data(data, now_ns, &mut self.batcher, &mut out);
                let r = Self::queue_out(e, &mut out, max_send_queue_bytes).and(r);
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
        } else if res == -libc::ECANCELED && !e.closing {
            // Our own cancel (back-pressure paused this connection): the
            // receive ended, the connection did not. Re-armed on resume.
            if let Some(bid) = bid {
                self.bufs.give_back(bid);
            }
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
        // turn's buffers are given back, or, while deferred completions hold
        // buffers, once they have been given back.
        let Some(e) = self.slots[slot as usize].entry.as_ref() else {
            return;
        };
        if !e.recv_armed && !e.closing {
            if res == -libc::ENOBUFS
                && self.deferred_buffers > self.shared.config.recv_buffers_per_shard / 2
            {
                self.rearm_later.push(slot);
            } else {
                self.rearm.push(slot);
            }
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
        e.last_recv = self.turn_now;
        let max_send_queue_bytes = self.shared.sources[source].config.max_send_queue_bytes;
        let result = if e.closing {
            Ok(Outcome::Continue)
        } else {
            let mut out = std::mem::take(&mut self.out_scratch);
            let r = e
                .conn
                .on_exact_read(res as usize, now_ns, &mut self.batcher, &mut out);
            let r = Self::queue_out(e, &mut out, max_send_queue_bytes).and(r);
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
        let sent = e.send.is_empty();
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
            e.closing = true;
            // A send still in flight gets close_timeout_ms like any close.
            e.closing_since.get_or_insert(now);
            e.recv_armed = false;
        }
        self.finish_close(slot);
    }

    /// Queues bytes the connection produced; a peer that lets more than
    /// `max_send_queue_bytes` pile up by never reading is closed.
    fn queue_out(
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
    fn flush_send(&mut self, slot: u32) {
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

    fn on_send(&mut self, slot: u32, gen: u32, res: i32) {
        let Some(e) = self.entry_mut(slot, gen) else {
            return;
        };
        // A failed send means the peer is gone; receiving decides the rest.
        e.send.on_sent(res);
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
    fn begin_close(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        if !e.closing {
            e.closing = true;
            e.closing_since = Some(self.turn_now);
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
        if !e.send.is_empty() {
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
        self.shared.sources[e.source as usize].per_ip.close(e.ip);
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
            if l.pauses > 0 {
                s.backpressure_pauses.fetch_add(l.pauses, Relaxed);
            }
            *l = Local::default();
        }
    }
}

/// Test-only fault injection, read once per shard: in debug builds,
/// `RINGEST_FAULT_SHARD_PANIC_AFTER_ACCEPTS=N` makes the shard panic outside
/// any connection's guard on its N-th accepted connection, so tests can
/// check that a dead shard stops the process with a clear error.
fn fault_panic_after_accepts() -> Option<usize> {
    if !cfg!(debug_assertions) {
        return None;
    }
    std::env::var("RINGEST_FAULT_SHARD_PANIC_AFTER_ACCEPTS")
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A paused shard polls for room often, so its connections resume soon
    /// after the writer drains; a pause that lasts (a stuck writer) goes
    /// back to the usual wait instead of spinning.
    #[test]
    fn a_paused_shard_polls_briefly_then_backs_off() {
        let usual = Duration::from_millis(WAIT_MS);
        let short = Duration::from_micros(PAUSED_WAIT_US);
        assert_eq!(wait_for(None), usual);
        assert_eq!(wait_for(Some(Duration::ZERO)), short);
        assert_eq!(
            wait_for(Some(Duration::from_millis(PAUSED_POLL_MS - 1))),
            short
        );
        assert_eq!(wait_for(Some(Duration::from_millis(PAUSED_POLL_MS))), usual);
    }
}
