//! One connection's state machine, without IO: bytes in, frames and bytes to
//! send out. The io_uring shard feeds it what it receives and sends what it
//! returns; tests drive it the same way from memory.
//!
//! States (see [`Phase`]):
//!
//! ```text
//!  Plain (TCP) ─────────────────────────────────────────► frames
//!  Handshaking ──WriteTraffic──► decide ──userspace──► Records (our record layer)
//!       │                             └──offload────► KtlsPending ──enable──► Ktls
//!       └─ reads: multishot, or record-exact when kTLS may follow
//! ```
//!
//! `Records` decrypts in place; `Ktls` gets plaintext from the kernel and
//! reads control records (alerts, KeyUpdate) through [`offload`]. Every phase
//! ends in `Closed`.

mod local_close;
mod offload;

use std::fmt;
use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::ServerConfig;

use crate::batch::{Batcher, ConnMeta};
use crate::framing::{Decoder, Frame, FramingError};
use crate::ktls::{CryptoInfo, Decision, KtlsMode, KtlsSupport, UserspaceReason};
use crate::record::{self, ControlEvent, Needed, RecordError, RecordReader, RecordWriter};
use crate::tls::{looks_like_tls, refusal_detail, HandshakeFailure, PeerIdentity};

pub use local_close::LocalClose;
pub use offload::{
    path_label, ControlOutcome, ExactReads, FdSocket, KtlsClose, KtlsSocket, Offloaded, Pending,
    EXACT_READ_BYTES_MAX,
};

/// Ciphertext kept while handshaking. rustls's largest handshake message is
/// 64 KiB; in 512-byte fragments its record headers add about 1%, and a
/// receive of up to 64 KiB may sit behind it. A client that needs more than
/// this is refused rather than allowed to grow the buffer.
const HANDSHAKE_BUFFERED_BYTES_MAX: usize = 192 * 1024;

/// Why a connection was closed by us. Its label is the stats label.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseReason {
    Handshake(HandshakeFailure),
    /// A refusal by our trust policy, with its explanation (the DN that did
    /// not match, the fingerprint, the names tried).
    Refused(HandshakeFailure, String),
    Framing(FramingError),
    /// Our record layer refused what the peer sent (a bad header, a record
    /// that does not decrypt, an illegal message after the handshake).
    Record(RecordError),
    /// The peer closed with a fatal alert after the handshake.
    PeerAlert(rustls::AlertDescription),
    /// rustls refused a record it read for us after its handshake (data
    /// that came with the client's Finished).
    Rustls(rustls::Error),
    /// On an offloaded connection: a control record, or the kernel refusing a record.
    Ktls(KtlsClose),
    /// A bug of ours (or of a library) panicked while handling this
    /// connection's bytes: the connection is closed, the engine keeps running.
    Internal(String),
    /// Our decision from the connection's behaviour or its socket.
    Local(LocalClose),
}

impl CloseReason {
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Handshake(f) | CloseReason::Refused(f, _) => f.label(),
            CloseReason::Framing(e) => e.label(),
            CloseReason::Record(e) => e.label(),
            CloseReason::PeerAlert(_) => "peer_alert",
            CloseReason::Rustls(_) => "tls_error",
            CloseReason::Ktls(k) => k.label(),
            CloseReason::Internal(_) => "internal_error",
            CloseReason::Local(l) => l.label(),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Handshake(h) => {
                write!(f, "TLS handshake refused: {h} (hint: {})", h.hint())
            }
            CloseReason::Refused(h, detail) => {
                write!(
                    f,
                    "TLS handshake refused: {h}: {detail} (hint: {})",
                    h.hint()
                )
            }
            CloseReason::Framing(e) => write!(f, "framing error: {e}"),
            CloseReason::Record(e) => write!(f, "TLS record refused: {e}"),
            CloseReason::PeerAlert(a) => write!(f, "the client sent alert {a:?}"),
            CloseReason::Rustls(e) => write!(f, "TLS error: {e}"),
            CloseReason::Ktls(k) => write!(f, "{k}"),
            CloseReason::Internal(e) => write!(f, "internal error (a bug; please report it): {e}"),
            CloseReason::Local(l) => write!(f, "{l}"),
        }
    }
}

/// What the shard should do after feeding data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    /// The peer sent close_notify: every message before it is kept; close now.
    PeerClosed,
}

/// Per-connection counters the shard adds to shared stats once per loop turn.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnCounters {
    pub messages: u64,
    pub bytes: u64,
    pub tls_copied_bytes: u64,
}

