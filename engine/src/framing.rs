//! Sans-IO syslog frame decoder (RFC 6587 framing over TLS, RFC 5425).
//!
//! The connection code feeds plaintext chunks, cut anywhere, to a [`Decoder`]
//! and gets complete frames back as slices borrowed from the chunk. The only
//! copy made is of a frame that spans chunks: its bytes are gathered in the
//! decoder's partial buffer (counted in [`DecoderCounters::copied_bytes`]).
//!
//! Rules, and why:
//! - **Modes.** Octet-counted (`MSG-LEN SP MSG`, RFC 6587 §3.4.1 / RFC 5425)
//!   and newline (§3.4.2, syslog-ng `network()`). `Auto` looks at the first
//!   byte of the connection only: a digit means octet-counted (a syslog
//!   message starts with `<`), anything else newline. It never changes after.
//! - **Header.** 1 to 10 ASCII digits then exactly one SP. Ten digits is
//!   syslog-ng's limit and can never overflow a `u64`. Leading zeros are
//!   accepted (loggen writes `000000171 ...`; syslog-ng and rsyslog accept it)
//!   and counted. `0 ` is an empty frame: nothing is emitted. LF and CR are
//!   skipped between frames (some senders add a newline after each frame);
//!   any other non-digit where a header starts, or a digit run not ended by
//!   SP, is an error and the connection must be closed, as syslog-ng does.
//! - **Trailing LF.** syslog-ng counts the message's trailing LF in MSG-LEN
//!   (`266 <38>1 ...\n`), while our writer adds its own: exactly one trailing
//!   `\n` is stripped from an octet-counted frame. Nothing else is rewritten:
//!   bytes are kept as sent, UTF-8 or not (a `\r` stays in newline mode too).
//! - **Newline.** A frame ends at `\n`, which is not part of it. Empty lines
//!   emit nothing. At end of stream an unterminated last line is emitted, as
//!   syslog-ng does; an octet-counted stream ending mid-frame is an error.
//! - **Size.** A frame longer than `max_message_bytes` (after the LF strip)
//!   is truncated to its first `max_message_bytes` bytes (`truncated: true`)
//!   or dropped, per [`OversizePolicy`], counted once, and decoding resumes at
//!   the next frame (octet-counted: after exactly the declared length, which
//!   may be as large as 9_999_999_999 without any allocation; newline: after
//!   the next `\n`). The partial buffer never holds more than
//!   `max_message_bytes`; header digits live in the state, not the buffer.
//! - **Counting.** `frames` counts emitted frames (truncated ones included);
//!   dropped oversize frames and empty frames only count in their own counter.

use std::fmt;

use memchr::memchr;

/// syslog-ng's limit; also the longest digit run that cannot overflow a u64.
const MAX_HEADER_DIGITS: u8 = 10;

/// After a spanning frame is emitted, a partial buffer bigger than this is
/// freed: idle connections must stay within ~16 KiB including TLS state.
const RELEASE_CAPACITY: usize = 4096;

/// How frames are delimited on a connection; `Auto` decides on the first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingMode {
    OctetCounted,
    Newline,
    Auto,
}

/// What to do with a frame longer than `max_message_bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OversizePolicy {
    Truncate,
    Drop,
}

/// One message, borrowed from the fed chunk or from the decoder's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub bytes: &'a [u8],
    /// It was longer than `max_message_bytes` and was cut to it.
    pub truncated: bool,
}

/// Why a connection's stream cannot be decoded; the connection must close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FramingError {
    HeaderNotDigit { byte: u8 },
    HeaderTooLong,
    MissingSpace { byte: u8 },
    TruncatedAtEof { missing_bytes: u64 },
    EofInHeader,
}

