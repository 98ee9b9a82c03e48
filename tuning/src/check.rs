//! `tuning check`, sans-IO: each check is a pure function of what the host
//! is ([`HostFacts`]) and what the config asks for ([`Wants`]), so every
//! verdict is unit-tested without touching the machine.

use serde::Serialize;

use crate::facts::HostFacts;
use ringest::config::{Config, Transport};
use ringest::fd_limit;
use ringest::ktls::KtlsMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Worth knowing; nothing fails.
    Info,
    /// Works, but will bite under load.
    Warn,
    /// ringest would fail at this config on this host.
    Fail,
    /// Could not be read here.
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub current: String,
    pub recommended: String,
    pub status: Status,
    /// Why it matters, in one line.
    pub why: String,
    /// The command that changes it (empty when nothing is to change).
    pub fix: String,
}

/// What a config asks of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wants {
    pub max_connections_total: u64,
    /// Listeners and output files (see `fd_limit::config_needs`).
    pub listeners: u64,
    pub listen_backlog_max: u64,
    /// A TLS source has `ktls = "on"`.
    pub ktls_required: bool,
    pub uses_tls: bool,
}

impl Wants {
    /// From a config, or the engine's defaults when there is none.
    pub fn from_config(config: Option<&Config>) -> Wants {
        let Some(c) = config else {
            return Wants {
                max_connections_total: 10_000,
                listeners: cores(),
                listen_backlog_max: 1024,
                ktls_required: false,
                uses_tls: true,
            };
        };
        let tls = c.sources.iter().filter(|s| s.transport == Transport::Tls);
        let (max_connections_total, listeners) = fd_limit::config_needs(c, c.shard_count());
        Wants {
            max_connections_total,
            listeners,
            listen_backlog_max: c
                .sources
                .iter()
                .map(|s| u64::from(s.listen_backlog))
                .max()
                .unwrap_or(0),
            ktls_required: tls.clone().any(|s| s.ktls == KtlsMode::On),
            uses_tls: tls.count() > 0,
        }
    }
}

fn cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "unknown".into(), |v| v.to_string())
}

/// Socket buffer ceiling worth having for large records over real links.
const SOCKET_BUFFER_BYTES_RECOMMENDED: u64 = 4 << 20;
/// A listen backlog that absorbs a reconnect storm of thousands of clients.
const BACKLOG_RECOMMENDED: u64 = 4096;

pub fn run(h: &HostFacts, w: &Wants) -> Vec<Check> {
    vec![
        open_files(h, w),
        somaxconn(h, w),
        syn_backlog(h, w),
        socket_buffers(h),
        port_range(h),
        dirty(h),
        io_uring(h),
        ktls(h, w),
        governor(h),
        thp(h),
    ]
}

/// ringest raises its soft limit to the hard one at start-up, so the hard
/// limit is what counts.
pub fn open_files(h: &HostFacts, w: &Wants) -> Check {
    let needed = fd_limit::needed(w.max_connections_total, w.listeners);
    let (status, current) = match (h.nofile_soft, h.nofile_hard) {
        (Some(s), Some(hard)) => (
            if hard < needed {
                Status::Fail
            } else {
                Status::Ok
            },
            format!("soft {s}, hard {hard}"),
        ),
        _ => (Status::Unknown, "unknown".into()),
    };
    Check {
        name: "open files (RLIMIT_NOFILE)",
        current,
        recommended: format!(
            ">= {needed} (max_connections {} + listeners and output files {} + {})",
            w.max_connections_total,
            w.listeners,
            fd_limit::FD_MARGIN
        ),
        status,
        why: "each connection is a descriptor; past the limit accepts fail (EMFILE) and back off"
            .into(),
        fix: if status == Status::Ok {
            String::new()
        } else {
            format!("systemd: LimitNOFILE={needed} in the unit; shell: ulimit -Hn {needed} && ulimit -n {needed} (limits.conf for logins)")
        },
    }
}

pub fn somaxconn(h: &HostFacts, w: &Wants) -> Check {
    let want = w.listen_backlog_max.max(BACKLOG_RECOMMENDED);
    let status = match h.somaxconn {
        None => Status::Unknown,
        Some(v) if v < w.listen_backlog_max => Status::Warn,
        Some(v) if v < BACKLOG_RECOMMENDED => Status::Info,
        Some(_) => Status::Ok,
    };
    Check {
        name: "net.core.somaxconn",
        current: show(h.somaxconn),
        recommended: format!(">= {want}"),
        status,
        why: "caps every listen backlog (listen_backlog); a reconnect storm overflows a small one"
            .into(),
        fix: fix_sysctl(status, "net.core.somaxconn", want),
    }
}

