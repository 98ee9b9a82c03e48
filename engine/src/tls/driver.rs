//! One driver for rustls's unbuffered (sans-IO) connections, client and
//! server: runs rustls over the bytes a caller has buffered until it needs
//! more, hands out what to send and the plaintext it decrypted, and says
//! where the connection is. The engine's [`crate::conn::Conn`], the kTLS
//! selftest and loadgen's client and sink all drive their handshakes
//! through it, so rustls's state machine is walked in one place.
//!
//! The caller owns the IO: it sends `out` after a call (rustls only needs to
//! know the bytes were taken), and drops the `consumed` bytes from the front
//! of its buffer, keeping the rest exactly as they are (rustls may have
//! rewritten them: it joins fragmented handshake messages in place).

use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};

/// A fixed cost per call on top of one step per record: encoding a
/// handshake flight takes a few steps (one per message, then the transmit).
const STEPS_PER_CALL_MIN: usize = 64;
/// The smallest record: its header alone.
const RECORD_BYTES_MIN: usize = 5;
/// Alerts rustls queues after a fatal error (one; bounded for safety).
const PENDING_ALERT_STEPS_MAX: usize = 4;
/// Room for one close_notify record (header, alert, AEAD tag and nonce).
const CLOSE_NOTIFY_BYTES_MAX: usize = 64;

/// rustls's unbuffered client and server connections, behind one call.
pub trait Unbuffered {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn wants_write(&self) -> bool;
    fn is_handshaking(&self) -> bool;
}

/// rustls gives the client and the server each their own
/// `process_tls_records`; the rest is shared through `Deref`.
macro_rules! unbuffered {
    ($conn:ty, $data:ty) => {
        impl Unbuffered for $conn {
            type Data = $data;
            fn process<'c, 'i>(
                &'c mut self,
                incoming: &'i mut [u8],
            ) -> UnbufferedStatus<'c, 'i, Self::Data> {
                self.process_tls_records(incoming)
            }
            fn wants_write(&self) -> bool {
                (**self).wants_write()
            }
            fn is_handshaking(&self) -> bool {
                (**self).is_handshaking()
            }
        }
    };
}

unbuffered!(
    UnbufferedServerConnection,
    rustls::server::ServerConnectionData
);
unbuffered!(
    UnbufferedClientConnection,
    rustls::client::ClientConnectionData
);

/// Where a call left the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// rustls needs more bytes (the handshake waits for the peer).
    NeedMore,
    /// The handshake is over and every whole record given was processed:
    /// application data may be written. Only a record cut by the end of
    /// the buffer is left.
    Traffic,
    /// The peer sent close_notify; what it sent before was handed out.
    /// Calling again goes on (to `Traffic`, to queue our close_notify, or
    /// to `Closed`).
    PeerClosed,
    /// Closed both ways.
    Closed,
}

/// Why a call stopped early.
#[derive(Debug)]
pub enum DriveError<E> {
    /// rustls refused the bytes (handshake failure, bad record, alert): an
    /// alert for the peer may be queued, see [`pending_alert`].
    Tls(rustls::Error),
    /// A record rustls handed out as plaintext failed to decrypt.
    Record(rustls::Error),
    /// rustls's bytes to send could not be encoded.
    Encode(EncodeError),
    /// The plaintext callback refused what it was given.
    Plain(E),
}

/// What one call did.
#[derive(Debug)]
pub struct Driven<E> {
    /// Bytes at the front of the buffer rustls is done with.
    pub consumed: usize,
    /// Of those, bytes taken by steps that began after the handshake: a
    /// client learns from them that the server accepted it.
    pub consumed_established: usize,
    pub result: Result<Progress, DriveError<E>>,
}

