//! `bench latency`'s runs: the thin part around latency.rs (the search
//! state machine and the report). Every run is a compare run
//! (`compare::run_one`) in the chosen memory state.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::compare::{self, Slot};
use crate::engines::Tools;
use crate::latency::{self, Outcome, Point, RateSearch, Search, Step};
use crate::memory::{self, MemoryArgs};
use crate::record::{Run, Status};
use crate::scenario::{self, Engine};
use crate::{disk_budget, steady, sys, Common};

#[derive(clap::Args)]
pub struct Args {
    /// Scenario file (default: the built-in bench/scenarios/default.toml).
    #[arg(long)]
    pub scenarios: Option<PathBuf>,
    /// The scenario whose load is paced (its connections, sizes and records).
    #[arg(long, default_value = "mtls-large-8")]
    pub scenario: String,
    /// Engines, comma-separated; the peers are optional.
    #[arg(long, default_value = "ringest")]
    pub only: String,
    /// Seconds of load at each point of the curve (1..=300).
    #[arg(long, default_value_t = 30)]
    pub duration: u32,
    /// Seconds of each run of the search for the maximum rate (1..=300).
    #[arg(long, default_value_t = 10)]
    pub search_duration: u32,
    /// Paced runs the search may take per engine (1..=20).
    #[arg(long, default_value_t = 6)]
    pub search_steps: u32,
    /// Skip the search: use this maximum (msg/s) for every engine.
    #[arg(long)]
    pub max_rate: Option<f64>,
    /// Points of the curve, % of each engine's maximum.
    #[arg(long, default_value = "20,40,60,80,95")]
    pub points: String,
    /// Paced runs: loadgen wakes at most once per this many µs and sends
    /// everything due, in records of the scenario's size (0: a wake-up per
    /// message, which at millions of messages per second sends records of
    /// one or two messages and costs the client about a core). Each
    /// message's latency still counts from its own intended send time.
    #[arg(long, default_value_t = 1000)]
    pub tick_us: u32,
    /// The p99 goal (ms) drawn on the chart and judged at 80%.
    #[arg(long, default_value_t = 5.0)]
    pub goal_p99_ms: f64,
    /// Seed of the engines' random order per point (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Keep the engines' output files under DIR/*/work.
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub memory: MemoryArgs,
    #[command(flatten)]
    pub common: Common,
}

fn describe(r: &Run) -> String {
    match r.status {
        Status::Ok | Status::Lost => format!(
            "{:.0} written, {:.0} offered, drain {:.1} s, lost {}",
            r.written_msg_per_s.unwrap_or(0.0),
            r.offered_msg_per_s.unwrap_or(0.0),
            r.drain_s.unwrap_or(f64::NAN),
            r.lost.unwrap_or(0) + r.duplicated.unwrap_or(0) + r.corrupted.unwrap_or(0)
        ),
        Status::Failed | Status::NotApplicable => {
            format!("failed: {}", r.reason.as_deref().unwrap_or(""))
        }
    }
}

