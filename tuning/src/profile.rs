//! A measured profile of one host (`tuning measure` writes it, `tuning plan`
//! reads it). Every figure carries its spread over repeats and what it was
//! measured with, so a plan can say where each of its numbers came from.
//! A figure that was not measured is `null` and the plan says "unmeasured".

use serde::{Deserialize, Serialize};

/// One measured quantity: the median over repeats and its spread.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figure {
    pub value: f64,
    /// (max - min) / median over the repeats, in percent.
    pub spread_pct: f64,
    pub repeats: u32,
}

/// Server CPU per message at one message size and records per write.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuPoint {
    pub bytes: u32,
    pub records_per_write: u32,
    /// Whole-process server CPU (all threads), microseconds per message.
    pub cpu_us_per_msg: Figure,
    /// loadgen's CPU per message in the same runs (it shares the cores).
    pub client_cpu_us_per_msg: Option<Figure>,
    /// The whole machine's busy CPU per message, loadgen's own taken out:
    /// the server's process plus the kernel's work on its behalf outside
    /// it (softirq, writeback), which takes the same cores. `null` in
    /// profiles written before it was recorded.
    #[serde(default)]
    pub machine_cpu_us_per_msg: Option<Figure>,
}

/// One point of the throughput–latency curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurvePoint {
    pub rate_msgs_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: u32,
    pub kernel: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub machine: Machine,
    /// UTC, RFC 3339.
    pub measured_at: String,
    /// The `shards` the measured ringest ran with.
    pub shards: u32,
    /// Whether loadgen ran on the same cores as the server (it does on a
    /// single machine: the server's share of the cores is then smaller).
    pub loadgen_shares_cores: bool,
    pub cpu: Vec<CpuPoint>,
    /// The highest rate sustained with zero loss and loadgen's p99 within
    /// `slo_p99_ms`: the highest such point of the curve (a lower bound, at
    /// the curve's resolution).
    pub max_rate_msgs_per_s: Option<Figure>,
    /// The highest rate written with zero loss, p99 not considered: `bench
    /// latency`'s search for the maximum (one search, so no spread). The
    /// capacity the SLO rate is a fraction of. `null` in profiles written
    /// before it was recorded.
    #[serde(default)]
    pub zero_loss_max_msgs_per_s: Option<Figure>,
    /// The message size and records per write of the rate search.
    pub max_rate_bytes: u32,
    pub slo_p99_ms: f64,
    pub handshakes_per_cpu_s: Option<Figure>,
    pub idle_rss_bytes_per_conn: Option<Figure>,
    pub writer_cpu_s_per_gb_buffered: Option<Figure>,
    pub writer_cpu_s_per_gb_direct: Option<Figure>,
    pub curve: Vec<CurvePoint>,
    /// Into Kafka instead of a file (`tuning measure --kafka`): one point
    /// per records per write, empty in profiles measured without it.
    #[serde(default)]
    pub kafka: Vec<KafkaPoint>,
}

/// ringest with a Kafka destination (acks = "all", the idempotent
/// producer, no compression) against one local broker, measured by `bench
/// compare` the same way as [`CpuPoint`]'s file output: 8 mutual-TLS
/// connections, raw value, every message counted in the topic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaPoint {
    pub bytes: u32,
    pub records_per_write: u32,
    /// Whole-process server CPU (all threads, librdkafka's included),
    /// microseconds per message.
    pub cpu_us_per_msg: Figure,
    /// The broker's process (one node, one replica, on the same cores),
    /// microseconds per message: what a Kafka cluster spends per message
    /// before replication to followers.
    pub broker_cpu_us_per_msg: Option<Figure>,
}

/// Which of a point's CPU figures a number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuBasis {
    /// The whole machine's busy CPU, loadgen's taken out: the server's
    /// process and the kernel's work for it on the same cores.
    Machine,
    /// The server process's own CPU: leaves the kernel's work out.
    Process,
}

