//! results.md, results.csv, results.json and results.svg from the runs.
//!
//! Ratios are paired (issue 11): within one repeat the engines ran one right
//! after the other, so each repeat gives one ratio against syslog-ng, and
//! the table shows the median of those ratios with min–max. A ratio of two
//! medians taken over unpaired runs can pass a goal that no single repeat
//! passed; it is kept only as a reference column. Every goal's verdict comes
//! from the paired median.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::record::{MemState, Run, Status};
use crate::scenario::{Engine, Scenario, Work};

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
    pub state: MemState,
    pub scenario: String,
    pub work: Work,
    pub engine: Engine,
    /// Runs that count (superseded reruns left out).
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
    /// Machine-wide busy CPU minus loadgen's, per message.
    pub machine_cpu_us_per_msg: Option<Stat>,
    pub client_cpu_us_per_msg: Option<Stat>,
    pub peak_rss_mib: Option<Stat>,
    pub busy_before_pct: Option<Stat>,
    pub steal_pct: Option<Stat>,
    pub machine_busy_pct: Option<Stat>,
    pub bytes_per_msg: Option<Stat>,
    pub gb_written: Option<Stat>,
    pub write_cost_cpu_s_per_gb: Option<Stat>,
    pub mem_free_gib_before: Option<Stat>,
    pub lost: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub quiet_gave_up: usize,
    /// Runs kept although their steal was over the threshold (reruns ran out).
    pub steal_flagged: usize,
    /// Runs replaced by a rerun of their repeat.
    pub superseded: usize,
    /// Steady state: runs whose top-up did not reach the MemFree target.
    pub steady_not_reached: usize,
    /// Paired: per repeat, this engine's msg/s over syslog-ng's in the same
    /// repeat; median and min–max over the repeats (higher is better).
    pub msg_per_s_vs_syslog_ng: Option<Stat>,
    /// Paired, server CPU-µs per message (lower is better).
    pub cpu_vs_syslog_ng: Option<Stat>,
    /// Paired, machine-wide CPU-µs per message (lower is better).
    pub machine_cpu_vs_syslog_ng: Option<Stat>,
    /// Median over median (unpaired): a reference only, never a verdict.
    pub msg_per_s_vs_syslog_ng_unpaired: Option<f64>,
    pub cpu_vs_syslog_ng_unpaired: Option<f64>,
}

/// The states present in `runs`, steady first.
pub fn states_of(runs: &[Run]) -> Vec<MemState> {
    let mut v: Vec<MemState> = runs.iter().map(|r| r.state).collect();
    v.sort();
    v.dedup();
    v
}

/// Per repeat, each measured run of `e` with syslog-ng's measured run of
/// the same repeat; repeats without both are left out. `runs` are the
/// counted runs of one state and scenario.
pub fn with_baseline<'a>(
    runs: &'a [&'a Run],
    e: Engine,
) -> impl Iterator<Item = (&'a Run, &'a Run)> + 'a {
    runs.iter()
        .filter(move |r| r.engine == e && r.status.measured())
        .filter_map(|r| {
            runs.iter()
                .find(|b| {
                    b.engine == Engine::SyslogNg && b.repeat == r.repeat && b.status.measured()
                })
                .map(|b| (*r, *b))
        })
}

/// Per repeat: `f(engine's run) / f(syslog-ng's run)`, for the repeats
/// where both were measured ([`with_baseline`]).
fn paired(runs: &[&Run], e: Engine, f: &dyn Fn(&Run) -> Option<f64>) -> Option<Stat> {
    let v = with_baseline(runs, e)
        .filter_map(|(r, b)| match (f(r), f(b)) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y),
            _ => None,
        })
        .collect();
    Stat::of(v)
}

fn unpaired(a: Option<Stat>, b: Option<Stat>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => Some(a.median / b.median),
        _ => None,
    }
}

