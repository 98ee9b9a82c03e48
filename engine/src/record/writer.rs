//! The send half after the handshake. ringest sends no application data, so
//! this only encrypts control records: close_notify, a fatal alert before
//! closing, and a TLS 1.3 KeyUpdate. These are rare, so the one small
//! allocation rustls's encrypter makes per record is acceptable here.

use core::fmt;

use rustls::crypto::cipher::{MessageEncrypter, OutboundChunks, OutboundPlainMessage};
use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{
    AlertDescription, ConnectionTrafficSecrets, ContentType, ProtocolVersion, SupportedCipherSuite,
};

use super::control::{ALERT_LEVEL_FATAL, ALERT_LEVEL_WARNING};
use super::error::RecordError;
use super::keys::{self, LazyKey, Version};

/// KeyUpdate(update_not_requested): type 24, length 1, body 0 (RFC 8446 §4.6.3).
const KEY_UPDATE_NOT_REQUESTED: [u8; 5] = [24, 0, 0, 1, 0];

/// Encrypts control records under the server's sending key.
///
/// Limit: aws-lc-rs's AES-GCM sealing key (which rustls uses for TLS 1.2
/// and 1.3) treats the first nonce it sees as counter 0 and then demands
/// strictly increasing `nonce XOR first_nonce`. The handed-over key starts at
/// the sequence number rustls reached, not 0, so only the first **two**
/// records under it are guaranteed to encrypt (more may fail with
/// [`RecordError::Encrypt`], never with a panic or a reused nonce). That
/// covers every use here: a KeyUpdate answer (after which the sequence
/// restarts at 0 and there is no limit), or a fatal alert and/or close_notify.
/// CHACHA20-POLY1305 has no such check.
pub struct RecordWriter {
    /// Built at the first record sent ([`LazyKey`]): most connections
    /// send nothing but their close_notify.
    encrypter: LazyKey<Box<dyn MessageEncrypter>>,
    /// Sequence number of the next record to encrypt.
    tx_seq: u64,
    version: Version,
    suite: SupportedCipherSuite,
}

impl fmt::Debug for RecordWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordWriter")
            .field("version", &self.version)
            .field("suite", &self.suite.suite())
            .field("tx_seq", &self.tx_seq)
            .finish_non_exhaustive()
    }
}

impl RecordWriter {
    /// `tx` is `ExtractedSecrets::tx` from `dangerous_into_kernel_connection()`;
    /// `suite` is `KernelConnection::negotiated_cipher_suite()`.
    ///
    /// Every byte rustls produced during the handshake (including TLS 1.3
    /// NewSessionTickets) must be on the wire before anything written here.
    pub fn new(
        suite: SupportedCipherSuite,
        (tx_seq, secrets): (u64, ConnectionTrafficSecrets),
    ) -> Result<Self, RecordError> {
        Ok(Self {
            encrypter: LazyKey::new(suite, secrets)?,
            tx_seq,
            version: Version::of(suite),
            suite,
        })
    }

    /// Whether the sending key was built (it is at the first record sent).
    #[cfg(test)]
    pub(crate) fn key_built(&self) -> bool {
        self.encrypter.is_built()
    }

    pub fn tx_seq(&self) -> u64 {
        self.tx_seq
    }

    /// Appends an encrypted close_notify alert record to `out`.
    pub fn close_notify(&mut self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        self.encrypt(
            ContentType::Alert,
            &[ALERT_LEVEL_WARNING, u8::from(AlertDescription::CloseNotify)],
            out,
        )
    }

    /// Appends an encrypted fatal alert record to `out`, e.g. from
    /// [`RecordError::alert`] before closing on an error.
    pub fn fatal_alert(
        &mut self,
        description: AlertDescription,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        self.encrypt(
            ContentType::Alert,
            &[ALERT_LEVEL_FATAL, u8::from(description)],
            out,
        )
    }

    /// TLS 1.3 only: appends KeyUpdate(update_not_requested), encrypted
    /// under the current key, then switches to the next sending key. Use it
    /// to answer [`Progress::key_update_requested`](super::Progress::key_update_requested);
    /// `kernel` is [`RecordReader::kernel_mut`](super::RecordReader::kernel_mut).
    pub fn key_update(
        &mut self,
        kernel: &mut KernelConnection<ServerConnectionData>,
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        if self.version != Version::Tls13 {
            return Err(RecordError::UnsupportedVersion(u16::from(
                ProtocolVersion::TLSv1_2,
            )));
        }
        if self.tx_seq == u64::MAX {
            return Err(RecordError::SequenceExhausted);
        }
        // Derive first: if rustls refuses, nothing was written and the old
        // key stays in use.
        let (seq, secrets) = kernel.update_tx_secret().map_err(RecordError::Rekey)?;
        let next = LazyKey::new(self.suite, secrets)?;
        self.encrypt(ContentType::Handshake, &KEY_UPDATE_NOT_REQUESTED, out)?;
        self.encrypter = next;
        self.tx_seq = seq;
        Ok(())
    }

    fn encrypt(
        &mut self,
        typ: ContentType,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), RecordError> {
        if self.tx_seq == u64::MAX {
            return Err(RecordError::SequenceExhausted);
        }
        let msg = OutboundPlainMessage {
            typ,
            // TLS 1.2 authenticates this as the record version; TLS 1.3
            // encrypters ignore it and write 0x0303 themselves.
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(payload),
        };
        let record = self
            .encrypter
            .get(self.suite, keys::encrypter)?
            .encrypt(msg, self.tx_seq)
            .map_err(RecordError::Encrypt)?;
        self.tx_seq += 1;
        out.extend_from_slice(&record.encode());
        Ok(())
    }
}
