//! RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [SP MSG]`.
//!
//! - **Fields** are split on single spaces and borrow the frame. `-`
//!   (NILVALUE) and an empty field (two spaces, which syslog-ng accepts)
//!   are `None`. Lengths are not cut to the RFC's maxima (255/48/128/32),
//!   which syslog-ng does: ringest keeps what was sent. A HOSTNAME is any
//!   run of non-spaces; syslog-ng refuses a `:` or `[` in it.
//! - **TIMESTAMP** is NILVALUE or RFC 3339 (see [`super::timestamp`]).
//! - **MSG**: a leading UTF-8 BOM is taken off `message` and remembered in
//!   `bom`, so a re-emitter can put it back.
//! - **VERSION** is 1; leading zeros (`01`) are read as syslog-ng does.
//! - **Refused** (the frame is kept whole with the reason): a version other
//!   than 1, a bad timestamp, a header that ends before the SD, bad SD,
//!   and anything but a space or the end after the SD.

use super::pri::Pri;
use super::sd::scan_sd;
use super::timestamp::{scan_rfc3339, Timestamp};
use super::{Format, Message, ParseError};

const BOM: &[u8] = b"\xef\xbb\xbf";

/// Parses the rest of an RFC 5424 frame; `at` is just past the PRI.
pub(crate) fn parse<'a>(frame: &'a [u8], pri: Pri, at: usize) -> Result<Message<'a>, ParseError> {
    let after_pri = frame.get(at..).unwrap_or_default();
    let version_len = version_1_len(after_pri).ok_or(ParseError::BadVersion)?;
    let mut rest = &after_pri[version_len..];

    let timestamp = match rest {
        [b'-'] | [b'-', b' ', ..] => None,
        _ => Some(scan_rfc3339(rest).ok_or(ParseError::BadTimestamp)?),
    };
    let ts_len = timestamp.map_or(1, |t: Timestamp<'_>| t.raw.len());
    rest = match rest.get(ts_len) {
        Some(b' ') => &rest[ts_len + 1..],
        Some(_) => return Err(ParseError::BadTimestamp),
        None => return Err(ParseError::HeaderTruncated),
    };

    let mut fields = [None; 4];
    for field in &mut fields {
        let space = memchr::memchr(b' ', rest).ok_or(ParseError::HeaderTruncated)?;
        *field = nil_or(&rest[..space]);
        rest = &rest[space + 1..];
    }
    let [host, app, procid, msgid] = fields;

    let (sd, sd_len) = match rest {
        [] => return Err(ParseError::HeaderTruncated),
        _ => scan_sd(rest)?,
    };
    let message = match &rest[sd_len..] {
        [] => &[][..],
        [b' ', msg @ ..] => msg,
        _ => return Err(ParseError::NoSpaceAfterSd),
    };
    let (bom, message) = match message.strip_prefix(BOM) {
        Some(after) => (true, after),
        None => (false, message),
    };
    Ok(Message {
        format: Format::Rfc5424,
        pri: Some(pri),
        timestamp,
        host,
        app,
        procid,
        msgid,
        sd,
        bom,
        message,
        ..Message::unparsed(frame)
    })
}

/// The length of `VERSION SP` when VERSION is 1: digits worth 1 (leading
/// zeros allowed, as syslog-ng reads them) and a space.
pub(crate) fn version_1_len(b: &[u8]) -> Option<usize> {
    let digits = b.iter().take_while(|d| d.is_ascii_digit()).count();
    let one = digits > 0 && b[..digits - 1].iter().all(|&d| d == b'0') && b[digits - 1] == b'1';
    (one && b.get(digits) == Some(&b' ')).then_some(digits + 1)
}

