//! results.md's section on the kafka rows: the broker, and per engine what
//! the topic held against what was sent, the value bytes per message and
//! the broker's own CPU per message (recorded apart from the engine's: it
//! is the same broker for every engine).

use std::fmt::Write as _;

use crate::record::{MemState, Run, Status};
use crate::report::{num_cell, with_baseline, Stat};
use crate::scenario::{Engine, Scenario};

/// The runs that count for the kafka rows: kafka runs not superseded by a
/// rerun.
fn counted(r: &&Run) -> bool {
    !r.superseded && r.kafka_topic.is_some()
}

/// Empty when no kafka row ran.
pub fn section(
    scenarios: &[Scenario],
    engines: &[Engine],
    states: &[MemState],
    runs: &[Run],
) -> String {
    let Some(broker) = runs
        .iter()
        .filter(counted)
        .find_map(|r| r.kafka_broker.clone())
    else {
        return String::new();
    };
    let mut s = String::new();
    let _ = writeln!(s, "## Kafka rows: the topic and the broker\n");
    let _ = writeln!(
        s,
        "*Broker: {broker}, on loopback, started once for the whole bench run; every engine and repeat wrote into a fresh {}-partition topic.*\n",
        super::PARTITIONS
    );
    let _ = writeln!(
        s,
        "Messages in the topic is the sum of its partitions' high watermarks after the engine stopped; it must equal what loadgen sent \
         (fewer is loss, more is duplication). Value bytes per message are the records' values as read back. Broker CPU is the broker \
         JVM's utime+stime over the same window as the engine's server CPU, per message; the machine-wide figure includes it.\n"
    );
    let _ = writeln!(
        s,
        "| state | scenario | engine | runs with topic = sent | value bytes per message | broker CPU-µs per message (median, min–max) |\n|---|---|---|---|---|---|"
    );
    for &state in states {
        for sc in scenarios.iter().filter(|sc| sc.kafka) {
            for &e in engines {
                let rs: Vec<&Run> = runs
                    .iter()
                    .filter(counted)
                    .filter(|r| r.state == state && r.scenario == sc.name && r.engine == e)
                    .collect();
                if rs.is_empty() {
                    continue;
                }
                let exact = rs
                    .iter()
                    .filter(|r| {
                        r.status == Status::Ok
                            && r.sent.is_some()
                            && r.kafka_high_watermarks.iter().sum::<i64>()
                                == r.sent.unwrap_or(0) as i64
                    })
                    .count();
                let bytes = Stat::of(rs.iter().filter_map(|r| r.bytes_per_msg).collect());
                let cpu = Stat::of(rs.iter().filter_map(|r| r.broker_cpu_us_per_msg).collect());
                let _ = writeln!(
                    s,
                    "| {} | `{}` | {e} | {exact} of {} | {} | {} |",
                    state.name(),
                    sc.name,
                    rs.len(),
                    bytes
                        .map(|b| format!("{:.1}", b.median))
                        .unwrap_or("—".into()),
                    cpu.map(|c| format!("{:.2} ({:.2}–{:.2})", c.median, c.min, c.max))
                        .unwrap_or("—".into()),
                );
            }
        }
    }
    let _ = writeln!(s);
    s += &bound(scenarios, states, runs);
    s
}

/// One repeat of a kafka row: ringest's run and syslog-ng's.
struct Pair {
    /// ringest's msg/s over syslog-ng's.
    ratio: f64,
    /// The rate at which the broker and loadgen alone, at their CPU per
    /// message in ringest's run, would take every CPU of the machine, over
    /// syslog-ng's msg/s: no engine's ratio can exceed it on this machine,
    /// whatever its own cost.
    ceiling: f64,
    /// ringest's msg/s over that rate.
    share: f64,
    /// ringest's server CPU per message.
    own_us: f64,
    /// The server CPU per message the scenario's msg/s goal leaves ringest
    /// on this machine: what the CPUs give at the goal's rate, less the
    /// broker's and loadgen's share (negative: none at all).
    allowed_us: Option<f64>,
}

