//! The messages loadgen sends, and the marker/padding contract that `verify`
//! (and other tools) check. Sans-IO: everything here works on byte buffers.
//!
//! A synthetic message is
//!
//! ```text
//! RFC 5424: <134>1 2026-11-26T15:16:40.123456Z HOST loadgen PID - - lg=RUN/CONN/SEQ PADDING.
//! RFC 3164: <134>Nov 26 15:16:40 HOST loadgen[PID]: lg=RUN/CONN/SEQ PADDING.
//! ```
//!
//! `PADDING.` is `pad_len - 1` bytes taken from a fixed pseudo-random table at
//! an offset derived from (CONN, SEQ), followed by the terminator `.`, which
//! never occurs in the table. Its length is whatever makes the whole message
//! exactly `--size` bytes. `verify` recomputes it from the marker alone, so a
//! changed, missing or extra byte anywhere after the marker is detected even
//! when a relay rewrote the header in front of it. The README documents the
//! generator so other tools can recompute it too.
//!
//! | file          | role |
//! |---------------|------|
//! | `marker.rs`   | the marker, the padding table and its check (the contract with `verify`) |
//! | `clock.rs`    | timestamps in both formats, without a date library |
//! | `template.rs` | the message header, and lines read with `--read-file` |
//! | `encoder.rs`  | one connection's messages, framed, written into a buffer |

mod clock;
mod encoder;
mod marker;
mod template;

pub use clock::*;
pub use encoder::*;
pub use marker::*;
pub use template::*;

/// Every message's marker starts with these bytes.
pub const MARKER_PREFIX: &[u8] = b"lg=";
/// The padding is drawn from this alphabet; the terminator is not in it.
pub const PAD_ALPHABET: &[u8; 62] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Last byte of every synthetic message.
pub const PAD_TERMINATOR: u8 = b'.';
/// Number of distinct padding start offsets in the table.
pub const PAD_OFFSETS: usize = 4096;
/// Largest `--size` accepted, in bytes.
pub const SIZE_MAX_BYTES: usize = 65536;
/// Seed of the padding table generator ("loadgen!" as a big-endian u64).
pub const PAD_SEED: u64 = 0x6c6f_6164_6765_6e21;
/// TLS records carry at most this much plaintext (RFC 8446 5.1).
pub const TLS_PLAINTEXT_MAX_BYTES: usize = 16384;
/// Sequence numbers are sized for at most this many decimal digits when
/// checking that `--size` leaves room for the padding (10^12 messages on one
/// connection is far beyond any bounded run).
pub const SEQ_DIGITS_MAX: usize = 12;
/// Facility local0, severity informational: `<134>`.
const PRI: &[u8] = b"<134>";
const APP_NAME: &[u8] = b"loadgen";
/// IANA's example private enterprise number (RFC 5612), for `--sd`.
const SD_ID: &str = "loadgen@32473";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Framing {
    /// RFC 6587/5425 octet counting: `LEN SP MSG`.
    OctetCounted,
    /// Non-transparent framing: `MSG LF`.
    Newline,
}

