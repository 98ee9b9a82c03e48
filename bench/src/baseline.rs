//! Scenarios against their baseline (`baseline = "other"` in the scenario
//! file): per engine and repeat, this scenario's figure over the baseline's
//! in the same repeat and memory state, then the median with min–max. This
//! is how `shards = 2` compares with `shards = 1`, and each durability
//! level with `never`: the same pairing as the ratios against syslog-ng
//! (the scenarios of a repeat run in a random order, one right after the
//! other).

use std::fmt::Write as _;

use serde::Serialize;

use crate::record::{MemState, Run};
use crate::report::{self, Stat};
use crate::scenario::{Engine, Scenario};

#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    pub state: MemState,
    pub scenario: String,
    pub baseline: String,
    pub engine: Engine,
    /// msg/s written, this over the baseline (higher: faster).
    pub msg_per_s: Option<Stat>,
    /// Server CPU-µs per message, this over the baseline (higher: costlier).
    pub server_cpu: Option<Stat>,
    /// Machine-wide CPU-µs per message, this over the baseline.
    pub machine_cpu: Option<Stat>,
}

fn counted(r: &Run) -> bool {
    !r.superseded && r.status.measured()
}

fn ratios(a: &[&Run], b: &[&Run], f: &dyn Fn(&Run) -> Option<f64>) -> Option<Stat> {
    let mut v = Vec::new();
    for x in a {
        if let Some(y) = b.iter().find(|y| y.repeat == x.repeat) {
            if let (Some(p), Some(q)) = (f(x), f(y)) {
                if q > 0.0 {
                    v.push(p / q);
                }
            }
        }
    }
    Stat::of(v)
}

/// Every scenario with a baseline, per state and engine that ran both.
pub fn pairs(scenarios: &[Scenario], runs: &[Run]) -> Vec<Pair> {
    let mut out = Vec::new();
    for state in report::states_of(runs) {
        for sc in scenarios {
            let Some(base) = &sc.baseline else { continue };
            for e in Engine::ALL {
                let of = |name: &str| -> Vec<&Run> {
                    runs.iter()
                        .filter(|r| r.state == state && r.engine == e && r.scenario == name)
                        .filter(|r| counted(r))
                        .collect()
                };
                let (a, b) = (of(&sc.name), of(base));
                if a.is_empty() && b.is_empty() {
                    continue;
                }
                out.push(Pair {
                    state,
                    scenario: sc.name.clone(),
                    baseline: base.clone(),
                    engine: e,
                    msg_per_s: ratios(&a, &b, &|r| r.written_msg_per_s),
                    server_cpu: ratios(&a, &b, &|r| r.server_cpu_us_per_msg),
                    machine_cpu: ratios(&a, &b, &|r| r.machine_cpu_us_per_msg),
                });
            }
        }
    }
    out
}

fn cell(s: &Option<Stat>) -> String {
    match s {
        Some(s) => format!("{:.2}× ({:.2}–{:.2}, n={})", s.median, s.min, s.max, s.n),
        None => "– (no measured pair)".into(),
    }
}

/// The results.md section; empty when no scenario has a baseline.
pub fn markdown(scenarios: &[Scenario], runs: &[Run]) -> String {
    let ps = pairs(scenarios, runs);
    if ps.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "\n## Against a baseline scenario (paired by repeat)\n\n\
         Per engine and repeat: the scenario's figure over its baseline's in the same repeat and memory \
         state (the scenarios of a repeat ran in a random order, one right after the other); median \
         (min–max, n repeats). msg/s above 1× is faster; CPU per message above 1× costs more.\n\n\
         | state | scenario | baseline | engine | msg/s | server CPU/msg | machine CPU/msg |\n|---|---|---|---|---|---|---|\n",
    );
    for p in &ps {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            p.state.name(),
            p.scenario,
            p.baseline,
            p.engine,
            cell(&p.msg_per_s),
            cell(&p.server_cpu),
            cell(&p.machine_cpu)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Status;
    use crate::scenario;

    fn run(sc: &str, e: Engine, repeat: u32, msg: f64, cpu: f64) -> Run {
        let mut r = Run::new(sc, e, repeat, MemState::Steady, String::new());
        r.written_msg_per_s = Some(msg);
        r.server_cpu_us_per_msg = Some(cpu);
        r
    }

    fn scenarios() -> Vec<Scenario> {
        scenario::parse(
            "[[scenario]]\nname='one'\ntitle='t'\ntransport='tls'\nframing='octet-counted'\nconnections=1\nrecords_per_write=1\n\
             [[scenario]]\nname='two'\ntitle='t'\ntransport='tls'\nframing='octet-counted'\nconnections=1\nrecords_per_write=1\nbaseline='one'\n",
            "t",
        )
        .unwrap()
    }

    #[test]
    fn ratios_pair_by_repeat_not_by_median() {
        // Unpaired medians would give 200/100 = 2.0; the paired ratios are
        // 3.0, 1.0 and 1.5, whose median is 1.5.
        let runs = vec![
            run("one", Engine::Ringest, 1, 100.0, 1.0),
            run("one", Engine::Ringest, 2, 300.0, 1.0),
            run("one", Engine::Ringest, 3, 50.0, 2.0),
            run("two", Engine::Ringest, 1, 300.0, 0.5),
            run("two", Engine::Ringest, 2, 300.0, 1.0),
            run("two", Engine::Ringest, 3, 75.0, 1.0),
        ];
        let p = pairs(&scenarios(), &runs);
        assert_eq!(p.len(), 1, "{p:?}");
        let m = p[0].msg_per_s.unwrap();
        assert_eq!((m.median, m.min, m.max, m.n), (1.5, 1.0, 3.0, 3));
        let c = p[0].server_cpu.unwrap();
        assert_eq!((c.median, c.min, c.max), (0.5, 0.5, 1.0));
        assert!(p[0].machine_cpu.is_none());
        let md = markdown(&scenarios(), &runs);
        assert!(
            md.contains("| steady | two | one | ringest | 1.50× (1.00–3.00, n=3)"),
            "{md}"
        );
    }

    #[test]
    fn superseded_failed_and_unpaired_runs_are_left_out() {
        let mut gone = run("two", Engine::Ringest, 1, 1e9, 1.0);
        gone.superseded = true;
        let mut failed = run("two", Engine::Ringest, 2, 1e9, 1.0);
        failed.status = Status::Failed;
        let runs = vec![
            run("one", Engine::Ringest, 1, 100.0, 1.0),
            run("one", Engine::Ringest, 2, 100.0, 1.0),
            gone,
            failed,
            run("two", Engine::Ringest, 1, 200.0, 1.0),
            run("two", Engine::Ringest, 3, 900.0, 1.0),
        ];
        let p = pairs(&scenarios(), &runs);
        let m = p[0].msg_per_s.unwrap();
        assert_eq!((m.median, m.n), (2.0, 1));
    }

    #[test]
    fn no_baseline_no_section() {
        let mut v = scenarios();
        v[1].baseline = None;
        assert!(markdown(&v, &[run("one", Engine::Ringest, 1, 1.0, 1.0)]).is_empty());
    }
}
