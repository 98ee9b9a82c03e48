//! The figures of one run, exactly as measured (results.json keeps them all).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Measured; nothing lost, duplicated or corrupted.
    Ok,
    /// Measured, but verify found missing, duplicated or corrupted messages.
    Lost,
    /// No valid measurement: the engine did not start, crashed, the client
    /// failed, or a bound ran out. `reason` says which.
    Failed,
    /// The engine cannot run this scenario (`reason`), by declaration.
    NotApplicable,
}

impl Status {
    pub fn measured(self) -> bool {
        matches!(self, Status::Ok | Status::Lost)
    }
}

/// Which memory the engines' page cache came from (issue 19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemState {
    /// The page cache full: filled by bench until about 3 GiB were free and
    /// topped up before every run; new pages are recycled ones, as on a log
    /// server that has run for weeks.
    Steady,
    /// bench holds no fill, and memory freed by the previous run sat free for
    /// a while first: new pages come from memory the VM's host may have taken
    /// back, as right after boot.
    Fresh,
}

impl MemState {
    pub fn name(self) -> &'static str {
        match self {
            MemState::Steady => "steady",
            MemState::Fresh => "fresh",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            MemState::Steady => "Steady state (page cache full)",
            MemState::Fresh => "Fresh (memory free for a while)",
        }
    }
}

/// p50, p99 and p999 of a latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
}

/// /proc/stat's first line at the start and at the end of a run's window
/// (`window_s` apart), and the CPUs it listed: enough to work the machine
/// figures out again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcStatWindow {
    pub before: String,
    pub after: String,
    pub cpus: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub scenario: String,
    pub engine: Engine,
    /// 1-based.
    pub repeat: u32,
    pub status: Status,
    pub reason: Option<String>,
    /// Small files of this run (config, engine log, loadgen and verify JSON).
    pub run_dir: String,
    pub port: u16,
    pub state: MemState,
    /// 1 for the first try; a repeat rerun because of host steal counts up.
    pub attempt: u32,
    /// Position (1-based) in its repeat's random engine order.
    pub order: u32,
    /// Replaced by a rerun of its repeat (host steal over the threshold);
    /// kept in results.json, left out of every summary.
    pub superseded: bool,
    /// Why the run was flagged (steal over the threshold), if it was.
    pub flag: Option<String>,

    /// Busy fraction (0..1) of all CPUs over the 1 s before the load started.
    pub busy_before: Option<f64>,
    pub quiet_waited_s: Option<f64>,
    /// The machine never got quiet within --quiet-timeout; the run went ahead.
    pub quiet_gave_up: bool,

    /// The load window: from just before loadgen started until the output
    /// stopped growing and bench had synced it: the wall time between the
    /// two /proc/stat samples (all CPUs).
    pub window_s: Option<f64>,
    /// Host steal over the window, % of all CPU time.
    pub steal_pct: Option<f64>,
    /// Busy CPU over the window, machine-wide: CPUs × wall minus idle,
    /// iowait and steal (sys::CpuWindow says why not the busy counters),
    /// % of all CPU time; loadgen included.
    pub machine_busy_pct: Option<f64>,
    /// What /proc/stat's busy counters alone (user, nice, system, irq,
    /// softirq: tick samples) said, % of all CPU time; what
    /// machine_busy_pct was before 2026-11-30 (relative to the counters'
    /// sum then, not to CPUs × wall).
    #[serde(default)]
    pub machine_busy_sampled_pct: Option<f64>,
    /// Every /proc/stat counter's sum over the window, % of CPUs × wall:
    /// below 100 by the busy time the tick samples missed.
    #[serde(default)]
    pub proc_stat_counted_pct: Option<f64>,
    /// The two /proc/stat samples of the window, as read.
    #[serde(default)]
    pub proc_stat_cpu: Option<ProcStatWindow>,
    /// Machine-wide busy CPU-seconds over the window minus loadgen's own:
    /// the engine, the kernel's writeback and softirq work, bench (mostly
    /// idle), and anything else that ran.
    pub machine_cpu_s: Option<f64>,
    pub machine_cpu_us_per_msg: Option<f64>,
    /// bench's fdatasync of the output at the end of the window, so that
    /// writing every byte back to disk is in the machine-wide figure for
    /// every engine alike.
    pub output_sync_s: Option<f64>,
    /// Size of the output file, and per line in it.
    pub bytes_written: Option<u64>,
    pub bytes_per_msg: Option<f64>,

    /// Page-cache write cost just before the run: CPU-s per GB of a fixed
    /// 256 KiB-write() probe (steady::write_cost_cpu_s_per_gb).
    pub write_cost_cpu_s_per_gb: Option<f64>,
    /// MemFree when the run started, MiB.
    pub mem_free_mib_before: Option<f64>,
    /// Steady state: what the top-up before this run did.
    pub top_up: Option<String>,
    /// Steady state: the top-up reached its MemFree target.
    pub steady_reached: Option<bool>,
    /// Free disk the run's output was estimated to need before it started
    /// (disk_budget.rs), bytes.
    #[serde(default)]
    pub disk_need_bytes: Option<u64>,
    /// Steady state: bytes of the pool's oldest files deleted to make room
    /// for the output (the notes say so too).
    #[serde(default)]
    pub pool_trimmed_bytes: Option<u64>,
    /// Refused before the engine started: the output would not fit on the
    /// disk (status failed, `reason` has the figures).
    #[serde(default)]
    pub disk_refused: bool,

    /// loadgen: messages handed to the kernel, and over how long.
    pub sent: Option<u64>,
    pub send_elapsed_s: Option<f64>,
    pub offered_msg_per_s: Option<f64>,
    /// Lines of this run found in the output by `loadgen verify`.
    pub written: Option<u64>,
    /// From loadgen's start of sending until the output file last grew.
    pub written_window_s: Option<f64>,
    pub written_msg_per_s: Option<f64>,
    /// After loadgen finished, how long the output kept growing.
    pub drain_s: Option<f64>,
    pub lost: Option<u64>,
    pub duplicated: Option<u64>,
    pub corrupted: Option<u64>,
    pub beyond_expected: Option<u64>,

    /// utime+stime of the whole engine process (all threads), from just
    /// before the load started until the output stopped growing.
    pub server_cpu_s: Option<f64>,
    pub server_cpu_us_per_msg: Option<f64>,
    /// Kafka rows: the broker, the run's topic, each partition's high
    /// watermark once the engine had stopped, and the broker JVM's CPU over
    /// the same window as the server's (the same broker for every engine).
    #[serde(default)]
    pub kafka_broker: Option<String>,
    #[serde(default)]
    pub kafka_topic: Option<String>,
    #[serde(default)]
    pub kafka_high_watermarks: Vec<i64>,
    #[serde(default)]
    pub broker_cpu_s: Option<f64>,
    #[serde(default)]
    pub broker_cpu_us_per_msg: Option<f64>,
    /// The sending loadgen's own CPU (getrusage).
    pub client_cpu_s: Option<f64>,
    /// The second loadgen's, which opened and held the idle connections.
    pub idle_client_cpu_s: Option<f64>,
    pub client_cpu_us_per_msg: Option<f64>,
    /// VmHWM of the engine, read just before it was stopped.
    pub peak_rss_kib: Option<u64>,
    /// RSS before the load (after idle connections, if any, were opened).
    pub rss_before_kib: Option<u64>,
    /// CPU-seconds per engine thread name over the run: shows the split
    /// between shards / workers.
    pub threads_cpu_s: BTreeMap<String, f64>,
    /// Messages per busy connection, as loadgen counted them.
    pub per_connection_sent: Vec<u64>,
    pub idle_connections_held: Option<u64>,

    pub tls_version: Option<String>,
    pub cipher: Option<String>,
    /// The TCP congestion control loadgen's connections used (its report).
    #[serde(default)]
    pub client_tcp_congestion: Option<String>,
    pub loadgen_errors: BTreeMap<String, u64>,
    /// How the engine ended after SIGTERM.
    pub engine_exit: Option<String>,
    /// ringest's /metrics (counters and gauges) at the end of the run.
    pub engine_metrics: BTreeMap<String, f64>,
    /// loadgen `--rate` of this run, if it was paced.
    pub rate_msg_per_s: Option<f64>,
    /// Paced runs: loadgen's latency from each message's intended send time.
    pub client_latency_us: Option<Quantiles>,
    /// ringest's own latency summaries from /metrics at the end of the run,
    /// by series (metrics.rs).
    #[serde(default)]
    pub engine_latency_us: BTreeMap<String, Quantiles>,
    /// `pin = true`: where the server and loadgen ran.
    pub pinning: Option<String>,
    pub notes: Vec<String>,
}

