//! File path templates: `path = "/var/log/hosts/{host}/{year}-{month}-{day}.log"`.
//!
//! A template is parsed once, when the config is loaded, and rendered per
//! message into a reused buffer (no allocation once it has room).
//!
//! - **Fields.** `{host}`, `{app}`, `{facility}`, `{severity}` (from the
//!   parsed message), `{source}` (the source's name), `{peer}` (the
//!   connection's IP address, without the port), and `{year}`, `{month}`,
//!   `{day}`, `{hour}` (zero-padded: `2026`, `03`). `{{` and `}}` are a
//!   literal `{` and `}`. Any other `{name}` is refused with the list.
//! - **Dates** come from the receive time (`date_from = "received"`, UTC),
//!   or from the message's own timestamp (`date_from = "message"`) when it
//!   has one that decodes; a stamp with an offset is turned into UTC, one
//!   without (the sender's local time) is taken as it is. A BSD stamp has
//!   no year: the receive year, minus one for a December stamp received in
//!   January, plus one for a January stamp received in December.
//! - **Every field value is one safe file-name component**: it goes
//!   through [`parse::path::push_component`] (`/`, NUL, a leading `.`,
//!   anything but `[A-Za-z0-9._-]` becomes `%XX`; empty is `@empty`; over
//!   128 bytes is cut and hashed), so no value adds a `/` or makes a `..`.
//!   A value that had to change is counted (`ringest_path_values_sanitized_total`).
//! - **A missing field** (no host in the message, an unparsed frame) is
//!   [`MISSING_COMPONENT`], `@unknown`: the message is written, not
//!   dropped, and `@` never comes from a value, so it cannot collide with a
//!   host really named `unknown`.
//! - **Refused at load:** a `..` component in the template's text, a NUL,
//!   a path ending in `/`, and a template whose longest rendering could
//!   exceed [`PATH_BYTES_MAX`]. A rendered component longer than
//!   [`NAME_BYTES_MAX`] (three fields side by side) is cut and ends with
//!   `~` and a hash of the whole component, as a long value is, so an open
//!   never fails with ENAMETOOLONG because of what a client sent.
//!
//! So a rendered path always stays under [`PathTemplate::root`], the
//! template's text before its first field.

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::parse::emit::{days_from_civil, utc_fields};
use crate::parse::path::{fnv1a64, push_component, COMPONENT_BYTES_MAX};
use crate::parse::{DateTime, Message, TimestampKind};

/// What a missing field (no host, no PRI, an unparsed frame) renders as.
pub const MISSING_COMPONENT: &[u8] = b"@unknown";

/// Longest component of a rendered path (Linux NAME_MAX).
pub const NAME_BYTES_MAX: usize = 255;

/// Longest rendered path a template may produce (Linux PATH_MAX, less the NUL).
pub const PATH_BYTES_MAX: usize = 4095;

/// `~` and 16 hex digits, as [`push_component`] ends a cut value.
const HASH_SUFFIX_BYTES: usize = 17;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Host,
    App,
    Facility,
    Severity,
    Source,
    Peer,
    Year,
    Month,
    Day,
    Hour,
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::Host,
        Field::App,
        Field::Facility,
        Field::Severity,
        Field::Source,
        Field::Peer,
        Field::Year,
        Field::Month,
        Field::Day,
        Field::Hour,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Host => "host",
            Field::App => "app",
            Field::Facility => "facility",
            Field::Severity => "severity",
            Field::Source => "source",
            Field::Peer => "peer",
            Field::Year => "year",
            Field::Month => "month",
            Field::Day => "day",
            Field::Hour => "hour",
        }
    }

    fn from_name(name: &[u8]) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name().as_bytes() == name)
    }

    fn is_date(self) -> bool {
        matches!(self, Field::Year | Field::Month | Field::Day | Field::Hour)
    }

    /// The most bytes the field renders as.
    fn width_max(self) -> usize {
        match self {
            Field::Year => 4,
            Field::Month | Field::Day | Field::Hour => 2,
            _ => COMPONENT_BYTES_MAX.max(MISSING_COMPONENT.len()),
        }
    }
}

