//! results.md, results.csv, results.json and results.svg from the runs:
//! medians of the repeats with min–max, ratios against syslog-ng.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::record::{Run, Status};
use crate::scenario::{Engine, Scenario};

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(mut v: Vec<f64>) -> Option<Stat> {
        v.retain(|x| x.is_finite());
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Stat {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub engine: Engine,
    pub runs: usize,
    pub measured: usize,
    /// Measured with nothing lost, duplicated or corrupted.
    pub ok: usize,
    pub failed: usize,
    pub not_applicable: Option<String>,
    pub failures: Vec<String>,
    pub written_msg_per_s: Option<Stat>,
    pub offered_msg_per_s: Option<Stat>,
    pub server_cpu_us_per_msg: Option<Stat>,
    /// ringest only: the same without its `ringest-writer` thread (the
    /// thread that write()s the output file).
    pub server_cpu_us_per_msg_without_writer: Option<Stat>,
    pub client_cpu_us_per_msg: Option<Stat>,
    pub peak_rss_mib: Option<Stat>,
    pub busy_before_pct: Option<Stat>,
    pub lost: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub quiet_gave_up: usize,
    /// This engine's median msg/s written over syslog-ng's (higher is better).
    pub msg_per_s_vs_syslog_ng: Option<f64>,
    /// This engine's median server CPU-µs per message over syslog-ng's (lower is better).
    pub cpu_vs_syslog_ng: Option<f64>,
}

pub fn summarize(scenarios: &[Scenario], engines: &[Engine], runs: &[Run]) -> Vec<Summary> {
    let mut out = Vec::new();
    for sc in scenarios {
        for &e in engines {
            let rs: Vec<&Run> = runs
                .iter()
                .filter(|r| r.scenario == sc.name && r.engine == e)
                .collect();
            if rs.is_empty() {
                continue;
            }
            let m: Vec<&Run> = rs.iter().copied().filter(|r| r.status.measured()).collect();
            let col =
                |f: &dyn Fn(&Run) -> Option<f64>| Stat::of(m.iter().filter_map(|r| f(r)).collect());
            out.push(Summary {
                scenario: sc.name.clone(),
                engine: e,
                runs: rs.len(),
                measured: m.len(),
                ok: rs.iter().filter(|r| r.status == Status::Ok).count(),
                failed: rs.iter().filter(|r| r.status == Status::Failed).count(),
                not_applicable: rs
                    .iter()
                    .find(|r| r.status == Status::NotApplicable)
                    .map(|r| r.reason.clone().unwrap_or_default()),
                failures: rs
                    .iter()
                    .filter(|r| r.status == Status::Failed)
                    .map(|r| format!("run {}: {}", r.repeat, r.reason.clone().unwrap_or_default()))
                    .collect(),
                written_msg_per_s: col(&|r| r.written_msg_per_s),
                offered_msg_per_s: col(&|r| r.offered_msg_per_s),
                server_cpu_us_per_msg: col(&|r| r.server_cpu_us_per_msg),
                server_cpu_us_per_msg_without_writer: col(&|r| {
                    let w = r.threads_cpu_s.get("ringest-writer")?;
                    let n = r.written? - r.duplicated.unwrap_or(0);
                    let cpu = r.server_cpu_s?;
                    (n > 0).then(|| (cpu - w) * 1e6 / n as f64)
                }),
                client_cpu_us_per_msg: col(&|r| r.client_cpu_us_per_msg),
                peak_rss_mib: col(&|r| r.peak_rss_kib.map(|k| k as f64 / 1024.0)),
                busy_before_pct: Stat::of(
                    rs.iter()
                        .filter_map(|r| r.busy_before.map(|b| b * 100.0))
                        .collect(),
                ),
                lost: m.iter().filter_map(|r| r.lost).sum(),
                duplicated: m.iter().filter_map(|r| r.duplicated).sum(),
                corrupted: m.iter().filter_map(|r| r.corrupted).sum(),
                quiet_gave_up: rs.iter().filter(|r| r.quiet_gave_up).count(),
                msg_per_s_vs_syslog_ng: None,
                cpu_vs_syslog_ng: None,
            });
        }
    }
    // Ratios against syslog-ng in the same scenario (same run of bench).
    let base: BTreeMap<String, (Option<f64>, Option<f64>)> = out
        .iter()
        .filter(|s| s.engine == Engine::SyslogNg)
        .map(|s| {
            (
                s.scenario.clone(),
                (
                    s.written_msg_per_s.map(|x| x.median),
                    s.server_cpu_us_per_msg.map(|x| x.median),
                ),
            )
        })
        .collect();
    for s in &mut out {
        if let Some((bm, bc)) = base.get(&s.scenario) {
            s.msg_per_s_vs_syslog_ng = match (s.written_msg_per_s, bm) {
                (Some(a), Some(b)) if *b > 0.0 => Some(a.median / b),
                _ => None,
            };
            s.cpu_vs_syslog_ng = match (s.server_cpu_us_per_msg, bc) {
                (Some(a), Some(b)) if *b > 0.0 => Some(a.median / b),
                _ => None,
            };
        }
    }
    out
}

// ------------------------------------------------------------ formatting

pub fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn rate_cell(s: &Option<Stat>) -> String {
    match s {
        Some(s) if s.n > 1 => format!("{} ({}–{})", human(s.median), human(s.min), human(s.max)),
        Some(s) => human(s.median),
        None => "—".into(),
    }
}

fn num_cell(s: &Option<Stat>, prec: usize) -> String {
    match s {
        Some(s) if s.n > 1 => format!("{:.p$} ({:.p$}–{:.p$})", s.median, s.min, s.max, p = prec),
        Some(s) => format!("{:.p$}", s.median, p = prec),
        None => "—".into(),
    }
}

fn ratio_cell(r: Option<f64>, e: Engine) -> String {
    match (r, e) {
        (_, Engine::SyslogNg) => "1×".into(),
        (Some(r), _) if r >= 10.0 => format!("{r:.1}×"),
        (Some(r), _) => format!("{r:.2}×"),
        (None, _) => "—".into(),
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub struct Meta {
    pub date: String,
    pub time: String,
    pub machine: crate::sys::Machine,
    pub versions: Vec<(Engine, String)>,
    pub loadgen: String,
    pub duration_s: u32,
    pub repeat: u32,
    pub scenarios_file: String,
    pub quiet_busy: f64,
    pub quiet_timeout_s: u64,
    pub command: String,
    pub competing: Vec<String>,
    /// CPU-s per GB of plain 256 KiB write()s to a new file here, measured
    /// before and after the runs (the page cache's state changes the cost).
    pub write_floor_s_per_gb: Vec<(&'static str, (f64, f64))>,
    /// Filesystem type and device of the engines' output folder.
    pub output_fs: String,
}

pub fn markdown(meta: &Meta, scenarios: &[Scenario], sums: &[Summary], runs: &[Run]) -> String {
    let m = &meta.machine;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# ringest vs syslog-ng vs rsyslog: {} {}\n",
        meta.date, meta.time
    );
    let _ = writeln!(
        s,
        "Machine: `{}`, {} × {} ({} CPUs seen), {:.1} GiB RAM, Linux {}. Server and client share these CPUs.\n",
        m.host, m.cpus, m.cpu, m.cpus, m.mem_gib, m.kernel
    );
    let _ = writeln!(s, "Command: `{}`\n", meta.command);
    let _ = writeln!(s, "Engines:");
    for (e, v) in &meta.versions {
        let _ = writeln!(s, "- {e}: {v}");
    }
    let _ = writeln!(
        s,
        "- client: {} (same command line for every engine)\n",
        meta.loadgen
    );
    let _ = writeln!(
        s,
        "Each figure is the median of {} run(s) of {} s, with min–max in brackets. Scenarios: {}.\n",
        meta.repeat, meta.duration_s, meta.scenarios_file
    );
    if !meta.competing.is_empty() {
        let _ = writeln!(s, "**Machine not quiet.** {}\n", meta.competing.join(" "));
    }
    if !meta.write_floor_s_per_gb.is_empty() {
        let line = scenarios.iter().map(|s| s.size).max().unwrap_or(300) + 1;
        let per: Vec<String> = meta
            .write_floor_s_per_gb
            .iter()
            .map(|(when, (lo, hi))| {
                format!(
                    "{lo:.2}–{hi:.2} CPU-s per GB {when} ({:.3}–{:.3} CPU-µs per {line}-byte line)",
                    lo * f64::from(line) / 1e3,
                    hi * f64::from(line) / 1e3
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "Floor: writing the output alone (three new 512 MiB files of 256 KiB `write()`s in the same folder, \
             no fsync; lowest–highest) cost {}. Every engine pays this per byte written, inside its server CPU \
             below. On a VM it depends on which memory the page cache gets: memory that was free for a while \
             can cost several times more to touch than memory just freed.\n",
            per.join("; ")
        );
    }

    let _ = writeln!(s, "## Results\n");
    let _ = writeln!(
        s,
        "| scenario | engine | msg/s written | vs syslog-ng | server CPU-µs/msg | vs syslog-ng | msg/s offered | client CPU-µs/msg | peak RSS MiB | lost | dup | corrupt | busy before % | runs ok |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for sc in scenarios {
        for x in sums.iter().filter(|x| x.scenario == sc.name) {
            let name = format!("`{}`", sc.name);
            if let Some(r) = &x.not_applicable {
                let _ = writeln!(
                    s,
                    "| {name} | {} | n/a: {} | | | | | | | | | | | |",
                    x.engine,
                    md_escape(r)
                );
                continue;
            }
            if x.measured == 0 {
                let first = x.failures.first().cloned().unwrap_or_default();
                let _ = writeln!(
                    s,
                    "| {name} | {} | FAILED: {} | | | | | | | | | | | 0/{} |",
                    x.engine,
                    md_escape(&truncate(&first, 160)),
                    x.runs
                );
                continue;
            }
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{}{} |",
                x.engine,
                rate_cell(&x.written_msg_per_s),
                ratio_cell(x.msg_per_s_vs_syslog_ng, x.engine),
                num_cell(&x.server_cpu_us_per_msg, 2),
                ratio_cell(x.cpu_vs_syslog_ng, x.engine),
                rate_cell(&x.offered_msg_per_s),
                num_cell(&x.client_cpu_us_per_msg, 2),
                num_cell(&x.peak_rss_mib, 0),
                if x.lost > 0 {
                    format!("**{}**", x.lost)
                } else {
                    "0".into()
                },
                x.duplicated,
                x.corrupted,
                num_cell(&x.busy_before_pct, 0),
                x.ok,
                x.runs,
                if x.quiet_gave_up > 0 {
                    format!(" ({} not quiet)", x.quiet_gave_up)
                } else {
                    String::new()
                },
            );
        }
    }
    let _ = writeln!(s, "\nScenarios:\n");
    for sc in scenarios {
        let _ = writeln!(s, "- `{}`: {}", sc.name, sc.describe_load());
    }

    // Goals.
    let mut g = String::new();
    for sc in scenarios {
        let Some(r) = sums
            .iter()
            .find(|x| x.scenario == sc.name && x.engine == Engine::Ringest)
        else {
            continue;
        };
        let goals = &sc.goals;
        let mut row = |what: String,
                       measured: Option<f64>,
                       fmt: &dyn Fn(f64) -> String,
                       ok: &dyn Fn(f64) -> bool| {
            let (m, verdict) = match measured {
                Some(v) => (fmt(v), if ok(v) { "met" } else { "**not met**" }),
                None => ("not measured".into(), "**not measured**"),
            };
            let _ = writeln!(g, "| `{}` | {what} | {m} | {verdict} |", sc.name);
        };
        if let Some(min) = goals.msg_per_s_vs_syslog_ng_min {
            row(
                format!("msg/s ≥ {min}× syslog-ng's"),
                r.msg_per_s_vs_syslog_ng,
                &|v| format!("{v:.2}×"),
                &|v| v >= min,
            );
        }
        if let Some(max) = goals.cpu_vs_syslog_ng_max {
            row(
                format!(
                    "server CPU-µs/msg ≤ {max}× syslog-ng's (1/{:.0})",
                    1.0 / max
                ),
                r.cpu_vs_syslog_ng,
                &|v| format!("{v:.3}× (1/{:.1})", 1.0 / v),
                &|v| v <= max,
            );
        }
        if let Some(max) = goals.cpu_us_per_msg_max {
            let without = r
                .server_cpu_us_per_msg_without_writer
                .map(|x| format!(" (without the ringest-writer thread: {:.3})", x.median))
                .unwrap_or_default();
            row(
                format!("server CPU-µs/msg ≤ {max}"),
                r.server_cpu_us_per_msg.map(|x| x.median),
                &|v| format!("{v:.3}{without}"),
                &|v| v <= max,
            );
        }
    }
    let lost_total: u64 = sums
        .iter()
        .map(|x| x.lost + x.duplicated + x.corrupted)
        .sum();
    let failed_total: usize = sums.iter().map(|x| x.failed).sum();
    let _ = writeln!(s, "\n## ringest's goals\n");
    if !g.is_empty() {
        let _ = writeln!(
            s,
            "| scenario | goal | measured (median) | |\n|---|---|---|---|\n{g}"
        );
    }
    let _ = writeln!(
        s,
        "Zero loss everywhere: {} (lost + duplicated + corrupted over all measured runs: {lost_total}; failed runs: {failed_total}).\n",
        if lost_total == 0 { "met" } else { "**not met**" }
    );

    // How the work was split.
    let _ = writeln!(s, "## Where the CPU went (median run)\n");
    let _ = writeln!(
        s,
        "Server CPU-seconds per thread over the run, and messages per busy connection as loadgen sent them. \
         ringest's connections reach its shards through SO_REUSEPORT's hash, which is lumpy with few connections: \
         a shard with no CPU-seconds got no busy connection. For ringest, from its /metrics: \
         back-pressure pauses (the writer's ring was full), frame bytes copied because a frame spanned two receive \
         buffers, and TLS record bytes copied because a record spanned two receive buffers, as a share of bytes received.\n"
    );
    let _ = writeln!(
        s,
        "| scenario | engine | threads (CPU-s) | messages per connection | ringest counters |\n|---|---|---|---|---|"
    );
    for sc in scenarios {
        for x in sums
            .iter()
            .filter(|x| x.scenario == sc.name && x.measured > 0)
        {
            let Some(med) = x.written_msg_per_s.map(|m| m.median) else {
                continue;
            };
            let r = runs
                .iter()
                .filter(|r| r.scenario == sc.name && r.engine == x.engine && r.status.measured())
                .min_by(|a, b| {
                    let d = |r: &Run| (r.written_msg_per_s.unwrap_or(0.0) - med).abs();
                    d(a).total_cmp(&d(b))
                });
            let Some(r) = r else { continue };
            let mut th: Vec<(&String, &f64)> = r.threads_cpu_s.iter().collect();
            th.sort_by(|a, b| b.1.total_cmp(a.1));
            let th: Vec<String> = th
                .iter()
                .take(6)
                .map(|(n, c)| format!("{} {:.2}", md_escape(n), c))
                .collect();
            let conns = if r.per_connection_sent.len() <= 8 {
                r.per_connection_sent
                    .iter()
                    .map(|c| human(*c as f64))
                    .collect::<Vec<_>>()
                    .join(" / ")
            } else {
                format!("{} connections", r.per_connection_sent.len())
            };
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} | {} |",
                sc.name,
                x.engine,
                th.join(", "),
                conns,
                ringest_counters(r)
            );
        }
    }

    let problems: Vec<&Run> = runs
        .iter()
        .filter(|r| r.status == Status::Failed || r.status == Status::Lost)
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(s, "\n## Failed runs and runs with loss\n");
        for r in problems {
            let _ = writeln!(
                s,
                "- `{}` {} run {}: {:?}: {} (files: `{}`)",
                r.scenario,
                r.engine,
                r.repeat,
                r.status,
                md_escape(&truncate(r.reason.as_deref().unwrap_or(""), 400)),
                r.run_dir
            );
        }
    }

    let _ = writeln!(s, "\n## How this was measured\n");
    let _ = write!(
        s,
        "- Every engine started fresh per run, in the foreground, with its own files, on 127.0.0.1; the load began once its port listened.\n\
         - Before each run bench waited for a quiet machine: 1-s windows of /proc/stat until at most {:.0}% of all CPUs were busy, for up to {} s (\"busy before\" is the last window; \"not quiet\" counts runs that started anyway).\n\
         - Load: `loadgen send` with the same arguments for every engine (`runs/<scenario>/<engine>-<n>/loadgen.args`); loadgen runs on one thread. \"msg/s offered\" is what loadgen handed to the kernel per second of sending.\n\
         - \"msg/s written\" is the messages `loadgen verify` found in the engine's output file, divided by the time from the start of sending until the output stopped growing (unchanged for 1 s).\n\
         - Server CPU is utime+stime of the engine's whole process (all threads) from /proc/PID/stat, from just before the load until the output stopped growing; per message written. Client CPU is loadgen's getrusage.\n\
         - Peak RSS is the engine's VmHWM. Lost/dup/corrupt come from `loadgen verify --expect-json` on the output, after the engine was stopped by PID with SIGTERM.\n\
         - Output files go to `work/` under the results folder ({fs}), and are deleted after each run. The kernel's writeback (kworker threads) is in no engine's CPU figure but takes CPU from the same cores; an engine writing faster than about 0.25 GB/s for 10 s crosses the kernel's background dirty threshold (10% of RAM) within the run, so its writeback overlaps the load.\n\
         - Outputs: ringest `format = \"raw\"`, `fsync = \"never\"`; syslog-ng `file()` with `template(\"${{MSG}}\\n\")`; rsyslog `omfile` with `%rawmsg%\\n`. None fsyncs (the peers' defaults).\n\
         - syslog-ng: `max-connections(max(64, conns+64)) log-iw-size(10000 × max-connections) log-fetch-limit(1000)`, `flags(flow-control)`, threaded. rsyslog: imtcp + gtls (imptcp for plain TCP), `gnutlsPriorityString=\"NORMAL\"`, a 200k FixedArray ruleset queue dequeued in batches of 4096. The generated configs are in `runs/`.\n",
        meta.quiet_busy * 100.0,
        meta.quiet_timeout_s,
        fs = meta.output_fs
    );
    s
}

/// Sum of a ringest metric over its label sets.
fn metric(r: &Run, name: &str) -> Option<f64> {
    let v: Vec<f64> = r
        .engine_metrics
        .iter()
        .filter(|(k, _)| k.as_str() == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| *v)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum())
}

