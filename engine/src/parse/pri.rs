//! PRI: `<` 1*3DIGIT `>`, the value being facility * 8 + severity.
//!
//! - **Out of range is tolerated.** RFC 5424 allows 0..=191; senders emit up
//!   to `<999>`. Such a value is kept: its severity is `value % 8` (always a
//!   real severity) and its facility `value / 8` (24..=124) has no name, so
//!   [`Pri::facility_name`] is `None` and the JSON shows the decimal number.
//! - **Leading zeros** (`<013>`) are accepted, as syslog-ng and rsyslog do.
//! - **Refused:** no digit (`<>`), a non-digit (`<-1>`, `<1a>`), no `>`, or
//!   more than three digits: a value that does not fit the grammar is not a
//!   priority, and inventing one (syslog-ng reads `<>` as kern.emerg) would
//!   make a filter or a route act on a guess.

use super::ParseError;

/// Longest accepted PRIVAL, in digits (RFC 5424 §6.2.1).
const PRI_DIGITS_MAX: usize = 3;

/// Highest PRIVAL with a named facility (local7.debug).
pub const PRI_IN_RANGE_MAX: u16 = 191;

/// Facility names as syslog-ng 3.38 prints them, by facility number.
pub const FACILITY_NAMES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// The facility number for a name from [`FACILITY_NAMES`].
pub fn facility_from_name(name: &str) -> Option<u8> {
    FACILITY_NAMES
        .iter()
        .position(|&n| n == name)
        .map(|i| i as u8)
}

/// RFC 5424 severities, most severe first (a lower number is more severe).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Emerg = 0,
    Alert = 1,
    Crit = 2,
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

impl Severity {
    pub const ALL: [Severity; 8] = [
        Severity::Emerg,
        Severity::Alert,
        Severity::Crit,
        Severity::Err,
        Severity::Warning,
        Severity::Notice,
        Severity::Info,
        Severity::Debug,
    ];

    /// The low three bits of a PRI value.
    pub fn from_code(code: u16) -> Severity {
        Severity::ALL[usize::from(code & 7)]
    }

    /// The name syslog-ng prints (`$PRIORITY`).
    pub fn name(self) -> &'static str {
        match self {
            Severity::Emerg => "emerg",
            Severity::Alert => "alert",
            Severity::Crit => "crit",
            Severity::Err => "err",
            Severity::Warning => "warning",
            Severity::Notice => "notice",
            Severity::Info => "info",
            Severity::Debug => "debug",
        }
    }

    /// A name from [`Severity::name`], or one of the aliases syslog-ng's
    /// `level()` filter accepts (`panic`, `error`, `warn`).
    pub fn from_name(name: &str) -> Option<Severity> {
        let alias = match name {
            "panic" => Some(Severity::Emerg),
            "error" => Some(Severity::Err),
            "warn" => Some(Severity::Warning),
            _ => None,
        };
        alias.or_else(|| Severity::ALL.into_iter().find(|s| s.name() == name))
    }
}

/// A PRI value as sent, 0..=999 (see the module doc for values above 191).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pri(u16);

impl Pri {
    /// `None` above 999, which three digits cannot express.
    pub fn new(value: u16) -> Option<Pri> {
        (value <= 999).then_some(Pri(value))
    }

    pub fn value(self) -> u16 {
        self.0
    }

    /// 0..=23 in range; up to 124 for an out-of-range PRI.
    pub fn facility(self) -> u16 {
        self.0 >> 3
    }

    pub fn severity(self) -> Severity {
        Severity::from_code(self.0)
    }

    pub fn in_range(self) -> bool {
        self.0 <= PRI_IN_RANGE_MAX
    }

    /// `None` for the facilities of an out-of-range PRI.
    pub fn facility_name(self) -> Option<&'static str> {
        FACILITY_NAMES.get(usize::from(self.facility())).copied()
    }
}

/// Reads `<PRI>` at the start of `frame`; returns it and the bytes consumed.
pub(crate) fn parse_pri(frame: &[u8]) -> Result<(Pri, usize), ParseError> {
    if frame.first() != Some(&b'<') {
        return Err(ParseError::NoPri);
    }
    let mut value: u16 = 0;
    let mut digits = 0usize;
    for &b in &frame[1..] {
        match b {
            b'0'..=b'9' if digits < PRI_DIGITS_MAX => {
                value = value * 10 + u16::from(b - b'0');
                digits += 1;
            }
            b'>' if digits > 0 => {
                // Three digits are at most 999, which `new` accepts.
                let pri = Pri::new(value).ok_or(ParseError::BadPri)?;
                return Ok((pri, digits + 2));
            }
            _ => return Err(ParseError::BadPri),
        }
    }
    Err(ParseError::BadPri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pri(s: &str) -> Result<(u16, usize), ParseError> {
        parse_pri(s.as_bytes()).map(|(p, n)| (p.value(), n))
    }

    #[test]
    fn pri_in_range_splits_into_facility_and_severity() {
        let (p, n) = parse_pri(b"<165>1 ").unwrap();
        assert_eq!((p.value(), n), (165, 5));
        assert_eq!(p.facility_name(), Some("local4"));
        assert_eq!(p.severity(), Severity::Notice);
        assert_eq!(pri("<0>x"), Ok((0, 3)));
        assert_eq!(pri("<191>"), Ok((191, 5)));
    }

    #[test]
    fn pri_out_of_range_is_kept_with_a_nameless_facility() {
        let (p, _) = parse_pri(b"<192>x").unwrap();
        assert!(!p.in_range());
        assert_eq!(p.facility(), 24);
        assert_eq!(p.facility_name(), None);
        assert_eq!(p.severity(), Severity::Emerg);
        let (p, _) = parse_pri(b"<999>x").unwrap();
        assert_eq!((p.facility(), p.severity()), (124, Severity::Debug));
    }

    #[test]
    fn pri_leading_zeros_accepted() {
        assert_eq!(pri("<013>x"), Ok((13, 5)));
        assert_eq!(pri("<00>x"), Ok((0, 4)));
    }

    #[test]
    fn pri_malformed_is_refused_not_guessed() {
        for bad in [
            "<>x", "<-1>x", "<1a>x", "<13 x", "<13", "<", "<1234>x", "<0013>x",
        ] {
            assert_eq!(pri(bad), Err(ParseError::BadPri), "{bad:?}");
        }
        assert_eq!(pri("13>x"), Err(ParseError::NoPri));
        assert_eq!(pri(""), Err(ParseError::NoPri));
    }

    #[test]
    fn severity_names_and_aliases() {
        for s in Severity::ALL {
            assert_eq!(Severity::from_name(s.name()), Some(s));
        }
        assert_eq!(Severity::from_name("warn"), Some(Severity::Warning));
        assert_eq!(Severity::from_name("error"), Some(Severity::Err));
        assert_eq!(Severity::from_name("panic"), Some(Severity::Emerg));
        assert_eq!(Severity::from_name("Warning"), None);
        assert_eq!(facility_from_name("authpriv"), Some(10));
        assert_eq!(facility_from_name("local7"), Some(23));
        assert_eq!(facility_from_name("local8"), None);
    }
}
