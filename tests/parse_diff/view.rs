//! One message as both sides can be compared: the fields the issue names,
//! read from syslog-ng's `format-json` line and from ringest's JSON line.
//!
//! ringest's byte values are first put in the form syslog-ng's format-json
//! prints (see [`as_syslog_ng_prints`]); that form loses information, which
//! is why ringest does not use it, but values that agree must agree there.

use std::collections::BTreeMap;

use ringest::parse::pri::FACILITY_NAMES;
use ringest::parse::timestamp::decode_timestamp;
use ringest::parse::Severity;

use e2e::json::Json;

/// A timestamp at syslog-ng's precision (microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ts {
    pub year: Option<u16>,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micros: u32,
    /// A stamp without a zone counts as UTC: syslog-ng runs with `TZ=UTC`.
    pub offset_minutes: i16,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stamp {
    None,
    At(Ts),
    /// A stamp that cannot be read as a date (month 13, year 4294967295).
    Undecodable(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// Kept whole (ringest `parse_error`) / replaced by an error text
    /// (syslog-ng); nothing else is compared then.
    pub rejected: bool,
    pub pri: Option<u16>,
    pub facility: Option<Vec<u8>>,
    pub severity: Option<Vec<u8>>,
    pub ts: Stamp,
    pub host: Option<Vec<u8>>,
    pub app: Option<Vec<u8>>,
    pub pid: Option<Vec<u8>>,
    pub msgid: Option<Vec<u8>>,
    /// `SD-ID.PARAM-NAME` -> values in order (syslog-ng's own model, which
    /// also nests on dots); an element without params is `SD-ID` -> `[""]`.
    pub sd: BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
    pub message: Vec<u8>,
}

impl View {
    pub fn rejected() -> View {
        View {
            rejected: true,
            pri: None,
            facility: None,
            severity: None,
            ts: Stamp::None,
            host: None,
            app: None,
            pid: None,
            msgid: None,
            sd: BTreeMap::new(),
            message: Vec::new(),
        }
    }

    /// Names of the fields that differ.
    pub fn diff(&self, other: &View) -> Vec<&'static str> {
        if self.rejected || other.rejected {
            return if self.rejected == other.rejected {
                vec![]
            } else {
                vec!["rejected"]
            };
        }
        let mut out = Vec::new();
        let checks = [
            ("pri", self.pri == other.pri),
            ("facility", self.facility == other.facility),
            ("severity", self.severity == other.severity),
            ("timestamp", stamps_agree(&self.ts, &other.ts)),
            ("host", self.host == other.host),
            ("app", self.app == other.app),
            ("pid", self.pid == other.pid),
            ("msgid", self.msgid == other.msgid),
            ("sd", self.sd == other.sd),
            ("message", self.message == other.message),
        ];
        for (name, same) in checks {
            if !same {
                out.push(name);
            }
        }
        out
    }
}

/// ringest's side first: a BSD stamp has no year, so syslog-ng's guess of
/// one is not compared.
fn stamps_agree(ours: &Stamp, theirs: &Stamp) -> bool {
    match (ours, theirs) {
        (Stamp::At(a), Stamp::At(b)) if a.year.is_none() => Ts { year: None, ..*b } == *a,
        (a, b) => a == b,
    }
}

fn non_empty(v: Option<&[u8]>) -> Option<Vec<u8>> {
    v.filter(|v| !v.is_empty()).map(<[u8]>::to_vec)
}

/// How syslog-ng 3.38's format-json prints bytes, decoded: a byte that is
/// not UTF-8, and NUL, as the text `\xNN`.
pub fn as_syslog_ng_prints(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            match b {
                0 => out.extend_from_slice(b"\\x00"),
                b => out.push(b),
            }
        }
        for &b in chunk.invalid() {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
    }
    out
}

fn flatten(
    json: Option<&Json>,
    prefix: &[u8],
    out: &mut BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
    map: fn(&[u8]) -> Vec<u8>,
) {
    let path = |k: &[u8]| {
        let mut p = prefix.to_vec();
        if !p.is_empty() {
            p.push(b'.');
        }
        p.extend_from_slice(k);
        p
    };
    match json {
        Some(Json::Obj(fields)) if fields.is_empty() && !prefix.is_empty() => {
            out.entry(prefix.to_vec()).or_default().push(Vec::new());
        }
        Some(Json::Obj(fields)) => {
            for (k, v) in fields {
                flatten(Some(v), &path(&map(k)), out, map);
            }
        }
        Some(Json::Str(s)) => out.entry(prefix.to_vec()).or_default().push(map(s)),
        Some(Json::Arr(items)) => {
            for item in items {
                flatten(Some(item), prefix, out, map);
            }
        }
        Some(Json::Other(o)) => out
            .entry(prefix.to_vec())
            .or_default()
            .push(o.clone().into_bytes()),
        None => {}
    }
}

