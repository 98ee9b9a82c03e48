//! Userspace TLS record layer for after the handshake, for kernels without kTLS.
//!
//! rustls 0.23.46 copies every application-data record's plaintext into a
//! fresh `Vec`, even through `UnbufferedServerConnection`. So rustls does
//! only the handshake; then `dangerous_into_kernel_connection()` hands out
//! the traffic secrets, and this module decrypts records in place in the
//! engine's own receive buffer, passing plaintext slices of that buffer to
//! the framer. The AEAD code is rustls's own (aws-lc-rs provider), built
//! from the secrets in `keys.rs`; nothing here implements crypto.
//!
//! ```text
//!  socket bytes ──► buf ──► RecordReader::process ──► on_plaintext(&buf[..]) ──► framer
//!                            │ header.rs   is a whole record buffered? limits
//!                            │ keys.rs     secrets → rustls decrypter
//!                            │ control.rs  alerts, KeyUpdate (rekey via KernelConnection)
//!                            ▼
//!                      Progress { consumed, event, records, key_updates, .. }
//!  RecordWriter: close_notify / fatal alert / KeyUpdate ──► out Vec ──► socket
//! ```
//!
//! # Handshake → record-layer handover (nothing may be lost)
//!
//! The client may send application data right behind its Finished (TLS 1.3
//! always can; TLS 1.2 after an abbreviated handshake), so one read can hold
//! `[Finished][data record][data record][half a record]`. rustls decrypts
//! the whole records it sees and advances its read sequence number; the
//! half record it leaves alone. The exact procedure:
//!
//! 1. Build the `ServerConfig` with `enable_secret_extraction = true`; keep
//!    `max_early_data_size = 0` (0-RTT is not handed over) and
//!    `send_half_rtt_data = false` (both defaults).
//! 2. [`crate::tls::driver::drive`] does this step (`NeedMore`, `Traffic`,
//!    `PeerClosed`/`Closed`; plaintext to its callback; `consumed` is the sum
//!    of the discards); what it does, for the record:
//!    loop `let st = conn.process_tls_records(&mut buf[..filled])` and act
//!    on `st.state`; after acting, and before calling again, remove
//!    `st.discard` bytes from the front of `buf`:
//!    - `EncodeTlsData`: `encode` into the send buffer; `TransmitTlsData`:
//!      send it all (or queue it ahead of anything later), then `done()`.
//!    - `BlockedHandshake`: receive more bytes behind the kept ones; repeat.
//!    - `ReadTraffic`: take **every** `next_record()` and feed its payload to
//!      the framer as if this module had produced it. These are the
//!      application-data records that followed the client's Finished in the
//!      same read. rustls has already decrypted them and counted them in its
//!      sequence number: dropping them loses messages, re-feeding them here
//!      fails authentication. (`AppDataRecord::discard`, 0 in 0.23.46, is
//!      added to `st.discard`.)
//!    - `PeerClosed` / `Closed`: the client closed already; finish the
//!      connection without converting.
//!    - `WriteTraffic`: **stop here**; do not call `encrypt` on it. rustls
//!      returns this only when it has processed every whole record in `buf`
//!      and has nothing left to send, which is what
//!      `dangerous_into_kernel_connection` requires. (If `conn.is_handshaking()`
//!      is still true, which only half-RTT data allows, treat it as
//!      `BlockedHandshake`.)
//! 3. Drop the state, remove the final `st.discard`. What is left in `buf`
//!    (0 to [`RECORD_LEN_MAX`]` - 1` bytes) is the untouched ciphertext of the
//!    next record's beginning. Keep it at the front of `buf`.
//! 4. `let (secrets, kernel) = conn.dangerous_into_kernel_connection()?;`
//!    then `let (reader, writer) = record::split(kernel, secrets)?;`
//!    (`secrets.rx.0` counts the records rustls decrypted in step 2).
//! 5. From then on append received bytes behind the kept ones and call
//!    `reader.process(&mut buf[..filled], ..)`; keep `buf[consumed..filled]`
//!    (a partial record) for the next call.
//!
//! The kTLS path needs the same steps 1–4, but the kernel cannot take bytes
//! already read: it reads the handshake record-exactly with
//! [`record_len_needed`] so that step 3 leaves nothing, and falls back to
//! this module if something is left.
//!
//! One corner rustls does not expose: if the client splits a post-handshake
//! *handshake* message across records right behind its Finished and the read
//! ends between the pieces, rustls has decrypted the first piece in place
//! without discarding it. The reader then sees those bytes as a record that
//! fails the header check or AEAD authentication and reports a typed error;
//! it can never accept them as data. Real clients send nothing like that.
//!
//! # What the reader accepts after the handshake
//!
//! - Record version 0x0303 only; ciphertext up to 2^14+256 (TLS 1.3) or
//!   2^14+2048 (TLS 1.2) bytes, checked from the header before the body arrives.
//! - TLS 1.3: outer type application_data only (a change_cipher_spec after
//!   the handshake is [`RecordError::UnexpectedContentType`], RFC 8446 §5);
//!   the inner type after unpadding decides. TLS 1.2: application_data,
//!   alert, handshake (encrypted); change_cipher_spec (renegotiation) is refused.
//! - Zero-length application data: skipped, at most
//!   [`ReaderLimits::empty_records_consecutive_max`] in a row.
//! - Alerts: close_notify → [`ControlEvent::CloseNotify`], stop; data after
//!   it is ignored. Warning user_canceled (and, in TLS 1.2, any warning, as
//!   rustls does) → skipped, bounded. Everything else, including TLS 1.3
//!   warnings that RFC 8446 §6 says to treat as errors →
//!   [`ControlEvent::Alert`], stop.
//! - TLS 1.3 KeyUpdate → `update_rx_secret()`, new decrypter at sequence 0,
//!   and the records after it are decrypted with the new key in the same
//!   call ([`Progress::key_updates`]). The KeyUpdate must be the one whole
//!   message of its record; split or coalesced handshake messages are
//!   [`RecordError::HandshakeMessageNotAligned`] (RFC 8446 §5.1 already
//!   forbids anything after a KeyUpdate in its record). Any other handshake
//!   message (NewSessionTicket from a client, renegotiation) is
//!   [`RecordError::HandshakeMessageUnsupported`].
//! - Everything a peer sends is checked before use; no input path panics.
//!
//! Not tracked: the AEAD confidentiality limit concerns the sender (the
//! client rekeys); this side only counts sequence numbers up to 2^64 - 1.

mod control;
mod error;
mod header;
mod keys;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub(crate) use control::{alert as decide_alert, AlertAction};
pub use control::{ControlBudget, ControlEvent};
pub use error::RecordError;
pub use header::{
    record_len_needed, Needed, HEADER_LEN, PLAINTEXT_LEN_MAX, RECORD_LEN_MAX,
    TLS12_CIPHERTEXT_LEN_MAX, TLS13_CIPHERTEXT_LEN_MAX,
};
pub use keys::Version;
pub use reader::{Progress, ReaderLimits, RecordReader};
pub use writer::RecordWriter;

use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::ExtractedSecrets;

/// Both halves from the output of `dangerous_into_kernel_connection()`
/// (step 4 of the handover in the module docs).
pub fn split(
    kernel: KernelConnection<ServerConnectionData>,
    secrets: ExtractedSecrets,
) -> Result<(RecordReader, RecordWriter), RecordError> {
    let writer = RecordWriter::new(kernel.negotiated_cipher_suite(), secrets.tx)?;
    let reader = RecordReader::new(kernel, secrets.rx)?;
    Ok((reader, writer))
}
