//! Closes the engine decides on for a connection's behaviour or its socket,
//! rather than for what its bytes said. One type gives the stats label and
//! the log line, so the two always agree.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalClose {
    /// The peer let more output pile up than `max_send_queue_bytes` by not
    /// reading (for example a KeyUpdate flood with update_requested).
    SendQueueFull { max_send_queue_bytes: usize },
    /// Nothing received for `idle_timeout_ms` after the handshake.
    IdleTimeout { idle_timeout_ms: u64 },
    /// A connection being closed did not finish sending within `close_timeout_ms`.
    CloseTimeout { close_timeout_ms: u64 },
    /// SIGTERM's `drain_timeout_ms` passed with the connection still open.
    DrainTimeout,
    /// More handshake bytes than any real handshake needs.
    HandshakeTooLarge { handshake_buffered_bytes_max: usize },
    /// The peer reset the connection (ECONNRESET).
    Reset,
    /// Another receive error from the socket (errno).
    RecvError(i32),
}

impl LocalClose {
    pub fn label(&self) -> &'static str {
        match self {
            LocalClose::SendQueueFull { .. } => "send_queue_full",
            LocalClose::IdleTimeout { .. } => "idle_timeout",
            LocalClose::CloseTimeout { .. } => "close_timeout",
            LocalClose::DrainTimeout => "drain_timeout",
            LocalClose::HandshakeTooLarge { .. } => "handshake_too_large",
            LocalClose::Reset => "reset",
            LocalClose::RecvError(_) => "recv_error",
        }
    }
}

impl fmt::Display for LocalClose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalClose::SendQueueFull {
                max_send_queue_bytes,
            } => write!(
                f,
                "the peer does not read what we send: over max_send_queue_bytes \
                 ({max_send_queue_bytes}) queued"
            ),
            LocalClose::IdleTimeout { idle_timeout_ms } => {
                write!(
                    f,
                    "nothing received for idle_timeout_ms ({idle_timeout_ms})"
                )
            }
            LocalClose::CloseTimeout { close_timeout_ms } => write!(
                f,
                "last bytes not sent within close_timeout_ms ({close_timeout_ms}); cut"
            ),
            LocalClose::DrainTimeout => write!(f, "still open when drain_timeout_ms passed"),
            LocalClose::HandshakeTooLarge {
                handshake_buffered_bytes_max,
            } => write!(
                f,
                "handshake over {handshake_buffered_bytes_max} bytes (no real client needs that)"
            ),
            LocalClose::Reset => write!(f, "connection reset by the peer"),
            LocalClose::RecvError(errno) => write!(
                f,
                "receive error: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}
