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

use std::sync::OnceLock;

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

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses 1..=max_digits leading decimal digits; None if there are none, too
/// many, or the value overflows u64.
fn parse_decimal(s: &[u8], max_digits: usize) -> Option<(u64, usize)> {
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

/// Civil date and time (UTC) from Unix time, after Howard Hinnant's
/// `civil_from_days`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

pub fn civil_from_unix(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
    }
}

/// Length of the RFC 5424 timestamp loadgen writes: `2026-11-26T15:16:40.123456Z`.
pub const TS5424_LEN: usize = 27;
/// Length of the RFC 3164 timestamp: `Nov 26 15:16:40` (day padded with a space).
pub const TS3164_LEN: usize = 15;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn put2(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Writes the timestamp for `unix_us` (microseconds since the epoch, UTC)
/// into `out`, which must be exactly the format's timestamp length.
pub fn write_timestamp(format: Format, unix_us: u64, out: &mut [u8]) {
    let secs = (unix_us / 1_000_000) as i64;
    let c = civil_from_unix(secs);
    match format {
        Format::Rfc5424 => {
            debug_assert_eq!(out.len(), TS5424_LEN);
            let y = c.year.clamp(0, 9999) as u32;
            put2(&mut out[0..2], y / 100);
            put2(&mut out[2..4], y % 100);
            out[4] = b'-';
            put2(&mut out[5..7], c.month);
            out[7] = b'-';
            put2(&mut out[8..10], c.day);
            out[10] = b'T';
            put2(&mut out[11..13], c.hour);
            out[13] = b':';
            put2(&mut out[14..16], c.minute);
            out[16] = b':';
            put2(&mut out[17..19], c.second);
            out[19] = b'.';
            let mut us = (unix_us % 1_000_000) as u32;
            for i in (20..26).rev() {
                out[i] = b'0' + (us % 10) as u8;
                us /= 10;
            }
            out[26] = b'Z';
        }
        Format::Rfc3164 => {
            debug_assert_eq!(out.len(), TS3164_LEN);
            let month = MONTHS[(c.month as usize).clamp(1, 12) - 1];
            out[0..3].copy_from_slice(month);
            out[3] = b' ';
            out[4] = if c.day < 10 {
                b' '
            } else {
                b'0' + (c.day / 10) as u8
            };
            out[5] = b'0' + (c.day % 10) as u8;
            out[6] = b' ';
            put2(&mut out[7..9], c.hour);
            out[9] = b':';
            put2(&mut out[10..12], c.minute);
            out[12] = b':';
            put2(&mut out[13..15], c.second);
        }
    }
}

/// Makes a host name safe for a syslog header: printable ASCII without
/// spaces, at most 255 bytes, never empty.
pub fn sanitize_hostname(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    if clean.is_empty() {
        "localhost".to_string()
    } else {
        clean
    }
}

/// What every connection's messages share.
#[derive(Clone, Debug)]
pub struct MessageSpec {
    pub format: Format,
    pub framing: Framing,
    /// Exact syslog message length for synthetic messages.
    pub size: usize,
    pub sd: bool,
    pub run: u32,
    pub hostname: String,
    pub pid: u32,
}

/// Renders the syslog header (everything before the marker) for `conn`, with a
/// zeroed timestamp. Returns the header and the timestamp's byte range.
fn render_header(spec: &MessageSpec, conn: u32) -> (Vec<u8>, std::ops::Range<usize>) {
    let mut h = Vec::with_capacity(128);
    h.extend_from_slice(PRI);
    let ts_start;
    let ts_len;
    match spec.format {
        Format::Rfc5424 => {
            h.extend_from_slice(b"1 ");
            ts_start = h.len();
            ts_len = TS5424_LEN;
            h.resize(h.len() + ts_len, b'0');
            h.push(b' ');
            h.extend_from_slice(spec.hostname.as_bytes());
            h.push(b' ');
            h.extend_from_slice(APP_NAME);
            h.push(b' ');
            h.extend_from_slice(spec.pid.to_string().as_bytes());
            h.extend_from_slice(b" - ");
            if spec.sd {
                let sd = format!("[{SD_ID} run=\"{}\" conn=\"{conn}\"]", run_id_hex(spec.run));
                h.extend_from_slice(sd.as_bytes());
            } else {
                h.push(b'-');
            }
            h.push(b' ');
        }
        Format::Rfc3164 => {
            ts_start = h.len();
            ts_len = TS3164_LEN;
            h.resize(h.len() + ts_len, b' ');
            h.push(b' ');
            h.extend_from_slice(spec.hostname.as_bytes());
            h.push(b' ');
            h.extend_from_slice(APP_NAME);
            h.extend_from_slice(format!("[{}]: ", spec.pid).as_bytes());
        }
    }
    (h, ts_start..ts_start + ts_len)
}

/// `lg=RUN/CONN/`: the part of the marker that is fixed for a connection.
pub fn marker_fixed(run: u32, conn: u32) -> Vec<u8> {
    format!("lg={}/{conn}/", run_id_hex(run)).into_bytes()
}

/// Smallest `--size` that leaves room for the header, the marker with
/// `seq_digits` digits and a one-byte padding, for connection index `conn`.
pub fn min_size(spec: &MessageSpec, conn: u32, seq_digits: usize) -> usize {
    let (header, _) = render_header(spec, conn);
    header.len() + marker_fixed(spec.run, conn).len() + seq_digits + 1 + 1
}

/// A line of a `--read-file`, split where the marker goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineTemplate {
    /// Bytes before the marker. Empty and `wrap` set for plain-text lines.
    pub head: Vec<u8>,
    /// Bytes after the marker (the original MSG).
    pub tail: Vec<u8>,
    /// The line had no syslog header: send it under loadgen's own header.
    pub wrap: bool,
}

