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

pub mod groups;
pub mod kafka;
pub mod options;

use crate::framing::{FramingMode, OversizePolicy};
use crate::ktls::KtlsMode;
use crate::logger::LogFormat;
use crate::parse::ParseMode;
use crate::tls::{ClientTlsConfig, TlsSettings};
use crate::writer::template::{DateFrom, PathTemplate};
pub use groups::DestinationGroup;

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
    /// Writer threads per destination group; shard i is drained by the
    /// group's writer i % writers. 0 = one per shard.
    #[serde(default)]
    pub writers: usize,
    /// A shard stops handing batches over (back-pressure) once its writer's
    /// queue would take longer than this to drain, as predicted from the
    /// writer's recent rounds ([`crate::queue_delay`]). 0 = bounded by
    /// `ring_capacity_batches` only.
    #[serde(default = "defaults::max_queue_delay_ms")]
    pub max_queue_delay_ms: u64,
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
    /// A shard with completions waiting waits up to this long for more
    /// before a loop turn ([`crate::shard`]'s `turn_wait`). 0 = a turn per
    /// completion.
    #[serde(default = "defaults::recv_batch_wait_us")]
    pub recv_batch_wait_us: u64,
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
    /// A message of this source that fails to parse is logged once per
    /// (peer, reason), then that pair is not logged again for this long;
    /// the counter still counts each message. 0 = no quiet period (the
    /// writer's lines-per-second budget still applies).
    #[serde(default = "defaults::parse_error_log_interval_ms")]
    pub parse_error_log_interval_ms: u64,
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
    /// Syslog over TCP or TLS to upstream servers (writer/forward/).
    Forward,
    /// Apache Kafka (cargo feature `kafka`); see config/kafka.rs.
    Kafka,
}

/// How a forward destination frames each message on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardFraming {
    /// RFC 5425 / RFC 6587 octet counting: `LEN SP MSG`.
    OctetCounted,
    /// RFC 6587 non-transparent framing: `MSG LF`.
    Newline,
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

/// How a file destination's bytes reach the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileIo {
    /// `writev` with `O_APPEND`, through the page cache.
    Buffered,
    /// `O_DIRECT` for whole blocks (writer/direct.rs); buffered where the
    /// file system refuses it.
    Direct,
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
    #[serde(default = "defaults::io")]
    pub io: FileIo,
    /// With `io = "direct"`: the aligned buffer, the most one direct write moves.
    #[serde(default = "defaults::direct_buffer_bytes")]
    pub direct_buffer_bytes: usize,
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
    /// With a path template: where `{year}`..`{hour}` come from.
    #[serde(default, with = "date_from_serde")]
    pub date_from: DateFrom,
    /// With a path template: files held open at once, the least recently
    /// used closed first.
    #[serde(default = "defaults::max_open_files")]
    pub max_open_files: usize,
    /// `type = "forward"`: upstream `host:port`s in failover order, each
    /// name resolved at connect time.
    #[serde(default)]
    pub servers: Vec<String>,
    /// `type = "forward"`: "tls" (needs `[destination.tls]`) or "tcp".
    #[serde(default = "defaults::forward_transport")]
    pub transport: Transport,
    /// `type = "forward"`: wire framing.
    #[serde(default = "defaults::forward_framing")]
    pub framing: ForwardFraming,
    /// `type = "forward"`: upstream connections per writer thread; one
    /// source connection always goes through the same one.
    #[serde(default = "defaults::connections")]
    pub connections: usize,
    /// `type = "forward"`: first wait before a reconnect.
    #[serde(default = "defaults::reconnect_min_ms")]
    pub reconnect_min_ms: u64,
    /// `type = "forward"`: the doubling reconnect wait stops here (jitter included).
    #[serde(default = "defaults::reconnect_max_ms")]
    pub reconnect_max_ms: u64,
    /// `type = "forward"`: TCP connect plus TLS handshake, per server tried.
    #[serde(default = "defaults::connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// `type = "forward"`, TLS 1.3: how long messages written on a new
    /// connection are kept for a resend when the server shows nothing.
    #[serde(default = "defaults::confirm_ms")]
    pub confirm_ms: u64,
    /// `type = "forward"`: add `[tls@32473 cn=".." fp=".."]` to RFC 5424 messages.
    #[serde(default)]
    pub forward_identity: bool,
    /// `type = "forward"` with `transport = "tls"`: kernel TLS for what is
    /// sent after the handshake, like a source's `ktls`.
    #[serde(default)]
    pub ktls: crate::ktls::KtlsMode,
    /// `type = "forward"` with `transport = "tls"`.
    #[serde(default)]
    pub tls: Option<ClientTlsConfig>,
    /// `type = "forward"`: keep on disk what the upstream cannot take now.
    #[serde(default)]
    pub disk_buffer: Option<DiskBufferConfig>,
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
    /// Kafka: how long a producer holding messages may go without a
    /// delivery report, while the brokers answer, before it is reported
    /// as stalled.
    #[serde(default = "kafka::defaults::delivery_stall_ms")]
    pub delivery_stall_ms: u64,
    /// Kafka: further librdkafka properties, passed through.
    #[serde(default)]
    pub properties: kafka::Properties,
}

