//! Timestamps, kept as sent and decoded only on demand.
//!
//! The parsers only check a timestamp's shape and borrow its bytes; the JSON
//! output writes them as sent. [`Timestamp::fields`] decodes them (for a
//! path template's `date_from = "message"` or a comparison) and checks the
//! ranges there, so an impossible date is still a timestamp as sent but has
//! no fields.
//!
//! Shapes, as syslog-ng 3.38 reads them unless marked *ringest*:
//! - **RFC 3339** (RFC 5424, and ISO inside RFC 3164):
//!   `YYYY-MM-DD(T| )hh:mm:ss[(.|,)digits][Z|±hh:mm]`. The offset may be
//!   missing (the sender's local time). `,` is Aruba's decimal mark.
//! - **BSD** (RFC 3164): `Mmm dd hh:mm:ss[(.|,)digits]`, the day padded with
//!   a space or a zero; the month's first letter a capital (`Oct`, `OCT`).
//!   *ringest:* also an unpadded day (`Feb 5 17:32:18`), which syslog-ng
//!   does not recognise.
//! - **Cisco PIX/ASA:** `Mmm dd yyyy hh:mm:ss` followed by `:`, a space or
//!   (*ringest*) the end.
//! - **LinkSys:** `Mmm dd hh:mm:ss yyyy` followed by a space.
//! - *ringest:* **NX-OS** `yyyy Mmm dd hh:mm:ss[.frac]`.
//! - *ringest:* a **Cisco zone** after a BSD or NX-OS stamp: ` ` 1-5
//!   capital letters, but only when `: %` follows (`... 18:46:11.123 UTC:
//!   %SYS-5-...`) or nothing does, so that a capitalised hostname is never
//!   taken for a zone.
//!
//! Each fixed-width number may be left-padded with spaces, as syslog-ng's
//! `scan_positive_int` allows.

/// Which shape a timestamp has; decides how [`Timestamp::fields`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampKind {
    Rfc3339,
    /// `Mmm dd hh:mm:ss[.frac][ ZONE]`: no year.
    Bsd,
    /// `Mmm dd yyyy hh:mm:ss` (Cisco PIX/ASA).
    BsdYear,
    /// `Mmm dd hh:mm:ss yyyy` (LinkSys).
    BsdTrailingYear,
    /// `yyyy Mmm dd hh:mm:ss[.frac][ ZONE]` (Cisco NX-OS).
    YearFirst,
}

/// A timestamp as sent: `raw` borrows the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp<'a> {
    pub raw: &'a [u8],
    pub kind: TimestampKind,
}

/// A decoded timestamp. `year` is `None` for BSD stamps, `offset_minutes`
/// when the sender gave no zone (or a zone name other than UTC/GMT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    pub year: Option<u16>,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    /// 0..=60: a leap second is kept as sent.
    pub second: u8,
    /// The first nine fraction digits; further digits are ignored.
    pub nanos: u32,
    pub offset_minutes: Option<i16>,
}

impl Timestamp<'_> {
    /// The decoded fields, or `None` when a field is out of range (month 13,
    /// 31 November, hour 24...). Never panics, whatever `raw` holds.
    pub fn fields(&self) -> Option<DateTime> {
        decode(self.raw, self.kind)
    }
}

/// Decodes a timestamp of any recognised shape (e.g. the `timestamp` string
/// of ringest's JSON output); `None` if it is none of them or out of range.
pub fn decode_timestamp(raw: &[u8]) -> Option<DateTime> {
    let whole = |ts: Timestamp<'_>| (ts.raw.len() == raw.len()).then_some(ts.kind);
    let kind = scan_rfc3339(raw)
        .and_then(whole)
        .or_else(|| scan_rfc3164_stamp(raw).and_then(|(ts, _)| whole(ts)))
        .or_else(|| {
            // A LinkSys stamp is only recognised before a space.
            let mut spaced = [b' '; 32];
            if raw.len() >= spaced.len() {
                return None;
            }
            spaced[..raw.len()].copy_from_slice(raw);
            let (ts, _) = scan_rfc3164_stamp(&spaced[..=raw.len()])?;
            (ts.raw.len() == raw.len()).then_some(ts.kind)
        })?;
    decode(raw, kind)
}

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// Month 1..=12 from a three-letter name: a capital first letter, the
/// other two in any case (`Oct`, `OCT`; not `oct`), as syslog-ng 3.38.
fn month_at(b: &[u8], at: usize) -> Option<u8> {
    let name = b.get(at..at + 3)?;
    if !name[0].is_ascii_uppercase() {
        return None;
    }
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .map(|i| i as u8 + 1)
}

