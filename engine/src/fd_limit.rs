//! The open-file limit against what the config may open. Each connection is
//! a file descriptor; past the soft `RLIMIT_NOFILE`, accept fails with
//! EMFILE. At start-up the soft limit is raised to the hard one (what
//! systemd's LimitNOFILE or `ulimit -Hn` allows), and a limit still below
//! the config's needs is reported with the numbers.

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

/// The outcome of [`raise`], for the start-up log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft RLIMIT_NOFILE to the hard limit.
pub fn raise() -> std::io::Result<FdLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into our local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let soft_before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit from our local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(FdLimit {
        soft_before,
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
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

    #[test]
    fn raise_sets_soft_to_hard() {
        let lim = raise().expect("getrlimit");
        assert_eq!(lim.soft, lim.hard);
        assert!(lim.soft >= lim.soft_before);
    }
}