/// `None` for NILVALUE and for an empty field.
fn nil_or(field: &[u8]) -> Option<&[u8]> {
    (!matches!(field, b"" | b"-")).then_some(field)
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse, Format, ParseError, ParseMode};

    fn p5424(s: &[u8]) -> crate::parse::Message<'_> {
        parse(s, ParseMode::Rfc5424)
    }

    #[test]
    fn rfc5424_example_1_bom_and_no_sd() {
        let m = p5424(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(m.error, None);
        assert_eq!(m.pri.unwrap().value(), 34);
        assert_eq!(m.timestamp.unwrap().raw, b"2003-10-11T22:14:15.003Z");
        assert_eq!(m.host, Some(&b"mymachine.example.com"[..]));
        assert_eq!(m.app, Some(&b"su"[..]));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid, Some(&b"ID47"[..]));
        assert!(m.sd.is_empty());
        assert!(m.bom);
        assert_eq!(m.message, b"'su root' failed for lonvick on /dev/pts/8");
    }

    #[test]
    fn rfc5424_all_nilvalues_and_no_msg() {
        let m = p5424(b"<13>1 - - - - - -");
        assert_eq!(m.error, None);
        assert_eq!(
            (m.timestamp, m.host, m.app, m.procid, m.msgid),
            (None, None, None, None, None)
        );
        assert_eq!(m.message, b"");
        assert!(!m.bom);
    }

    #[test]
    fn rfc5424_sd_then_message() {
        let m = p5424(br#"<165>1 2003-10-11T22:14:15.003Z host evntslog - ID47 [exampleSDID@32473 iut="3"][examplePriority@32473 class="high"] An event"#);
        assert_eq!(m.error, None);
        assert_eq!(m.sd.elements().count(), 2);
        assert_eq!(m.message, b"An event");
    }

    #[test]
    fn rfc5424_empty_field_from_two_spaces_is_absent() {
        let m = p5424(b"<13>1 2026-11-29T18:00:00Z h  p m - empty app");
        assert_eq!(m.error, None);
        assert_eq!((m.app, m.procid), (None, Some(&b"p"[..])));
    }

    #[test]
    fn rfc5424_fields_longer_than_the_rfc_are_kept_whole() {
        let app = "a".repeat(60);
        let frame = format!("<13>1 - h {app} p m - x");
        let m = p5424(frame.as_bytes());
        assert_eq!(m.app, Some(app.as_bytes()));
    }

    #[test]
    fn rfc5424_hostname_with_colon_or_bracket_is_kept() {
        let m = p5424(b"<13>1 - host:80 a p m - x");
        assert_eq!(m.host, Some(&b"host:80"[..]));
        let m = p5424(b"<13>1 - fe80::1 a p m - x");
        assert_eq!(m.host, Some(&b"fe80::1"[..]));
    }

    #[test]
    fn rfc5424_refusals_name_the_reason() {
        let cases: [(&[u8], ParseError); 10] = [
            (b"<13>2 - h a p m - x", ParseError::BadVersion),
            (b"<13>1", ParseError::BadVersion),
            (
                b"<13>1 2026-11-29 h a p m - bad ts",
                ParseError::BadTimestamp,
            ),
            (
                b"<13>1 2026-11-29T18:00:00+0530 h a p m - x",
                ParseError::BadTimestamp,
            ),
            (
                b"<13>1 2026-11-29T18:00:00Z h a p m",
                ParseError::HeaderTruncated,
            ),
            (
                b"<13>1 2026-11-29T18:00:00Z h a p m ",
                ParseError::HeaderTruncated,
            ),
            (b"<13>1 -", ParseError::HeaderTruncated),
            (b"<13>1 - h a p m [bad sd", ParseError::BadSd),
            (b"<13>1 - h a p m x msg", ParseError::BadSd),
            (b"<13>1 - h a p m -no space", ParseError::NoSpaceAfterSd),
        ];
        for (frame, want) in cases {
            let m = p5424(frame);
            assert_eq!(m.error, Some(want), "{}", String::from_utf8_lossy(frame));
            assert_eq!(m.format, Format::Unparsed);
            assert_eq!(m.message, frame, "kept whole");
        }
    }

    #[test]
    fn rfc5424_non_utf8_message_is_kept_as_bytes() {
        let m = p5424(b"<13>1 - h a p m - caf\xe9 \xff");
        assert_eq!(m.message, b"caf\xe9 \xff");
    }

    #[test]
    fn rfc5424_bom_alone_is_an_empty_message() {
        let m = p5424(b"<13>1 - h a p m - \xef\xbb\xbf");
        assert!(m.bom);
        assert_eq!(m.message, b"");
    }
}
