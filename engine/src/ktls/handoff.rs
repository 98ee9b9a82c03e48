//! Where the last whole TLS record ends in a buffer of ciphertext (sans-IO).
//!
//! The kernel can only take over a socket at a record boundary: a record
//! whose first bytes were already read into userspace can never be decrypted
//! by the kernel, and any record rustls decrypted has moved rustls's read
//! sequence number, which `ExtractedSecrets` then reports. So before the
//! switch the shard must know whether the bytes it holds end exactly on a
//! record boundary, and if not, how many more bytes to read (with an exact
//! length, never a multishot recv) to get there. This module answers that.

use std::fmt;

/// A TLS record header: type (1), legacy version (2), length (2).
pub const RECORD_HEADER_BYTES: usize = 5;

/// The largest record payload on the wire: 2^14 of plaintext plus 256 of
/// AEAD expansion (RFC 8446 §5.2; RFC 5246 allows 2048 but no AEAD suite
/// needs more than 256).
pub const RECORD_PAYLOAD_BYTES_MAX: usize = 16384 + 256;

/// How the buffer splits into whole records and the start of one more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordBoundary {
    /// Whole records at the front of the buffer.
    pub records: usize,
    /// Bytes those whole records take.
    pub whole_bytes: usize,
    /// Bytes to read before the partial record after them is whole (0 when
    /// the buffer ends on a boundary). While the header itself is incomplete
    /// this counts only the missing header bytes: read them and ask again.
    pub missing_bytes: usize,
}

impl RecordBoundary {
    pub fn is_aligned(&self) -> bool {
        self.missing_bytes == 0
    }
}

/// The buffer does not hold TLS records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadRecordHeader {
    pub offset: usize,
    pub content_type: u8,
    pub length: usize,
}

impl fmt::Display for BadRecordHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a TLS record at byte {}: type {}, length {}",
            self.offset, self.content_type, self.length
        )
    }
}

impl std::error::Error for BadRecordHeader {}

/// Walks the record headers in `buf` (ciphertext as read from the socket).
pub fn record_boundary(buf: &[u8]) -> Result<RecordBoundary, BadRecordHeader> {
    let mut at = 0;
    let mut records = 0;
    loop {
        let rest = &buf[at..];
        if rest.is_empty() {
            return Ok(RecordBoundary {
                records,
                whole_bytes: at,
                missing_bytes: 0,
            });
        }
        // A header split across reads: only its missing bytes are known to
        // be needed; the payload length is not known yet.
        if rest.len() < RECORD_HEADER_BYTES {
            return Ok(RecordBoundary {
                records,
                whole_bytes: at,
                missing_bytes: RECORD_HEADER_BYTES - rest.len(),
            });
        }
        let content_type = rest[0];
        let length = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        // 20..=23: change_cipher_spec, alert, handshake, application_data.
        // Anything else, or an oversized length, means the stream is not
        // TLS any more; reading "the rest of the record" would then read an
        // attacker-chosen amount.
        if !(20..=23).contains(&content_type) || rest[1] != 3 || length > RECORD_PAYLOAD_BYTES_MAX {
            return Err(BadRecordHeader {
                offset: at,
                content_type,
                length,
            });
        }
        let record_bytes = RECORD_HEADER_BYTES + length;
        if rest.len() < record_bytes {
            return Ok(RecordBoundary {
                records,
                whole_bytes: at,
                missing_bytes: record_bytes - rest.len(),
            });
        }
        at += record_bytes;
        records += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content_type: u8, len: usize) -> Vec<u8> {
        let mut r = vec![content_type, 3, 3];
        r.extend_from_slice(&(len as u16).to_be_bytes());
        r.resize(RECORD_HEADER_BYTES + len, 0xEE);
        r
    }

    #[test]
    fn empty_buffer_is_aligned() {
        let b = record_boundary(&[]).unwrap();
        assert!(b.is_aligned());
        assert_eq!((b.records, b.whole_bytes), (0, 0));
    }

    #[test]
    fn whole_records_are_aligned() {
        let mut buf = record(23, 100);
        buf.extend(record(21, 2));
        let b = record_boundary(&buf).unwrap();
        assert_eq!(
            b,
            RecordBoundary {
                records: 2,
                whole_bytes: buf.len(),
                missing_bytes: 0
            }
        );
    }

    #[test]
    fn header_split_across_reads_asks_for_the_header_only() {
        let mut buf = record(23, 10);
        buf.extend_from_slice(&[23, 3]);
        let b = record_boundary(&buf).unwrap();
        assert_eq!((b.records, b.whole_bytes, b.missing_bytes), (1, 15, 3));
    }

    #[test]
    fn partial_body_asks_for_the_rest_of_the_record() {
        let mut buf = record(23, 10);
        let second = record(23, 300);
        buf.extend_from_slice(&second[..50]);
        let b = record_boundary(&buf).unwrap();
        assert_eq!((b.records, b.whole_bytes, b.missing_bytes), (1, 15, 255));
    }

    #[test]
    fn largest_record_is_accepted_and_one_more_byte_is_not() {
        let buf = record(23, RECORD_PAYLOAD_BYTES_MAX);
        assert!(record_boundary(&buf).unwrap().is_aligned());
        let mut bad = vec![23, 3, 3];
        bad.extend_from_slice(&((RECORD_PAYLOAD_BYTES_MAX + 1) as u16).to_be_bytes());
        assert!(record_boundary(&bad).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_read_length() {
        let err = record_boundary(b"<13>1 2026-11-01T00:00:00Z host app - - - hi").unwrap_err();
        assert_eq!((err.offset, err.content_type), (0, b'<'));
        let mut buf = record(22, 4);
        buf.extend_from_slice(&[0x80, 3, 3, 0, 1]);
        assert_eq!(record_boundary(&buf).unwrap_err().offset, 9);
    }
}