pub fn summarize(scenarios: &[Scenario], engines: &[Engine], runs: &[Run]) -> Vec<Summary> {
    let mut out = Vec::new();
    for state in states_of(runs) {
        for sc in scenarios {
            let counted: Vec<&Run> = runs
                .iter()
                .filter(|r| r.state == state && r.scenario == sc.name && !r.superseded)
                .collect();
            for &e in engines {
                let rs: Vec<&Run> = counted.iter().copied().filter(|r| r.engine == e).collect();
                if rs.is_empty() {
                    continue;
                }
                let m: Vec<&Run> = rs.iter().copied().filter(|r| r.status.measured()).collect();
                let col = |f: &dyn Fn(&Run) -> Option<f64>| {
                    Stat::of(m.iter().filter_map(|r| f(r)).collect())
                };
                let mut s = Summary {
                    state,
                    scenario: sc.name.clone(),
                    work: sc.work,
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
                        .map(|r| {
                            format!("run {}: {}", r.repeat, r.reason.clone().unwrap_or_default())
                        })
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
                    machine_cpu_us_per_msg: col(&|r| r.machine_cpu_us_per_msg),
                    client_cpu_us_per_msg: col(&|r| r.client_cpu_us_per_msg),
                    peak_rss_mib: col(&|r| r.peak_rss_kib.map(|k| k as f64 / 1024.0)),
                    busy_before_pct: Stat::of(
                        rs.iter()
                            .filter_map(|r| r.busy_before.map(|b| b * 100.0))
                            .collect(),
                    ),
                    steal_pct: col(&|r| r.steal_pct),
                    machine_busy_pct: col(&|r| r.machine_busy_pct),
                    bytes_per_msg: col(&|r| r.bytes_per_msg),
                    gb_written: col(&|r| r.bytes_written.map(|b| b as f64 / 1e9)),
                    write_cost_cpu_s_per_gb: Stat::of(
                        rs.iter()
                            .filter_map(|r| r.write_cost_cpu_s_per_gb)
                            .collect(),
                    ),
                    mem_free_gib_before: Stat::of(
                        rs.iter()
                            .filter_map(|r| r.mem_free_mib_before.map(|m| m / 1024.0))
                            .collect(),
                    ),
                    lost: m.iter().filter_map(|r| r.lost).sum(),
                    duplicated: m.iter().filter_map(|r| r.duplicated).sum(),
                    corrupted: m.iter().filter_map(|r| r.corrupted).sum(),
                    quiet_gave_up: rs.iter().filter(|r| r.quiet_gave_up).count(),
                    steal_flagged: rs.iter().filter(|r| r.flag.is_some()).count(),
                    superseded: runs
                        .iter()
                        .filter(|r| {
                            r.state == state
                                && r.scenario == sc.name
                                && r.engine == e
                                && r.superseded
                        })
                        .count(),
                    steady_not_reached: rs
                        .iter()
                        .filter(|r| r.steady_reached == Some(false))
                        .count(),
                    msg_per_s_vs_syslog_ng: None,
                    cpu_vs_syslog_ng: None,
                    machine_cpu_vs_syslog_ng: None,
                    msg_per_s_vs_syslog_ng_unpaired: None,
                    cpu_vs_syslog_ng_unpaired: None,
                };
                s.msg_per_s_vs_syslog_ng = paired(&counted, e, &|r| r.written_msg_per_s);
                s.cpu_vs_syslog_ng = paired(&counted, e, &|r| r.server_cpu_us_per_msg);
                s.machine_cpu_vs_syslog_ng = paired(&counted, e, &|r| r.machine_cpu_us_per_msg);
                out.push(s);
            }
        }
    }
    // Unpaired references: against syslog-ng's medians in the same state.
    let base: Vec<(MemState, String, Option<Stat>, Option<Stat>)> = out
        .iter()
        .filter(|s| s.engine == Engine::SyslogNg)
        .map(|s| {
            (
                s.state,
                s.scenario.clone(),
                s.written_msg_per_s,
                s.server_cpu_us_per_msg,
            )
        })
        .collect();
    for s in &mut out {
        if let Some((_, _, bm, bc)) = base
            .iter()
            .find(|(st, sc, _, _)| *st == s.state && *sc == s.scenario)
        {
            s.msg_per_s_vs_syslog_ng_unpaired = unpaired(s.written_msg_per_s, *bm);
            s.cpu_vs_syslog_ng_unpaired = unpaired(s.server_cpu_us_per_msg, *bc);
        }
    }
    out
}

/// One of ringest's goals, checked on one state's summary.
#[derive(Debug, Clone)]
pub struct GoalCheck {
    pub what: String,
    /// The figure the verdict uses: a paired ratio, or ringest's own median.
    pub measured: Option<Stat>,
    /// For ratio goals, the unpaired ratio of medians (reference only).
    pub unpaired: Option<f64>,
    pub ratio: bool,
    /// None when not measured.
    pub met: Option<bool>,
}

/// ringest's goals for `sc`, judged on the paired median ratios of `r`
/// (ringest's summary in one state).
pub fn goal_checks(sc: &Scenario, r: &Summary) -> Vec<GoalCheck> {
    let g = &sc.goals;
    let mut out = Vec::new();
    if let Some(min) = g.msg_per_s_vs_syslog_ng_min {
        out.push(GoalCheck {
            what: format!("msg/s ≥ {min}× syslog-ng's"),
            measured: r.msg_per_s_vs_syslog_ng,
            unpaired: r.msg_per_s_vs_syslog_ng_unpaired,
            ratio: true,
            met: r.msg_per_s_vs_syslog_ng.map(|s| s.median >= min),
        });
    }
    if let Some(max) = g.cpu_vs_syslog_ng_max {
        out.push(GoalCheck {
            what: format!(
                "server CPU-µs/msg ≤ {max}× syslog-ng's (1/{:.0})",
                1.0 / max
            ),
            measured: r.cpu_vs_syslog_ng,
            unpaired: r.cpu_vs_syslog_ng_unpaired,
            ratio: true,
            met: r.cpu_vs_syslog_ng.map(|s| s.median <= max),
        });
    }
    if let Some(max) = g.cpu_us_per_msg_max {
        out.push(GoalCheck {
            what: format!("server CPU-µs/msg ≤ {max}"),
            measured: r.server_cpu_us_per_msg,
            unpaired: None,
            ratio: false,
            met: r.server_cpu_us_per_msg.map(|s| s.median <= max),
        });
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

/// A figure's median (min–max), or the median alone from one run.
pub fn num_cell(s: &Option<Stat>, prec: usize) -> String {
    match s {
        Some(s) if s.n > 1 => format!("{:.p$} ({:.p$}–{:.p$})", s.median, s.min, s.max, p = prec),
        Some(s) => format!("{:.p$}", s.median, p = prec),
        None => "—".into(),
    }
}

fn ratio_fmt(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.3}×")
    }
}

