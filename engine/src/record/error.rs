//! Why the record layer gave up on a connection, as a type.
//!
//! Every variant has a stable snake_case [`RecordError::label`] (the stats
//! label) and the TLS alert ([`RecordError::alert`]) that a well-behaved
//! endpoint sends before closing.

use core::fmt;

use rustls::{AlertDescription, ContentType, HandshakeType};

/// A record-layer failure. The connection cannot continue after any of these.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RecordError {
    /// The header is not a TLS record header valid at this point: content
    /// type not a TLS one, or version not 0x0303. Bytes not yet received
    /// are shown as 0.
    BadRecordHeader { content_type: u8, version: u16 },
    /// The header's length field exceeds what the protocol version allows.
    RecordTooLarge { len: usize, len_max: usize },
    /// AEAD authentication failed (wrong key, sequence, or tampered bytes):
    /// `bad_record_mac`.
    DecryptFailed,
    /// The record authenticated but its plaintext exceeds 2^14 bytes.
    PlaintextTooLarge,
    /// A TLS 1.3 record whose inner plaintext is all zero padding, with no
    /// content type (RFC 8446 §5.4).
    EmptyInnerPlaintext,
    /// A content type that is not allowed after the handshake, e.g. a
    /// change_cipher_spec (RFC 8446 §5) or an unencrypted TLS 1.3 alert.
    /// Outer type for rejected headers, inner type for decrypted TLS 1.3 records.
    UnexpectedContentType(u8),
    /// A post-handshake handshake message this layer does not handle:
    /// anything but a TLS 1.3 KeyUpdate (e.g. a NewSessionTicket, which
    /// clients never send, or a TLS 1.2 renegotiation ClientHello).
    HandshakeMessageUnsupported(u8),
    /// A handshake record that does not hold exactly one whole message:
    /// the message is split across records (`len_have < len_needed`) or more
    /// bytes follow it in the record. See the module docs.
    HandshakeMessageNotAligned { len_needed: usize, len_have: usize },
    /// A KeyUpdate whose body is not a single byte 0 or 1.
    BadKeyUpdate,
    /// An alert record that is not exactly 2 bytes, or has an unknown level.
    BadAlert,
    /// More consecutive empty application-data records than allowed.
    TooManyEmptyRecords,
    /// More consecutive ignorable warning alerts than allowed.
    TooManyWarningAlerts,
    /// More KeyUpdates without application data in between than allowed.
    TooManyKeyUpdates,
    /// The 64-bit record sequence number would wrap (RFC 8446 §5.3).
    SequenceExhausted,
    /// rustls could not derive the next traffic secret.
    Rekey(rustls::Error),
    /// rustls could not encrypt an outgoing record.
    Encrypt(rustls::Error),
    /// The secrets handed over do not fit the negotiated suite, or the suite's
    /// AEAD is not one of AES-128-GCM, AES-256-GCM, CHACHA20-POLY1305.
    UnsupportedSecrets,
    /// The negotiated protocol version is neither TLS 1.2 nor TLS 1.3.
    UnsupportedVersion(u16),
    /// `process` called after a stop event or an earlier error.
    Closed,
}

