//! Every known way ringest and syslog-ng 3.38 read a frame differently.
//!
//! A class checks a precise condition on the frame and on both sides, and
//! then takes the known difference out of the two views (each class touches
//! only what it explains). A line whose views then agree is explained by the
//! classes that applied; one that still differs fails the test. Each class
//! id is a row of engine/src/parse/DIFFERENCES.md, which the test checks.

use ringest::parse::{Format, Message, ParseError, TimestampKind};

use crate::view::{as_syslog_ng_prints, Stamp, View};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The values agree; only how they are written differs.
    Representation,
    /// ringest reads the frame differently on purpose.
    Deliberate,
}

pub struct Case<'a> {
    pub frame: &'a [u8],
    pub msg: Message<'a>,
}

pub struct Class {
    pub id: &'static str,
    pub kind: Kind,
    /// Returns whether it applied; may edit the views.
    pub apply: fn(&Case<'_>, &mut View, &mut View) -> bool,
}

pub const CLASSES: &[Class] = &[
    Class {
        id: "non_utf8_or_nul",
        kind: Kind::Representation,
        apply: non_utf8_or_nul,
    },
    Class {
        id: "facility_above_23",
        kind: Kind::Representation,
        apply: facility_above_23,
    },
    Class {
        id: "sd_element_without_params",
        kind: Kind::Representation,
        apply: sd_element_without_params,
    },
    Class {
        id: "no_pri",
        kind: Kind::Deliberate,
        apply: no_pri,
    },
    Class {
        id: "pri_malformed",
        kind: Kind::Deliberate,
        apply: pri_malformed,
    },
    Class {
        id: "sd_unescaped_bracket",
        kind: Kind::Deliberate,
        apply: sd_unescaped_bracket,
    },
    Class {
        id: "sd_too_large",
        kind: Kind::Deliberate,
        apply: sd_too_large,
    },
    Class {
        id: "sd_repeated_name",
        kind: Kind::Deliberate,
        apply: sd_repeated_name,
    },
    Class {
        id: "rfc5424_field_maxima",
        kind: Kind::Deliberate,
        apply: rfc5424_field_maxima,
    },
    Class {
        id: "rfc5424_hostname_chars",
        kind: Kind::Deliberate,
        apply: rfc5424_hostname_chars,
    },
    Class {
        id: "trailing_nul_or_lf",
        kind: Kind::Deliberate,
        apply: trailing_nul_or_lf,
    },
    Class {
        id: "cisco_seq_as_sd",
        kind: Kind::Representation,
        apply: cisco_seq_as_sd,
    },
    Class {
        id: "cisco_clock_mark",
        kind: Kind::Deliberate,
        apply: cisco_clock_mark,
    },
    Class {
        id: "timestamp_out_of_range",
        kind: Kind::Deliberate,
        apply: timestamp_out_of_range,
    },
    Class {
        id: "bsd_unpadded_day",
        kind: Kind::Deliberate,
        apply: bsd_unpadded_day,
    },
    Class {
        id: "nxos_year_first",
        kind: Kind::Deliberate,
        apply: nxos_year_first,
    },
    Class {
        id: "cisco_zone",
        kind: Kind::Deliberate,
        apply: cisco_zone,
    },
    Class {
        id: "cisco_origin_host",
        kind: Kind::Deliberate,
        apply: cisco_origin_host,
    },
];

fn non_utf8_or_nul(c: &Case<'_>, _: &mut View, _: &mut View) -> bool {
    as_syslog_ng_prints(c.frame) != c.frame
}

fn facility_above_23(c: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    let Some(pri) = c.msg.pri.filter(|p| !p.in_range()) else {
        return false;
    };
    // syslog-ng prints a facility without a name in hex, with no marker.
    let hex = format!("{:x}", pri.facility()).into_bytes();
    if theirs.facility.as_deref() == Some(&hex) {
        theirs.facility = ours.facility.clone();
        return true;
    }
    false
}

/// `[a]` is `"a":""` in syslog-ng and `"a":{}` in ringest (both read as an
/// element without params here). When `[a]` and `[a x="1"]` both occur,
/// syslog-ng keeps the empty one as a param named after the SD-ID's last
/// dotted part (`"a":{"x":"1","a":""}`); ringest merges the two elements.
fn sd_element_without_params(c: &Case<'_>, _: &mut View, theirs: &mut View) -> bool {
    let mut applied = false;
    for empty in c.msg.sd.elements().filter(|e| e.params().next().is_none()) {
        applied = true;
        let merged = c
            .msg
            .sd
            .elements()
            .any(|e| e.id == empty.id && e.params().next().is_some());
        if merged {
            let last = empty.id.rsplit(|&b| b == b'.').next().unwrap_or(empty.id);
            let key = [empty.id, b".", last].concat();
            if theirs.sd.get(&key) == Some(&vec![Vec::new()]) {
                theirs.sd.remove(&key);
            }
        }
    }
    applied
}

/// Both sides as ringest reads it, once the class's check on syslog-ng's side passed.
fn take_ours(ours: &View, theirs: &mut View) -> bool {
    *theirs = ours.clone();
    true
}

fn no_pri(c: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    c.msg.error == Some(ParseError::NoPri)
        && !theirs.rejected
        && theirs.pri == Some(13)
        && take_ours(ours, theirs)
}

/// syslog-ng reads `<>` as 0, keeps the low bits of 4+ digits, and takes a
/// `<` or `<13` that ends the frame as a PRI; ringest refuses all three.
fn pri_malformed(c: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    let digits = c.frame[1..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let shape = match c.frame.get(1 + digits) {
        Some(b'>') => digits == 0 || digits > 3,
        None => true,
        Some(_) => false,
    };
    c.msg.error == Some(ParseError::BadPri) && shape && !theirs.rejected && take_ours(ours, theirs)
}

fn sd_unescaped_bracket(c: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    let unescaped = |raw: &[u8]| {
        raw.iter()
            .enumerate()
            .any(|(i, &b)| b == b']' && (i == 0 || raw[i - 1] != b'\\'))
    };
    let has = c
        .msg
        .sd
        .elements()
        .flat_map(|e| e.params())
        .any(|p| unescaped(p.value.raw()));
    has && theirs.rejected && !ours.rejected && take_ours(ours, theirs)
}

fn sd_too_large(c: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    c.msg.error == Some(ParseError::SdTooLarge) && !theirs.rejected && take_ours(ours, theirs)
}

fn sd_repeated_name(_: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    if ours.rejected || theirs.rejected {
        return false;
    }
    let mut applied = false;
    for values in ours.sd.values_mut() {
        if values.len() > 1 {
            // syslog-ng keeps the last value; ringest keeps them all.
            let last = values.pop().unwrap_or_default();
            *values = vec![last];
            applied = true;
        }
    }
    applied
}

fn rfc5424_field_maxima(c: &Case<'_>, ours: &mut View, _: &mut View) -> bool {
    if c.msg.format != Format::Rfc5424 {
        return false;
    }
    let mut applied = false;
    for (field, max) in [
        (&mut ours.app, 48),
        (&mut ours.pid, 128),
        (&mut ours.msgid, 32),
    ] {
        if let Some(v) = field.as_mut().filter(|v| v.len() > max) {
            v.truncate(max);
            applied = true;
        }
    }
    applied
}

/// syslog-ng reads an RFC 5424 HOSTNAME with its RFC 3164 hostname scanner.
fn rfc5424_hostname_chars(c: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    let Some(host) = c.msg.host.filter(|_| c.msg.format == Format::Rfc5424) else {
        return false;
    };
    let ipv6_like = host.iter().all(|b| b.is_ascii_hexdigit() || *b == b':');
    let refused = host.len() > 255 || host.contains(&b'[') || (host.contains(&b':') && !ipv6_like);
    refused && theirs.rejected && take_ours(ours, theirs)
}

fn trailing_nul_or_lf(c: &Case<'_>, ours: &mut View, _: &mut View) -> bool {
    let stripped = c.msg.message.len()
        - c.msg
            .message
            .iter()
            .rev()
            .take_while(|b| matches!(b, b'\n' | 0))
            .count();
    if ours.rejected || stripped == c.msg.message.len() {
        return false;
    }
    ours.message = as_syslog_ng_prints(&c.msg.message[..stripped]);
    true
}

/// syslog-ng stores a Cisco sequence number as SD `meta.sequenceId`
/// (empty for `<189>: ...`); ringest writes the same digits as `seq`.
fn cisco_seq_as_sd(c: &Case<'_>, _: &mut View, theirs: &mut View) -> bool {
    if c.msg.format != Format::Rfc3164 || theirs.rejected {
        return false;
    }
    let seq = c.msg.seq.unwrap_or_default().to_vec();
    theirs.sd.get(&b"meta.sequenceId"[..]) == Some(&vec![seq])
        && theirs.sd.remove(&b"meta.sequenceId"[..]).is_some()
}

/// syslog-ng stores Cisco's clock mark (`*` not synced, `.` synced) as SD
/// `timeQuality.isSynced`; ringest does not report it (it stays in `raw`).
fn cisco_clock_mark(c: &Case<'_>, _: &mut View, theirs: &mut View) -> bool {
    if c.msg.format != Format::Rfc3164 || theirs.rejected {
        return false;
    }
    let key = &b"timeQuality.isSynced"[..];
    let mark = match theirs.sd.get(key).map(Vec::as_slice) {
        Some([v]) if v == b"0" => b'*',
        Some([v]) if v == b"1" => b'.',
        _ => return false,
    };
    c.frame.contains(&mark) && theirs.sd.remove(key).is_some()
}

/// A stamp ringest keeps as sent but cannot date (month 13, 31 November,
/// 24:00, a leap second, year 0): syslog-ng normalises it into another date.
fn timestamp_out_of_range(c: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    let Some(ts) = c.msg.timestamp else {
        return false;
    };
    let odd = match ts.fields() {
        None => true,
        Some(f) => f.second == 60 || f.year.is_some_and(|y| y < 1970),
    };
    if odd && !theirs.rejected {
        ours.ts = Stamp::None;
        theirs.ts = Stamp::None;
        return true;
    }
    false
}

/// The first word after the PRI and a Cisco sequence number (`12: `, `: `).
fn first_word(c: &Case<'_>) -> Vec<u8> {
    let after_pri = c.frame.iter().position(|&b| b == b'>').map_or(0, |i| i + 1);
    let mut rest = &c.frame[after_pri..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if rest[digits..].starts_with(b": ") {
        rest = &rest[digits + 2..];
    }
    let rest = rest.trim_ascii_start();
    rest.iter()
        .take_while(|b| !matches!(b, b' ' | b'[' | b':'))
        .copied()
        .collect()
}

fn bsd_unpadded_day(c: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    let Some(ts) = c.msg.timestamp else {
        return false;
    };
    let unpadded = ts.kind == TimestampKind::Bsd && ts.raw.get(5) == Some(&b' ');
    unpadded
        && theirs.ts == Stamp::None
        && theirs.app.as_deref() == Some(&ts.raw[..3])
        && take_ours(ours, theirs)
}

fn nxos_year_first(c: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    let Some(ts) = c.msg.timestamp else {
        return false;
    };
    ts.kind == TimestampKind::YearFirst
        && theirs.ts == Stamp::None
        && theirs.app.as_deref() == Some(&first_word(c)[..])
        && take_ours(ours, theirs)
}

fn cisco_zone(c: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    let Some(ts) = c.msg.timestamp else {
        return false;
    };
    let zone: Vec<u8> = ts
        .raw
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_uppercase())
        .copied()
        .collect();
    let has_zone = !zone.is_empty()
        && ts.raw.len() > zone.len()
        && ts.raw[ts.raw.len() - zone.len() - 1] == b' ';
    let zone: Vec<u8> = zone.into_iter().rev().collect();
    has_zone && theirs.app.as_deref() == Some(&zone[..]) && take_ours(ours, theirs)
}

fn cisco_origin_host(c: &Case<'_>, ours: &mut View, theirs: &mut View) -> bool {
    let (Some(_), Some(host), Some(_)) = (c.msg.seq, c.msg.host, c.msg.timestamp) else {
        return false;
    };
    first_word(c) == host
        && theirs.ts == Stamp::None
        && theirs.app.as_deref() == Some(host)
        && take_ours(ours, theirs)
}