impl DestinationConfig {
    /// The path's template, `None` for a plain file (validated at load).
    pub fn template(&self) -> Option<PathTemplate> {
        PathTemplate::parse(&self.path).ok().flatten()
    }
}

/// `[destination.disk_buffer]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskBufferConfig {
    /// Folder of the segment files (relative: to the config file's folder).
    pub dir: PathBuf,
    /// Bytes of segment files at most; then `when_full` applies.
    #[serde(default = "defaults::disk_buffer_max_bytes")]
    pub max_bytes: u64,
    #[serde(default)]
    pub when_full: WhenFull,
}

/// What a full disk buffer does with new messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Back-pressure: the writer waits for the upstream (nothing dropped).
    #[default]
    Block,
    /// Drop the new messages, counted (`ringest_disk_buffer_dropped_total`).
    DropNewest,
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

impl DestinationConfig {
    /// The `type = "forward"` keys; (key, reason) on the first error.
    fn validate_forward(&self) -> Result<(), (&'static str, String)> {
        if self.servers.is_empty() {
            return Err((
                "servers",
                "a forward destination needs at least one \"host:port\"".into(),
            ));
        }
        for s in &self.servers {
            crate::writer::forward::ServerAddr::parse(s).map_err(|e| ("servers", e))?;
        }
        if !self.path.as_os_str().is_empty() {
            return Err((
                "path",
                "a forward destination has no path; set servers".into(),
            ));
        }
        if self.format != OutputFormat::Raw {
            return Err((
                "format",
                "a forward destination sends the messages as received: \"raw\" only".into(),
            ));
        }
        let range = |k: &'static str, v: u64, min: u64, max: u64| {
            check_range(k.into(), v, min, max).map_err(|(_, r)| (k, r))
        };
        range("connections", self.connections as u64, 1, 64)?;
        range("reconnect_min_ms", self.reconnect_min_ms, 1, 3_600_000)?;
        range(
            "reconnect_max_ms",
            self.reconnect_max_ms,
            self.reconnect_min_ms,
            3_600_000,
        )?;
        range("connect_timeout_ms", self.connect_timeout_ms, 10, 600_000)?;
        range("confirm_ms", self.confirm_ms, 0, 600_000)?;
        if let Some(b) = &self.disk_buffer {
            range("disk_buffer.max_bytes", b.max_bytes, 1 << 20, 1 << 44)?;
            if b.dir.as_os_str().is_empty() {
                return Err(("disk_buffer.dir", "needs a folder".into()));
            }
            if self.connections != 1 {
                return Err((
                    "disk_buffer",
                    "a disk buffer replays in one order: it needs connections = 1".into(),
                ));
            }
        }
        if self.transport == Transport::Tcp && self.ktls == crate::ktls::KtlsMode::On {
            return Err((
                "ktls",
                "ktls = \"on\" needs transport = \"tls\" (kernel TLS has nothing to do on plain TCP)"
                    .into(),
            ));
        }
        match (self.transport, &self.tls) {
            (Transport::Tls, None) => Err((
                "tls",
                "transport = \"tls\" needs a [destination.tls] table (at least ca_file or ca_dir)"
                    .into(),
            )),
            (Transport::Tcp, Some(_)) => Err((
                "tls",
                "a [destination.tls] table needs transport = \"tls\"".into(),
            )),
            _ => Ok(()),
        }
    }
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

