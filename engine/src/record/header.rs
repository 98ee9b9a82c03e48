//! The 5-byte TLS record header: parsing and size limits (sans-IO).
//!
//! ```text
//! struct {
//!     ContentType type;          // 1 byte
//!     ProtocolVersion version;   // 2 bytes, 0x0303 on the wire after the handshake
//!     uint16 length;             // bytes of (encrypted) fragment that follow
//!     opaque fragment[length];
//! } TLSCiphertext;
//! ```
//!
//! Like a frame decoder, the first question is always "is a whole record
//! buffered?"; it is answered from the header alone and allocates nothing.
//! "Not yet" is not an error. A header that can never become valid is
//! rejected as soon as its first bad byte is visible, so a peer that sends
//! garbage is not waited on until it has sent five bytes of it.

use super::error::RecordError;

/// Bytes in a record header.
pub const HEADER_LEN: usize = 5;

/// Largest plaintext fragment in any TLS version (RFC 8446 §5.1, RFC 5246 §6.2.1).
pub const PLAINTEXT_LEN_MAX: usize = 1 << 14;

/// Largest `TLSCiphertext.length` in TLS 1.3: 2^14 + 256 (RFC 8446 §5.2).
pub const TLS13_CIPHERTEXT_LEN_MAX: usize = PLAINTEXT_LEN_MAX + 256;

/// Largest `TLSCiphertext.length` in TLS 1.2: 2^14 + 2048 (RFC 5246 §6.2.3).
pub const TLS12_CIPHERTEXT_LEN_MAX: usize = PLAINTEXT_LEN_MAX + 2048;

/// Largest whole record (header included) any peer may send. A receive buffer
/// must hold at least this many bytes, or a maximal record never completes.
pub const RECORD_LEN_MAX: usize = HEADER_LEN + TLS12_CIPHERTEXT_LEN_MAX;

/// TLS content types (RFC 8446 §5.1, RFC 6520 for heartbeat).
pub(crate) const CONTENT_CHANGE_CIPHER_SPEC: u8 = 20;
pub(crate) const CONTENT_ALERT: u8 = 21;
pub(crate) const CONTENT_HANDSHAKE: u8 = 22;
pub(crate) const CONTENT_APPLICATION_DATA: u8 = 23;
const CONTENT_HEARTBEAT: u8 = 24;

/// `legacy_record_version` of every record after the handshake, TLS 1.2 and 1.3 alike.
pub const RECORD_VERSION_TLS12: u16 = 0x0303;

/// A parsed record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub content_type: u8,
    pub version: u16,
    /// Bytes of fragment after the header.
    pub len: usize,
}

impl RecordHeader {
    /// Bytes of the whole record, header included.
    pub(crate) fn record_len(&self) -> usize {
        HEADER_LEN + self.len
    }
}

/// What the bytes at the front of a buffer amount to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needed {
    /// A whole record of `record_len` bytes (header included) is at the front.
    Complete { record_len: usize },
    /// `missing` more bytes complete the record at the front (or, with fewer
    /// than [`HEADER_LEN`] bytes buffered, its header: call again once they arrive).
    More { missing: usize },
}

/// What a header must look like at a given point of the connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeaderRules {
    /// `Some(v)`: the version field must be exactly `v`. `None`: any `0x03xx`
    /// (ClientHello records commonly carry 0x0301).
    pub version_exact: Option<u16>,
    pub ciphertext_len_max: usize,
}

impl HeaderRules {
    /// Any record of any TLS version, e.g. while the handshake is read.
    pub(crate) const ANY: HeaderRules = HeaderRules {
        version_exact: None,
        ciphertext_len_max: TLS12_CIPHERTEXT_LEN_MAX,
    };
}

/// Outcome of [`parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// The header is complete and valid (the body may still be incomplete).
    Header(RecordHeader),
    /// Fewer than [`HEADER_LEN`] bytes, all valid so far.
    Incomplete,
}

/// How many bytes complete the TLS record at the front of `buf`, for reading
/// exactly whole records (the handshake before a kTLS switch must not read
/// past its last record, or those bytes cannot be handed to the kernel).
///
/// Accepts any TLS version 0x0300..=0x0304 and lengths up to
/// [`TLS12_CIPHERTEXT_LEN_MAX`]; rejects what is not TLS at all.
pub fn record_len_needed(buf: &[u8]) -> Result<Needed, RecordError> {
    needed(buf, HeaderRules::ANY)
}

pub(crate) fn needed(buf: &[u8], rules: HeaderRules) -> Result<Needed, RecordError> {
    match parse(buf, rules)? {
        Parsed::Incomplete => {
            debug_assert!(buf.len() < HEADER_LEN);
            Ok(Needed::More {
                missing: HEADER_LEN - buf.len(),
            })
        }
        Parsed::Header(header) => {
            let record_len = header.record_len();
            if buf.len() >= record_len {
                Ok(Needed::Complete { record_len })
            } else {
                Ok(Needed::More {
                    missing: record_len - buf.len(),
                })
            }
        }
    }
}

