//! Why a connection was closed by us: one type gives the stats label and
//! the log line.

use std::fmt;

use crate::framing::FramingError;
use crate::record::RecordError;
use crate::tls::HandshakeFailure;

use super::{KtlsClose, LocalClose};

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