pub(crate) mod defaults {
    use super::*;
    pub fn ring_capacity_batches() -> usize {
        64
    }
    pub fn batch_max_bytes() -> usize {
        256 * 1024
    }
    pub fn max_queue_delay_ms() -> u64 {
        2
    }
    /// 128 KiB: a large-record TLS load (16 KiB records) then has a record
    /// cut across two buffers, and copied to be put back together, about
    /// one time in eight instead of one in two; measured in session 5
    /// (README, "Receive buffers"): server CPU per message on large records
    /// 0.110 µs against 0.165 with 32 KiB, at 64 MiB of buffers per shard
    /// instead of 16.
    pub fn recv_buffer_bytes() -> usize {
        128 * 1024
    }
    pub fn recv_buffers_per_shard() -> usize {
        512
    }
    pub fn uring_entries() -> u32 {
        1024
    }
    pub fn recv_batch_wait_us() -> u64 {
        250
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
    /// Direct: measured on this machine kind (bench/results/2026-11-29-s3/io,
    /// paired, steady state): 2.4× the msg/s at 0.34× the server CPU per
    /// message of buffered writes, and p99 3.2 ms against 82 ms at 40% load.
    pub fn io() -> FileIo {
        FileIo::Direct
    }
    /// 4 MiB: with 1 MiB, the writer (blocked in each `O_DIRECT` write
    /// while the device takes it) was the limit on large records: 4.65M–5.65M
    /// msg/s at 0.136–0.164 server CPU-µs/msg in 12 runs against 6.07M–6.94M
    /// at 0.123–0.144 in 18 with 4 MiB (ringest alone;
    /// bench/results/2026-11-30-s8/direct-buffer/); 2 and 8 MiB measured as 4.
    pub fn direct_buffer_bytes() -> usize {
        4 << 20
    }
    pub fn parse() -> ParseMode {
        ParseMode::None
    }
    /// A minute: one line per misbehaving sender and reason says what is
    /// wrong; the counter says how often.
    pub fn parse_error_log_interval_ms() -> u64 {
        60_000
    }
    pub fn max_open_files() -> usize {
        64
    }
    pub fn forward_transport() -> Transport {
        Transport::Tls
    }
    pub fn forward_framing() -> ForwardFraming {
        ForwardFraming::OctetCounted
    }
    pub fn connections() -> usize {
        1
    }
    pub fn reconnect_min_ms() -> u64 {
        100
    }
    pub fn reconnect_max_ms() -> u64 {
        10_000
    }
    pub fn connect_timeout_ms() -> u64 {
        5_000
    }
    pub fn confirm_ms() -> u64 {
        1_000
    }
    pub fn disk_buffer_max_bytes() -> u64 {
        1 << 30
    }
}

mod date_from_serde {
    use super::DateFrom;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateFrom, D::Error> {
        let name = String::deserialize(d)?;
        DateFrom::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown date_from {name:?}; valid: received, message"
            ))
        })
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
            if let Some(b) = &mut d.disk_buffer {
                if b.dir.is_relative() {
                    b.dir = base.join(&b.dir);
                }
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

    /// The number of writer threads, over every destination group
    /// ([`Config::writers_of`]).
    pub fn writer_count(&self) -> usize {
        self.destination_groups()
            .iter()
            .map(|g| self.writers_of(g))
            .sum()
    }

    /// The writer threads of one destination group: the configured number,
    /// or one per shard; never more than the shards (a writer without a
    /// shard would idle). A group with a kafka destination has one writer,
    /// whatever `writers` says: each writer would open a producer of its
    /// own, and one producer per destination fills batches twice as large
    /// with half the produce requests, through one broker thread instead of
    /// one per writer (writer/kafka/destination.rs).
    pub fn writers_of(&self, group: &DestinationGroup) -> usize {
        let shards = self.shard_count();
        if self.has_kafka(&group.destinations) {
            return 1;
        }
        match self.writers {
            0 if self.only_fixed_files(&group.destinations) => 1,
            0 => shards,
            w => w.min(shards),
        }
    }

    /// The destination groups ([`groups`]): sources linked by a shared
    /// destination, each group with rings and writers of its own.
    pub fn destination_groups(&self) -> Vec<DestinationGroup> {
        groups::destination_groups(&self.routes(), self.destinations.len())
    }

    /// Some destination of `destinations` is a kafka destination.
    fn has_kafka(&self, destinations: &[usize]) -> bool {
        destinations.iter().any(|&d| {
            self.destinations
                .get(d)
                .is_some_and(|d| d.kind == DestinationType::Kafka)
        })
    }

    /// Every destination of `destinations` is one file (no path template).
    /// Every writer of a group writes every destination of it, and writers
    /// of one file take turns on it (a direct file's lock covers the copy
    /// and the write; a buffered append holds the inode's lock), so more
    /// writers add only threads and hand-offs: measured on 2 cores at 40%
    /// load, p99 write latency 3.5 ms with one writer against 10–16 ms with
    /// two, at the same maximum rate and CPU per message.
    fn only_fixed_files(&self, destinations: &[usize]) -> bool {
        destinations.iter().all(|&d| {
            self.destinations
                .get(d)
                .is_some_and(|d| d.kind == DestinationType::File && d.template().is_none())
        })
    }

    /// Checks every limit and cross-reference; returns (key, reason) on the first error.
    pub fn validate(&self) -> Result<(), (String, String)> {
        check_range("shards".into(), self.shards as u64, 0, 256)?;
        check_range("writers".into(), self.writers as u64, 0, 256)?;
        check_range(
            "max_queue_delay_ms".into(),
            self.max_queue_delay_ms,
            0,
            60_000,
        )?;
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
            "recv_batch_wait_us".into(),
            self.recv_batch_wait_us,
            0,
            100_000,
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
            check_range(
                key("direct_buffer_bytes"),
                d.direct_buffer_bytes as u64,
                64 << 10,
                64 << 20,
            )?;
            let align = crate::writer::direct::DIRECT_ALIGN_BYTES;
            if !d.direct_buffer_bytes.is_multiple_of(align) {
                return Err((
                    key("direct_buffer_bytes"),
                    format!(
                        "{} is not a multiple of {align} (O_DIRECT alignment)",
                        d.direct_buffer_bytes
                    ),
                ));
            }
            match d.kind {
                DestinationType::File => {
                    if d.path.as_os_str().is_empty() {
                        return Err((key("path"), "a file destination needs a path".into()));
                    }
                    if !d.servers.is_empty() || d.tls.is_some() || d.disk_buffer.is_some() {
                        return Err((
                            key("servers"),
                            "servers, [destination.tls] and [destination.disk_buffer] are for type = \"forward\""
                                .into(),
                        ));
                    }
                }
                DestinationType::Forward => d.validate_forward().map_err(|(k, r)| (key(k), r))?,
                DestinationType::Kafka => {}
            }
            PathTemplate::parse(&d.path).map_err(|e| (key("path"), e.to_string()))?;
            check_range(key("max_open_files"), d.max_open_files as u64, 1, 65_536)?;
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
            check_range(
                key("parse_error_log_interval_ms"),
                s.parse_error_log_interval_ms,
                0,
                86_400_000,
            )?;
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

#[cfg(test)]
mod forward_tests {
    use super::*;

    fn check(dest: &str) -> Result<Config, String> {
        let text = format!(
            "[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
             [[destination]]\nname = \"up\"\n{dest}"
        );
        Config::from_toml(&text, Path::new("t.toml"), Path::new("/etc/ringest"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_forward_destination_parses_with_its_defaults_and_resolves_paths() {
        let c = check(
            "type = \"forward\"\nservers = [\"127.0.0.1:6514\", \"backup.example:6514\"]\n\
             [destination.tls]\nca_file = \"pki/ca.pem\"\n\
             [destination.disk_buffer]\ndir = \"buffer\"\n",
        )
        .expect("valid");
        let d = &c.destinations[0];
        assert_eq!(d.kind, DestinationType::Forward);
        assert_eq!(
            (d.transport, d.framing),
            (Transport::Tls, ForwardFraming::OctetCounted)
        );
        assert_eq!(
            (d.connections, d.reconnect_min_ms, d.reconnect_max_ms),
            (1, 100, 10_000)
        );
        let tls = d.tls.as_ref().expect("tls");
        assert_eq!(
            tls.ca_file.as_deref(),
            Some(Path::new("/etc/ringest/pki/ca.pem"))
        );
        let b = d.disk_buffer.as_ref().expect("disk buffer");
        assert_eq!(b.dir, Path::new("/etc/ringest/buffer"));
        assert_eq!((b.max_bytes, b.when_full), (1 << 30, WhenFull::Block));
    }

    #[test]
    fn wrong_forward_settings_name_their_key() {
        let cases = [
            ("type = \"forward\"\ntransport = \"tcp\"\n", "servers"),
            ("type = \"forward\"\nservers = [\"nohost\"]\ntransport = \"tcp\"\n", "servers"),
            ("type = \"forward\"\nservers = [\"h:1\"]\n", "tls"),
            ("type = \"forward\"\nservers = [\"h:1\"]\ntransport = \"tcp\"\nformat = \"json\"\n", "format"),
            ("type = \"forward\"\nservers = [\"h:1\"]\ntransport = \"tcp\"\npath = \"x\"\n", "path"),
            ("type = \"forward\"\nservers = [\"h:1\"]\ntransport = \"tcp\"\nreconnect_min_ms = 500\nreconnect_max_ms = 100\n", "reconnect_max_ms"),
            ("type = \"forward\"\nservers = [\"h:1\"]\ntransport = \"tcp\"\nconnections = 2\n[destination.disk_buffer]\ndir = \"b\"\n", "disk_buffer"),
            ("type = \"file\"\npath = \"x\"\nservers = [\"h:1\"]\n", "servers"),
        ];
        for (dest, key) in cases {
            let err = check(dest).expect_err(dest);
            assert!(
                err.contains(&format!("destination[0].{key}")),
                "{dest}: {err}"
            );
        }
    }
}