fn ringest_counters(r: &Run) -> String {
    if r.engine != Engine::Ringest || r.engine_metrics.is_empty() {
        return String::new();
    }
    let rx = metric(r, "ringest_bytes_received_total")
        .unwrap_or(0.0)
        .max(1.0);
    let pct = |v: Option<f64>| {
        v.map(|v| format!("{:.1}%", v * 100.0 / rx))
            .unwrap_or("—".into())
    };
    format!(
        "pauses {}, frame copies {}, TLS reassembly copies {}",
        metric(r, "ringest_backpressure_pauses_total")
            .map(|v| format!("{v:.0}"))
            .unwrap_or("—".into()),
        pct(metric(r, "ringest_copied_bytes_total")),
        pct(metric(r, "ringest_tls_reassembly_copied_bytes_total")),
    )
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

pub fn csv(sums: &[Summary]) -> String {
    let mut s = String::from(
        "scenario,engine,runs,measured,failed,written_msg_per_s_median,written_msg_per_s_min,written_msg_per_s_max,\
         msg_per_s_vs_syslog_ng,server_cpu_us_per_msg_median,server_cpu_us_per_msg_min,server_cpu_us_per_msg_max,\
         cpu_vs_syslog_ng,offered_msg_per_s_median,offered_msg_per_s_min,offered_msg_per_s_max,\
         client_cpu_us_per_msg_median,peak_rss_mib_median,peak_rss_mib_max,lost,duplicated,corrupted,\
         busy_before_pct_median,not_quiet_runs,note\n",
    );
    let f = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_default();
    for x in sums {
        let note = x
            .not_applicable
            .as_ref()
            .map(|r| format!("n/a: {r}"))
            .or_else(|| x.failures.first().map(|r| format!("failed: {r}")))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"",
            x.scenario,
            x.engine,
            x.runs,
            x.measured,
            x.failed,
            f(x.written_msg_per_s.map(|v| v.median)),
            f(x.written_msg_per_s.map(|v| v.min)),
            f(x.written_msg_per_s.map(|v| v.max)),
            f(x.msg_per_s_vs_syslog_ng),
            f(x.server_cpu_us_per_msg.map(|v| v.median)),
            f(x.server_cpu_us_per_msg.map(|v| v.min)),
            f(x.server_cpu_us_per_msg.map(|v| v.max)),
            f(x.cpu_vs_syslog_ng),
            f(x.offered_msg_per_s.map(|v| v.median)),
            f(x.offered_msg_per_s.map(|v| v.min)),
            f(x.offered_msg_per_s.map(|v| v.max)),
            f(x.client_cpu_us_per_msg.map(|v| v.median)),
            f(x.peak_rss_mib.map(|v| v.median)),
            f(x.peak_rss_mib.map(|v| v.max)),
            x.lost,
            x.duplicated,
            x.corrupted,
            f(x.busy_before_pct.map(|v| v.median)),
            x.quiet_gave_up,
            note.replace('"', "'").replace('\n', " ")
        );
    }
    s
}

