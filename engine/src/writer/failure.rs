//! Why a destination failed, and how the writer lives through it.
//!
//! [`WriteFailure`] is the typed reason of a failed write, fsync or open: its
//! `Display` is the log text and its [`label`](WriteFailure::label) the
//! metric label, so the two always agree.
//!
//! [`Health`] follows one destination (or one reopen) from its first failure
//! to its first success, without IO or clocks of its own: the writer passes
//! `now` in and gets back whether to log and how long to wait before the
//! next try. A full disk is one log line when it starts and one when it ends,
//! never one per retry; the counter counts every failed call.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFailure {
    /// ENOSPC: the file system is full.
    NoSpace,
    /// EDQUOT: the owner's disk quota is used up.
    Quota,
    /// EIO: the device reported an error.
    Io,
    /// EROFS: the file system is (or was remounted) read-only.
    ReadOnly,
    /// EFBIG: the file reached the largest size allowed.
    FileTooBig,
    /// EACCES, EPERM: an open was refused.
    PermissionDenied,
    /// The call wrote nothing and reported no error.
    WriteZero,
    /// Any other errno (0 when the error had none).
    Other(i32),
}

impl WriteFailure {
    pub fn classify(e: &io::Error) -> WriteFailure {
        use WriteFailure as F;
        match e.raw_os_error() {
            Some(libc::ENOSPC) => F::NoSpace,
            Some(libc::EDQUOT) => F::Quota,
            Some(libc::EIO) => F::Io,
            Some(libc::EROFS) => F::ReadOnly,
            Some(libc::EFBIG) => F::FileTooBig,
            Some(libc::EACCES) | Some(libc::EPERM) => F::PermissionDenied,
            Some(errno) => F::Other(errno),
            None if e.kind() == io::ErrorKind::WriteZero => F::WriteZero,
            None => F::Other(0),
        }
    }

    /// Stable snake_case label for the error counters.
    pub fn label(&self) -> &'static str {
        use WriteFailure as F;
        match self {
            F::NoSpace => "no_space",
            F::Quota => "quota",
            F::Io => "io",
            F::ReadOnly => "read_only",
            F::FileTooBig => "file_too_big",
            F::PermissionDenied => "permission_denied",
            F::WriteZero => "write_zero",
            F::Other(_) => "other",
        }
    }

    /// What an operator can do about it.
    pub fn hint(&self) -> &'static str {
        use WriteFailure as F;
        match self {
            F::NoSpace | F::Quota => "free space; writing resumes by itself",
            F::Io | F::ReadOnly => "the disk reports errors (see dmesg)",
            F::FileTooBig => "rotate the file",
            F::PermissionDenied => "check the owner and mode of the file and its folder",
            F::WriteZero | F::Other(_) => "retrying",
        }
    }
}

impl fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use WriteFailure as F;
        match self {
            F::NoSpace => f.write_str("no space left on device"),
            F::Quota => f.write_str("disk quota exceeded"),
            F::Io => f.write_str("input/output error"),
            F::ReadOnly => f.write_str("read-only file system"),
            F::FileTooBig => f.write_str("file too large"),
            F::PermissionDenied => f.write_str("permission denied"),
            F::WriteZero => f.write_str("write returned 0"),
            F::Other(0) => f.write_str("unknown error"),
            F::Other(errno) => write!(f, "{}", io::Error::from_raw_os_error(*errno)),
        }
    }
}

/// The wait between tries doubles from `min` to `max`: a hiccup costs
/// milliseconds, a full disk is tried once per `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

/// One failing episode, from the first failure to the next success.
#[derive(Debug, Clone)]
pub struct Outage<R = WriteFailure> {
    pub since: Instant,
    pub reason: R,
    pub failures: u64,
    wait: Duration,
}

/// What the caller does after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    /// First failure of an outage, or a new reason: worth one log line.
    pub log: bool,
    /// How long to wait before the next try.
    pub retry_in: Duration,
}

