//! What the host is, read once (the only IO of `check`): limits from
//! getrlimit, sysctls from /proc/sys, the CPU governor and transparent
//! huge pages from /sys, and kTLS from the engine's own probe. A missing
//! file is `None`, reported as unknown, never guessed.

use std::path::Path;

use ringest::ktls::KtlsSupport;

#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub nofile_soft: Option<u64>,
    pub nofile_hard: Option<u64>,
    pub somaxconn: Option<u64>,
    pub tcp_max_syn_backlog: Option<u64>,
    pub rmem_max: Option<u64>,
    pub wmem_max: Option<u64>,
    /// `net.ipv4.ip_local_port_range`: (low, high).
    pub local_port_range: Option<(u64, u64)>,
    pub dirty_ratio: Option<u64>,
    pub dirty_background_ratio: Option<u64>,
    pub dirty_expire_centisecs: Option<u64>,
    /// `kernel.io_uring_disabled`: 0 allowed, 1 root/group only, 2 off.
    pub io_uring_disabled: Option<u64>,
    /// kTLS as the engine's start-up probe sees it.
    pub ktls: Option<KtlsSupport>,
    /// The cpufreq governors in use (none on most VMs).
    pub governors: Vec<String>,
    /// The selected mode of /sys/kernel/mm/transparent_hugepage/enabled.
    pub thp: Option<String>,
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn read_u64(path: &str) -> Option<u64> {
    read_trim(path)?.parse().ok()
}

impl HostFacts {
    pub fn read() -> HostFacts {
        let nofile = ringest::fd_limit::current().ok();
        let local_port_range = read_trim("/proc/sys/net/ipv4/ip_local_port_range").and_then(|s| {
            let mut it = s.split_whitespace().filter_map(|x| x.parse().ok());
            Some((it.next()?, it.next()?))
        });
        let governors = std::fs::read_dir("/sys/devices/system/cpu")
            .map(|d| {
                let mut g: Vec<String> = d
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let p = e.path().join("cpufreq/scaling_governor");
                        Path::new(&p)
                            .exists()
                            .then(|| std::fs::read_to_string(p).ok())
                            .flatten()
                    })
                    .map(|s| s.trim().to_string())
                    .collect();
                g.sort();
                g.dedup();
                g
            })
            .unwrap_or_default();
        let thp = read_trim("/sys/kernel/mm/transparent_hugepage/enabled").and_then(|s| {
            let a = s.find('[')?;
            let b = s[a..].find(']')?;
            Some(s[a + 1..a + b].to_string())
        });
        HostFacts {
            nofile_soft: nofile.map(|l| l.soft),
            nofile_hard: nofile.map(|l| l.hard),
            somaxconn: read_u64("/proc/sys/net/core/somaxconn"),
            tcp_max_syn_backlog: read_u64("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
            rmem_max: read_u64("/proc/sys/net/core/rmem_max"),
            wmem_max: read_u64("/proc/sys/net/core/wmem_max"),
            local_port_range,
            dirty_ratio: read_u64("/proc/sys/vm/dirty_ratio"),
            dirty_background_ratio: read_u64("/proc/sys/vm/dirty_background_ratio"),
            dirty_expire_centisecs: read_u64("/proc/sys/vm/dirty_expire_centisecs"),
            io_uring_disabled: read_u64("/proc/sys/kernel/io_uring_disabled"),
            ktls: Some(KtlsSupport::probe()),
            governors,
            thp,
        }
    }
}