/// Where `{year}`..`{hour}` come from (`date_from = "..."`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DateFrom {
    #[default]
    Received,
    Message,
}

impl DateFrom {
    pub fn from_name(name: &str) -> Option<DateFrom> {
        match name {
            "received" => Some(DateFrom::Received),
            "message" => Some(DateFrom::Message),
            _ => None,
        }
    }
}

/// Why a template was refused at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    UnknownField(String),
    /// A `{` without its `}`.
    Unclosed,
    /// A `}` that closes nothing (write `}}` for a literal one).
    StrayClose,
    /// A `..` component: the path could leave the destination's folder.
    ParentDir,
    Nul,
    /// Ends with `/`: no file name.
    NoFileName,
    /// The longest rendering is over [`PATH_BYTES_MAX`].
    TooLong(usize),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::UnknownField(name) => {
                let valid: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
                write!(
                    f,
                    "unknown field {{{name}}}; valid: {} (and {{{{ }}}} for literal braces)",
                    valid.join(", ")
                )
            }
            TemplateError::Unclosed => f.write_str("a { without its closing }"),
            TemplateError::StrayClose => f.write_str("a } that closes nothing (}} is a literal })"),
            TemplateError::ParentDir => {
                f.write_str("a .. component could leave the destination's folder")
            }
            TemplateError::Nul => f.write_str("a NUL byte cannot be in a path"),
            TemplateError::NoFileName => f.write_str("ends with /: no file name"),
            TemplateError::TooLong(n) => write!(
                f,
                "its longest rendering is {n} bytes, over the {PATH_BYTES_MAX}-byte path limit"
            ),
        }
    }
}

impl std::error::Error for TemplateError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Field(Field),
}

/// A parsed path template (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pieces: Vec<Piece>,
    root: PathBuf,
}

/// What one message gives a template.
pub struct Values<'a> {
    pub msg: &'a Message<'a>,
    pub source: &'a str,
    pub peer: IpAddr,
    pub received_unix_ns: u64,
    pub date_from: DateFrom,
}

/// What [`PathTemplate::render`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// Field values that had to be changed to be safe (escaped, empty or cut).
    pub sanitized: u32,
    /// Fields the message did not have ([`MISSING_COMPONENT`]).
    pub missing: u32,
}

impl PathTemplate {
    /// Parses `path`; `Ok(None)` when it has no field (a plain file).
    pub fn parse(path: &Path) -> Result<Option<PathTemplate>, TemplateError> {
        use std::os::unix::ffi::OsStrExt;
        let text = path.as_os_str().as_bytes();
        if text.contains(&0) {
            return Err(TemplateError::Nul);
        }
        if text.ends_with(b"/") {
            return Err(TemplateError::NoFileName);
        }
        let mut pieces = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < text.len() {
            match (text[i], text.get(i + 1)) {
                (b'{', Some(b'{')) | (b'}', Some(b'}')) => {
                    lit.push(text[i]);
                    i += 2;
                }
                (b'{', _) => {
                    let len = text[i + 1..]
                        .iter()
                        .position(|&b| b == b'}')
                        .ok_or(TemplateError::Unclosed)?;
                    let name = &text[i + 1..i + 1 + len];
                    let field = Field::from_name(name).ok_or_else(|| {
                        TemplateError::UnknownField(String::from_utf8_lossy(name).into_owned())
                    })?;
                    if !lit.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Field(field));
                    i += len + 2;
                }
                (b'}', _) => return Err(TemplateError::StrayClose),
                (b, _) => {
                    lit.push(b);
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Literal(lit));
        }
        let Some(first_field) = pieces.iter().position(|p| matches!(p, Piece::Field(_))) else {
            return Ok(None);
        };
        let t = PathTemplate {
            root: root_of(&pieces[..first_field]),
            pieces,
        };
        // Components made of literals only are the ones that can be `..`:
        // a field never renders empty, `.` or with a leading `.`.
        let mut longest = 0;
        for c in t.components_max() {
            if c.literal_only && c.text == b".." {
                return Err(TemplateError::ParentDir);
            }
            longest += c.bytes_max.min(NAME_BYTES_MAX) + 1;
        }
        if longest - 1 > PATH_BYTES_MAX {
            return Err(TemplateError::TooLong(longest - 1));
        }
        Ok(Some(t))
    }