/// Finds where MSG starts in a syslog line, so the marker can go there.
///
/// - `<PRI>1 ...` (RFC 5424): after TIMESTAMP HOSTNAME APP-NAME PROCID MSGID
///   and the structured data (`-` or `[...]...`), plus one space.
/// - `<PRI>...` otherwise (RFC 3164): after the first `": "` that follows
///   the header; failing that, after the third space-separated field
///   following PRI, i.e. `Mmm dd hh:mm:ss HOST `.
/// - A line without `<PRI>`: None (it is wrapped whole in loadgen's header).
pub fn msg_start(line: &[u8]) -> Option<usize> {
    let pri_end = pri_len(line)?;
    let rest = &line[pri_end..];
    if rest.starts_with(b"1 ") {
        let mut i = pri_end + 2;
        // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID, each followed by a space.
        for _ in 0..5 {
            let sp = memchr::memchr(b' ', &line[i..])?;
            i += sp + 1;
        }
        i = skip_structured_data(line, i)?;
        if line.get(i) == Some(&b' ') {
            i += 1;
        }
        return Some(i.min(line.len()));
    }
    // RFC 3164: find "TAG: " after the timestamp (15 bytes) and host.
    let search_from = (pri_end + TS3164_LEN).min(line.len());
    if let Some(p) = memchr::memmem::find(&line[search_from..], b": ") {
        return Some(search_from + p + 2);
    }
    // No tag separator: put the marker after "Mmm dd hh:mm:ss HOST ".
    let mut i = search_from;
    if line.get(i) == Some(&b' ') {
        i += 1;
    }
    match memchr::memchr(b' ', &line[i..]) {
        Some(sp) => Some(i + sp + 1),
        None => Some(line.len()),
    }
}

/// Length of a leading `<N>` (1 to 3 digits), if any.
fn pri_len(line: &[u8]) -> Option<usize> {
    if line.first() != Some(&b'<') {
        return None;
    }
    let close = line.iter().take(5).position(|&b| b == b'>')?;
    let digits = &line[1..close];
    (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit)).then_some(close + 1)
}

/// Skips RFC 5424 STRUCTURED-DATA starting at `i`: `-` or one or more
/// `[...]` elements, where `\"`, `\]` and `\\` are escapes inside quoted
/// values. Returns the index after it, or None if it is malformed.
fn skip_structured_data(line: &[u8], mut i: usize) -> Option<usize> {
    match line.get(i) {
        Some(b'-') => return Some(i + 1),
        Some(b'[') => {}
        _ => return None,
    }
    while line.get(i) == Some(&b'[') {
        i += 1;
        let mut in_quotes = false;
        loop {
            let b = *line.get(i)?;
            i += 1;
            match b {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
        }
    }
    Some(i)
}

/// Longest line accepted from `--read-file`, in bytes.
pub const READ_FILE_LINE_MAX_BYTES: usize = 60 * 1024;
/// Largest `--read-file` accepted, in bytes.
pub const READ_FILE_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Splits a file's contents into line templates. Empty lines and lines longer
/// than `READ_FILE_LINE_MAX_BYTES` are skipped (their count is returned).
pub fn templates_from_file(data: &[u8]) -> (Vec<LineTemplate>, usize) {
    let mut out = Vec::new();
    let mut skipped = 0;
    for raw in data.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.len() > READ_FILE_LINE_MAX_BYTES {
            skipped += 1;
            continue;
        }
        out.push(match msg_start(line) {
            Some(at) => {
                let mut head = line[..at].to_vec();
                // The marker must stand apart from the header (MSG was empty).
                if !head.ends_with(b" ") {
                    head.push(b' ');
                }
                LineTemplate {
                    head,
                    tail: line[at..].to_vec(),
                    wrap: false,
                }
            }
            None => LineTemplate {
                head: Vec::new(),
                tail: line.to_vec(),
                wrap: true,
            },
        });
    }
    (out, skipped)
}

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