pub fn run(a: &Args) -> Result<i32> {
    if !(1..=300).contains(&a.duration) || !(1..=300).contains(&a.search_duration) {
        bail!("--duration and --search-duration must be 1..=300 seconds");
    }
    if !(1..=20).contains(&a.search_steps) {
        bail!("--search-steps must be 1..=20");
    }
    if let Some(m) = a.max_rate {
        if !(m.is_finite() && (1.0..=1e9).contains(&m)) {
            bail!("--max-rate must be 1..=1e9 msg/s");
        }
    }
    if !(a.goal_p99_ms.is_finite() && a.goal_p99_ms > 0.0) {
        bail!("--goal-p99-ms must be positive");
    }
    let points = latency::parse_points(&a.points)?;
    a.memory.check()?;
    let states = a.memory.parse_states()?;
    let [state] = states[..] else {
        bail!("--states: latency measures in one state (steady, or fresh)");
    };
    let (scs, origin) = scenario::load(a.scenarios.as_deref())?;
    let Some(sc) = scs.into_iter().find(|s| s.name == a.scenario) else {
        bail!("--scenario: no scenario named {:?} in {origin}", a.scenario);
    };
    if sc.rate_msg_per_s.is_some() {
        bail!(
            "scenario {}: latency sets the rate itself; leave rate_msg_per_s out",
            sc.name
        );
    }
    let mut engines = Engine::parse_list(&a.only)?;
    engines.retain(|e| sc.runs_engine(*e) && sc.unsupported_reason(*e).is_none());
    if engines.is_empty() {
        bail!("scenario {}: none of --only {} can run it", sc.name, a.only);
    }
    let c = &a.common;
    let tools = Tools::find(c.bin_dir.as_deref(), c.peers_dir.as_deref())?;
    tools.require(&engines)?;
    // To the hard limit, as `bench compare` does; the engines and loadgen
    // inherit it.
    let _ = ringest::fd_limit::raise();
    let out = crate::check_out(&a.out)?;
    let settings = |duration_s, duration_flag| compare::Settings {
        duration_s,
        duration_flag,
        keep: a.keep,
        quiet_busy: c.quiet_busy_pct / 100.0,
        quiet_timeout: Duration::from_secs(c.quiet_timeout),
        probe_bytes: a.memory.write_probe_mib << 20,
        fresh_wait: Duration::from_secs(a.memory.fresh_wait),
    };
    let (set_search, set_curve) = (
        settings(a.search_duration, "--search-duration"),
        settings(a.duration, "--duration"),
    );
    let ctx_search = compare::Ctx::new(&tools, &set_search, &out.join("search"))?;
    let ctx_curve = compare::Ctx::new(&tools, &set_curve, &out.join("curve"))?;
    let (date, time) = sys::utc_now();
    // The disk the runs will take, before the first fill (each run is
    // checked again when it starts: compare::run_one, disk_budget.rs).
    eprintln!(
        "bench latency: disk: {} free on the output's file system now",
        disk_budget::gb(steady::disk_available_bytes(&ctx_curve.work_dir)?)
    );
    match a.max_rate {
        None => eprintln!(
            "bench latency: disk: each engine's unpaced search run may need up to {} ({} s at {} per second at most, + margin; \
             not refused on that bound); the paced search runs, at most the rate it wrote, need less",
            disk_budget::gb(disk_budget::need_bytes(disk_budget::output_bytes(
                &sc,
                None,
                a.search_duration
            ))),
            a.search_duration,
            disk_budget::gb(disk_budget::UNPACED_OUTPUT_BYTES_PER_S_MAX)
        ),
        Some(m) => {
            let maxima: Vec<(Engine, f64)> = engines.iter().map(|e| (*e, m)).collect();
            let d = latency::curve_disk(&sc, a.duration, &maxima, &points);
            eprintln!("bench latency: disk: {}", d.describe(a.duration));
        }
    }
    let Some((mut mem, info)) = memory::open(&ctx_curve, state, &a.memory)? else {
        bail!("interrupted during the page-cache fill");
    };
    let seed = a.seed.unwrap_or_else(sys::Shuffler::clock_seed);
    let mut shuffler = sys::Shuffler::new(seed);
    let mut runs: Vec<Run> = Vec::new();

    // 1. Each engine's maximum sustained rate.
    let mut searches = Vec::new();
    let mut order = engines.clone();
    shuffler.shuffle(&mut order);
    for e in order {
        let mut s = Search {
            engine: e,
            tries: Vec::new(),
            max_msg_per_s: a.max_rate,
            error: None,
        };
        if a.max_rate.is_none() {
            let mut search = RateSearch::new(a.search_steps);
            let mut step = search.first();
            let mut k = 0;
            loop {
                match step {
                    Step::Run(rate) => {
                        k += 1;
                        let mut x = sc.clone();
                        x.name = format!("{}-search-{k}", sc.name);
                        x.rate_msg_per_s = rate;
                        x.tick_us = Some(a.tick_us);
                        let slot = Slot {
                            repeat: 1,
                            attempt: 1,
                            order: 1,
                        };
                        let r = compare::run_one(&ctx_search, &x, e, slot, &mut mem)?;
                        if r.disk_refused {
                            let why = r.reason.clone().unwrap_or_default();
                            eprintln!("bench latency: {e} search {k}: refused: {why}");
                            s.tries.push((rate, describe(&r)));
                            s.error = Some(format!("search run {k} refused: {why}"));
                            runs.push(r);
                            break;
                        }
                        eprintln!(
                            "bench latency: {e} search {k}: {:?} msg/s → {}",
                            rate,
                            describe(&r)
                        );
                        s.tries.push((rate, describe(&r)));
                        step = search.next(Outcome::of(&r));
                        runs.push(r);
                    }
                    Step::Found(m) => {
                        s.max_msg_per_s = Some(m);
                        break;
                    }
                    Step::GaveUp(why) => {
                        s.error = Some(why.to_string());
                        break;
                    }
                }
            }
        }
        eprintln!(
            "bench latency: {e} maximum sustained: {}",
            s.max_msg_per_s
                .map(|m| format!("{m:.0} msg/s"))
                .unwrap_or_else(|| s.error.clone().unwrap_or_default())
        );
        searches.push(s);
    }

    // 2. The curve: each point, the engines in a random order.
    let maxima: Vec<(Engine, f64)> = searches
        .iter()
        .filter_map(|s| s.max_msg_per_s.map(|m| (s.engine, m)))
        .collect();
    if a.max_rate.is_none() {
        let d = latency::curve_disk(&sc, a.duration, &maxima, &points);
        eprintln!(
            "bench latency: disk: {}; {} free now",
            d.describe(a.duration),
            disk_budget::gb(steady::disk_available_bytes(&ctx_curve.work_dir)?)
        );
    }
    let mut curve: Vec<Point> = Vec::new();
    for &pct in &points {
        let mut order = maxima.clone();
        shuffler.shuffle(&mut order);
        for (k, (e, max)) in order.into_iter().enumerate() {
            let rate = latency::point_rate(max, pct);
            let mut x = sc.clone();
            x.name = format!("{}-at-{pct}pct", sc.name);
            x.rate_msg_per_s = Some(rate);
            x.tick_us = Some(a.tick_us);
            let slot = Slot {
                repeat: 1,
                attempt: 1,
                order: k as u32 + 1,
            };
            let r = compare::run_one(&ctx_curve, &x, e, slot, &mut mem)?;
            let p = Point::of(&r, pct, rate);
            if p.refused {
                // Recorded as refused; the rest of the curve goes on.
                eprintln!(
                    "bench latency: point {pct}%: {e} {}",
                    p.reason.as_deref().unwrap_or("")
                );
            } else {
                eprintln!(
                    "bench latency: {e} at {pct}% ({rate:.0} msg/s): {}; client p99 {}",
                    describe(&r),
                    p.client_us
                        .map(|q| format!("{:.3} ms", q.p99 / 1000.0))
                        .unwrap_or_else(|| "–".into())
                );
            }
            curve.push(p);
            runs.push(r);
        }
    }
    memory::close(mem);

    let m = sys::machine();
    let meta = format!(
        "{} State: {} ({}{}). Scenario `{}` ({}): {}. {} s per point, {} s per search run, seed {seed}. Paced runs: loadgen `--tick-us {}` ({}). \
         Absolute figures hold for this machine only. Command: `{}`.",
        crate::meta_line(&date, &time),
        state.title(),
        info.how,
        info.first_fill
            .as_deref()
            .map(|f| format!(" First fill: {f}."))
            .unwrap_or_default(),
        sc.name,
        origin,
        sc.describe_load(),
        a.duration,
        a.search_duration,
        a.tick_us,
        if a.tick_us == 0 {
            "a wake-up per message: records of one or two messages at high rates"
        } else {
            "one wake-up per tick sends everything due, in the scenario's records"
        },
        crate::command_line()
    );
    std::fs::write(
        out.join("latency.md"),
        latency::markdown(&meta, &searches, &curve, a.goal_p99_ms),
    )?;
    let title = format!(
        "Latency against load — {date}, {} × {}, {} state, {}",
        m.cpus,
        m.cpu,
        state.name(),
        sc.name
    );
    std::fs::write(
        out.join("latency.svg"),
        latency::svg(&title, &curve, a.goal_p99_ms),
    )?;
    std::fs::write(
        out.join("latency.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "meta": meta, "scenario": sc, "searches": searches, "points": curve, "runs": runs,
        }))
        .context("latency.json")?,
    )?;
    if !a.keep {
        for d in ["search", "curve"] {
            let _ = std::fs::remove_dir_all(out.join(d).join("work"));
        }
    }
    eprintln!(
        "bench latency: wrote {}/latency.{{md,json,svg}} ({} runs)",
        out.display(),
        runs.len()
    );
    let bad = searches.iter().any(|s| s.max_msg_per_s.is_none())
        || curve.iter().any(|p| p.status != Status::Ok);
    Ok(if bad { 1 } else { 0 })
}