/// A fixed-width number at `at`: leading spaces, then only digits, and at
/// least one digit.
fn num_at(b: &[u8], at: usize, width: usize) -> Option<u32> {
    let field = b.get(at..at + width)?;
    let digits = field.trim_ascii_start();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')),
    )
}

fn byte_is(b: &[u8], at: usize, want: u8) -> bool {
    b.get(at) == Some(&want)
}

/// `(.|,)digits*` at `at`: the index after it (or `at` if there is none).
fn frac_end(b: &[u8], at: usize) -> usize {
    if !matches!(b.get(at), Some(b'.' | b',')) {
        return at;
    }
    let digits = b[at + 1..]
        .iter()
        .take_while(|d| d.is_ascii_digit())
        .count();
    at + 1 + digits
}

/// `hh:mm:ss` at `at`.
fn time_at(b: &[u8], at: usize) -> bool {
    num_at(b, at, 2).is_some()
        && byte_is(b, at + 2, b':')
        && num_at(b, at + 3, 2).is_some()
        && byte_is(b, at + 5, b':')
        && num_at(b, at + 6, 2).is_some()
}

/// An RFC 3339 timestamp at the start of `b` (see the module doc).
pub(crate) fn scan_rfc3339(b: &[u8]) -> Option<Timestamp<'_>> {
    let date_ok = num_at(b, 0, 4).is_some()
        && byte_is(b, 4, b'-')
        && num_at(b, 5, 2).is_some()
        && byte_is(b, 7, b'-')
        && num_at(b, 8, 2).is_some()
        && matches!(b.get(10), Some(b'T' | b' '))
        && time_at(b, 11);
    if !date_ok {
        return None;
    }
    let mut end = frac_end(b, 19);
    match b.get(end) {
        Some(b'Z') => end += 1,
        Some(b'+' | b'-') if has_offset(&b[end..]) => end += 6,
        _ => {}
    }
    Some(Timestamp {
        raw: &b[..end],
        kind: TimestampKind::Rfc3339,
    })
}

/// `±hh:mm` not followed by another digit (syslog-ng's `__has_iso_timezone`).
fn has_offset(b: &[u8]) -> bool {
    b.len() >= 6
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && b[3] == b':'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && !b.get(6).is_some_and(u8::is_ascii_digit)
}

/// A timestamp where an RFC 3164 header has one. Returns it and the bytes
/// consumed, including one `:` right after it (Cisco ends its stamp so).
pub(crate) fn scan_rfc3164(b: &[u8]) -> Option<(Timestamp<'_>, usize)> {
    let (ts, mut end) = scan_rfc3164_stamp(b)?;
    if byte_is(b, end, b':') {
        end += 1;
    }
    Some((ts, end))
}

