//! RFC 3164 (BSD syslog): `<PRI>[SEQ: ][*]TIMESTAMP HOSTNAME TAG[PID]: MSG`.
//!
//! RFC 3164 describes what was seen in the wild rather than a grammar, so
//! this follows syslog-ng 3.38's reading of it step by step (the
//! differential test holds the two together), with the extensions marked
//! *ringest*. After the PRI every part is optional and nothing is refused.
//!
//! 1. **Cisco sequence number:** digits, `:` and a space (`<189>123: ...`)
//!    go to `seq`. syslog-ng stores it as SD `meta.sequenceId`; ringest
//!    does not invent SD.
//! 2. Spaces, then a Cisco clock mark: `*` (not synced) or `.` (synced).
//! 3. **Timestamp** (see [`super::timestamp`]): BSD, ISO 8601, PIX/ASA,
//!    LinkSys; *ringest:* an unpadded day, NX-OS, a Cisco zone name.
//!    *ringest:* with a sequence number and no timestamp, `host: ` before
//!    the timestamp is Cisco's `logging origin-id` and is the host.
//! 4. With a timestamp: AIX's `Message forwarded from HOST:`; a message
//!    that starts with `last message repeated` has neither host nor tag.
//!    Otherwise a **hostname** is the next word if a space ends it; it ends
//!    at `[`, and at a `:` unless it still looks like an IPv6 address. A
//!    word that does not qualify (`su: ...`) means the host is missing, and
//!    it becomes the tag.
//! 5. **Tag:** up to a space, `[` or `:`; `[pid]` after it; then one `:`
//!    and one space are skipped. Cisco's `%FAC-SEV-MNEMONIC:` is the tag.
//!    Without a timestamp the tag is read right after the PRI.
//! 6. **Message:** the rest, bytes as sent.

use super::pri::Pri;
use super::timestamp::{scan_rfc3164, Timestamp};
use super::{Format, Message};

/// syslog-ng's hostname buffer: a longer first word is not a hostname.
const HOSTNAME_BYTES_MAX: usize = 255;

const AIX_FORWARDED: &[u8] = b"Message forwarded from ";
const REPEATED: &[u8] = b"last message repeated";

/// Parses the rest of an RFC 3164 frame; `at` is just past the PRI.
/// Never fails: every part after the PRI is optional.
pub(crate) fn parse(frame: &[u8], pri: Pri, at: usize) -> Message<'_> {
    let mut m = Message {
        format: Format::Rfc3164,
        pri: Some(pri),
        ..Message::unparsed(frame)
    };
    let mut at = at;

    let seq = cisco_sequence(frame, at);
    if let Some((digits, next)) = seq {
        m.seq = (!digits.is_empty()).then_some(digits);
        at = next;
    }
    at = skip_spaces(frame, at);
    if matches!(frame.get(at), Some(b'*' | b'.')) {
        at += 1;
    }

    let mut stamp = scan_rfc3164(&frame[at..]);
    if stamp.is_none() && seq.is_some() {
        if let Some((host, ts, next)) = cisco_origin_host(frame, at) {
            m.host = Some(host);
            stamp = Some((ts, 0));
            at = next;
        }
    }

    match stamp {
        Some((ts, len)) => {
            m.timestamp = Some(ts);
            at = skip_spaces(frame, at + len);
            if let Some(after) = frame[at..].strip_prefix(AIX_FORWARDED) {
                let start = at + AIX_FORWARDED.len();
                let len = memchr::memchr(b':', after).unwrap_or(after.len());
                m.host = Some(&frame[start..start + len]);
                at = start + len;
                at += frame[at..]
                    .iter()
                    .take_while(|&&c| c == b' ' || c == b':')
                    .count();
            }
            let repeated = frame.len() - at > REPEATED.len() && frame[at..].starts_with(REPEATED);
            if !repeated {
                if m.host.is_none() {
                    if let Some(end) = hostname_end(frame, at) {
                        m.host = Some(&frame[at..end]);
                        at = skip_spaces(frame, end);
                    }
                }
                at = tag(frame, at, &mut m);
            }
        }
        None => at = tag(frame, at, &mut m),
    }
    m.message = &frame[at..];
    m
}

