//! Sans-IO syslog parsing (RFC 5424 and RFC 3164), and the pure functions
//! that act on the result: JSON and syslog rendering, file-name safety and
//! filters.
//!
//! The writer hands [`parse`] one frame (as the framing decoder cut it) and
//! gets a [`Message`] whose fields are slices of that frame: nothing is
//! copied and nothing is allocated per message. Structured data stays as
//! sent and is unescaped lazily by its iterators ([`sd`]).
//!
//! Rules, and why:
//! - **Modes** ([`ParseMode`], per source). `auto` decides per message:
//!   after the PRI, VERSION 1 and a space (`1 `, also `01 ` as syslog-ng
//!   reads it) means RFC 5424, anything else RFC 3164 — the test syslog-ng
//!   applies with `flags(syslog-protocol)`.
//!   `none` does not parse at all and the message is the frame.
//! - **Kept whole.** A frame that matches neither format (no PRI, a
//!   malformed PRI, or an RFC 5424 header that breaks the grammar) is kept
//!   whole as `message`, with `error` saying why ([`ParseError::label`] for
//!   the counter and the JSON `parse_error` field, its `Display` and
//!   [`ParseError::hint`] for the writer's log line). Nothing is guessed:
//!   syslog-ng instead assumes `user.notice` for a frame without a PRI, and
//!   replaces a broken RFC 5424 message by an error text.
//! - **Tolerated** (see each module): a missing hostname, ISO timestamps in
//!   RFC 3164, Cisco sequence numbers, clock marks, zones and `%FAC-SEV-MNEM`
//!   tags, a BOM before the RFC 5424 MSG, escaped `]` `"` `\` in SD, `-` for
//!   NILVALUE, priorities above 191, and any byte that is not UTF-8.
//! - **Bytes as sent.** Fields are never trimmed, transcoded or cut; the
//!   renderers escape them losslessly ([`json`]).
//!
//! What differs from syslog-ng 3.38, and why, is in `DIFFERENCES.md` next to
//! this file; `tests/parse_diff.rs` checks it against syslog-ng itself.

use std::fmt;

pub mod emit;
pub mod filter;
pub mod json;
pub mod path;
pub mod pri;
mod rfc3164;
mod rfc5424;
pub mod sd;
pub mod timestamp;

pub use filter::{Filter, FilterError, FilterSpec};
pub use pri::{Pri, Severity};
pub use sd::StructuredData;
pub use timestamp::{DateTime, Timestamp, TimestampKind};

/// How a source's frames are parsed (`parse = "..."` in the config).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParseMode {
    /// RFC 5424 when VERSION 1 follows the PRI, otherwise RFC 3164.
    #[default]
    Auto,
    Rfc5424,
    Rfc3164,
    /// No parsing: the message is the frame.
    None,
}

impl ParseMode {
    pub const ALL: [ParseMode; 4] = [
        ParseMode::Auto,
        ParseMode::Rfc5424,
        ParseMode::Rfc3164,
        ParseMode::None,
    ];

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            ParseMode::Auto => "auto",
            ParseMode::Rfc5424 => "rfc5424",
            ParseMode::Rfc3164 => "rfc3164",
            ParseMode::None => "none",
        }
    }

    pub fn from_name(name: &str) -> Option<ParseMode> {
        ParseMode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// Which grammar a message was read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
    /// Not parsed (`none`), or it matched neither format (`error` is set).
    Unparsed,
}

/// Why a frame was kept whole instead of parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// The frame does not start with `<`.
    NoPri,
    /// `<` is not followed by 1 to 3 digits and `>`.
    BadPri,
    /// RFC 5424 mode, and the PRI is not followed by VERSION 1 and a space.
    BadVersion,
    /// RFC 5424: the TIMESTAMP is neither `-` nor RFC 3339.
    BadTimestamp,
    /// RFC 5424: the header ends before the STRUCTURED-DATA.
    HeaderTruncated,
    /// RFC 5424: the STRUCTURED-DATA breaks its grammar.
    BadSd,
    /// RFC 5424: more SD params or elements than ringest reads in one
    /// message (see [`sd::SD_PARAMS_MAX`]).
    SdTooLarge,
    /// RFC 5424: something other than a space or the end follows the SD.
    NoSpaceAfterSd,
}

