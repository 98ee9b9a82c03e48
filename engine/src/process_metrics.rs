//! The metrics every Prometheus dashboard already knows, appended to
//! `/metrics` on each scrape:
//!
//! - `process_cpu_seconds_total`, `process_resident_memory_bytes`,
//!   `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
//!   `process_start_time_seconds`: the names and units of the official
//!   client libraries' process collector, read from `/proc/self` (stat,
//!   status, limits, fd/) and `/proc/stat` (boot time);
//! - `ringest_build_info{version,commit,ktls} 1`: what is running. `ktls` is
//!   `yes` or `no`, whether this kernel offered kTLS at start-up (the probe's
//!   verdict, so a dashboard can group hosts by it), `unknown` before that;
//! - `ringest_config_last_reload_success_timestamp_seconds`: when start-up
//!   or the last SIGHUP reload succeeded (every source's TLS files loaded),
//!   in Unix seconds, as Prometheus names its own.
//!
//! Control plane only: the scrape thread reads /proc, nothing here touches
//! the data path. A /proc file that cannot be read or parsed leaves its
//! metric out of that scrape (HELP and TYPE included) rather than
//! reporting a made-up 0. The parsers take text and return numbers, so the
//! tests feed them recorded /proc contents.
//!
//! Text format by hand, like the rest of `stats.rs`: a client library
//! (`prometheus`, `prometheus-client`) would bring its own registry and
//! types for six lines of output.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

/// The commit the binary was built from (engine/build.rs), or "unknown".
pub const COMMIT: &str = env!("RINGEST_COMMIT");

/// kTLS verdict for `ringest_build_info`: 0 unknown, 1 no, 2 yes.
static KTLS: AtomicU8 = AtomicU8::new(0);

/// f64 bits of the last successful (re)load, in Unix seconds; 0 = none yet.
static LAST_RELOAD_SUCCESS: AtomicU64 = AtomicU64::new(0);

/// Records whether this kernel offers kTLS (called once, after the probe).
pub fn set_ktls_available(available: bool) {
    KTLS.store(if available { 2 } else { 1 }, Relaxed);
}

/// Records a successful start or reload now.
pub fn reload_succeeded() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    LAST_RELOAD_SUCCESS.store(now.to_bits(), Relaxed);
}

fn ktls_label() -> &'static str {
    match KTLS.load(Relaxed) {
        1 => "no",
        2 => "yes",
        _ => "unknown",
    }
}

/// CPU time in clock ticks and start time in ticks since boot, from
/// `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatTimes {
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses, so fields are counted from
/// the last `)`: field N of proc(5) is at index N - 3 after it.
pub fn parse_stat(text: &str) -> Option<StatTimes> {
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(StatTimes {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        start_ticks: field(22)?,
    })
}

/// A `Key:   123 kB` line of `/proc/PID/status`, in bytes.
pub fn parse_status_bytes(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(key))?;
    let mut words = line.split(':').nth(1)?.split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// The soft "Max open files" of `/proc/PID/limits`; None when unlimited.
pub fn parse_max_open_files(text: &str) -> Option<u64> {
    let rest = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    rest.split_whitespace().next()?.parse().ok()
}

/// `btime` of `/proc/stat`: the boot time in Unix seconds.
pub fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// What one scrape found; a field is None when its /proc file failed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

impl Snapshot {
    /// Builds a snapshot from the text of the /proc files (None: unreadable).
    pub fn from_texts(
        stat: Option<&str>,
        status: Option<&str>,
        limits: Option<&str>,
        proc_stat: Option<&str>,
        open_fds: Option<u64>,
        ticks_per_second: u64,
    ) -> Snapshot {
        let times = stat.and_then(parse_stat);
        let hz = ticks_per_second.max(1) as f64;
        Snapshot {
            cpu_seconds: times.map(|t| (t.utime_ticks + t.stime_ticks) as f64 / hz),
            resident_bytes: status.and_then(|s| parse_status_bytes(s, "VmRSS")),
            virtual_bytes: status.and_then(|s| parse_status_bytes(s, "VmSize")),
            open_fds,
            max_fds: limits.and_then(parse_max_open_files),
            start_time_seconds: times
                .zip(proc_stat.and_then(parse_boot_time))
                .map(|(t, boot)| boot as f64 + t.start_ticks as f64 / hz),
        }
    }

    /// This process, now.
    pub fn read() -> Snapshot {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let (stat, status, limits, proc_stat) = (
            read("/proc/self/stat"),
            read("/proc/self/status"),
            read("/proc/self/limits"),
            read("/proc/stat"),
        );
        // Counts the descriptor read_dir itself holds, as the official
        // clients do.
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as u64);
        Snapshot::from_texts(
            stat.as_deref(),
            status.as_deref(),
            limits.as_deref(),
            proc_stat.as_deref(),
            open_fds,
            ticks_per_second(),
        )
    }
}