impl FramingError {
    /// Stable snake_case name, used as a Prometheus label value.
    pub fn label(&self) -> &'static str {
        match self {
            FramingError::HeaderNotDigit { .. } => "header_not_digit",
            FramingError::HeaderTooLong => "header_too_long",
            FramingError::MissingSpace { .. } => "missing_space",
            FramingError::TruncatedAtEof { .. } => "truncated_at_eof",
            FramingError::EofInHeader => "eof_in_header",
        }
    }
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::HeaderNotDigit { byte } => {
                write!(f, "invalid octet-count header: byte {byte:#04x} is not a digit")
            }
            FramingError::HeaderTooLong => {
                write!(f, "invalid octet-count header: more than {MAX_HEADER_DIGITS} digits")
            }
            FramingError::MissingSpace { byte } => write!(
                f,
                "invalid octet-count header: expected a space after the length, got byte {byte:#04x}"
            ),
            FramingError::TruncatedAtEof { missing_bytes } => {
                write!(f, "stream ended inside a frame: {missing_bytes} bytes missing")
            }
            FramingError::EofInHeader => write!(f, "stream ended inside an octet-count header"),
        }
    }
}

impl std::error::Error for FramingError {}

/// Event counts, taken in batches with [`Decoder::take_counters`].
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderCounters {
    pub frames: u64,
    pub copied_bytes: u64,
    pub oversize_frames: u64,
    pub leading_zero_frames: u64,
    pub empty_frames: u64,
}

/// Octet-counted parser state; a header in progress lives here, not in the buffer.
#[derive(Clone, Copy, Debug)]
enum Octet {
    Idle,
    Header {
        len: u64,
        digits: u8,
        first_zero: bool,
    },
    Body {
        declared: u64,
        remaining: u64,
    },
}

/// Per-connection frame decoder; the module docs give the rules.
#[derive(Debug)]
pub struct Decoder {
    mode: FramingMode,
    max_message_bytes: usize,
    oversize: OversizePolicy,
    octet: Octet,
    /// Newline mode: length of the unterminated line so far (0 = none). It can
    /// exceed the buffer, which keeps at most `max_message_bytes` bytes of it.
    line_len: u64,
    buf: Vec<u8>,
    counters: DecoderCounters,
    failed: Option<FramingError>,
}

impl Decoder {
    pub fn new(mode: FramingMode, max_message_bytes: usize, oversize: OversizePolicy) -> Self {
        Decoder {
            mode,
            max_message_bytes,
            oversize,
            octet: Octet::Idle,
            line_len: 0,
            buf: Vec::new(), // no allocation until a frame spans chunks
            counters: DecoderCounters::default(),
            failed: None,
        }
    }

