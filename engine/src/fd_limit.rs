//! The open-file limit against what the config may open. Each connection is
//! a file descriptor; past the soft `RLIMIT_NOFILE`, accept fails with
//! EMFILE. At start-up the soft limit is raised to the hard one (what
//! systemd's LimitNOFILE or `ulimit -Hn` allows), and a limit still below
//! the config's needs is reported with the numbers.
//!
//! The one owner of reading and raising `RLIMIT_NOFILE` in the workspace:
//! the engine raises its soft limit to the hard one at start-up
//! ([`raise`]); `loadgen send --hold-idle` and `bench idle` go through
//! [`raise_to`], past the hard limit when the process is privileged; bench
//! and tuning read it with [`current`].

use std::io;

/// Descriptors besides connections, listeners and output files: io_uring
/// and eventfds, the stats endpoint, std streams, and room for a reload's
/// file reads.
pub const FD_MARGIN: u64 = 64;

/// What the config may hold open at once: every source's `max_connections`,
/// the other descriptors it holds ([`config_needs`]), and the margin.
pub fn needed(max_connections_total: u64, listeners_and_files: u64) -> u64 {
    max_connections_total + listeners_and_files + FD_MARGIN
}

/// What a config may hold open besides the margin: (every source's
/// `max_connections` summed, one listener per source per shard plus the
/// output files: each writer opens every file destination of its
/// destination group once, and up to `max_open_files` of a templated one).
pub fn config_needs(config: &crate::config::Config, shards: usize) -> (u64, u64) {
    let max_connections_total = config
        .sources
        .iter()
        .map(|s| s.max_connections as u64)
        .sum();
    let files: u64 = config
        .destination_groups()
        .iter()
        .map(|g| {
            let per_writer: u64 = g
                .destinations
                .iter()
                .filter_map(|&d| config.destinations.get(d))
                .filter(|d| d.kind == crate::config::DestinationType::File)
                .map(|d| match d.template() {
                    Some(_) => d.max_open_files as u64,
                    None => 1,
                })
                .sum();
            per_writer * config.writers_of(g) as u64
        })
        .sum();
    let listeners = (config.sources.len() * shards) as u64;
    (max_connections_total, listeners + files)
}

/// The soft and hard `RLIMIT_NOFILE` of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nofile {
    pub soft: u64,
    pub hard: u64,
}

/// The outcome of [`raise`] and [`raise_to`], for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// The two system calls [`raise_to`] makes, behind a trait so that its
/// steps (privileged or not, already high enough or not) are tested from
/// memory without changing the test process's own limit.
trait Rlimits {
    fn get(&mut self) -> io::Result<Nofile>;
    fn set(&mut self, to: Nofile) -> io::Result<()>;
}

/// This process's limit.
struct Process;