impl ParseError {
    pub const ALL: [ParseError; 8] = [
        ParseError::NoPri,
        ParseError::BadPri,
        ParseError::BadVersion,
        ParseError::BadTimestamp,
        ParseError::HeaderTruncated,
        ParseError::BadSd,
        ParseError::SdTooLarge,
        ParseError::NoSpaceAfterSd,
    ];

    /// Stable snake_case name: the JSON `parse_error` value and the
    /// counter's label.
    pub fn label(self) -> &'static str {
        match self {
            ParseError::NoPri => "no_pri",
            ParseError::BadPri => "bad_pri",
            ParseError::BadVersion => "bad_version",
            ParseError::BadTimestamp => "bad_timestamp",
            ParseError::HeaderTruncated => "header_truncated",
            ParseError::BadSd => "bad_sd",
            ParseError::SdTooLarge => "sd_too_large",
            ParseError::NoSpaceAfterSd => "no_space_after_sd",
        }
    }

    /// What to check on the sender, or which setting to change: the
    /// `hint` of the log line that reports the error (`writer::parse_error_log`).
    pub fn hint(self) -> &'static str {
        match self {
            ParseError::NoPri => {
                "the frame does not start with <PRI>: is the sender a syslog client, and do \
                 both sides frame the same way (octet-counted or newline)?"
            }
            ParseError::BadPri => {
                "the sender's <PRI> must be 1 to 3 digits between < and >, e.g. <13>"
            }
            ParseError::BadVersion => {
                "the sender does not write RFC 5424: set parse = \"auto\" (RFC 5424 or RFC 3164 \
                 per message) or \"rfc3164\" on this source, or make the sender write RFC 5424"
            }
            ParseError::BadTimestamp => {
                "the sender's RFC 5424 TIMESTAMP must be RFC 3339 with a zone, e.g. \
                 2026-11-30T10:00:00.123Z, or - when it has no clock"
            }
            ParseError::HeaderTruncated => {
                "the sender's RFC 5424 header must hold HOSTNAME, APP-NAME, PROCID, MSGID and \
                 STRUCTURED-DATA, each - when empty"
            }
            ParseError::BadSd => {
                "the sender's structured data breaks RFC 5424 section 6.3: [SD-ID name=\"value\"], \
                 with ] \" and \\ escaped by a backslash in values"
            }
            ParseError::SdTooLarge => {
                "ringest reads at most 128 SD params and 64 SD elements per message: send fewer"
            }
            ParseError::NoSpaceAfterSd => {
                "the sender's structured data must be followed by a space and the MSG, or end \
                 the message"
            }
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ParseError::NoPri => "no <PRI> at the start",
            ParseError::BadPri => "malformed <PRI>: not 1 to 3 digits between < and >",
            ParseError::BadVersion => "RFC 5424 expected: VERSION 1 does not follow the PRI",
            ParseError::BadTimestamp => "RFC 5424 TIMESTAMP is neither - nor RFC 3339",
            ParseError::HeaderTruncated => "RFC 5424 header ends before the structured data",
            ParseError::BadSd => "malformed RFC 5424 structured data",
            ParseError::SdTooLarge => "RFC 5424 structured data has more params than ringest reads",
            ParseError::NoSpaceAfterSd => "RFC 5424 structured data not followed by a space",
        };
        f.write_str(text)
    }
}

impl std::error::Error for ParseError {}