fn scan_rfc3164_stamp(b: &[u8]) -> Option<(Timestamp<'_>, usize)> {
    let stamp = |end: usize, kind| {
        Some((
            Timestamp {
                raw: &b[..end],
                kind,
            },
            end,
        ))
    };
    // ISO first: syslog-ng only tries it when the separators are in place.
    if b.len() >= 19 && b[4] == b'-' && b[7] == b'-' && b[13] == b':' && b[16] == b':' {
        let ts = scan_rfc3339(b)?;
        return Some((ts, ts.raw.len()));
    }
    let month = month_at(b, 0).is_some();
    // Cisco PIX/ASA: "Mmm dd yyyy hh:mm:ss" then ':' or ' '.
    if month
        && byte_is(b, 3, b' ')
        && num_at(b, 4, 2).is_some()
        && byte_is(b, 6, b' ')
        && b.get(7..11)
            .is_some_and(|y| y.iter().all(u8::is_ascii_digit))
        && byte_is(b, 11, b' ')
        && time_at(b, 12)
        && matches!(b.get(20), None | Some(b':' | b' '))
    {
        return stamp(20, TimestampKind::BsdYear);
    }
    let padded_day = month && byte_is(b, 3, b' ') && num_at(b, 4, 2).is_some();
    // LinkSys: "Mmm dd hh:mm:ss yyyy" then a space.
    if padded_day
        && byte_is(b, 6, b' ')
        && time_at(b, 7)
        && byte_is(b, 15, b' ')
        && b.get(16..20)
            .is_some_and(|y| y.iter().all(u8::is_ascii_digit))
        && b.get(20).is_some_and(u8::is_ascii_whitespace)
    {
        return stamp(20, TimestampKind::BsdTrailingYear);
    }
    // BSD: "Mmm dd hh:mm:ss" (day " 5" or "05"), or ringest's "Mmm d hh:mm:ss".
    let time_at_index = if padded_day && byte_is(b, 6, b' ') && time_at(b, 7) {
        Some(7)
    } else if month
        && byte_is(b, 3, b' ')
        && b.get(4).is_some_and(u8::is_ascii_digit)
        && byte_is(b, 5, b' ')
        && time_at(b, 6)
    {
        Some(6)
    } else {
        None
    };
    if let Some(t) = time_at_index {
        let end = zone_end(b, frac_end(b, t + 8));
        return stamp(end, TimestampKind::Bsd);
    }
    // ringest: NX-OS "yyyy Mmm dd hh:mm:ss".
    if b.get(..4).is_some_and(|y| y.iter().all(u8::is_ascii_digit))
        && byte_is(b, 4, b' ')
        && month_at(b, 5).is_some()
        && byte_is(b, 8, b' ')
        && num_at(b, 9, 2).is_some()
        && byte_is(b, 11, b' ')
        && time_at(b, 12)
        && matches!(b.get(20), None | Some(b' ' | b':' | b'.' | b','))
    {
        let end = zone_end(b, frac_end(b, 20));
        return stamp(end, TimestampKind::YearFirst);
    }
    None
}

/// Longest Cisco zone name accepted after a stamp.
const ZONE_LETTERS_MAX: usize = 5;

/// After a stamp ending at `end`: past a Cisco zone (` UTC` when `: %` or
/// the end follows), else `end`.
fn zone_end(b: &[u8], end: usize) -> usize {
    if !byte_is(b, end, b' ') {
        return end;
    }
    let letters = b[end + 1..]
        .iter()
        .take(ZONE_LETTERS_MAX + 1)
        .take_while(|c| c.is_ascii_uppercase())
        .count();
    let after = end + 1 + letters;
    let cisco_tag_follows = b.get(after..after + 3) == Some(b": %") || after == b.len();
    if (1..=ZONE_LETTERS_MAX).contains(&letters) && cisco_tag_follows {
        after
    } else {
        end
    }
}