impl Rlimits for Process {
    fn get(&mut self) -> io::Result<Nofile> {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into our local.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Nofile {
            soft: lim.rlim_cur,
            hard: lim.rlim_max,
        })
    }

    fn set(&mut self, to: Nofile) -> io::Result<()> {
        let lim = libc::rlimit {
            rlim_cur: to.soft,
            rlim_max: to.hard,
        };
        // SAFETY: setrlimit reads one rlimit from our local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// This process's soft and hard limit now.
pub fn current() -> io::Result<Nofile> {
    Process.get()
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (what the engine does
/// at start-up: never past what the administrator allowed).
pub fn raise() -> io::Result<FdLimit> {
    raise_to(0)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, and both past the hard
/// limit up to `need` when the process may (CAP_SYS_RESOURCE, e.g. root;
/// the kernel caps it at `fs.nr_open`). Children inherit the result. The
/// caller compares `soft` with what it needs and reports a shortfall.
pub fn raise_to(need: u64) -> io::Result<FdLimit> {
    raise_with(&mut Process, need)
}

fn raise_with(sys: &mut impl Rlimits, need: u64) -> io::Result<FdLimit> {
    let before = sys.get()?;
    let raised = |to: Nofile| FdLimit {
        soft_before: before.soft,
        soft: to.soft,
        hard: to.hard,
    };
    // Past the hard limit: refused (EPERM) without privilege, or EINVAL
    // past `fs.nr_open`; the hard limit then stays, and is used below.
    let past_hard = Nofile {
        soft: need,
        hard: need,
    };
    if before.hard < need && sys.set(past_hard).is_ok() {
        return Ok(raised(past_hard));
    }
    let to_hard = Nofile {
        soft: before.hard,
        hard: before.hard,
    };
    if before.soft < before.hard && sys.set(to_hard).is_ok() {
        return Ok(raised(to_hard));
    }
    Ok(raised(before))
}

/// The warning to log when `limit` is below `needed`, if it is.
pub fn shortfall(limit: FdLimit, needed: u64, max_connections_total: u64) -> Option<String> {
    (limit.soft < needed).then(|| {
        format!(
            "open file limit {} (hard {}) is below what the config may need: {} \
             (max_connections over all sources {max_connections_total} + listeners + {FD_MARGIN}); \
             past it, new connections wait in the listen backlog and accepts back off \
             (ringest_accept_errors_total{{reason=\"emfile\"}}). Raise LimitNOFILE (systemd) \
             or `ulimit -n`, or lower max_connections",
            limit.soft, limit.hard, needed
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortfall_names_the_numbers_and_is_none_when_enough() {
        let lim = FdLimit {
            soft_before: 256,
            soft: 256,
            hard: 256,
        };
        let need = needed(10_000, 4);
        assert_eq!(need, 10_068);
        let w = shortfall(lim, need, 10_000).expect("short");
        assert!(
            w.contains("256") && w.contains("10068") && w.contains("10000"),
            "{w}"
        );
        let big = FdLimit {
            soft_before: 1024,
            soft: 1 << 20,
            hard: 1 << 20,
        };
        assert_eq!(shortfall(big, need, 10_000), None);
    }

    /// A limit in memory: setting it past `max_hard` fails as the kernel
    /// does without CAP_SYS_RESOURCE (or past `fs.nr_open`).
    struct Fake {
        now: Nofile,
        max_hard: u64,
        sets: Vec<Nofile>,
    }

    impl Rlimits for Fake {
        fn get(&mut self) -> io::Result<Nofile> {
            Ok(self.now)
        }

        fn set(&mut self, to: Nofile) -> io::Result<()> {
            self.sets.push(to);
            if to.soft > to.hard || to.hard > self.max_hard {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            self.now = to;
            Ok(())
        }
    }

    fn fake(soft: u64, hard: u64, max_hard: u64) -> Fake {
        Fake {
            now: Nofile { soft, hard },
            max_hard,
            sets: Vec::new(),
        }
    }

    #[test]
    fn unprivileged_need_past_the_hard_limit_gets_the_hard_limit() {
        let mut f = fake(1024, 4096, 4096);
        let got = raise_with(&mut f, 100_064).expect("raise");
        assert_eq!(
            got,
            FdLimit {
                soft_before: 1024,
                soft: 4096,
                hard: 4096
            }
        );
        assert_eq!(
            f.now,
            Nofile {
                soft: 4096,
                hard: 4096
            }
        );
        assert_eq!(
            f.sets.len(),
            2,
            "tried past the hard limit, then the hard limit"
        );
    }

    #[test]
    fn privileged_need_past_the_hard_limit_raises_both() {
        let mut f = fake(1024, 4096, 1 << 20);
        let got = raise_with(&mut f, 100_064).expect("raise");
        assert_eq!(
            (got.soft_before, got.soft, got.hard),
            (1024, 100_064, 100_064)
        );
        assert_eq!(
            f.now,
            Nofile {
                soft: 100_064,
                hard: 100_064
            }
        );
    }

    #[test]
    fn need_below_the_hard_limit_raises_soft_only_to_the_hard_limit() {
        let mut f = fake(1024, 1 << 19, 1 << 20);
        let got = raise_with(&mut f, 10_000).expect("raise");
        assert_eq!(
            (got.soft, got.hard),
            (1 << 19, 1 << 19),
            "the hard limit is not lowered"
        );
        let mut f = fake(1 << 19, 1 << 19, 1 << 20);
        let got = raise_with(&mut f, 0).expect("raise");
        assert_eq!(got.soft, 1 << 19);
        assert!(f.sets.is_empty(), "nothing to change");
    }

    #[test]
    fn raise_sets_soft_to_hard() {
        let lim = raise().expect("getrlimit");
        assert_eq!(lim.soft, lim.hard);
        assert!(lim.soft >= lim.soft_before);
    }
}
