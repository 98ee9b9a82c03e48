//! bench: ringest, syslog-ng and rsyslog side by side on the same load,
//! with loss checked (issue 6). See bench/README.md.
//!
//! ```text
//! bench compare [--scenarios FILE] [--duration S] [--repeat N] [--out DIR] [--only LIST] [--keep]
//! bench handshakes [--duration S] [--out DIR]
//! bench idle [--connections N] [--only LIST] [--out DIR]
//! bench setup [--peers-dir DIR]
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

mod compare;
mod engines;
mod handshakes;
mod idle;
mod pki;
mod record;
mod report;
mod scenario;
mod setup;
mod sys;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::engines::Tools;
use crate::record::{Run, Status};
use crate::scenario::Engine;

#[derive(Parser)]
#[command(
    name = "bench",
    about = "ringest vs syslog-ng vs rsyslog on the same load, loss checked"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// Where ringest and loadgen are (default: next to bench).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where `bench setup` unpacked rsyslog (default: $RINGEST_PEERS_DIR, else the workspace's target/peers).
    #[arg(long)]
    peers_dir: Option<PathBuf>,
    /// A 1-s window with at most this percentage of all CPUs busy counts as quiet.
    #[arg(long, default_value_t = 10.0)]
    quiet_busy_pct: f64,
    /// Stop waiting for a quiet machine after this many seconds (recorded) and run anyway.
    #[arg(long, default_value_t = 60)]
    quiet_timeout: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run every scenario against every engine; write DIR/results.{md,csv,json,svg}.
    Compare {
        /// Scenario file (TOML, [[scenario]] entries). Default: bench/scenarios/default.toml.
        #[arg(long)]
        scenarios: Option<PathBuf>,
        /// Only these scenarios (names, comma-separated).
        #[arg(long)]
        pick: Option<String>,
        /// Seconds of load per run (1..=300).
        #[arg(long, default_value_t = 10)]
        duration: u32,
        /// Runs per scenario and engine (1..=20); the table shows the median and min–max.
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
        /// Engines, comma-separated: ringest,syslog-ng,rsyslog.
        #[arg(long, default_value = "ringest,syslog-ng,rsyslog")]
        only: String,
        /// Keep the engines' output files (and the PKI) under DIR/work.
        #[arg(long)]
        keep: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Full mutual-TLS handshakes per second per core: ringest vs in-process rustls.
    Handshakes {
        #[arg(long, default_value_t = 5)]
        duration: u32,
        /// loadgen --connections (handshake slots).
        #[arg(long, default_value_t = 8)]
        connections: u32,
        /// ringest run + baseline pairs per server key; medians are reported.
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Memory per idle mutual-TLS connection (loadgen --hold-idle).
    Idle {
        /// Connections to hold (both ends need one file descriptor each).
        #[arg(long, default_value_t = 10_000)]
        connections: u32,
        #[arg(long, default_value = "ringest,syslog-ng,rsyslog")]
        only: String,
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Install the peers (Debian, as root): syslog-ng-core via apt-get, rsyslog unpacked.
    Setup {
        #[arg(long)]
        peers_dir: Option<PathBuf>,
    },
}

fn main() {
    sys::install_stop_signals();
    let cli = Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            sys::stop_all_children(Duration::from_secs(10));
            if sys::interrupted() {
                eprintln!("bench: interrupted; every engine started was stopped");
                130
            } else {
                eprintln!("bench: {e:#}");
                2
            }
        }
    };
    sys::stop_all_children(Duration::from_secs(10));
    std::process::exit(code);
}

fn command_line() -> String {
    let args: Vec<String> = std::env::args().collect();
    let mut v = vec!["bench".to_string()];
    v.extend(args.into_iter().skip(1));
    v.join(" ")
}

/// Processes that compete for the CPUs and are not ours, with the load average.
fn competing_processes() -> Vec<String> {
    let me = std::process::id().to_string();
    let names = [
        "cargo",
        "rustc",
        "qemu-system-x86",
        "loadgen",
        "ringest",
        "syslog-ng",
        "rsyslogd",
        "cc1",
        "ld",
        "rust-lld",
        "loggen",
    ];
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) || pid == me {
            continue;
        }
        let comm = std::fs::read_to_string(e.path().join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        if names.contains(&comm.as_str()) {
            found.push(format!("{comm} ({pid})"));
        }
    }
    found
}

