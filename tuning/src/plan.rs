//! `tuning plan`, sans-IO: a pure function from a measured [`Profile`] and a
//! [`Workload`] to a [`Plan`]. Every number carries where it came from (a
//! profile figure, the workload, or a stated rule), and a number that needs
//! an unmeasured figure is `None` and shown as "unmeasured".
//!
//! The model, in one place:
//! - server CPU per message for the size mix = share-weighted
//!   [`Profile::cores_cpu_us_at`] at the workload's records per write: the
//!   machine-wide figure, which counts the kernel's receive and writeback
//!   work done for the server on the same cores (the process figure leaves
//!   it out); the process figure, with a note, for a profile without it;
//! - Kafka output adds, per message, the profile's Kafka point less its
//!   file point at the same size and records per write (librdkafka's work;
//!   unmeasured, with a note, in a profile without a Kafka point); the
//!   broker's CPU per message from the same runs sizes one replica's cores;
//! - cores = peak × CPU per message × headroom; nodes = cores / cores per node;
//! - RAM per node = connections × idle RSS + shards × (ring + receive buffers);
//! - disk = peak × (mean size + 1 newline), raw output;
//! - network = peak × (mean size + octet count + TLS record overhead / records
//!   per write) × TCP/IP overhead;
//! - reconnect storm = clients / (handshakes per CPU-second × spare cores).

use serde::Serialize;

use crate::profile::{CpuBasis, Profile};
use crate::workload::{Fsync, Output, Workload};

/// TLS 1.3 AES-GCM record overhead: 5 header + 1 content type + 16 tag.
pub const TLS_RECORD_OVERHEAD_BYTES: f64 = 22.0;
/// RFC 5425's "LEN SP" for messages of up to 9999 bytes.
pub const OCTET_COUNT_BYTES: f64 = 5.0;
/// IPv4 + TCP with timestamps per 1448-byte segment.
pub const TCP_IP_OVERHEAD: f64 = 52.0 / 1448.0;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub name: &'static str,
    /// `None`: needs a figure the profile does not have.
    pub value: Option<f64>,
    pub unit: &'static str,
    /// The measurement, input or rule it came from.
    pub from: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Setting {
    pub key: &'static str,
    pub value: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub rows: Vec<Row>,
    pub config: Vec<Setting>,
    pub notes: Vec<String>,
    /// The planned rate per shard (per core), to place on the curve.
    pub operating_rate_per_shard: Option<f64>,
}

impl Plan {
    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.name == name)?.value
    }
}

/// The engine's own defaults for what the plan sizes memory from.
pub struct EngineSizes {
    pub ring_bytes_per_shard: f64,
    pub recv_bytes_per_shard: f64,
}

impl EngineSizes {
    pub fn from_engine_defaults() -> EngineSizes {
        let c: ringest::config::Config = toml::from_str("").unwrap_or_else(|e| {
            unreachable!("the empty config has every default: {e}");
        });
        EngineSizes {
            // Full batches queued, plus the batch being filled and one pending.
            ring_bytes_per_shard: ((c.ring_capacity_batches + 2) * c.batch_max_bytes) as f64,
            recv_bytes_per_shard: (c.recv_buffers_per_shard * c.recv_buffer_bytes) as f64,
        }
    }
}