    /// The folder every rendering stays under: the text before the first
    /// field, up to its last `/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether rendering reads the parsed message (else the frame need not
    /// be parsed).
    pub fn reads_message(&self, date_from: DateFrom) -> bool {
        self.fields().any(|f| match f {
            Field::Host | Field::App | Field::Facility | Field::Severity => true,
            Field::Source | Field::Peer => false,
            f => f.is_date() && date_from == DateFrom::Message,
        })
    }

    fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Field(f) => Some(*f),
            Piece::Literal(_) => None,
        })
    }

    /// Appends the path for `v` to `out` (cleared first).
    pub fn render(&self, out: &mut Vec<u8>, v: &Values<'_>) -> Rendered {
        out.clear();
        let mut r = Rendered::default();
        let date = if self.fields().any(Field::is_date) {
            date_of(v)
        } else {
            utc_fields(0)
        };
        let mut component_start = 0;
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => {
                    for &b in text {
                        if b == b'/' {
                            cap_component(out, component_start);
                            component_start = out.len() + 1;
                        }
                        out.push(b);
                    }
                }
                Piece::Field(f) => push_field(out, *f, v, &date, &mut r),
            }
        }
        cap_component(out, component_start);
        r
    }

    /// Per component of the rendered path: its literal text (fields left
    /// out) and its longest rendering.
    fn components_max(&self) -> Vec<ComponentMax> {
        let mut out = vec![ComponentMax::default()];
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => {
                    for &b in text {
                        if b == b'/' {
                            out.push(ComponentMax::default());
                            continue;
                        }
                        if let Some(c) = out.last_mut() {
                            c.text.push(b);
                            c.bytes_max += 1;
                        }
                    }
                }
                Piece::Field(f) => {
                    if let Some(c) = out.last_mut() {
                        c.literal_only = false;
                        c.bytes_max += f.width_max();
                    }
                }
            }
        }
        out
    }
}

struct ComponentMax {
    text: Vec<u8>,
    literal_only: bool,
    bytes_max: usize,
}

impl Default for ComponentMax {
    fn default() -> Self {
        ComponentMax {
            text: Vec::new(),
            literal_only: true,
            bytes_max: 0,
        }
    }
}

fn root_of(before_first_field: &[Piece]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut text = Vec::new();
    for p in before_first_field {
        if let Piece::Literal(l) = p {
            text.extend_from_slice(l);
        }
    }
    let cut = text.iter().rposition(|&b| b == b'/').unwrap_or(0);
    text.truncate(cut);
    PathBuf::from(std::ffi::OsStr::from_bytes(&text))
}

/// Cuts the component that starts at `start` (and runs to the end of
/// `out`) to [`NAME_BYTES_MAX`], keeping `%XX` escapes whole and ending it
/// with `~` and the hash of the whole component.
fn cap_component(out: &mut Vec<u8>, start: usize) {
    if out.len() - start <= NAME_BYTES_MAX {
        return;
    }
    let hash = fnv1a64(&out[start..]);
    let mut cut = start + NAME_BYTES_MAX - HASH_SUFFIX_BYTES;
    if out[cut - 1] == b'%' {
        cut -= 1;
    } else if out[cut - 2] == b'%' {
        cut -= 2;
    }
    out.truncate(cut);
    let _ = write!(out, "~{hash:016x}");
}

