//! Decrypts records in place in the caller's buffer and hands out plaintext
//! slices of that same buffer: no allocation, no copy.

use core::fmt;

use rustls::crypto::cipher::{InboundOpaqueMessage, InboundPlainMessage, MessageDecrypter};
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{
    ConnectionTrafficSecrets, ContentType, PeerMisbehaved, ProtocolVersion, SupportedCipherSuite,
};

use super::control::{self, AlertAction, ControlBudget, ControlEvent, HandshakeAction};
use super::error::RecordError;
use super::header::{
    self, HeaderRules, Parsed, RecordHeader, CONTENT_ALERT, CONTENT_APPLICATION_DATA,
    CONTENT_HANDSHAKE, HEADER_LEN, RECORD_VERSION_TLS12, TLS12_CIPHERTEXT_LEN_MAX,
    TLS13_CIPHERTEXT_LEN_MAX,
};
use super::keys::{self, LazyKey, Version};

/// Bounds on what a peer may make the reader do without delivering data.
/// Each counter resets when a non-empty application-data record arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Consecutive zero-length application-data records allowed. Default 32
    /// (rustls's limit); each costs a full AEAD open but delivers nothing.
    pub empty_records_consecutive_max: u32,
    /// Consecutive ignorable warning alerts allowed. Default 4 (rustls's limit).
    pub warning_alerts_consecutive_max: u32,
    /// KeyUpdates allowed without application data in between. Default 32.
    /// Each costs an HKDF expansion and a key schedule.
    pub key_updates_consecutive_max: u32,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self {
            empty_records_consecutive_max: 32,
            warning_alerts_consecutive_max: 4,
            key_updates_consecutive_max: 32,
        }
    }
}

/// What one [`RecordReader::process`] call did.
#[must_use]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes at the front of the buffer that were whole records and are done
    /// with. The caller drops them and keeps the rest (a partial record, or
    /// bytes after a stop event, which are to be ignored).
    pub consumed: usize,
    /// Set when processing stopped at a close_notify or an error alert. No
    /// further records will be accepted.
    pub event: Option<ControlEvent>,
    /// Records consumed in this call, of every content type.
    pub records: u32,
    /// TLS 1.3 KeyUpdates applied in this call. Records after each one were
    /// decrypted with the new key in this same call.
    pub key_updates: u32,
    /// At least one of those KeyUpdates asked us to update our sending key.
    /// RFC 8446 §4.6.3 only obliges that before our next application-data
    /// record; ringest sends none, so answering (with
    /// [`RecordWriter::key_update`](super::RecordWriter::key_update)) is optional.
    pub key_update_requested: bool,
}

/// The receive half of a TLS connection after the handshake.
pub struct RecordReader {
    /// Built at the first record ([`LazyKey`]): an idle connection holds
    /// only the secrets.
    decrypter: LazyKey<Box<dyn MessageDecrypter>>,
    /// Sequence number of the next record to decrypt.
    rx_seq: u64,
    version: Version,
    suite: SupportedCipherSuite,
    rules: HeaderRules,
    limits: ReaderLimits,
    /// Source of the next rx secret after a KeyUpdate; also carries the
    /// tx-secret schedule for [`RecordWriter::key_update`](super::RecordWriter::key_update).
    /// TLS 1.3 only: TLS 1.2 has no KeyUpdate (and renegotiation is
    /// refused), so nothing would ever ask it for a secret, and what it
    /// holds (rustls's key schedule, the client's certificate chain: over
    /// 1 KiB) is dropped at the handover.
    kernel: Option<KernelConnection<ServerConnectionData>>,
    /// Set after a stop event or an error: the stream position is final.
    stopped: bool,
    empty_records_consecutive: u32,
    budget: ControlBudget,
}