pub fn syn_backlog(h: &HostFacts, w: &Wants) -> Check {
    let want = w.listen_backlog_max.max(BACKLOG_RECOMMENDED);
    let status = match h.tcp_max_syn_backlog {
        None => Status::Unknown,
        Some(v) if v < w.listen_backlog_max => Status::Warn,
        Some(v) if v < BACKLOG_RECOMMENDED => Status::Info,
        Some(_) => Status::Ok,
    };
    Check {
        name: "net.ipv4.tcp_max_syn_backlog",
        current: show(h.tcp_max_syn_backlog),
        recommended: format!(">= {want}"),
        status,
        why: "half-open connections queued during a reconnect storm".into(),
        fix: fix_sysctl(status, "net.ipv4.tcp_max_syn_backlog", want),
    }
}

pub fn socket_buffers(h: &HostFacts) -> Check {
    let status = match (h.rmem_max, h.wmem_max) {
        (Some(r), Some(w))
            if r >= SOCKET_BUFFER_BYTES_RECOMMENDED && w >= SOCKET_BUFFER_BYTES_RECOMMENDED =>
        {
            Status::Ok
        }
        (Some(_), Some(_)) => Status::Info,
        _ => Status::Unknown,
    };
    Check {
        name: "net.core.rmem_max / wmem_max",
        current: format!("{} / {}", show(h.rmem_max), show(h.wmem_max)),
        recommended: format!(">= {SOCKET_BUFFER_BYTES_RECOMMENDED} each"),
        status,
        why: "the ceiling for socket buffers set explicitly; autotuning (tcp_rmem) is separate"
            .into(),
        fix: if status == Status::Info {
            format!(
                "sysctl -w net.core.rmem_max={SOCKET_BUFFER_BYTES_RECOMMENDED} net.core.wmem_max={SOCKET_BUFFER_BYTES_RECOMMENDED}"
            )
        } else {
            String::new()
        },
    }
}

pub fn port_range(h: &HostFacts) -> Check {
    let (current, status) = match h.local_port_range {
        Some((lo, hi)) => (
            format!("{lo}-{hi} ({} ports)", hi.saturating_sub(lo) + 1),
            Status::Info,
        ),
        None => ("unknown".into(), Status::Unknown),
    };
    Check {
        name: "net.ipv4.ip_local_port_range",
        current,
        recommended: "wide (e.g. 1024-65535) on relays".into(),
        status,
        why: "bounds the outgoing connections a relay can open to one upstream address".into(),
        fix: String::new(),
    }
}

pub fn dirty(h: &HostFacts) -> Check {
    let status = match (h.dirty_ratio, h.dirty_background_ratio) {
        (Some(r), Some(b)) if r > 40 || b > 20 => Status::Warn,
        (Some(_), Some(_)) => Status::Ok,
        _ => Status::Unknown,
    };
    Check {
        name: "vm.dirty_ratio / dirty_background_ratio / dirty_expire_centisecs",
        current: format!(
            "{} / {} / {}",
            show(h.dirty_ratio),
            show(h.dirty_background_ratio),
            show(h.dirty_expire_centisecs)
        ),
        recommended: "<= 40 / <= 20 (or *_bytes in the hundreds of MB)".into(),
        status,
        why: "large dirty thresholds make writeback come in bursts that stall the writer".into(),
        fix: if status == Status::Warn {
            "sysctl -w vm.dirty_background_bytes=268435456 vm.dirty_bytes=1073741824".into()
        } else {
            String::new()
        },
    }
}

pub fn io_uring(h: &HostFacts) -> Check {
    let status = match h.io_uring_disabled {
        Some(0) => Status::Ok,
        Some(_) => Status::Fail,
        // Kernels before 6.6 have no such sysctl: io_uring is allowed.
        None => Status::Ok,
    };
    Check {
        name: "kernel.io_uring_disabled",
        current: h
            .io_uring_disabled
            .map_or_else(|| "absent (allowed)".into(), |v| v.to_string()),
        recommended: "0".into(),
        status,
        why: "every shard runs on io_uring; ringest cannot start without it".into(),
        fix: fix_sysctl(status, "kernel.io_uring_disabled", 0),
    }
}

pub fn ktls(h: &HostFacts, w: &Wants) -> Check {
    let Some(k) = &h.ktls else {
        return Check {
            name: "kTLS (CONFIG_TLS / tls module)",
            current: "unknown".into(),
            recommended: "available".into(),
            status: Status::Unknown,
            why: String::new(),
            fix: String::new(),
        };
    };
    let status = match (k.ulp, w.ktls_required, w.uses_tls) {
        (false, true, _) => Status::Fail,
        (false, false, true) => Status::Info,
        _ => Status::Ok,
    };
    Check {
        name: "kTLS (CONFIG_TLS / tls module)",
        current: k.to_string(),
        recommended: "available, with TLS 1.3 rekey (Linux >= 6.14)".into(),
        status,
        why: "offload moves decryption into the kernel; without it the userspace record layer is used"
            .into(),
        fix: match status {
            Status::Fail => {
                "modprobe tls (needs a kernel built with CONFIG_TLS), or set ktls = \"auto\"".into()
            }
            Status::Info => {
                "modprobe tls (needs a kernel built with CONFIG_TLS); ringest works without it".into()
            }
            _ => String::new(),
        },
    }
}