pub fn plan(p: &Profile, w: &Workload, sizes: &EngineSizes) -> Plan {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut row = |name, value: Option<f64>, unit, from: String| {
        rows.push(Row {
            name,
            value,
            unit,
            from,
        })
    };
    let mean = w.mean_bytes();
    row(
        "mean message size",
        Some(mean),
        "bytes",
        "workload sizes".into(),
    );

    // CPU per message for the mix.
    let mut cpu_us = Some(0.0);
    let mut extrapolated = false;
    let mut rpw_used = w.records_per_write;
    // The same for every size: the points at one records per write.
    let mut basis = None;
    for s in &w.sizes {
        match p.cores_cpu_us_at(f64::from(s.bytes), w.records_per_write) {
            Some(i) => {
                cpu_us = cpu_us.map(|c| c + s.share * i.value);
                extrapolated |= i.extrapolated;
                rpw_used = i.records_per_write;
                basis = Some(i.basis);
            }
            None => cpu_us = None,
        }
    }
    let figure = if basis == Some(CpuBasis::Process) {
        notes.push(format!(
            "the profile has no machine-wide CPU figure at {rpw_used} records per write (written before it was recorded, or each one refused for its spread): cores are sized from the server process's CPU, which leaves out the kernel's receive and writeback work for it on the same cores (9–20% more in tuning/examples' profile), so they are undercounted; `tuning reread --dir DIR` adds the figure from the measurement's outputs"
        ));
        "server process CPU (no machine-wide figure)"
    } else {
        "machine-wide CPU (the server process and the kernel's work for it)"
    };
    let cpu_from = format!(
        "profile {figure} at {} records per write, {}{}",
        rpw_used,
        if extrapolated {
            "extrapolated beyond the measured sizes"
        } else {
            "interpolated by size"
        },
        if p.loadgen_shares_cores {
            "; loadgen shared the measured cores"
        } else {
            ""
        }
    );
    let kafka = (w.output == Output::Kafka).then(|| kafka_extra(p, w.records_per_write));
    if let Some(k) = &kafka {
        // An unmeasured extra leaves the file figure (the note says so).
        cpu_us = cpu_us.map(|c| c + k.extra_us.unwrap_or(0.0));
        row(
            "Kafka output's extra CPU per message",
            k.extra_us,
            "CPU-µs",
            k.from.clone(),
        );
        if k.extra_us.is_none() {
            notes.push(
                "Kafka output's extra CPU per message is unmeasured in this profile (`tuning measure --kafka` measures it): cores below count file output's CPU only, so they are undercounted".into(),
            );
        }
    }
    let cpu_from = match &kafka {
        Some(KafkaExtra {
            extra_us: Some(_), ..
        }) => format!("{cpu_from}; plus Kafka output's extra (the row above)"),
        _ => cpu_from,
    };
    row("server CPU per message", cpu_us, "CPU-µs", cpu_from);
    let steady_cores = cpu_us.map(|c| w.peak_msgs_per_s * c / 1e6);
    let cores = steady_cores.map(|c| c * w.headroom());
    row(
        "cores, whole tier",
        cores,
        "cores",
        format!("peak × CPU per message × {:.2} headroom", w.headroom()),
    );
    let disk_bytes_s = w.peak_msgs_per_s * (mean + 1.0);
    let wire =
        mean + OCTET_COUNT_BYTES + TLS_RECORD_OVERHEAD_BYTES / f64::from(w.records_per_write);
    let net_in = w.peak_msgs_per_s * wire * (1.0 + TCP_IP_OVERHEAD) * 8.0 / 1e6;
    // Network out (forward, Kafka) carries the same messages again.
    let net_node = if w.output == Output::File {
        net_in
    } else {
        2.0 * net_in
    };
    let (nodes, bound) = match cores {
        None => (None, "CPU (unmeasured)"),
        Some(c) => {
            let mut n = ((c / f64::from(w.cores_per_node)).ceil().max(1.0), "cores");
            if let Some(nic) = w.node_nic_gbit {
                let by_nic = (net_node * w.headroom() / (nic * 1000.0)).ceil();
                if by_nic > n.0 {
                    n = (by_nic, "node_nic_gbit");
                }
            }
            if let Some(disk) = w.node_disk_mb_s {
                let by_disk = (disk_bytes_s / 1e6 * w.headroom() / disk).ceil();
                if w.output == Output::File && by_disk > n.0 {
                    n = (by_disk, "node_disk_mb_s");
                }
            }
            (Some(n.0), n.1)
        }
    };
    row(
        "nodes",
        nodes,
        "nodes",
        format!(
            "the most of: cores / {} per node, network and disk × headroom / the node limits given; bound by {bound}",
            w.cores_per_node
        ),
    );
    let per_node_rate = nodes.map(|n| w.peak_msgs_per_s / n);
    row(
        "rate per node",
        per_node_rate,
        "msg/s",
        "peak / nodes".into(),
    );
    let shards = f64::from(w.cores_per_node);
    let operating_rate_per_shard = per_node_rate.map(|r| r / shards);

    // The measured ceiling, scaled per shard, as a check on the CPU model.
    let ceiling = p
        .max_rate_msgs_per_s
        .map(|f| f.value / f64::from(p.shards.max(1)) * shards);
    row(
        "measured ceiling per node",
        ceiling,
        "msg/s",
        format!(
            "profile max rate ({} bytes, p99 ≤ {} ms, 0 lost) per shard × {} shards",
            p.max_rate_bytes, p.slo_p99_ms, w.cores_per_node
        ),
    );
    if let (Some(c), Some(r)) = (ceiling, per_node_rate) {
        if r > c {
            notes.push(format!(
                "the planned rate per node ({r:.0} msg/s) is above the measured ceiling ({c:.0}): add nodes or headroom"
            ));
        }
    }

    // Memory.
    let conns_per_node = nodes.map(|n| (w.connections as f64 / n).ceil());
    let buffers = shards * (sizes.ring_bytes_per_shard + sizes.recv_bytes_per_shard);
    let ram = match (conns_per_node, p.idle_rss_bytes_per_conn) {
        (Some(c), Some(rss)) => Some((c * rss.value + buffers) / (1u64 << 30) as f64),
        _ => None,
    };
    row(
        "RAM per node",
        ram,
        "GiB",
        "connections per node × profile idle RSS per connection + shards × (ring + receive buffers, engine defaults)".into(),
    );

    // Disk and network.
    row(
        "disk write, whole tier",
        Some(disk_bytes_s / 1e6),
        "MB/s",
        "peak × (mean size + newline), raw output".into(),
    );
    row(
        "disk per day",
        Some(disk_bytes_s * 86_400.0 / 1e9),
        "GB/day",
        "disk write × 86,400 s".into(),
    );
    row(
        "disk for retention",
        Some(disk_bytes_s * 86_400.0 * w.retention_days / 1e12),
        "TB",
        format!("per day × {} days, before compression", w.retention_days),
    );
    let wire =
        mean + OCTET_COUNT_BYTES + TLS_RECORD_OVERHEAD_BYTES / f64::from(w.records_per_write);
    let net_in = w.peak_msgs_per_s * wire * (1.0 + TCP_IP_OVERHEAD) * 8.0 / 1e6;
    row(
        "network in per node",
        nodes.map(|n| net_in / n),
        "Mbit/s",
        "rate per node × (size + octet count + TLS record overhead / records per write) × TCP/IP overhead".into(),
    );
    if w.output != Output::File {
        row(
            "network out per node",
            nodes.map(|n| net_in / n),
            "Mbit/s",
            "as network in: the same messages go out once".into(),
        );
        if w.output == Output::Forward {
            notes.push(
                "the profile measured file output; forwarding costs more CPU per message (unmeasured in this profile)".into(),
            );
        }
    }
    if w.fsync != Fsync::Never {
        notes.push(
            "fsync other than \"never\": its cost is not in this profile (see the bench's durability rows)".into(),
        );
    }

    // Reconnect storm.
    if let Some(s) = w.storm {
        let spare = match (nodes, steady_cores) {
            (Some(n), Some(c)) => Some((n * f64::from(w.cores_per_node) - c).max(0.0)),
            _ => None,
        };
        let secs = match (spare, p.handshakes_per_cpu_s) {
            (Some(sp), Some(h)) if sp > 0.0 => Some(s.clients as f64 / (h.value * sp)),
            _ => None,
        };
        row(
            "reconnect storm absorbed in",
            secs,
            "s",
            format!(
                "{} clients / (profile full mTLS handshakes per CPU-second × cores spare at peak)",
                s.clients
            ),
        );
        if let Some(t) = secs.filter(|t| *t > s.seconds) {
            notes.push(format!(
                "the storm takes {t:.1} s, longer than the {} s asked: clients retry; raise listen_backlog or add nodes",
                s.seconds
            ));
        }
    }
    if let Some(k) = &kafka {
        row(
            "Kafka broker CPU per message",
            k.broker_us,
            "CPU-µs",
            "profile: one local broker's process, one replica, in the same runs".into(),
        );
        row(
            "Kafka broker cores at peak, one replica",
            k.broker_us.map(|b| w.peak_msgs_per_s * b / 1e6 * w.headroom()),
            "cores",
            format!(
                "peak × broker CPU per message × {:.2} headroom; each follower replica adds its own fetch and append work (not measured)",
                w.headroom()
            ),
        );
    }
    if w.output == Output::Kafka {
        row(
            "Kafka partitions",
            nodes.map(|n| n * shards),
            "partitions",
            "rule: one per shard of the tier, keyed by peer for per-sender order (not measured)"
                .into(),
        );
    }

    let mut config = vec![Setting {
        key: "shards",
        value: w.cores_per_node.to_string(),
        why: "one shard per core".into(),
    }];
    if let Some(c) = conns_per_node {
        let max = (c * w.headroom()).ceil();
        config.push(Setting {
            key: "max_connections",
            value: format!("{max:.0}"),
            why: "connections per node × headroom".into(),
        });
        config.push(Setting {
            key: "open files (LimitNOFILE)",
            value: format!("{:.0}", max + 1024.0),
            why: "max_connections + files, listeners and spare".into(),
        });
    }
    if let (Some(s), Some(n)) = (w.storm, nodes) {
        let per_node_per_s = s.clients as f64 / n / s.seconds;
        config.push(Setting {
            key: "listen_backlog",
            value: format!("{:.0}", per_node_per_s.clamp(1024.0, 65_535.0)),
            why: "storm connections per node per second (capped by net.core.somaxconn)".into(),
        });
    }
    Plan {
        rows,
        config,
        notes,
        operating_rate_per_shard,
    }
}

