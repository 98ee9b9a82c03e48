//! One sending connection: an explicit state machine driven by readiness
//! events from the worker (`send.rs`).
//!
//! ```text
//! Idle -> Connecting -> Handshaking -> [Confirming] -> Sending | Holding -> Closing -> Done
//!                 \_____________\______________\_____________\____________\-> Failed
//! ```
//!
//! - Confirming (TLS 1.3 only): the client's side of a TLS 1.3 handshake ends
//!   before the server has checked the client's certificate (or noticed that
//!   there is none), so a refusal arrives *after* it. Waiting briefly for the
//!   server's first post-handshake record (a session ticket, or the refusal
//!   alert) reports a refusal as one, with the server's reason, instead of
//!   counting messages as sent that the server then drops.
//! - Sending: messages are encoded straight into the output buffer, sealed
//!   as records in place (TLS 1.3: `tls13.rs`; TLS 1.2: rustls), in batches
//!   of up to `write_bytes`, and written with one large `write`; the
//!   server's records (tickets, alerts, KeyUpdates) are always read, so it
//!   never stalls on us.
//! - Closing: close_notify, flush, shutdown(Write), then read to EOF within
//!   `close_timeout`, so the server never sees a reset with data unread.
//!
//! `error.rs`: why a connection failed; `wire.rs`: its bytes in and out;
//! `records.rs`: messages sealed into records.

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use ringest::tls::driver::{self, DriveError, Progress as TlsProgress};
use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::unbuffered::ConnectionState;
use rustls::ClientConfig;

use crate::congestion::Congestion;
use crate::message::{ConnEncoder, TLS_PLAINTEXT_MAX_BYTES};
use crate::schedule::{Schedule, Tick};
use crate::sys::{self, Epoll};
use crate::tls13::{self, Direct, RecordError};

mod error;
mod records;
mod wire;

pub use error::{classify_io, ConnError};
use error::{classify_record, classify_tls};

/// Reads per readiness event before yielding to other connections.
const READS_PER_TURN_MAX: usize = 64;
/// Receive buffer: one full record to start with...
const INBUF_START_BYTES: usize = 16 * 1024 + 512;
/// ...grown up to this for a large handshake flight.
const INBUF_MAX_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Connecting,
    Handshaking,
    Confirming,
    Sending,
    Holding,
    Closing,
    Done,
    Failed,
}

impl Phase {
    pub fn is_terminal(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed)
    }
}

/// What the connection does once its handshake is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Send messages until the quota or the end of the run.
    Stream,
    /// Complete the handshake, close cleanly, count it, reconnect.
    HandshakeOnly,
    /// Stay connected and idle until the end of the run.
    HoldIdle,
}

/// Everything a connection needs from the run's plan, borrowed per call.
pub struct Ctx<'a> {
    pub now_ns: u64,
    pub mode: Mode,
    pub tls: Option<&'a Arc<ClientConfig>>,
    pub server_name: &'a ServerName<'static>,
    /// Wait this long after a TLS 1.3 handshake for the server to accept us.
    pub confirm_ns: u64,
    pub timeout_ns: u64,
    pub close_timeout_ns: u64,
    pub records_per_write: u64,
    pub write_bytes: usize,
    /// Paced sends keep to this grid (`--tick-us`).
    pub tick: Tick,
    /// Bytes one connection may write per turn before the others get theirs.
    pub turn_bytes: usize,
    /// Send TLS 1.3 data through loadgen's record layer (else rustls's).
    pub direct: bool,
    /// Records per key before a KeyUpdate (default: the suite's limit).
    pub rekey_after: Option<u64>,
    pub latency: Option<&'a mut hdrhistogram::Histogram<u64>>,
}