/// USER_HZ, the unit of the times in /proc/PID/stat (100 on every Linux
/// architecture in practice, asked all the same).
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as u64
    } else {
        100
    }
}

/// A label value in the text format: `\`, `"` and newline escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: Option<f64>) {
    if let Some(v) = value {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    }
}

/// Appends the process and build metrics for `snap` to `out`.
pub fn render_snapshot(out: &mut String, snap: &Snapshot) {
    metric(
        out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        snap.cpu_seconds,
    );
    metric(
        out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        snap.resident_bytes.map(|v| v as f64),
    );
    metric(
        out,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        snap.virtual_bytes.map(|v| v as f64),
    );
    metric(
        out,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        snap.open_fds.map(|v| v as f64),
    );
    metric(
        out,
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors (soft RLIMIT_NOFILE).",
        snap.max_fds.map(|v| v as f64),
    );
    metric(
        out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        snap.start_time_seconds,
    );
    let name = "ringest_build_info";
    let _ = writeln!(
        out,
        "# HELP {name} The running build (value 1): version, commit, and whether this kernel offers kTLS.\n\
         # TYPE {name} gauge\n\
         {name}{{version=\"{}\",commit=\"{}\",ktls=\"{}\"}} 1",
        label_value(env!("CARGO_PKG_VERSION")),
        label_value(COMMIT),
        ktls_label()
    );
    let last = f64::from_bits(LAST_RELOAD_SUCCESS.load(Relaxed));
    metric(
        out,
        "ringest_config_last_reload_success_timestamp_seconds",
        "gauge",
        "When start-up or the last SIGHUP reload succeeded, in Unix seconds.",
        (last > 0.0).then_some(last),
    );
}

/// Appends the process and build metrics of this process to `out`.
pub fn render(out: &mut String) {
    render_snapshot(out, &Snapshot::read());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command name with spaces and a `)` must not shift the fields.
    const STAT: &str = "4242 (ringest (x) y) S 1 4242 4242 0 -1 4194560 3070 0 0 0 \
                        250 130 0 0 20 0 5 0 987654 123456789 2048 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        assert_eq!(
            parse_stat(STAT),
            Some(StatTimes {
                utime_ticks: 250,
                stime_ticks: 130,
                start_ticks: 987654
            })
        );
        assert_eq!(parse_stat("4242 (ringest) S 1 2"), None, "truncated");
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn status_sizes_are_in_bytes() {
        let status = "Name:\tringest\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\nThreads:\t5\n";
        assert_eq!(parse_status_bytes(status, "VmRSS"), Some(2048 * 1024));
        assert_eq!(parse_status_bytes(status, "VmSize"), Some(123456 * 1024));
        assert_eq!(parse_status_bytes(status, "Threads"), Some(5));
        assert_eq!(parse_status_bytes(status, "VmHWM"), None);
        // "VmRSSx" is another key, not a prefix match.
        assert_eq!(parse_status_bytes("VmRSSx:\t1 kB\n", "VmRSS"), None);
    }

    #[test]
    fn max_open_files_is_the_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             96364                96364                processes \n\
                      Max open files            20000                65536                files     \n";
        assert_eq!(parse_max_open_files(limits), Some(20000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), None);
    }

    #[test]
    fn start_time_is_boot_time_plus_ticks() {
        let snap = Snapshot::from_texts(
            Some(STAT),
            None,
            None,
            Some("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(9),
            100,
        );
        assert_eq!(snap.start_time_seconds, Some(1_700_000_000.0 + 9876.54));
        assert_eq!(snap.cpu_seconds, Some(3.8));
        assert_eq!(snap.open_fds, Some(9));
        assert_eq!(snap.resident_bytes, None);
    }

    /// A metric whose file failed is left out whole: no HELP or TYPE without a sample.
    #[test]
    fn unreadable_files_leave_their_metrics_out() {
        let mut out = String::new();
        render_snapshot(&mut out, &Snapshot::default());
        assert!(!out.contains("process_"), "{out}");
        assert!(out.contains("# TYPE ringest_build_info gauge\n"), "{out}");
        assert!(out.contains(&format!("commit=\"{}\"", COMMIT)), "{out}");
    }

    #[test]
    fn this_process_is_readable() {
        let snap = Snapshot::read();
        assert!(snap.cpu_seconds.is_some());
        assert!(snap.resident_bytes.unwrap_or(0) > 0);
        assert!(snap.open_fds.unwrap_or(0) >= 3);
        assert!(snap.max_fds.unwrap_or(0) >= snap.open_fds.unwrap_or(0));
        assert!(snap.start_time_seconds.unwrap_or(0.0) > 1_000_000_000.0);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
