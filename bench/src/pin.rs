//! Where a pinned scenario's processes run (`pin = true`): loadgen on the
//! first CPUs, the server on the last ones, apart where the machine has
//! enough CPUs, and overlapping only as much as it must. Pure, so the plan
//! for any CPU count is tested without the machine.

/// `taskset -c` CPU lists for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub server: String,
    pub loadgen: String,
    /// The server and loadgen share no CPU.
    pub apart: bool,
}

impl Plan {
    pub fn describe(&self) -> String {
        format!(
            "pinned: server on CPU {}, loadgen on CPU {}{}",
            self.server,
            self.loadgen,
            if self.apart {
                ""
            } else {
                " (shared: too few CPUs to keep them apart)"
            }
        )
    }
}

/// The plan for `cpus` online CPUs and a server that wants `server_cpus`
/// of them (ringest: its shards; others: 1). None on a single CPU, where
/// pinning changes nothing.
pub fn plan(cpus: usize, server_cpus: usize) -> Option<Plan> {
    if cpus < 2 {
        return None;
    }
    let want = server_cpus.clamp(1, cpus);
    let list = |a: usize, b: usize| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        }
    };
    let server = list(cpus - want, cpus - 1);
    // loadgen keeps every CPU the server does not use, and CPU 0 at least.
    let loadgen_last = (cpus - want).max(1) - 1;
    Some(Plan {
        server,
        loadgen: list(0, loadgen_last),
        apart: want < cpus,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cpus_one_shard_are_apart() {
        let p = plan(2, 1).unwrap();
        assert_eq!(
            (p.server.as_str(), p.loadgen.as_str(), p.apart),
            ("1", "0", true)
        );
    }

    #[test]
    fn two_cpus_two_shards_share_cpu_zero_with_loadgen() {
        let p = plan(2, 2).unwrap();
        assert_eq!(
            (p.server.as_str(), p.loadgen.as_str(), p.apart),
            ("0-1", "0", false)
        );
        assert!(p.describe().contains("shared"));
    }

    #[test]
    fn more_cpus_keep_the_rest_for_loadgen() {
        let p = plan(8, 2).unwrap();
        assert_eq!(
            (p.server.as_str(), p.loadgen.as_str(), p.apart),
            ("6-7", "0-5", true)
        );
        let p = plan(4, 9).unwrap();
        assert_eq!((p.server.as_str(), p.loadgen.as_str()), ("0-3", "0"));
    }

    #[test]
    fn one_cpu_is_not_pinned() {
        assert_eq!(plan(1, 1), None);
        assert_eq!(plan(0, 1), None);
    }
}
