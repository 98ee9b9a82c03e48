//! Timestamps for RFC 5424 and RFC 3164, from Unix time.

use super::*;

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

pub(crate) fn put2(out: &mut [u8], v: u32) {
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