/// Runs rustls over `incoming` until it needs more bytes, the handshake is
/// over with nothing whole left to read, the peer closes, or an error.
/// Bytes to send are appended to `out`; each plaintext record goes to
/// `on_plain` in order. Bounded by the records in `incoming`.
pub fn drive<C: Unbuffered, E>(
    conn: &mut C,
    incoming: &mut [u8],
    out: &mut Vec<u8>,
    on_plain: &mut dyn FnMut(&[u8]) -> Result<(), E>,
) -> Driven<E> {
    let mut consumed = 0;
    let mut consumed_established = 0;
    // Each step consumes a record or moves the state on.
    let steps_max = incoming.len() / RECORD_BYTES_MIN + STEPS_PER_CALL_MIN;
    for _ in 0..steps_max {
        let established = !conn.is_handshaking();
        let UnbufferedStatus { mut discard, state } = conn.process(&mut incoming[consumed..]);
        let step = match state {
            Err(e) => Err(DriveError::Tls(e)),
            Ok(ConnectionState::EncodeTlsData(mut s)) => encode_into(out, |b| s.encode(b))
                .map(|()| None)
                .map_err(DriveError::Encode),
            Ok(ConnectionState::TransmitTlsData(s)) => {
                // The caller sends `out` after this call.
                s.done();
                Ok(None)
            }
            Ok(ConnectionState::ReadTraffic(mut r)) => {
                let mut result = Ok(None);
                while let Some(rec) = r.next_record() {
                    match rec {
                        Ok(rec) => {
                            // rustls's contract: added before discarding
                            // (0 while it decrypts into its own buffers).
                            discard += rec.discard;
                            if let Err(e) = on_plain(rec.payload) {
                                result = Err(DriveError::Plain(e));
                                break;
                            }
                        }
                        Err(e) => {
                            result = Err(DriveError::Record(e));
                            break;
                        }
                    }
                }
                result
            }
            Ok(ConnectionState::BlockedHandshake) => Ok(Some(Progress::NeedMore)),
            Ok(ConnectionState::WriteTraffic(_)) => Ok(Some(Progress::Traffic)),
            Ok(ConnectionState::PeerClosed) => Ok(Some(Progress::PeerClosed)),
            Ok(ConnectionState::Closed) => Ok(Some(Progress::Closed)),
            Ok(ConnectionState::ReadEarlyData(_)) => Err(DriveError::Tls(rustls::Error::General(
                "0-RTT data is never accepted".into(),
            ))),
            Ok(_) => Err(DriveError::Tls(rustls::Error::General(
                "unexpected TLS state".into(),
            ))),
        };
        consumed += discard;
        match step {
            Ok(None) => {}
            Ok(Some(progress)) => {
                if established {
                    consumed_established += discard;
                }
                return Driven {
                    consumed,
                    consumed_established,
                    result: Ok(progress),
                };
            }
            Err(e) => {
                return Driven {
                    consumed,
                    consumed_established,
                    result: Err(e),
                }
            }
        }
        if established {
            consumed_established += discard;
        }
    }
    Driven {
        consumed,
        consumed_established,
        result: Err(DriveError::Tls(rustls::Error::General(format!(
            "rustls made no progress in {steps_max} steps"
        )))),
    }
}

/// After [`DriveError::Tls`], appends the alert rustls queued for the peer
/// (e.g. "unknown CA") to `out`, so it learns why.
pub fn pending_alert<C: Unbuffered>(conn: &mut C, out: &mut Vec<u8>) {
    for _ in 0..PENDING_ALERT_STEPS_MAX {
        // Only call while an alert is queued: then rustls returns it before
        // touching its deframer. Calling with an empty buffer otherwise makes
        // rustls 0.23.46 index its stale deframer state and panic (found by
        // tests/hostile.rs with a fake TLS record).
        if !conn.wants_write() {
            break;
        }
        let UnbufferedStatus { state, .. } = conn.process(&mut []);
        match state {
            Ok(ConnectionState::EncodeTlsData(mut s)) => {
                let _ = encode_into(out, |b| s.encode(b));
            }
            Ok(ConnectionState::TransmitTlsData(s)) => s.done(),
            _ => break,
        }
    }
}

/// Once established, appends a close_notify to `out`. Returns the bytes
/// of `incoming` rustls is done with, and whether the alert was queued
/// (`Ok(false)` when the connection is not in a state to write).
pub fn queue_close_notify<C: Unbuffered>(
    conn: &mut C,
    incoming: &mut [u8],
    out: &mut Vec<u8>,
) -> (usize, Result<bool, EncryptError>) {
    let UnbufferedStatus { discard, state } = conn.process(incoming);
    let queued = match state {
        Ok(ConnectionState::WriteTraffic(mut w)) => {
            let start = out.len();
            // A close_notify record is at most a header, an alert and an AEAD tag.
            out.resize(start + CLOSE_NOTIFY_BYTES_MAX, 0);
            match w.queue_close_notify(&mut out[start..]) {
                Ok(n) => {
                    out.truncate(start + n);
                    Ok(true)
                }
                Err(e) => {
                    out.truncate(start);
                    Err(e)
                }
            }
        }
        _ => Ok(false),
    };
    (discard, queued)
}

/// Appends what `encode` writes to `out`, growing `out` as rustls asks.
pub fn encode_into(
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

#[cfg(test)]
mod tests;
