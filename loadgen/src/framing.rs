//! The sink's frame decoder (sans-IO): counts syslog frames in a byte stream,
//! and optionally hands each whole frame to a callback.
//!
//! Octet counting (`LEN SP MSG`) is decoded as a small state machine so that
//! a length prefix or a body split across reads or TLS records needs no
//! buffering when frames are only counted. Only when frames are emitted
//! (`--output`) is a frame that spans two inputs copied into `carry`.

use crate::message::Framing;

/// Longest length prefix accepted: 10 digits is already past any sane limit.
const LEN_DIGITS_MAX: u32 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingMode {
    /// Decide from the first byte: a digit means octet counting.
    Auto,
    Fixed(Framing),
}

/// Why a stream stopped decoding. The connection is closed after any of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A byte other than a digit or the space inside a length prefix.
    BadLengthByte(u8),
    /// A length prefix with more than `LEN_DIGITS_MAX` digits.
    LengthTooLong,
    /// `0 ` or an empty length: RFC 6587 lengths start with a nonzero digit.
    ZeroLength,
    /// A frame longer than the configured maximum.
    FrameTooLarge,
}

impl FrameError {
    pub fn as_str(self) -> &'static str {
        match self {
            FrameError::BadLengthByte(_) => "framing_bad_length_byte",
            FrameError::LengthTooLong => "framing_length_too_long",
            FrameError::ZeroLength => "framing_zero_length",
            FrameError::FrameTooLarge => "framing_frame_too_large",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a length prefix: value so far and digits seen.
    Len { value: u64, digits: u32 },
    /// Inside a frame body with this many bytes still to come.
    Body { remaining: u64 },
    /// Newline framing: inside a line (of `len` bytes so far).
    Line { len: u64 },
}

pub struct FrameDecoder {
    mode: Option<Framing>,
    state: State,
    carry: Vec<u8>,
    emit: bool,
    frame_bytes_max: u64,
    /// Frames with a leading zero in their length (loggen --read-file does it).
    pub leading_zero_frames: u64,
}

impl FrameDecoder {
    pub fn new(mode: FramingMode, emit: bool, frame_bytes_max: usize) -> Self {
        let mode = match mode {
            FramingMode::Auto => None,
            FramingMode::Fixed(f) => Some(f),
        };
        FrameDecoder {
            mode,
            state: initial_state(mode),
            carry: Vec::new(),
            emit,
            frame_bytes_max: frame_bytes_max as u64,
            leading_zero_frames: 0,
        }
    }

    /// True when the stream ended cleanly between frames.
    pub fn at_frame_boundary(&self) -> bool {
        matches!(
            self.state,
            State::Len { digits: 0, .. } | State::Line { len: 0 }
        ) || self.mode.is_none()
    }

    /// Decodes `data`; calls `on_frame` with each complete frame when emitting.
    /// Returns the number of frames completed.
    pub fn feed(
        &mut self,
        data: &[u8],
        on_frame: &mut impl FnMut(&[u8]),
    ) -> Result<u64, FrameError> {
        let Some(&first) = data.first() else {
            return Ok(0);
        };
        let framing = match self.mode {
            Some(f) => f,
            None => {
                let f = if first.is_ascii_digit() {
                    Framing::OctetCounted
                } else {
                    Framing::Newline
                };
                self.mode = Some(f);
                self.state = initial_state(Some(f));
                f
            }
        };
        match framing {
            Framing::OctetCounted => self.feed_octet(data, on_frame),
            Framing::Newline => self.feed_lines(data, on_frame),
        }
    }

    fn feed_octet(
        &mut self,
        data: &[u8],
        on_frame: &mut impl FnMut(&[u8]),
    ) -> Result<u64, FrameError> {
        let mut frames = 0;
        let mut i = 0;
        while i < data.len() {
            match self.state {
                State::Len { value, digits } => {
                    let b = data[i];
                    i += 1;
                    match b {
                        b'0'..=b'9' => {
                            if digits == LEN_DIGITS_MAX {
                                return Err(FrameError::LengthTooLong);
                            }
                            if digits == 0 && b == b'0' {
                                self.leading_zero_frames += 1;
                            }
                            self.state = State::Len {
                                value: value * 10 + u64::from(b - b'0'),
                                digits: digits + 1,
                            };
                        }
                        b' ' => {
                            if value == 0 {
                                return Err(FrameError::ZeroLength);
                            }
                            if value > self.frame_bytes_max {
                                return Err(FrameError::FrameTooLarge);
                            }
                            self.state = State::Body { remaining: value };
                        }
                        other => return Err(FrameError::BadLengthByte(other)),
                    }
                }
                State::Body { remaining } => {
                    let avail = (data.len() - i) as u64;
                    let take = remaining.min(avail) as usize;
                    let chunk = &data[i..i + take];
                    i += take;
                    let remaining = remaining - take as u64;
                    if self.emit {
                        if remaining == 0 && self.carry.is_empty() {
                            // The whole frame is in this input: no copy.
                            on_frame(chunk);
                        } else {
                            self.carry.extend_from_slice(chunk);
                            if remaining == 0 {
                                on_frame(&self.carry);
                                self.carry.clear();
                            }
                        }
                    }
                    if remaining == 0 {
                        frames += 1;
                        self.state = State::Len {
                            value: 0,
                            digits: 0,
                        };
                    } else {
                        self.state = State::Body { remaining };
                    }
                }
                State::Line { .. } => unreachable!("octet decoder in line state"),
            }
        }
        Ok(frames)
    }

