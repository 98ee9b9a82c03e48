//! One scenario description, from which every engine's config and the
//! loadgen command line are generated. Scenario files are TOML lists of
//! `[[scenario]]`; `bench/scenarios/default.toml` is the reference.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The scenarios `bench compare` runs when given no `--scenarios`.
pub const DEFAULT_SCENARIOS: &str = include_str!("../scenarios/default.toml");
/// The parsed rows (issue 14):
/// `--scenarios bench/scenarios/parsed.toml`.
#[cfg(test)]
const PARSED_SCENARIOS: &str = include_str!("../scenarios/parsed.toml");
/// Issue 12's durability rows: `--scenarios bench/scenarios/durability.toml`.
#[cfg(test)]
const DURABILITY_SCENARIOS: &str = include_str!("../scenarios/durability.toml");
/// Issue 12's scaling rows: `--scenarios bench/scenarios/scaling.toml`.
#[cfg(test)]
const SCALING_SCENARIOS: &str = include_str!("../scenarios/scaling.toml");
/// Issue 12's direct I/O rows: `--scenarios bench/scenarios/io.toml`.
#[cfg(test)]
const IO_SCENARIOS: &str = include_str!("../scenarios/io.toml");
/// Issue 13's relay rows: `--scenarios bench/scenarios/relay.toml`.
#[cfg(test)]
const RELAY_SCENARIOS: &str = include_str!("../scenarios/relay.toml");
/// Issue 15's kafka rows: `--scenarios bench/scenarios/kafka.toml`.
#[cfg(test)]
const KAFKA_SCENARIOS: &str = include_str!("../scenarios/kafka.toml");
/// Issue 12's latency curve with loadgen off the server's CPU:
/// `bench latency --scenarios bench/scenarios/latency.toml`.
#[cfg(test)]
const LATENCY_SCENARIOS: &str = include_str!("../scenarios/latency.toml");
/// The client's congestion control, paired: `--scenarios
/// bench/scenarios/client-congestion.toml`.
#[cfg(test)]
const CLIENT_CONGESTION_SCENARIOS: &str = include_str!("../scenarios/client-congestion.toml");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Engine {
    #[serde(rename = "ringest")]
    Ringest,
    #[serde(rename = "syslog-ng")]
    SyslogNg,
    #[serde(rename = "rsyslog")]
    Rsyslog,
}

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::Ringest, Engine::SyslogNg, Engine::Rsyslog];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Ringest => "ringest",
            Engine::SyslogNg => "syslog-ng",
            Engine::Rsyslog => "rsyslog",
        }
    }

    pub fn parse(s: &str) -> Result<Engine> {
        Engine::ALL
            .into_iter()
            .find(|e| e.name() == s.trim())
            .with_context(|| {
                format!("unknown engine {s:?}: expected ringest, syslog-ng or rsyslog")
            })
    }

    /// A comma-separated list, as `--only` takes it.
    pub fn parse_list(s: &str) -> Result<Vec<Engine>> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let e = Engine::parse(part)?;
            if !out.contains(&e) {
                out.push(e);
            }
        }
        if out.is_empty() {
            bail!("--only needs at least one engine");
        }
        out.sort();
        Ok(out)
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tls,
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    OctetCounted,
    Newline,
}

impl Framing {
    pub fn name(self) -> &'static str {
        match self {
            Framing::OctetCounted => "octet-counted",
            Framing::Newline => "newline",
        }
    }
}

/// What every engine does with a message: the same work, so that the rows
/// compare like with like (issue 11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Work {
    /// Write the message exactly as received, plus LF: ringest `format =
    /// "raw"`; syslog-ng `flags(no-parse)` with `template("${MSG}\n")`
    /// (then the whole frame); rsyslog `%rawmsg%` and LF. Every engine
    /// writes the same bytes per message, and the table shows them.
    #[default]
    Raw,
    /// Parse RFC 5424 and write JSON: syslog-ng `$(format-json --scope
    /// rfc5424 --scope nv-pairs)`, rsyslog a JSON template, ringest `parse =
    /// "auto"` with `format = "json"` (not built yet: issue 14; such a
    /// scenario declares ringest unsupported until then). Verified with
    /// `loadgen verify --format json` on the `message` field.
    Parsed,
}