/// `digits: ` at `at`: the digits and the index of the space.
fn cisco_sequence(frame: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let digits = frame[at..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let colon = at + digits;
    (frame.get(colon) == Some(&b':') && frame.get(colon + 1) == Some(&b' '))
        .then(|| (&frame[at..colon], colon + 1))
}

/// *ringest:* `host: [*]TIMESTAMP` (Cisco `logging origin-id`): the host,
/// the timestamp and the index after it.
fn cisco_origin_host(frame: &[u8], at: usize) -> Option<(&[u8], Timestamp<'_>, usize)> {
    let word = frame[at..]
        .iter()
        .take_while(|&&c| c != b':' && c != b' ')
        .count();
    if word == 0 || frame.get(at + word..at + word + 2) != Some(b": ") {
        return None;
    }
    let mut ts_at = at + word + 2;
    if matches!(frame.get(ts_at), Some(b'*' | b'.')) {
        ts_at += 1;
    }
    let (ts, len) = scan_rfc3164(&frame[ts_at..])?;
    Some((&frame[at..at + word], ts, ts_at + len))
}

fn skip_spaces(frame: &[u8], at: usize) -> usize {
    at + frame[at..].iter().take_while(|&&c| c == b' ').count()
}

/// Where the hostname starting at `at` ends, if the first word is one.
fn hostname_end(frame: &[u8], at: usize) -> Option<usize> {
    let mut ipv6 = Ipv6Heuristic::default();
    let mut end = at;
    while let Some(&c) = frame.get(end) {
        if c == b' ' || c == b'[' || end - at == HOSTNAME_BYTES_MAX {
            break;
        }
        ipv6.feed(c);
        if c == b':' && ipv6.failed {
            break;
        }
        end += 1;
    }
    (frame.get(end) == Some(&b' ')).then_some(end)
}

/// syslog-ng's test for "could still be an IPv6 address", which lets `:`
/// into a hostname: hex digits and colons, at most 4 digits per group and
/// fewer than 8 colons.
#[derive(Default)]
struct Ipv6Heuristic {
    colons: u8,
    digits_in_group: u8,
    failed: bool,
}

impl Ipv6Heuristic {
    fn feed(&mut self, c: u8) {
        if self.failed {
            return;
        }
        if c == b':' {
            self.digits_in_group = 0;
            self.colons += 1;
            self.failed = self.colons >= 8;
        } else if c.is_ascii_hexdigit() {
            self.digits_in_group += 1;
            self.failed = self.digits_in_group > 4;
        } else {
            self.failed = true;
        }
    }
}

/// Reads `TAG[PID]: ` at `at` into `m`; returns where the message starts.
fn tag<'a>(frame: &'a [u8], at: usize, m: &mut Message<'a>) -> usize {
    let stop = |c: &u8| matches!(c, b' ' | b'[' | b':');
    let end = at + frame[at..].iter().take_while(|c| !stop(c)).count();
    m.app = (end > at).then(|| &frame[at..end]);
    let mut i = end;
    if frame.get(i) == Some(&b'[') {
        let pid_end = i + frame[i..]
            .iter()
            .take_while(|c| !matches!(c, b' ' | b']' | b':'))
            .count();
        // An unterminated `[pid` up to the end is not a pid (syslog-ng).
        if pid_end < frame.len() && pid_end > i + 1 {
            m.procid = Some(&frame[i + 1..pid_end]);
        }
        i = pid_end;
        if frame.get(i) == Some(&b']') {
            i += 1;
        }
    }
    if frame.get(i) == Some(&b':') {
        i += 1;
    }
    if frame.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use crate::parse::{parse, Format, Message, ParseMode};

    fn p(s: &[u8]) -> Message<'_> {
        let m = parse(s, ParseMode::Rfc3164);
        assert_eq!(m.format, Format::Rfc3164, "{}", String::from_utf8_lossy(s));
        m
    }

    fn s(b: Option<&[u8]>) -> Option<&str> {
        b.map(|b| std::str::from_utf8(b).unwrap())
    }

    fn fields<'a>(
        m: &Message<'a>,
    ) -> (
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
    ) {
        (
            m.timestamp.map(|t| std::str::from_utf8(t.raw).unwrap()),
            s(m.host),
            s(m.app),
            s(m.procid),
            std::str::from_utf8(m.message).unwrap(),
        )
    }

    #[test]
    fn rfc3164_example_1() {
        let m = p(b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8");
        assert_eq!(m.pri.unwrap().value(), 34);
        assert_eq!(
            fields(&m),
            (
                Some("Oct 11 22:14:15"),
                Some("mymachine"),
                Some("su"),
                None,
                "'su root' failed for lonvick on /dev/pts/8"
            )
        );
    }

    #[test]
    fn rfc3164_tag_is_the_first_word_even_without_a_colon() {
        let m = p(b"<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!");
        assert_eq!(
            fields(&m),
            (
                Some("Feb  5 17:32:18"),
                Some("10.0.0.99"),
                Some("Use"),
                None,
                "the BFG!"
            )
        );
    }

    #[test]
    fn missing_hostname_makes_the_first_word_the_tag() {
        let m = p(b"<13>Oct 11 22:14:15 su: no hostname here");
        assert_eq!(
            fields(&m),
            (
                Some("Oct 11 22:14:15"),
                None,
                Some("su"),
                None,
                "no hostname here"
            )
        );
        // One word and the end: a tag, not a host.
        let m = p(b"<13>Oct 11 22:14:15 host");
        assert_eq!(
            fields(&m),
            (Some("Oct 11 22:14:15"), None, Some("host"), None, "")
        );
    }

    #[test]
    fn ipv6_hostname_keeps_its_colons() {
        let m = p(b"<13>Oct 11 22:14:15 fe80::1:2 app[7]: up");
        assert_eq!(
            fields(&m),
            (
                Some("Oct 11 22:14:15"),
                Some("fe80::1:2"),
                Some("app"),
                Some("7"),
                "up"
            )
        );
    }

    #[test]
    fn pid_forms() {
        assert_eq!(
            s(p(b"<13>Oct 11 22:14:15 h sshd[1234]: x").procid),
            Some("1234")
        );
        assert_eq!(s(p(b"<13>Oct 11 22:14:15 h app[]: x").procid), None);
        let m = p(b"<13>Oct 11 22:14:15 h app[123: unterminated");
        assert_eq!(
            (s(m.procid), m.message),
            (Some("123"), &b"unterminated"[..])
        );
        let m = p(b"<13>Oct 11 22:14:15 h app[123");
        assert_eq!(
            (s(m.app), s(m.procid), m.message),
            (Some("app"), None, &b""[..])
        );
    }

    #[test]
    fn iso_timestamp_inside_3164() {
        let m = p(b"<13>2026-11-29T18:00:00.123456+01:00 host app[12]: iso");
        assert_eq!(
            fields(&m),
            (
                Some("2026-11-29T18:00:00.123456+01:00"),
                Some("host"),
                Some("app"),
                Some("12"),
                "iso"
            )
        );
    }

    #[test]
    fn no_timestamp_reads_the_tag_after_the_pri() {
        let m = p(b"<13>sshd[12]: started");
        assert_eq!(
            fields(&m),
            (None, None, Some("sshd"), Some("12"), "started")
        );
        let m = p(b"<13>");
        assert_eq!(fields(&m), (None, None, None, None, ""));
    }

    #[test]
    fn cisco_sequence_clock_mark_and_mnemonic_tag() {
        let m =
            p(b"<189>123: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured from console by vty0");
        assert_eq!(s(m.seq), Some("123"));
        assert_eq!(
            fields(&m),
            (
                Some("Mar  1 18:46:11.123"),
                None,
                Some("%SYS-5-CONFIG_I"),
                None,
                "Configured from console by vty0"
            )
        );
    }

    #[test]
    fn cisco_zone_name_stays_in_the_timestamp() {
        let m = p(b"<189>42: Nov 29 18:46:11.123 UTC: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up");
        assert_eq!(
            fields(&m),
            (
                Some("Nov 29 18:46:11.123 UTC"),
                None,
                Some("%LINK-3-UPDOWN"),
                None,
                "Interface Gi0/1, changed state to up"
            )
        );
    }

    #[test]
    fn cisco_origin_id_host_before_the_timestamp() {
        let m = p(b"<189>45: router1: *Mar  1 18:46:11: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up");
        assert_eq!(s(m.seq), Some("45"));
        assert_eq!(
            fields(&m),
            (
                Some("Mar  1 18:46:11"),
                Some("router1"),
                Some("%LINK-3-UPDOWN"),
                None,
                "Interface Gi0/1, changed state to up"
            )
        );
    }

    #[test]
    fn asa_timestamp_with_year() {
        let m = p(b"<166>Nov 29 2026 18:00:00: %ASA-6-302013: Built outbound TCP connection");
        assert_eq!(
            fields(&m),
            (
                Some("Nov 29 2026 18:00:00"),
                None,
                Some("%ASA-6-302013"),
                None,
                "Built outbound TCP connection"
            )
        );
    }

    #[test]
    fn last_message_repeated_has_no_host_and_no_tag() {
        let m = p(b"<13>Oct 11 22:14:15 last message repeated 3 times");
        assert_eq!(
            fields(&m),
            (
                Some("Oct 11 22:14:15"),
                None,
                None,
                None,
                "last message repeated 3 times"
            )
        );
    }

    #[test]
    fn aix_forwarded_message_names_the_host() {
        let m = p(b"<13>Oct 11 22:14:15 Message forwarded from aixhost: syslogd: restart");
        assert_eq!(
            fields(&m),
            (
                Some("Oct 11 22:14:15"),
                Some("aixhost"),
                Some("syslogd"),
                None,
                "restart"
            )
        );
    }

    #[test]
    fn hostname_longer_than_255_bytes_is_not_a_hostname() {
        let ok = format!("<13>Oct 11 22:14:15 {} app: x", "h".repeat(255));
        assert_eq!(p(ok.as_bytes()).host.map(<[u8]>::len), Some(255));
        let long = format!("<13>Oct 11 22:14:15 {} app: x", "h".repeat(256));
        let m = p(long.as_bytes());
        assert_eq!((m.host, m.app.map(<[u8]>::len)), (None, Some(256)));
    }

    #[test]
    fn non_utf8_bytes_in_every_part() {
        let m = p(b"<13>Oct 11 22:14:15 h\xff ap\xfe: m\xc3");
        assert_eq!(
            (m.host, m.app, m.message),
            (Some(&b"h\xff"[..]), Some(&b"ap\xfe"[..]), &b"m\xc3"[..])
        );
    }
}
