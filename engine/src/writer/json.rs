//! The `json` output format: one object per line.
//!
//! Message bytes that are valid UTF-8 are written as a JSON string with the
//! usual escapes. A byte that is not part of valid UTF-8 is written as the lone
//! surrogate escape `\udcXX` for byte 0xXX (Python's "surrogateescape"), so the
//! original bytes can always be recovered, and no valid UTF-8 text maps to it.

use crate::batch::{ConnMeta, Run};

/// Appends `bytes` as the body of a JSON string (without quotes).
pub fn escape_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                escape_str(out, s);
                return;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // SAFETY-free: from_utf8 said the prefix is valid UTF-8.
                if let Ok(s) = std::str::from_utf8(&rest[..valid]) {
                    escape_str(out, s);
                }
                let bad = e.error_len().unwrap_or(rest.len() - valid);
                for &b in &rest[valid..valid + bad] {
                    out.extend_from_slice(format!("\\udc{b:02x}").as_bytes());
                }
                rest = &rest[valid + bad..];
            }
        }
    }
}

fn escape_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

fn push_str_field(out: &mut Vec<u8>, key: &str, value: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":\"");
    escape_str(out, value);
    out.push(b'"');
}

/// RFC 3339 in UTC with nanoseconds, from Unix nanoseconds.
pub fn rfc3339_ns(unix_ns: u64) -> String {
    let t = crate::parse::emit::utc_fields(unix_ns);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year.unwrap_or(0),
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.nanos
    )
}

/// Everything of a line before the message: computed once per run, not per message.
pub fn run_prefix(out: &mut Vec<u8>, run: &Run, source_name: &str) {
    out.clear();
    out.extend_from_slice(b"{\"received\":\"");
    out.extend_from_slice(rfc3339_ns(run.received_unix_ns).as_bytes());
    out.push(b'"');
    push_str_field(out, "source", source_name);
    push_conn_fields(out, &run.conn);
    out.extend_from_slice(b",\"message\":\"");
}

fn push_conn_fields(out: &mut Vec<u8>, conn: &ConnMeta) {
    push_str_field(out, "peer", &conn.peer.to_string());
    let Some(id) = &conn.identity else { return };
    push_str_field(out, "tls_version", id.tls_version);
    push_str_field(out, "cipher", id.cipher);
    if let Some(cn) = &id.client_cn {
        push_str_field(out, "client_cn", cn);
    }
    if !id.client_sans.is_empty() {
        out.extend_from_slice(b",\"client_sans\":[");
        for (i, san) in id.client_sans.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            escape_str(out, san);
            out.push(b'"');
        }
        out.push(b']');
    }
    if let Some(fp) = &id.client_sha256 {
        push_str_field(out, "client_sha256", fp);
    }
    if let Some(issuer) = &id.client_issuer {
        push_str_field(out, "client_issuer", issuer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_quotes_and_invalid_utf8_losslessly() {
        let mut out = Vec::new();
        escape_bytes(&mut out, b"a\"b\\c\n\x01\xffok\xc3\xa9\xc3");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a\\\"b\\\\c\\n\\u0001\\udcffok\u{e9}\\udcc3"
        );
    }

    #[test]
    fn formats_rfc3339_with_nanoseconds() {
        assert_eq!(rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_ns(1_795_651_200_123_456_789),
            "2026-11-26T00:00:00.123456789Z"
        );
        assert_eq!(
            rfc3339_ns(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