impl fmt::Debug for RecordReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordReader")
            .field("version", &self.version)
            .field("suite", &self.suite.suite())
            .field("rx_seq", &self.rx_seq)
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl RecordReader {
    /// Takes over the receive side from rustls. `rx` is `ExtractedSecrets::rx`
    /// from `dangerous_into_kernel_connection()`: the sequence number counts
    /// the records rustls itself already decrypted.
    pub fn new(
        kernel: KernelConnection<ServerConnectionData>,
        rx: (u64, ConnectionTrafficSecrets),
    ) -> Result<Self, RecordError> {
        Self::with_limits(kernel, rx, ReaderLimits::default())
    }

    pub fn with_limits(
        kernel: KernelConnection<ServerConnectionData>,
        (rx_seq, secrets): (u64, ConnectionTrafficSecrets),
        limits: ReaderLimits,
    ) -> Result<Self, RecordError> {
        let suite = kernel.negotiated_cipher_suite();
        let version = Version::check(kernel.protocol_version(), suite)?;
        let decrypter = LazyKey::new(suite, secrets)?;
        let ciphertext_len_max = match version {
            Version::Tls12 => TLS12_CIPHERTEXT_LEN_MAX,
            Version::Tls13 => TLS13_CIPHERTEXT_LEN_MAX,
        };
        Ok(Self {
            decrypter,
            rx_seq,
            version,
            suite,
            rules: HeaderRules {
                version_exact: Some(RECORD_VERSION_TLS12),
                ciphertext_len_max,
            },
            limits,
            kernel: (version == Version::Tls13).then_some(kernel),
            stopped: false,
            empty_records_consecutive: 0,
            budget: ControlBudget::new(&limits),
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn negotiated_cipher_suite(&self) -> SupportedCipherSuite {
        self.suite
    }

    /// Sequence number of the next record expected.
    pub fn rx_seq(&self) -> u64 {
        self.rx_seq
    }

    /// True after a stop event or an error; `process` then refuses to run.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Whether the receiving key was built (it is at the first record).
    #[cfg(test)]
    pub(crate) fn key_built(&self) -> bool {
        self.decrypter.is_built()
    }

    /// The rustls key schedule, for [`RecordWriter::key_update`](super::RecordWriter::key_update);
    /// TLS 1.2 has none (no KeyUpdate).
    pub fn kernel_mut(
        &mut self,
    ) -> Result<&mut KernelConnection<ServerConnectionData>, RecordError> {
        self.kernel
            .as_mut()
            .ok_or(RecordError::UnsupportedVersion(u16::from(
                ProtocolVersion::TLSv1_2,
            )))
    }

    /// Decrypts every complete record at the front of `buf` in place and
    /// calls `on_plaintext` with each non-empty application-data payload, a
    /// slice inside `buf`.
    ///
    /// Stops early at close_notify or an error alert (`Progress::event`).
    /// A partial record at the end is not consumed: keep those bytes and
    /// call again once more have arrived behind them.
    ///
    /// On `Err`, plaintext of the records before the bad one has already
    /// been delivered; the connection must be closed (send
    /// [`RecordError::alert`] if it names one). Consumed bytes are decrypted
    /// in place, so they must never be passed in again.
    pub fn process(
        &mut self,
        buf: &mut [u8],
        on_plaintext: &mut impl FnMut(&[u8]),
    ) -> Result<Progress, RecordError> {
        if self.stopped {
            return Err(RecordError::Closed);
        }
        let result = self.process_records(buf, on_plaintext);
        match &result {
            Ok(progress) => {
                debug_assert!(progress.consumed <= buf.len());
                self.stopped = progress.event.is_some();
            }
            Err(_) => self.stopped = true,
        }
        result
    }

    fn process_records(
        &mut self,
        buf: &mut [u8],
        on_plaintext: &mut impl FnMut(&[u8]),
    ) -> Result<Progress, RecordError> {
        let mut progress = Progress::default();
        loop {
            // Always in bounds: `consumed` only grows by whole records that
            // were inside `buf`.
            let rest = &mut buf[progress.consumed..];
            let header = match header::parse(rest, self.rules)? {
                Parsed::Header(header) => header,
                // Not an error: the rest of the header is still in flight.
                Parsed::Incomplete => break,
            };
            let record_len = header.record_len();
            let Some(record) = rest.get_mut(..record_len) else {
                // Not an error either: the body is still in flight. The
                // header already passed the length limit, so waiting for it
                // is bounded.
                break;
            };
            self.check_outer_type(header.content_type)?;

            let plain = self.decrypt(header, &mut record[HEADER_LEN..])?;
            progress.consumed += record_len;
            progress.records = progress.records.saturating_add(1);

            match plain.typ {
                ContentType::ApplicationData => {
                    if plain.payload.is_empty() {
                        // Legal (RFC 8446 §5.1), so skipped, but bounded.
                        self.empty_records_consecutive += 1;
                        if self.empty_records_consecutive
                            > self.limits.empty_records_consecutive_max
                        {
                            return Err(RecordError::TooManyEmptyRecords);
                        }
                        continue;
                    }
                    self.empty_records_consecutive = 0;
                    self.budget.on_data();
                    on_plaintext(plain.payload);
                }
                ContentType::Alert => match control::alert(self.version, plain.payload)? {
                    AlertAction::Stop(event) => {
                        progress.event = Some(event);
                        break;
                    }
                    AlertAction::Ignore { description } => {
                        self.budget.on_ignored_warning()?;
                        log::debug!(
                            "ignoring TLS warning alert {:?}",
                            rustls::AlertDescription::from(description)
                        );
                    }
                },
                ContentType::Handshake => match control::handshake(self.version, plain.payload)? {
                    HandshakeAction::KeyUpdate { update_requested } => {
                        self.budget.on_key_update()?;
                        self.rekey()?;
                        progress.key_updates += 1;
                        progress.key_update_requested |= update_requested;
                    }
                },
                // The TLS 1.3 inner type can be anything the peer chose.
                other => return Err(RecordError::UnexpectedContentType(u8::from(other))),
            }
        }
        debug_assert!(progress.consumed <= buf.len());
        debug_assert!(
            progress.event.is_some()
                || !matches!(
                    header::needed(&buf[progress.consumed..], self.rules),
                    Ok(header::Needed::Complete { .. })
                ),
            "stopped without an event while a whole record was buffered"
        );
        Ok(progress)
    }

    /// Which record types may arrive (encrypted) after the handshake.
    fn check_outer_type(&self, content_type: u8) -> Result<(), RecordError> {
        let allowed = match self.version {
            // Everything is application_data outside; the real type is inside.
            // A change_cipher_spec is only tolerated during the handshake (RFC 8446 §5).
            Version::Tls13 => content_type == CONTENT_APPLICATION_DATA,
            // change_cipher_spec would start a renegotiation: not supported.
            Version::Tls12 => matches!(
                content_type,
                CONTENT_APPLICATION_DATA | CONTENT_ALERT | CONTENT_HANDSHAKE
            ),
        };
        if allowed {
            Ok(())
        } else {
            Err(RecordError::UnexpectedContentType(content_type))
        }
    }

    fn decrypt<'a>(
        &mut self,
        header: RecordHeader,
        payload: &'a mut [u8],
    ) -> Result<InboundPlainMessage<'a>, RecordError> {
        debug_assert_eq!(payload.len(), header.len);
        // RFC 8446 §5.3 / RFC 5246 §6.1: never wrap; one value short of the
        // full range is not worth a special case.
        if self.rx_seq == u64::MAX {
            return Err(RecordError::SequenceExhausted);
        }
        let msg = InboundOpaqueMessage::new(
            ContentType::from(header.content_type),
            ProtocolVersion::from(header.version),
            payload,
        );
        let seq = self.rx_seq;
        let plain = self
            .decrypter
            .get(self.suite, keys::decrypter)?
            .decrypt(msg, seq)
            .map_err(decrypt_error)?;
        self.rx_seq += 1;
        Ok(plain)
    }

    /// Installs the next receive key (TLS 1.3 KeyUpdate). The record that
    /// carried the KeyUpdate was the last one under the old key.
    fn rekey(&mut self) -> Result<(), RecordError> {
        debug_assert_eq!(self.version, Version::Tls13);
        let (seq, secrets) = self
            .kernel_mut()?
            .update_rx_secret()
            .map_err(RecordError::Rekey)?;
        debug_assert_eq!(seq, 0);
        self.decrypter = LazyKey::new(self.suite, secrets)?;
        self.rx_seq = seq;
        Ok(())
    }
}

/// Maps rustls's decrypt-side errors onto ours. rustls's TLS 1.3 decrypters
/// also unpad and check the inner type and plaintext size.
fn decrypt_error(e: rustls::Error) -> RecordError {
    match e {
        rustls::Error::DecryptError => RecordError::DecryptFailed,
        rustls::Error::PeerSentOversizedRecord => RecordError::PlaintextTooLarge,
        rustls::Error::PeerMisbehaved(PeerMisbehaved::IllegalTlsInnerPlaintext) => {
            RecordError::EmptyInnerPlaintext
        }
        rustls::Error::PeerMisbehaved(PeerMisbehaved::IllegalMiddleboxChangeCipherSpec) => {
            RecordError::UnexpectedContentType(header::CONTENT_CHANGE_CIPHER_SPEC)
        }
        other => {
            // Not produced by the aws-lc-rs decrypters of rustls 0.23.46;
            // anything new is still an authentication-level failure.
            log::debug!("unmapped rustls decrypt error: {other}");
            RecordError::DecryptFailed
        }
    }
}
