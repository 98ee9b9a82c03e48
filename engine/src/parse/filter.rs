//! Destination filters on parsed fields, built once from the config and
//! matched per message without allocating.
//!
//! `filter = { severity = "warning", facility = ["auth", "authpriv"],
//! host = ["web-*"], app = ["sshd"] }`:
//! - **All given fields must match**; a field not given matches anything,
//!   so an empty filter takes every message.
//! - **`severity`** is a threshold: that level and every more severe one
//!   (`warning` takes emerg..=warning). Names as syslog-ng prints them, and
//!   its aliases `panic`, `error`, `warn`.
//! - **`facility`** is a list of names; the facilities of a PRI above 191
//!   have no name and match no list.
//! - **`host`, `app`**: lists of globs, any one matching. `*` is any run of
//!   bytes (also empty), `?` exactly one byte, anything else itself,
//!   case-sensitively, over the whole value (GLib's rules, as `trusted_dn`,
//!   but on bytes: a value need not be UTF-8).
//! - **A field the message lacks** (unparsed, NILVALUE, no PRI) matches no
//!   filter that names it: a frame kept whole reaches only destinations
//!   that do not filter on what it is missing.

use std::fmt;

use super::pri::{facility_from_name, Severity};
use super::Message;

/// A filter as the config spells it; [`Filter::new`] checks it.
#[derive(Clone, Copy, Debug, Default)]
pub struct FilterSpec<'a> {
    pub severity: Option<&'a str>,
    pub facility: &'a [&'a str],
    pub host: &'a [&'a str],
    pub app: &'a [&'a str],
}

/// Why a filter from the config is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterError {
    UnknownSeverity(String),
    UnknownFacility(String),
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterError::UnknownSeverity(s) => write!(
                f,
                "unknown severity {s:?} (emerg, alert, crit, err, warning, notice, info, debug)"
            ),
            FilterError::UnknownFacility(s) => write!(
                f,
                "unknown facility {s:?} (kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, security, console, solaris-cron, local0..local7)"
            ),
        }
    }
}

impl std::error::Error for FilterError {}

/// A checked filter; [`Filter::matches`] allocates nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// The least severe level taken.
    severity_max: Option<Severity>,
    /// Bit `n` set: facility `n` is taken.
    facilities: Option<u32>,
    hosts: Vec<Box<[u8]>>,
    apps: Vec<Box<[u8]>>,
}

impl Filter {
    pub fn new(spec: &FilterSpec<'_>) -> Result<Filter, FilterError> {
        let severity_max = spec
            .severity
            .map(|s| Severity::from_name(s).ok_or_else(|| FilterError::UnknownSeverity(s.into())))
            .transpose()?;
        let facilities = if spec.facility.is_empty() {
            None
        } else {
            let mut mask = 0u32;
            for name in spec.facility {
                let n = facility_from_name(name)
                    .ok_or_else(|| FilterError::UnknownFacility((*name).into()))?;
                mask |= 1 << n;
            }
            Some(mask)
        };
        let globs = |list: &[&str]| list.iter().map(|g| g.as_bytes().into()).collect();
        Ok(Filter {
            severity_max,
            facilities,
            hosts: globs(spec.host),
            apps: globs(spec.app),
        })
    }

    /// Does `msg` pass? See the module doc.
    pub fn matches(&self, msg: &Message<'_>) -> bool {
        if let Some(max) = self.severity_max {
            if msg.pri.is_none_or(|p| p.severity() > max) {
                return false;
            }
        }
        if let Some(mask) = self.facilities {
            let facility = msg.pri.map(|p| p.facility());
            if !facility.is_some_and(|f| f < 32 && mask & (1 << f) != 0) {
                return false;
            }
        }
        any_glob(&self.hosts, msg.host) && any_glob(&self.apps, msg.app)
    }
}

/// No globs: anything. Otherwise the value must exist and match one.
fn any_glob(globs: &[Box<[u8]>], value: Option<&[u8]>) -> bool {
    globs.is_empty() || value.is_some_and(|v| globs.iter().any(|g| glob_match(g, v)))
}

