//! bench: ringest, syslog-ng and rsyslog side by side on the same load,
//! with loss checked (issue 6). See bench/README.md.
//!
//! ```text
//! bench compare [--scenarios FILE] [--duration S] [--repeat N] [--out DIR] [--only LIST] [--keep]
//!               [--states steady,fresh] [--seed N] [--steal-max-pct P] ...
//! bench handshakes [--duration S] [--out DIR]
//! bench idle [--connections N] [--source-addrs K] [--only LIST] [--out DIR]
//! bench setup [--peers-dir DIR]
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

mod baseline;
mod compare;
mod disk_budget;
mod engines;
mod handshakes;
mod idle;
mod kafka;
mod latency;
mod latency_cmd;
mod memory;
mod metrics;
mod pin;
mod pki;
mod record;
mod report;
mod scenario;
mod setup;
mod steady;
mod sys;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::engines::Tools;
use crate::record::{MemState, Run, Status};
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
        /// The steady state's fill is removed all the same.
        #[arg(long)]
        keep: bool,
        /// Seed of the engines' random order per repeat (default: from the clock; printed in results.md).
        #[arg(long)]
        seed: Option<u64>,
        /// A repeat in which any run's host steal exceeds this % of all CPU time is run again.
        #[arg(long, default_value_t = 5.0)]
        steal_max_pct: f64,
        /// How many times one repeat may be run again for steal; then it is kept, flagged.
        #[arg(long, default_value_t = 2)]
        steal_reruns: u32,
        #[command(flatten)]
        memory: memory::MemoryArgs,
        /// Seconds of `openssl speed -evp aes-128-gcm` at the start (0: skip).
        #[arg(long, default_value_t = 3)]
        aes_seconds: u32,
        /// Kafka rows: seconds of load from bench's own producer into the
        /// broker before the first run, so that no engine's run pays for
        /// the broker JVM's JIT warm-up (0: none).
        #[arg(long, default_value_t = 20)]
        kafka_warm_up: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Latency against load: each engine's maximum sustained rate with zero
    /// loss, then `loadgen send --rate` at percentages of it; writes
    /// DIR/latency.{md,json,svg}.
    Latency(latency_cmd::Args),
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
        /// Connections to hold (both ends need one file descriptor each;
        /// above 25,000 loadgen binds them to several loopback source
        /// addresses, 127.0.0.2 on, one port range each).
        #[arg(long, default_value_t = 10_000)]
        connections: u32,
        /// Spread the connections over this many loopback source addresses
        /// whatever their number (default: only when one address's port
        /// range is short).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=250))]
        source_addrs: Option<u32>,
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
            seed,
            steal_max_pct,
            steal_reruns,
            memory,
            aes_seconds,
            kafka_warm_up,
            common,
        } => {
            let o = CompareOpts {
                duration,
                repeat,
                keep,
                states: memory.parse_states()?,
                seed,
                steal_max_pct,
                steal_reruns,
                memory,
                aes_seconds,
                kafka_warm_up,
            };
            compare_cmd(scenarios.as_deref(), pick, &out, &only, &o, &common)
        }
        Cmd::Latency(a) => latency_cmd::run(&a),
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
            source_addrs,
            only,
            out,
            common,
        } => {
            if !(1..=idle::CONNECTIONS_MAX).contains(&connections) {
                bail!("--connections must be 1..={}", idle::CONNECTIONS_MAX);
            }
            // Each end needs a descriptor per connection; the engine and
            // loadgen inherit this limit.
            let need = u64::from(connections) + 1024;
            let have = ringest::fd_limit::raise_to(need)
                .context("reading the open-file limit")?
                .soft;
            if have < need {
                bail!(
                    "open-file limit {have} is below the {need} each end needs, and this process \
                     may not raise the hard limit (that takes CAP_SYS_RESOURCE): raise `ulimit -Hn` \
                     or LimitNOFILE, or ask for fewer connections"
                );
            }
            let engines = Engine::parse_list(&only)?;
            let tools = Tools::find(common.bin_dir.as_deref(), common.peers_dir.as_deref())?;
            tools.require(&engines)?;
            let out = check_out(&out)?;
            let (date, time) = sys::utc_now();
            let figs = idle::run(&tools, &out, &engines, connections, source_addrs)?;
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

/// `bench compare`'s options beyond the common ones.
struct CompareOpts {
    duration: u32,
    repeat: u32,
    keep: bool,
    states: Vec<MemState>,
    seed: Option<u64>,
    steal_max_pct: f64,
    steal_reruns: u32,
    memory: memory::MemoryArgs,
    aes_seconds: u32,
    kafka_warm_up: u32,
}

fn compare_cmd(
    scenarios_file: Option<&Path>,
    pick: Option<String>,
    out: &Path,
    only: &str,
    o: &CompareOpts,
    common: &Common,
) -> Result<i32> {
    let (duration, repeat) = (o.duration, o.repeat);
    if !(1..=300).contains(&duration) {
        bail!("--duration must be 1..=300 seconds");
    }
    if !(1..=20).contains(&repeat) {
        bail!("--repeat must be 1..=20");
    }
    if !(0.0..=100.0).contains(&common.quiet_busy_pct) || common.quiet_timeout > 3600 {
        bail!("--quiet-busy-pct must be 0..=100 and --quiet-timeout at most 3600");
    }
    if !(0.0..=100.0).contains(&o.steal_max_pct) || o.steal_reruns > 5 {
        bail!("--steal-max-pct must be 0..=100 and --steal-reruns at most 5");
    }
    o.memory.check()?;
    if o.aes_seconds > 30 {
        bail!("--aes-seconds must be at most 30");
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
    let kafka_rows = scenarios.iter().any(|s| s.kafka);
    if kafka_rows {
        tools.require_kafka(&used)?;
    }
    let max_conns = scenarios
        .iter()
        .map(|s| u64::from(s.total_connections()))
        .max()
        .unwrap_or(0);
    // To the hard limit only (`bench compare` keeps to what the
    // administrator allowed; bench idle may go past it).
    let have = ringest::fd_limit::raise()
        .context("reading the open-file limit")?
        .soft;
    if have < max_conns + 200 {
        bail!("open-file limit {have} is too low for {max_conns} connections: raise `ulimit -n`");
    }
    let out = &check_out(out)?;
    let settings = compare::Settings {
        duration_s: duration,
        duration_flag: "--duration",
        keep: o.keep,
        quiet_busy: common.quiet_busy_pct / 100.0,
        quiet_timeout: Duration::from_secs(common.quiet_timeout),
        probe_bytes: o.memory.write_probe_mib << 20,
        fresh_wait: Duration::from_secs(o.memory.fresh_wait),
    };
    let (date, time) = sys::utc_now();
    let competing_start = competing_processes();
    let mut ctx = compare::Ctx::new(&tools, &settings, out)?;
    if kafka_rows {
        // One broker for every kafka run; `ctx` stops it when dropped.
        ctx.start_kafka(Duration::from_secs(u64::from(o.kafka_warm_up)))?;
    }
    let aes = match (&tools.openssl, o.aes_seconds) {
        (Some(ssl), n) if n > 0 => {
            eprintln!("bench: openssl speed -evp aes-128-gcm ({n} s)");
            match sys::aes_gcm_bytes_per_s(ssl, n) {
                Ok(b) => Some(b),
                Err(e) => {
                    eprintln!("bench: {e:#}");
                    None
                }
            }
        }
        _ => None,
    };
    let seed = o.seed.unwrap_or_else(sys::Shuffler::clock_seed);
    let mut shuffler = sys::Shuffler::new(seed);

    let total: usize = o.states.len()
        * repeat as usize
        * scenarios
            .iter()
            .map(|sc| engines.iter().filter(|e| sc.runs_engine(**e)).count())
            .sum::<usize>();
    let started = Instant::now();
    let mut runs: Vec<Run> = Vec::new();
    let mut state_infos: Vec<report::StateInfo> = Vec::new();
    let mut interrupted = false;
    let mut done = 0usize;
    'states: for &state in &o.states {
        // The steady state's pool lives until the end of its runs; every way
        // out of this block (a normal end, an error, Ctrl-C) drops it, and
        // dropping it removes its files.
        let mut mem = match memory::open(&ctx, state, &o.memory)? {
            Some((mem, info)) => {
                state_infos.push(info);
                mem
            }
            None => {
                interrupted = true;
                break 'states;
            }
        };
        for r in 1..=repeat {
            // Scenarios in a random order too, so that a scenario and its
            // baseline (a scaling or durability pair) pair without an order effect.
            let mut order_sc: Vec<&scenario::Scenario> = scenarios.iter().collect();
            shuffler.shuffle(&mut order_sc);
            for sc in order_sc {
                // The engines of one repeat run one right after the other,
                // in a random order: drift and order effects spread over
                // every engine, and each repeat gives one paired ratio.
                let mut order: Vec<Engine> = engines
                    .iter()
                    .copied()
                    .filter(|e| sc.runs_engine(*e))
                    .collect();
                shuffler.shuffle(&mut order);
                for attempt in 1..=1 + o.steal_reruns {
                    let mut group: Vec<Run> = Vec::new();
                    for (k, &e) in order.iter().enumerate() {
                        let slot = compare::Slot {
                            repeat: r,
                            attempt,
                            order: k as u32 + 1,
                        };
                        match compare::run_one(&ctx, sc, e, slot, &mut mem) {
                            Ok(run) => {
                                done += 1;
                                eprintln!(
                                    "bench: [{done}/{total}] {}",
                                    progress_line(&run, repeat)
                                );
                                group.push(run);
                            }
                            Err(err) => {
                                runs.extend(group);
                                if sys::interrupted() {
                                    interrupted = true;
                                    break 'states;
                                }
                                return Err(err);
                            }
                        }
                    }
                    let hot: Vec<usize> = group
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| x.steal_pct.is_some_and(|p| p > o.steal_max_pct))
                        .map(|(i, _)| i)
                        .collect();
                    let rerun = !hot.is_empty() && attempt <= o.steal_reruns;
                    for &i in &hot {
                        let p = group[i].steal_pct.unwrap_or(0.0);
                        group[i].flag =
                            Some(format!("host steal {p:.1}% > {:.1}%", o.steal_max_pct));
                    }
                    if rerun {
                        // The whole repeat again, so its ratios stay paired.
                        for x in &mut group {
                            x.superseded = true;
                        }
                        eprintln!(
                            "bench: `{}` repeat {r}: host steal over {:.1}%; running the repeat again",
                            sc.name, o.steal_max_pct
                        );
                    }
                    for x in &group {
                        let _ = std::fs::write(
                            Path::new(&x.run_dir).join("run.json"),
                            serde_json::to_string_pretty(x).unwrap_or_default(),
                        );
                    }
                    runs.extend(group);
                    if !rerun {
                        break;
                    }
                }
            }
        }
        memory::close(mem);
    }
    if interrupted {
        sys::stop_all_children(Duration::from_secs(10));
        eprintln!("bench: interrupted; every engine and loadgen started was stopped; writing what finished");
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
        aes_gcm_bytes_per_s: aes,
        versions,
        loadgen: format!("loadgen ({})", tools.loadgen.display()),
        duration_s: duration,
        repeat,
        seed,
        steal_max_pct: o.steal_max_pct,
        steal_reruns: o.steal_reruns,
        probe_mib: o.memory.write_probe_mib,
        states: state_infos,
        scenarios_file: scenarios_origin.clone(),
        quiet_busy: settings.quiet_busy,
        quiet_timeout_s: common.quiet_timeout,
        command: command_line(),
        competing: competing.clone(),
        output_fs: sys::filesystem_of(&ctx.work_dir),
    };
    let sums = report::summarize(&scenarios, &engines, &runs);
    let mut md = report::markdown(&meta, &scenarios, &sums, &runs);
    // The baseline pairs go with the results, before the method.
    let pairs = baseline::markdown(&scenarios, &runs);
    match md.find("\n## How this was measured") {
        Some(i) => md.insert_str(i, &pairs),
        None => md.push_str(&pairs),
    }
    std::fs::write(out.join("results.md"), md)?;
    std::fs::write(out.join("results.csv"), report::csv(&sums))?;
    let m = &meta.machine;
    let json = serde_json::json!({
        "date": date, "time": time,
        "machine": {"host": m.host, "cpu": m.cpu, "cpus": m.cpus, "kernel": m.kernel, "mem_gib": m.mem_gib,
                    "fd_limit": m.fd_limit, "aes_128_gcm_bytes_per_s": aes},
        "versions": meta.versions.iter().map(|(e, v)| (e.name().to_string(), v.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        "command": meta.command,
        "settings": {"duration_s": duration, "repeat": repeat, "quiet_busy_pct": common.quiet_busy_pct,
                     "quiet_timeout_s": common.quiet_timeout, "engines": engines, "scenarios_file": scenarios_origin,
                     "seed": seed, "steal_max_pct": o.steal_max_pct, "steal_reruns": o.steal_reruns,
                     "states": o.states, "free_target_mib": o.memory.free_target_mib, "pool_max_mib": o.memory.pool_max_mib,
                     "fill_timeout_s": o.memory.fill_timeout, "write_probe_mib": o.memory.write_probe_mib,
                     "fresh_wait_s": o.memory.fresh_wait},
        "memory_states": meta.states,
        "machine_not_quiet": competing,
        "interrupted": interrupted,
        "elapsed_s": started.elapsed().as_secs_f64(),
        "scenarios": scenarios,
        "summary": sums,
        "against_baseline": baseline::pairs(&scenarios, &runs),
        "runs": runs,
    });
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    for (i, state) in report::states_of(&runs).into_iter().enumerate() {
        let state_sums: Vec<report::Summary> =
            sums.iter().filter(|s| s.state == state).cloned().collect();
        let title = format!(
            "ringest vs syslog-ng vs rsyslog — {date}, {} × {}, {} state, median of {repeat} × {duration} s",
            m.cpus,
            m.cpu,
            state.name()
        );
        let file = if i == 0 {
            "results.svg".to_string()
        } else {
            format!("results-{}.svg", state.name())
        };
        report::svg(&out.join(file), &title, &scenarios, &engines, &state_sums)?;
    }
    if !o.keep {
        let _ = std::fs::remove_dir_all(out.join("work"));
    }
    let bad: Vec<&Run> = runs
        .iter()
        .filter(|r| !r.superseded && matches!(r.status, Status::Failed | Status::Lost))
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
    let head = format!(
        "{} {} {} run {}/{repeat}{}",
        r.state.name(),
        r.scenario,
        r.engine,
        r.repeat,
        if r.attempt > 1 {
            format!(" (attempt {})", r.attempt)
        } else {
            String::new()
        }
    );
    match r.status {
        Status::NotApplicable => format!("{head}: n/a: {}", r.reason.as_deref().unwrap_or("")),
        Status::Failed => format!("{head}: FAILED: {}", r.reason.as_deref().unwrap_or("")),
        Status::Ok | Status::Lost => format!(
            "{head}: {} msg/s written ({} offered), {:.3} server CPU-µs/msg, {:.3} machine, {:.3} client, \
             {:.1} B/msg, lost {} dup {} corrupt {}, peak RSS {:.0} MiB, steal {:.1}%, write cost {:.2} CPU-s/GB, \
             busy before {:.0}%{}{}",
            report::human(r.written_msg_per_s.unwrap_or(0.0)),
            report::human(r.offered_msg_per_s.unwrap_or(0.0)),
            r.server_cpu_us_per_msg.unwrap_or(f64::NAN),
            r.machine_cpu_us_per_msg.unwrap_or(f64::NAN),
            r.client_cpu_us_per_msg.unwrap_or(f64::NAN),
            r.bytes_per_msg.unwrap_or(f64::NAN),
            r.lost.unwrap_or(0),
            r.duplicated.unwrap_or(0),
            r.corrupted.unwrap_or(0),
            r.peak_rss_kib.unwrap_or(0) as f64 / 1024.0,
            r.steal_pct.unwrap_or(f64::NAN),
            r.write_cost_cpu_s_per_gb.unwrap_or(f64::NAN),
            r.busy_before.unwrap_or(0.0) * 100.0,
            if r.quiet_gave_up { " (not quiet)" } else { "" },
            if r.status == Status::Lost { " LOSS" } else { "" },
        ),
    }
}
