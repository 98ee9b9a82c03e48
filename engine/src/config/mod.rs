//! Every option and limit of ringest, validated once at start-up.
//!
//! The file is TOML. Top-level keys hold the engine-wide limits; `[[source]]`,
//! `[[destination]]` and `[stats]` hold the rest. Every limit carries its unit in
//! its name. [`OPTIONS`] documents each key; a test checks it against these
//! structs and against the README's table, so the three cannot drift.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod kafka;
pub mod options;

use crate::framing::{FramingMode, OversizePolicy};
use crate::ktls::KtlsMode;
use crate::logger::LogFormat;
use crate::parse::ParseMode;
use crate::tls::TlsSettings;

/// A configuration error: the file, the key and the reason.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Shard threads, each with its own io_uring and listeners. 0 = one per core.
    #[serde(default)]
    pub shards: usize,
    /// Batches each shard can queue towards the writer before back-pressure.
    #[serde(default = "defaults::ring_capacity_batches")]
    pub ring_capacity_batches: usize,
    /// A shard hands its batch to the writer once it holds this many bytes.
    #[serde(default = "defaults::batch_max_bytes")]
    pub batch_max_bytes: usize,
    /// Size of one provided receive buffer.
    #[serde(default = "defaults::recv_buffer_bytes")]
    pub recv_buffer_bytes: usize,
    /// Provided receive buffers per shard (a power of two).
    #[serde(default = "defaults::recv_buffers_per_shard")]
    pub recv_buffers_per_shard: usize,
    /// io_uring submission queue entries per shard.
    #[serde(default = "defaults::uring_entries")]
    pub uring_entries: u32,
    /// On SIGTERM, how long open connections may keep sending before they are cut.
    #[serde(default = "defaults::drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// ringest's own log lines on stderr: text or JSON.
    #[serde(default)]
    pub log_format: LogFormat,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    #[serde(default, rename = "destination")]
    pub destinations: Vec<DestinationConfig>,
    #[serde(default)]
    pub stats: StatsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tls,
    Tcp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    pub listen: SocketAddr,
    pub transport: Transport,
    #[serde(default = "defaults::framing", with = "framing_serde")]
    pub framing: FramingMode,
    #[serde(default = "defaults::max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default = "defaults::oversize", with = "oversize_serde")]
    pub oversize: OversizePolicy,
    /// Open connections on this source, over all shards.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    #[serde(default = "defaults::handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    #[serde(default = "defaults::listen_backlog")]
    pub listen_backlog: u32,
    /// TCP keepalive idle time, so half-open connections are found and closed. 0 = off.
    #[serde(default = "defaults::keepalive_idle_ms")]
    pub keepalive_idle_ms: u64,
    /// Open connections from one IP address on this source, over all shards. 0 = no limit.
    #[serde(default)]
    pub max_connections_per_ip: usize,
    /// An established connection that sends nothing for this long is closed. 0 = never.
    #[serde(default)]
    pub idle_timeout_ms: u64,
    /// Bytes queued to send on one connection (handshake flights, alerts,
    /// KeyUpdate answers); a peer that lets more pile up by never reading is closed.
    #[serde(default = "defaults::max_send_queue_bytes")]
    pub max_send_queue_bytes: usize,
    /// TCP_USER_TIMEOUT: sent data unacknowledged this long drops the connection. 0 = kernel default.
    #[serde(default = "defaults::tcp_user_timeout_ms")]
    pub tcp_user_timeout_ms: u64,
    /// A connection we are closing gets this long to send its last bytes.
    #[serde(default = "defaults::close_timeout_ms")]
    pub close_timeout_ms: u64,
    #[serde(default)]
    pub ktls: KtlsMode,
    /// How messages are parsed for outputs that need fields (`json`):
    /// auto, rfc5424, rfc3164 or none (the frame is the message).
    #[serde(default = "defaults::parse", with = "parse_serde")]
    pub parse: ParseMode,
    /// Destinations this source feeds; absent = all of them.
    #[serde(default)]
    pub destinations: Option<Vec<String>>,
    #[serde(default)]
    pub tls: Option<TlsSettings>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationType {
    File,
    /// Apache Kafka (cargo feature `kafka`); see config/kafka.rs.
    Kafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Raw,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    Never,
    Batch,
    Interval,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: DestinationType,
    /// The file (`type = "file"` only; required there).
    #[serde(default)]
    pub path: PathBuf,
    #[serde(default = "defaults::format")]
    pub format: OutputFormat,
    #[serde(default = "defaults::fsync")]
    pub fsync: FsyncPolicy,
    #[serde(default = "defaults::fsync_interval_ms")]
    pub fsync_interval_ms: u64,
    /// With `format = "json"` and a parsing source: add the whole frame as `raw`.
    #[serde(default)]
    pub include_raw: bool,
    /// Only messages whose parsed fields match (see parse/filter.rs).
    #[serde(default)]
    pub filter: Option<FilterConfig>,
    /// A message this destination takes is not offered to later ones.
    #[serde(default, rename = "final")]
    pub is_final: bool,
    /// Takes only what no other destination of its source took.
    #[serde(default)]
    pub fallback: bool,
    /// Kafka: the bootstrap brokers, `host:port` each.
    #[serde(default)]
    pub brokers: Vec<String>,
    /// Kafka: the topic written to.
    #[serde(default)]
    pub topic: String,
    /// Kafka: each message's key.
    #[serde(default)]
    pub key: kafka::KafkaKey,
    #[serde(default)]
    pub acks: kafka::KafkaAcks,
    #[serde(default)]
    pub compression: kafka::KafkaCompression,
    #[serde(default = "kafka::defaults::linger_ms")]
    pub linger_ms: u64,
    #[serde(default = "kafka::defaults::batch_bytes")]
    pub batch_bytes: u64,
    /// Kafka: bytes the producer holds (queued and in flight) before
    /// deliver() waits, and so the rings fill.
    #[serde(default = "kafka::defaults::producer_queue_max_bytes")]
    pub producer_queue_max_bytes: u64,
    /// Kafka: further librdkafka properties, passed through.
    #[serde(default)]
    pub properties: kafka::Properties,
    /// Kafka: TLS to the brokers.
    #[serde(default)]
    pub tls: Option<kafka::KafkaTls>,
}