enum Phase {
    Plain,
    Handshaking(Box<UnbufferedServerConnection>),
    /// After the handshake: records decrypted in place by our record layer.
    Records(Box<Records>),
    /// Keys out of rustls; waiting for the last handshake flight to be sent
    /// before the kernel takes the socket (no receive is armed meanwhile).
    KtlsPending(Box<Pending>),
    /// The kernel decrypts; received bytes are plaintext.
    Ktls(Box<Offloaded>),
    Closed,
}

/// How the shard should receive for this connection next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvPlan {
    /// Multishot receive into the shard's buffer ring.
    Multishot,
    /// One single-shot receive of exactly [`Conn::exact_read_buf`]'s length
    /// into that buffer (handshake of a connection that may be offloaded).
    Exact,
    /// Nothing until the shard has called [`Conn::enable_ktls`].
    Wait,
}

/// A source's kTLS setting and what the kernel can do, for each connection.
#[derive(Clone)]
pub struct KtlsPlan {
    pub mode: KtlsMode,
    pub support: Arc<KtlsSupport>,
}

impl KtlsPlan {
    /// Record-exact handshake reads are needed only where offload can happen.
    fn may_offload(&self) -> bool {
        self.mode != KtlsMode::Off && self.support.ulp
    }
}

/// Things the shard counts, each taken once.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnEvents {
    /// The connection's data path was settled: `ktls` or `userspace_<reason>`.
    pub tls_path: Option<&'static str>,
    /// A control record read on an offloaded socket, by type.
    pub ktls_control: Option<&'static str>,
}

struct Records {
    reader: RecordReader,
    writer: RecordWriter,
}

pub struct Conn {
    phase: Phase,
    decoder: Decoder,
    meta: Arc<ConnMeta>,
    /// A TLS record cut by the end of a receive buffer, kept until it is whole.
    tls_in: Vec<u8>,
    /// While handshaking: every byte rustls has not yet discarded. A
    /// handshake message may span many records (a certificate chain over
    /// 16 KiB, or 512-byte fragments from embedded stacks); rustls joins
    /// its pieces inside this buffer and leaves them at its front until the
    /// whole message is there, so they must stay, in order, between reads.
    handshake_in: Vec<u8>,
    seen_bytes: bool,
    /// Only for TLS sources.
    ktls: Option<KtlsPlan>,
    /// While handshaking with record-exact reads: the record being read.
    exact: Option<ExactReads>,
    pub counters: ConnCounters,
    pub events: ConnEvents,
}

/// Where frames go: the shard's batcher, tagged with this connection.
struct FrameSink<'a> {
    batcher: &'a mut Batcher,
    meta: &'a Arc<ConnMeta>,
    now_ns: u64,
    counters: &'a mut ConnCounters,
}

impl FrameSink<'_> {
    #[inline]
    fn emit(&mut self, frame: Frame<'_>) {
        self.counters.messages += 1;
        self.counters.bytes += frame.bytes.len() as u64;
        self.batcher.push(self.meta, self.now_ns, frame.bytes);
    }
}

impl Conn {
    pub fn new_plain(meta: Arc<ConnMeta>, decoder: Decoder) -> Conn {
        Conn {
            phase: Phase::Plain,
            decoder,
            meta,
            tls_in: Vec::new(),
            handshake_in: Vec::new(),
            seen_bytes: false,
            ktls: None,
            exact: None,
            counters: ConnCounters::default(),
            events: ConnEvents::default(),
        }
    }

    /// A TLS connection. Where `ktls` may offload it, the handshake is read
    /// record-exactly ([`RecvPlan::Exact`]); otherwise nothing changes from
    /// a connection that can never be offloaded.
    pub fn new_tls(
        config: Arc<ServerConfig>,
        meta: Arc<ConnMeta>,
        decoder: Decoder,
        ktls: KtlsPlan,
    ) -> Result<Conn, rustls::Error> {
        let tls = UnbufferedServerConnection::new(config)?;
        let exact = ktls.may_offload().then(ExactReads::new);
        Ok(Conn {
            phase: Phase::Handshaking(Box::new(tls)),
            decoder,
            meta,
            tls_in: Vec::new(),
            handshake_in: Vec::new(),
            seen_bytes: false,
            ktls: Some(ktls),
            exact,
            counters: ConnCounters::default(),
            events: ConnEvents::default(),
        })
    }

    pub fn is_handshaking(&self) -> bool {
        matches!(self.phase, Phase::Handshaking(_))
    }