/// What a `step` reports back to the worker.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    /// Messages that became fully handed to the kernel in this step.
    pub sent: u64,
    /// Framed plaintext bytes of those messages.
    pub sent_bytes: u64,
    /// Bytes written to the socket (TLS records on the wire).
    pub wire_bytes: u64,
    /// The connection completed a handshake (or TCP connect with --tcp).
    pub established: bool,
    /// A handshake-only cycle ended with a clean close.
    pub cycle_done: bool,
    /// The phase changed (the worker refreshes its lists).
    pub phase_changed: bool,
}

/// The TLS side of a connection.
enum Tls {
    /// rustls: the handshake, and the data phase of TLS 1.2, hold-idle and
    /// handshake-only connections.
    Rustls(Box<UnbufferedClientConnection>),
    /// The TLS 1.3 data phase on loadgen's record layer.
    Direct(Box<Direct>),
}

/// Where and how one connection connects.
#[derive(Clone, Copy, Debug)]
pub struct Dial {
    pub target: SocketAddr,
    /// Bound before connecting; its port is chosen at connect
    /// (IP_BIND_ADDRESS_NO_PORT), so each source address has the whole
    /// ephemeral range towards `target`.
    pub source: Option<SocketAddr>,
    /// TCP_NODELAY: handshake round trips and paced sends must not wait for Nagle.
    pub nodelay: bool,
    /// TCP_CONGESTION (`--tcp-congestion`); None: the system's.
    pub congestion: Option<Congestion>,
}

pub struct ClientConn {
    pub idx: u32,
    pub phase: Phase,
    stream: Option<TcpStream>,
    tls: Option<Tls>,
    deadline_ns: u64,
    pub enc: ConnEncoder,
    /// Next sequence number to encode.
    pub seq: u64,
    /// Messages fully handed to the kernel.
    pub sent: u64,
    /// Messages (Stream) or handshakes (HandshakeOnly) this slot is to do.
    pub quota: u64,
    /// Messages per second for this connection (rate mode); the schedule
    /// starts when the connection is established, offset by `stagger_ns`.
    rate: Option<f64>,
    stagger_ns: u64,
    pub sched: Option<Schedule>,
    /// Received bytes not yet processed: `inbuf[in_start..in_end]`.
    inbuf: Vec<u8>,
    in_start: usize,
    in_end: usize,
    /// Bytes to write (TLS records or plain frames): `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// Scratch for plaintext handed to rustls, or a message over 16 KiB.
    record: Vec<u8>,
    /// The batch being flushed: first seq, messages and framed bytes.
    fill_first: u64,
    fill_msgs: u64,
    fill_bytes: u64,
    pub writable: bool,
    pub readable: bool,
    /// TCP end of stream from the server.
    eof: bool,
    /// The server's close_notify.
    peer_closed: bool,
    /// rustls finished the handshake.
    hs_done: bool,
    close_queued: bool,
    shut_wr: bool,
    /// The server sent something after the handshake (it accepted us).
    confirmed: bool,
    /// When the next message is due (rate mode), for the worker's timer.
    pub next_due_ns: u64,
    pub handshakes: u64,
    /// Handshake-only cycles completed with a clean close.
    pub cycles: u64,
    pub error: Option<ConnError>,
    /// Negotiated protocol and suite, for the report.
    pub negotiated: Option<(String, String)>,
}

impl ClientConn {
    pub fn new(idx: u32, enc: ConnEncoder, quota: u64, rate: Option<f64>, stagger_ns: u64) -> Self {
        ClientConn {
            idx,
            phase: Phase::Idle,
            stream: None,
            tls: None,
            deadline_ns: 0,
            enc,
            seq: 0,
            sent: 0,
            quota,
            rate,
            stagger_ns,
            sched: None,
            inbuf: Vec::new(),
            in_start: 0,
            in_end: 0,
            out: Vec::new(),
            out_pos: 0,
            record: Vec::new(),
            fill_first: 0,
            fill_msgs: 0,
            fill_bytes: 0,
            writable: false,
            readable: false,
            eof: false,
            peer_closed: false,
            hs_done: false,
            close_queued: false,
            shut_wr: false,
            confirmed: false,
            next_due_ns: 0,
            handshakes: 0,
            cycles: 0,
            error: None,
            negotiated: None,
        }
    }