/// One parsed frame; every slice borrows it. Absent fields are `None`
/// (NILVALUE, empty, or not in the format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// The whole frame.
    pub raw: &'a [u8],
    pub format: Format,
    pub pri: Option<Pri>,
    pub timestamp: Option<Timestamp<'a>>,
    pub host: Option<&'a [u8]>,
    /// APP-NAME, or the RFC 3164 TAG.
    pub app: Option<&'a [u8]>,
    pub procid: Option<&'a [u8]>,
    pub msgid: Option<&'a [u8]>,
    /// RFC 3164 only: a Cisco sequence number.
    pub seq: Option<&'a [u8]>,
    pub sd: StructuredData<'a>,
    /// RFC 5424 only: MSG started with a UTF-8 BOM, which `message` omits.
    pub bom: bool,
    /// The message body; the whole frame when unparsed.
    pub message: &'a [u8],
    pub error: Option<ParseError>,
}

impl<'a> Message<'a> {
    /// The frame as one unparsed message.
    pub fn unparsed(raw: &'a [u8]) -> Message<'a> {
        Message {
            raw,
            format: Format::Unparsed,
            pri: None,
            timestamp: None,
            host: None,
            app: None,
            procid: None,
            msgid: None,
            seq: None,
            sd: StructuredData::default(),
            bom: false,
            message: raw,
            error: None,
        }
    }

    fn failed(raw: &'a [u8], error: ParseError) -> Message<'a> {
        Message {
            error: Some(error),
            ..Message::unparsed(raw)
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Calls of [`parse`] on this thread: the writer's tests check that a
    /// round parses each message once, however many steps read it.
    pub static PARSE_CALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Parses one frame under `mode`. Never fails: a frame that cannot be
/// parsed comes back whole with `error` set.
pub fn parse(frame: &[u8], mode: ParseMode) -> Message<'_> {
    #[cfg(test)]
    PARSE_CALLS.with(|n| n.set(n.get() + 1));
    if mode == ParseMode::None {
        return Message::unparsed(frame);
    }
    let (pri, at) = match pri::parse_pri(frame) {
        Ok(found) => found,
        Err(e) => return Message::failed(frame, e),
    };
    let rfc5424 = match mode {
        ParseMode::Auto => rfc5424::version_1_len(&frame[at..]).is_some(),
        ParseMode::Rfc5424 => true,
        ParseMode::Rfc3164 | ParseMode::None => false,
    };
    if rfc5424 {
        rfc5424::parse(frame, pri, at).unwrap_or_else(|e| Message::failed(frame, e))
    } else {
        rfc3164::parse(frame, pri, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_5424_on_version_1_and_a_space() {
        assert_eq!(
            parse(b"<13>1 - - - - - -", ParseMode::Auto).format,
            Format::Rfc5424
        );
        assert_eq!(
            parse(b"<13>01 - - - - - -", ParseMode::Auto).format,
            Format::Rfc5424
        );
        // VERSION 2, 10 or "1" glued to the next byte: RFC 3164, like syslog-ng.
        for frame in [
            &b"<13>2 - - - - - - x"[..],
            b"<13>10 - - - - - x",
            b"<13>1x",
            b"<13>Oct 11 22:14:15 h a: x",
        ] {
            assert_eq!(parse(frame, ParseMode::Auto).format, Format::Rfc3164);
        }
    }

    #[test]
    fn auto_keeps_a_broken_5424_header_whole_instead_of_falling_back() {
        let frame = b"<13>1 2026-11-29 h a p m - bad ts";
        let m = parse(frame, ParseMode::Auto);
        assert_eq!(
            (m.format, m.error, m.message),
            (Format::Unparsed, Some(ParseError::BadTimestamp), &frame[..])
        );
        assert_eq!(m.pri, None, "a refused frame has no fields");
    }

    #[test]
    fn no_pri_is_kept_whole_in_every_parsing_mode() {
        for mode in [ParseMode::Auto, ParseMode::Rfc5424, ParseMode::Rfc3164] {
            let m = parse(b"no pri at all", mode);
            assert_eq!(
                (m.format, m.error, m.message),
                (
                    Format::Unparsed,
                    Some(ParseError::NoPri),
                    &b"no pri at all"[..]
                )
            );
        }
        assert_eq!(parse(b"", ParseMode::Auto).error, Some(ParseError::NoPri));
        assert_eq!(
            parse(b"<>x", ParseMode::Auto).error,
            Some(ParseError::BadPri)
        );
    }

    #[test]
    fn none_mode_never_reads_the_frame() {
        let m = parse(b"<13>1 - - - - - - x", ParseMode::None);
        assert_eq!(m, Message::unparsed(b"<13>1 - - - - - - x"));
    }

    #[test]
    fn rfc3164_mode_reads_a_5424_frame_as_bsd() {
        let m = parse(
            b"<13>1 2026-11-29T18:00:00Z host app - - - x",
            ParseMode::Rfc3164,
        );
        assert_eq!((m.format, m.app), (Format::Rfc3164, Some(&b"1"[..])));
    }

    #[test]
    fn modes_and_errors_have_stable_names() {
        for mode in ParseMode::ALL {
            assert_eq!(ParseMode::from_name(mode.name()), Some(mode));
        }
        assert_eq!(ParseMode::from_name("RFC5424"), None);
        let labels: std::collections::HashSet<_> =
            ParseError::ALL.iter().map(|e| e.label()).collect();
        assert_eq!(labels.len(), ParseError::ALL.len());
    }

    #[test]
    fn every_hint_keeps_its_parentheses_balanced_and_its_limits_true() {
        // The hint goes inside the log line's "(hint: ...)", which the
        // JSON log format reads up to the parenthesis that closes it.
        for e in ParseError::ALL {
            let mut depth = 0i32;
            for c in e.hint().chars() {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                assert!(depth >= 0, "{e:?}");
            }
            assert_eq!(depth, 0, "{e:?}");
        }
        let hint = ParseError::SdTooLarge.hint();
        assert!(hint.contains(&format!("at most {} SD params", sd::SD_PARAMS_MAX)));
        assert!(hint.contains(&format!("{} SD elements", sd::SD_ELEMENTS_MAX)));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        // Every prefix of tricky frames, and a fixed pseudo-random sweep.
        let seeds: [&[u8]; 6] = [
            b"<189>45: router1: *Mar  1 18:46:11.123 UTC: %LINK-3-UPDOWN: x",
            br#"<13>1 2026-11-29T18:00:00.1Z h a p m [a@1 x="\"\\\]" y="]"][b] msg"#,
            b"<13>Nov 29 2026 18:00:00: Message forwarded from h: last message repeated 2",
            b"<0>2026 Nov 29 18:00:00 UTC: %A-1-B: fe80::1 [x",
            b"<999>Feb 5 17:32:18 \xff\xfe[\xc3: \xef\xbb\xbf",
            b"<13>1 2026-11-29 18:00:00+05:30 h a p m - \xef\xbb",
        ];
        for seed in seeds {
            for end in 0..=seed.len() {
                for mode in ParseMode::ALL {
                    let m = parse(&seed[..end], mode);
                    let _ = m.timestamp.map(|t| t.fields());
                    for e in m.sd.elements() {
                        for p in e.params() {
                            let _ = p.value.chunks().count();
                        }
                    }
                }
            }
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet = b"<>0123456789 -:[]\"\\=.*%TZ@abcOctNov\xff\xef\xbb\xbf";
        let mut frame = Vec::new();
        let starts: [&[u8]; 4] = [b"", b"<13>", b"<13>1 ", b"<189>12: "];
        for _ in 0..20_000 {
            frame.clear();
            frame.extend_from_slice(starts[(x % 4) as usize]);
            let len = (x % 48) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                frame.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            for mode in ParseMode::ALL {
                let m = parse(&frame, mode);
                let _ = m.timestamp.map(|t| t.fields());
                assert!(m.message.len() <= frame.len());
            }
        }
    }
}