fn push_field(out: &mut Vec<u8>, f: Field, v: &Values<'_>, date: &DateTime, r: &mut Rendered) {
    let mut value = |out: &mut Vec<u8>, bytes: Option<&[u8]>| match bytes {
        Some(b) => {
            if push_component(out, b).changed {
                r.sanitized += 1;
            }
        }
        None => {
            r.missing += 1;
            out.extend_from_slice(MISSING_COMPONENT);
        }
    };
    let pri = v.msg.pri;
    match f {
        Field::Host => value(out, v.msg.host),
        Field::App => value(out, v.msg.app),
        Field::Facility => match pri {
            Some(p) => match p.facility_name() {
                Some(name) => value(out, Some(name.as_bytes())),
                None => {
                    let _ = write!(out, "{}", p.facility());
                }
            },
            None => value(out, None),
        },
        Field::Severity => value(out, pri.map(|p| p.severity().name().as_bytes())),
        Field::Source => value(out, Some(v.source.as_bytes())),
        Field::Peer => {
            let mut buf = [0u8; 64];
            let mut w = &mut buf[..];
            let len = match write!(w, "{}", v.peer) {
                Ok(()) => 64 - w.len(),
                Err(_) => 0,
            };
            value(out, Some(&buf[..len]));
        }
        Field::Year => {
            let _ = write!(out, "{:04}", date.year.unwrap_or(0));
        }
        Field::Month => {
            let _ = write!(out, "{:02}", date.month);
        }
        Field::Day => {
            let _ = write!(out, "{:02}", date.day);
        }
        Field::Hour => {
            let _ = write!(out, "{:02}", date.hour);
        }
    }
}

/// The date the template's date fields show (see the module doc).
fn date_of(v: &Values<'_>) -> DateTime {
    let received = utc_fields(v.received_unix_ns);
    if v.date_from == DateFrom::Received {
        return received;
    }
    let Some((ts, mut dt)) = v.msg.timestamp.and_then(|ts| Some((ts, ts.fields()?))) else {
        return received;
    };
    let received_year = received.year.unwrap_or(1970);
    if dt.year.is_none() || ts.kind == TimestampKind::Bsd {
        dt.year = Some(match (dt.month, received.month) {
            (12, 1) => received_year.saturating_sub(1),
            (1, 12) => received_year.saturating_add(1),
            _ => received_year,
        });
    }
    match dt.offset_minutes {
        Some(offset) if offset != 0 => to_utc(&dt, offset).unwrap_or(dt),
        _ => dt,
    }
}

/// `dt`, sent with `offset_minutes` east of UTC, as UTC fields; `None`
/// before 1970 (kept as sent then).
fn to_utc(dt: &DateTime, offset_minutes: i16) -> Option<DateTime> {
    let days = days_from_civil(i64::from(dt.year?), dt.month, dt.day);
    let secs = days * 86_400
        + i64::from(dt.hour) * 3_600
        + i64::from(dt.minute) * 60
        + i64::from(dt.second.min(59))
        - i64::from(offset_minutes) * 60;
    let secs = u64::try_from(secs).ok()?;
    Some(utc_fields(secs.checked_mul(1_000_000_000)?))
}

#[cfg(test)]
mod tests {
    use std::path::Component;

    use super::*;
    use crate::parse::{parse, ParseMode};

    /// 2026-11-29T18:30:00Z
    const RECEIVED: u64 = 1_795_977_000_000_000_000;

    fn t(path: &str) -> PathTemplate {
        PathTemplate::parse(Path::new(path))
            .expect("valid")
            .expect("has fields")
    }

    fn render(template: &str, frame: &[u8], date_from: DateFrom) -> (String, Rendered) {
        render_at(template, frame, date_from, RECEIVED)
    }

    fn render_at(
        template: &str,
        frame: &[u8],
        date_from: DateFrom,
        received_unix_ns: u64,
    ) -> (String, Rendered) {
        let msg = parse(frame, ParseMode::Auto);
        let v = Values {
            msg: &msg,
            source: "tls-in",
            peer: "10.0.0.7".parse().expect("ip"),
            received_unix_ns,
            date_from,
        };
        let mut out = Vec::new();
        let r = t(template).render(&mut out, &v);
        (String::from_utf8(out).expect("ASCII"), r)
    }

