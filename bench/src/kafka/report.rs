//! results.md's section on the kafka rows: the broker, and per engine what
//! the topic held against what was sent, the value bytes per message and
//! the broker's own CPU per message (recorded apart from the engine's: it
//! is the same broker for every engine).

use std::fmt::Write as _;

use crate::record::{MemState, Run, Status};
use crate::report::Stat;
use crate::scenario::{Engine, Scenario};

/// Empty when no kafka row ran.
pub fn section(
    scenarios: &[Scenario],
    engines: &[Engine],
    states: &[MemState],
    runs: &[Run],
) -> String {
    let counted = |r: &&Run| !r.superseded && r.kafka_topic.is_some();
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
    s
}

#[cfg(test)]
mod tests {
    use super::*;
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
    }
}