    /// The kernel decrypts this connection.
    pub fn is_offloaded(&self) -> bool {
        matches!(self.phase, Phase::Ktls(_))
    }

    /// Keys are ready; the shard calls [`Conn::enable_ktls`] once every
    /// handshake byte it was given has been sent.
    pub fn is_ktls_pending(&self) -> bool {
        matches!(self.phase, Phase::KtlsPending(_))
    }

    pub fn recv_plan(&self) -> RecvPlan {
        match self.phase {
            Phase::Handshaking(_) if self.exact.is_some() => RecvPlan::Exact,
            Phase::KtlsPending(_) => RecvPlan::Wait,
            _ => RecvPlan::Multishot,
        }
    }

    /// Where the next record-exact read goes; its length is exactly what to
    /// read. The buffer is heap memory owned by the connection that neither
    /// moves nor is freed until the next call into the connection, so a
    /// receive in flight may write into it.
    pub fn exact_read_buf(&mut self) -> Option<&mut [u8]> {
        let ex = self.exact.as_mut()?;
        let spare = ex.spare_mut();
        (!spare.is_empty()).then_some(spare)
    }

    /// `n` bytes (> 0) arrived in [`Conn::exact_read_buf`]. Once a record is
    /// whole it goes to rustls; when the handshake ends, the buffer is
    /// dropped and [`Conn::recv_plan`] says what comes next.
    /// Runs `f` so that a panic in it closes this connection instead of the
    /// shard: nothing a peer sends may take the engine down.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, CloseReason>,
    ) -> Result<T, CloseReason> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(r) => r,
            Err(panic) => {
                self.phase = Phase::Closed;
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                Err(CloseReason::Internal(msg))
            }
        }
    }

    pub fn on_exact_read(
        &mut self,
        n: usize,
        now_ns: u64,
        batcher: &mut Batcher,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        self.guarded(|c| c.on_exact_read_unguarded(n, now_ns, batcher, out))
    }

    fn on_exact_read_unguarded(
        &mut self,
        n: usize,
        now_ns: u64,
        batcher: &mut Batcher,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        let Some(mut ex) = self.exact.take() else {
            return Ok(Outcome::Continue);
        };
        ex.filled(n);
        if !self.seen_bytes && !looks_like_tls(ex.read_so_far()) {
            self.phase = Phase::Closed;
            return Err(CloseReason::Handshake(HandshakeFailure::NotTls));
        }
        if let Err(e) = ex.want() {
            self.phase = Phase::Closed;
            return Err(CloseReason::Record(e));
        }
        let result = match ex.whole_record() {
            Some(record) => {
                let r = self.on_tls_data(record, now_ns, batcher, out);
                ex.clear();
                r
            }
            None => Ok(Outcome::Continue),
        };
        if result.is_ok() && self.is_handshaking() {
            self.exact = Some(ex);
        }
        result
    }

    /// Hands the socket to the kernel: call only once every byte the
    /// handshake produced has been sent (`TLS_TX` would wrap anything
    /// still queued a second time). On error the connection must close.
    pub fn enable_ktls(&mut self, sock: &mut impl KtlsSocket) -> Result<(), CloseReason> {
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        let Phase::KtlsPending(pending) = phase else {
            self.phase = phase;
            return Ok(());
        };
        let (tx_seq, rx_seq) = (pending.tx_seq(), pending.rx_seq());
        let offloaded = pending.enable(sock).map_err(CloseReason::Ktls)?;
        log::debug!(
            "{}: kTLS enabled ({}, tx seq {tx_seq}, rx seq {rx_seq}); data path: kernel",
            self.meta.peer,
            offloaded.version().label(),
        );
        self.phase = Phase::Ktls(Box::new(offloaded));
        self.events.tls_path = Some(path_label(Decision::Offload));
        Ok(())
    }

    /// A receive on the offloaded socket failed with EIO: the record at its
    /// head is not application data. Reads it (`recvmsg`, synchronously: it
    /// is rare and already decrypted) and acts on it.
    pub fn on_ktls_control(
        &mut self,
        sock: &mut impl KtlsSocket,
        now_ns: u64,
        batcher: &mut Batcher,
    ) -> Result<Outcome, CloseReason> {
        let Phase::Ktls(off) = &mut self.phase else {
            return Ok(Outcome::Continue);
        };
        let outcome = off.on_control(sock, &mut self.events.ktls_control);
        let mut sink = FrameSink {
            batcher,
            meta: &self.meta,
            now_ns,
            counters: &mut self.counters,
        };
        match outcome {
            ControlOutcome::Data(plain) => {
                self.decoder
                    .feed(&plain, &mut |f| sink.emit(f))
                    .map_err(CloseReason::Framing)?;
                Ok(Outcome::Continue)
            }
            ControlOutcome::Continue => Ok(Outcome::Continue),
            ControlOutcome::Finished | ControlOutcome::Eof => {
                self.phase = Phase::Closed;
                self.decoder
                    .finish(&mut |f| sink.emit(f))
                    .map_err(CloseReason::Framing)?;
                Ok(Outcome::PeerClosed)
            }
            ControlOutcome::Close(reason) => {
                if reason == KtlsClose::KeyUpdateUnfollowable {
                    // Our choice, not the peer's fault: keep what framed
                    // cleanly before the KeyUpdate (a half frame is counted
                    // by the decoder).
                    let _ = self.decoder.finish(&mut |f| sink.emit(f));
                }
                self.phase = Phase::Closed;
                Err(CloseReason::Ktls(reason))
            }
        }
    }

    /// A receive on an offloaded socket failed with `errno`. `Some` when the
    /// kernel refused what the peer sent (garbage, a forged record); `None`
    /// for errors any socket has (reset), which close as usual.
    pub fn on_ktls_recv_error(&mut self, errno: i32) -> Option<CloseReason> {
        if !self.is_offloaded() || !KtlsClose::is_kernel_refusal(errno) {
            return None;
        }
        self.phase = Phase::Closed;
        Some(CloseReason::Ktls(KtlsClose::from_recv_errno(errno)))
    }

    pub fn take_events(&mut self) -> ConnEvents {
        std::mem::take(&mut self.events)
    }

    pub fn meta(&self) -> &Arc<ConnMeta> {
        &self.meta
    }

    pub fn take_decoder_counters(&mut self) -> crate::framing::DecoderCounters {
        self.decoder.take_counters()
    }

    /// Heap bytes this connection holds beyond its fixed size (for memory accounting).
    pub fn buffered_bytes(&self) -> usize {
        self.tls_in.capacity()
            + self.handshake_in.capacity()
            + self.decoder.buffered_bytes()
            + self.exact.as_ref().map_or(0, ExactReads::capacity)
    }

    /// Feeds received bytes. `out` collects bytes to send (handshake flights, alerts).
    /// `data` may be decrypted in place.
    pub fn on_data(
        &mut self,
        data: &mut [u8],
        now_ns: u64,
        batcher: &mut Batcher,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        self.guarded(|c| c.on_data_unguarded(data, now_ns, batcher, out))
    }

    fn on_data_unguarded(
        &mut self,
        data: &mut [u8],
        now_ns: u64,
        batcher: &mut Batcher,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        match self.phase {
            Phase::Closed => Ok(Outcome::PeerClosed),
            // The kernel decrypted these bytes; they are plaintext.
            Phase::Plain | Phase::Ktls(_) => {
                if let Phase::Ktls(off) = &mut self.phase {
                    off.on_data();
                }
                let mut sink = FrameSink {
                    batcher,
                    meta: &self.meta,
                    now_ns,
                    counters: &mut self.counters,
                };
                self.decoder
                    .feed(data, &mut |f| sink.emit(f))
                    .map_err(CloseReason::Framing)?;
                Ok(Outcome::Continue)
            }
            Phase::Handshaking(_) | Phase::Records(_) => {
                self.on_tls_data(data, now_ns, batcher, out)
            }
            // No receive is armed while the keys wait for the kernel.
            Phase::KtlsPending(_) => {
                debug_assert!(false, "data while kTLS is pending");
                Err(CloseReason::Internal("data before kTLS was enabled".into()))
            }
        }
    }

    /// End of stream from the peer (FIN or reset): flush what the decoder holds.
    pub fn on_eof(&mut self, now_ns: u64, batcher: &mut Batcher) -> Result<(), CloseReason> {
        let was_handshaking = self.is_handshaking();
        self.phase = Phase::Closed;
        if was_handshaking {
            return Ok(());
        }
        let mut sink = FrameSink {
            batcher,
            meta: &self.meta,
            now_ns,
            counters: &mut self.counters,
        };
        self.decoder
            .finish(&mut |f| sink.emit(f))
            .map_err(CloseReason::Framing)
    }

    /// Splits incoming ciphertext into whole records: records wholly inside
    /// `data` are processed in place; only a record cut by the buffer's end is
    /// copied, and on the next read only the bytes that complete it.
    fn on_tls_data(
        &mut self,
        data: &mut [u8],
        now_ns: u64,
        batcher: &mut Batcher,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        if !self.seen_bytes && !data.is_empty() {
            // Only the very first bytes can tell plaintext from a ClientHello.
            self.seen_bytes = true;
            if !looks_like_tls(data) {
                self.phase = Phase::Closed;
                return Err(CloseReason::Handshake(HandshakeFailure::NotTls));
            }
        }
        if self.is_handshaking() {
            return self.on_handshake_data(data, now_ns, batcher, out);
        }
        let mut data = data;
        if !self.tls_in.is_empty() {
            // Complete the cut record first, copying only the bytes it lacks.
            loop {
                let missing = record_bytes_missing(&self.tls_in)?;
                if missing == 0 {
                    break;
                }
                if data.is_empty() {
                    return Ok(Outcome::Continue);
                }
                let take = missing.min(data.len());
                self.tls_in.extend_from_slice(&data[..take]);
                self.counters.tls_copied_bytes += take as u64;
                data = &mut data[take..];
            }
            let mut record = std::mem::take(&mut self.tls_in);
            let (consumed, outcome) = self.process_records(&mut record, now_ns, batcher, out)?;
            debug_assert!(
                consumed == record.len(),
                "a whole record is always consumed"
            );
            // The record buffer is dropped, not kept: idle connections hold no buffer.
            drop(record);
            if outcome == Outcome::PeerClosed {
                return Ok(outcome);
            }
        }
        let (consumed, outcome) = self.process_records(data, now_ns, batcher, out)?;
        if outcome == Outcome::PeerClosed {
            return Ok(outcome);
        }
        let rest = &data[consumed..];
        if !rest.is_empty() {
            // The header parser bounds the record, so this reserve is too.
            let missing = record_bytes_missing(rest)?;
            self.tls_in.reserve_exact(rest.len() + missing);
            self.tls_in.extend_from_slice(rest);
            self.counters.tls_copied_bytes += rest.len() as u64;
        }
        Ok(Outcome::Continue)
    }

    /// Handshake bytes are few, so they are copied: appended to what rustls
    /// kept from earlier reads, and that whole buffer is processed again.
    /// Once the handshake is over, what follows in the buffer is
    /// application data for the record layer; only a record cut by its end
    /// is kept (in `tls_in`), and the handshake buffer is freed.
    fn on_handshake_data(
        &mut self,
        data: &[u8],
        now_ns: u64,
        batcher: &mut Batcher,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        if self.handshake_in.len() + data.len() > HANDSHAKE_BUFFERED_BYTES_MAX {
            self.phase = Phase::Closed;
            return Err(CloseReason::Local(LocalClose::HandshakeTooLarge {
                handshake_buffered_bytes_max: HANDSHAKE_BUFFERED_BYTES_MAX,
            }));
        }
        let mut buf = std::mem::take(&mut self.handshake_in);
        buf.extend_from_slice(data);
        self.counters.tls_copied_bytes += data.len() as u64;
        let (consumed, outcome) = self.process_records(&mut buf, now_ns, batcher, out)?;
        if outcome == Outcome::PeerClosed {
            return Ok(outcome);
        }
        if self.is_handshaking() {
            // rustls may have rewritten the bytes it kept (joining fragments
            // in place): keep them exactly as they are.
            buf.drain(..consumed);
            self.handshake_in = buf;
            return Ok(Outcome::Continue);
        }
        let rest = &buf[consumed..];
        if !rest.is_empty() {
            debug_assert!(
                self.tls_in.is_empty(),
                "no cut record before the handshake ended"
            );
            record_bytes_missing(rest)?;
            self.tls_in.extend_from_slice(rest);
        }
        Ok(Outcome::Continue)
    }

    /// Runs rustls over whole records in `buf`; returns the bytes consumed.
    fn process_records(
        &mut self,
        buf: &mut [u8],
        now_ns: u64,
        batcher: &mut Batcher,
        out: &mut Vec<u8>,
    ) -> Result<(usize, Outcome), CloseReason> {
        let mut offset = 0;
        loop {
            let tls = match &mut self.phase {
                Phase::Handshaking(t) => t,
                Phase::Records(_) => {
                    let (consumed, outcome) =
                        self.read_records(&mut buf[offset..], now_ns, batcher, out)?;
                    return Ok((offset + consumed, outcome));
                }
                // Record-exact reads: the handshake's last record was the
                // whole buffer, so nothing follows it here.
                Phase::KtlsPending(_) | Phase::Ktls(_) => {
                    return Ok((offset, Outcome::Continue));
                }
                Phase::Plain | Phase::Closed => return Ok((offset, Outcome::PeerClosed)),
            };
            let UnbufferedStatus { discard, state } = tls.process_tls_records(&mut buf[offset..]);
            let mut finished_handshake = false;
            let mut early_plain = None;
            let step = match state {
                Err(e) => Step::Fail(e),
                Ok(ConnectionState::EncodeTlsData(mut s)) => {
                    encode_into(out, |b| s.encode(b)).map_err(|e| {
                        CloseReason::Internal(format!("encoding a handshake record: {e:?}"))
                    })?;
                    Step::Again
                }
                Ok(ConnectionState::TransmitTlsData(s)) => {
                    // The shard sends `out` after this call; rustls only needs to know it was taken.
                    s.done();
                    Step::Again
                }
                Ok(ConnectionState::BlockedHandshake) => Step::NeedMore,
                Ok(ConnectionState::WriteTraffic(_)) => {
                    finished_handshake = true;
                    Step::NeedMore
                }
                Ok(ConnectionState::ReadTraffic(mut r)) if self.meta.identity.is_none() => {
                    // Data that came with the client's Finished: rustls hands
                    // it out before the handshake is seen to end. Its frames
                    // must carry the peer's identity, which needs `tls`, so
                    // take the plaintext first (rare, and at most one read).
                    let mut plain = Vec::new();
                    while let Some(rec) = r.next_record() {
                        match rec {
                            Ok(rec) => plain.extend_from_slice(rec.payload),
                            Err(e) => return Err(CloseReason::Rustls(e)),
                        }
                    }
                    early_plain = Some(plain);
                    Step::Again
                }
                Ok(ConnectionState::ReadTraffic(mut r)) => {
                    let mut sink = FrameSink {
                        batcher,
                        meta: &self.meta,
                        now_ns,
                        counters: &mut self.counters,
                    };
                    let mut result = Ok(());
                    while let Some(rec) = r.next_record() {
                        match rec {
                            Ok(rec) => {
                                if let Err(e) =
                                    self.decoder.feed(rec.payload, &mut |f| sink.emit(f))
                                {
                                    result = Err(e);
                                    break;
                                }
                            }
                            Err(e) => return Err(CloseReason::Rustls(e)),
                        }
                    }
                    result.map_err(CloseReason::Framing)?;
                    Step::Again
                }
                Ok(ConnectionState::PeerClosed) | Ok(ConnectionState::Closed) => Step::PeerClosed,
                Ok(ConnectionState::ReadEarlyData(_)) => Step::Fail(rustls::Error::General(
                    "0-RTT data is never accepted".into(),
                )),
                Ok(_) => Step::Fail(rustls::Error::General("unexpected TLS state".into())),
            };
            if let Some(plain) = early_plain {
                if let Phase::Handshaking(tls) = &self.phase {
                    self.meta = Arc::new(ConnMeta {
                        source: self.meta.source,
                        peer: self.meta.peer,
                        identity: Some(identity_of(tls)),
                    });
                }
                let mut sink = FrameSink {
                    batcher,
                    meta: &self.meta,
                    now_ns,
                    counters: &mut self.counters,
                };
                self.decoder
                    .feed(&plain, &mut |f| sink.emit(f))
                    .map_err(CloseReason::Framing)?;
            }
            offset += discard;
            match step {
                Step::Again => {}
                Step::NeedMore => {
                    if finished_handshake && self.is_handshaking() {
                        let unread = buf.len() - offset;
                        self.finish_handshake(unread)?;
                        // Whole records after the client's Finished were handed out as
                        // ReadTraffic above; a cut one is still at `offset` for the reader.
                        continue;
                    }
                    return Ok((offset, Outcome::Continue));
                }
                Step::PeerClosed => {
                    if let Phase::Handshaking(tls) = &self.phase {
                        if !tls.is_handshaking() {
                            // The client's data and close_notify came with its
                            // Finished: rustls read it all, so that was the path.
                            let d = match decide_path(&self.ktls, tls, usize::MAX) {
                                Decision::Offload => {
                                    Decision::Userspace(UserspaceReason::HandshakeNotAligned)
                                }
                                d => d,
                            };
                            log::debug!(
                                "{}: TLS established and closed within one read; data path: \
                                 userspace rustls ({})",
                                self.meta.peer,
                                d.label()
                            );
                            self.events.tls_path = Some(path_label(d));
                        }
                    }
                    let mut sink = FrameSink {
                        batcher,
                        meta: &self.meta,
                        now_ns,
                        counters: &mut self.counters,
                    };
                    self.decoder
                        .finish(&mut |f| sink.emit(f))
                        .map_err(CloseReason::Framing)?;
                    self.phase = Phase::Closed;
                    return Ok((buf.len(), Outcome::PeerClosed));
                }
                Step::Fail(e) => return Err(self.fail(e, out)),
            }
        }
    }

    /// Hands the connection from rustls to the kernel or to the record
    /// layer. rustls must have processed every whole record it was given (it
    /// returned WriteTraffic), so its sequence numbers match the bytes that
    /// follow. `unread_bytes` is ciphertext already read past that point:
    /// the record layer takes it, the kernel cannot.
    fn finish_handshake(&mut self, unread_bytes: usize) -> Result<(), CloseReason> {
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        let Phase::Handshaking(tls) = phase else {
            self.phase = phase;
            return Ok(());
        };
        let version = tls
            .protocol_version()
            .unwrap_or(rustls::ProtocolVersion::TLSv1_3);
        let mut decision = decide_path(&self.ktls, &tls, unread_bytes);
        let identity = identity_of(&tls);
        let (tls_version, cipher, client_cn) = (
            identity.tls_version,
            identity.cipher,
            identity.client_cn.clone(),
        );
        self.meta = Arc::new(ConnMeta {
            source: self.meta.source,
            peer: self.meta.peer,
            identity: Some(identity),
        });
        let (secrets, kernel) = (*tls)
            .dangerous_into_kernel_connection()
            .map_err(|e| CloseReason::Internal(format!("secret extraction: {e}")))?;
        if decision == Decision::Offload {
            let tx = CryptoInfo::new(version, secrets.tx.0, &secrets.tx.1);
            let rx = CryptoInfo::new(version, secrets.rx.0, &secrets.rx.1);
            let can_rekey = self.ktls.as_ref().is_some_and(|p| p.support.tls13_rekey);
            match (tx, rx) {
                (Ok(tx), Ok(rx)) => {
                    log::debug!(
                        "{}: TLS established ({tls_version} {cipher}), client {client_cn:?}; \
                         data path: kTLS (offload once the handshake is sent)",
                        self.meta.peer,
                    );
                    self.phase =
                        Phase::KtlsPending(Box::new(Pending::new(tx, rx, kernel, can_rekey)));
                    return Ok(());
                }
                // The policy offloads only ciphers the kernel has; should a
                // suite still not map, the record layer takes it safely.
                _ => decision = Decision::Userspace(UserspaceReason::CipherUnsupported),
            }
        }
        log::debug!(
            "{}: TLS established ({tls_version} {cipher}), client {client_cn:?}; \
             data path: userspace record layer ({})",
            self.meta.peer,
            decision.label(),
        );
        self.events.tls_path = Some(path_label(decision));
        let (reader, writer) = record::split(kernel, secrets).map_err(CloseReason::Record)?;
        self.phase = Phase::Records(Box::new(Records { reader, writer }));
        Ok(())
    }

    /// Decrypts whole records of `buf` in place and frames the plaintext.
    fn read_records(
        &mut self,
        buf: &mut [u8],
        now_ns: u64,
        batcher: &mut Batcher,
        out: &mut Vec<u8>,
    ) -> Result<(usize, Outcome), CloseReason> {
        let Phase::Records(rec) = &mut self.phase else {
            return Ok((0, Outcome::PeerClosed));
        };
        let mut sink = FrameSink {
            batcher,
            meta: &self.meta,
            now_ns,
            counters: &mut self.counters,
        };
        let decoder = &mut self.decoder;
        let mut framing_error = None;
        let progress = rec.reader.process(buf, &mut |plain| {
            if framing_error.is_none() {
                if let Err(e) = decoder.feed(plain, &mut |f| sink.emit(f)) {
                    framing_error = Some(e);
                }
            }
        });
        if let Some(e) = framing_error {
            self.phase = Phase::Closed;
            return Err(CloseReason::Framing(e));
        }
        let progress = match progress {
            Ok(p) => p,
            Err(e) => {
                let _ = rec.writer.fatal_alert(
                    e.alert().unwrap_or(rustls::AlertDescription::DecodeError),
                    out,
                );
                self.phase = Phase::Closed;
                return Err(CloseReason::Record(e));
            }
        };
        if progress.key_update_requested {
            // RFC 8446 §4.6.3: answer with our own KeyUpdate.
            let Records { reader, writer } = &mut **rec;
            if let Err(e) = writer.key_update(reader.kernel_mut(), out) {
                log::debug!("{}: KeyUpdate answer not sent: {e}", self.meta.peer);
            }
        }
        match progress.event {
            None => Ok((progress.consumed, Outcome::Continue)),
            Some(ControlEvent::CloseNotify) => {
                let _ = rec.writer.close_notify(out);
                self.phase = Phase::Closed;
                self.decoder
                    .finish(&mut |f| sink.emit(f))
                    .map_err(CloseReason::Framing)?;
                Ok((buf.len(), Outcome::PeerClosed))
            }
            Some(alert @ ControlEvent::Alert { .. }) => {
                self.phase = Phase::Closed;
                Err(CloseReason::PeerAlert(alert.alert_description()))
            }
        }
    }

    /// Turns a rustls error into a close reason, queueing the alert rustls
    /// prepared so the client learns why (e.g. "unknown CA").
    fn fail(&mut self, err: rustls::Error, out: &mut Vec<u8>) -> CloseReason {
        let was_handshaking = self.is_handshaking();
        if let Phase::Handshaking(tls) = &mut self.phase {
            // Bounded: rustls queues at most one alert after a fatal error.
            // Only call while an alert is queued: then rustls returns it before
            // touching its deframer. Calling with an empty buffer otherwise makes
            // rustls 0.23.46 index its stale deframer state and panic (found by
            // tests/hostile.rs with a fake TLS record).
            for _ in 0..4 {
                if !tls.wants_write() {
                    break;
                }
                let UnbufferedStatus { state, .. } = tls.process_tls_records(&mut []);
                match state {
                    Ok(ConnectionState::EncodeTlsData(mut s)) => {
                        let _ = encode_into(out, |b| s.encode(b));
                    }
                    _ => break,
                }
            }
        }
        self.phase = Phase::Closed;
        if was_handshaking {
            let failure = HandshakeFailure::classify(&err);
            match refusal_detail(&err) {
                Some(detail) => CloseReason::Refused(failure, detail),
                None => CloseReason::Handshake(failure),
            }
        } else {
            CloseReason::Rustls(err)
        }
    }
}