/// A paired ratio: median (min–max) over the repeats.
fn ratio_cell(r: &Option<Stat>, e: Engine) -> String {
    match (r, e) {
        (_, Engine::SyslogNg) => "1×".into(),
        (Some(s), _) if s.n > 1 => format!(
            "{} ({}–{})",
            ratio_fmt(s.median),
            ratio_fmt(s.min),
            ratio_fmt(s.max)
        ),
        (Some(s), _) => ratio_fmt(s.median),
        (None, _) => "—".into(),
    }
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// How one memory state was prepared, for the tables.
#[derive(Debug, Clone, Serialize)]
pub struct StateInfo {
    pub state: MemState,
    /// One line: how the state was made and kept.
    pub how: String,
    /// The first fill (steady state).
    pub first_fill: Option<String>,
}

pub struct Meta {
    pub date: String,
    pub time: String,
    pub machine: crate::sys::Machine,
    /// `openssl speed -evp aes-128-gcm` at 16 KiB blocks, bytes per second.
    pub aes_gcm_bytes_per_s: Option<f64>,
    pub versions: Vec<(Engine, String)>,
    pub loadgen: String,
    pub duration_s: u32,
    pub repeat: u32,
    pub seed: u64,
    pub steal_max_pct: f64,
    pub steal_reruns: u32,
    pub probe_mib: u64,
    pub states: Vec<StateInfo>,
    pub scenarios_file: String,
    pub quiet_busy: f64,
    pub quiet_timeout_s: u64,
    pub command: String,
    pub competing: Vec<String>,
    /// Filesystem type and device of the engines' output folder.
    pub output_fs: String,
}

impl Meta {
    /// The machine in one line: every table carries it.
    pub fn machine_line(&self) -> String {
        let m = &self.machine;
        format!(
            "{} × {}, {:.1} GiB RAM, Linux {}; AES-128-GCM {}",
            m.cpus,
            m.cpu,
            m.mem_gib,
            m.kernel,
            self.aes_gcm_bytes_per_s
                .map(|b| format!(
                    "{:.2} GB/s per core (openssl speed, 16 KiB blocks)",
                    b / 1e9
                ))
                .unwrap_or_else(|| "speed not measured".into())
        )
    }

    /// The caption under every table: machine, state and its write cost
    /// (the median of every probe in that state, as in the states table).
    fn caption(&self, state: MemState, runs: &[Run]) -> String {
        let cost = Stat::of(
            runs.iter()
                .filter(|r| r.state == state)
                .filter_map(|r| r.write_cost_cpu_s_per_gb)
                .collect(),
        );
        format!(
            "*Machine: {}. Memory state: **{}**; page-cache write cost {} CPU-s per GB.*",
            self.machine_line(),
            state.name(),
            cost.map(|c| format!("{:.2}", c.median))
                .unwrap_or_else(|| "not measured".into())
        )
    }
}

fn state_sums(sums: &[Summary], state: MemState) -> impl Iterator<Item = &Summary> {
    sums.iter().filter(move |s| s.state == state)
}

fn runs_ok_cell(x: &Summary) -> String {
    let mut notes = Vec::new();
    if x.quiet_gave_up > 0 {
        notes.push(format!("{} not quiet", x.quiet_gave_up));
    }
    if x.superseded > 0 {
        notes.push(format!("{} rerun for steal", x.superseded));
    }
    if x.steal_flagged > 0 {
        notes.push(format!("**{} steal over limit**", x.steal_flagged));
    }
    if x.steady_not_reached > 0 {
        notes.push(format!("**{} not steady**", x.steady_not_reached));
    }
    let mut c = format!("{}/{}", x.ok, x.runs);
    if !notes.is_empty() {
        c += &format!(" ({})", notes.join(", "));
    }
    c
}

/// Raw work: every engine must write as many bytes per message as ringest.
fn bytes_cell(x: &Summary, sums: &[Summary]) -> String {
    let Some(b) = x.bytes_per_msg else {
        return "—".into();
    };
    let own = format!("{:.1}", b.median);
    let ringest = sums
        .iter()
        .find(|s| s.state == x.state && s.scenario == x.scenario && s.engine == Engine::Ringest)
        .and_then(|s| s.bytes_per_msg);
    match ringest {
        Some(r) if x.work == Work::Raw && (r.median - b.median).abs() > 0.05 => {
            format!("**{own} (ringest {:.1})**", r.median)
        }
        _ => own,
    }
}

fn not_measured_row(x: &Summary, name: &str, cols: usize) -> Option<String> {
    let blanks = " |".repeat(cols.saturating_sub(3));
    if let Some(r) = &x.not_applicable {
        return Some(format!(
            "| {name} | {} | n/a: {} |{blanks}",
            x.engine,
            md_escape(r)
        ));
    }
    if x.measured == 0 {
        let first = x.failures.first().cloned().unwrap_or_default();
        return Some(format!(
            "| {name} | {} | FAILED: {} |{} 0/{} |",
            x.engine,
            md_escape(&truncate(&first, 160)),
            " |".repeat(cols.saturating_sub(4)),
            x.runs
        ));
    }
    None
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
        "Machine: `{}`, {}. Server and client share these CPUs. **Absolute figures hold for this machine only**: \
         the same scenarios on another CPU model of the same VM kind moved ringest's figures by 2× and syslog-ng's hardly. \
         Compare engines by the paired ratios, which come first.\n",
        m.host,
        meta.machine_line()
    );
    let _ = writeln!(s, "Command: `{}`\n", meta.command);
    let _ = writeln!(s, "Engines:");
    for (e, v) in &meta.versions {
        let _ = writeln!(s, "- {e}: {v}");
    }
    let _ = writeln!(
        s,
        "- client: {} (same command line for every engine; its TCP congestion control as each scenario says, \
         `client_congestion`, this machine's default being {})\n",
        meta.loadgen, meta.machine.tcp_congestion
    );
    let _ = writeln!(
        s,
        "{} repeat(s) of {} s per scenario, engine and state. In each repeat the engines of a scenario ran one right \
         after the other, in a random order (seed {}). Each ratio is computed within a repeat; the tables show the \
         median of those ratios, with min–max in brackets, and every goal's verdict uses that paired median. \
         A repeat in which any run's host steal exceeded {:.1}% was run again (up to {} times). Scenarios: {}.\n",
        meta.repeat,
        meta.duration_s,
        meta.seed,
        meta.steal_max_pct,
        meta.steal_reruns,
        meta.scenarios_file
    );
    if !meta.competing.is_empty() {
        let _ = writeln!(s, "**Machine not quiet.** {}\n", meta.competing.join(" "));
    }

    // The states, and the write cost of each.
    let states: Vec<MemState> = meta.states.iter().map(|i| i.state).collect();
    let _ = writeln!(s, "## Memory states\n");
    let _ = writeln!(
        s,
        "Page-cache write cost: CPU-seconds per GB of writing {} MiB as 256 KiB `write()`s into a new file in the output folder ({}), \
         no fsync (like `dd bs=256K`), measured by bench before every run; median (min–max) of those runs. \
         Every engine pays this per byte it writes.\n",
        meta.probe_mib, meta.output_fs
    );
    let _ = writeln!(
        s,
        "| state | how | page-cache write cost, CPU-s/GB | MemFree at the start of a run, GiB | runs |\n|---|---|---|---|---|"
    );
    for info in &meta.states {
        let rs: Vec<&Run> = runs
            .iter()
            .filter(|r| r.state == info.state && r.status != Status::NotApplicable)
            .collect();
        let cost = Stat::of(
            rs.iter()
                .filter_map(|r| r.write_cost_cpu_s_per_gb)
                .collect(),
        );
        let free = Stat::of(
            rs.iter()
                .filter_map(|r| r.mem_free_mib_before.map(|m| m / 1024.0))
                .collect(),
        );
        let mut how = info.how.clone();
        if let Some(f) = &info.first_fill {
            how += &format!(" First fill: {f}.");
        }
        let _ = writeln!(
            s,
            "| **{}** | {} | {} | {} | {} |",
            info.state.name(),
            md_escape(&how),
            num_cell(&cost, 2),
            num_cell(&free, 1),
            rs.len()
        );
    }
    let _ = writeln!(s);

    for &state in &states {
        let _ = writeln!(
            s,
            "## {}: ratios against syslog-ng (paired)\n",
            state.title()
        );
        let _ = writeln!(s, "{}\n", meta.caption(state, runs));
        let _ = writeln!(
            s,
            "| scenario | engine | msg/s vs syslog-ng | server CPU/msg vs syslog-ng | machine CPU/msg vs syslog-ng | bytes written per msg | runs ok |\n|---|---|---|---|---|---|---|"
        );
        for sc in scenarios {
            for x in state_sums(sums, state).filter(|x| x.scenario == sc.name) {
                let name = format!("`{}` ({})", sc.name, sc.work.name());
                if let Some(row) = not_measured_row(x, &name, 7) {
                    let _ = writeln!(s, "{row}");
                    continue;
                }
                let _ = writeln!(
                    s,
                    "| {name} | {} | {} | {} | {} | {} | {} |",
                    x.engine,
                    ratio_cell(&x.msg_per_s_vs_syslog_ng, x.engine),
                    ratio_cell(&x.cpu_vs_syslog_ng, x.engine),
                    ratio_cell(&x.machine_cpu_vs_syslog_ng, x.engine),
                    bytes_cell(x, sums),
                    runs_ok_cell(x),
                );
            }
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "## {}: figures on this machine\n", state.title());
        let _ = writeln!(s, "{}\n", meta.caption(state, runs));
        let _ = writeln!(
            s,
            "| scenario | engine | msg/s written | server CPU-µs/msg | machine CPU-µs/msg | GB written | steal % | machine busy % | msg/s offered | client CPU-µs/msg | peak RSS MiB | lost | dup | corrupt | runs ok |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for sc in scenarios {
            for x in state_sums(sums, state).filter(|x| x.scenario == sc.name) {
                let name = format!("`{}`", sc.name);
                if let Some(row) = not_measured_row(x, &name, 15) {
                    let _ = writeln!(s, "{row}");
                    continue;
                }
                let _ = writeln!(
                    s,
                    "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    x.engine,
                    rate_cell(&x.written_msg_per_s),
                    num_cell(&x.server_cpu_us_per_msg, 2),
                    num_cell(&x.machine_cpu_us_per_msg, 2),
                    num_cell(&x.gb_written, 2),
                    num_cell(&x.steal_pct, 1),
                    num_cell(&x.machine_busy_pct, 0),
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
                    runs_ok_cell(x),
                );
            }
        }
        let _ = writeln!(s);
    }

    if states.len() > 1 {
        let _ = writeln!(s, "## The states side by side\n");
        let _ = writeln!(
            s,
            "*Machine: {}.* Medians; msg/s written, then server and machine-wide CPU-µs per message.\n",
            meta.machine_line()
        );
        let mut head = "| scenario | engine |".to_string();
        let mut rule = "|---|---|".to_string();
        for st in &states {
            head += &format!(
                " {0} msg/s | {0} server CPU-µs | {0} machine CPU-µs |",
                st.name()
            );
            rule += "---|---|---|";
        }
        let _ = writeln!(s, "{head}\n{rule}");
        for sc in scenarios {
            for &e in Engine::ALL.iter() {
                let per: Vec<Option<&Summary>> = states
                    .iter()
                    .map(|st| {
                        sums.iter()
                            .find(|x| x.state == *st && x.scenario == sc.name && x.engine == e)
                    })
                    .collect();
                if per.iter().all(|p| p.is_none_or(|x| x.measured == 0)) {
                    continue;
                }
                let mut row = format!("| `{}` | {e} |", sc.name);
                for p in per {
                    match p.filter(|x| x.measured > 0) {
                        Some(x) => {
                            row += &format!(
                                " {} | {} | {} |",
                                x.written_msg_per_s
                                    .map(|v| human(v.median))
                                    .unwrap_or("—".into()),
                                x.server_cpu_us_per_msg
                                    .map(|v| format!("{:.2}", v.median))
                                    .unwrap_or("—".into()),
                                x.machine_cpu_us_per_msg
                                    .map(|v| format!("{:.2}", v.median))
                                    .unwrap_or("—".into()),
                            )
                        }
                        None => row += " — | — | — |",
                    }
                }
                let _ = writeln!(s, "{row}");
            }
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "\nScenarios:\n");
    for sc in scenarios {
        let _ = writeln!(s, "- `{}`: {}", sc.name, sc.describe_load());
    }

    // Goals, per state (steady first), from paired ratios.
    let mut g = String::new();
    for &state in &states {
        for sc in scenarios {
            let Some(r) = state_sums(sums, state)
                .find(|x| x.scenario == sc.name && x.engine == Engine::Ringest)
            else {
                continue;
            };
            for c in goal_checks(sc, r) {
                let measured = match (c.measured, c.ratio) {
                    (Some(v), true) if v.n > 1 => format!(
                        "{} ({}–{})",
                        ratio_fmt(v.median),
                        ratio_fmt(v.min),
                        ratio_fmt(v.max)
                    ),
                    (Some(v), true) => ratio_fmt(v.median),
                    (Some(v), false) => {
                        let without = r
                            .server_cpu_us_per_msg_without_writer
                            .map(|x| {
                                format!(" (without the ringest-writer thread: {:.3})", x.median)
                            })
                            .unwrap_or_default();
                        format!("{:.3}{without}", v.median)
                    }
                    (None, _) => "not measured".into(),
                };
                let verdict = match c.met {
                    Some(true) => "met",
                    Some(false) => "**not met**",
                    None => "**not measured**",
                };
                let _ = writeln!(
                    g,
                    "| {} | `{}` | {} | {measured} | {} | {verdict} |",
                    state.name(),
                    sc.name,
                    c.what,
                    c.unpaired.map(ratio_fmt).unwrap_or_default()
                );
            }
        }
    }
    let counted = || runs.iter().filter(|r| !r.superseded);
    let lost_total: u64 = counted()
        .filter(|r| r.status.measured())
        .map(|r| r.lost.unwrap_or(0) + r.duplicated.unwrap_or(0) + r.corrupted.unwrap_or(0))
        .sum();
    let failed_total = counted().filter(|r| r.status == Status::Failed).count();
    let _ = writeln!(s, "\n## ringest's goals\n");
    if !g.is_empty() {
        let _ = writeln!(s, "*Machine: {}.*\n", meta.machine_line());
        let _ = writeln!(
            s,
            "Verdicts use the paired median (min–max over the repeats). The ratio of the two engines' medians, \
             unpaired, is shown for comparison with older results only.\n"
        );
        let _ = writeln!(
            s,
            "| state | scenario | goal | measured: paired median (min–max) | unpaired ratio of medians | verdict |\n|---|---|---|---|---|---|\n{g}"
        );
    }
    let _ = writeln!(
        s,
        "Zero loss everywhere: {} (lost + duplicated + corrupted over all counted runs: {lost_total}; failed runs: {failed_total}).\n",
        if lost_total == 0 { "met" } else { "**not met**" }
    );

    s += &crate::kafka::report::section(scenarios, &Engine::ALL, &states, runs);

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
        "| state | scenario | engine | threads (CPU-s) | messages per connection | ringest counters |\n|---|---|---|---|---|---|"
    );
    for &state in &states {
        for sc in scenarios {
            for x in state_sums(sums, state).filter(|x| x.scenario == sc.name && x.measured > 0) {
                let Some(med) = x.written_msg_per_s.map(|m| m.median) else {
                    continue;
                };
                let r = runs
                    .iter()
                    .filter(|r| {
                        r.state == state
                            && !r.superseded
                            && r.scenario == sc.name
                            && r.engine == x.engine
                            && r.status.measured()
                    })
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
                    "| {} | `{}` | {} | {} | {} | {} |",
                    state.name(),
                    sc.name,
                    x.engine,
                    th.join(", "),
                    conns,
                    ringest_counters(r)
                );
            }
        }
    }

    let rerun: Vec<&Run> = runs
        .iter()
        .filter(|r| r.superseded || r.flag.is_some())
        .collect();
    if !rerun.is_empty() {
        let _ = writeln!(s, "\n## Runs flagged for host steal\n");
        for r in rerun {
            let _ = writeln!(
                s,
                "- {} `{}` {} repeat {} attempt {}: {}{}",
                r.state.name(),
                r.scenario,
                r.engine,
                r.repeat,
                r.attempt,
                md_escape(r.flag.as_deref().unwrap_or("")),
                if r.superseded {
                    " (replaced by a rerun of the repeat)"
                } else {
                    " (kept: reruns ran out)"
                }
            );
        }
    }

    let problems: Vec<&Run> = runs
        .iter()
        .filter(|r| !r.superseded && (r.status == Status::Failed || r.status == Status::Lost))
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(s, "\n## Failed runs and runs with loss\n");
        for r in problems {
            let _ = writeln!(
                s,
                "- {} `{}` {} run {}: {:?}: {} (files: `{}`)",
                r.state.name(),
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
        "- Memory states: **steady** = bench wrote fill files into the output folder until MemFree was at most the target, \
           synced them, and topped them up before every run; every run's output and write probe was kept in that pool \
           instead of being deleted (deleting frees pages, and free pages go back to the VM's host within seconds); the pool \
           was removed at the end. **fresh** = bench held no fill, and waited after deleting the previous run's output so that \
           freed memory sat free before the run. See bench/src/steady.rs.\n\
         - Every engine started fresh per run, in the foreground, with its own files, on 127.0.0.1; the load began once its port listened.\n\
         - Before each run bench waited for a quiet machine: 1-s windows of /proc/stat until at most {:.0}% of all CPUs were busy, for up to {} s (\"not quiet\" counts runs that started anyway).\n\
         - Load: `loadgen send` with the same arguments for every engine (`runs/<state>/<scenario>/<engine>-<n>/loadgen.args`); loadgen runs on one thread. \"msg/s offered\" is what loadgen handed to the kernel per second of sending.\n\
         - \"msg/s written\" is the messages `loadgen verify` found in the engine's output file, divided by the time from the start of sending until the output stopped growing (unchanged for 1 s).\n\
         - Server CPU is utime+stime of the engine's whole process (all threads) from /proc/PID/stat, from just before the load until the output stopped growing; per message written. Client CPU is loadgen's getrusage.\n\
         - Machine CPU is the machine-wide busy time over the window (from /proc/stat: the CPUs × the wall time minus idle, iowait and steal; the busy counters are tick samples that a load paced on a 1-ms grid escapes, see bench/src/sys.rs CpuWindow) from just before the load until the output had stopped growing and bench had fdatasync'd it, minus loadgen's own CPU: the engine plus the kernel's writeback and softirq work, which the process figure leaves out. The fdatasync puts writing every byte back to disk inside the window for every engine alike. Steal % is the host's steal over the same window.\n\
         - Bytes written per message: the output file's size over its lines. Raw work must write the same bytes in every engine; a difference is shown in bold.\n\
         - Peak RSS is the engine's VmHWM. Lost/dup/corrupt come from `loadgen verify --expect-json` on the output (a line without a marker fails it too), after the engine was stopped by PID with SIGTERM.\n\
         - Outputs: raw work: ringest `format = \"raw\"`; syslog-ng `flags(no-parse)` with `template(\"${{MSG}}\\n\")` (then the whole frame); rsyslog `%rawmsg%\\n`. Parsed work: JSON from each engine's RFC 5424 parser. None fsyncs (the peers' defaults) unless the scenario's durability level says so: `batch` = ringest `fsync = \"batch\"`, syslog-ng `fsync(yes)`, rsyslog omfile `sync=\"on\"`; `interval` = ringest `fsync = \"interval\"` (1 s), syslog-ng `fsync(yes)` (it has no timed fsync), rsyslog `sync=\"on\" asyncWriting=\"on\" flushInterval=\"1\"` (bench/README.md says why).\n\
         - Relay scenarios: the engine forwards every message as received, octet-counted over mutual TLS with the bench client certificate, to one final receiver, the same for every engine (a ringest writing raw lines); the output checked, counted and measured is the final receiver's file. Server CPU is the relay's process alone; machine CPU includes the final receiver.\n\
         - Kafka scenarios: the engine produces every message as received (no framing, no newline) as one record's value, no key, into a fresh 4-partition topic of one Apache Kafka broker, the same for every engine; all three through librdkafka with the same settings: acks=all with the idempotent producer, no compression, linger.ms=5, batch.size=1000000, a producer queue of {} MiB in ringest (its default) and {} MiB in the peers (kafka-c backs off on a full queue; bench/src/kafka/settings.rs), message.timeout.ms=0 (ringest's kafka destination keys; syslog-ng `kafka-c` with `flags(no-parse)`, `message(\"${{MSG}}\")` and `config()`; rsyslog `omkafka` with `%rawmsg%`, `partitions.auto` and `confParam`). \"msg/s written\" is the messages in the topic (the sum of its high watermarks, polled every 20 ms by bench's own client) over the time from the start of sending until the topic held them all; the topic holding fewer than sent is loss, more is duplication. After the engine stopped bench read the topic back and ran `loadgen verify` on the values. Server CPU is the engine's process with its librdkafka threads; the broker's CPU is in the Kafka section and in the machine-wide figure.\n\
         - syslog-ng: `max-connections(max(64, conns+64)) log-iw-size(10000 × max-connections) log-fetch-limit(1000)`, `flags(flow-control)`, threaded, `use-dns(no)`. rsyslog: imtcp + gtls (imptcp for plain TCP), `gnutlsPriorityString=\"NORMAL\"`, a 200k FixedArray ruleset queue dequeued in batches of 4096. The generated configs are in `runs/`.\n",
        meta.quiet_busy * 100.0,
        meta.quiet_timeout_s,
        crate::kafka::settings::ringest_producer_queue_max_bytes() >> 20,
        crate::kafka::settings::PEER_PRODUCER_QUEUE_MAX_BYTES >> 20,
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
        "state,scenario,work,engine,runs,measured,failed,\
         msg_per_s_vs_syslog_ng_paired_median,msg_per_s_vs_syslog_ng_paired_min,msg_per_s_vs_syslog_ng_paired_max,\
         cpu_vs_syslog_ng_paired_median,cpu_vs_syslog_ng_paired_min,cpu_vs_syslog_ng_paired_max,\
         machine_cpu_vs_syslog_ng_paired_median,msg_per_s_vs_syslog_ng_unpaired,cpu_vs_syslog_ng_unpaired,\
         written_msg_per_s_median,written_msg_per_s_min,written_msg_per_s_max,\
         server_cpu_us_per_msg_median,server_cpu_us_per_msg_min,server_cpu_us_per_msg_max,\
         machine_cpu_us_per_msg_median,bytes_per_msg_median,gb_written_median,write_cost_cpu_s_per_gb_median,\
         steal_pct_median,steal_pct_max,machine_busy_pct_median,offered_msg_per_s_median,\
         client_cpu_us_per_msg_median,peak_rss_mib_median,lost,duplicated,corrupted,\
         busy_before_pct_median,not_quiet_runs,superseded_runs,steal_flagged_runs,not_steady_runs,note\n",
    );
    let f = |x: Option<f64>| x.map(|v| format!("{v:.4}")).unwrap_or_default();
    let med = |x: Option<Stat>| f(x.map(|v| v.median));
    let min = |x: Option<Stat>| f(x.map(|v| v.min));
    let max = |x: Option<Stat>| f(x.map(|v| v.max));
    for x in sums {
        let note = x
            .not_applicable
            .as_ref()
            .map(|r| format!("n/a: {r}"))
            .or_else(|| x.failures.first().map(|r| format!("failed: {r}")))
            .unwrap_or_default();
        let cells = [
            x.state.name().to_string(),
            x.scenario.clone(),
            x.work.name().to_string(),
            x.engine.to_string(),
            x.runs.to_string(),
            x.measured.to_string(),
            x.failed.to_string(),
            med(x.msg_per_s_vs_syslog_ng),
            min(x.msg_per_s_vs_syslog_ng),
            max(x.msg_per_s_vs_syslog_ng),
            med(x.cpu_vs_syslog_ng),
            min(x.cpu_vs_syslog_ng),
            max(x.cpu_vs_syslog_ng),
            med(x.machine_cpu_vs_syslog_ng),
            f(x.msg_per_s_vs_syslog_ng_unpaired),
            f(x.cpu_vs_syslog_ng_unpaired),
            med(x.written_msg_per_s),
            min(x.written_msg_per_s),
            max(x.written_msg_per_s),
            med(x.server_cpu_us_per_msg),
            min(x.server_cpu_us_per_msg),
            max(x.server_cpu_us_per_msg),
            med(x.machine_cpu_us_per_msg),
            med(x.bytes_per_msg),
            med(x.gb_written),
            med(x.write_cost_cpu_s_per_gb),
            med(x.steal_pct),
            max(x.steal_pct),
            med(x.machine_busy_pct),
            med(x.offered_msg_per_s),
            med(x.client_cpu_us_per_msg),
            med(x.peak_rss_mib),
            x.lost.to_string(),
            x.duplicated.to_string(),
            x.corrupted.to_string(),
            med(x.busy_before_pct),
            x.quiet_gave_up.to_string(),
            x.superseded.to_string(),
            x.steal_flagged.to_string(),
            x.steady_not_reached.to_string(),
            format!("\"{}\"", note.replace('"', "'").replace('\n', " ")),
        ];
        let _ = writeln!(s, "{}", cells.join(","));
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

    fn scenario(goals: &str) -> Scenario {
        let t = format!(
            "[[scenario]]\nname='s'\ntitle='t'\ntransport='tls'\nframing='octet-counted'\nconnections=8\nrecords_per_write=1\n[scenario.goals]\n{goals}\n"
        );
        crate::scenario::parse(&t, "test").unwrap().remove(0)
    }

    /// A measured run with these figures.
    fn run(e: Engine, repeat: u32, msg_per_s: f64, cpu_us: f64) -> Run {
        let mut r = Run::new("s", e, repeat, MemState::Steady, String::new());
        r.written_msg_per_s = Some(msg_per_s);
        r.server_cpu_us_per_msg = Some(cpu_us);
        r.machine_cpu_us_per_msg = Some(cpu_us * 1.5);
        r.lost = Some(0);
        r.duplicated = Some(0);
        r.corrupted = Some(0);
        r
    }

    fn ringest_summary(sc: &Scenario, runs: &[Run]) -> Summary {
        summarize(
            std::slice::from_ref(sc),
            &[Engine::Ringest, Engine::SyslogNg],
            runs,
        )
        .into_iter()
        .find(|s| s.engine == Engine::Ringest)
        .unwrap()
    }

    /// issue 11's case: paired by repeat, mtls-1rec-8's CPU ratios were
    /// 0.151, 0.113 and 0.153 (median 0.151: the ≤ 0.125 goal is not met),
    /// while the unpaired ratio of medians, 0.12, says "met".
    #[test]
    fn verdict_follows_the_paired_median_not_the_unpaired_one() {
        let sc = scenario("cpu_vs_syslog_ng_max = 0.125");
        let syslog_ng = [5.0, 7.0, 6.6];
        let ratios = [0.151, 0.113, 0.153];
        let mut runs = Vec::new();
        for (i, (b, k)) in syslog_ng.iter().zip(ratios).enumerate() {
            let rep = i as u32 + 1;
            runs.push(run(Engine::SyslogNg, rep, 300e3, *b));
            runs.push(run(Engine::Ringest, rep, 1.5e6, b * k));
        }
        let r = ringest_summary(&sc, &runs);
        let paired = r.cpu_vs_syslog_ng.unwrap();
        assert!((paired.median - 0.151).abs() < 1e-9, "{paired:?}");
        assert!((paired.min - 0.113).abs() < 1e-9 && (paired.max - 0.153).abs() < 1e-9);
        let unpaired = r.cpu_vs_syslog_ng_unpaired.unwrap();
        assert!(unpaired <= 0.125, "the unpaired ratio passes: {unpaired}");
        let checks = goal_checks(&sc, &r);
        assert_eq!(checks.len(), 1);
        assert_eq!(
            checks[0].met,
            Some(false),
            "the verdict follows the paired median"
        );

        // And the other way round: a msg/s goal the unpaired medians miss
        // but every repeat meets.
        let sc = scenario("msg_per_s_vs_syslog_ng_min = 4.0");
        let syslog_ng = [200e3, 500e3, 300e3];
        let ringest = [0.9e6, 2.1e6, 1.15e6];
        let mut runs = Vec::new();
        for i in 0..3 {
            let rep = i as u32 + 1;
            runs.push(run(Engine::SyslogNg, rep, syslog_ng[i], 5.0));
            runs.push(run(Engine::Ringest, rep, ringest[i], 1.0));
        }
        let r = ringest_summary(&sc, &runs);
        let paired = r.msg_per_s_vs_syslog_ng.unwrap();
        assert!(paired.min >= 3.8 && paired.median >= 4.0, "{paired:?}");
        assert!(r.msg_per_s_vs_syslog_ng_unpaired.unwrap() < 4.0);
        assert_eq!(goal_checks(&sc, &r)[0].met, Some(true));

        // The table says so too.
        let md_row = |runs: &[Run], sc: &Scenario| {
            let sums = summarize(
                std::slice::from_ref(sc),
                &[Engine::Ringest, Engine::SyslogNg],
                runs,
            );
            let meta = test_meta();
            let md = markdown(&meta, std::slice::from_ref(sc), &sums, runs);
            md.lines()
                .find(|l| l.starts_with("| steady | `s` | msg/s"))
                .map(String::from)
                .unwrap_or_else(|| panic!("no goal row:\n{md}"))
        };
        let row = md_row(&runs, &sc);
        assert!(row.ends_with("| met |"), "{row}");
    }

    #[test]
    fn a_superseded_run_counts_nowhere_and_unpaired_repeats_give_no_ratio() {
        let sc = scenario("");
        let mut stale = run(Engine::Ringest, 1, 1.0, 100.0);
        stale.superseded = true;
        stale.flag = Some("steal 9.0% > 5.0%".into());
        let runs = vec![
            stale,
            run(Engine::Ringest, 1, 2e6, 1.0),
            run(Engine::SyslogNg, 1, 500e3, 4.0),
            // Repeat 2: syslog-ng failed, so no pair.
            run(Engine::Ringest, 2, 1e6, 2.0),
        ];
        let r = ringest_summary(&sc, &runs);
        assert_eq!(r.runs, 2);
        assert_eq!(r.superseded, 1);
        let p = r.cpu_vs_syslog_ng.unwrap();
        assert_eq!(p.n, 1);
        assert!((p.median - 0.25).abs() < 1e-9);
        let m = r.machine_cpu_vs_syslog_ng.unwrap();
        assert!((m.median - 0.25).abs() < 1e-9);
    }

    #[test]
    fn raw_rows_with_different_bytes_per_message_are_marked() {
        let sc = scenario("");
        let mut a = run(Engine::Ringest, 1, 2e6, 1.0);
        a.bytes_per_msg = Some(301.0);
        let mut b = run(Engine::SyslogNg, 1, 5e5, 4.0);
        b.bytes_per_msg = Some(246.0);
        let runs = vec![a, b];
        let sums = summarize(
            std::slice::from_ref(&sc),
            &[Engine::Ringest, Engine::SyslogNg],
            &runs,
        );
        let md = markdown(&test_meta(), std::slice::from_ref(&sc), &sums, &runs);
        assert!(md.contains("**246.0 (ringest 301.0)**"), "{md}");
        assert!(md.contains("Memory state: **steady**"), "{md}");
        assert!(
            md.contains("AMD TEST CPU"),
            "the machine is in the tables: {md}"
        );
    }

    fn test_meta() -> Meta {
        Meta {
            date: "2026-11-29".into(),
            time: "00:00:00Z".into(),
            machine: crate::sys::Machine {
                host: "vm".into(),
                cpu: "AMD TEST CPU".into(),
                cpus: 2,
                kernel: "6.18".into(),
                mem_gib: 23.5,
                fd_limit: 1024,
                tcp_congestion: "bbr".into(),
            },
            aes_gcm_bytes_per_s: Some(5.3e9),
            versions: vec![],
            loadgen: "loadgen".into(),
            duration_s: 10,
            repeat: 3,
            seed: 1,
            steal_max_pct: 5.0,
            steal_reruns: 2,
            probe_mib: 256,
            states: vec![StateInfo {
                state: MemState::Steady,
                how: "filled".into(),
                first_fill: None,
            }],
            scenarios_file: "test".into(),
            quiet_busy: 0.1,
            quiet_timeout_s: 60,
            command: "bench compare".into(),
            competing: vec![],
            output_fs: "ext4".into(),
        }
    }

    #[test]
    fn human_rates() {
        assert_eq!(human(1_790_000.0), "1.79M");
        assert_eq!(human(504_265.0), "504k");
    }
}