    /// Normalised lexically, `path` stays under `root`.
    fn stays_under(root: &Path, path: &str) -> bool {
        let path = Path::new(path);
        let Ok(rest) = path.strip_prefix(root) else {
            return false;
        };
        let mut depth = 0i32;
        for c in rest.components() {
            match c {
                Component::Normal(_) => depth += 1,
                Component::ParentDir => return false,
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => return false,
            }
        }
        depth >= 1
    }

    const WEB: &[u8] = b"<38>1 2026-11-28T23:59:59-02:00 web-01 sshd 1 - - login failed";

    #[test]
    fn every_field_renders() {
        let (p, r) = render(
            "/var/log/{host}/{app}/{facility}.{severity}/{source}-{peer}/{year}-{month}-{day}T{hour}.log",
            WEB,
            DateFrom::Received,
        );
        assert_eq!(
            p,
            "/var/log/web-01/sshd/auth.info/tls-in-10.0.0.7/2026-11-29T18.log"
        );
        assert_eq!(r, Rendered::default());
    }

    #[test]
    fn date_from_message_turns_an_offset_into_utc() {
        let (p, _) = render("/l/{year}-{month}-{day}/{hour}", WEB, DateFrom::Message);
        assert_eq!(p, "/l/2026-11-29/01", "23:59:59-02:00 is 01:59:59Z");
        // No zone: the sender's wall clock as it is.
        let (p, _) = render(
            "/l/{year}-{month}-{day}/{hour}",
            b"<13>1 2025-03-04T05:06:07 h a - - - x",
            DateFrom::Message,
        );
        assert_eq!(p, "/l/2025-03-04/05");
    }

    #[test]
    fn a_bsd_stamp_takes_the_receive_year_across_new_year() {
        let dec = b"<13>Dec 31 23:59:58 h a: x";
        let jan = b"<13>Jan  1 00:00:01 h a: x";
        // Received 2027-01-01T00:00:05Z.
        let new_year = 1_798_761_605_000_000_000;
        let tpl = "/l/{year}-{month}-{day}";
        assert_eq!(
            render_at(tpl, dec, DateFrom::Message, new_year).0,
            "/l/2026-12-31"
        );
        assert_eq!(
            render_at(tpl, jan, DateFrom::Message, new_year).0,
            "/l/2027-01-01"
        );
        // Received 2026-12-31: a January stamp is next year's.
        let eve = 1_798_675_200_000_000_000;
        assert_eq!(
            render_at(tpl, jan, DateFrom::Message, eve).0,
            "/l/2027-01-01"
        );
    }

    #[test]
    fn no_timestamp_or_an_impossible_one_falls_back_to_the_receive_time() {
        for frame in [
            &b"<13>1 - h a - - - x"[..],
            b"<13>1 2026-13-01T00:00:00Z h a - - - x",
            b"garbage",
        ] {
            let (p, _) = render("/l/{year}{month}{day}", frame, DateFrom::Message);
            assert_eq!(p, "/l/20261129", "{frame:?}");
        }
    }

    #[test]
    fn missing_fields_go_to_unknown_and_are_counted() {
        let (p, r) = render(
            "/l/{host}/{app}-{facility}-{severity}",
            b"no pri",
            DateFrom::Received,
        );
        assert_eq!(p, "/l/@unknown/@unknown-@unknown-@unknown");
        assert_eq!(r.missing, 4);
        let (p, _) = render("/l/{host}.log", b"<13>1 - - - - - - x", DateFrom::Received);
        assert_eq!(p, "/l/@unknown.log", "NILVALUE host");
        // Out-of-range PRI: no facility name, the number.
        let (p, _) = render("/l/{facility}", b"<200>1 - h a - - - x", DateFrom::Received);
        assert_eq!(p, "/l/25");
    }

    #[test]
    fn hostile_values_stay_under_the_root_and_are_counted() {
        let tpl = "/srv/logs/{host}/{app}.log";
        let root = t(tpl).root().to_path_buf();
        assert_eq!(root, Path::new("/srv/logs"));
        let long = "h".repeat(5_000);
        for host in [
            "../../etc/passwd",
            ".",
            "..",
            "a/b",
            "/",
            "a\0b",
            long.as_str(),
        ] {
            let frame = format!("<13>1 - {host} ../x - - - m");
            let (p, r) = render(tpl, frame.as_bytes(), DateFrom::Received);
            assert!(stays_under(&root, &p), "{host:?} -> {p}");
            assert_eq!(Path::new(&p).components().count(), 5, "{p}");
            assert_eq!(r.sanitized, 2, "{host:?}");
        }
    }

