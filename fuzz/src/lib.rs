//! Shared pieces of the fuzz targets in `fuzz_targets/`:
//! - [`det_tls`]: a handshake with fixed keys, giving the engine's record
//!   reader and a forger that makes records it accepts;
//! - [`framing_model`]: a whole-stream reading of the framing rules, to
//!   check the streaming decoder against;
//! - [`Input`]: reads choices (modes, split points, ops) off the fuzz input.

pub mod det_tls;
pub mod framing_model;
pub mod record_model;
pub mod record_run;

/// Takes choices from the front of a fuzz input; past its end every choice
/// is 0, so any input, even empty, is a valid run.
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }

    pub fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        head
    }

    /// Everything not taken yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.bytes.len())
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Cuts `data` into consecutive pieces whose lengths cycle through `sizes`
/// (0 = an empty piece, which a reader must accept too). Every byte ends up
/// in exactly one piece, in order.
pub fn cut<'d>(data: &'d [u8], sizes: &[usize]) -> Vec<&'d [u8]> {
    let mut pieces = Vec::new();
    let mut rest = data;
    if sizes.iter().all(|&s| s == 0) {
        return vec![&[][..], data];
    }
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    pieces
}