impl CpuBasis {
    pub fn of(self, p: &CpuPoint) -> Option<Figure> {
        match self {
            CpuBasis::Machine => p.machine_cpu_us_per_msg,
            CpuBasis::Process => Some(p.cpu_us_per_msg),
        }
    }
}

impl CpuPoint {
    /// The CPU per message that spends cores: the machine-wide figure,
    /// or the process's in a profile that lacks it.
    pub fn cores_cpu_us_per_msg(&self) -> (Figure, CpuBasis) {
        match self.machine_cpu_us_per_msg {
            Some(f) => (f, CpuBasis::Machine),
            None => (self.cpu_us_per_msg, CpuBasis::Process),
        }
    }
}

impl Profile {
    /// Server process CPU per message at `bytes`, from the points measured
    /// at the records per write nearest `records_per_write`: linear between
    /// the two measured sizes around it, extrapolated from the nearest two
    /// outside. `None` when no point was measured.
    pub fn cpu_us_at(&self, bytes: f64, records_per_write: u32) -> Option<Interpolated> {
        let rpw = self.nearest_records_per_write(records_per_write)?;
        self.interpolate(bytes, rpw, CpuBasis::Process)
    }

    /// CPU per message at `bytes` to size cores with, as [`Self::cpu_us_at`]
    /// but from the machine-wide figure: it counts the kernel's receive and
    /// writeback work for the server, which takes the same cores and which
    /// the process figure leaves out. Interpolated over the points at that
    /// records per write that have it (one refused for its spread is
    /// skipped, as a point not measured is); the process figure only when
    /// none has it (profiles written before it was recorded).
    pub fn cores_cpu_us_at(&self, bytes: f64, records_per_write: u32) -> Option<Interpolated> {
        let rpw = self.nearest_records_per_write(records_per_write)?;
        self.interpolate(bytes, rpw, CpuBasis::Machine)
            .or_else(|| self.interpolate(bytes, rpw, CpuBasis::Process))
    }

    /// The Kafka point measured at the records per write nearest
    /// `records_per_write`, if any.
    pub fn kafka_at(&self, records_per_write: u32) -> Option<&KafkaPoint> {
        self.kafka
            .iter()
            .min_by_key(|p| p.records_per_write.abs_diff(records_per_write))
    }

    fn nearest_records_per_write(&self, records_per_write: u32) -> Option<u32> {
        self.cpu
            .iter()
            .map(|p| p.records_per_write)
            .min_by_key(|r| r.abs_diff(records_per_write))
    }