impl Framing {
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::OctetCounted => "octet-counted",
            Framing::Newline => "newline",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: Format, framing: Framing, size: usize) -> MessageSpec {
        MessageSpec {
            format,
            framing,
            size,
            sd: false,
            run: 0xdead_beef,
            hostname: "host1".into(),
            pid: 4242,
        }
    }

    /// Strips the framing; returns the syslog message.
    fn unframe(framing: Framing, framed: &[u8]) -> &[u8] {
        match framing {
            Framing::OctetCounted => {
                let sp = framed.iter().position(|&b| b == b' ').unwrap();
                let len: usize = std::str::from_utf8(&framed[..sp]).unwrap().parse().unwrap();
                assert_ne!(framed[0], b'0', "no leading zeros");
                let msg = &framed[sp + 1..];
                assert_eq!(msg.len(), len, "octet count matches");
                msg
            }
            Framing::Newline => {
                assert_eq!(framed.last(), Some(&b'\n'));
                assert_eq!(framed.iter().filter(|&&b| b == b'\n').count(), 1);
                &framed[..framed.len() - 1]
            }
        }
    }

    #[test]
    fn exact_size_for_both_formats_and_framings() {
        for format in [Format::Rfc5424, Format::Rfc3164] {
            for framing in [Framing::OctetCounted, Framing::Newline] {
                for sd in [false, true] {
                    for size in [160usize, 300, 1000, 16000] {
                        let mut s = spec(format, framing, size);
                        s.sd = sd;
                        let mut enc = ConnEncoder::new(&s, 7, None);
                        enc.set_time_us(1_795_000_000_123_456);
                        for seq in [0u64, 9, 10, 99_999, 123_456_789, 999_999_999_999] {
                            let mut out = Vec::new();
                            enc.encode(seq, &mut out).unwrap();
                            assert_eq!(out.len(), enc.framed_len(seq));
                            let msg = unframe(framing, &out);
                            assert_eq!(msg.len(), size, "{format:?} {framing:?} sd={sd}");
                            let at = memchr::memmem::find(msg, b"lg=").unwrap();
                            let (m, used) = parse_marker(&msg[at..]).unwrap();
                            assert_eq!(
                                m,
                                Marker {
                                    run: 0xdead_beef,
                                    conn: 7,
                                    seq
                                }
                            );
                            assert!(padding_matches(&msg[at + used..], 7, seq));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn rfc5424_header_shape() {
        let s = spec(Format::Rfc5424, Framing::OctetCounted, 100);
        let mut enc = ConnEncoder::new(&s, 3, None);
        // 2026-11-26T15:16:40.123456Z
        enc.set_time_us(1_795_706_200_123_456);
        let mut out = Vec::new();
        enc.encode(5, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "100 <134>1 2026-11-26T15:16:40.123456Z host1 loadgen 4242 - - lg=deadbeef/3/5 "
            ),
            "{text}"
        );
        assert!(text.ends_with('.'));
    }

    #[test]
    fn rfc3164_header_shape() {
        let s = spec(Format::Rfc3164, Framing::Newline, 100);
        let mut enc = ConnEncoder::new(&s, 0, None);
        enc.set_time_us(1_794_928_600_000_000); // 2026-11-17T...
        let mut out = Vec::new();
        enc.encode(0, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let c = civil_from_unix(1_794_928_600);
        assert_eq!((c.year, c.month, c.day), (2026, 11, 17));
        assert!(text.starts_with("<134>Nov 17 "), "{text}");
        assert!(
            text.contains(" host1 loadgen[4242]: lg=deadbeef/0/0 "),
            "{text}"
        );
        enc.set_time_us(1_794_150_000_000_000); // 2026-11-08: space-padded day
        let mut out = Vec::new();
        enc.encode(0, &mut out).unwrap();
        assert!(out.starts_with(b"<134>Nov  8 "));
    }

    #[test]
    fn size_too_small_is_an_error_not_a_panic() {
        let s = spec(Format::Rfc5424, Framing::OctetCounted, 60);
        let enc = ConnEncoder::new(&s, 0, None);
        assert_eq!(
            enc.encode(0, &mut Vec::new()),
            Err(EncodeError::SizeTooSmall)
        );
        assert!(min_size(&s, 0, 1) > 60);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(
            civil_from_unix(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0
            }
        );
        // 2000-02-29T23:59:59Z
        let c = civil_from_unix(951_868_799);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2000, 2, 29, 23, 59, 59)
        );
    }

    #[test]
    fn marker_parse() {
        let (m, used) = parse_marker(b"lg=0000abcd/12/345 rest").unwrap();
        assert_eq!(
            m,
            Marker {
                run: 0xabcd,
                conn: 12,
                seq: 345
            }
        );
        assert_eq!(used, "lg=0000abcd/12/345 ".len());
        assert_eq!(parse_marker(b"lg=0000abc/1/2 "), Err(MarkerError::BadRunId));
        assert_eq!(
            parse_marker(b"lg=0000abcg/1/2 "),
            Err(MarkerError::BadRunId)
        );
        assert_eq!(parse_marker(b"lg=0000abcd//2 "), Err(MarkerError::BadConn));
        assert_eq!(
            parse_marker(b"lg=0000abcd/99999999999/2 "),
            Err(MarkerError::BadConn)
        );
        assert_eq!(
            parse_marker(b"lg=0000abcd/4294967296/2 "),
            Err(MarkerError::BadConn)
        );
        assert_eq!(parse_marker(b"lg=0000abcd/1/ "), Err(MarkerError::BadSeq));
        assert_eq!(
            parse_marker(b"lg=0000abcd/1/99999999999999999999 "),
            Err(MarkerError::BadSeq)
        );
        assert_eq!(
            parse_marker(b"lg=0000abcd/1/2"),
            Err(MarkerError::MissingSpace)
        );
        assert_eq!(
            parse_marker(b"lg=0000abcd/1/2x"),
            Err(MarkerError::MissingSpace)
        );
    }

    #[test]
    fn padding_detects_changes() {
        let mut out = Vec::new();
        push_padding(&mut out, 1, 2, 50);
        assert!(padding_matches(&out, 1, 2));
        assert!(!padding_matches(&out, 1, 3), "padding depends on seq");
        assert!(!padding_matches(&out, 2, 2), "padding depends on conn");
        assert!(!padding_matches(&out[..49], 1, 2), "truncated");
        let mut longer = out.clone();
        longer.push(b'x');
        assert!(!padding_matches(&longer, 1, 2), "extended");
        let mut altered = out.clone();
        altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
        assert!(!padding_matches(&altered, 1, 2), "altered");
        assert!(!padding_matches(b"", 1, 2));
        assert!(!pad_table().contains(&PAD_TERMINATOR));
    }

    #[test]
    fn read_file_marker_placement() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"<165>1 2003-10-11T22:14:15.003Z host app 1 ID47 - hello", b"hello"),
            (
                b"<165>1 2003-10-11T22:14:15.003Z host app 1 ID47 [ex@1 a=\"x]\\\"y\"][b@2] hi there",
                b"hi there",
            ),
            (b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed", b"'su root' failed"),
            (b"<34>Oct 11 22:14:15 mymachine su[12]: a: b", b"a: b"),
            (b"<34>Oct 11 22:14:15 mymachine no tag here", b"no tag here"),
            (b"<165>1 - - - - - -", b""),
        ];
        for (line, msg) in cases {
            let at = msg_start(line).unwrap();
            assert_eq!(&line[at..], msg, "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(msg_start(b"plain text line"), None);
    }

    #[test]
    fn read_file_messages_carry_marker_and_length() {
        let data = b"<34>Oct 11 22:14:15 mymachine su: failed\n\nplain line\r\n";
        let (lines, skipped) = templates_from_file(data);
        assert_eq!((lines.len(), skipped), (2, 0));
        let lines = std::sync::Arc::new(lines);
        for framing in [Framing::OctetCounted, Framing::Newline] {
            let s = spec(Format::Rfc5424, framing, 300);
            let enc = ConnEncoder::new(&s, 2, Some(lines.clone()));
            let mut out = Vec::new();
            enc.encode(10, &mut out).unwrap();
            assert_eq!(out.len(), enc.framed_len(10));
            let msg = unframe(framing, &out);
            assert_eq!(
                msg,
                &b"<34>Oct 11 22:14:15 mymachine su: lg=deadbeef/2/10 failed"[..]
            );
            let mut out = Vec::new();
            enc.encode(11, &mut out).unwrap();
            let msg = unframe(framing, &out);
            assert!(msg.starts_with(b"<134>1 "));
            assert!(msg.ends_with(b"loadgen 4242 - - lg=deadbeef/2/11 plain line"));
        }
    }

    #[test]
    fn records_respect_message_and_byte_limits() {
        let s = spec(Format::Rfc5424, Framing::OctetCounted, 300);
        let enc = ConnEncoder::new(&s, 0, None);
        let mut rec = Vec::new();
        assert_eq!(
            enc.fill_record(0, 50, TLS_PLAINTEXT_MAX_BYTES, &mut rec)
                .unwrap(),
            50
        );
        assert_eq!(rec.len(), 50 * 304);
        rec.clear();
        // 16384 / 304 = 53.9: the byte limit caps a 100-message request.
        assert_eq!(
            enc.fill_record(0, 100, TLS_PLAINTEXT_MAX_BYTES, &mut rec)
                .unwrap(),
            53
        );
        assert!(rec.len() <= TLS_PLAINTEXT_MAX_BYTES);
    }

    #[test]
    fn decimal_lengths() {
        assert_eq!(decimal_len(0), 1);
        assert_eq!(decimal_len(9), 1);
        assert_eq!(decimal_len(10), 2);
        assert_eq!(decimal_len(u64::MAX), 20);
    }
}