    /// Feeds one chunk; calls `emit` once per complete frame, in order. On Err
    /// the connection must be closed; frames emitted before it are valid.
    /// After an Err, further calls return the same error without emitting.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        emit: &mut impl FnMut(Frame<'_>),
    ) -> Result<(), FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.mode == FramingMode::Auto {
            // An octet-counted stream must start with a digit and a syslog
            // message with '<', so the very first byte decides for good.
            self.mode = match chunk.first() {
                Some(b) if b.is_ascii_digit() => FramingMode::OctetCounted,
                Some(_) => FramingMode::Newline,
                None => return Ok(()),
            };
        }
        if self.mode == FramingMode::Newline {
            self.feed_newline(chunk, emit);
            return Ok(());
        }
        self.feed_octet(chunk, emit).map_err(|e| self.fail(e))
    }

    /// End of stream: newline framing emits an unterminated last line (as
    /// syslog-ng does); octet-counted mid-frame is an error.
    pub fn finish(&mut self, emit: &mut impl FnMut(Frame<'_>)) -> Result<(), FramingError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match (self.mode, self.octet) {
            (FramingMode::Newline, _) if self.line_len > 0 => {
                let c = &mut self.counters;
                deliver(
                    c,
                    self.max_message_bytes,
                    self.oversize,
                    &self.buf,
                    self.line_len,
                    emit,
                );
                self.line_len = 0;
                self.release();
                Ok(())
            }
            (FramingMode::OctetCounted, Octet::Header { .. }) => {
                Err(self.fail(FramingError::EofInHeader))
            }
            (FramingMode::OctetCounted, Octet::Body { remaining, .. }) => {
                let missing_bytes = remaining;
                Err(self.fail(FramingError::TruncatedAtEof { missing_bytes }))
            }
            _ => Ok(()),
        }
    }

    /// Counters since the last call, then reset to zero.
    pub fn take_counters(&mut self) -> DecoderCounters {
        std::mem::take(&mut self.counters)
    }

    /// Bytes held in the partial-frame buffer (for memory accounting).
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// The resolved mode; `Auto` until the first byte has been seen.
    pub fn mode(&self) -> FramingMode {
        self.mode
    }

    fn feed_octet(
        &mut self,
        chunk: &[u8],
        emit: &mut impl FnMut(Frame<'_>),
    ) -> Result<(), FramingError> {
        let mut pos = 0;
        while pos < chunk.len() {
            let Octet::Body {
                declared,
                remaining,
            } = self.octet
            else {
                pos = self.parse_header(chunk, pos)?;
                continue;
            };
            let rest = &chunk[pos..];
            if remaining == declared && remaining <= rest.len() as u64 {
                // Hot path: the whole frame is in this chunk, lend it out as is.
                let frame = &rest[..remaining as usize];
                pos += frame.len();
                self.octet = Octet::Idle;
                let len = strip_lf(frame).len() as u64;
                deliver(
                    &mut self.counters,
                    self.max_message_bytes,
                    self.oversize,
                    frame,
                    len,
                    emit,
                );
                continue;
            }
            // The frame spans chunks: keep at most `max_message_bytes` bytes of it, skip the rest.
            let piece = &rest[..remaining.min(rest.len() as u64) as usize];
            pos += piece.len();
            // Oversize whatever its last byte and to be dropped: nothing to keep.
            let doomed = declared > (self.max_message_bytes as u64).saturating_add(1)
                && self.oversize == OversizePolicy::Drop;
            let bound = if doomed { 0 } else { self.max_message_bytes };
            append_bounded(&mut self.buf, piece, bound, &mut self.counters.copied_bytes);
            let remaining = remaining - piece.len() as u64; // piece.len() <= remaining
            if remaining > 0 {
                self.octet = Octet::Body {
                    declared,
                    remaining,
                };
                continue;
            }
            self.octet = Octet::Idle;
            // The frame's last byte is in this piece (declared > 0, so non-empty).
            let len = declared - u64::from(piece.last() == Some(&b'\n'));
            deliver(
                &mut self.counters,
                self.max_message_bytes,
                self.oversize,
                &self.buf,
                len,
                emit,
            );
            self.release();
        }
        Ok(())
    }

    /// Consumes header bytes from `chunk[pos..]`, resuming a header split
    /// across chunks; returns the position after what it consumed.
    fn parse_header(&mut self, chunk: &[u8], mut pos: usize) -> Result<usize, FramingError> {
        let (mut len, mut digits, mut first_zero) = match self.octet {
            Octet::Header {
                len,
                digits,
                first_zero,
            } => (len, digits, first_zero),
            _ => (0, 0, false),
        };
        while let Some(&b) = chunk.get(pos) {
            pos += 1;
            match b {
                b'0'..=b'9' => {
                    if digits == MAX_HEADER_DIGITS {
                        return Err(FramingError::HeaderTooLong);
                    }
                    first_zero |= digits == 0 && b == b'0';
                    len = len * 10 + u64::from(b - b'0'); // < 10^10: no overflow
                    digits += 1;
                }
                // Some senders end each frame with a newline too; tolerate it.
                b'\n' | b'\r' if digits == 0 => {}
                b' ' if digits > 0 => {
                    if first_zero && digits > 1 {
                        self.counters.leading_zero_frames += 1;
                    }
                    self.octet = if len == 0 {
                        self.counters.empty_frames += 1;
                        Octet::Idle
                    } else {
                        Octet::Body {
                            declared: len,
                            remaining: len,
                        }
                    };
                    return Ok(pos);
                }
                _ if digits == 0 => return Err(FramingError::HeaderNotDigit { byte: b }),
                _ => return Err(FramingError::MissingSpace { byte: b }),
            }
        }
        self.octet = if digits == 0 {
            Octet::Idle
        } else {
            Octet::Header {
                len,
                digits,
                first_zero,
            }
        };
        Ok(pos)
    }

    fn feed_newline(&mut self, chunk: &[u8], emit: &mut impl FnMut(Frame<'_>)) {
        let mut rest = chunk;
        if self.line_len > 0 {
            // Complete the line begun in an earlier chunk first.
            let Some(i) = memchr(b'\n', rest) else {
                self.append_line(rest);
                return;
            };
            self.append_line(&rest[..i]);
            let c = &mut self.counters;
            deliver(
                c,
                self.max_message_bytes,
                self.oversize,
                &self.buf,
                self.line_len,
                emit,
            );
            self.line_len = 0;
            self.release();
            rest = &rest[i + 1..];
        }
        // Hot path: whole lines in this chunk are lent out without copying.
        while let Some(i) = memchr(b'\n', rest) {
            let line = &rest[..i];
            deliver(
                &mut self.counters,
                self.max_message_bytes,
                self.oversize,
                line,
                i as u64,
                emit,
            );
            rest = &rest[i + 1..];
        }
        if !rest.is_empty() {
            self.append_line(rest);
        }
    }

    fn append_line(&mut self, piece: &[u8]) {
        self.line_len = self.line_len.saturating_add(piece.len() as u64);
        if self.oversize == OversizePolicy::Drop && self.line_len > self.max_message_bytes as u64 {
            // The line will be dropped: stop keeping (and copying) any of it.
            self.release();
            return;
        }
        append_bounded(
            &mut self.buf,
            piece,
            self.max_message_bytes,
            &mut self.counters.copied_bytes,
        );
    }

    fn release(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > RELEASE_CAPACITY {
            self.buf = Vec::new();
        }
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        // The connection is going away: free the buffer now, remember the error.
        self.buf = Vec::new();
        self.line_len = 0;
        self.octet = Octet::Idle;
        self.failed = Some(e.clone());
        e
    }
}

/// Without the one trailing LF syslog-ng counts inside MSG-LEN.
fn strip_lf(frame: &[u8]) -> &[u8] {
    frame.strip_suffix(b"\n").unwrap_or(frame)
}

/// Emits a frame of `len` bytes (after the LF strip) whose first
/// `min(len, max_message_bytes)` bytes are at the start of `prefix`, applying the size policy.
fn deliver(
    counters: &mut DecoderCounters,
    max_message_bytes: usize,
    policy: OversizePolicy,
    prefix: &[u8],
    len: u64,
    emit: &mut impl FnMut(Frame<'_>),
) {
    let (n, truncated) = if len == 0 {
        counters.empty_frames += 1;
        return;
    } else if len <= max_message_bytes as u64 {
        (len as usize, false)
    } else {
        counters.oversize_frames += 1;
        if policy == OversizePolicy::Drop {
            return;
        }
        (max_message_bytes, true)
    };
    debug_assert!(prefix.len() >= n, "frame prefix {} < {n}", prefix.len());
    // Never panic on peer input, even if the invariant above were broken.
    let bytes = prefix.get(..n).unwrap_or(prefix);
    counters.frames += 1;
    emit(Frame { bytes, truncated });
}

/// Appends as much of `bytes` as fits under `bound`, growing the capacity
/// no further than `bound` (doubling could otherwise reserve up to 2x).
fn append_bounded(buf: &mut Vec<u8>, bytes: &[u8], bound: usize, copied: &mut u64) {
    let take = &bytes[..bytes.len().min(bound.saturating_sub(buf.len()))];
    if take.is_empty() {
        return;
    }
    let needed = buf.len() + take.len();
    if needed > buf.capacity() {
        let target = buf.capacity().saturating_mul(2).clamp(needed, bound);
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(take);
    *copied += take.len() as u64;
    debug_assert!(
        buf.len() <= bound,
        "partial buffer {} > bound {bound}",
        buf.len()
    );
}

#[cfg(test)]
mod tests {
    use super::FramingError as E;
    use super::FramingMode::{Auto, Newline, OctetCounted};
    use super::OversizePolicy::{Drop, Truncate};
    use super::*;

    type Frames = Vec<(Vec<u8>, bool)>;
    type Outcome = (Frames, Result<(), E>, DecoderCounters);

    /// Feeds the chunks then finish(), stopping at the first error as the engine does.
    fn run_on(d: &mut Decoder, chunks: &[&[u8]]) -> Outcome {
        let mut out = Vec::new();
        let mut emit = |f: Frame<'_>| out.push((f.bytes.to_vec(), f.truncated));
        let mut res = Ok(());
        for c in chunks {
            res = d.feed(c, &mut emit);
            assert!(
                d.buffered_bytes() <= d.max_message_bytes,
                "partial buffer over max"
            );
            if res.is_err() {
                break;
            }
        }
        if res.is_ok() {
            res = d.finish(&mut emit);
        }
        (out, res, d.take_counters())
    }

    fn run(mode: FramingMode, max: usize, p: OversizePolicy, chunks: &[&[u8]]) -> Outcome {
        run_on(&mut Decoder::new(mode, max, p), chunks)
    }

    fn oc(chunks: &[&[u8]]) -> Outcome {
        run(OctetCounted, 64, Truncate, chunks)
    }

    fn ok(frames: &[&[u8]]) -> Frames {
        frames.iter().map(|f| (f.to_vec(), false)).collect()
    }

    fn cut(b: &[u8]) -> (Vec<u8>, bool) {
        (b.to_vec(), true)
    }

    fn octet(msg: &[u8]) -> Vec<u8> {
        [format!("{} ", msg.len()).as_bytes(), msg].concat()
    }

    fn pieces(input: &[u8], n: usize) -> Vec<&[u8]> {
        input.chunks(n).collect()
    }

    /// Splitting must not change anything but copied_bytes.
    fn same(a: &Outcome, b: &Outcome) -> bool {
        let strip = |c: DecoderCounters| DecoderCounters {
            copied_bytes: 0,
            ..c
        };
        a.0 == b.0 && a.1 == b.1 && strip(a.2) == strip(b.2)
    }

    #[test]
    fn length_prefix_split_across_two_reads() {
        let (f, r, _) = oc(&[b"1", b"2 hello world!", b"1", b" x"]);
        assert_eq!((f, r), (ok(&[b"hello world!", b"x"]), Ok(())));
    }

    #[test]
    fn oversize_octet_frame_in_pieces_truncate() {
        let input = [octet(b"0123456789").as_slice(), b"3 abc"].concat();
        let (f, r, c) = run(OctetCounted, 4, Truncate, &pieces(&input, 1));
        assert_eq!(
            (f, r),
            (vec![cut(b"0123"), (b"abc".to_vec(), false)], Ok(()))
        );
        assert_eq!((c.frames, c.oversize_frames, c.copied_bytes), (2, 1, 4 + 3));
    }

    #[test]
    fn oversize_octet_frame_in_pieces_drop() {
        let input = [octet(b"0123456789").as_slice(), b"3 abc"].concat();
        let (f, r, c) = run(OctetCounted, 4, Drop, &pieces(&input, 4));
        assert_eq!((f, r), (ok(&[b"abc"]), Ok(())));
        // A frame known to be dropped from its header is never copied.
        assert_eq!((c.frames, c.oversize_frames, c.copied_bytes), (1, 1, 3));
    }

    #[test]
    fn huge_declared_length_is_skipped_without_allocating() {
        for p in [Truncate, Drop] {
            let mut d = Decoder::new(OctetCounted, 16, p);
            let mut emit = |_: Frame<'_>| panic!("nothing is complete");
            d.feed(b"9999999999 ", &mut emit).unwrap();
            for _ in 0..100 {
                d.feed(&[b'x'; 1000], &mut emit).unwrap();
                assert!(d.buffered_bytes() <= 16 && d.buf.capacity() <= 16);
            }
            let missing_bytes = 9_999_999_999 - 100_000;
            assert_eq!(
                d.finish(&mut emit),
                Err(E::TruncatedAtEof { missing_bytes })
            );
        }
    }

    #[test]
    fn leading_zeros_accepted_and_counted() {
        let (f, r, c) = oc(&[b"000005 hello00 3 abc"]);
        assert_eq!((f, r), (ok(&[b"hello", b"abc"]), Ok(())));
        assert_eq!((c.leading_zero_frames, c.empty_frames, c.frames), (2, 1, 2));
    }

    #[test]
    fn length_too_many_digits_or_not_fitting_u64() {
        assert_eq!(oc(&[b"0000000003 abc"]).1, Ok(()), "ten digits are fine");
        assert_eq!(oc(&[b"00000000003 abc"]).1, Err(E::HeaderTooLong));
        let r = oc(&[b"1234567890123", b"456789012345 x"]).1; // 25 digits
        assert_eq!(r, Err(E::HeaderTooLong));
    }

    #[test]
    fn zero_length_frame_emits_nothing() {
        let (f, r, c) = oc(&[b"0 0 1 \n2 a\n"]);
        assert_eq!((f, r), (ok(&[b"a"]), Ok(())));
        // `1 \n` is empty too once its LF is stripped.
        assert_eq!((c.frames, c.empty_frames), (1, 3));
    }

    #[test]
    fn newline_framing_mixed_in() {
        let (f, r, _) = oc(&[b"5 hello\r\n5 world\n"]);
        assert_eq!((f, r), (ok(&[b"hello", b"world"]), Ok(())));
        let (f, r, _) = oc(&[b"5 hello\nfoo\n", b"3 abc"]);
        assert_eq!(
            (f, r),
            (ok(&[b"hello"]), Err(E::HeaderNotDigit { byte: b'f' }))
        );
    }

    #[test]
    fn digits_not_followed_by_space_is_missing_space() {
        assert_eq!(
            oc(&[b"12", b"\nabc"]).1,
            Err(E::MissingSpace { byte: b'\n' })
        );
    }

    #[test]
    fn auto_picks_octet_counted_on_digit_and_newline_otherwise() {
        let mut d = Decoder::new(Auto, 64, Truncate);
        assert_eq!(d.mode(), Auto);
        assert_eq!(run_on(&mut d, &[b"", b"5 <1>a\n"]).0, ok(&[b"<1>a"]));
        assert_eq!(d.mode(), OctetCounted);
        let mut d = Decoder::new(Auto, 64, Truncate);
        let f = run_on(&mut d, &[b"<1>a\n5 <1>b\n"]).0;
        assert_eq!((f, d.mode()), (ok(&[b"<1>a", b"5 <1>b"]), Newline));
    }

    #[test]
    fn non_utf8_bytes_preserved() {
        let msg = b"<1>\xff\xfe\x00\xc3(\r";
        assert_eq!(oc(&[&octet(msg)]).0, ok(&[msg]));
        let line = [msg.as_slice(), b"\n"].concat();
        assert_eq!(run(Newline, 64, Truncate, &[&line]).0, ok(&[msg]));
    }

    #[test]
    fn syslog_ng_trailing_lf_stripped_once() {
        let input = [octet(b"<38>1 a\n"), octet(b"<38>1 b\n\n"), octet(b"\n\nc")].concat();
        let (f, r, _) = oc(&[&input]);
        assert_eq!((f, r), (ok(&[b"<38>1 a", b"<38>1 b\n", b"\n\nc"]), Ok(())));
    }

    #[test]
    fn trailing_lf_does_not_count_towards_max() {
        let input = [octet(b"hello\n"), octet(b"hello!")].concat();
        let whole = run(OctetCounted, 5, Truncate, &[&input]);
        let f = vec![(b"hello".to_vec(), false), cut(b"hello")];
        assert_eq!((&whole.0, whole.2.oversize_frames), (&f, 1));
        assert!(same(
            &whole,
            &run(OctetCounted, 5, Truncate, &pieces(&input, 1))
        ));
    }

    #[test]
    fn newline_oversize_truncate_resyncs() {
        let input = b"abc\n0123456789\nxy\n";
        let (f, _, c) = run(Newline, 5, Truncate, &[input]);
        let abc_xy = ok(&[b"abc", b"xy"]);
        assert_eq!(f, vec![abc_xy[0].clone(), cut(b"01234"), abc_xy[1].clone()]);
        assert_eq!((c.frames, c.oversize_frames, c.copied_bytes), (3, 1, 0));
        assert_eq!(run(Newline, 5, Truncate, &pieces(input, 2)).0, f);
    }

    #[test]
    fn newline_oversize_drop_resyncs() {
        let (f, _, c) = run(Newline, 5, Drop, &pieces(b"abc\n0123456789\nxy\n", 2));
        assert_eq!(f, ok(&[b"abc", b"xy"]));
        assert_eq!((c.frames, c.oversize_frames), (2, 1));
    }

    #[test]
    fn newline_keeps_cr_and_skips_empty_lines() {
        let (f, _, c) = run(Newline, 64, Truncate, &[b"a\r\n\n\nb\n"]);
        assert_eq!((f, c.empty_frames), (ok(&[b"a\r", b"b"]), 2));
    }

    #[test]
    fn finish_behaviours() {
        let (f, r, _) = run(Newline, 64, Truncate, &[b"a\nunterm", b"inated"]);
        assert_eq!((f, r), (ok(&[b"a", b"unterminated"]), Ok(())));
        // Between frames (even after trailing newlines) is a clean end.
        assert_eq!(oc(&[b"3 abc\n\r\n"]).1, Ok(()));
        let (f, r, _) = oc(&[b"3 abc10 abc"]);
        let missing = E::TruncatedAtEof { missing_bytes: 7 };
        assert_eq!((f, r), (ok(&[b"abc"]), Err(missing)));
        assert_eq!(oc(&[b"3 abc10"]).1, Err(E::EofInHeader));
        assert_eq!(run(Auto, 64, Truncate, &[]).1, Ok(()));
    }

    #[test]
    fn errors_are_sticky() {
        let mut d = Decoder::new(OctetCounted, 64, Truncate);
        let mut n = 0;
        let mut emit = |_: Frame<'_>| n += 1;
        let e = E::HeaderNotDigit { byte: b'<' };
        assert_eq!(d.feed(b"1 a<1>", &mut emit), Err(e.clone()));
        assert_eq!(d.feed(b"1 a", &mut emit), Err(e.clone()));
        assert_eq!(d.finish(&mut emit), Err(e));
        assert_eq!(n, 1);
    }

    #[test]
    fn counters_reset_on_take() {
        let mut d = Decoder::new(Newline, 3, Drop);
        let c = run_on(&mut d, &[b"ab", b"c\n\nabcd\n"]).2;
        let (frames, copied_bytes, oversize_frames, empty_frames) = (1, 3, 1, 1);
        let want = DecoderCounters {
            frames,
            copied_bytes,
            oversize_frames,
            empty_frames,
            ..Default::default()
        };
        assert_eq!(c, want);
        assert_eq!(d.take_counters(), DecoderCounters::default());
    }

    #[test]
    fn whole_frames_in_one_chunk_are_borrowed_not_copied() {
        let chunk = [octet(b"<1>a"), octet(b"<1>b\n")].concat();
        let mut d = Decoder::new(OctetCounted, 64, Truncate);
        let mut emit = |f: Frame<'_>| assert!(chunk.as_ptr_range().contains(&f.bytes.as_ptr()));
        d.feed(&chunk, &mut emit).unwrap();
        assert_eq!((d.take_counters().copied_bytes, d.buf.capacity()), (0, 0));
    }

    #[test]
    fn partial_buffer_released_after_spanning_frame() {
        let input = octet(&[b'x'; 50_000]);
        let mut d = Decoder::new(OctetCounted, 100_000, Truncate);
        let (f, _, c) = run_on(&mut d, &[&input[..100], &input[100..]]);
        assert_eq!((f.len(), f[0].0.len(), c.copied_bytes), (1, 50_000, 50_000));
        assert_eq!((d.buffered_bytes(), d.buf.capacity()), (0, 0));
    }

    #[test]
    fn every_split_position_gives_same_frames() {
        let parts: [&[u8]; 4] = [
            b"\r\n",
            b"000",
            b"0 ",
            b"<15>an oversize frame, in pieces\n",
        ];
        let octets = [
            octet(b"<13>1 first\n").as_slice(),
            parts[0],
            parts[1],
            &octet(b"<14>leading zero"),
            parts[2],
            &octet(parts[3]),
            &octet(b"<16>12345678\n"),
            &octet(b"<\xff>\n\n"),
        ]
        .concat();
        let lines = b"<13>a\n\n<14>an oversize line here\r\nc\n0123456789ab\nunterminated";
        let cases: [(FramingMode, &[u8]); 6] = [
            (OctetCounted, &octets),
            (OctetCounted, b"5 hello\nfoo"),     // ends in an error
            (OctetCounted, b"3 abc25 <1>short"), // ends mid-frame
            (Auto, &octets),
            (Newline, lines),
            (Auto, b"<13>a\n<14>an oversize line here\r\n12345678901234"),
        ];
        for (mode, input) in cases {
            for p in [Truncate, Drop] {
                let whole = run(mode, 12, p, &[input]);
                assert!(!whole.0.is_empty());
                for i in 0..=input.len() {
                    let split = run(mode, 12, p, &[&input[..i], &input[i..]]);
                    assert!(
                        same(&whole, &split),
                        "{mode:?} {p:?} split at {i}: {split:?}"
                    );
                }
                let bytes = run(mode, 12, p, &pieces(input, 1));
                assert!(same(&whole, &bytes), "{mode:?} {p:?} byte by byte");
            }
        }
    }

    #[test]
    fn random_byte_soup_never_panics_or_exceeds_max() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rng = move |n: usize| {
            // xorshift64: deterministic, no external crate
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        const SOUP: &[u8] = b"0123456789000  \n\n\r<>ab\xff";
        for iter in 0..4000 {
            // Mostly well-formed octet frames with junk between, to reach every state.
            let (mut input, target) = (Vec::new(), rng(300));
            while input.len() < target {
                let body: Vec<u8> = (0..rng(24)).map(|_| SOUP[rng(SOUP.len())]).collect();
                match rng(3) {
                    0 => input.push(SOUP[rng(SOUP.len())]),
                    _ => input.extend(octet(&body)),
                }
            }
            let mode = [OctetCounted, Newline, Auto][rng(3)];
            let (max, p) = (rng(16), [Truncate, Drop][rng(2)]);
            let (mut chunks, mut rest) = (Vec::new(), input.as_slice());
            while !rest.is_empty() {
                let (c, r) = rest.split_at(rest.len().min(1 + rng(40)));
                chunks.push(c);
                rest = r;
            }
            let got = run(mode, max, p, &chunks);
            assert!(got.0.iter().all(|f| f.0.len() <= max), "iteration {iter}");
            assert!(
                same(&got, &run(mode, max, p, &[&input])),
                "iteration {iter}"
            );
        }
    }

    #[test]
    fn error_display_and_labels() {
        let e = E::HeaderNotDigit { byte: b'f' };
        let want = "invalid octet-count header: byte 0x66 is not a digit";
        assert_eq!(
            (e.to_string().as_str(), e.label()),
            (want, "header_not_digit")
        );
        let e = E::TruncatedAtEof { missing_bytes: 7 };
        let want = "stream ended inside a frame: 7 bytes missing";
        assert_eq!(
            (e.to_string().as_str(), e.label()),
            (want, "truncated_at_eof")
        );
        let e: Box<dyn std::error::Error> = Box::new(E::MissingSpace { byte: b'\n' });
        assert!(e.to_string().ends_with("got byte 0x0a"));
    }
}