fn decode(raw: &[u8], kind: TimestampKind) -> Option<DateTime> {
    let n = |at, w| num_at(raw, at, w);
    let (year, month, day, time) = match kind {
        TimestampKind::Rfc3339 => (Some(n(0, 4)?), n(5, 2)?, n(8, 2)?, 11),
        TimestampKind::Bsd => {
            let unpadded = byte_is(raw, 5, b' ');
            let day = if unpadded { n(4, 1)? } else { n(4, 2)? };
            let time = if unpadded { 6 } else { 7 };
            (None, u32::from(month_at(raw, 0)?), day, time)
        }
        TimestampKind::BsdYear => (Some(n(7, 4)?), u32::from(month_at(raw, 0)?), n(4, 2)?, 12),
        TimestampKind::BsdTrailingYear => {
            (Some(n(16, 4)?), u32::from(month_at(raw, 0)?), n(4, 2)?, 7)
        }
        TimestampKind::YearFirst => (Some(n(0, 4)?), u32::from(month_at(raw, 5)?), n(9, 2)?, 12),
    };
    let (hour, minute, second) = (n(time, 2)?, n(time + 3, 2)?, n(time + 6, 2)?);
    let after_secs = time + 8;
    let frac_stop = frac_end(raw, after_secs);
    let frac = raw.get(after_secs + 1..frac_stop).unwrap_or_default();
    let nanos = (0..9).fold(0u32, |acc, i| {
        acc * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'))
    });
    let offset_minutes = match raw.get(frac_stop..).unwrap_or_default() {
        b"Z" | b" UTC" | b" GMT" => Some(0),
        [sign @ (b'+' | b'-'), ..] if kind == TimestampKind::Rfc3339 => {
            let (h, m) = (n(frac_stop + 1, 2)?, n(frac_stop + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = (h * 60 + m) as i16;
            Some(if *sign == b'-' { -minutes } else { minutes })
        }
        _ => None,
    };
    let year = year.map(|y| y as u16);
    let days_max = days_in_month(year, month)?;
    let in_range = (1..=days_max).contains(&day) && hour <= 23 && minute <= 59 && second <= 60;
    in_range.then_some(DateTime {
        year,
        month: month as u8,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        nanos,
        offset_minutes,
    })
}

/// Days in `month` (1..=12); February has 29 when the year is unknown.
fn days_in_month(year: Option<u16>, month: u32) -> Option<u32> {
    let leap = year.is_none_or(|y| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0);
    Some(match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bsd(s: &str) -> Option<(&str, usize, TimestampKind)> {
        scan_rfc3164(s.as_bytes()).map(|(t, n)| (std::str::from_utf8(t.raw).unwrap(), n, t.kind))
    }

    #[test]
    fn rfc3339_with_fraction_and_offset() {
        let t = scan_rfc3339(b"2003-08-24T05:14:15.000003-07:00 host").unwrap();
        assert_eq!(t.raw, b"2003-08-24T05:14:15.000003-07:00");
        let f = t.fields().unwrap();
        assert_eq!((f.year, f.month, f.day), (Some(2003), 8, 24));
        assert_eq!((f.hour, f.minute, f.second, f.nanos), (5, 14, 15, 3_000));
        assert_eq!(f.offset_minutes, Some(-420));
    }

    #[test]
    fn rfc3339_nanoseconds_and_more_digits_than_nine() {
        let t = scan_rfc3339(b"2026-11-29T18:00:00.1234567891Z").unwrap();
        assert_eq!(t.raw.len(), 31);
        assert_eq!(t.fields().unwrap().nanos, 123_456_789);
        assert_eq!(t.fields().unwrap().offset_minutes, Some(0));
    }

    #[test]
    fn rfc3339_without_offset_is_local_time() {
        let t = scan_rfc3339(b"2026-11-29T18:00:00 h").unwrap();
        assert_eq!(t.raw, b"2026-11-29T18:00:00");
        assert_eq!(t.fields().unwrap().offset_minutes, None);
        // "+0530" is not an offset: the stamp ends before it, and the RFC
        // 5424 parser then refuses the missing space.
        let t = scan_rfc3339(b"2026-11-29T18:00:00+0530 h").unwrap();
        assert_eq!(t.raw, b"2026-11-29T18:00:00");
    }

    #[test]
    fn rfc3339_impossible_dates_have_no_fields() {
        for s in [
            "2026-13-01T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T18:00:00+24:00",
            "0000-00-00T00:00:00Z",
        ] {
            let t = scan_rfc3339(s.as_bytes()).expect("shape is fine");
            assert_eq!(t.fields(), None, "{s}");
        }
        let leap = scan_rfc3339(b"2024-02-29T23:59:60Z").unwrap();
        assert_eq!(leap.fields().unwrap().second, 60);
    }

    #[test]
    fn rfc3339_lowercase_t_is_not_a_timestamp() {
        assert_eq!(scan_rfc3339(b"2026-11-29t18:00:00z"), None);
        assert_eq!(scan_rfc3339(b"2026-1-29T18:00:00Z"), None);
    }

    #[test]
    fn bsd_space_or_zero_padded_day() {
        assert_eq!(
            bsd("Feb  5 17:32:18 host"),
            Some(("Feb  5 17:32:18", 15, TimestampKind::Bsd))
        );
        assert_eq!(
            bsd("FEB 05 17:32:18 host"),
            Some(("FEB 05 17:32:18", 15, TimestampKind::Bsd))
        );
        let f = decode_timestamp(b"Feb  5 17:32:18").unwrap();
        assert_eq!((f.year, f.month, f.day, f.hour), (None, 2, 5, 17));
    }

    #[test]
    fn bsd_unpadded_day_is_a_ringest_extension() {
        assert_eq!(
            bsd("Feb 5 17:32:18 10.0.0.99 Use"),
            Some(("Feb 5 17:32:18", 14, TimestampKind::Bsd))
        );
        assert_eq!(decode_timestamp(b"Feb 5 17:32:18").unwrap().day, 5);
    }

    #[test]
    fn bsd_fraction_and_cisco_trailing_colon() {
        assert_eq!(
            bsd("Mar  1 18:46:11.123: %SYS-5"),
            Some(("Mar  1 18:46:11.123", 20, TimestampKind::Bsd))
        );
        assert_eq!(
            decode_timestamp(b"Mar  1 18:46:11.123").unwrap().nanos,
            123_000_000
        );
    }

    #[test]
    fn cisco_zone_only_before_a_mnemonic() {
        assert_eq!(
            bsd("Mar  1 18:46:11.123 UTC: %SYS-5-CONFIG_I: x"),
            Some(("Mar  1 18:46:11.123 UTC", 24, TimestampKind::Bsd))
        );
        assert_eq!(
            decode_timestamp(b"Mar  1 18:46:11 UTC")
                .unwrap()
                .offset_minutes,
            Some(0)
        );
        // A capitalised hostname stays a hostname.
        assert_eq!(
            bsd("Mar  1 18:46:11 HOST: msg").unwrap().0,
            "Mar  1 18:46:11"
        );
        assert_eq!(
            bsd("Mar  1 18:46:11 CEST app: x").unwrap().0,
            "Mar  1 18:46:11"
        );
    }

    #[test]
    fn pix_asa_and_linksys_years() {
        assert_eq!(
            bsd("Nov 29 2026 18:00:00: %ASA-6-302013: x"),
            Some(("Nov 29 2026 18:00:00", 21, TimestampKind::BsdYear))
        );
        assert_eq!(
            bsd("Nov 29 18:00:00 2026 host x"),
            Some(("Nov 29 18:00:00 2026", 20, TimestampKind::BsdTrailingYear))
        );
        assert_eq!(
            decode_timestamp(b"Nov 29 2026 18:00:00").unwrap().year,
            Some(2026)
        );
    }

    #[test]
    fn nxos_year_first() {
        assert_eq!(
            bsd("2026 Nov 29 18:00:00 UTC: %ETHPORT-5-IF_UP: x"),
            Some(("2026 Nov 29 18:00:00 UTC", 25, TimestampKind::YearFirst))
        );
        let f = decode_timestamp(b"2026 Nov 29 18:00:00").unwrap();
        assert_eq!((f.year, f.month, f.day), (Some(2026), 11, 29));
    }

    #[test]
    fn iso_inside_3164_with_space_separator() {
        assert_eq!(
            bsd("2026-11-29 18:00:00 host app: x"),
            Some(("2026-11-29 18:00:00", 19, TimestampKind::Rfc3339))
        );
    }

    #[test]
    fn not_a_timestamp() {
        for s in [
            "Foo 11 22:14:15 x",
            "Oct 11 22:14 x",
            "Oct 11 22:14:1",
            "1990 Oct 22 10:52:01x",
            "",
            "Oct",
        ] {
            assert_eq!(bsd(s), None, "{s:?}");
        }
        // A stamp cut short is not decoded either.
        assert_eq!(decode_timestamp(b"Oct 11 22:14:15 trailing"), None);
    }
}