impl Work {
    pub fn name(self) -> &'static str {
        match self {
            Work::Raw => "raw",
            Work::Parsed => "parsed",
        }
    }
}

/// Targets ringest is held to in this scenario; the table says met or not.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goals {
    /// ringest's msg/s written at least this many times syslog-ng's.
    pub msg_per_s_vs_syslog_ng_min: Option<f64>,
    /// ringest's server CPU-µs per message at most this many times syslog-ng's.
    pub cpu_vs_syslog_ng_max: Option<f64>,
    /// ringest's server CPU-µs per message at most this.
    pub cpu_us_per_msg_max: Option<f64>,
}

fn default_true() -> bool {
    true
}
/// Message length of every scenario unless it says.
pub const DEFAULT_SIZE: u32 = 300;
fn default_size() -> u32 {
    DEFAULT_SIZE
}
fn default_threads() -> u32 {
    1
}
fn default_cipher() -> String {
    "TLS13_AES_128_GCM_SHA256".into()
}
fn default_client_congestion() -> String {
    CLIENT_CONGESTION_DEFAULT.into()
}

/// The client's congestion control unless a scenario says otherwise:
/// Linux's default, which does not pace. On loopback a pacing one (bbr)
/// sends from per-socket timers whose softirq runs in whatever task it
/// interrupts, so part of the client's sending is charged to the server
/// under test, more or less of it as the server is busy
/// (loadgen/src/congestion.rs).
pub const CLIENT_CONGESTION_DEFAULT: &str = "cubic";
/// `client_congestion` value that keeps the machine's default.
pub const CLIENT_CONGESTION_SYSTEM: &str = "system";

/// How durable every engine's writes are: each level sets ringest's `fsync`
/// and the nearest setting each peer has (engines.rs says which and why).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// No fsync: ringest `fsync = "never"`, syslog-ng's default
    /// (`fsync(no)`), rsyslog omfile's default (`sync="off"`).
    #[default]
    Never,
    /// fsync after every write round: ringest `fsync = "batch"`, syslog-ng
    /// `fsync(yes)`, rsyslog omfile `sync="on" flushOnTXEnd="on"
    /// asyncWriting="off"` (a sync after each batch).
    Batch,
    /// fsync at most every `DURABILITY_INTERVAL_MS`: ringest `fsync =
    /// "interval"`; see engines.rs for the peers' nearest settings.
    Interval,
}

/// ringest's `fsync_interval_ms` in the `interval` level (its default), and
/// rsyslog's `flushInterval` (seconds) derived from it.
pub const DURABILITY_INTERVAL_MS: u64 = 1000;

