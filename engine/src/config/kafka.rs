//! The keys of a `type = "kafka"` destination and their checks. The
//! mapping to librdkafka properties lives with the destination
//! (writer/kafka/settings.rs); this module only says what is valid.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{check_range, DestinationConfig, DestinationType};

/// What a message's Kafka key is; keyed messages of one sender stay in one
/// partition, so they are read in the order they were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KafkaKey {
    /// No key: the producer spreads messages over the partitions.
    #[default]
    None,
    /// The sender's IP address (without port: a reconnect keeps the partition).
    Peer,
    /// The syslog HOSTNAME field (RFC 5424 or 3164); the peer's IP when absent.
    Host,
}

/// How many replicas must have a message before it counts as delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum KafkaAcks {
    /// Every in-sync replica; the idempotent producer is on.
    #[default]
    #[serde(rename = "all")]
    All,
    /// The partition leader only (idempotence off).
    #[serde(rename = "1")]
    Leader,
}

impl KafkaAcks {
    pub fn property(self) -> &'static str {
        match self {
            KafkaAcks::All => "all",
            KafkaAcks::Leader => "1",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KafkaCompression {
    #[default]
    None,
    Lz4,
    Zstd,
}

impl KafkaCompression {
    pub fn property(self) -> &'static str {
        match self {
            KafkaCompression::None => "none",
            KafkaCompression::Lz4 => "lz4",
            KafkaCompression::Zstd => "zstd",
        }
    }
}

/// Properties `[destination.tls]` sets, when it is there.
pub const TLS_PROPERTIES: &[&str] = &[
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
];

/// Properties ringest sets itself from named keys (or must own, so that
/// nothing is dropped): `[destination.properties]` may not set them.
pub const OWNED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "brokers"),
    ("acks", "acks"),
    ("request.required.acks", "acks"),
    ("enable.idempotence", "acks (\"all\" turns it on)"),
    ("compression.type", "compression"),
    ("compression.codec", "compression"),
    ("linger.ms", "linger_ms"),
    ("queue.buffering.max.ms", "linger_ms"),
    ("batch.size", "batch_bytes"),
    ("queue.buffering.max.kbytes", "producer_queue_max_bytes"),
    ("queue.buffering.max.messages", "producer_queue_max_bytes"),
    (
        "message.timeout.ms",
        "none: ringest never lets the producer drop a message",
    ),
    (
        "delivery.timeout.ms",
        "none: ringest never lets the producer drop a message",
    ),
    (
        "delivery.report.only.error",
        "none: ringest counts each delivery (and releases its bytes) from its report",
    ),
];

/// Whether this build has the Kafka client (cargo feature `kafka`).
pub const BUILT_WITH_KAFKA: bool = cfg!(feature = "kafka");

/// Checks one destination's Kafka keys (`key` prefixes a key with its
/// destination), and that no other kind sets them.
pub fn check(d: &DestinationConfig, key: &dyn Fn(&str) -> String) -> Result<(), (String, String)> {
    if d.kind != DestinationType::Kafka {
        let set = [
            ("brokers", !d.brokers.is_empty()),
            ("topic", !d.topic.is_empty()),
            ("properties", !d.properties.is_empty()),
        ];
        if let Some((k, _)) = set.iter().find(|(_, set)| *set) {
            return Err((key(k), "is for type = \"kafka\" destinations only".into()));
        }
        return Ok(());
    }
    if !BUILT_WITH_KAFKA {
        return Err((
            key("type"),
            "\"kafka\" is not in this build of ringest: build it with the Kafka client \
             (cargo build --release -p ringest --features kafka; needs cmake), or install the \
             Debian package, which has it"
                .into(),
        ));
    }
    if d.brokers.is_empty()
        || d.brokers
            .iter()
            .any(|b| b.trim().is_empty() || b.contains(','))
    {
        return Err((
            key("brokers"),
            "a kafka destination needs brokers = [\"host:port\", ...], one address per item".into(),
        ));
    }
    if d.topic.is_empty() {
        return Err((key("topic"), "a kafka destination needs a topic".into()));
    }
    if d.topic.len() > 249
        || !d
            .topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err((
            key("topic"),
            format!(
                "{:?} is not a Kafka topic name (up to 249 of a-z A-Z 0-9 . _ -)",
                d.topic
            ),
        ));
    }
    check_range(key("linger_ms"), d.linger_ms, 0, 900_000)?;
    check_range(key("batch_bytes"), d.batch_bytes, 1_024, 2_147_483_647)?;
    check_range(
        key("producer_queue_max_bytes"),
        d.producer_queue_max_bytes,
        1 << 20,
        2_147_483_647 << 10,
    )?;
    check_range(
        key("delivery_stall_ms"),
        d.delivery_stall_ms,
        1_000,
        3_600_000,
    )?;
    for name in d.properties.keys() {
        if let Some((_, by)) = OWNED_PROPERTIES.iter().find(|(p, _)| p == name) {
            return Err((
                key(&format!("properties.{name}")),
                format!("is set by ringest; use the destination key {by}"),
            ));
        }
        if d.tls.is_some() && TLS_PROPERTIES.contains(&name.as_str()) {
            return Err((
                key(&format!("properties.{name}")),
                "is set by [destination.tls]; set it in one place".into(),
            ));
        }
    }
    if let Some(tls) = &d.tls {
        // The one `[destination.tls]` table (tls::ClientTlsConfig): librdkafka
        // takes only its files; everything else is refused, not ignored.
        let defaults = crate::tls::ClientTlsConfig::default();
        let unsupported = [
            ("ca_dir", tls.ca_dir.is_some()),
            ("server_name", tls.server_name.is_some()),
            ("peer_verify", tls.peer_verify != defaults.peer_verify),
            ("trusted_keys", !tls.trusted_keys.is_empty()),
            (
                "tls_version_min",
                tls.tls_version_min != defaults.tls_version_min,
            ),
            (
                "tls_version_max",
                tls.tls_version_max != defaults.tls_version_max,
            ),
            ("cipher_suites", !tls.cipher_suites.is_empty()),
        ];
        if let Some((k, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err((
                key(&format!("tls.{k}")),
                "is not supported for kafka destinations (librdkafka takes ca_file, cert_file and key_file; other settings go in [destination.properties] as ssl.*)".into(),
            ));
        }
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err((
                key("tls"),
                "cert_file and key_file go together (a client certificate and its key)".into(),
            ));
        }
    }
    Ok(())
}