impl Run {
    pub fn new(
        scenario: &str,
        engine: Engine,
        repeat: u32,
        state: MemState,
        run_dir: String,
    ) -> Run {
        Run {
            scenario: scenario.to_string(),
            engine,
            repeat,
            // Until something goes wrong; fail() and verify decide.
            status: Status::Ok,
            reason: None,
            run_dir,
            port: 0,
            state,
            attempt: 1,
            order: 0,
            superseded: false,
            flag: None,
            busy_before: None,
            quiet_waited_s: None,
            quiet_gave_up: false,
            window_s: None,
            steal_pct: None,
            machine_busy_pct: None,
            machine_busy_sampled_pct: None,
            proc_stat_counted_pct: None,
            proc_stat_cpu: None,
            machine_cpu_s: None,
            machine_cpu_us_per_msg: None,
            output_sync_s: None,
            bytes_written: None,
            bytes_per_msg: None,
            write_cost_cpu_s_per_gb: None,
            mem_free_mib_before: None,
            top_up: None,
            steady_reached: None,
            disk_need_bytes: None,
            pool_trimmed_bytes: None,
            disk_refused: false,
            sent: None,
            send_elapsed_s: None,
            offered_msg_per_s: None,
            written: None,
            written_window_s: None,
            written_msg_per_s: None,
            drain_s: None,
            lost: None,
            duplicated: None,
            corrupted: None,
            beyond_expected: None,
            server_cpu_s: None,
            server_cpu_us_per_msg: None,
            kafka_broker: None,
            kafka_topic: None,
            kafka_high_watermarks: Vec::new(),
            broker_cpu_s: None,
            broker_cpu_us_per_msg: None,
            client_cpu_s: None,
            idle_client_cpu_s: None,
            client_cpu_us_per_msg: None,
            peak_rss_kib: None,
            rss_before_kib: None,
            threads_cpu_s: BTreeMap::new(),
            per_connection_sent: Vec::new(),
            idle_connections_held: None,
            tls_version: None,
            cipher: None,
            client_tcp_congestion: None,
            loadgen_errors: BTreeMap::new(),
            engine_exit: None,
            engine_metrics: BTreeMap::new(),
            rate_msg_per_s: None,
            client_latency_us: None,
            engine_latency_us: BTreeMap::new(),
            pinning: None,
            notes: Vec::new(),
        }
    }

    pub fn fail(&mut self, reason: impl Into<String>) {
        self.status = Status::Failed;
        let r = reason.into();
        self.reason = Some(match self.reason.take() {
            Some(prev) => format!("{prev}; {r}"),
            None => r,
        });
    }
}