impl Durability {
    pub fn name(self) -> &'static str {
        match self {
            Durability::Never => "never",
            Durability::Batch => "batch",
            Durability::Interval => "interval",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short id: lowercase letters, digits and '-'. Used in folder names.
    pub name: String,
    /// One line for the table.
    pub title: String,
    pub transport: Transport,
    /// TLS only: the client presents a certificate and every engine requires a trusted one.
    #[serde(default = "default_true")]
    pub mutual: bool,
    pub framing: Framing,
    /// `raw` (default) or `parsed`: what every engine does with a message.
    #[serde(default)]
    pub work: Work,
    /// Busy connections (loadgen `--connections`).
    pub connections: u32,
    /// Extra connections held idle by a second loadgen (`--hold-idle`) during the run.
    #[serde(default)]
    pub idle_connections: u32,
    /// Message length in bytes (loadgen `--size`).
    #[serde(default = "default_size")]
    pub size: u32,
    /// Messages per TLS record (loadgen `--records-per-write`); 1 is loggen's pattern.
    pub records_per_write: u32,
    /// loadgen `--write-bytes` (default: loadgen's, about 256 KiB per write).
    #[serde(default)]
    pub write_bytes: Option<u64>,
    /// loadgen `--threads`.
    #[serde(default = "default_threads")]
    pub loadgen_threads: u32,
    /// TLS 1.3 suite every engine negotiates (loadgen `--cipher`).
    #[serde(default = "default_cipher")]
    pub cipher: String,
    /// TCP congestion control of loadgen's connections (loadgen
    /// `--tcp-congestion`), or "system" for the machine's default.
    #[serde(default = "default_client_congestion")]
    pub client_congestion: String,
    /// Every engine's durability level (default `never`, the peers'
    /// defaults: neither syslog-ng's file() nor rsyslog's omfile fsyncs).
    #[serde(default)]
    pub durability: Durability,
    /// ringest's `shards` (default: its own, one per core).
    #[serde(default)]
    pub shards: Option<u32>,
    /// Pin the server away from loadgen with `taskset` where the CPUs allow
    /// (pin.rs: loadgen on the first CPUs, the server on the last).
    #[serde(default)]
    pub pin: bool,
    /// Relay: loadgen → engine (TLS in, TLS out with a client certificate)
    /// → one final receiver, the same for every engine (a ringest writing
    /// raw to a file); the final receiver's output is verified, and the
    /// CPU figures are the relay's alone.
    #[serde(default)]
    pub relay: bool,
    /// Kafka: loadgen → engine → one Apache Kafka broker, the same for
    /// every engine (started once per bench run); a fresh topic of
    /// `kafka::PARTITIONS` partitions per engine per repeat. Delivery is
    /// counted in the topic (its high watermarks); the CPU figures are the
    /// engine's process (with its librdkafka threads), the broker's apart.
    #[serde(default)]
    pub kafka: bool,
    /// loadgen `--rate` (messages per second, all connections together);
    /// loadgen then reports its latency. Default: as fast as it can.
    #[serde(default)]
    pub rate_msg_per_s: Option<f64>,
    /// With a rate: loadgen `--tick-us`, so one wake-up sends every message
    /// due in a tick, as records of up to `records_per_write` (each
    /// message's latency still counts from its own intended time). Without
    /// it loadgen wakes for every message and, at millions per second,
    /// sends records of one or two messages: another load than the
    /// scenario's. Set by `bench latency --tick-us`.
    #[serde(default)]
    pub tick_us: Option<u32>,
    /// Another scenario of the same file: results.md adds this scenario's
    /// figures over the baseline's, per engine, paired by repeat (scenarios
    /// run in a random order within each repeat).
    #[serde(default)]
    pub baseline: Option<String>,
    /// Only these engines (default: all that `--only` allows).
    #[serde(default)]
    pub engines: Option<Vec<Engine>>,
    /// engine name → why it cannot run this scenario: shown as "n/a: reason".
    #[serde(default)]
    pub unsupported: BTreeMap<String, String>,
    /// engine name → text added inside its source definition (ringest: keys
    /// of `[[source]]`; syslog-ng: options of the source driver; rsyslog:
    /// parameters of `input()`).
    #[serde(default)]
    pub extra_source: BTreeMap<String, String>,
    /// engine name → text added at the top level (ringest: top-level keys;
    /// syslog-ng: inside `options {}`; rsyslog: config lines).
    #[serde(default)]
    pub extra_global: BTreeMap<String, String>,
    /// engine name → text added inside its file destination (ringest: keys
    /// of `[[destination]]`, such as `io = "direct"`).
    #[serde(default)]
    pub extra_destination: BTreeMap<String, String>,
    #[serde(default)]
    pub goals: Goals,
}

impl Scenario {
    pub fn tls(&self) -> bool {
        self.transport == Transport::Tls
    }

    pub fn total_connections(&self) -> u32 {
        self.connections + self.idle_connections
    }

    pub fn unsupported_reason(&self, e: Engine) -> Option<&str> {
        self.unsupported.get(e.name()).map(String::as_str)
    }

    pub fn runs_engine(&self, e: Engine) -> bool {
        self.engines
            .as_ref()
            .map(|v| v.contains(&e))
            .unwrap_or(true)
    }

