//! `bench latency`: latency against load (issue 12, issue 19).
//!
//! For each engine (ringest; the peers when asked):
//! 1. find the maximum rate it sustains with zero loss (`RateSearch`, a
//!    sans-IO state machine): an unpaced run gives a first candidate (the
//!    msg/s it wrote), then paced runs (`loadgen send --rate R`) step down
//!    by `STEP_DOWN` until one is sustained: nothing lost, loadgen kept the
//!    schedule (offered ≥ `KEPT_SCHEDULE` × R) and the output stopped
//!    growing within `DRAIN_MAX_S` of the end of sending (no queue built up);
//! 2. run `loadgen send --rate P × max` for the duration at each point P
//!    (20, 40, 60, 80 and 95% by default), the engines of one point in a
//!    random order, each at its own maximum;
//! 3. record loadgen's latency from each message's intended send time
//!    (p50/p99/p999) and ringest's own summaries from /metrics
//!    (`ringest_write_latency_seconds`, and per-destination series when
//!    present), and write `latency.md`, `latency.json` and `latency.svg`.
//!
//! Every run is a `compare` run (compare::run_one): same start, memory
//! state, settle, verify and failure rules.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::record::{Quantiles, Run, Status};
use crate::scenario::Engine;

/// A paced candidate that fails is lowered to this fraction of itself.
pub const STEP_DOWN: f64 = 0.85;
/// loadgen kept the schedule: it offered at least this fraction of the rate.
pub const KEPT_SCHEDULE: f64 = 0.97;
/// The engine kept up: its output stopped growing at most this long after
/// loadgen stopped sending.
pub const DRAIN_MAX_S: f64 = 1.0;

/// What one search run showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outcome {
    /// Measured with nothing lost, duplicated or corrupted.
    pub ok: bool,
    pub written_msg_per_s: f64,
    pub offered_msg_per_s: f64,
    pub drain_s: f64,
}

impl Outcome {
    pub fn of(r: &Run) -> Outcome {
        Outcome {
            ok: r.status == Status::Ok,
            written_msg_per_s: r.written_msg_per_s.unwrap_or(0.0),
            offered_msg_per_s: r.offered_msg_per_s.unwrap_or(0.0),
            drain_s: r.drain_s.unwrap_or(f64::INFINITY),
        }
    }
}

/// The next search run, or the end of the search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Run once at this rate (None: unpaced, as fast as loadgen can).
    Run(Option<f64>),
    /// The highest rate sustained with zero loss.
    Found(f64),
    /// No rate was sustained within the step budget; the reason says why.
    GaveUp(&'static str),
}

/// Finds the maximum sustainable rate, one run at a time: `first()`, then
/// `next(outcome)` after each run until it returns Found or GaveUp.
#[derive(Debug, Clone)]
pub struct RateSearch {
    /// Paced runs allowed.
    steps_max: u32,
    steps: u32,
    candidate: Option<f64>,
}

impl RateSearch {
    pub fn new(steps_max: u32) -> RateSearch {
        RateSearch {
            steps_max,
            steps: 0,
            candidate: None,
        }
    }

    pub fn first(&self) -> Step {
        Step::Run(None)
    }

    pub fn next(&mut self, o: Outcome) -> Step {
        let Some(rate) = self.candidate else {
            // The unpaced run: what the engine wrote is the first candidate.
            if !o.ok {
                return Step::GaveUp("the unpaced run lost messages or failed");
            }
            if o.written_msg_per_s < 1.0 {
                return Step::GaveUp("the unpaced run wrote nothing");
            }
            self.candidate = Some(o.written_msg_per_s.floor());
            return self.paced();
        };
        let sustained =
            o.ok && o.offered_msg_per_s >= KEPT_SCHEDULE * rate && o.drain_s <= DRAIN_MAX_S;
        if sustained {
            return Step::Found(rate);
        }
        self.candidate = Some((rate * STEP_DOWN).floor());
        self.paced()
    }

    fn paced(&mut self) -> Step {
        if self.steps >= self.steps_max {
            return Step::GaveUp("no paced rate was sustained within --search-steps");
        }
        match self.candidate {
            Some(r) if r >= 1.0 => {
                self.steps += 1;
                Step::Run(Some(r))
            }
            _ => Step::GaveUp("the candidate rate fell below 1 msg/s"),
        }
    }
}

