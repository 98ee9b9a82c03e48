//! The kafka rows (issue 15): loadgen → engine → one Apache Kafka broker,
//! the same for every engine, started once per `bench compare`
//! (tests/kafka/broker.sh). Delivery is counted in the topic itself: the
//! sum of its partitions' high watermarks.
//!
//! - `settings`: the producer settings every engine is given, and why;
//! - `delivery`: the watermark arithmetic and the "topic holds them all"
//!   wait, as a state machine fed with samples (no broker needed to test);
//! - `broker`: starting, stopping and making topics with broker.sh;
//! - `client`: the bench-side librdkafka client (cargo feature `kafka`):
//!   watermarks during the run, one consume after it for `loadgen verify`;
//! - `report`: results.md's section on the topics and the broker's CPU.

pub mod broker;
pub mod client;
pub mod delivery;
pub mod report;
pub mod settings;

/// Partitions of every topic, the same for every engine and repeat.
pub const PARTITIONS: u32 = 4;

/// A fresh topic per engine per repeat (and per attempt and memory state),
/// so that every row counts only its own messages. Kafka topic names allow
/// `[a-zA-Z0-9._-]`; scenario names are lowercase letters, digits and '-'.
pub fn topic_name(state: &str, scenario: &str, engine: &str, repeat: u32, attempt: u32) -> String {
    format!("bench.{state}.{scenario}.{engine}.r{repeat}.a{attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_are_distinct_per_engine_and_repeat_and_valid() {
        let a = topic_name("steady", "kafka-mtls-large-8", "syslog-ng", 1, 1);
        let b = topic_name("steady", "kafka-mtls-large-8", "rsyslog", 1, 1);
        let c = topic_name("steady", "kafka-mtls-large-8", "syslog-ng", 2, 1);
        assert!(a != b && a != c && b != c);
        for t in [a, b, c] {
            assert!(t.len() <= 249);
            assert!(t
                .bytes()
                .all(|x| x.is_ascii_alphanumeric() || b"._-".contains(&x)));
        }
    }
}