    pub fn deadline_ns(&self) -> u64 {
        self.deadline_ns
    }

    /// Opens a nonblocking TCP connection as `dial` says and registers it
    /// with `token`.
    pub fn start_connect(
        &mut self,
        dial: Dial,
        epoll: &Epoll,
        token: u64,
        now_ns: u64,
        timeout_ns: u64,
    ) -> Result<(), ConnError> {
        debug_assert!(self.stream.is_none());
        let Dial {
            target,
            source,
            nodelay,
            congestion,
        } = dial;
        let domain = socket2::Domain::for_address(target);
        let sock = socket2::Socket::new(
            domain,
            socket2::Type::STREAM.nonblocking().cloexec(),
            Some(socket2::Protocol::TCP),
        )
        .map_err(|e| ConnError::Io(format!("socket: {e}")))?;
        if nodelay {
            let _ = sock.set_nodelay(true);
        }
        if let Some(cc) = congestion {
            cc.apply(&sock)
                .map_err(|e| ConnError::Io(format!("TCP_CONGESTION {}: {e}", cc.as_str())))?;
        }
        if let Some(src) = source {
            sys::bind_address_no_port(&sock)
                .map_err(|e| ConnError::Io(format!("IP_BIND_ADDRESS_NO_PORT: {e}")))?;
            sock.bind(&src.into())
                .map_err(|e| ConnError::Io(format!("bind {src}: {e}")))?;
        }
        match sock.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(classify_io(&e)),
        }
        let stream: TcpStream = sock.into();
        epoll
            .add(
                stream.as_raw_fd(),
                token,
                sys::EPOLLIN | sys::EPOLLOUT | sys::EPOLLRDHUP | sys::EPOLLET,
            )
            .map_err(|e| ConnError::Io(format!("epoll: {e}")))?;
        self.stream = Some(stream);
        self.tls = None;
        self.phase = Phase::Connecting;
        self.deadline_ns = now_ns + timeout_ns;
        self.writable = false;
        self.readable = false;
        self.eof = false;
        self.peer_closed = false;
        self.hs_done = false;
        self.close_queued = false;
        self.shut_wr = false;
        self.confirmed = false;
        self.in_start = 0;
        self.in_end = 0;
        self.out.clear();
        self.out_pos = 0;
        Ok(())
    }

    pub fn on_ready(&mut self, events: u32) {
        if events & (sys::EPOLLOUT | sys::EPOLLERR | sys::EPOLLHUP) != 0 {
            self.writable = true;
        }
        if events & (sys::EPOLLIN | sys::EPOLLRDHUP | sys::EPOLLERR | sys::EPOLLHUP) != 0 {
            self.readable = true;
        }
    }

    /// True when the connection has work it can do without a new event.
    pub fn wants_turn(&self, now_ns: u64) -> bool {
        match self.phase {
            Phase::Sending => {
                self.readable
                    || (self.writable && (self.sched.is_none() || self.next_due_ns <= now_ns))
            }
            _ => false,
        }
    }

    fn release(&mut self) {
        self.stream = None;
        self.tls = None;
        self.inbuf = Vec::new();
        self.out = Vec::new();
        self.record = Vec::new();
        self.in_start = 0;
        self.in_end = 0;
        self.out_pos = 0;
    }

    fn fail(&mut self, err: ConnError, p: &mut Progress) {
        self.error = Some(err);
        self.phase = Phase::Failed;
        self.release();
        p.phase_changed = true;
    }

    /// The run is ending: established connections close cleanly, the others
    /// are abandoned (an error), except handshake-only cycles in flight.
    pub fn begin_stop(&mut self, ctx: &Ctx<'_>, p: &mut Progress) {
        match self.phase {
            Phase::Sending | Phase::Holding | Phase::Confirming => {
                self.enter_closing(ctx.now_ns, ctx.close_timeout_ns, p)
            }
            Phase::Connecting | Phase::Handshaking => {
                // A handshake-only cycle in flight finishes (and closes
                // cleanly) within its timeout; anything else was asked to be
                // established by now.
                if ctx.mode != Mode::HandshakeOnly {
                    self.fail(ConnError::NotEstablished, p);
                }
            }
            Phase::Idle => {
                self.phase = Phase::Done;
                p.phase_changed = true;
            }
            Phase::Closing | Phase::Done | Phase::Failed => {}
        }
    }

    fn enter_closing(&mut self, now_ns: u64, close_timeout_ns: u64, p: &mut Progress) {
        self.phase = Phase::Closing;
        self.deadline_ns = now_ns + close_timeout_ns;
        p.phase_changed = true;
    }

    /// Fails on a passed deadline; returns true if it did.
    pub fn check_deadline(&mut self, now_ns: u64, p: &mut Progress) -> bool {
        let err = match self.phase {
            Phase::Connecting => ConnError::ConnectTimeout,
            Phase::Handshaking => ConnError::HandshakeTimeout,
            Phase::Closing => ConnError::CloseTimeout,
            _ => return false,
        };
        if now_ns > self.deadline_ns {
            self.fail(err, p);
            return true;
        }
        false
    }

    /// Drives the state machine as far as it goes without blocking.
    pub fn step(&mut self, ctx: &mut Ctx<'_>) -> Progress {
        let mut p = Progress::default();
        if let Err(e) = self.step_inner(ctx, &mut p) {
            self.fail(e, &mut p);
        }
        p
    }

    fn step_inner(&mut self, ctx: &mut Ctx<'_>, p: &mut Progress) -> Result<(), ConnError> {
        // Each pass either returns or moves to a later phase: bounded.
        for _ in 0..8 {
            match self.phase {
                Phase::Idle | Phase::Done | Phase::Failed => return Ok(()),
                Phase::Connecting => {
                    if !self.writable && !self.readable {
                        return Ok(());
                    }
                    let stream = self.stream.as_ref().ok_or(ConnError::NotEstablished)?;
                    if let Some(e) = stream.take_error().map_err(|e| classify_io(&e))? {
                        return Err(classify_io(&e));
                    }
                    if stream.peer_addr().is_err() {
                        // Woken before the connect finished.
                        return Ok(());
                    }
                    p.phase_changed = true;
                    match ctx.tls {
                        Some(cfg) => {
                            let conn = UnbufferedClientConnection::new(
                                cfg.clone(),
                                ctx.server_name.clone(),
                            )
                            .map_err(|e| ConnError::Tls(e.to_string()))?;
                            self.tls = Some(Tls::Rustls(Box::new(conn)));
                            self.phase = Phase::Handshaking;
                            self.deadline_ns = ctx.now_ns + ctx.timeout_ns;
                        }
                        None => self.after_handshake(ctx, p)?,
                    }
                }
                Phase::Handshaking => {
                    self.drive_rustls()?;
                    self.read_incoming()?;
                    if !self.flush_out(p)? && !self.hs_done {
                        return Ok(());
                    }
                    if !self.hs_done {
                        if self.eof || self.peer_closed {
                            return Err(ConnError::PeerClosed);
                        }
                        return Ok(());
                    }
                    if let Some(Tls::Rustls(conn)) = &self.tls {
                        self.negotiated = Some((
                            conn.protocol_version()
                                .map(|v| format!("{v:?}"))
                                .unwrap_or_default(),
                            conn.negotiated_cipher_suite()
                                .map(|s| format!("{:?}", s.suite()))
                                .unwrap_or_default(),
                        ));
                    }
                    p.phase_changed = true;
                    let needs_confirm =
                        ctx.mode != Mode::HandshakeOnly && ctx.confirm_ns > 0 && self.is_tls13();
                    if needs_confirm && !self.confirmed {
                        self.phase = Phase::Confirming;
                        self.deadline_ns = ctx.now_ns + ctx.confirm_ns;
                    } else {
                        self.after_handshake(ctx, p)?;
                    }
                }
                Phase::Confirming => {
                    self.read_incoming()?;
                    self.flush_out(p)?;
                    if self.eof || self.peer_closed {
                        return Err(ConnError::PeerClosed);
                    }
                    if !self.confirmed && ctx.now_ns < self.deadline_ns {
                        return Ok(());
                    }
                    p.phase_changed = true;
                    self.after_handshake(ctx, p)?;
                }
                Phase::Holding => {
                    self.read_incoming()?;
                    self.flush_out(p)?;
                    if self.eof || self.peer_closed {
                        return Err(ConnError::PeerClosed);
                    }
                    return Ok(());
                }
                Phase::Sending => {
                    self.read_incoming()?;
                    if self.eof || self.peer_closed {
                        return Err(ConnError::PeerClosed);
                    }
                    return self.pump(ctx, p);
                }
                Phase::Closing => return self.close_step(ctx, p),
            }
        }
        Ok(())
    }

    fn is_tls13(&self) -> bool {
        match &self.tls {
            Some(Tls::Rustls(c)) => c.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3),
            Some(Tls::Direct(_)) => true,
            None => false,
        }
    }

    fn after_handshake(&mut self, ctx: &Ctx<'_>, p: &mut Progress) -> Result<(), ConnError> {
        p.established = true;
        self.handshakes += 1;
        match ctx.mode {
            Mode::Stream => {
                if ctx.direct && self.is_tls13() {
                    if let Some(Tls::Rustls(conn)) = self.tls.take() {
                        let d = Direct::from_rustls(*conn, ctx.rekey_after)
                            .map_err(|e| ConnError::Tls(e.describe()))?;
                        self.tls = Some(Tls::Direct(Box::new(d)));
                    }
                }
                self.phase = Phase::Sending;
                if let Some(rate) = self.rate {
                    let s = Schedule::new(ctx.now_ns + self.stagger_ns, rate);
                    self.next_due_ns = ctx.tick.ceil(s.intended_ns(self.seq));
                    self.sched = Some(s);
                }
                if self.sent >= self.quota {
                    self.enter_closing(ctx.now_ns, ctx.close_timeout_ns, p);
                }
            }
            Mode::HoldIdle => self.phase = Phase::Holding,
            Mode::HandshakeOnly => self.enter_closing(ctx.now_ns, ctx.close_timeout_ns, p),
        }
        Ok(())
    }

    fn close_step(&mut self, ctx: &mut Ctx<'_>, p: &mut Progress) -> Result<(), ConnError> {
        if !self.close_queued {
            self.close_queued = true;
            match &mut self.tls {
                Some(Tls::Direct(d)) => d
                    .close_notify(&mut self.out)
                    .map_err(|e| ConnError::Tls(e.describe()))?,
                Some(Tls::Rustls(conn)) => {
                    let (discard, queued) = driver::queue_close_notify(
                        conn.as_mut(),
                        &mut self.inbuf[self.in_start..self.in_end],
                        &mut self.out,
                    );
                    self.in_start += discard;
                    queued.map_err(|e| ConnError::Tls(e.to_string()))?;
                }
                None => {}
            }
        }
        if !self.flush(ctx, p)? {
            return Ok(());
        }
        if !self.shut_wr {
            self.shut_wr = true;
            if let Some(s) = &self.stream {
                let _ = s.shutdown(Shutdown::Write);
            }
        }
        self.read_incoming()?;
        // A KeyUpdate reply may have been queued while reading.
        if !self.flush_out(p)? {
            return Ok(());
        }
        if self.eof || self.peer_closed {
            self.release();
            p.phase_changed = true;
            if ctx.mode == Mode::HandshakeOnly {
                p.cycle_done = true;
                self.cycles += 1;
                self.phase = if self.cycles >= self.quota {
                    Phase::Done
                } else {
                    Phase::Idle
                };
            } else {
                self.phase = Phase::Done;
            }
        }
        Ok(())
    }
}