    #[test]
    fn three_long_values_in_one_component_are_cut_to_name_max() {
        let long = "x".repeat(400);
        let frame = format!("<13>1 - {long} {long} - - - m");
        let (p, r) = render(
            "/l/{host}-{app}-{source}.log",
            frame.as_bytes(),
            DateFrom::Received,
        );
        let name = Path::new(&p).file_name().expect("name").len();
        assert_eq!(name, NAME_BYTES_MAX);
        assert_eq!(r.sanitized, 2);
        let other = format!("<13>1 - {long} {long}y - - - m");
        let (q, _) = render(
            "/l/{host}-{app}-{source}.log",
            other.as_bytes(),
            DateFrom::Received,
        );
        assert_ne!(p, q, "cut names stay apart by their hash");
        // An escape is never split by the cut.
        let slashes = "/".repeat(200);
        let frame = format!("<13>1 - a{slashes} b{slashes} - - - m");
        let (p, _) = render("/l/{host}{app}", frame.as_bytes(), DateFrom::Received);
        let name = Path::new(&p)
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let body = name.rsplit_once('~').expect("hashed").0;
        assert!(body.ends_with("%2F"), "{body}");
    }

    #[test]
    fn parse_refuses_with_a_reason() {
        let err = |p: &str| PathTemplate::parse(Path::new(p)).expect_err(p);
        assert_eq!(
            err("/l/{hostname}.log"),
            TemplateError::UnknownField("hostname".into())
        );
        assert!(err("/l/{nope}").to_string().contains("valid: host, app"));
        assert_eq!(err("/l/{host"), TemplateError::Unclosed);
        assert_eq!(err("/l/host}"), TemplateError::StrayClose);
        assert_eq!(err("/l/../{host}"), TemplateError::ParentDir);
        assert_eq!(err("/l/{host}/../x"), TemplateError::ParentDir);
        assert_eq!(err("/l/{host}/"), TemplateError::NoFileName);
        assert_eq!(err("/l/{host}\0"), TemplateError::Nul);
        let deep = "/{host}".repeat(40);
        assert!(matches!(err(&deep), TemplateError::TooLong(_)));
        assert_eq!(err("/l/{}"), TemplateError::UnknownField(String::new()));
    }

    #[test]
    fn a_path_without_fields_is_no_template_and_braces_escape() {
        assert_eq!(PathTemplate::parse(Path::new("/l/a..b.log")), Ok(None));
        assert_eq!(PathTemplate::parse(Path::new("/l/{{x}}.log")), Ok(None));
        let (p, _) = render("/l/{{{host}}}.log", WEB, DateFrom::Received);
        assert_eq!(p, "/l/{web-01}.log");
        // `..` inside a name is not a parent folder.
        assert!(PathTemplate::parse(Path::new("/l/{host}..log")).is_ok());
    }

    #[test]
    fn reads_message_only_for_message_fields() {
        assert!(!t("/l/{source}/{peer}-{year}").reads_message(DateFrom::Received));
        assert!(t("/l/{source}/{peer}-{year}").reads_message(DateFrom::Message));
        assert!(t("/l/{app}").reads_message(DateFrom::Received));
    }

    #[test]
    fn ipv6_peers_are_escaped() {
        let msg = parse(b"x", ParseMode::None);
        let v = Values {
            msg: &msg,
            source: "s",
            peer: "::1".parse().expect("ip"),
            received_unix_ns: RECEIVED,
            date_from: DateFrom::Received,
        };
        let mut out = Vec::new();
        let r = t("/l/{peer}").render(&mut out, &v);
        assert_eq!((out.as_slice(), r.sanitized), (&b"/l/%3A%3A1"[..], 1));
    }
}
