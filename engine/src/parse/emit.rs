//! The `rfc5424` and `rfc3164` output formats: a parsed message written
//! back as syslog, for a file or a forwarder (which adds its own framing;
//! nothing here appends a newline).
//!
//! Rules, and why:
//! - **PRI** as received, also above 191. A frame kept whole (unparsed or
//!   refused) gets `<13>` (user.notice), as RFC 3164 §4.3.3 asks of a relay,
//!   and the whole frame as its MSG.
//! - **RFC 5424 TIMESTAMP:** as sent when it is valid RFC 5424 (a `T`, at
//!   most 6 fraction digits, an offset); an RFC 3339 stamp with an offset
//!   but another spelling is rewritten from its fields (fraction cut to
//!   microseconds); `-` stays `-`. Anything without a zone (BSD, no
//!   offset, none in RFC 3164) becomes the receive time in UTC: RFC 5424
//!   needs a zone and the sender's is unknown.
//! - **RFC 3164 TIMESTAMP:** `Mmm dd hh:mm:ss` from the message's own
//!   fields (the sender's wall clock, its year and zone dropped, as RFC
//!   3164 has neither), else the receive time in UTC.
//! - **Header fields** missing are `-` (RFC 5424) or, for the RFC 3164
//!   HOSTNAME, `fallback_host` (the peer's address). A byte that the field
//!   cannot carry (outside printable US-ASCII, or a separator of the RFC
//!   3164 tag) becomes `_`; RFC 5424 fields are cut to the RFC's maxima
//!   (255/48/128/32 bytes), since strict receivers refuse longer ones.
//! - **SD** is written from the parsed params, re-escaped (ringest accepts
//!   an unescaped `]` in a value, a strict receiver does not), then
//!   `extra_sd` (e.g. the forwarded TLS identity, built with
//!   [`push_sd_element`]). RFC 3164 cannot carry SD: it is dropped.
//! - **MSG** as received; the BOM is put back in RFC 5424.

use super::json::push_decimal;
use super::sd::escape_param_value;
use super::timestamp::{DateTime, TimestampKind};
use super::{Format, Message};

/// The PRI given to a frame that has none (user.notice).
pub const DEFAULT_PRI: u16 = 13;

/// RFC 5424 §6 field maxima, in bytes.
const HOSTNAME_BYTES_MAX: usize = 255;
const APP_NAME_BYTES_MAX: usize = 48;
const PROCID_BYTES_MAX: usize = 128;
const MSGID_BYTES_MAX: usize = 32;
/// RFC 5424 TIME-SECFRAC.
const FRACTION_DIGITS_MAX: usize = 6;

const BOM: &[u8] = b"\xef\xbb\xbf";
const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// What a re-emitter needs beyond the message.
#[derive(Clone, Copy, Debug, Default)]
pub struct EmitContext<'c> {
    /// When ringest received the frame (Unix time, nanoseconds).
    pub received_unix_ns: u64,
    /// The RFC 3164 HOSTNAME when the message has none (the peer address).
    pub fallback_host: &'c [u8],
    /// Whole SD elements appended to the RFC 5424 SD, or empty.
    pub extra_sd: &'c [u8],
}

/// Appends `msg` as an RFC 5424 message (no trailing newline).
pub fn render_rfc5424(out: &mut Vec<u8>, msg: &Message<'_>, ctx: &EmitContext<'_>) {
    push_pri(out, msg);
    out.extend_from_slice(b"1 ");
    push_rfc5424_timestamp(out, msg, ctx.received_unix_ns);
    for (value, max) in [
        (msg.host, HOSTNAME_BYTES_MAX),
        (msg.app, APP_NAME_BYTES_MAX),
        (msg.procid, PROCID_BYTES_MAX),
        (msg.msgid, MSGID_BYTES_MAX),
    ] {
        out.push(b' ');
        match value.filter(|v| !v.is_empty()) {
            Some(v) => push_printable(out, &v[..v.len().min(max)], b""),
            None => out.push(b'-'),
        }
    }
    out.push(b' ');
    let before_sd = out.len();
    for element in msg.sd.elements() {
        out.push(b'[');
        out.extend_from_slice(element.id);
        for param in element.params() {
            out.push(b' ');
            out.extend_from_slice(param.name);
            out.extend_from_slice(b"=\"");
            for chunk in param.value.chunks() {
                escape_param_value(out, chunk);
            }
            out.push(b'"');
        }
        out.push(b']');
    }
    out.extend_from_slice(ctx.extra_sd);
    if out.len() == before_sd {
        out.push(b'-');
    }
    if !msg.message.is_empty() || msg.bom {
        out.push(b' ');
        if msg.bom {
            out.extend_from_slice(BOM);
        }
        out.extend_from_slice(msg.message);
    }
}