/// One engine's search, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct Search {
    pub engine: Engine,
    /// Rate tried (None: unpaced) and what it showed.
    pub tries: Vec<(Option<f64>, String)>,
    pub max_msg_per_s: Option<f64>,
    pub error: Option<String>,
}

/// One engine at one point of the curve.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub engine: Engine,
    pub pct: u32,
    pub rate_msg_per_s: f64,
    pub status: Status,
    pub reason: Option<String>,
    pub written_msg_per_s: Option<f64>,
    pub lost: u64,
    pub client_us: Option<Quantiles>,
    /// ringest's summaries, by series.
    pub engine_us: BTreeMap<String, Quantiles>,
    /// Host steal over the run's window, %; and whether the machine was
    /// quiet before it (compare's rules).
    pub steal_pct: Option<f64>,
    pub quiet_gave_up: bool,
    /// Not run: its output would not fit on the disk (`reason` says why).
    pub refused: bool,
    pub run_dir: String,
}

impl Point {
    pub fn of(run: &Run, pct: u32, rate: f64) -> Point {
        Point {
            engine: run.engine,
            pct,
            rate_msg_per_s: rate,
            status: run.status,
            reason: run.reason.clone(),
            written_msg_per_s: run.written_msg_per_s,
            lost: run.lost.unwrap_or(0) + run.duplicated.unwrap_or(0) + run.corrupted.unwrap_or(0),
            client_us: run.client_latency_us,
            engine_us: run.engine_latency_us.clone(),
            steal_pct: run.steal_pct,
            quiet_gave_up: run.quiet_gave_up,
            refused: run.disk_refused,
            run_dir: run.run_dir.clone(),
        }
    }
}

/// The rate of the point `pct`% of an engine's maximum `max` (msg/s).
pub fn point_rate(max: f64, pct: u32) -> f64 {
    (max * f64::from(pct) / 100.0).floor().max(1.0)
}

/// The disk the curve's runs take (disk_budget.rs).
#[derive(Debug, Clone, PartialEq)]
pub struct CurveDisk {
    /// Runs in the curve: points × engines.
    pub runs: usize,
    /// Every run's estimated output, summed: what the curve writes in all
    /// (each run's output is kept in the pool or deleted after it, so not
    /// all of it is on the disk at once).
    pub output_bytes: u64,
    /// The largest single need (disk_budget::need_bytes), which must be
    /// free when its run starts: the point, the engine and the bytes.
    pub largest: Option<(u32, Engine, u64)>,
}

/// What the curve at `points` of each engine's maximum (`maxima`, msg/s)
/// writes, runs of `duration_s` of the scenario `sc`.
pub fn curve_disk(
    sc: &crate::scenario::Scenario,
    duration_s: u32,
    maxima: &[(Engine, f64)],
    points: &[u32],
) -> CurveDisk {
    let mut d = CurveDisk {
        runs: 0,
        output_bytes: 0,
        largest: None,
    };
    for &pct in points {
        for &(e, max) in maxima {
            let out = crate::disk_budget::output_bytes(sc, Some(point_rate(max, pct)), duration_s);
            let need = crate::disk_budget::need_bytes(out);
            d.runs += 1;
            d.output_bytes = d.output_bytes.saturating_add(out);
            if d.largest.is_none_or(|(_, _, n)| need > n) {
                d.largest = Some((pct, e, need));
            }
        }
    }
    d
}

impl CurveDisk {
    /// One line for the start of the curve.
    pub fn describe(&self, duration_s: u32) -> String {
        let gb = crate::disk_budget::gb;
        match self.largest {
            Some((pct, e, need)) => format!(
                "the curve's {} run{} of {duration_s} s write about {} in all; the largest ({e} at {pct}%) needs {} free when it starts",
                self.runs,
                if self.runs == 1 { "" } else { "s" },
                gb(self.output_bytes),
                gb(need)
            ),
            None => "the curve has no runs (no engine has a maximum)".into(),
        }
    }
}

/// `--points 20,40,60,80,95`: percentages of the maximum, 1..=100.
pub fn parse_points(s: &str) -> anyhow::Result<Vec<u32>> {
    let mut v = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let n: u32 = p
            .parse()
            .map_err(|_| anyhow::anyhow!("--points: {p:?} is not a whole percentage"))?;
        if !(1..=100).contains(&n) {
            anyhow::bail!("--points: {n} is not 1..=100");
        }
        if !v.contains(&n) {
            v.push(n);
        }
    }
    if v.is_empty() {
        anyhow::bail!("--points needs at least one percentage");
    }
    v.sort_unstable();
    Ok(v)
}