pub fn governor(h: &HostFacts) -> Check {
    let (current, status) = if h.governors.is_empty() {
        ("no cpufreq (typical in a VM)".to_string(), Status::Ok)
    } else if h.governors.iter().all(|g| g == "performance") {
        (h.governors.join(","), Status::Ok)
    } else {
        (h.governors.join(","), Status::Info)
    };
    Check {
        name: "CPU frequency governor",
        current,
        recommended: "performance".into(),
        status,
        why: "power-saving governors add latency at low load and skew measurements".into(),
        fix: if status == Status::Info {
            "cpupower frequency-set -g performance".into()
        } else {
            String::new()
        },
    }
}

pub fn thp(h: &HostFacts) -> Check {
    let status = match h.thp.as_deref() {
        Some("always") => Status::Info,
        Some(_) => Status::Ok,
        None => Status::Unknown,
    };
    Check {
        name: "transparent huge pages",
        current: h.thp.clone().unwrap_or_else(|| "unknown".into()),
        recommended: "madvise".into(),
        status,
        why: "\"always\" can stall allocations on compaction (latency spikes)".into(),
        fix: if status == Status::Info {
            "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled".into()
        } else {
            String::new()
        },
    }
}

fn fix_sysctl(status: Status, key: &str, value: u64) -> String {
    match status {
        Status::Warn | Status::Fail | Status::Info => format!("sysctl -w {key}={value}"),
        _ => String::new(),
    }
}

/// The table `tuning check` prints.
pub fn render_text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Info => "info",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Unknown => "?   ",
        };
        out.push_str(&format!(
            "{mark} {}\n     current: {}\n     recommended: {}\n",
            c.name, c.current, c.recommended
        ));
        if c.status != Status::Ok {
            out.push_str(&format!("     why: {}\n", c.why));
        }
        if !c.fix.is_empty() {
            out.push_str(&format!("     fix: {}\n", c.fix));
        }
    }
    let fails = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warns = checks.iter().filter(|c| c.status == Status::Warn).count();
    out.push_str(&format!(
        "{} checks: {fails} would fail at this config, {warns} warnings\n",
        checks.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostFacts {
        HostFacts {
            nofile_soft: Some(1024),
            nofile_hard: Some(1 << 20),
            somaxconn: Some(4096),
            tcp_max_syn_backlog: Some(4096),
            rmem_max: Some(212_992),
            wmem_max: Some(212_992),
            local_port_range: Some((32768, 60999)),
            dirty_ratio: Some(20),
            dirty_background_ratio: Some(10),
            dirty_expire_centisecs: Some(3000),
            io_uring_disabled: Some(0),
            ktls: None,
            governors: Vec::new(),
            thp: Some("madvise".into()),
        }
    }

    fn wants(max_connections_total: u64) -> Wants {
        Wants {
            max_connections_total,
            listeners: 2,
            listen_backlog_max: 1024,
            ktls_required: false,
            uses_tls: true,
        }
    }

    #[test]
    fn hard_open_file_limit_below_max_connections_fails_with_the_fix() {
        let mut h = host();
        h.nofile_hard = Some(20_000);
        let c = open_files(&h, &wants(40_000));
        assert_eq!(c.status, Status::Fail);
        assert!(c.fix.contains("LimitNOFILE=40066"), "{}", c.fix);
        // The soft limit alone does not fail: ringest raises it to the hard one.
        let c = open_files(&h, &wants(10_000));
        assert_eq!(c.status, Status::Ok, "{c:?}");
    }

    #[test]
    fn somaxconn_below_a_configured_backlog_warns() {
        let mut h = host();
        h.somaxconn = Some(128);
        let c = somaxconn(&h, &wants(10));
        assert_eq!(c.status, Status::Warn);
        assert_eq!(c.fix, "sysctl -w net.core.somaxconn=4096");
    }

    #[test]
    fn io_uring_disabled_fails_and_absent_sysctl_is_allowed() {
        let mut h = host();
        h.io_uring_disabled = Some(2);
        assert_eq!(io_uring(&h).status, Status::Fail);
        h.io_uring_disabled = None;
        assert_eq!(io_uring(&h).status, Status::Ok);
    }

    #[test]
    fn bursty_writeback_settings_warn() {
        let mut h = host();
        h.dirty_ratio = Some(80);
        assert_eq!(dirty(&h).status, Status::Warn);
        assert_eq!(dirty(&host()).status, Status::Ok);
    }

    #[test]
    fn the_text_report_counts_failures() {
        let mut h = host();
        h.nofile_hard = Some(100);
        let text = render_text(&run(&h, &wants(10_000)));
        assert!(text.contains("FAIL open files"), "{text}");
        assert!(text.contains("1 would fail at this config"), "{text}");
    }
}