/// `2026-11-29T18:00:00.123456+01:00`, as syslog-ng's ISODATE.
fn parse_isodate(s: &[u8]) -> Stamp {
    let text = String::from_utf8_lossy(s);
    let parse = || -> Option<Ts> {
        let (date, rest) = text.split_once('T')?;
        let mut d = date.split('-');
        let year: u16 = d.next()?.parse().ok()?;
        let month: u8 = d.next()?.parse().ok()?;
        let day: u8 = d.next()?.parse().ok()?;
        let (clock, offset) = rest.split_at(rest.len().checked_sub(6)?);
        let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
        let mut t = hms.split(':');
        let (hour, minute, second) = (
            t.next()?.parse().ok()?,
            t.next()?.parse().ok()?,
            t.next()?.parse().ok()?,
        );
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (oh, om) = offset[1..].split_once(':')?;
        let offset_minutes = sign * (oh.parse::<i16>().ok()? * 60 + om.parse::<i16>().ok()?);
        Some(Ts {
            year: Some(year),
            month,
            day,
            hour,
            minute,
            second,
            micros: frac.parse().ok()?,
            offset_minutes,
        })
    };
    parse().map_or_else(|| Stamp::Undecodable(s.to_vec()), Stamp::At)
}

/// syslog-ng's line.
pub fn theirs(j: &Json) -> View {
    let program = j.str("PROGRAM");
    let message = j.str("MESSAGE").unwrap_or_default();
    if program == Some(b"syslog-ng") && message.starts_with(b"Error processing log message: ") {
        return View::rejected();
    }
    let ts = match (j.str("ISODATE"), j.str("R_ISODATE")) {
        (Some(stamp), Some(received)) if stamp != received => parse_isodate(stamp),
        _ => Stamp::None,
    };
    let host = j.str("HOST").filter(|&h| Some(h) != j.str("HOST_FROM"));
    let mut sd = BTreeMap::new();
    flatten(j.get("_SDATA"), b"", &mut sd, <[u8]>::to_vec);
    View {
        rejected: false,
        pri: j
            .str("PRI")
            .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok()),
        facility: non_empty(j.str("FACILITY")),
        severity: non_empty(j.str("PRIORITY")),
        ts,
        host: non_empty(host),
        app: non_empty(program),
        pid: non_empty(j.str("PID")),
        msgid: non_empty(j.str("MSGID")),
        sd,
        message: message.to_vec(),
    }
}

/// ringest's line, its bytes put in syslog-ng's printed form.
pub fn ours(j: &Json) -> View {
    if j.get("parse_error").is_some() {
        return View::rejected();
    }
    let facility = j.str("facility");
    let severity = j.str("severity");
    let pri = (|| {
        let f = std::str::from_utf8(facility?).ok()?;
        let f = FACILITY_NAMES
            .iter()
            .position(|&n| n == f)
            .map(|i| i as u16)
            .or_else(|| f.parse().ok())?;
        let s = Severity::from_name(std::str::from_utf8(severity?).ok()?)? as u16;
        Some(f * 8 + s)
    })();
    let ts = match j.str("timestamp") {
        None => Stamp::None,
        Some(raw) => match decode_timestamp(raw) {
            Some(f) => Stamp::At(Ts {
                year: f.year,
                month: f.month,
                day: f.day,
                hour: f.hour,
                minute: f.minute,
                second: f.second,
                micros: f.nanos / 1_000,
                offset_minutes: f.offset_minutes.unwrap_or(0),
            }),
            None => Stamp::Undecodable(raw.to_vec()),
        },
    };
    let field = |k| non_empty(j.str(k)).map(|v| as_syslog_ng_prints(&v));
    let mut sd = BTreeMap::new();
    flatten(j.get("sd"), b"", &mut sd, as_syslog_ng_prints);
    View {
        rejected: false,
        pri,
        facility: non_empty(facility),
        severity: non_empty(severity),
        ts,
        host: field("host"),
        app: field("app"),
        pid: field("procid"),
        msgid: field("msgid"),
        sd,
        message: as_syslog_ng_prints(j.str("message").unwrap_or_default()),
    }
}