/// Appends `msg` as an RFC 3164 message (no trailing newline).
pub fn render_rfc3164(out: &mut Vec<u8>, msg: &Message<'_>, ctx: &EmitContext<'_>) {
    push_pri(out, msg);
    match msg.timestamp.and_then(|t| t.fields()) {
        Some(f) => push_bsd(out, &f),
        None => push_bsd(out, &utc_fields(ctx.received_unix_ns)),
    }
    out.push(b' ');
    match msg.host.filter(|h| !h.is_empty()) {
        Some(host) => push_printable(out, host, b""),
        None if !ctx.fallback_host.is_empty() => push_printable(out, ctx.fallback_host, b""),
        None => out.push(b'-'),
    }
    out.push(b' ');
    if let Some(app) = msg.app.filter(|a| !a.is_empty()) {
        push_printable(out, app, b"[:");
        if let Some(pid) = msg.procid.filter(|p| !p.is_empty()) {
            out.push(b'[');
            push_printable(out, pid, b"]:");
            out.push(b']');
        }
        out.extend_from_slice(b": ");
    }
    out.extend_from_slice(msg.message);
}

/// Appends `[id name="value" ...]`, values escaped, for `extra_sd`. The
/// caller keeps `id` and the names to valid SD-NAMEs.
pub fn push_sd_element(out: &mut Vec<u8>, id: &[u8], params: &[(&[u8], &[u8])]) {
    out.push(b'[');
    out.extend_from_slice(id);
    for (name, value) in params {
        out.push(b' ');
        out.extend_from_slice(name);
        out.extend_from_slice(b"=\"");
        escape_param_value(out, value);
        out.push(b'"');
    }
    out.push(b']');
}

fn push_pri(out: &mut Vec<u8>, msg: &Message<'_>) {
    let pri = match (msg.format, msg.pri) {
        (Format::Rfc5424 | Format::Rfc3164, Some(p)) => p.value(),
        _ => DEFAULT_PRI,
    };
    out.push(b'<');
    push_decimal(out, u32::from(pri));
    out.push(b'>');
}

/// Printable US-ASCII kept, anything else and `extra` bytes become `_`.
fn push_printable(out: &mut Vec<u8>, value: &[u8], extra: &[u8]) {
    out.extend(value.iter().map(|&b| {
        if (33..=126).contains(&b) && !extra.contains(&b) {
            b
        } else {
            b'_'
        }
    }));
}

fn push_rfc5424_timestamp(out: &mut Vec<u8>, msg: &Message<'_>, received_unix_ns: u64) {
    let Some(ts) = msg.timestamp else {
        if msg.format == Format::Rfc5424 {
            out.push(b'-');
        } else {
            push_rfc3339(out, &utc_fields(received_unix_ns));
        }
        return;
    };
    let fields = ts.fields().filter(|f| f.offset_minutes.is_some());
    match fields {
        Some(_) if ts.kind == TimestampKind::Rfc3339 && is_rfc5424_spelling(ts.raw) => {
            out.extend_from_slice(ts.raw);
        }
        Some(f) if ts.kind == TimestampKind::Rfc3339 => push_rfc3339(out, &f),
        _ => push_rfc3339(out, &utc_fields(received_unix_ns)),
    }
}

/// `T` between date and time, `.` and at most 6 fraction digits.
fn is_rfc5424_spelling(raw: &[u8]) -> bool {
    if raw.get(10) != Some(&b'T') {
        return false;
    }
    match raw.get(19) {
        Some(b'.') => {
            let digits = raw[20..].iter().take_while(|d| d.is_ascii_digit()).count();
            (1..=FRACTION_DIGITS_MAX).contains(&digits)
        }
        Some(b',') => false,
        _ => true,
    }
}