/// The pairs of one state and kafka scenario: per repeat where both
/// ringest and syslog-ng were measured and the figures exist. `goal`: the
/// scenario's least msg/s ratio over syslog-ng, if it has one.
fn pairs(runs: &[&Run], goal: Option<f64>) -> Vec<Pair> {
    let mut v = Vec::new();
    for (r, b) in with_baseline(runs, Engine::Ringest) {
        let (Some(rate), Some(base), Some(broker), Some(client), Some(cpus), Some(own_us)) = (
            r.written_msg_per_s,
            b.written_msg_per_s,
            r.broker_cpu_us_per_msg,
            r.client_cpu_us_per_msg,
            r.proc_stat_cpu.as_ref().map(|w| w.cpus),
            r.server_cpu_us_per_msg,
        ) else {
            continue;
        };
        let others_us = broker + client;
        if base <= 0.0 || others_us <= 0.0 || cpus == 0 {
            continue;
        }
        let cpu_us_per_s = f64::from(cpus) * 1e6;
        let bound_msg_per_s = cpu_us_per_s / others_us;
        v.push(Pair {
            ratio: rate / base,
            ceiling: bound_msg_per_s / base,
            share: rate / bound_msg_per_s,
            own_us,
            allowed_us: goal.map(|g| cpu_us_per_s / (g * base) - others_us),
        });
    }
    v
}