fn ms(us: f64) -> String {
    let m = us / 1000.0;
    if m >= 100.0 {
        format!("{m:.0}")
    } else if m >= 1.0 {
        format!("{m:.1}")
    } else {
        format!("{m:.3}")
    }
}

fn q_cells(q: Option<&Quantiles>) -> String {
    match q {
        Some(q) => format!("{} | {} | {}", ms(q.p50), ms(q.p99), ms(q.p999)),
        None => "– | – | –".into(),
    }
}

/// latency.md: the machine and state, each engine's maximum, then one row
/// per engine and point.
pub fn markdown(meta: &str, searches: &[Search], points: &[Point], goal_ms: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Latency against load\n\n{meta}\n");
    let _ = writeln!(
        s,
        "Each engine's maximum is the highest `loadgen send --rate` it sustained with zero loss \
         (loadgen kept ≥ {:.0}% of the schedule, the output stopped growing within {DRAIN_MAX_S} s of \
         the end of sending). Each point then runs at that percentage of the engine's own maximum. \
         Client: loadgen's latency from each message's intended send time to its write into the \
         socket (wrk2-style, so a stall counts for every message scheduled during it). ringest: its \
         own summaries from /metrics over the run. Goal (issue 12): p99 ≤ {goal_ms} ms at 80% in both.\n",
        KEPT_SCHEDULE * 100.0
    );
    let _ = writeln!(s, "## Maximum sustained rate\n\n| engine | max msg/s | tries (rate → result) |\n|---|---|---|");
    for x in searches {
        let max = x
            .max_msg_per_s
            .map(|m| format!("{m:.0}"))
            .unwrap_or_else(|| format!("none: {}", x.error.as_deref().unwrap_or("")));
        if x.tries.is_empty() && x.max_msg_per_s.is_some() {
            let _ = writeln!(
                s,
                "| {} | {max} | given (--max-rate), not searched |",
                x.engine
            );
            continue;
        }
        let tries: Vec<String> = x
            .tries
            .iter()
            .map(|(r, what)| match r {
                Some(r) => format!("{r:.0} → {what}"),
                None => format!("unpaced → {what}"),
            })
            .collect();
        let _ = writeln!(s, "| {} | {max} | {} |", x.engine, tries.join("; "));
    }
    let series: Vec<String> = {
        let mut v: Vec<String> = points
            .iter()
            .flat_map(|p| p.engine_us.keys().cloned())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let _ = write!(
        s,
        "\n## The curve (ms)\n\n| engine | % of max | rate msg/s | written msg/s | lost | client p50 | client p99 | client p99.9 |"
    );
    for k in &series {
        let _ = write!(s, " {k} p50 | p99 | p99.9 |");
    }
    let _ = write!(
        s,
        " steal % | p99 goal |\n|---|---|---|---|---|---|---|---|"
    );
    for _ in &series {
        s.push_str("---|---|---|");
    }
    s.push_str("---|---|\n");
    let mut rows: Vec<&Point> = points.iter().collect();
    rows.sort_by_key(|p| (p.engine, p.pct));
    for p in rows {
        let written = p
            .written_msg_per_s
            .map(|w| format!("{w:.0}"))
            .unwrap_or_else(|| "–".into());
        let _ = write!(
            s,
            "| {} | {} | {:.0} | {written} | {} | {} |",
            p.engine,
            p.pct,
            p.rate_msg_per_s,
            p.lost,
            q_cells(p.client_us.as_ref())
        );
        for k in &series {
            let _ = write!(s, " {} |", q_cells(p.engine_us.get(k)));
        }
        let verdict = if p.refused {
            format!(
                "refused: {}",
                p.reason.as_deref().unwrap_or("").replace('|', "/")
            )
        } else if !p.status.measured() {
            format!(
                "failed: {}",
                p.reason.as_deref().unwrap_or("").replace('|', "/")
            )
        } else if p.pct != 80 {
            String::new()
        } else {
            let worst = p
                .client_us
                .iter()
                .chain(p.engine_us.values())
                .map(|q| q.p99)
                .fold(f64::NAN, f64::max);
            if worst.is_nan() {
                "no latency figure".into()
            } else if worst <= goal_ms * 1000.0 && p.lost == 0 {
                "met".into()
            } else {
                "not met".into()
            }
        };
        let steal = p
            .steal_pct
            .map(|x| format!("{x:.1}"))
            .unwrap_or_else(|| "–".into());
        let quiet = if p.quiet_gave_up { " (not quiet)" } else { "" };
        let _ = writeln!(s, " {steal}{quiet} | {verdict} |");
    }
    s
}

/// One line of the chart: the engine's index (its colour), the name, the
/// dash pattern ("" solid) and the points (% of max, ms).
type Series = (usize, String, &'static str, Vec<(f64, f64)>);

/// latency.svg, hand-written: % of the maximum across, latency (ms, log
/// scale) up; a line per engine and measure (client p99 solid, client p50
/// dashed, ringest's p99 dotted) and the goal as a red line.
pub fn svg(title: &str, points: &[Point], goal_ms: f64) -> String {
    const W: f64 = 760.0;
    const H: f64 = 440.0;
    const L: f64 = 70.0;
    const R: f64 = 230.0;
    const T: f64 = 40.0;
    const B: f64 = 50.0;
    let mut lines: Vec<Series> = Vec::new();
    let mut engines: Vec<Engine> = points.iter().map(|p| p.engine).collect();
    engines.sort();
    engines.dedup();
    for (ei, e) in engines.iter().enumerate() {
        let of = |f: &dyn Fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
            points
                .iter()
                .filter(|p| p.engine == *e && p.status.measured())
                .filter_map(|p| {
                    f(p).filter(|v| *v > 0.0)
                        .map(|v| (f64::from(p.pct), v / 1000.0))
                })
                .collect()
        };
        lines.push((
            ei,
            format!("{e} client p99"),
            "",
            of(&|p| p.client_us.map(|q| q.p99)),
        ));
        lines.push((
            ei,
            format!("{e} client p50"),
            "6,4",
            of(&|p| p.client_us.map(|q| q.p50)),
        ));
        let mut keys: Vec<&String> = points
            .iter()
            .filter(|p| p.engine == *e)
            .flat_map(|p| p.engine_us.keys())
            .collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let short = k.trim_start_matches("ringest_");
            lines.push((
                ei,
                format!("{e} {short} p99"),
                "2,3",
                of(&|p| p.engine_us.get(k).map(|q| q.p99)),
            ));
        }
    }
    lines.retain(|l| !l.3.is_empty());
    let mut lo = goal_ms;
    let mut hi = goal_ms;
    for (_, _, _, v) in &lines {
        for &(_, y) in v {
            lo = lo.min(y);
            hi = hi.max(y);
        }
    }
    let lo = 10f64.powf(lo.log10().floor());
    let hi = 10f64.powf(hi.log10().ceil().max(lo.log10() + 1.0));
    let x = |pct: f64| L + (W - L - R) * pct / 100.0;
    let y = |v: f64| T + (H - T - B) * (1.0 - (v.log10() - lo.log10()) / (hi.log10() - lo.log10()));
    let colours = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n",
        W / 2.0,
        xml_escape(title)
    );
    // Axes, ticks and grid.
    let _ = writeln!(
        s,
        "<line x1=\"{L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{}\" stroke=\"black\"/>",
        H - B,
        W - R,
        H - B,
        H - B
    );
    for pct in [0, 20, 40, 60, 80, 100] {
        let px = x(f64::from(pct));
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{T}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{pct}%</text>",
            H - B,
            H - B + 16.0
        );
    }
    let mut d = lo;
    while d <= hi * 1.0001 {
        let py = y(d);
        let _ = writeln!(
            s,
            "<line x1=\"{L}\" y1=\"{py:.1}\" x2=\"{}\" y2=\"{py:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - R,
            L - 6.0,
            py + 4.0,
            ms(d * 1000.0)
        );
        d *= 10.0;
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">offered rate, % of the engine's maximum sustained rate</text>\n\
         <text x=\"16\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {})\">latency, ms (log scale)</text>",
        (L + W - R) / 2.0,
        H - 12.0,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0
    );
    let gy = y(goal_ms);
    let _ = writeln!(
        s,
        "<line x1=\"{L}\" y1=\"{gy:.1}\" x2=\"{}\" y2=\"{gy:.1}\" stroke=\"red\" stroke-width=\"1\"/><text x=\"{}\" y=\"{:.1}\" fill=\"red\">p99 goal {goal_ms} ms</text>",
        W - R,
        L + 4.0,
        gy - 4.0
    );
    for (i, (ei, name, dash, pts)) in lines.iter().enumerate() {
        let c = colours[ei % colours.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(p, v)| format!("{:.1},{:.1}", x(p), y(v)))
            .collect();
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{dash}\"")
        };
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\"{dash} points=\"{}\"><title>{}</title></polyline>",
            path.join(" "),
            xml_escape(name)
        );
        for &(p, v) in pts {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\"/>",
                x(p),
                y(v)
            );
        }
        let ly = T + 14.0 + 18.0 * i as f64;
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{ly:.1}\" x2=\"{}\" y2=\"{ly:.1}\" stroke=\"{c}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{:.1}\">{}</text>",
            W - R + 12.0,
            W - R + 40.0,
            W - R + 46.0,
            ly + 4.0,
            xml_escape(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(ok: bool, written: f64, offered: f64, drain: f64) -> Outcome {
        Outcome {
            ok,
            written_msg_per_s: written,
            offered_msg_per_s: offered,
            drain_s: drain,
        }
    }

    #[test]
    fn search_starts_unpaced_then_paces_at_what_was_written() {
        let mut s = RateSearch::new(5);
        assert_eq!(s.first(), Step::Run(None));
        assert_eq!(
            s.next(o(true, 1000.7, 2000.0, 3.0)),
            Step::Run(Some(1000.0))
        );
        assert_eq!(s.next(o(true, 999.0, 990.0, 0.2)), Step::Found(1000.0));
    }

    #[test]
    fn search_steps_down_on_loss_on_a_missed_schedule_and_on_a_queue() {
        let mut s = RateSearch::new(5);
        s.next(o(true, 1000.0, 1000.0, 0.0));
        // lost messages
        assert_eq!(
            s.next(o(false, 1000.0, 1000.0, 0.0)),
            Step::Run(Some(850.0))
        );
        // loadgen could not keep 97% of the schedule
        assert_eq!(s.next(o(true, 800.0, 820.0, 0.0)), Step::Run(Some(722.0)));
        // the output kept growing for 2 s after sending ended: a queue
        assert_eq!(s.next(o(true, 722.0, 722.0, 2.0)), Step::Run(Some(613.0)));
        assert_eq!(s.next(o(true, 613.0, 600.0, 0.5)), Step::Found(613.0));
    }

    #[test]
    fn search_gives_up_when_the_budget_runs_out_or_the_first_run_fails() {
        let mut s = RateSearch::new(2);
        s.next(o(true, 1000.0, 1000.0, 0.0));
        assert_eq!(s.next(o(false, 0.0, 0.0, 0.0)), Step::Run(Some(850.0)));
        assert!(matches!(s.next(o(false, 0.0, 0.0, 0.0)), Step::GaveUp(_)));
        let mut s = RateSearch::new(5);
        assert!(matches!(s.next(o(false, 1e6, 1e6, 0.0)), Step::GaveUp(_)));
        let mut s = RateSearch::new(5);
        assert!(matches!(s.next(o(true, 0.2, 1.0, 0.0)), Step::GaveUp(_)));
    }

    #[test]
    fn points_parse_sorted_and_bounded() {
        assert_eq!(
            parse_points("95,20, 40,60,80").unwrap(),
            vec![20, 40, 60, 80, 95]
        );
        assert!(parse_points("0").is_err());
        assert!(parse_points("101").is_err());
        assert!(parse_points("x").is_err());
        assert!(parse_points("").is_err());
    }

    fn point(e: Engine, pct: u32, p99_ms: f64, engine_p99_ms: Option<f64>) -> Point {
        let q = |m: f64| Quantiles {
            p50: m * 500.0,
            p99: m * 1000.0,
            p999: m * 2000.0,
        };
        Point {
            engine: e,
            pct,
            rate_msg_per_s: f64::from(pct) * 1000.0,
            status: Status::Ok,
            reason: None,
            written_msg_per_s: Some(f64::from(pct) * 1000.0),
            lost: 0,
            client_us: Some(q(p99_ms)),
            engine_us: engine_p99_ms
                .map(|m| BTreeMap::from([("ringest_write_latency_seconds".to_string(), q(m))]))
                .unwrap_or_default(),
            steal_pct: Some(0.0),
            quiet_gave_up: false,
            refused: false,
            run_dir: String::new(),
        }
    }

    #[test]
    fn point_rates_are_whole_and_at_least_one() {
        assert_eq!(point_rate(5_500_000.0, 60), 3_300_000.0);
        assert_eq!(point_rate(1001.0, 95), 950.0);
        assert_eq!(point_rate(10.0, 1), 1.0);
    }

    #[test]
    fn curve_disk_sums_every_run_and_names_the_largest() {
        let sc = crate::scenario::for_test("");
        let maxima = [
            (Engine::Ringest, 5_500_000.0),
            (Engine::SyslogNg, 1_000_000.0),
        ];
        let d = curve_disk(&sc, 30, &maxima, &[20, 60, 95]);
        assert_eq!(d.runs, 6);
        // (20 + 60 + 95)% of 6.5M msg/s for 30 s, 301 B each.
        assert_eq!(d.output_bytes, 11_375_000 * 30 * 301);
        let need_95 = crate::disk_budget::need_bytes(5_225_000 * 30 * 301);
        assert_eq!(d.largest, Some((95, Engine::Ringest, need_95)));
        let line = d.describe(30);
        assert!(
            line.contains("6 runs of 30 s write about 102.7 GB in all"),
            "{line}"
        );
        assert!(line.contains("ringest at 95%"), "{line}");
        let none = curve_disk(&sc, 30, &[], &[20]);
        assert_eq!((none.runs, none.output_bytes, none.largest), (0, 0, None));
    }

    #[test]
    fn a_refused_point_says_so_in_the_table() {
        let mut p = point(Engine::Ringest, 95, 1.0, None);
        p.status = Status::Failed;
        p.refused = true;
        p.reason = Some("needs 47.1 GB of disk for its output, 31.0 GB free".into());
        p.client_us = None;
        let md = markdown("m", &[], &[p], 5.0);
        assert!(
            md.contains("| refused: needs 47.1 GB of disk for its output, 31.0 GB free |"),
            "{md}"
        );
    }

    #[test]
    fn markdown_judges_the_80_percent_point_on_both_histograms() {
        let pts = vec![
            point(Engine::Ringest, 40, 1.0, Some(0.5)),
            point(Engine::Ringest, 80, 2.0, Some(7.0)),
            point(Engine::SyslogNg, 80, 3.0, None),
        ];
        let md = markdown("machine", &[], &pts, 5.0);
        let rows: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| ringest | 80"))
            .collect();
        assert_eq!(rows.len(), 1, "{md}");
        assert!(
            rows[0].ends_with("not met |"),
            "ringest's own p99 is 7 ms: {md}"
        );
        let ng: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| syslog-ng | 80"))
            .collect();
        assert!(ng[0].ends_with(" met |"), "{md}");
        assert!(md.contains("ringest_write_latency_seconds p50"), "{md}");
        // Every line of the curve's table has the header's columns.
        let table: Vec<&str> = md
            .lines()
            .skip_while(|l| !l.starts_with("| engine | % of max"))
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert_eq!(table.len(), 2 + pts.len(), "{md}");
        let cols = table[0].matches('|').count();
        assert!(table.iter().all(|l| l.matches('|').count() == cols), "{md}");
    }

    #[test]
    fn svg_has_a_line_per_engine_and_measure_and_the_goal() {
        let pts = vec![
            point(Engine::Ringest, 20, 0.3, Some(0.2)),
            point(Engine::Ringest, 80, 2.0, Some(1.0)),
            point(Engine::SyslogNg, 20, 1.0, None),
            point(Engine::SyslogNg, 80, 40.0, None),
        ];
        let s = svg("t <&>", &pts, 5.0);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 5, "{s}");
        assert!(s.contains("p99 goal 5 ms"));
        assert!(s.contains("t &lt;&amp;&gt;"));
        assert!(!s.contains("NaN") && !s.contains("inf"), "{s}");
        // One colour per engine: ringest's three lines share one, syslog-ng's two another.
        let colour_of = |title: &str| {
            let i = s.find(&format!("<title>{title}</title>")).unwrap();
            let line = &s[s[..i].rfind("<polyline").unwrap()..i];
            line.split("stroke=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            colour_of("ringest client p99"),
            colour_of("ringest write_latency_seconds p99")
        );
        assert_eq!(
            colour_of("syslog-ng client p99"),
            colour_of("syslog-ng client p50")
        );
        assert_ne!(
            colour_of("ringest client p99"),
            colour_of("syslog-ng client p99")
        );
    }
}