    pub fn extra_source(&self, e: Engine) -> &str {
        self.extra_source
            .get(e.name())
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn extra_global(&self, e: Engine) -> &str {
        self.extra_global
            .get(e.name())
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn extra_destination(&self, e: Engine) -> &str {
        self.extra_destination
            .get(e.name())
            .map(String::as_str)
            .unwrap_or("")
    }

    /// One line describing the load, for the table's legend.
    pub fn describe_load(&self) -> String {
        let transport = match (self.transport, self.mutual) {
            (Transport::Tcp, _) => "plain TCP".to_string(),
            (Transport::Tls, true) => format!("TLS 1.3 {} mutual auth", short_cipher(&self.cipher)),
            (Transport::Tls, false) => format!("TLS 1.3 {}", short_cipher(&self.cipher)),
        };
        let idle = if self.idle_connections > 0 {
            format!(" + {} idle", self.idle_connections)
        } else {
            String::new()
        };
        let recs = if self.tls() {
            format!(", {} msg per TLS record", self.records_per_write)
        } else {
            format!(", {} msg per chunk", self.records_per_write)
        };
        let mut extra = String::new();
        if self.durability != Durability::Never {
            extra += &format!(", durability {}", self.durability.name());
        }
        if let Some(k) = self.shards {
            extra += &format!(", ringest shards = {k}");
        }
        if self.pin {
            extra += ", server pinned apart from loadgen where the CPUs allow";
        }
        if self.relay {
            extra += ", relayed over mutual TLS to one final receiver";
        }
        if self.kafka {
            extra += &format!(
                ", into one Kafka broker (a {}-partition topic, acks=all, no compression)",
                crate::kafka::PARTITIONS
            );
        }
        if let Some(r) = self.rate_msg_per_s {
            extra += &format!(", offered at {r:.0} msg/s");
        }
        extra += &format!(", client TCP congestion control {}", self.client_congestion);
        format!(
            "{} work, {transport}, {}, {} conn{}{idle}, {} B messages{recs}{extra}",
            self.work.name(),
            self.framing.name(),
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            self.size
        )
    }

    fn validate(&self) -> Result<()> {
        let n = &self.name;
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            bail!("scenario name {n:?}: use lowercase letters, digits and '-'");
        }
        if !(1..=10_000).contains(&self.connections) {
            bail!("scenario {n}: connections must be 1..=10000");
        }
        if self.idle_connections > 15_000 {
            bail!("scenario {n}: idle_connections must be at most 15000 (open-file limits)");
        }
        if !(100..=60_000).contains(&self.size) {
            bail!("scenario {n}: size must be 100..=60000 bytes");
        }
        if !(1..=1000).contains(&self.records_per_write) {
            bail!("scenario {n}: records_per_write must be 1..=1000");
        }
        if !(1..=64).contains(&self.loadgen_threads) {
            bail!("scenario {n}: loadgen_threads must be 1..=64");
        }
        if let Some(k) = self.shards {
            if !(1..=256).contains(&k) {
                bail!("scenario {n}: shards must be 1..=256");
            }
        }
        if let Some(r) = self.rate_msg_per_s {
            if !(r.is_finite() && (1.0..=1e9).contains(&r)) {
                bail!("scenario {n}: rate_msg_per_s must be 1..=1e9");
            }
        }
        if self.relay && !(self.tls() && self.mutual && self.framing == Framing::OctetCounted) {
            bail!("scenario {n}: relay needs transport = \"tls\", mutual = true and octet-counted framing (RFC 5425 both ways)");
        }
        if self.kafka && self.relay {
            bail!("scenario {n}: kafka and relay are two different destinations: set one");
        }
        if self.kafka && (self.work != Work::Raw || self.durability != Durability::Never) {
            bail!("scenario {n}: kafka sends each message as received: work must be raw and durability never (acks=all is the durability)");
        }
        if self.relay && self.work != Work::Raw {
            bail!("scenario {n}: relay forwards messages as received: work must be raw");
        }
        for (what, map) in [
            ("unsupported", &self.unsupported),
            ("extra_source", &self.extra_source),
            ("extra_global", &self.extra_global),
        ] {
            for k in map.keys() {
                Engine::parse(k).with_context(|| format!("scenario {n}: {what}"))?;
            }
        }
        Ok(())
    }
}

fn short_cipher(c: &str) -> String {
    let u = c.to_ascii_uppercase();
    if u.contains("AES_128_GCM") || u == "AES128GCM" {
        "AES-128-GCM".into()
    } else if u.contains("AES_256_GCM") || u == "AES256GCM" {
        "AES-256-GCM".into()
    } else if u.contains("CHACHA20") {
        "ChaCha20-Poly1305".into()
    } else {
        c.to_string()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(rename = "scenario", default)]
    scenarios: Vec<Scenario>,
}

pub fn parse(text: &str, origin: &str) -> Result<Vec<Scenario>> {
    let f: ScenarioFile =
        toml::from_str(text).with_context(|| format!("{origin}: invalid scenario file"))?;
    if f.scenarios.is_empty() {
        bail!("{origin}: no [[scenario]] entries");
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in &f.scenarios {
        s.validate().with_context(|| origin.to_string())?;
        if !seen.insert(s.name.clone()) {
            bail!("{origin}: scenario name {:?} appears twice", s.name);
        }
    }
    for s in &f.scenarios {
        if let Some(b) = &s.baseline {
            if b == &s.name || !seen.contains(b) {
                bail!(
                    "{origin}: scenario {}: baseline {b:?} is not another scenario of this file",
                    s.name
                );
            }
        }
    }
    Ok(f.scenarios)
}

/// Unit tests: mutual TLS, octet-counted, 8 connections, 50 messages per
/// record (mtls-large-8's load), plus the TOML lines `extra`.
#[cfg(test)]
pub fn for_test(extra: &str) -> Scenario {
    let text = format!(
        "[[scenario]]\nname='t'\ntitle='t'\ntransport='tls'\nframing='octet-counted'\nconnections=8\nrecords_per_write=50\n{extra}"
    );
    parse(&text, "test")
        .expect("a valid test scenario")
        .remove(0)
}

pub fn load(path: Option<&Path>) -> Result<(Vec<Scenario>, String)> {
    match path {
        None => Ok((
            parse(DEFAULT_SCENARIOS, "bench/scenarios/default.toml")?,
            "bench/scenarios/default.toml (built in)".into(),
        )),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            Ok((
                parse(&text, &p.display().to_string())?,
                p.display().to_string(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenarios_parse() {
        let v = parse(DEFAULT_SCENARIOS, "default").unwrap();
        assert!(v.len() >= 5);
        assert!(v.iter().any(|s| s.idle_connections >= 900));
        assert!(v.iter().any(|s| s.transport == Transport::Tcp));
        assert!(v.iter().any(|s| s.framing == Framing::Newline));
        assert!(v.iter().any(|s| s.records_per_write == 1));
    }

    #[test]
    fn unknown_keys_and_engines_are_refused() {
        let base = "[[scenario]]\nname='a'\ntitle='t'\ntransport='tls'\nframing='octet-counted'\nconnections=1\nrecords_per_write=1\n";
        assert!(parse(base, "x").is_ok());
        assert!(parse(&format!("{base}bogus=1\n"), "x").is_err());
        assert!(parse(&format!("{base}[scenario.unsupported]\nnginx='no'\n"), "x").is_err());
        assert!(
            parse(&format!("{base}{base}"), "x").is_err(),
            "duplicate names"
        );
    }

    #[test]
    fn parsed_scenarios_parse_and_run_every_engine() {
        let v = parse(PARSED_SCENARIOS, "parsed").unwrap();
        assert!(!v.is_empty());
        for s in &v {
            assert_eq!(s.work, Work::Parsed);
            assert!(
                s.unsupported_reason(Engine::Ringest).is_none(),
                "{}: ringest parses (parse = \"auto\")",
                s.name
            );
        }
        let d = parse(DEFAULT_SCENARIOS, "default").unwrap();
        assert!(d.iter().all(|s| s.work == Work::Raw));
    }

    #[test]
    fn new_scenario_files_parse() {
        for (name, text) in [
            ("durability", DURABILITY_SCENARIOS),
            ("scaling", SCALING_SCENARIOS),
            ("relay", RELAY_SCENARIOS),
            ("io", IO_SCENARIOS),
            ("kafka", KAFKA_SCENARIOS),
            ("latency", LATENCY_SCENARIOS),
            ("client-congestion", CLIENT_CONGESTION_SCENARIOS),
        ] {
            let v = parse(text, name).unwrap();
            assert!(!v.is_empty(), "{name}");
        }
        let d = parse(DURABILITY_SCENARIOS, "d").unwrap();
        for level in [Durability::Never, Durability::Batch, Durability::Interval] {
            assert!(d.iter().any(|s| s.durability == level), "{level:?}");
        }
        let s = parse(SCALING_SCENARIOS, "s").unwrap();
        assert!(s.iter().any(|x| x.shards == Some(1) && x.pin));
        let l = parse(LATENCY_SCENARIOS, "l").unwrap();
        assert!(l.iter().all(|x| x.shards == Some(1) && x.pin));
        assert!(s
            .iter()
            .any(|x| x.shards == Some(2) && x.pin && x.baseline.is_some()));
        let r = parse(RELAY_SCENARIOS, "r").unwrap();
        assert!(r.iter().all(|x| x.relay && x.engines.is_none()));
        let io = parse(IO_SCENARIOS, "io").unwrap();
        let direct = io
            .iter()
            .filter(|x| x.extra_destination(Engine::Ringest) == "io = \"direct\"")
            .count();
        assert_eq!(direct, 2);
        assert!(io
            .iter()
            .all(|x| x.baseline.is_some() == x.name.contains("direct")));
    }

    #[test]
    fn the_client_is_on_cubic_unless_a_scenario_says() {
        for s in parse(DEFAULT_SCENARIOS, "default").unwrap() {
            assert_eq!(s.client_congestion, CLIENT_CONGESTION_DEFAULT, "{}", s.name);
            assert!(s
                .describe_load()
                .contains("client TCP congestion control cubic"));
        }
        let c = parse(CLIENT_CONGESTION_SCENARIOS, "c").unwrap();
        let system: Vec<_> = c
            .iter()
            .filter(|s| s.client_congestion == CLIENT_CONGESTION_SYSTEM)
            .collect();
        assert_eq!(system.len(), 2);
        // Each system row is paired with the same load on cubic.
        for s in system {
            let base = s.baseline.as_deref().unwrap();
            let b = c.iter().find(|x| x.name == base).unwrap();
            assert_eq!(b.client_congestion, CLIENT_CONGESTION_DEFAULT);
            assert_eq!(
                (b.records_per_write, b.connections),
                (s.records_per_write, s.connections)
            );
        }
    }

    #[test]
    fn baseline_must_name_another_scenario() {
        let a = "[[scenario]]\nname='a'\ntitle='t'\ntransport='tls'\nframing='octet-counted'\nconnections=1\nrecords_per_write=1\n";
        let b = |base: &str| {
            format!("{a}[[scenario]]\nname='b'\ntitle='t'\ntransport='tls'\nframing='octet-counted'\nconnections=1\nrecords_per_write=1\nbaseline='{base}'\n")
        };
        assert!(parse(&b("a"), "x").is_ok());
        assert!(parse(&b("b"), "x").is_err(), "itself");
        assert!(parse(&b("zz"), "x").is_err(), "unknown");
    }

    #[test]
    fn relay_needs_mutual_tls_and_raw_work() {
        let base =
            "[[scenario]]\nname='a'\ntitle='t'\nconnections=1\nrecords_per_write=1\nrelay=true\n";
        assert!(parse(
            &format!("{base}transport='tls'\nframing='octet-counted'\n"),
            "x"
        )
        .is_ok());
        assert!(parse(
            &format!("{base}transport='tcp'\nframing='octet-counted'\n"),
            "x"
        )
        .is_err());
        assert!(parse(&format!("{base}transport='tls'\nframing='newline'\n"), "x").is_err());
        assert!(parse(
            &format!("{base}transport='tls'\nframing='octet-counted'\nwork='parsed'\n"),
            "x"
        )
        .is_err());
    }

    #[test]
    fn kafka_rows_run_every_engine_on_eight_mutual_tls_connections() {
        let k = parse(KAFKA_SCENARIOS, "k").unwrap();
        assert!(!k.is_empty());
        for s in &k {
            assert!(s.kafka && !s.relay && s.engines.is_none() && s.unsupported.is_empty());
            assert!(s.tls() && s.mutual && s.connections == 8);
        }
        assert!(k.iter().any(|s| s.records_per_write == 1));
        assert!(k.iter().any(|s| s.records_per_write == 50));
        let base =
            "[[scenario]]\nname='a'\ntitle='t'\ntransport='tls'\nframing='octet-counted'\nconnections=1\nrecords_per_write=1\nkafka=true\n";
        assert!(parse(base, "x").is_ok());
        assert!(parse(&format!("{base}relay=true\n"), "x").is_err());
        assert!(parse(&format!("{base}work='parsed'\n"), "x").is_err());
        assert!(parse(&format!("{base}durability='batch'\n"), "x").is_err());
    }

    #[test]
    fn only_list() {
        assert_eq!(
            Engine::parse_list("syslog-ng,ringest").unwrap(),
            vec![Engine::Ringest, Engine::SyslogNg]
        );
        assert!(Engine::parse_list("nginx").is_err());
    }
}
