//! The marker `lg=RUN/CONN/SEQ` and the padding after it: what `verify`
//! recomputes to detect a changed, missing or extra byte.

use std::sync::OnceLock;

use super::*;

/// One step of splitmix64 (Steele, Lea, Flood 2014): the generator behind
/// both the padding table and the per-message offset.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The padding table: `PAD_OFFSETS + SIZE_MAX_BYTES` bytes, byte `j` being
/// `PAD_ALPHABET[b % 62]` where `b` is byte `j % 8` (little-endian) of the
/// `(j / 8 + 1)`-th output of splitmix64 seeded with `PAD_SEED`.
pub fn pad_table() -> &'static [u8] {
    static TABLE: OnceLock<Box<[u8]>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let len = PAD_OFFSETS + SIZE_MAX_BYTES;
        let mut table = Vec::with_capacity(len + 8);
        let mut state = PAD_SEED;
        while table.len() < len {
            for b in splitmix64(&mut state).to_le_bytes() {
                table.push(PAD_ALPHABET[usize::from(b) % PAD_ALPHABET.len()]);
            }
        }
        table.truncate(len);
        table.into_boxed_slice()
    })
}

/// Where in the table the padding of message (conn, seq) starts.
pub fn pad_offset(conn: u32, seq: u64) -> usize {
    let mut state = (u64::from(conn) << 40) ^ seq;
    (splitmix64(&mut state) % PAD_OFFSETS as u64) as usize
}

/// Appends the `pad_len` padding bytes (terminator included) of (conn, seq).
pub fn push_padding(out: &mut Vec<u8>, conn: u32, seq: u64, pad_len: usize) {
    debug_assert!((1..=SIZE_MAX_BYTES).contains(&pad_len));
    let start = pad_offset(conn, seq);
    out.extend_from_slice(&pad_table()[start..start + pad_len - 1]);
    out.push(PAD_TERMINATOR);
}

/// True when `rest` (everything after the marker's trailing space) is exactly
/// the padding of (conn, seq).
pub fn padding_matches(rest: &[u8], conn: u32, seq: u64) -> bool {
    let Some((&last, body)) = rest.split_last() else {
        return false;
    };
    if last != PAD_TERMINATOR || body.len() >= SIZE_MAX_BYTES {
        return false;
    }
    let start = pad_offset(conn, seq);
    pad_table()[start..start + body.len()] == *body
}

/// A parsed `lg=RUN/CONN/SEQ ` marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub run: u32,
    pub conn: u32,
    pub seq: u64,
}

/// Why a `lg=` marker did not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkerError {
    /// The run id is not exactly 8 hex digits followed by `/`.
    BadRunId,
    /// The connection index is not 1..=10 decimal digits fitting u32, then `/`.
    BadConn,
    /// The sequence number is not 1..=20 decimal digits fitting u64.
    BadSeq,
    /// The sequence number is not followed by a space.
    MissingSpace,
}

impl MarkerError {
    pub fn as_str(self) -> &'static str {
        match self {
            MarkerError::BadRunId => "marker_bad_run_id",
            MarkerError::BadConn => "marker_bad_conn",
            MarkerError::BadSeq => "marker_bad_seq",
            MarkerError::MissingSpace => "marker_missing_space",
        }
    }
}

/// Parses a marker at the start of `s` (which must start with `lg=`).
/// Returns the marker and the number of bytes it occupies, trailing space
/// included, so that `&s[len..]` is the rest of the message.
pub fn parse_marker(s: &[u8]) -> Result<(Marker, usize), MarkerError> {
    debug_assert!(s.starts_with(MARKER_PREFIX));
    let mut i = MARKER_PREFIX.len();
    let mut run: u32 = 0;
    for _ in 0..8 {
        let d = s
            .get(i)
            .and_then(|&b| hex_value(b))
            .ok_or(MarkerError::BadRunId)?;
        run = (run << 4) | u32::from(d);
        i += 1;
    }
    if s.get(i) != Some(&b'/') {
        return Err(MarkerError::BadRunId);
    }
    i += 1;
    let (conn, used) = parse_decimal(&s[i..], 10).ok_or(MarkerError::BadConn)?;
    let conn = u32::try_from(conn).map_err(|_| MarkerError::BadConn)?;
    i += used;
    if s.get(i) != Some(&b'/') {
        return Err(MarkerError::BadConn);
    }
    i += 1;
    let (seq, used) = parse_decimal(&s[i..], 20).ok_or(MarkerError::BadSeq)?;
    i += used;
    if s.get(i) != Some(&b' ') {
        return Err(MarkerError::MissingSpace);
    }
    Ok((Marker { run, conn, seq }, i + 1))
}

pub(crate) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses 1..=max_digits leading decimal digits; None if there are none, too
/// many, or the value overflows u64.
pub(crate) fn parse_decimal(s: &[u8], max_digits: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut used = 0;
    while let Some(&b) = s.get(used) {
        if !b.is_ascii_digit() {
            break;
        }
        if used == max_digits {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        used += 1;
    }
    (used > 0).then_some((value, used))
}

/// Formats a run id the way markers carry it: 8 lowercase hex digits.
pub fn run_id_hex(run: u32) -> String {
    format!("{run:08x}")
}

/// Parses a run id given on the command line (8 hex digits).
pub fn parse_run_id(s: &str) -> Result<u32, String> {
    if s.len() != 8 {
        return Err(format!("run id {s:?} is not 8 hex digits"));
    }
    u32::from_str_radix(s, 16).map_err(|_| format!("run id {s:?} is not 8 hex digits"))
}
