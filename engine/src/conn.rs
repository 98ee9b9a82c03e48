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

mod close;
mod handshake;
mod kernel;
mod local_close;
mod offload;
mod records;

use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::ServerConfig;

use crate::batch::{ConnMeta, FrameSink};
use crate::framing::{Decoder, Frame};
use crate::ktls::{CryptoInfo, Decision, KtlsMode, KtlsSupport, UserspaceReason};
use crate::record::{self, ControlEvent, Needed, RecordReader, RecordWriter};
use crate::tls::{looks_like_tls, refusal_detail, HandshakeFailure, PeerIdentity};

pub use close::CloseReason;
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

/// Where frames go: the shard's sink, tagged with this connection.
struct Emit<'a> {
    batcher: &'a mut dyn FrameSink,
    meta: &'a Arc<ConnMeta>,
    now_ns: u64,
    counters: &'a mut ConnCounters,
}

impl Emit<'_> {
    #[inline]
    fn emit(&mut self, frame: Frame<'_>) {
        self.counters.messages += 1;
        self.counters.bytes += frame.bytes.len() as u64;
        self.batcher.push(self.meta, self.now_ns, frame.bytes);
    }
}

impl Conn {
    /// Frames plaintext into `batcher`, tagged with this connection.
    fn feed_plain(
        &mut self,
        plain: &[u8],
        now_ns: u64,
        batcher: &mut dyn FrameSink,
    ) -> Result<(), CloseReason> {
        let mut sink = Emit {
            batcher,
            meta: &self.meta,
            now_ns,
            counters: &mut self.counters,
        };
        self.decoder
            .feed(plain, &mut |f| sink.emit(f))
            .map_err(CloseReason::Framing)
    }

    /// End of stream: the frame the decoder holds, if it is whole.
    fn finish_frames(
        &mut self,
        now_ns: u64,
        batcher: &mut dyn FrameSink,
    ) -> Result<(), CloseReason> {
        let mut sink = Emit {
            batcher,
            meta: &self.meta,
            now_ns,
            counters: &mut self.counters,
        };
        self.decoder
            .finish(&mut |f| sink.emit(f))
            .map_err(CloseReason::Framing)
    }

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
        batcher: &mut dyn FrameSink,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        self.guarded(|c| c.on_data_unguarded(data, now_ns, batcher, out))
    }

    fn on_data_unguarded(
        &mut self,
        data: &mut [u8],
        now_ns: u64,
        batcher: &mut dyn FrameSink,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, CloseReason> {
        match self.phase {
            Phase::Closed => Ok(Outcome::PeerClosed),
            // The kernel decrypted these bytes; they are plaintext.
            Phase::Plain | Phase::Ktls(_) => {
                if let Phase::Ktls(off) = &mut self.phase {
                    off.on_data();
                }
                self.feed_plain(data, now_ns, batcher)?;
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
    pub fn on_eof(&mut self, now_ns: u64, batcher: &mut dyn FrameSink) -> Result<(), CloseReason> {
        let was_handshaking = self.is_handshaking();
        self.phase = Phase::Closed;
        if was_handshaking {
            return Ok(());
        }
        self.finish_frames(now_ns, batcher)
    }
}

#[cfg(test)]
mod tests;