    fn interpolate(&self, bytes: f64, rpw: u32, basis: CpuBasis) -> Option<Interpolated> {
        let mut pts: Vec<(f64, f64)> = self
            .cpu
            .iter()
            .filter(|p| p.records_per_write == rpw)
            .filter_map(|p| Some((f64::from(p.bytes), basis.of(p)?.value)))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts.dedup_by(|a, b| a.0 == b.0);
        let value = match pts.as_slice() {
            [] => return None,
            [(_, v)] => *v,
            _ => {
                // The segment around `bytes`, or the end segment nearest it.
                let i = pts
                    .windows(2)
                    .position(|w| bytes <= w[1].0)
                    .unwrap_or(pts.len() - 2);
                let ((x0, y0), (x1, y1)) = (pts[i], pts[i + 1]);
                (y0 + (y1 - y0) * (bytes - x0) / (x1 - x0)).max(0.0)
            }
        };
        let lo = pts.first().map_or(0.0, |p| p.0);
        let hi = pts.last().map_or(0.0, |p| p.0);
        Some(Interpolated {
            value,
            records_per_write: rpw,
            extrapolated: bytes < lo || bytes > hi,
            basis,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interpolated {
    pub value: f64,
    /// The records per write of the points used.
    pub records_per_write: u32,
    /// Outside the measured sizes.
    pub extrapolated: bool,
    /// The figure the points gave.
    pub basis: CpuBasis,
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn fig(value: f64) -> Figure {
        Figure {
            value,
            spread_pct: 5.0,
            repeats: 3,
        }
    }

    /// A fixed profile (numbers chosen for round arithmetic, not measured).
    pub fn fixed() -> Profile {
        let point = |bytes, rpw, us| CpuPoint {
            bytes,
            records_per_write: rpw,
            cpu_us_per_msg: fig(us),
            client_cpu_us_per_msg: Some(fig(us / 2.0)),
            machine_cpu_us_per_msg: Some(fig(us * 1.2)),
        };
        Profile {
            machine: Machine {
                cpu_model: "test".into(),
                cores: 2,
                kernel: "6.18".into(),
            },
            measured_at: "2026-11-29T00:00:00Z".into(),
            shards: 1,
            loadgen_shares_cores: true,
            cpu: vec![
                point(128, 1, 1.0),
                point(300, 1, 1.5),
                point(1024, 1, 2.0),
                point(4096, 1, 4.0),
                point(128, 50, 0.2),
                point(300, 50, 0.3),
                point(1024, 50, 0.6),
                point(4096, 50, 2.0),
            ],
            max_rate_msgs_per_s: Some(fig(1_000_000.0)),
            zero_loss_max_msgs_per_s: Some(fig(1_500_000.0)),
            max_rate_bytes: 300,
            slo_p99_ms: 5.0,
            handshakes_per_cpu_s: Some(fig(2_000.0)),
            idle_rss_bytes_per_conn: Some(fig(4_096.0)),
            writer_cpu_s_per_gb_buffered: Some(fig(1.5)),
            writer_cpu_s_per_gb_direct: Some(fig(0.3)),
            curve: vec![CurvePoint {
                rate_msgs_per_s: 500_000.0,
                p50_ms: 1.0,
                p99_ms: 3.0,
                p999_ms: 6.0,
            }],
            kafka: vec![],
        }
    }

    #[test]
    fn cpu_is_interpolated_between_and_extrapolated_beyond_measured_sizes() {
        let p = fixed();
        let at = |b, r| p.cpu_us_at(b, r).map(|i| (i.value, i.extrapolated));
        assert_eq!(at(300.0, 1), Some((1.5, false)));
        assert_eq!(at(214.0, 1), Some((1.25, false)));
        // Nearest records-per-write: 40 uses the 50 points.
        assert_eq!(at(300.0, 40), Some((0.3, false)));
        // Beyond 4096: the 1024..4096 slope continues.
        let (v, ex) = at(7168.0, 1).unwrap();
        assert!((v - 6.0).abs() < 1e-9 && ex, "{v}");
        let empty = Profile { cpu: vec![], ..p };
        assert_eq!(empty.cpu_us_at(300.0, 1), None);
    }

    /// Cores are sized from the machine figure: interpolated over the
    /// points that have it, the process figure only where none has it.
    #[test]
    fn cores_cpu_is_the_machine_figure_where_measured() {
        let mut p = fixed();
        let at = |p: &Profile, bytes, rpw| {
            let i = p.cores_cpu_us_at(bytes, rpw).unwrap();
            ((i.value * 1e9).round() / 1e9, i.basis)
        };
        // fixed(): machine = 1.2 × process.
        assert_eq!(at(&p, 300.0, 1), (1.8, CpuBasis::Machine));
        // 300 B's machine figure refused: between 128 (1.2) and 1024 (2.4).
        p.cpu[1].machine_cpu_us_per_msg = None;
        let (v, basis) = at(&p, 300.0, 1);
        assert!((v - (1.2 + 1.2 * 172.0 / 896.0)).abs() < 1e-8, "{v}");
        assert_eq!(basis, CpuBasis::Machine);
        // No point at 1 record per write has it: the process figure.
        for q in p.cpu.iter_mut().filter(|q| q.records_per_write == 1) {
            q.machine_cpu_us_per_msg = None;
        }
        assert_eq!(at(&p, 300.0, 1), (1.5, CpuBasis::Process));
        // The 50-per-record points keep theirs.
        assert_eq!(at(&p, 300.0, 50), (0.36, CpuBasis::Machine));
    }
}