/// Parses the header at the front of `buf`, checking each byte as soon as it
/// is present.
pub(crate) fn parse(buf: &[u8], rules: HeaderRules) -> Result<Parsed, RecordError> {
    // Missing bytes read as "unknown" in the error, not as a value.
    let content_type = buf.first().copied();
    let version_hi = buf.get(1).copied();
    let version_lo = buf.get(2).copied();
    let bad = || RecordError::BadRecordHeader {
        content_type: content_type.unwrap_or(0),
        version: u16::from_be_bytes([version_hi.unwrap_or(0), version_lo.unwrap_or(0)]),
    };

    if let Some(t) = content_type {
        if !(CONTENT_CHANGE_CIPHER_SPEC..=CONTENT_HEARTBEAT).contains(&t) {
            return Err(bad());
        }
    }
    match (rules.version_exact, version_hi, version_lo) {
        (_, None, _) => {}
        (Some(v), Some(hi), lo) => {
            let [v_hi, v_lo] = v.to_be_bytes();
            if hi != v_hi || lo.is_some_and(|lo| lo != v_lo) {
                return Err(bad());
            }
        }
        (None, Some(hi), lo) => {
            if hi != 0x03 || lo.is_some_and(|lo| lo > 0x04) {
                return Err(bad());
            }
        }
    }

    let [t, v_hi, v_lo, l_hi, l_lo, ..] = *buf else {
        return Ok(Parsed::Incomplete);
    };
    let len = usize::from(u16::from_be_bytes([l_hi, l_lo]));
    // Checked before the body arrives: a caller must never try to buffer a
    // record it will reject anyway.
    if len > rules.ciphertext_len_max {
        return Err(RecordError::RecordTooLarge {
            len,
            len_max: rules.ciphertext_len_max,
        });
    }
    Ok(Parsed::Header(RecordHeader {
        content_type: t,
        version: u16::from_be_bytes([v_hi, v_lo]),
        len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT13: HeaderRules = HeaderRules {
        version_exact: Some(RECORD_VERSION_TLS12),
        ciphertext_len_max: TLS13_CIPHERTEXT_LEN_MAX,
    };

    #[test]
    fn empty_buffer_needs_a_header() {
        assert_eq!(record_len_needed(&[]).unwrap(), Needed::More { missing: 5 });
    }

    #[test]
    fn header_split_across_reads_is_incomplete_not_error() {
        let rec = [23u8, 3, 3, 0, 40];
        for cut in 0..HEADER_LEN {
            assert_eq!(
                needed(&rec[..cut], STRICT13).unwrap(),
                Needed::More {
                    missing: HEADER_LEN - cut
                },
                "cut at {cut}"
            );
        }
        assert_eq!(
            needed(&rec, STRICT13).unwrap(),
            Needed::More { missing: 40 }
        );
    }

    #[test]
    fn complete_record_reports_its_length_and_ignores_what_follows() {
        let mut buf = vec![23u8, 3, 3, 0, 3, 1, 2, 3];
        buf.extend_from_slice(&[23, 3, 3]);
        assert_eq!(
            needed(&buf, STRICT13).unwrap(),
            Needed::Complete { record_len: 8 }
        );
    }

    #[test]
    fn zero_length_record_is_complete_at_header() {
        assert_eq!(
            record_len_needed(&[23, 3, 3, 0, 0]).unwrap(),
            Needed::Complete { record_len: 5 }
        );
    }

    #[test]
    fn garbage_is_rejected_at_its_first_byte() {
        // "GET /" and an SSLv2-style header.
        for garbage in [&b"G"[..], b"GET /", &[0x80, 0x2e, 0x01]] {
            assert!(matches!(
                record_len_needed(garbage),
                Err(RecordError::BadRecordHeader { .. })
            ));
        }
    }

    #[test]
    fn wrong_version_is_rejected_before_length_arrives() {
        assert!(matches!(
            needed(&[23, 3, 1], STRICT13),
            Err(RecordError::BadRecordHeader {
                content_type: 23,
                version: 0x0301
            })
        ));
        assert!(matches!(
            needed(&[23, 2], STRICT13),
            Err(RecordError::BadRecordHeader { .. })
        ));
        // Handshake-time rules accept the ClientHello's 0x0301 but not 0x0305.
        assert!(record_len_needed(&[22, 3, 1, 0, 10]).is_ok());
        assert!(record_len_needed(&[22, 3, 5]).is_err());
    }

    #[test]
    fn oversize_length_is_rejected_before_body_arrives() {
        let over = (TLS13_CIPHERTEXT_LEN_MAX + 1) as u16;
        let [hi, lo] = over.to_be_bytes();
        assert!(matches!(
            needed(&[23, 3, 3, hi, lo], STRICT13),
            Err(RecordError::RecordTooLarge { len, .. }) if len == over as usize
        ));
        // The same length is legal for TLS 1.2 ciphertext.
        assert!(record_len_needed(&[23, 3, 3, hi, lo]).is_ok());
        assert!(matches!(
            record_len_needed(&[23, 3, 3, 0xff, 0xff]),
            Err(RecordError::RecordTooLarge { len: 65535, .. })
        ));
    }

    #[test]
    fn maximal_record_fits_record_len_max() {
        let [hi, lo] = (TLS12_CIPHERTEXT_LEN_MAX as u16).to_be_bytes();
        assert_eq!(
            record_len_needed(&[23, 3, 3, hi, lo]).unwrap(),
            Needed::More {
                missing: TLS12_CIPHERTEXT_LEN_MAX
            }
        );
        assert_eq!(RECORD_LEN_MAX, 5 + 16384 + 2048);
    }
}
