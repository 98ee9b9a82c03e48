//! One connection's messages, rendered and framed into a buffer.

use super::*;

/// Why a message could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// `--size` leaves no room for the padding at this sequence number.
    SizeTooSmall,
}

/// Encodes one connection's messages. Holds everything fixed for the
/// connection, so encoding a message is a few copies and one integer format.
#[derive(Clone, Debug)]
pub struct ConnEncoder {
    conn: u32,
    format: Format,
    framing: Framing,
    size: usize,
    /// Synthetic mode: octet-count prefix (`"300 "`), empty for newline framing.
    size_prefix: Vec<u8>,
    header: Vec<u8>,
    ts_range: std::ops::Range<usize>,
    marker_fixed: Vec<u8>,
    lines: Option<std::sync::Arc<Vec<LineTemplate>>>,
    last_ts_us: u64,
}

impl ConnEncoder {
    pub fn new(
        spec: &MessageSpec,
        conn: u32,
        lines: Option<std::sync::Arc<Vec<LineTemplate>>>,
    ) -> Self {
        let (header, ts_range) = render_header(spec, conn);
        let size_prefix = match spec.framing {
            Framing::OctetCounted => format!("{} ", spec.size).into_bytes(),
            Framing::Newline => Vec::new(),
        };
        let mut enc = ConnEncoder {
            conn,
            format: spec.format,
            framing: spec.framing,
            size: spec.size,
            size_prefix,
            header,
            ts_range,
            marker_fixed: marker_fixed(spec.run, conn),
            lines: lines.filter(|l| !l.is_empty()),
            last_ts_us: u64::MAX,
        };
        enc.set_time_us(0);
        enc
    }

    /// Re-renders the header's timestamp; cheap when the time did not change.
    pub fn set_time_us(&mut self, unix_us: u64) {
        let unix_us = match self.format {
            Format::Rfc5424 => unix_us,
            Format::Rfc3164 => unix_us - unix_us % 1_000_000,
        };
        if unix_us != self.last_ts_us {
            self.last_ts_us = unix_us;
            write_timestamp(
                self.format,
                unix_us,
                &mut self.header[self.ts_range.clone()],
            );
        }
    }

    /// Framed length of message `seq`, in bytes.
    pub fn framed_len(&self, seq: u64) -> usize {
        let msg_len = self.msg_len(seq);
        match self.framing {
            Framing::OctetCounted => decimal_len(msg_len as u64) + 1 + msg_len,
            Framing::Newline => msg_len + 1,
        }
    }

    fn msg_len(&self, seq: u64) -> usize {
        match &self.lines {
            None => self.size,
            Some(lines) => {
                let t = &lines[(seq % lines.len() as u64) as usize];
                let head = if t.wrap {
                    self.header.len()
                } else {
                    t.head.len()
                };
                head + self.marker_fixed.len() + decimal_len(seq) + 1 + t.tail.len()
            }
        }
    }

    /// Appends framed message `seq` to `out`.
    pub fn encode(&self, seq: u64, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(seq).as_bytes();
        match &self.lines {
            None => {
                let fixed = self.header.len() + self.marker_fixed.len() + digits.len() + 1;
                if fixed >= self.size {
                    return Err(EncodeError::SizeTooSmall);
                }
                out.extend_from_slice(&self.size_prefix);
                out.extend_from_slice(&self.header);
                out.extend_from_slice(&self.marker_fixed);
                out.extend_from_slice(digits);
                out.push(b' ');
                push_padding(out, self.conn, seq, self.size - fixed);
            }
            Some(lines) => {
                let t = &lines[(seq % lines.len() as u64) as usize];
                if self.framing == Framing::OctetCounted {
                    let mut len = itoa::Buffer::new();
                    out.extend_from_slice(len.format(self.msg_len(seq)).as_bytes());
                    out.push(b' ');
                }
                out.extend_from_slice(if t.wrap { &self.header } else { &t.head });
                out.extend_from_slice(&self.marker_fixed);
                out.extend_from_slice(digits);
                out.push(b' ');
                out.extend_from_slice(&t.tail);
            }
        }
        if self.framing == Framing::Newline {
            out.push(b'\n');
        }
        Ok(())
    }

    /// Appends messages `seq, seq+1, ...` to `record` while there are fewer
    /// than `max_msgs` and the bytes appended stay within `max_bytes` (at
    /// least one is always added). Returns how many were added.
    pub fn fill_record(
        &self,
        seq: u64,
        max_msgs: u64,
        max_bytes: usize,
        record: &mut Vec<u8>,
    ) -> Result<u64, EncodeError> {
        let base = record.len();
        let mut n = 0;
        while n < max_msgs {
            if n > 0 && record.len() - base + self.framed_len(seq + n) > max_bytes {
                break;
            }
            self.encode(seq + n, record)?;
            n += 1;
        }
        Ok(n)
    }
}

/// Number of decimal digits of `v`.
pub fn decimal_len(v: u64) -> usize {
    let mut n = 1;
    let mut v = v;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}