/// What Kafka output adds to a plan, from the profile's Kafka point.
struct KafkaExtra {
    /// ringest into Kafka less ringest into a file, process CPU, at the
    /// Kafka point's size and records per write.
    extra_us: Option<f64>,
    broker_us: Option<f64>,
    from: String,
}

/// The Kafka point nearest the workload's records per write, less the file
/// output's process CPU at the same size and records per write. The
/// difference is librdkafka's work and the value's copy into it, per
/// message; it is added to every size alike (measured at one size).
fn kafka_extra(p: &Profile, records_per_write: u32) -> KafkaExtra {
    let Some(k) = p.kafka_at(records_per_write) else {
        return KafkaExtra {
            extra_us: None,
            broker_us: None,
            from: "unmeasured: the profile has no Kafka point".into(),
        };
    };
    // The file output's process CPU at the same size (interpolated between
    // the measured sizes, as the plan's own) and records per write.
    let file = p
        .cpu_us_at(f64::from(k.bytes), k.records_per_write)
        .filter(|i| i.records_per_write == k.records_per_write);
    let (extra_us, from) = match file {
        Some(f) => (
            Some((k.cpu_us_per_msg.value - f.value).max(0.0)),
            format!(
                "profile: server process CPU into Kafka less into a file, {} B at {} records per write, the same for every size",
                k.bytes, k.records_per_write
            ),
        ),
        None => (
            None,
            format!(
                "unmeasured: no file figure at the Kafka point's {} B and {} records per write to take it from",
                k.bytes, k.records_per_write
            ),
        ),
    };
    KafkaExtra {
        extra_us,
        broker_us: k.broker_cpu_us_per_msg.map(|b| b.value),
        from,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::tests::fixed;

    const SIZES: EngineSizes = EngineSizes {
        ring_bytes_per_shard: 1_000_000.0,
        recv_bytes_per_shard: 0.0,
    };

    fn workload() -> Workload {
        Workload::parse(
            r#"
peak_msgs_per_s = 2_000_000
connections = 40_000
cores_per_node = 32
headroom_pct = 30
retention_days = 30
output = "kafka"
sizes = [{ bytes = 300, share = 1.0 }]
storm = { clients = 40_000, seconds = 60 }
"#,
        )
        .unwrap()
    }

    fn near(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() <= 1e-6 * b.abs().max(1.0))
    }

    /// The documented arithmetic on the fixed profile (1.8 machine-wide
    /// CPU-µs at 300 B).
    #[test]
    fn plan_arithmetic_on_the_fixed_profile() {
        let p = plan(&fixed(), &workload(), &SIZES);
        let get = |n| p.get(n);
        assert!(near(get("server CPU per message"), 1.8));
        // 2M × 1.8 µs = 3.6 cores; × 1.3 = 4.68.
        assert!(near(get("cores, whole tier"), 4.68));
        assert!(near(get("nodes"), 1.0));
        // With 10 Gbit NICs: in + out (Kafka) 2 × 5.42 Gbit × 1.3 → 2 nodes.
        let mut w = workload();
        w.node_nic_gbit = Some(10.0);
        assert!(near(plan(&fixed(), &w, &SIZES).get("nodes"), 2.0));
        // With 300 MB/s disks but Kafka output, disk does not bind.
        w.node_disk_mb_s = Some(300.0);
        assert!(near(plan(&fixed(), &w, &SIZES).get("nodes"), 2.0));
        w.output = Output::File;
        // File: 602 MB/s × 1.3 / 300 → 3 nodes.
        assert!(near(plan(&fixed(), &w, &SIZES).get("nodes"), 3.0));
        assert!(near(get("rate per node"), 2_000_000.0));
        // 1M/s per shard measured × 32 shards.
        assert!(near(get("measured ceiling per node"), 32_000_000.0));
        // 40k × 4096 B + 32 × 1 MB.
        let ram = (40_000.0 * 4096.0 + 32.0 * 1_000_000.0) / (1u64 << 30) as f64;
        assert!(near(get("RAM per node"), ram));
        assert!(near(get("disk write, whole tier"), 602.0));
        assert!(near(get("disk per day"), 602e6 * 86_400.0 / 1e9));
        assert!(near(
            get("disk for retention"),
            602e6 * 86_400.0 * 30.0 / 1e12
        ));
        let net = 2e6 * (300.0 + 5.0 + 22.0) * (1.0 + 52.0 / 1448.0) * 8.0 / 1e6;
        assert!(near(get("network in per node"), net));
        // 40k / (2000 × (32 - 3.6)).
        assert!(near(
            get("reconnect storm absorbed in"),
            40_000.0 / (2_000.0 * 28.4)
        ));
        assert!(near(get("Kafka partitions"), 32.0));
        let setting = |k| {
            p.config
                .iter()
                .find(|s| s.key == k)
                .map(|s| s.value.clone())
        };
        assert_eq!(setting("max_connections").as_deref(), Some("52000"));
        assert_eq!(setting("listen_backlog").as_deref(), Some("1024"));
        assert_eq!(p.operating_rate_per_shard, Some(62_500.0));
    }

    fn cpu_row(p: &Plan) -> &Row {
        p.rows
            .iter()
            .find(|r| r.name == "server CPU per message")
            .expect("the CPU row")
    }

    /// The kernel's work for the server takes the same cores: the
    /// machine-wide figure (1.2 × the process's in the fixed profile)
    /// sizes them, and says so.
    #[test]
    fn cores_are_sized_from_the_machine_cpu_figure() {
        let p = plan(&fixed(), &workload(), &SIZES);
        assert!(near(p.get("cores, whole tier"), 2e6 * 1.8e-6 * 1.3));
        let from = &cpu_row(&p).from;
        assert!(from.starts_with("profile machine-wide CPU"), "{from}");
        assert!(
            !p.notes.iter().any(|n| n.contains("machine-wide")),
            "{:?}",
            p.notes
        );
    }

    /// A profile written before the machine figure was recorded still
    /// plans, from the process figure, and the plan says which and why.
    #[test]
    fn without_the_machine_figure_cores_use_the_process_one_with_a_note() {
        let mut prof = fixed();
        for q in &mut prof.cpu {
            q.machine_cpu_us_per_msg = None;
        }
        let p = plan(&prof, &workload(), &SIZES);
        assert!(near(p.get("cores, whole tier"), 2e6 * 1.5e-6 * 1.3));
        let from = &cpu_row(&p).from;
        assert!(from.starts_with("profile server process CPU"), "{from}");
        let note = p
            .notes
            .iter()
            .find(|n| n.contains("no machine-wide CPU figure"))
            .unwrap_or_else(|| panic!("no fallback note in {:?}", p.notes));
        assert!(note.contains("at 1 records per write"), "{note}");
    }

    #[test]
    fn missing_figures_are_unmeasured_not_zero() {
        let mut prof = fixed();
        prof.idle_rss_bytes_per_conn = None;
        prof.handshakes_per_cpu_s = None;
        let p = plan(&prof, &workload(), &SIZES);
        assert_eq!(p.get("RAM per node"), None);
        assert_eq!(p.get("reconnect storm absorbed in"), None);
        assert!(p.get("nodes").is_some());
    }

    /// A Kafka point adds its CPU over the file point at the same size and
    /// records per write, and sizes the broker; without one, the extra is
    /// unmeasured and the plan says cores are undercounted.
    #[test]
    fn kafka_output_adds_the_measured_extra_and_sizes_the_broker() {
        use crate::profile::tests::fig;
        use crate::profile::KafkaPoint;
        let without = plan(&fixed(), &workload(), &SIZES);
        assert_eq!(without.get("Kafka output's extra CPU per message"), None);
        assert!(
            without.notes.iter().any(|n| n.contains("undercounted")),
            "{:?}",
            without.notes
        );
        let mut prof = fixed();
        // fixed(): file process CPU at 300 B, 1 record per write, is 1.5.
        prof.kafka = vec![
            KafkaPoint {
                bytes: 300,
                records_per_write: 1,
                cpu_us_per_msg: fig(2.5),
                broker_cpu_us_per_msg: Some(fig(0.8)),
            },
            KafkaPoint {
                bytes: 300,
                records_per_write: 50,
                cpu_us_per_msg: fig(0.9),
                broker_cpu_us_per_msg: Some(fig(0.7)),
            },
        ];
        let p = plan(&prof, &workload(), &SIZES);
        assert!(near(p.get("Kafka output's extra CPU per message"), 1.0));
        // 1.8 machine-wide (file) + 1.0 = 2.8; 2M × 2.8 µs × 1.3.
        assert!(near(p.get("server CPU per message"), 2.8));
        assert!(near(p.get("cores, whole tier"), 2e6 * 2.8e-6 * 1.3));
        assert!(near(p.get("Kafka broker CPU per message"), 0.8));
        assert!(near(
            p.get("Kafka broker cores at peak, one replica"),
            2e6 * 0.8e-6 * 1.3
        ));
        assert!(!p.notes.iter().any(|n| n.contains("undercounted")));
        // 50 per record: 0.9 − 0.3 = 0.6 over the file's 0.36 machine-wide.
        let mut w = workload();
        w.records_per_write = 50;
        let p50 = plan(&prof, &w, &SIZES);
        assert!(near(p50.get("Kafka output's extra CPU per message"), 0.6));
        assert!(near(p50.get("server CPU per message"), 0.96));
        // File output: no Kafka rows.
        w.output = Output::File;
        let f = plan(&prof, &w, &SIZES);
        assert_eq!(f.get("Kafka broker CPU per message"), None);
        assert!(near(f.get("server CPU per message"), 0.36));
    }

    #[test]
    fn engine_defaults_size_the_buffers() {
        let s = EngineSizes::from_engine_defaults();
        assert!(s.ring_bytes_per_shard > 0.0 && s.recv_bytes_per_shard > 0.0);
    }
}