/// `filter = { severity = "warning", facility = ["auth", "authpriv"],
/// host = "web-*", app = ["sshd"] }`: every given field must match.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub facility: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub host: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    pub app: Vec<String>,
}

impl FilterConfig {
    /// The checked matcher.
    pub fn build(&self) -> Result<crate::parse::Filter, crate::parse::FilterError> {
        fn strs(v: &[String]) -> Vec<&str> {
            v.iter().map(String::as_str).collect()
        }
        let (facility, host, app) = (strs(&self.facility), strs(&self.host), strs(&self.app));
        crate::parse::Filter::new(&crate::parse::FilterSpec {
            severity: self.severity.as_deref(),
            facility: &facility,
            host: &host,
            app: &app,
        })
    }
}

/// A string or a list of strings.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Destinations a routed round can tell apart: a message's destinations are
/// one bit each of a `u64`.
pub const ROUTED_DESTINATIONS_MAX: usize = 64;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsConfig {
    /// Address of the Prometheus endpoint (GET /metrics). Absent = no endpoint.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

mod defaults {
    use super::*;
    pub fn ring_capacity_batches() -> usize {
        64
    }
    pub fn batch_max_bytes() -> usize {
        256 * 1024
    }
    pub fn recv_buffer_bytes() -> usize {
        32 * 1024
    }
    pub fn recv_buffers_per_shard() -> usize {
        512
    }
    pub fn uring_entries() -> u32 {
        1024
    }
    pub fn drain_timeout_ms() -> u64 {
        5_000
    }
    pub fn framing() -> FramingMode {
        FramingMode::Auto
    }
    pub fn max_message_bytes() -> usize {
        65_536
    }
    pub fn oversize() -> OversizePolicy {
        OversizePolicy::Truncate
    }
    pub fn max_connections() -> usize {
        10_000
    }
    pub fn handshake_timeout_ms() -> u64 {
        10_000
    }
    pub fn listen_backlog() -> u32 {
        1024
    }
    pub fn keepalive_idle_ms() -> u64 {
        60_000
    }
    pub fn max_send_queue_bytes() -> usize {
        256 * 1024
    }
    pub fn tcp_user_timeout_ms() -> u64 {
        60_000
    }
    pub fn close_timeout_ms() -> u64 {
        5_000
    }
    pub fn format() -> OutputFormat {
        OutputFormat::Raw
    }
    pub fn fsync() -> FsyncPolicy {
        FsyncPolicy::Batch
    }
    pub fn fsync_interval_ms() -> u64 {
        1_000
    }
    pub fn parse() -> ParseMode {
        ParseMode::None
    }
}

mod framing_serde {
    use super::FramingMode;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FramingMode, D::Error> {
        match String::deserialize(d)?.as_str() {
            "octet-counted" => Ok(FramingMode::OctetCounted),
            "newline" => Ok(FramingMode::Newline),
            "auto" => Ok(FramingMode::Auto),
            other => Err(serde::de::Error::custom(format!(
                "unknown framing {other:?}; valid: octet-counted, newline, auto"
            ))),
        }
    }
}

mod parse_serde {
    use super::ParseMode;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ParseMode, D::Error> {
        let name = String::deserialize(d)?;
        ParseMode::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown parse mode {name:?}; valid: auto, rfc5424, rfc3164, none"
            ))
        })
    }
}