/// What the machine leaves for the kafka rows' msg/s ratio: the broker and
/// loadgen share the engine's CPUs, so their CPU per message bounds every
/// engine's rate. Empty without a ringest and syslog-ng pair.
fn bound(scenarios: &[Scenario], states: &[MemState], runs: &[Run]) -> String {
    let mut rows = String::new();
    for &state in states {
        for sc in scenarios.iter().filter(|sc| sc.kafka) {
            let rs: Vec<&Run> = runs
                .iter()
                .filter(counted)
                .filter(|r| r.state == state && r.scenario == sc.name)
                .collect();
            let v = pairs(&rs, sc.goals.msg_per_s_vs_syslog_ng_min);
            let stat = |f: &dyn Fn(&Pair) -> f64| Stat::of(v.iter().map(f).collect());
            let (Some(ratio), Some(ceiling), Some(share)) =
                (stat(&|p| p.ratio), stat(&|p| p.ceiling), stat(&|p| p.share))
            else {
                continue;
            };
            let own = num_cell(&stat(&|p| p.own_us), 2);
            let allowed = match sc.goals.msg_per_s_vs_syslog_ng_min {
                Some(_) => num_cell(
                    &Stat::of(v.iter().filter_map(|p| p.allowed_us).collect()),
                    2,
                ),
                None => "no goal".into(),
            };
            let _ = writeln!(
                rows,
                "| {} | `{}` | {:.2}× ({:.2}–{:.2}) | {:.2}× ({:.2}–{:.2}) | {:.0}% ({:.0}–{:.0}%) | {own} | {allowed} |",
                state.name(),
                sc.name,
                ratio.median,
                ratio.min,
                ratio.max,
                ceiling.median,
                ceiling.min,
                ceiling.max,
                share.median * 100.0,
                share.min * 100.0,
                share.max * 100.0,
            );
        }
    }
    if rows.is_empty() {
        return rows;
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### The machine's bound on the kafka rows' msg/s ratio\n"
    );
    let _ = writeln!(
        s,
        "The broker and loadgen run on the engine's CPUs. At their CPU per message in ringest's run (broker + client), they alone \
         would take every CPU of the machine at CPUs × 10⁶ ÷ (broker + client CPU-µs per message) msg/s: no engine can pass that rate \
         here, whatever its own cost. The bound is that rate over syslog-ng's msg/s in the same repeat; the next column is how much of \
         that rate ringest reached. The last two columns set ringest's own server CPU per message beside what the scenario's msg/s goal \
         leaves it here: the CPUs' time per message at the goal's rate, less the broker's and loadgen's. Paired per repeat: median \
         (min–max). A bound under the goal means no engine can show it on this machine with the broker beside it.\n"
    );
    let _ = writeln!(
        s,
        "| state | scenario | ringest msg/s ÷ syslog-ng's | bound: broker + loadgen alone ÷ syslog-ng's | ringest's msg/s ÷ that rate | ringest server CPU-µs/msg | the goal leaves ringest, CPU-µs/msg |\n|---|---|---|---|---|---|---|"
    );
    s += &rows;
    let _ = writeln!(s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ProcStatWindow;
    use crate::scenario;

    fn kafka_run(e: Engine, repeat: u32, marks: Vec<i64>, sent: u64, broker_us: f64) -> Run {
        let mut r = Run::new("k", e, repeat, MemState::Steady, String::new());
        r.kafka_broker = Some("Apache Kafka 4.1.1, KRaft single node, -Xmx512m".into());
        r.kafka_topic = Some(format!("t{repeat}{e}"));
        r.kafka_high_watermarks = marks;
        r.sent = Some(sent);
        r.bytes_per_msg = Some(300.0);
        r.broker_cpu_us_per_msg = Some(broker_us);
        r
    }

    #[test]
    fn counts_exact_topics_and_gives_the_brokers_cpu_apart() {
        let sc = scenario::parse(
            "[[scenario]]\nname='k'\ntitle='t'\ntransport='tls'\nframing='octet-counted'\nconnections=8\nrecords_per_write=1\nkafka=true\n",
            "t",
        )
        .unwrap();
        let mut short = kafka_run(Engine::SyslogNg, 2, vec![10, 10, 10, 9], 40, 3.0);
        short.status = Status::Lost;
        let runs = vec![
            kafka_run(Engine::Ringest, 1, vec![10, 10, 10, 10], 40, 1.0),
            kafka_run(Engine::Ringest, 2, vec![5, 15, 10, 10], 40, 2.0),
            kafka_run(Engine::SyslogNg, 1, vec![10, 10, 10, 10], 40, 4.0),
            short,
        ];
        let md = section(&sc, &Engine::ALL, &[MemState::Steady], &runs);
        assert!(md.contains("Apache Kafka 4.1.1"), "{md}");
        assert!(
            md.contains("| steady | `k` | ringest | 2 of 2 | 300.0 | 1.50 (1.00–2.00) |"),
            "{md}"
        );
        assert!(md.contains("| steady | `k` | syslog-ng | 1 of 2 |"), "{md}");
        assert!(!md.contains("rsyslog"), "{md}");
        assert_eq!(section(&sc, &Engine::ALL, &[MemState::Steady], &[]), "");
        // No run carries the machine's CPU count: no bound is claimed.
        assert!(!md.contains("machine's bound"), "{md}");
    }

    fn paced(e: Engine, repeat: u32, msg_per_s: f64, own_us: f64, broker_us: f64) -> Run {
        let client_us = 0.1;
        let mut r = kafka_run(e, repeat, vec![10, 10, 10, 10], 40, broker_us);
        r.written_msg_per_s = Some(msg_per_s);
        r.server_cpu_us_per_msg = Some(own_us);
        r.client_cpu_us_per_msg = Some(client_us);
        r.proc_stat_cpu = Some(ProcStatWindow {
            before: String::new(),
            after: String::new(),
            cpus: 2,
        });
        r
    }

    #[test]
    fn bounds_the_ratio_by_what_the_broker_and_client_leave() {
        let sc = scenario::parse(
            "[[scenario]]\nname='k'\ntitle='t'\ntransport='tls'\nframing='octet-counted'\nconnections=8\nrecords_per_write=50\nkafka=true\n[scenario.goals]\nmsg_per_s_vs_syslog_ng_min=3.0\n",
            "t",
        )
        .unwrap();
        // Repeat 1: broker 0.9 + client 0.1 µs/msg on 2 CPUs bound any
        // engine at 2M msg/s, i.e. 4× syslog-ng's 500k; ringest's 1.5M is 3×
        // and 75% of the bound. Repeat 2: 1.9 µs/msg, 1.05M, i.e. 2.63× of
        // syslog-ng's 400k; ringest's 0.84M is 2.1× and 80%. Repeat 3 has
        // no syslog-ng run. Medians of two are their means. The goal (3×)
        // leaves ringest 2 CPU-s / 1.5M msg − 1.0 µs = 0.33 µs per message
        // in repeat 1, and 2 / 1.2M − 1.9 = −0.23 (nothing) in repeat 2.
        let runs = vec![
            paced(Engine::Ringest, 1, 1.5e6, 0.5, 0.9),
            paced(Engine::SyslogNg, 1, 0.5e6, 2.0, 0.7),
            paced(Engine::Ringest, 2, 0.84e6, 0.7, 1.8),
            paced(Engine::SyslogNg, 2, 0.4e6, 2.0, 0.7),
            paced(Engine::Ringest, 3, 9e6, 0.1, 0.1),
        ];
        let md = section(&sc, &Engine::ALL, &[MemState::Steady], &runs);
        assert!(md.contains("machine's bound"), "{md}");
        assert!(
            md.contains(
                "| steady | `k` | 2.55× (2.10–3.00) | 3.32× (2.63–4.00) | 77% (75–80%) | 0.60 (0.50–0.70) | 0.05 (-0.23–0.33) |"
            ),
            "{md}"
        );
        // A ringest run without its syslog-ng pair alone makes no row.
        let alone = section(&sc, &Engine::ALL, &[MemState::Steady], &runs[4..]);
        assert!(!alone.contains("machine's bound"), "{alone}");
    }
}