/// Does `pattern` match all of `text`? Iterative with one backtrack point
/// (the last `*`): O(pattern × text) at worst, never recursive.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // After the most recent `*`: (pattern index past it, text index it reaches).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last star swallow one more byte and retry.
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    p = sp;
                    t = st + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse, ParseMode};

    fn filter(spec: FilterSpec<'_>) -> Filter {
        Filter::new(&spec).expect("valid filter")
    }

    fn passes(f: &Filter, frame: &[u8]) -> bool {
        f.matches(&parse(frame, ParseMode::Auto))
    }

    #[test]
    fn severity_is_a_threshold_including_more_severe() {
        let f = filter(FilterSpec {
            severity: Some("warning"),
            ..FilterSpec::default()
        });
        assert!(passes(&f, b"<12>1 - h a - - - warning")); // user.warning
        assert!(passes(&f, b"<8>1 - h a - - - emerg"));
        assert!(!passes(&f, b"<13>1 - h a - - - notice"));
        assert!(!passes(&f, b"<15>1 - h a - - - debug"));
        assert!(
            !passes(&f, b"no pri: no severity"),
            "a missing field matches no filter on it"
        );
    }

    #[test]
    fn facility_list_auth_and_authpriv() {
        let f = filter(FilterSpec {
            facility: &["auth", "authpriv"],
            ..FilterSpec::default()
        });
        assert!(passes(&f, b"<38>Oct 11 22:14:15 h sshd: x")); // auth.info
        assert!(passes(&f, b"<86>Oct 11 22:14:15 h sudo: x")); // authpriv.info
        assert!(!passes(&f, b"<30>Oct 11 22:14:15 h cron: x")); // daemon.info
        assert!(
            !passes(&f, b"<999>Oct 11 22:14:15 h x: y"),
            "facility 124 has no name"
        );
    }

    #[test]
    fn all_given_fields_must_match() {
        let f = filter(FilterSpec {
            severity: Some("info"),
            facility: &["auth"],
            host: &["web-*"],
            app: &["sshd", "sudo"],
        });
        assert!(passes(&f, b"<38>Oct 11 22:14:15 web-01 sshd[1]: x"));
        assert!(passes(&f, b"<38>1 - web-02 sudo - - - x"));
        assert!(!passes(&f, b"<38>Oct 11 22:14:15 db-01 sshd[1]: x"), "host");
        assert!(!passes(&f, b"<38>Oct 11 22:14:15 web-01 cron[1]: x"), "app");
        assert!(
            !passes(&f, b"<39>Oct 11 22:14:15 web-01 sshd[1]: x"),
            "severity"
        );
        assert!(
            !passes(&f, b"<30>Oct 11 22:14:15 web-01 sshd[1]: x"),
            "facility"
        );
        assert!(
            !passes(&f, b"<38>Oct 11 22:14:15 sshd[1]: no host"),
            "missing host"
        );
    }

    #[test]
    fn empty_filter_takes_everything_even_unparsed() {
        let f = filter(FilterSpec::default());
        assert!(passes(&f, b"garbage"));
        assert!(passes(&f, b"<13>1 - - - - - -"));
    }

    #[test]
    fn unknown_names_are_refused_with_the_name() {
        let e = Filter::new(&FilterSpec {
            severity: Some("loud"),
            ..FilterSpec::default()
        });
        assert_eq!(e, Err(FilterError::UnknownSeverity("loud".into())));
        let e = Filter::new(&FilterSpec {
            facility: &["auth", "local8"],
            ..FilterSpec::default()
        });
        assert_eq!(e, Err(FilterError::UnknownFacility("local8".into())));
        assert!(e.unwrap_err().to_string().contains("local0..local7"));
    }

    #[test]
    fn glob_semantics_on_bytes() {
        let cases: [(&[u8], &[u8], bool); 12] = [
            (b"*", b"", true),
            (b"", b"", true),
            (b"", b"x", false),
            (b"web-*", b"web-01", true),
            (b"web-*", b"WEB-01", false),
            (b"web-?", b"web-1", true),
            (b"web-?", b"web-12", false),
            (b"?", b"\xff", true),
            (b"a*b*c", b"aXbYc", true),
            (b"a*b*c", b"aXbYcZ", false),
            (b"**x", b"yyx", true),
            (b"*.example.com", b"a.b.example.com", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob_match(pattern, text), want, "{pattern:?} vs {text:?}");
        }
    }

    #[test]
    fn glob_worst_case_is_bounded() {
        let text = vec![b'a'; 4096];
        let mut pattern = b"*a".repeat(20);
        pattern.push(b'b');
        assert!(!glob_match(&pattern, &text));
    }
}
