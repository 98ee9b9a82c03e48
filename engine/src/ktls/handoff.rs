//! Where the last whole TLS record ends in a buffer of ciphertext (sans-IO).
//!
//! The kernel can only take over a socket at a record boundary: a record
//! whose first bytes were already read into userspace can never be decrypted
//! by the kernel, and any record rustls decrypted has moved rustls's read
//! sequence number, which `ExtractedSecrets` then reports. So before the
//! switch the shard must know whether the bytes it holds end exactly on a
//! record boundary, and if not, how many more bytes to read (with an exact
//! length, never a multishot recv) to get there. This module answers that.

use crate::record::{record_len_needed, Needed, RecordError};

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

/// Walks the record headers in `buf` (ciphertext as read from the socket).
/// Each header is read by the record layer's one parser
/// ([`record_len_needed`]), with its limits: what is not TLS, or longer than
/// TLS allows, is an error before any of its body is read.
pub fn record_boundary(buf: &[u8]) -> Result<RecordBoundary, RecordError> {
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
        match record_len_needed(rest)? {
            Needed::Complete { record_len } => {
                at += record_len;
                records += 1;
            }
            // A header split across reads asks only for its missing bytes:
            // the payload length is not known yet.
            Needed::More { missing } => {
                return Ok(RecordBoundary {
                    records,
                    whole_bytes: at,
                    missing_bytes: missing,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{HEADER_LEN, TLS12_CIPHERTEXT_LEN_MAX};

    fn record(content_type: u8, len: usize) -> Vec<u8> {
        let mut r = vec![content_type, 3, 3];
        r.extend_from_slice(&(len as u16).to_be_bytes());
        r.resize(HEADER_LEN + len, 0xEE);
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
        let buf = record(23, TLS12_CIPHERTEXT_LEN_MAX);
        assert!(record_boundary(&buf).unwrap().is_aligned());
        let mut bad = vec![23, 3, 3];
        bad.extend_from_slice(&((TLS12_CIPHERTEXT_LEN_MAX + 1) as u16).to_be_bytes());
        assert!(matches!(
            record_boundary(&bad),
            Err(RecordError::RecordTooLarge { .. })
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_read_length() {
        let err = record_boundary(b"<13>1 2026-11-01T00:00:00Z host app - - - hi").unwrap_err();
        assert!(matches!(
            err,
            RecordError::BadRecordHeader {
                content_type: b'<',
                ..
            }
        ));
        let mut buf = record(22, 4);
        buf.extend_from_slice(&[0x80, 3, 3, 0, 1]);
        assert!(matches!(
            record_boundary(&buf),
            Err(RecordError::BadRecordHeader {
                content_type: 0x80,
                ..
            })
        ));
    }
}
