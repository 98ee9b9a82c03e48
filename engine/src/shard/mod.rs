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
//!
//! What the shard does with each socket (receive in flight, paused by
//! back-pressure, closing, aborted) is one state machine, [`io_state`].
//! This file holds the loop, back-pressure and shutdown; `accept.rs`,
//! `recv.rs`, `close.rs` and `counters.rs` the rest of `impl Shard`.

mod accept;
mod arm_queue;
pub mod bufring;
mod close;
mod counters;
pub mod io_state;
mod lane;
pub mod listener;
pub mod per_ip;
mod recv;
pub mod send_queue;
mod turn_wait;

use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::Ordering::{self, Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::batch::{ConnMeta, Ring, WriterWaker};
use crate::conn::{CloseReason, Conn, FdSocket, LocalClose, Outcome, RecvPlan};
use crate::plan::Shared;
use crate::ratelog::RateLog;
use crate::tls::HandshakeFailure;
use arm_queue::ArmQueue;
use bufring::BufRing;
use counters::Local;
use io_state::{Deferred, IoState, RecvOp};
use lane::Lane;
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
/// The wait while a batcher holds a batch its writer has no room for:
/// bounds how late the shard notices the writer made room (the writer does
/// not signal the shard's io_uring), so a paused connection resumes within
/// this much of the queue draining.
const PAUSED_WAIT_US: u64 = 500;
/// After a lane was last held back, the kernel's receive buffers stay
/// limited this long ([`bufring::Credit`]): pauses come and go many times a
/// second under load, and lifting the limit between them would let the
/// kernel fill every buffer again.
const CREDIT_HOLD_MS: u64 = 100;
/// The fewest and the most receive buffers the kernel may hold while
/// limited: while a lane is held back its writer is the bottleneck, and a
/// few buffers per loop turn keep its queue fed (session 6: 16 buffers of
/// 128 KiB per shard kept the large-record load's rate and cut ringest's
/// own p99 at 80% load from 104 ms with 512 to 6 ms).
const CREDIT_MIN_BUFFERS: u16 = 4;
const CREDIT_MAX_BUFFERS: u16 = 16;
/// A pause longer than this means the writer is stuck (a failing disk):
/// the shard goes back to `WAIT_MS` rather than polling for hours.
const PAUSED_POLL_MS: u64 = 1_000;

/// How long one wait for completions lasts, given how long a batcher has
/// been holding a batch back (the shortest pause of any lane; `None`: no
/// lane is paused).
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

/// The user-data kind of a receive operation.
fn recv_kind(op: RecvOp) -> u64 {
    match op {
        RecvOp::Multishot | RecvOp::SingleShot => KIND_RECV,
        RecvOp::Exact => KIND_RECV_EXACT,
    }
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
    /// The receive in flight, back-pressure and close, as one state.
    io: IoState,
    /// Bytes to send; the one send in flight points into it.
    send: SendQueue,
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
    /// One per destination group: its batcher and its held completions.
    lanes: Vec<Lane>,
    /// For each source, the lane its connections feed.
    lane_of_source: Vec<usize>,
    /// Receives to arm at the end of the turn, and connections whose
    /// multishot receive ended for lack of buffers (parked): re-armed, first
    /// parked first and before those served since, at the end of a turn in
    /// which the kernel has buffers again and deferred completions hold at
    /// most half of them, or at the next 100 ms tick (a lane stuck for long
    /// keeps its buffers), so an empty buffer ring is not re-armed into in a
    /// loop. With several lanes, not while their own lane is full
    /// ([`Shard::held_back`]). See [`arm_queue`].
    arms: ArmQueue,
    cqes: Vec<(u64, i32, u32)>,
    local: Vec<Local>,
    out_scratch: Vec<u8>,
    ratelog: RateLog,
    accept_errors_log: RateLog,
    draining_since: Option<Instant>,
    /// Operations the submission queue had no room for; pushed first next
    /// turn, so an operation is delayed, never dropped (its entry keeps it
    /// as in flight). At most a few per slot.
    overflow: Vec<squeue::Entry>,
    /// The time at the start of this loop turn.
    turn_now: Instant,
    /// While a lane is held back, and [`CREDIT_HOLD_MS`] after: until when,
    /// and the buffers the kernel may hold meanwhile.
    credit: Option<(Instant, u16)>,
    /// How long to wait for more completions before a turn ([`turn_wait`]).
    turn_wait: turn_wait::TurnWait,
    /// Test-only fault injection (debug builds): panic in the shard loop,
    /// outside any connection's guard, once this many connections were accepted.
    panic_after_accepts: Option<usize>,
    accepted_total: usize,
}

impl Shard {
    /// Builds the shard inside its own thread (io_uring SINGLE_ISSUER wants the
    /// creating thread to be the submitting one). `to_writers`: per
    /// destination group, this shard's ring and the waker of the writer
    /// that drains it; `lane_of_source`: each source's group.
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        listeners: Vec<(u16, socket2::Socket)>,
        to_writers: Vec<(Arc<Ring>, Arc<WriterWaker>)>,
        lane_of_source: Vec<usize>,
    ) -> std::io::Result<Shard> {
        let cfg = &shared.config;
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .setup_cqsize(cfg.uring_entries * 8)
            .build(cfg.uring_entries)?;
        let turn_wait = turn_wait::TurnWait::new(
            cfg.recv_batch_wait_us,
            ring.params().is_feature_min_timeout(),
        );
        if id == 0 && cfg.recv_batch_wait_us > 0 && !turn_wait.is_batching() {
            log::info!(
                "recv_batch_wait_us {}: this kernel has no io_uring minimum wait (Linux 6.12+), so shards turn on every completion",
                cfg.recv_batch_wait_us
            );
        }
        let bufs = BufRing::new(
            &ring,
            cfg.recv_buffers_per_shard as u16,
            cfg.recv_buffer_bytes,
            0,
        )?;
        let held_buffers_max = lane::held_buffers_max(cfg.recv_buffers_per_shard, to_writers.len());
        let lanes: Vec<Lane> = to_writers
            .into_iter()
            .map(|(r, w)| {
                Lane::new(
                    r,
                    w,
                    cfg.batch_max_bytes,
                    cfg.max_queue_delay_ms,
                    held_buffers_max,
                )
            })
            .collect();
        let sources = shared.sources.len();
        if lanes.is_empty() || lane_of_source.len() != sources {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a shard needs a ring per destination group and a group per source",
            ));
        }
        if lane_of_source.iter().any(|&l| l >= lanes.len()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a source's destination group has no ring",
            ));
        }
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
            lanes,
            lane_of_source,
            arms: ArmQueue::default(),
            cqes: Vec::with_capacity(4096),
            local: vec![Local::default(); sources],
            out_scratch: Vec::new(),
            ratelog: RateLog::new(LOG_LINES_PER_SECOND),
            accept_errors_log: RateLog::new(ACCEPT_ERROR_LOG_LINES_PER_SECOND),
            draining_since: None,
            overflow: Vec::new(),
            turn_now: Instant::now(),
            credit: None,
            turn_wait,
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

    fn arm_recv(&mut self, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        if !e.io.can_arm() {
            return;
        }
        let (op, sqe) = match e.conn.recv_plan() {
            // While the receive credit is in force (a lane held back, the
            // kernel allowed a few buffers), one buffer per arming: a
            // multishot receive that keeps up with its socket would take
            // each buffer given back as its data comes, before a starved
            // connection is armed again at the end of the turn (see
            // `arm_queue`). Its completions are handled as a multishot's
            // that ended after one (the same user data kind); multishots
            // armed before the credit came into force are cancelled then
            // ([`Shard::cancel_multishots`]).
            RecvPlan::Multishot if self.credit.is_some() => (
                RecvOp::SingleShot,
                opcode::Recv::new(
                    types::Fd(e.fd),
                    std::ptr::null_mut(),
                    self.bufs.buf_bytes() as u32,
                )
                .buf_group(self.bufs.bgid)
                .build()
                .flags(squeue::Flags::BUFFER_SELECT)
                .user_data(user_data(KIND_RECV, slot, gen)),
            ),
            RecvPlan::Multishot => (
                RecvOp::Multishot,
                opcode::RecvMulti::new(types::Fd(e.fd), self.bufs.bgid)
                    .build()
                    .user_data(user_data(KIND_RECV, slot, gen)),
            ),
            RecvPlan::Exact => {
                let fd = e.fd;
                let Some(buf) = e.conn.exact_read_buf() else {
                    return;
                };
                // The buffer is the connection's heap memory; it stays put
                // until the completion comes back to `on_recv_exact`, and the
                // entry is not freed while its receive is in flight (see
                // finish_close).
                let sqe = opcode::Recv::new(types::Fd(fd), buf.as_mut_ptr(), buf.len() as u32)
                    .build()
                    .user_data(user_data(KIND_RECV_EXACT, slot, gen));
                (RecvOp::Exact, sqe)
            }
            RecvPlan::Wait => return,
        };
        e.io.armed(op);
        self.push_sqe(sqe);
    }

    /// The loop: wait, reap a batch of completions, process them, hand frames
    /// to the writer, submit once.
    pub fn run(mut self) {
        let mut last_tick = Instant::now();
        loop {
            self.push_overflow();
            for lane in &mut self.lanes {
                lane.note_pause(self.turn_now);
            }
            let paused_for = lane::shortest_pause(&self.lanes, self.turn_now);
            let timeout = wait_for(paused_for);
            let plan = self.turn_wait.plan(timeout);
            let ts = types::Timespec::from(timeout);
            let args = types::SubmitArgs::new()
                .timespec(&ts)
                .min_wait_usec(plan.min_wait_us);
            match self.ring.submitter().submit_with_args(plan.want, &args) {
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
                if cqueue::buffer_select(cqe.flags()).is_some() {
                    self.bufs.taken();
                }
                self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
            }
            self.turn_now = Instant::now();
            // The receive completions just reaped: their frames' latency
            // starts here.
            for lane in &mut self.lanes {
                lane.batcher.received_at = self.turn_now;
            }
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
                    KIND_CANCEL => self.on_cancel(slot, res),
                    _ => {}
                }
            }
            self.cqes = cqes;
            let limited = self.credit.is_some();
            let credit = self.recv_credit();
            if !limited && self.credit.is_some() {
                // Once per entry into the credit, not per turn: receives
                // armed from now on are single-shot.
                self.cancel_multishots();
            }
            self.bufs.set_limit(credit);
            self.bufs.publish();
            // Parked connections go again (and first) once the kernel has
            // buffers and at most half are held by deferred completions, not
            // only when all are back: under sustained overload that might
            // never happen.
            let buffers = self.bufs.in_kernel() > 0 && !self.buffers_scarce();
            let mut arms = std::mem::take(&mut self.arms);
            let order = arms.take(buffers, |s| self.takes_buffers(s), |s| self.held_back(s));
            self.arms = arms;
            for &slot in &order {
                self.arm_recv(slot);
            }
            self.arms.recycle(order);
            for lane in &mut self.lanes {
                lane.batcher.flush();
            }
            self.publish_stats();
            let now = Instant::now();
            if now.duration_since(last_tick) >= Duration::from_millis(100) {
                last_tick = now;
                self.check_timeouts(now);
                self.resume_accepts(now);
                // Parked connections try again at least this often: a lane
                // stuck for long may hold buffers that never come back.
                let mut arms = std::mem::take(&mut self.arms);
                arms.release_parked(|s| self.held_back(s));
                self.arms = arms;
            }
            if self.shared.shutdown.load(Ordering::Acquire) && self.drain_step(now) {
                break;
            }
        }
        self.quiesce();
        let lost = lane::close_all(&mut self.lanes);
        if lost > 0 {
            log::error!(
                "shard {}: {lost} messages decoded after the writer stopped were not written",
                self.id
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
        let held: Vec<lane::Held> = self.lanes.iter_mut().flat_map(|l| l.take_all()).collect();
        for h in held {
            if let Some(bid) = h.buffer() {
                self.bufs.give_back(bid);
            }
            let (ud, flags) = (h.ud, h.flags);
            let (kind, gen, slot) = split_user_data(ud);
            if let Some(e) = self.entry_mut(slot, gen) {
                e.io.deferred_taken();
                if kind == KIND_RECV_EXACT || !cqueue::more(flags) {
                    // That was the receive's last completion.
                    e.io.recv_ended();
                }
            }
        }
        for slot in 0..self.slots.len() as u32 {
            let gen = self.slots[slot as usize].gen;
            let Some(e) = self.slots[slot as usize].entry.as_mut() else {
                continue;
            };
            let mut cancels = Vec::new();
            if let Some(op) = e.io.recv() {
                cancels.push(user_data(recv_kind(op), slot, gen));
            }
            if e.send.in_flight() {
                cancels.push(user_data(KIND_SEND, slot, gen));
            }
            if e.io.abort() {
                // SAFETY: fd is this connection's socket, still open.
                unsafe { libc::shutdown(e.fd, libc::SHUT_RDWR) };
            }
            for ud in cancels {
                self.push_cancel(ud, slot, gen);
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
                    KIND_RECV if !cqueue::more(flags) => e.io.recv_ended(),
                    KIND_RECV_EXACT => e.io.recv_ended(),
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
                if e.io.recv().is_some() || e.send.in_flight() {
                    // The kernel may still write into its exact-read buffer
                    // or read its send buffer: never free them (the
                    // process is exiting).
                    std::mem::forget(e);
                }
            }
        }
        self.live = 0;
    }

    /// The receive credit just came into force: cancels the multishot
    /// receives armed before it. One that keeps up with its socket would
    /// otherwise take every buffer given back until it ended (ENOBUFS, or a
    /// pause), and its connection got ~2.5× the others' share (session 8,
    /// eight mTLS senders at the maximum rate: two at 10.8M-11.9M messages,
    /// six at 4.7M). Each then ends with its last completion (`on_recv`:
    /// data that raced in is processed, `-ECANCELED` ends it) and is
    /// re-armed single-shot in the fair order ([`arm_queue`]). Costs one
    /// pass over the slots per entry into the credit (at most one per
    /// [`CREDIT_HOLD_MS`]), and a cancel per running multishot.
    fn cancel_multishots(&mut self) {
        let mut cancels = 0u64;
        for slot in 0..self.slots.len() as u32 {
            let s = &mut self.slots[slot as usize];
            let gen = s.gen;
            let Some(e) = s.entry.as_mut() else {
                continue;
            };
            if !e.io.cancel_multishot() {
                continue;
            }
            self.push_cancel(
                user_data(recv_kind(RecvOp::Multishot), slot, gen),
                slot,
                gen,
            );
            cancels += 1;
        }
        let stats = &self.shared.stats;
        stats.recv_credit_entries.fetch_add(1, Relaxed);
        if cancels > 0 {
            stats.recv_credit_cancels.fetch_add(cancels, Relaxed);
        }
    }

    /// Asks the kernel to cancel the operation whose user data is `target`
    /// (`slot`'s, or a listener's with generation 0). The cancel's own
    /// completion comes back as `KIND_CANCEL` and changes nothing
    /// ([`Self::on_cancel`]): the cancelled operation ends with its own.
    fn push_cancel(&mut self, target: u64, slot: u32, gen: u32) {
        let sqe = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data(KIND_CANCEL, slot, gen));
        self.push_sqe(sqe);
    }

    /// A cancel's own completion. Nothing follows from it: the receive it
    /// aimed at ends with its own last completion, whatever this says
    /// (0: cancelled; ENOENT: it had ended already; EALREADY: it ends
    /// soon), and its connection's state moves on that one. Any other
    /// result is a bug in the user data; the receive then ends when its
    /// buffers run out or its connection closes.
    fn on_cancel(&self, slot: u32, res: i32) {
        if res < 0 && -res != libc::ENOENT && -res != libc::EALREADY {
            log::debug!(
                "shard {}: cancel of slot {slot}'s operation failed: {}",
                self.id,
                std::io::Error::from_raw_os_error(-res)
            );
        }
    }

    fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|s| s.entry.as_ref())
            .map(|e| e.io.recv().is_some() as usize + e.send.in_flight() as usize)
            .sum()
    }

    /// Whether a receive completion of this connection must wait: its
    /// earlier ones wait (order), or its lane's ring is full and the
    /// connection could produce frames. Handshakes go on: they produce
    /// none (but for data sent with the client's Finished, which is small).
    /// Another lane being full does not matter.
    fn must_defer(&self, slot: u32, gen: u32) -> bool {
        let Some(e) = self
            .slots
            .get(slot as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.entry.as_ref())
        else {
            return false;
        };
        let full = self.lanes[lane::lane_for(&self.lane_of_source, e.source)]
            .batcher
            .is_full();
        e.io.must_defer(full, e.conn.is_handshaking())
    }

    /// Keeps a receive completion for later, in its connection's lane, and
    /// pauses the connection (its receive is not re-armed until the
    /// completion has been processed). A lane at its cap of held buffers
    /// keeps a copy of the bytes instead, and the buffer goes back at once
    /// (see [`lane`]).
    fn defer(&mut self, slot: u32, cqe: (u64, i32, u32)) {
        let Some(e) = self.slots[slot as usize].entry.as_mut() else {
            return;
        };
        let lane = lane::lane_for(&self.lane_of_source, e.source);
        let cancel = match e.io.defer() {
            Deferred::Paused { cancel } => {
                self.local[e.source as usize].pauses += 1;
                cancel
            }
            Deferred::Queued => None,
        };
        let (ud, res, flags) = cqe;
        let copied = match cqueue::buffer_select(flags) {
            Some(bid) if !self.lanes[lane].may_keep_buffer() => {
                let len = usize::try_from(res).unwrap_or(0);
                let copy: Box<[u8]> = Box::from(&*self.bufs.slice_mut(bid, len));
                self.bufs.give_back(bid);
                Some(copy)
            }
            _ => None,
        };
        self.lanes[lane].hold(lane::Held {
            ud,
            res,
            flags,
            reaped: self.turn_now,
            copied,
        });
        if let Some(kind) = cancel {
            let gen = self.slots[slot as usize].gen;
            self.push_cancel(user_data(recv_kind(kind), slot, gen), slot, gen);
        }
    }

    /// Once a lane's writer has made room, processes that lane's deferred
    /// completions in order, as long as there is room, and resumes
    /// connections with none left. Lanes resume independently.
    fn resume_deferred(&mut self, now_ns: u64) {
        for l in 0..self.lanes.len() {
            self.resume_lane(l, now_ns);
        }
    }

    /// Provided buffers kept by the lanes' held completions.
    fn deferred_buffers(&self) -> usize {
        self.lanes.iter().map(Lane::held_buffers).sum()
    }

    /// Held completions keep more than half the provided buffers: parked
    /// connections (their receive ended for lack of one) wait rather than
    /// being re-armed into an empty ring. With several lanes their caps
    /// keep this false.
    fn buffers_scarce(&self) -> bool {
        self.deferred_buffers() > self.shared.config.recv_buffers_per_shard / 2
    }

    /// Whether `slot`'s connection waits for its lane: the lane holds a
    /// batch its writer has no room for, and the connection could produce
    /// frames (a handshake produces none and goes on, as in
    /// [`IoState::must_defer`]). False for a slot with no connection.
    fn waits_for_lane(&self, slot: u32) -> bool {
        self.slots
            .get(slot as usize)
            .and_then(|s| s.entry.as_ref())
            .is_some_and(|e| {
                !e.conn.is_handshaking()
                    && self.lanes[lane::lane_for(&self.lane_of_source, e.source)]
                        .batcher
                        .is_full()
            })
    }

    /// Whether a parked `slot` stays parked: with several lanes, while it
    /// waits for its lane (still full); re-armed, it would only take
    /// buffers the other lanes' connections need, to hold them (a stuck
    /// lane's every 100 ms); it goes once its lane has room. With one lane
    /// all go, as the receive credit ([`bufring::Credit`]) already bounds
    /// what the kernel may fill while the lane is held back.
    fn held_back(&self, slot: u32) -> bool {
        self.lanes.len() > 1 && self.waits_for_lane(slot)
    }

    /// Whether `slot`'s next receive takes provided buffers, so it waits
    /// behind parked connections while buffers are short: a multishot
    /// receive of a connection past its handshake.
    fn takes_buffers(&self, slot: u32) -> bool {
        self.slots
            .get(slot as usize)
            .and_then(|s| s.entry.as_ref())
            .is_some_and(|e| !e.conn.is_handshaking() && e.conn.recv_plan() == RecvPlan::Multishot)
    }

    /// How many receive buffers the kernel may hold ([`bufring::Credit`]):
    /// all, unless a lane is held back or was within [`CREDIT_HOLD_MS`];
    /// then what the held lanes' writers drain in `max_queue_delay_ms`, so
    /// what waits in the shard is bounded in time like the writer's queue.
    /// A lane held for over [`PAUSED_POLL_MS`] does not count: its writer
    /// is failing, its connections are paused anyway, and limiting the
    /// kernel's buffers for it would only slow the other groups.
    fn recv_credit(&mut self) -> u16 {
        let all = self.bufs.entries();
        let stuck_after = Duration::from_millis(PAUSED_POLL_MS);
        let mut held = false;
        let mut budget_bytes = 0u64;
        for l in &self.lanes {
            if l.is_held() && !l.is_stuck(self.turn_now, stuck_after) {
                held = true;
                match l.batcher.drain_budget_bytes() {
                    Some(b) => budget_bytes += b,
                    // No time bound, or the rate not measured yet.
                    None => return all,
                }
            }
        }
        if held {
            // Half the delay for what waits in the shard, half for the
            // writer's queue.
            let n = budget_bytes / 2 / self.bufs.buf_bytes().max(1) as u64;
            let n = u16::try_from(n)
                .unwrap_or(all)
                .clamp(CREDIT_MIN_BUFFERS, CREDIT_MAX_BUFFERS)
                .min(all);
            self.credit = Some((self.turn_now + Duration::from_millis(CREDIT_HOLD_MS), n));
        }
        match self.credit {
            Some((until, n)) if self.turn_now < until => n,
            _ => {
                self.credit = None;
                all
            }
        }
    }

    /// [`resume_deferred`](Self::resume_deferred) for lane `l`, once its
    /// writer has room.
    fn resume_lane(&mut self, l: usize, now_ns: u64) {
        if !self.lanes[l].is_held() || !self.lanes[l].batcher.try_resume() {
            return;
        }
        while !self.lanes[l].batcher.is_full() {
            let Some(h) = self.lanes[l].take() else {
                break;
            };
            // Its latency counts from when it was reaped, not resumed.
            self.lanes[l].batcher.received_at = h.reaped;
            let (kind, gen, slot) = split_user_data(h.ud);
            if self
                .entry_mut(slot, gen)
                .is_some_and(|e| e.io.deferred_taken())
            {
                self.arms.ready(slot);
            }
            // A deferred completion's connection is of this lane: its
            // frames go to this lane's batcher.
            match kind {
                KIND_RECV => self.on_recv_held(slot, gen, h.res, h.flags, h.copied, now_ns),
                _ => self.on_recv_exact(slot, gen, h.res, now_ns),
            }
        }
        self.lanes[l].batcher.received_at = self.turn_now;
    }

    fn entry_mut(&mut self, slot: u32, gen: u32) -> Option<&mut Entry> {
        let s = self.slots.get_mut(slot as usize)?;
        if s.gen != gen {
            return None;
        }
        s.entry.as_mut()
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