/// `YYYY-MM-DDThh:mm:ss[.uuuuuu](Z|±hh:mm)`; `year` must be known.
fn push_rfc3339(out: &mut Vec<u8>, f: &DateTime) {
    push_padded(out, u32::from(f.year.unwrap_or(1970)), 4);
    out.push(b'-');
    push_padded(out, u32::from(f.month), 2);
    out.push(b'-');
    push_padded(out, u32::from(f.day), 2);
    out.push(b'T');
    push_clock(out, f);
    let micros = f.nanos / 1_000;
    if micros != 0 {
        out.push(b'.');
        push_padded(out, micros, FRACTION_DIGITS_MAX);
    }
    match f.offset_minutes {
        None | Some(0) => out.push(b'Z'),
        Some(m) => {
            out.push(if m < 0 { b'-' } else { b'+' });
            let m = u32::from(m.unsigned_abs());
            push_padded(out, m / 60, 2);
            out.push(b':');
            push_padded(out, m % 60, 2);
        }
    }
}

/// `Mmm dd hh:mm:ss`, the day padded with a space (RFC 3164 §4.1.2).
fn push_bsd(out: &mut Vec<u8>, f: &DateTime) {
    out.extend_from_slice(MONTH_NAMES[usize::from(f.month.clamp(1, 12) - 1)]);
    out.push(b' ');
    if f.day < 10 {
        out.push(b' ');
    }
    push_decimal(out, u32::from(f.day));
    out.push(b' ');
    push_clock(out, f);
}

fn push_clock(out: &mut Vec<u8>, f: &DateTime) {
    push_padded(out, u32::from(f.hour), 2);
    out.push(b':');
    push_padded(out, u32::from(f.minute), 2);
    out.push(b':');
    push_padded(out, u32::from(f.second), 2);
}

