//! One connection's state machine, without IO: bytes in, frames and bytes to
//! send out. The io_uring shard feeds it what it receives and sends what it
//! returns; tests drive it the same way from memory.
//!
//! States: `Handshaking` (rustls drives the handshake) → `Streaming` (records
//! are decrypted; frames are split out of the plaintext) → closed. Plain TCP
//! connections start in `Plain`.

use std::fmt;
use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::ServerConfig;

use crate::batch::{Batcher, ConnMeta};
use crate::framing::{Decoder, Frame, FramingError};
use crate::record::{self, ControlEvent, RecordReader, RecordWriter};
use crate::tls::{looks_like_tls, HandshakeFailure, PeerIdentity};

/// TLS record header: type (1), version (2), length (2).
const RECORD_HEADER_BYTES: usize = 5;
/// Largest record a peer may send: 2^14 plaintext + 2048 (TLS 1.2's bound, the larger).
const RECORD_MAX_BYTES: usize = RECORD_HEADER_BYTES + 16_384 + 2_048;

/// Why a connection was closed by us. Its label is the stats label.
#[derive(Debug, Clone, PartialEq)]
pub enum CloseReason {
    Handshake(HandshakeFailure),
    Framing(FramingError),
    /// A TLS error after the handshake (bad record, decrypt failure, alert).
    Tls(String),
}

impl CloseReason {
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Handshake(f) => f.label(),
            CloseReason::Framing(e) => e.label(),
            CloseReason::Tls(_) => "tls_error",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Handshake(h) => {
                write!(f, "TLS handshake refused: {h} (hint: {})", h.hint())
            }
            CloseReason::Framing(e) => write!(f, "framing error: {e}"),
            CloseReason::Tls(e) => write!(f, "TLS error: {e}"),
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
    Closed,
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
    seen_bytes: bool,
    pub counters: ConnCounters,
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
            seen_bytes: false,
            counters: ConnCounters::default(),
        }
    }

    pub fn new_tls(
        config: Arc<ServerConfig>,
        meta: Arc<ConnMeta>,
        decoder: Decoder,
    ) -> Result<Conn, rustls::Error> {
        let tls = UnbufferedServerConnection::new(config)?;
        Ok(Conn {
            phase: Phase::Handshaking(Box::new(tls)),
            decoder,
            meta,
            tls_in: Vec::new(),
            seen_bytes: false,
            counters: ConnCounters::default(),
        })
    }

    pub fn is_handshaking(&self) -> bool {
        matches!(self.phase, Phase::Handshaking(_))
    }

    pub fn meta(&self) -> &Arc<ConnMeta> {
        &self.meta
    }

    pub fn take_decoder_counters(&mut self) -> crate::framing::DecoderCounters {
        self.decoder.take_counters()
    }

    /// Heap bytes this connection holds beyond its fixed size (for memory accounting).
    pub fn buffered_bytes(&self) -> usize {
        self.tls_in.capacity() + self.decoder.buffered_bytes()
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
        match self.phase {
            Phase::Closed => Ok(Outcome::PeerClosed),
            Phase::Plain => {
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
        let mut data = data;
        if !self.tls_in.is_empty() {
            // Complete the cut record first, copying only the bytes it lacks.
            loop {
                let missing = record_bytes_missing(&self.tls_in);
                if missing == usize::MAX {
                    return Err(CloseReason::Tls("record length over the TLS limit".into()));
                }
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
            if rest.len() >= RECORD_HEADER_BYTES && record_bytes_missing(rest) == usize::MAX {
                return Err(CloseReason::Tls("record length over the TLS limit".into()));
            }
            self.tls_in
                .reserve_exact(RECORD_MAX_BYTES.min(rest.len() + record_bytes_missing(rest)));
            self.tls_in.extend_from_slice(rest);
            self.counters.tls_copied_bytes += rest.len() as u64;
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
                _ => return Ok((offset, Outcome::PeerClosed)),
            };
            let UnbufferedStatus { discard, state } = tls.process_tls_records(&mut buf[offset..]);
            let mut finished_handshake = false;
            let step = match state {
                Err(e) => Step::Fail(e),
                Ok(ConnectionState::EncodeTlsData(mut s)) => {
                    encode_into(out, |b| s.encode(b))
                        .map_err(|e| CloseReason::Tls(e.to_string()))?;
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
                            Err(e) => return Err(CloseReason::Tls(e.to_string())),
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
            offset += discard;
            match step {
                Step::Again => {}
                Step::NeedMore => {
                    if finished_handshake && self.is_handshaking() {
                        self.finish_handshake()?;
                        // Whole records after the client's Finished were handed out as
                        // ReadTraffic above; a cut one is still at `offset` for the reader.
                        continue;
                    }
                    return Ok((offset, Outcome::Continue));
                }
                Step::PeerClosed => {
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

    /// Hands the connection from rustls to the record layer. rustls must have
    /// processed every whole record it was given (it returned WriteTraffic), so
    /// its sequence numbers match the bytes that follow.
    fn finish_handshake(&mut self) -> Result<(), CloseReason> {
        let phase = std::mem::replace(&mut self.phase, Phase::Closed);
        let Phase::Handshaking(tls) = phase else {
            self.phase = phase;
            return Ok(());
        };
        let identity = PeerIdentity::from_parts(
            tls.protocol_version()
                .unwrap_or(rustls::ProtocolVersion::TLSv1_3),
            tls.negotiated_cipher_suite(),
            tls.peer_certificates(),
        );
        log::debug!(
            "{}: TLS established ({} {}), client {:?}; data path: userspace record layer",
            self.meta.peer,
            identity.tls_version,
            identity.cipher,
            identity.client_cn
        );
        self.meta = Arc::new(ConnMeta {
            source: self.meta.source,
            peer: self.meta.peer,
            identity: Some(identity),
        });
        let (secrets, kernel) = (*tls)
            .dangerous_into_kernel_connection()
            .map_err(|e| CloseReason::Tls(format!("secret extraction: {e}")))?;
        let (reader, writer) =
            record::split(kernel, secrets).map_err(|e| CloseReason::Tls(e.to_string()))?;
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
                return Err(CloseReason::Tls(e.to_string()));
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
                Err(CloseReason::Tls(format!(
                    "client sent alert {:?}",
                    alert.alert_description()
                )))
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
            CloseReason::Handshake(HandshakeFailure::classify(&err))
        } else {
            CloseReason::Tls(err.to_string())
        }
    }
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

/// How many more bytes complete the record at the front of `buf`
/// (`usize::MAX` if its declared length is over the TLS limit).
fn record_bytes_missing(buf: &[u8]) -> usize {
    if buf.len() < RECORD_HEADER_BYTES {
        return RECORD_HEADER_BYTES - buf.len();
    }
    let total = RECORD_HEADER_BYTES + u16::from_be_bytes([buf[3], buf[4]]) as usize;
    if total > RECORD_MAX_BYTES {
        return usize::MAX;
    }
    total.saturating_sub(buf.len())
}