// ------------------------------------------------------------ chart

fn engine_color(e: Engine) -> plotters::style::RGBColor {
    use plotters::style::RGBColor;
    match e {
        Engine::Ringest => RGBColor(0xd9, 0x5f, 0x02),
        Engine::SyslogNg => RGBColor(0x1b, 0x9e, 0x77),
        Engine::Rsyslog => RGBColor(0x75, 0x70, 0xb3),
    }
}

/// Two bar charts, one above the other: msg/s written and server CPU-µs per
/// message, grouped by scenario, one bar per engine, min–max whiskers.
pub fn svg(
    path: &Path,
    title: &str,
    scenarios: &[Scenario],
    engines: &[Engine],
    sums: &[Summary],
) -> Result<()> {
    use plotters::prelude::*;

    let n = scenarios.len().max(1);
    let width = (180 * n as u32).max(900);
    let root = SVGBackend::new(path, (width, 980)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let panels = root.split_evenly((2, 1));

    type Pick = fn(&Summary) -> Option<Stat>;
    type Fmt = fn(f64) -> String;
    let charts: [(&str, Pick, Fmt); 2] = [
        (
            "messages per second written (higher is better)",
            |s| s.written_msg_per_s,
            human,
        ),
        (
            "server CPU-µs per message (lower is better)",
            |s| s.server_cpu_us_per_msg,
            |v| format!("{v:.2}"),
        ),
    ];
    let ne = engines.len().max(1) as f64;
    let bar_w = 0.8 / ne;
    for (panel, (caption, pick, fmt)) in panels.iter().zip(charts) {
        let ymax = sums
            .iter()
            .filter_map(|s| pick(s).map(|x| x.max))
            .fold(0.0f64, f64::max)
            .max(1e-9)
            * 1.18;
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..n as f64, 0f64..ymax)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| fmt(*v))
            .draw()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        for (i, sc) in scenarios.iter().enumerate() {
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at((i as f64 + 0.5, 0.0))
                        + Text::new(
                            sc.name.clone(),
                            (-(sc.name.len() as i32) * 3, 8),
                            ("sans-serif", 12),
                        ),
                ))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        for (k, &e) in engines.iter().enumerate() {
            let color = engine_color(e);
            let mut bars = Vec::new();
            let mut whiskers = Vec::new();
            let mut labels = Vec::new();
            for (i, sc) in scenarios.iter().enumerate() {
                let x0 = i as f64 + 0.1 + k as f64 * bar_w;
                let x1 = x0 + bar_w * 0.92;
                let xm = (x0 + x1) / 2.0;
                let Some(sum) = sums.iter().find(|s| s.scenario == sc.name && s.engine == e) else {
                    continue;
                };
                match pick(sum) {
                    Some(st) => {
                        bars.push(Rectangle::new([(x0, 0.0), (x1, st.median)], color.filled()));
                        if st.n > 1 {
                            whiskers.push(PathElement::new(
                                vec![(xm, st.min), (xm, st.max)],
                                BLACK.stroke_width(1),
                            ));
                        }
                        labels.push((xm, st.max, fmt(st.median)));
                    }
                    None => {
                        let why = if sum.not_applicable.is_some() {
                            "n/a"
                        } else {
                            "failed"
                        };
                        labels.push((xm, 0.0, why.to_string()));
                    }
                }
            }
            chart
                .draw_series(bars)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?
                .label(e.name())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
            chart
                .draw_series(whiskers)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            chart
                .draw_series(labels.into_iter().map(|(x, y, t)| {
                    let w = t.len() as i32 * 3;
                    EmptyElement::at((x, y)) + Text::new(t, (-w, -14), ("sans-serif", 10))
                }))
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    root.present()
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(Stat::of(vec![3.0, 1.0, 2.0]).unwrap().median, 2.0);
        let s = Stat::of(vec![4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 4.0, 4));
        assert!(Stat::of(vec![]).is_none());
    }

    #[test]
    fn human_rates() {
        assert_eq!(human(1_790_000.0), "1.79M");
        assert_eq!(human(504_265.0), "504k");
    }
}