fn meta_line(date: &str, time: &str) -> String {
    let m = sys::machine();
    format!(
        "{date} {time}, `{}`: {} × {}, {:.1} GiB RAM, Linux {}.",
        m.host, m.cpus, m.cpu, m.mem_gib, m.kernel
    )
}

/// Creates the output folder; engines run in their own folders, so every
/// path handed to them is absolute.
fn check_out(out: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    out.canonicalize()
        .with_context(|| format!("resolve {}", out.display()))
}

fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Cmd::Setup { peers_dir } => {
            let d = peers_dir.unwrap_or_else(engines::default_peers_dir);
            setup::setup(&d)?;
            Ok(0)
        }
        Cmd::Compare {
            scenarios,
            pick,
            duration,
            repeat,
            out,
            only,
            keep,
            common,
        } => compare_cmd(
            scenarios.as_deref(),
            pick,
            duration,
            repeat,
            &out,
            &only,
            keep,
            &common,
        ),
        Cmd::Handshakes {
            duration,
            connections,
            repeat,
            out,
            common,
        } => {
            if !(1..=120).contains(&duration)
                || !(1..=256).contains(&connections)
                || !(1..=10).contains(&repeat)
            {
                bail!("--duration must be 1..=120, --connections 1..=256 and --repeat 1..=10");
            }
            let tools = Tools::find(common.bin_dir.as_deref(), common.peers_dir.as_deref())?;
            tools.require(&[Engine::Ringest])?;
            let out = check_out(&out)?;
            let (date, time) = sys::utc_now();
            let args = handshakes::Args {
                duration_s: duration,
                connections,
                repeat,
                quiet_busy: common.quiet_busy_pct / 100.0,
                quiet_timeout: Duration::from_secs(common.quiet_timeout),
            };
            let figs = handshakes::run(&tools, &out, &args)?;
            let competing = competing_processes();
            let mut meta = format!("{} Command: `{}`.", meta_line(&date, &time), command_line());
            if !competing.is_empty() {
                meta += &format!(" Other processes at the end: {}.", competing.join(", "));
            }
            std::fs::write(
                out.join("handshakes.md"),
                handshakes::markdown(&figs, &meta, duration, connections),
            )?;
            std::fs::write(
                out.join("handshakes.json"),
                serde_json::to_string_pretty(&serde_json::json!({"meta": meta, "figures": figs}))?,
            )?;
            let _ = std::fs::remove_dir_all(out.join("work"));
            eprintln!(
                "bench handshakes: wrote {}",
                out.join("handshakes.md").display()
            );
            Ok(
                if figs
                    .iter()
                    .any(|f| f.error.is_some() || f.ringest_per_core.is_none())
                {
                    1
                } else {
                    0
                },
            )
        }
        Cmd::Idle {
            connections,
            only,
            out,
            common,
        } => {
            if !(1..=15_000).contains(&connections) {
                bail!("--connections must be 1..=15000");
            }
            sys::raise_fd_limit();
            let need = u64::from(connections) + 200;
            if sys::fd_limit() < need {
                bail!(
                    "open-file limit {} is below the {need} each end needs: raise `ulimit -n`",
                    sys::fd_limit()
                );
            }
            let engines = Engine::parse_list(&only)?;
            let tools = Tools::find(common.bin_dir.as_deref(), common.peers_dir.as_deref())?;
            tools.require(&engines)?;
            let out = check_out(&out)?;
            let (date, time) = sys::utc_now();
            let figs = idle::run(&tools, &out, &engines, connections)?;
            let meta = format!("{} Command: `{}`.", meta_line(&date, &time), command_line());
            std::fs::write(out.join("idle.md"), idle::markdown(&figs, &meta))?;
            std::fs::write(
                out.join("idle.json"),
                serde_json::to_string_pretty(&serde_json::json!({"meta": meta, "figures": figs}))?,
            )?;
            let _ = std::fs::remove_dir_all(out.join("work"));
            eprintln!("bench idle: wrote {}", out.join("idle.md").display());
            Ok(if figs.iter().any(|f| f.error.is_some()) {
                1
            } else {
                0
            })
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn compare_cmd(
    scenarios_file: Option<&Path>,
    pick: Option<String>,
    duration: u32,
    repeat: u32,
    out: &Path,
    only: &str,
    keep: bool,
    common: &Common,
) -> Result<i32> {
    if !(1..=300).contains(&duration) {
        bail!("--duration must be 1..=300 seconds");
    }
    if !(1..=20).contains(&repeat) {
        bail!("--repeat must be 1..=20");
    }
    if !(0.0..=100.0).contains(&common.quiet_busy_pct) || common.quiet_timeout > 3600 {
        bail!("--quiet-busy-pct must be 0..=100 and --quiet-timeout at most 3600");
    }
    let (mut scenarios, scenarios_origin) = scenario::load(scenarios_file)?;
    if let Some(p) = pick {
        let want: Vec<&str> = p.split(',').map(str::trim).collect();
        for w in &want {
            if !scenarios.iter().any(|s| s.name == *w) {
                bail!("--pick: no scenario named {w:?}");
            }
        }
        scenarios.retain(|s| want.contains(&s.name.as_str()));
    }
    let engines = Engine::parse_list(only)?;
    let tools = Tools::find(common.bin_dir.as_deref(), common.peers_dir.as_deref())?;
    let used: Vec<Engine> = engines
        .iter()
        .copied()
        .filter(|e| {
            scenarios
                .iter()
                .any(|s| s.runs_engine(*e) && s.unsupported_reason(*e).is_none())
        })
        .collect();
    tools.require(&used)?;
    sys::raise_fd_limit();
    let max_conns = scenarios
        .iter()
        .map(|s| u64::from(s.total_connections()))
        .max()
        .unwrap_or(0);
    if sys::fd_limit() < max_conns + 200 {
        bail!(
            "open-file limit {} is too low for {max_conns} connections: raise `ulimit -n`",
            sys::fd_limit()
        );
    }
    let out = &check_out(out)?;
    let settings = compare::Settings {
        duration_s: duration,
        keep,
        quiet_busy: common.quiet_busy_pct / 100.0,
        quiet_timeout: Duration::from_secs(common.quiet_timeout),
    };
    let (date, time) = sys::utc_now();
    let competing_start = competing_processes();
    let ctx = compare::Ctx::new(&tools, &settings, out)?;
    let mut write_floor: Vec<(&'static str, (f64, f64))> = Vec::new();
    if let Ok(f) = compare::file_write_floor_s_per_gb(&ctx.work_dir) {
        write_floor.push(("before the runs", f));
    }

    let mut jobs = Vec::new();
    // Repeats are interleaved (all scenarios and engines, then again), so a
    // slow drift of the machine spreads over every engine alike.
    for r in 1..=repeat {
        for sc in &scenarios {
            for &e in &engines {
                if sc.runs_engine(e) {
                    jobs.push((sc, e, r));
                }
            }
        }
    }
    let total = jobs.len();
    let started = Instant::now();
    let mut runs: Vec<Run> = Vec::new();
    let mut interrupted = false;
    for (i, (sc, e, r)) in jobs.into_iter().enumerate() {
        match compare::run_one(&ctx, sc, e, r) {
            Ok(run) => {
                eprintln!("bench: [{}/{total}] {}", i + 1, progress_line(&run, repeat));
                runs.push(run);
            }
            Err(err) => {
                if sys::interrupted() {
                    interrupted = true;
                    break;
                }
                return Err(err);
            }
        }
    }
    if interrupted {
        sys::stop_all_children(Duration::from_secs(10));
        eprintln!("bench: interrupted; every engine and loadgen started was stopped; writing what finished");
    }

    if !interrupted {
        if let Ok(f) = compare::file_write_floor_s_per_gb(&ctx.work_dir) {
            write_floor.push(("after the runs", f));
        }
    }
    let competing_end = competing_processes();
    let mut competing = Vec::new();
    let not_quiet = runs.iter().filter(|r| r.quiet_gave_up).count();
    if not_quiet > 0 {
        competing.push(format!(
            "{not_quiet} of {} runs started without a quiet machine after waiting {} s.",
            runs.len(),
            common.quiet_timeout
        ));
    }
    if !competing_start.is_empty() || !competing_end.is_empty() {
        competing.push(format!(
            "Other processes at the start: {}; at the end: {}.",
            if competing_start.is_empty() {
                "none".into()
            } else {
                competing_start.join(", ")
            },
            if competing_end.is_empty() {
                "none".into()
            } else {
                competing_end.join(", ")
            }
        ));
    }
    if interrupted {
        competing.push(
            "The run was interrupted (Ctrl-C); the figures cover the runs that finished.".into(),
        );
    }
    let mut versions: Vec<(Engine, String)> =
        engines.iter().map(|e| (*e, tools.version(*e))).collect();
    versions.sort();
    let meta = report::Meta {
        date: date.clone(),
        time: time.clone(),
        machine: sys::machine(),
        versions,
        loadgen: format!("loadgen ({})", tools.loadgen.display()),
        duration_s: duration,
        repeat,
        scenarios_file: scenarios_origin.clone(),
        quiet_busy: settings.quiet_busy,
        quiet_timeout_s: common.quiet_timeout,
        command: command_line(),
        competing: competing.clone(),
        write_floor_s_per_gb: write_floor.clone(),
        output_fs: sys::filesystem_of(&ctx.work_dir),
    };
    let sums = report::summarize(&scenarios, &engines, &runs);
    std::fs::write(
        out.join("results.md"),
        report::markdown(&meta, &scenarios, &sums, &runs),
    )?;
    std::fs::write(out.join("results.csv"), report::csv(&sums))?;
    let m = &meta.machine;
    let json = serde_json::json!({
        "date": date, "time": time,
        "machine": {"host": m.host, "cpu": m.cpu, "cpus": m.cpus, "kernel": m.kernel, "mem_gib": m.mem_gib, "fd_limit": m.fd_limit},
        "versions": meta.versions.iter().map(|(e, v)| (e.name().to_string(), v.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        "command": meta.command,
        "settings": {"duration_s": duration, "repeat": repeat, "quiet_busy_pct": common.quiet_busy_pct,
                     "quiet_timeout_s": common.quiet_timeout, "engines": engines, "scenarios_file": scenarios_origin},
        "machine_not_quiet": competing,
        "write_floor_cpu_s_per_gb": write_floor.iter().map(|(w, (lo, hi))| (w.to_string(), serde_json::json!({"min": lo, "max": hi}))).collect::<std::collections::BTreeMap<_, _>>(),
        "interrupted": interrupted,
        "elapsed_s": started.elapsed().as_secs_f64(),
        "scenarios": scenarios,
        "summary": sums,
        "runs": runs,
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    let title = format!(
        "ringest vs syslog-ng vs rsyslog — {date}, {} ({} CPUs), median of {repeat} × {duration} s",
        m.host, m.cpus
    );
    report::svg(
        &out.join("results.svg"),
        &title,
        &scenarios,
        &engines,
        &sums,
    )?;
    if !keep {
        let _ = std::fs::remove_dir_all(out.join("work"));
    }
    let bad: Vec<&Run> = runs
        .iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Lost))
        .collect();
    eprintln!(
        "bench: wrote {}/results.{{md,csv,json,svg}} ({} runs, {} failed or lossy, {:.0} s)",
        out.display(),
        runs.len(),
        bad.len(),
        started.elapsed().as_secs_f64()
    );
    if interrupted {
        return Ok(130);
    }
    Ok(if bad.is_empty() { 0 } else { 1 })
}

fn progress_line(r: &Run, repeat: u32) -> String {
    let head = format!("{} {} run {}/{repeat}", r.scenario, r.engine, r.repeat);
    match r.status {
        Status::NotApplicable => format!("{head}: n/a: {}", r.reason.as_deref().unwrap_or("")),
        Status::Failed => format!("{head}: FAILED: {}", r.reason.as_deref().unwrap_or("")),
        Status::Ok | Status::Lost => format!(
            "{head}: {} msg/s written ({} offered), {:.3} server CPU-µs/msg, {:.3} client, lost {} dup {} corrupt {}, \
             peak RSS {:.0} MiB, busy before {:.0}%{}{}",
            report::human(r.written_msg_per_s.unwrap_or(0.0)),
            report::human(r.offered_msg_per_s.unwrap_or(0.0)),
            r.server_cpu_us_per_msg.unwrap_or(f64::NAN),
            r.client_cpu_us_per_msg.unwrap_or(f64::NAN),
            r.lost.unwrap_or(0),
            r.duplicated.unwrap_or(0),
            r.corrupted.unwrap_or(0),
            r.peak_rss_kib.unwrap_or(0) as f64 / 1024.0,
            r.busy_before.unwrap_or(0.0) * 100.0,
            if r.quiet_gave_up { " (not quiet)" } else { "" },
            if r.status == Status::Lost { " LOSS" } else { "" },
        ),
    }
}