/// Who the peer is, once its handshake is complete.
fn identity_of(tls: &UnbufferedServerConnection) -> PeerIdentity {
    PeerIdentity::from_parts(
        tls.protocol_version()
            .unwrap_or(rustls::ProtocolVersion::TLSv1_3),
        tls.negotiated_cipher_suite(),
        tls.peer_certificates(),
    )
}

/// The policy's choice for a finished handshake; never `Offload` when
/// ciphertext past the handshake was read already (the kernel cannot take it).
fn decide_path(
    plan: &Option<KtlsPlan>,
    tls: &UnbufferedServerConnection,
    unread_bytes: usize,
) -> Decision {
    let version = tls
        .protocol_version()
        .unwrap_or(rustls::ProtocolVersion::TLSv1_3);
    let decision = match (plan, tls.negotiated_cipher_suite()) {
        (Some(plan), Some(suite)) => crate::ktls::decide(plan.mode, &plan.support, version, suite),
        (_, _) => Decision::Userspace(UserspaceReason::CipherUnsupported),
    };
    if decision == Decision::Offload && unread_bytes > 0 {
        return Decision::Userspace(UserspaceReason::HandshakeNotAligned);
    }
    decision
}

enum Step {
    Again,
    NeedMore,
    PeerClosed,
    Fail(rustls::Error),
}

/// Appends what `encode` writes to `out`, growing `out` as rustls asks.
fn encode_into(
    out: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let mut room = 4096;
    // Bounded: a handshake flight with a certificate chain fits in a few tries.
    for _ in 0..8 {
        out.resize(start + room, 0);
        match encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(need)) => {
                room = need.required_size.max(room * 2);
            }
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    out.truncate(start);
    Err(EncodeError::AlreadyEncoded)
}

/// How many more bytes complete the record at the front of `buf` (0 when
/// it is whole), read by the record layer's one header parser: what is not
/// TLS, or longer than TLS allows, is refused before its body is buffered.
fn record_bytes_missing(buf: &[u8]) -> Result<usize, CloseReason> {
    match record::record_len_needed(buf).map_err(CloseReason::Record)? {
        Needed::Complete { .. } => Ok(0),
        Needed::More { missing } => Ok(missing),
    }
}

#[cfg(test)]
mod tests;