    fn feed_lines(
        &mut self,
        data: &[u8],
        on_frame: &mut impl FnMut(&[u8]),
    ) -> Result<u64, FrameError> {
        let State::Line { len } = self.state else {
            unreachable!("line decoder in octet state")
        };
        let mut frames = 0;
        let mut start = 0;
        let mut len = len;
        for nl in memchr::memchr_iter(b'\n', data) {
            let piece = &data[start..nl];
            if len + piece.len() as u64 > self.frame_bytes_max {
                return Err(FrameError::FrameTooLarge);
            }
            if self.emit {
                if self.carry.is_empty() {
                    on_frame(piece);
                } else {
                    self.carry.extend_from_slice(piece);
                    on_frame(&self.carry);
                    self.carry.clear();
                }
            }
            frames += 1;
            len = 0;
            start = nl + 1;
        }
        let rest = &data[start..];
        len += rest.len() as u64;
        if len > self.frame_bytes_max {
            return Err(FrameError::FrameTooLarge);
        }
        if self.emit {
            self.carry.extend_from_slice(rest);
        }
        self.state = State::Line { len };
        Ok(frames)
    }
}

fn initial_state(mode: Option<Framing>) -> State {
    match mode {
        Some(Framing::Newline) => State::Line { len: 0 },
        _ => State::Len {
            value: 0,
            digits: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(mode: FramingMode, pieces: &[&[u8]]) -> (Result<u64, FrameError>, Vec<Vec<u8>>) {
        let mut dec = FrameDecoder::new(mode, true, 1000);
        let mut frames = Vec::new();
        let mut total = 0;
        for p in pieces {
            match dec.feed(p, &mut |f| frames.push(f.to_vec())) {
                Ok(n) => total += n,
                Err(e) => return (Err(e), frames),
            }
        }
        (Ok(total), frames)
    }

    #[test]
    fn octet_frames_split_anywhere() {
        let stream = b"5 hello11 hello world3 abc";
        for cut1 in 0..stream.len() {
            for cut2 in cut1..stream.len() {
                let (n, frames) = decode_all(
                    FramingMode::Auto,
                    &[&stream[..cut1], &stream[cut1..cut2], &stream[cut2..]],
                );
                assert_eq!(n, Ok(3));
                assert_eq!(
                    frames,
                    vec![b"hello".to_vec(), b"hello world".to_vec(), b"abc".to_vec()]
                );
            }
        }
    }

    #[test]
    fn counting_without_emitting_needs_no_carry() {
        let mut dec = FrameDecoder::new(FramingMode::Fixed(Framing::OctetCounted), false, 100);
        let mut n = 0;
        for piece in [&b"3 ab"[..], b"c1", b"0 0123456789", b"2 xy"] {
            n += dec.feed(piece, &mut |_| panic!("not emitting")).unwrap();
        }
        assert_eq!(n, 3);
        assert!(dec.at_frame_boundary());
        assert!(dec.carry.is_empty());
    }

    #[test]
    fn octet_errors() {
        assert_eq!(
            decode_all(FramingMode::Auto, &[b"0 x"]).0,
            Err(FrameError::ZeroLength)
        );
        assert_eq!(
            decode_all(FramingMode::Fixed(Framing::OctetCounted), &[b" x"]).0,
            Err(FrameError::ZeroLength)
        );
        assert_eq!(
            decode_all(FramingMode::Auto, &[b"12a"]).0,
            Err(FrameError::BadLengthByte(b'a'))
        );
        assert_eq!(
            decode_all(FramingMode::Auto, &[b"123456789012 "]).0,
            Err(FrameError::LengthTooLong)
        );
        assert_eq!(
            decode_all(FramingMode::Auto, &[b"1001 "]).0,
            Err(FrameError::FrameTooLarge)
        );
    }

    #[test]
    fn leading_zeros_are_accepted_and_counted() {
        let mut dec = FrameDecoder::new(FramingMode::Auto, false, 100);
        assert_eq!(dec.feed(b"003 abc", &mut |_| {}), Ok(1));
        assert_eq!(dec.leading_zero_frames, 1);
    }

    #[test]
    fn newline_frames() {
        let (n, frames) = decode_all(FramingMode::Auto, &[b"<1>a\n<2", b">b\n\n<3>c"]);
        assert_eq!(n, Ok(3));
        assert_eq!(
            frames,
            vec![b"<1>a".to_vec(), b"<2>b".to_vec(), b"".to_vec()]
        );
        let mut dec = FrameDecoder::new(FramingMode::Fixed(Framing::Newline), false, 4);
        assert_eq!(dec.feed(b"abcd\nab", &mut |_| {}), Ok(1));
        assert!(!dec.at_frame_boundary());
        assert_eq!(
            dec.feed(b"cde", &mut |_| {}),
            Err(FrameError::FrameTooLarge)
        );
    }
}