mod oversize_serde {
    use super::OversizePolicy;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OversizePolicy, D::Error> {
        match String::deserialize(d)?.as_str() {
            "truncate" => Ok(OversizePolicy::Truncate),
            "drop" => Ok(OversizePolicy::Drop),
            other => Err(serde::de::Error::custom(format!(
                "unknown oversize policy {other:?}; valid: truncate, drop"
            ))),
        }
    }
}

/// Inclusive bounds of one numeric limit, checked in [`Config::validate`].
fn check_range(key: String, value: u64, min: u64, max: u64) -> Result<(), (String, String)> {
    if value < min || value > max {
        return Err((key, format!("{value} is out of range {min}..={max}")));
    }
    Ok(())
}

impl Config {
    /// Reads, parses, resolves relative paths against the file's folder, and validates.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            reason: format!("cannot read: {e}"),
        })?;
        let base = file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::from_toml(&text, file, &base)
    }

    /// Parses `text` as if read from `file`, resolving paths against `base_dir`.
    pub fn from_toml(text: &str, file: &Path, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            key: String::new(),
            reason: e.to_string().trim_end().replace('\n', " "),
        })?;
        config.resolve_paths(base_dir);
        config.validate().map_err(|(key, reason)| ConfigError {
            file: file.to_path_buf(),
            key,
            reason,
        })?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        for d in &mut self.destinations {
            if d.path.is_relative() && !d.path.as_os_str().is_empty() {
                d.path = base.join(&d.path);
            }
            if let Some(tls) = &mut d.tls {
                tls.resolve_paths(base);
            }
        }
        for s in &mut self.sources {
            if let Some(tls) = &mut s.tls {
                tls.resolve_paths(base);
            }
        }
    }

    /// The number of shards to run: the configured one, or one per core.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            return self.shards;
        }
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }

    /// Checks every limit and cross-reference; returns (key, reason) on the first error.
    pub fn validate(&self) -> Result<(), (String, String)> {
        check_range("shards".into(), self.shards as u64, 0, 256)?;
        check_range(
            "ring_capacity_batches".into(),
            self.ring_capacity_batches as u64,
            2,
            65_536,
        )?;
        check_range(
            "batch_max_bytes".into(),
            self.batch_max_bytes as u64,
            4096,
            64 << 20,
        )?;
        check_range(
            "recv_buffer_bytes".into(),
            self.recv_buffer_bytes as u64,
            4096,
            1 << 20,
        )?;
        check_range(
            "recv_buffers_per_shard".into(),
            self.recv_buffers_per_shard as u64,
            8,
            32_768,
        )?;
        if !self.recv_buffers_per_shard.is_power_of_two() {
            return Err((
                "recv_buffers_per_shard".into(),
                "must be a power of two".into(),
            ));
        }
        check_range(
            "uring_entries".into(),
            self.uring_entries as u64,
            64,
            32_768,
        )?;
        check_range(
            "drain_timeout_ms".into(),
            self.drain_timeout_ms,
            0,
            3_600_000,
        )?;
        if self.sources.is_empty() {
            return Err((
                "source".into(),
                "at least one [[source]] is required".into(),
            ));
        }
        if self.destinations.is_empty() {
            return Err((
                "destination".into(),
                "at least one [[destination]] is required".into(),
            ));
        }
        if self.is_routed() && self.destinations.len() > ROUTED_DESTINATIONS_MAX {
            return Err((
                "destination".into(),
                format!(
                    "filters, final and fallback work over at most {ROUTED_DESTINATIONS_MAX} destinations"
                ),
            ));
        }
        let mut dest_names = HashSet::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let key = |k: &str| format!("destination[{i}].{k}");
            if d.name.is_empty() || !dest_names.insert(d.name.as_str()) {
                return Err((key("name"), format!("{:?} is empty or used twice", d.name)));
            }
            check_range(key("fsync_interval_ms"), d.fsync_interval_ms, 1, 3_600_000)?;
            if d.kind == DestinationType::File && d.path.as_os_str().is_empty() {
                return Err((key("path"), "a file destination needs a path".into()));
            }
            kafka::check(d, &key)?;
            if let Some(f) = &d.filter {
                f.build().map_err(|e| (key("filter"), e.to_string()))?;
            }
            if d.fallback && (d.filter.is_some() || d.is_final) {
                return Err((
                    key("fallback"),
                    "a fallback destination takes what nothing else took: no filter or final on it"
                        .into(),
                ));
            }
        }
        let mut names = HashSet::new();
        let mut addrs = HashSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            let key = |k: &str| format!("source[{i}].{k}");
            if s.name.is_empty() || !names.insert(s.name.as_str()) {
                return Err((key("name"), format!("{:?} is empty or used twice", s.name)));
            }
            if !addrs.insert(s.listen) {
                return Err((
                    key("listen"),
                    format!("{} is used by another source", s.listen),
                ));
            }
            check_range(
                key("max_message_bytes"),
                s.max_message_bytes as u64,
                16,
                16 << 20,
            )?;
            check_range(
                key("max_connections"),
                s.max_connections as u64,
                1,
                1_000_000,
            )?;
            check_range(
                key("handshake_timeout_ms"),
                s.handshake_timeout_ms,
                10,
                600_000,
            )?;
            check_range(key("listen_backlog"), s.listen_backlog as u64, 1, 65_535)?;
            check_range(key("keepalive_idle_ms"), s.keepalive_idle_ms, 0, 86_400_000)?;
            check_range(
                key("max_connections_per_ip"),
                s.max_connections_per_ip as u64,
                0,
                1_000_000,
            )?;
            check_range(key("idle_timeout_ms"), s.idle_timeout_ms, 0, 604_800_000)?;
            check_range(
                key("max_send_queue_bytes"),
                s.max_send_queue_bytes as u64,
                32 * 1024,
                64 << 20,
            )?;
            check_range(
                key("tcp_user_timeout_ms"),
                s.tcp_user_timeout_ms,
                0,
                3_600_000,
            )?;
            check_range(key("close_timeout_ms"), s.close_timeout_ms, 10, 600_000)?;
            match (s.transport, &s.tls) {
                (Transport::Tls, None) => {
                    return Err((
                        key("tls"),
                        "transport = \"tls\" needs a [source.tls] table".into(),
                    ))
                }
                (Transport::Tcp, Some(_)) => {
                    return Err((
                        key("tls"),
                        "a [source.tls] table needs transport = \"tls\"".into(),
                    ))
                }
                (Transport::Tls, Some(tls)) => {
                    tls.check_trust().map_err(|e| (key("tls"), e.to_string()))?
                }
                _ => {}
            }
            if let Some(list) = &s.destinations {
                if list.is_empty() {
                    return Err((
                        key("destinations"),
                        "is empty; omit it to feed every destination".into(),
                    ));
                }
                for d in list {
                    if !dest_names.contains(d.as_str()) {
                        return Err((key("destinations"), format!("no destination named {d:?}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether any destination filters, is final or is a fallback: then
    /// each message's destinations are decided one by one.
    pub fn is_routed(&self) -> bool {
        self.destinations
            .iter()
            .any(|d| d.filter.is_some() || d.is_final || d.fallback)
    }

    /// For each source, the indexes of the destinations it feeds.
    pub fn routes(&self) -> Vec<Vec<usize>> {
        self.sources
            .iter()
            .map(|s| match &s.destinations {
                None => (0..self.destinations.len()).collect(),
                Some(list) => self
                    .destinations
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| list.contains(&d.name))
                    .map(|(i, _)| i)
                    .collect(),
            })
            .collect()
    }
}
