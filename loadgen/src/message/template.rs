//! The message header for a connection, and templates from `--read-file`.

use super::*;

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
pub(crate) fn render_header(spec: &MessageSpec, conn: u32) -> (Vec<u8>, std::ops::Range<usize>) {
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
pub(crate) fn pri_len(line: &[u8]) -> Option<usize> {
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
pub(crate) fn skip_structured_data(line: &[u8], mut i: usize) -> Option<usize> {
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