#[derive(Debug, Clone)]
pub struct Health<R = WriteFailure> {
    backoff: Backoff,
    outage: Option<Outage<R>>,
}

/// Any typed reason (a write's, a Kafka delivery's) follows the same outage.
impl<R: Copy + PartialEq> Health<R> {
    pub fn new(backoff: Backoff) -> Health<R> {
        assert!(backoff.min > Duration::ZERO && backoff.min <= backoff.max);
        Health {
            backoff,
            outage: None,
        }
    }

    pub fn outage(&self) -> Option<&Outage<R>> {
        self.outage.as_ref()
    }

    pub fn is_failing(&self) -> bool {
        self.outage.is_some()
    }

    pub fn failed(&mut self, now: Instant, reason: R) -> Failed {
        match &mut self.outage {
            None => {
                self.outage = Some(Outage {
                    since: now,
                    reason,
                    failures: 1,
                    wait: self.backoff.min,
                });
                Failed {
                    log: true,
                    retry_in: self.backoff.min,
                }
            }
            Some(o) => {
                let changed = o.reason != reason;
                o.reason = reason;
                o.failures += 1;
                o.wait = (o.wait * 2).min(self.backoff.max);
                Failed {
                    log: changed,
                    retry_in: o.wait,
                }
            }
        }
    }

    /// Ends the outage, if any, and returns it for its one "resumed" line.
    pub fn succeeded(&mut self) -> Option<Outage<R>> {
        self.outage.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(1000),
        })
    }

    #[test]
    fn full_disk_logs_once_per_outage_not_per_retry_and_backs_off_to_the_cap() {
        let t0 = Instant::now();
        let mut h = health();
        let first = h.failed(t0, WriteFailure::NoSpace);
        assert_eq!(
            first,
            Failed {
                log: true,
                retry_in: Duration::from_millis(10)
            }
        );
        assert!(h.is_failing(), "an outage began");
        let mut waits = Vec::new();
        for _ in 0..10 {
            let f = h.failed(t0, WriteFailure::NoSpace);
            assert!(!f.log, "a retry that fails the same way is not logged");
            assert!(h.is_failing(), "still in the outage");
            waits.push(f.retry_in.as_millis());
        }
        assert_eq!(
            waits,
            [20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000],
            "doubles, then stays at the cap"
        );
        let ended = h.succeeded().expect("an outage ended");
        assert_eq!((ended.failures, ended.reason), (11, WriteFailure::NoSpace));
        assert!(!h.is_failing());
        assert!(h.succeeded().is_none(), "a second success ends nothing");
        assert!(
            h.failed(t0, WriteFailure::NoSpace).log,
            "a new outage logs again"
        );
    }

    #[test]
    fn a_new_reason_in_the_same_outage_is_logged() {
        let t0 = Instant::now();
        let mut h = health();
        assert!(h.failed(t0, WriteFailure::NoSpace).log);
        assert!(h.failed(t0, WriteFailure::Io).log);
        assert!(!h.failed(t0, WriteFailure::Io).log);
    }

    #[test]
    fn errno_maps_to_reason_label_and_text() {
        let cases = [
            (libc::ENOSPC, "no_space", "no space left on device"),
            (libc::EIO, "io", "input/output error"),
            (libc::EDQUOT, "quota", "disk quota exceeded"),
            (libc::EROFS, "read_only", "read-only file system"),
            (libc::EACCES, "permission_denied", "permission denied"),
        ];
        for (errno, label, text) in cases {
            let f = WriteFailure::classify(&io::Error::from_raw_os_error(errno));
            assert_eq!((f.label(), f.to_string().as_str()), (label, text));
        }
        let zero = io::Error::new(io::ErrorKind::WriteZero, "0");
        assert_eq!(WriteFailure::classify(&zero), WriteFailure::WriteZero);
        let eisdir = WriteFailure::classify(&io::Error::from_raw_os_error(libc::EISDIR));
        assert_eq!(eisdir.label(), "other");
    }
}