impl RecordError {
    /// A stable snake_case name for metrics labels and log fields.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BadRecordHeader { .. } => "bad_record_header",
            Self::RecordTooLarge { .. } => "record_too_large",
            Self::DecryptFailed => "decrypt_failed",
            Self::PlaintextTooLarge => "plaintext_too_large",
            Self::EmptyInnerPlaintext => "empty_inner_plaintext",
            Self::UnexpectedContentType(_) => "unexpected_content_type",
            Self::HandshakeMessageUnsupported(_) => "handshake_message_unsupported",
            Self::HandshakeMessageNotAligned { .. } => "handshake_message_not_aligned",
            Self::BadKeyUpdate => "bad_key_update",
            Self::BadAlert => "bad_alert",
            Self::TooManyEmptyRecords => "too_many_empty_records",
            Self::TooManyWarningAlerts => "too_many_warning_alerts",
            Self::TooManyKeyUpdates => "too_many_key_updates",
            Self::SequenceExhausted => "sequence_exhausted",
            Self::Rekey(_) => "rekey_failed",
            Self::Encrypt(_) => "encrypt_failed",
            Self::UnsupportedSecrets => "unsupported_secrets",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::Closed => "closed",
        }
    }

    /// The fatal alert to send the peer before closing, if one applies
    /// (RFC 8446 §6.2). `None` for local failures.
    pub fn alert(&self) -> Option<AlertDescription> {
        Some(match self {
            Self::BadRecordHeader { .. } => AlertDescription::DecodeError,
            Self::RecordTooLarge { .. } | Self::PlaintextTooLarge => {
                AlertDescription::RecordOverflow
            }
            Self::DecryptFailed => AlertDescription::BadRecordMac,
            Self::EmptyInnerPlaintext
            | Self::UnexpectedContentType(_)
            | Self::HandshakeMessageUnsupported(_)
            | Self::HandshakeMessageNotAligned { .. }
            | Self::TooManyEmptyRecords
            | Self::TooManyWarningAlerts
            | Self::TooManyKeyUpdates => AlertDescription::UnexpectedMessage,
            Self::BadKeyUpdate | Self::BadAlert => AlertDescription::DecodeError,
            Self::SequenceExhausted
            | Self::Rekey(_)
            | Self::Encrypt(_)
            | Self::UnsupportedSecrets
            | Self::UnsupportedVersion(_)
            | Self::Closed => return None,
        })
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRecordHeader {
                content_type,
                version,
            } => write!(
                f,
                "bad TLS record header (content type {content_type}, version {version:#06x})"
            ),
            Self::RecordTooLarge { len, len_max } => {
                write!(
                    f,
                    "TLS record of {len} bytes exceeds the {len_max}-byte limit"
                )
            }
            Self::DecryptFailed => f.write_str("TLS record failed authentication (bad_record_mac)"),
            Self::PlaintextTooLarge => f.write_str("TLS record plaintext exceeds 2^14 bytes"),
            Self::EmptyInnerPlaintext => {
                f.write_str("TLS 1.3 record has no inner content type (all padding)")
            }
            Self::UnexpectedContentType(t) => write!(
                f,
                "unexpected TLS content type {t} ({:?}) after the handshake",
                ContentType::from(*t)
            ),
            Self::HandshakeMessageUnsupported(t) => write!(
                f,
                "unsupported post-handshake message type {t} ({:?})",
                HandshakeType::from(*t)
            ),
            Self::HandshakeMessageNotAligned {
                len_needed,
                len_have,
            } => write!(
                f,
                "post-handshake message not aligned to its record \
                 ({len_needed} bytes needed, record holds {len_have})"
            ),
            Self::BadKeyUpdate => f.write_str("malformed KeyUpdate message"),
            Self::BadAlert => f.write_str("malformed alert record"),
            Self::TooManyEmptyRecords => f.write_str("too many consecutive empty records"),
            Self::TooManyWarningAlerts => f.write_str("too many consecutive warning alerts"),
            Self::TooManyKeyUpdates => {
                f.write_str("too many KeyUpdates without application data in between")
            }
            Self::SequenceExhausted => f.write_str("TLS record sequence number exhausted"),
            Self::Rekey(e) => write!(f, "deriving the next traffic secret failed: {e}"),
            Self::Encrypt(e) => write!(f, "encrypting a record failed: {e}"),
            Self::UnsupportedSecrets => f.write_str(
                "traffic secrets do not match a supported AEAD for the negotiated suite",
            ),
            Self::UnsupportedVersion(v) => write!(f, "unsupported TLS version {v:#06x}"),
            Self::Closed => f.write_str("record layer already closed"),
        }
    }
}

impl std::error::Error for RecordError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Rekey(e) | Self::Encrypt(e) => Some(e),
            _ => None,
        }
    }
}