fn push_padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut n = n;
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// Unix nanoseconds as UTC fields (Howard Hinnant's days-to-civil): the
/// one calendar conversion of the engine (the writer's `received` too).
pub(crate) fn utc_fields(unix_ns: u64) -> DateTime {
    let secs = unix_ns / 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    DateTime {
        year: Some(year.clamp(0, 9999) as u16),
        month: month as u8,
        day: day as u8,
        hour: (rem / 3600) as u8,
        minute: (rem % 3600 / 60) as u8,
        second: (rem % 60) as u8,
        nanos: (unix_ns % 1_000_000_000) as u32,
        offset_minutes: Some(0),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days-from-civil): the inverse of [`utc_fields`]' date part.
pub(crate) fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse, ParseMode};

    /// 2026-11-26T00:00:00.123456789Z
    const RECEIVED: u64 = 1_795_651_200_123_456_789;

    fn ctx() -> EmitContext<'static> {
        EmitContext {
            received_unix_ns: RECEIVED,
            fallback_host: b"192.0.2.7",
            extra_sd: b"",
        }
    }

    fn r5424(frame: &[u8], ctx: &EmitContext<'_>) -> String {
        let mut out = Vec::new();
        render_rfc5424(&mut out, &parse(frame, ParseMode::Auto), ctx);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn r3164(frame: &[u8]) -> String {
        let mut out = Vec::new();
        render_rfc3164(&mut out, &parse(frame, ParseMode::Auto), &ctx());
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn rfc5424_round_trips_a_valid_message_byte_for_byte() {
        let frames: [&[u8]; 4] = [
            b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed",
            br#"<165>1 2003-10-11T22:14:15.003-07:00 h evntslog - ID47 [exampleSDID@32473 iut="3" x="a\"b\\c\]"][p@1 class="high"] An event"#,
            b"<13>1 - - - - - -",
            b"<191>1 2026-11-29T18:00:00.123456+05:30 h a 1 m - x",
        ];
        for frame in frames {
            let mut out = Vec::new();
            render_rfc5424(&mut out, &parse(frame, ParseMode::Auto), &ctx());
            assert_eq!(out, frame, "{}", String::from_utf8_lossy(frame));
        }
    }

    #[test]
    fn rfc5424_from_bsd_uses_the_receive_time_and_nil_fields() {
        assert_eq!(
            r5424(
                b"<34>Oct 11 22:14:15 mymachine su[7]: 'su root' failed",
                &ctx()
            ),
            "<34>1 2026-11-26T00:00:00.123456Z mymachine su 7 - - 'su root' failed"
        );
    }

    #[test]
    fn rfc5424_rewrites_an_odd_rfc3339_spelling_from_its_fields() {
        assert_eq!(
            r5424(b"<13>2026-11-29 18:00:00,5+01:00 h a: x", &ctx()),
            "<13>1 2026-11-29T18:00:00.500000+01:00 h a - - - x"
        );
        assert_eq!(
            r5424(b"<13>1 2026-11-29T18:00:00.123456789Z h a p m - x", &ctx()),
            "<13>1 2026-11-29T18:00:00.123456Z h a p m - x"
        );
        // No offset: the receive time.
        assert_eq!(
            r5424(b"<13>1 2026-11-29T18:00:00 h a p m - x", &ctx()),
            "<13>1 2026-11-26T00:00:00.123456Z h a p m - x"
        );
    }

    #[test]
    fn rfc5424_unparsed_frame_becomes_the_msg_of_a_user_notice() {
        assert_eq!(
            r5424(b"no pri at all", &ctx()),
            "<13>1 2026-11-26T00:00:00.123456Z - - - - - no pri at all"
        );
        assert_eq!(
            r5424(b"<13>1 - h a p m [bad", &ctx()),
            "<13>1 2026-11-26T00:00:00.123456Z - - - - - <13>1 - h a p m [bad"
        );
    }

    #[test]
    fn rfc5424_reescapes_sd_and_appends_the_forwarded_identity() {
        let mut extra = Vec::new();
        push_sd_element(
            &mut extra,
            b"tls@32473",
            &[(b"cn", br#"a"b]"#), (b"fp", b"ab:cd")],
        );
        let c = EmitContext {
            extra_sd: &extra,
            ..ctx()
        };
        assert_eq!(
            r5424(br#"<13>1 - h a p m [x@1 v="un]escaped"] m"#, &c),
            r#"<13>1 - h a p m [x@1 v="un\]escaped"][tls@32473 cn="a\"b\]" fp="ab:cd"] m"#
        );
        assert_eq!(
            r5424(b"<13>1 - h a p m -", &c),
            r#"<13>1 - h a p m [tls@32473 cn="a\"b\]" fp="ab:cd"]"#
        );
    }

    #[test]
    fn rfc5424_header_fields_are_made_printable_and_cut_to_the_rfc_maxima() {
        let app = "a".repeat(60);
        let frame = format!("<13>Oct 11 22:14:15 h\u{e9} {app}: x");
        let out = r5424(frame.as_bytes(), &ctx());
        assert_eq!(
            out,
            format!(
                "<13>1 2026-11-26T00:00:00.123456Z h__ {} - - - x",
                "a".repeat(48)
            )
        );
    }

    #[test]
    fn rfc3164_from_5424_uses_the_senders_wall_clock() {
        assert_eq!(
            r3164(br#"<165>1 2003-10-11T22:14:15.003-07:00 mymachine evntslog 99 ID47 [a@1 x="1"] An event"#),
            "<165>Oct 11 22:14:15 mymachine evntslog[99]: An event"
        );
        assert_eq!(
            r3164(b"<13>1 2026-11-05T01:02:03Z h a - - - x"),
            "<13>Nov  5 01:02:03 h a: x"
        );
    }

    #[test]
    fn rfc3164_missing_host_and_time_come_from_the_connection() {
        assert_eq!(
            r3164(b"<13>sshd[1]: hi"),
            "<13>Nov 26 00:00:00 192.0.2.7 sshd[1]: hi"
        );
        assert_eq!(r3164(b"garbage"), "<13>Nov 26 00:00:00 192.0.2.7 garbage");
        assert_eq!(
            r3164(b"<13>1 - - - - - - x"),
            "<13>Nov 26 00:00:00 192.0.2.7 x"
        );
    }

    #[test]
    fn rfc3164_tag_separators_are_replaced() {
        assert_eq!(
            r3164(b"<13>1 - h a:b p]q m - x"),
            "<13>Nov 26 00:00:00 h a_b[p_q]: x"
        );
    }

    #[test]
    fn utc_fields_match_the_writers_clock() {
        let f = utc_fields(RECEIVED);
        let mut out = Vec::new();
        push_rfc3339(&mut out, &f);
        assert_eq!(out, b"2026-11-26T00:00:00.123456Z");
        let leap_day = utc_fields(951_782_400_000_000_000);
        assert_eq!(
            (leap_day.year, leap_day.month, leap_day.day),
            (Some(2000), 2, 29)
        );
        assert_eq!(days_from_civil(2000, 2, 29) * 86_400, 951_782_400);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