pub type Properties = BTreeMap<String, String>;

pub mod defaults {
    pub fn linger_ms() -> u64 {
        5
    }
    pub fn batch_bytes() -> u64 {
        1_000_000
    }
    /// 16 MiB. librdkafka's queue only has to hold what is on its way to
    /// the brokers, the rate times (linger + the produce round trip): at
    /// 1M messages of 300 B per second and 5 + 20 ms, 7.5 MB. Upstream of
    /// it the rings (and a `disk_buffer`) hold the rest. A deeper queue
    /// holds each message longer: librdkafka then touches it three more
    /// times (into the request, its offset on the acknowledgement, its
    /// delivery report) after it has left the CPU's cache. 64 MiB against
    /// 16 MiB, ringest alone into one local broker (2026-11-30, Intel Xeon,
    /// bench/results/2026-11-30-s12/producer-queue/): 11% less CPU per
    /// message with 50 messages per record, 4% with one. The throughput it
    /// allows is this size over that round trip: raise it for brokers far
    /// away.
    pub fn producer_queue_max_bytes() -> u64 {
        16 << 20
    }
    pub fn delivery_stall_ms() -> u64 {
        10_000
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn load(dest: &str) -> Result<Config, String> {
        let text = format!(
            "[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
             [[destination]]\nname = \"k\"\n{dest}"
        );
        Config::from_toml(&text, Path::new("t.toml"), Path::new("/tmp")).map_err(|e| e.to_string())
    }

    const KAFKA: &str = "type = \"kafka\"\nbrokers = [\"127.0.0.1:9092\"]\ntopic = \"logs\"\n";

    #[cfg(feature = "kafka")]
    #[test]
    fn a_kafka_destination_needs_brokers_and_a_valid_topic() {
        load(KAFKA).expect("valid");
        let e = load("type = \"kafka\"\ntopic = \"logs\"\n").expect_err("no brokers");
        assert!(e.contains("destination[0].brokers"), "{e}");
        let e = load("type = \"kafka\"\nbrokers = [\"a:1,b:2\"]\ntopic = \"logs\"\n")
            .expect_err("two in one");
        assert!(e.contains("one address per item"), "{e}");
        let e = load("type = \"kafka\"\nbrokers = [\"a:1\"]\n").expect_err("no topic");
        assert!(e.contains("destination[0].topic"), "{e}");
        let e = load("type = \"kafka\"\nbrokers = [\"a:1\"]\ntopic = \"a b\"\n").expect_err("name");
        assert!(e.contains("not a Kafka topic name"), "{e}");
        let e = load(&format!("{KAFKA}linger_ms = 900001\n")).expect_err("range");
        assert!(e.contains("linger_ms"), "{e}");
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn properties_may_not_override_what_keeps_messages_from_being_dropped() {
        let e = load(&format!(
            "{KAFKA}[destination.properties]\n\"message.timeout.ms\" = \"30000\"\n"
        ))
        .expect_err("owned");
        assert!(e.contains("properties.message.timeout.ms"), "{e}");
        assert!(e.contains("never lets the producer drop"), "{e}");
        let e =
            load(&format!("{KAFKA}[destination.properties]\nacks = \"0\"\n")).expect_err("acks");
        assert!(e.contains("use the destination key acks"), "{e}");
        let e = load(&format!(
            "{KAFKA}[destination.properties]\n\"delivery.report.only.error\" = \"true\"\n"
        ))
        .expect_err("reports");
        assert!(e.contains("counts each delivery"), "{e}");
        load(&format!(
            "{KAFKA}[destination.properties]\n\"socket.keepalive.enable\" = \"true\"\n"
        ))
        .expect("passed through");
    }

    #[cfg(not(feature = "kafka"))]
    #[test]
    fn a_build_without_the_kafka_feature_refuses_it_with_a_hint() {
        let e = load(KAFKA).expect_err("not built in");
        assert!(e.contains("destination[0].type"), "{e}");
        assert!(e.contains("--features kafka"), "{e}");
    }

    #[test]
    fn kafka_keys_on_a_file_destination_are_refused() {
        let e =
            load("type = \"file\"\npath = \"x\"\ntopic = \"logs\"\n").expect_err("topic on file");
        assert!(e.contains("destination[0].topic"), "{e}");
        assert!(e.contains("kafka"), "{e}");
    }
}
