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
    ("message.timeout.ms", "none: ringest never lets the producer drop a message"),
    ("delivery.timeout.ms", "none: ringest never lets the producer drop a message"),
];

/// Whether this build has the Kafka client (cargo feature `kafka`).
pub const BUILT_WITH_KAFKA: bool = cfg!(feature = "kafka");

/// Checks one destination's Kafka keys (`key` prefixes a key with its
/// destination), and that no other kind sets them.
pub fn check(
    d: &DestinationConfig,
    key: &dyn Fn(&str) -> String,
) -> Result<(), (String, String)> {
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
    if d.brokers.is_empty() || d.brokers.iter().any(|b| b.trim().is_empty() || b.contains(',')) {
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
    for name in d.properties.keys() {
        if let Some((_, by)) = OWNED_PROPERTIES.iter().find(|(p, _)| p == name) {
            return Err((
                key(&format!("properties.{name}")),
                format!("is set by ringest; use the destination key {by}"),
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
    pub fn producer_queue_max_bytes() -> u64 {
        64 << 20
    }
}
