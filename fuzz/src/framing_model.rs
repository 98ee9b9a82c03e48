//! A second, deliberately naive reading of the framing rules in
//! `engine/src/framing.rs`'s module doc: it sees the whole stream at once,
//! copies freely and has no state machine, so it shares no code path (and
//! no bug) with the streaming decoder. The `framing` target checks that the
//! decoder, fed in pieces, agrees with it on every input.

use ringest::framing::{DecoderCounters, FramingError, FramingMode, OversizePolicy};

/// Frames (bytes, truncated), the end result, and the counters.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub frames: Vec<(Vec<u8>, bool)>,
    pub result: Result<(), FramingError>,
    /// `copied_bytes` is left at 0: it depends on how the input was cut.
    pub counters: DecoderCounters,
}

struct Out<'a> {
    max: usize,
    policy: OversizePolicy,
    o: &'a mut Outcome,
}

impl Out<'_> {
    /// One frame's content (after the LF strip): the size rule.
    fn frame(&mut self, bytes: &[u8]) {
        let c = &mut self.o.counters;
        if bytes.is_empty() {
            c.empty_frames += 1;
        } else if bytes.len() <= self.max {
            c.frames += 1;
            self.o.frames.push((bytes.to_vec(), false));
        } else {
            c.oversize_frames += 1;
            if self.policy == OversizePolicy::Truncate {
                c.frames += 1;
                self.o.frames.push((bytes[..self.max].to_vec(), true));
            }
        }
    }
}

/// What the whole stream `input` decodes to, `finish()` included.
pub fn decode(mode: FramingMode, max: usize, policy: OversizePolicy, input: &[u8]) -> Outcome {
    let mut o = Outcome {
        frames: Vec::new(),
        result: Ok(()),
        counters: DecoderCounters::default(),
    };
    let mode = match (mode, input.first()) {
        (FramingMode::Auto, None) => return o,
        (FramingMode::Auto, Some(b)) if b.is_ascii_digit() => FramingMode::OctetCounted,
        (FramingMode::Auto, Some(_)) => FramingMode::Newline,
        (m, _) => m,
    };
    let mut out = Out {
        max,
        policy,
        o: &mut o,
    };
    if mode == FramingMode::Newline {
        let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        // `split` yields "" after a final LF: there is no unterminated line then.
        if lines.last() == Some(&&b""[..]) {
            lines.pop();
        }
        for line in lines {
            out.frame(line);
        }
        return o;
    }
    o.result = octet(input, &mut out);
    o
}

fn octet(input: &[u8], out: &mut Out<'_>) -> Result<(), FramingError> {
    let mut pos = 0;
    loop {
        while matches!(input.get(pos), Some(b'\n' | b'\r')) {
            pos += 1;
        }
        if pos == input.len() {
            return Ok(()); // a clean end between frames
        }
        let digits = input[pos..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 {
            return Err(FramingError::HeaderNotDigit { byte: input[pos] });
        }
        if digits > 10 {
            return Err(FramingError::HeaderTooLong);
        }
        let header = &input[pos..pos + digits];
        pos += digits;
        match input.get(pos) {
            None => return Err(FramingError::EofInHeader),
            Some(b' ') => pos += 1,
            Some(&byte) => return Err(FramingError::MissingSpace { byte }),
        }
        let len: u64 = std::str::from_utf8(header)
            .expect("digits")
            .parse()
            .expect("ten digits fit a u64");
        if header[0] == b'0' && digits > 1 {
            out.o.counters.leading_zero_frames += 1;
        }
        let available = (input.len() - pos) as u64;
        if len > available {
            return Err(FramingError::TruncatedAtEof {
                missing_bytes: len - available,
            });
        }
        let body = &input[pos..pos + len as usize];
        pos += body.len();
        out.frame(body.strip_suffix(b"\n").unwrap_or(body));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FramingMode::*;
    use OversizePolicy::*;

    #[test]
    fn model_follows_the_documented_rules() {
        let o = decode(OctetCounted, 4, Truncate, b"\r\n005 hello0 2 a\n3 abc");
        assert_eq!(
            o.frames,
            vec![
                (b"hell".to_vec(), true),
                (b"a".to_vec(), false),
                (b"abc".to_vec(), false)
            ]
        );
        assert_eq!(o.result, Ok(()));
        let c = o.counters;
        assert_eq!(
            (
                c.frames,
                c.oversize_frames,
                c.leading_zero_frames,
                c.empty_frames
            ),
            (3, 1, 1, 1)
        );
        let o = decode(Auto, 4, Drop, b"<1>a\n\nlong line\nend");
        assert_eq!(
            o.frames,
            vec![(b"<1>a".to_vec(), false), (b"end".to_vec(), false)]
        );
        assert_eq!(
            decode(OctetCounted, 4, Drop, b"12345678901 x").result,
            Err(FramingError::HeaderTooLong)
        );
        assert_eq!(
            decode(OctetCounted, 4, Drop, b"5 ab").result,
            Err(FramingError::TruncatedAtEof { missing_bytes: 3 })
        );
    }
}
