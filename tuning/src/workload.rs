//! The workload a plan is for, read from a TOML file. Every error names the
//! field it is about, so a planner fixes the file without guessing.
//!
//! ```toml
//! peak_msgs_per_s = 2_000_000
//! connections = 40_000
//! records_per_write = 1      # 1: one TLS record per message (loggen-like)
//! cores_per_node = 32        # the machines the tier will run on
//! headroom_pct = 30
//! retention_days = 30
//! fsync = "never"            # never | batch | interval
//! output = "file"            # file | forward | kafka
//! sizes = [{ bytes = 300, share = 1.0 }]
//! storm = { clients = 40_000, seconds = 60 }
//! node_nic_gbit = 10         # optional node limits: nodes are also
//! node_disk_mb_s = 1000      # added until network and disk fit
//! ```

use std::fmt;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    File,
    Forward,
    Kafka,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    Never,
    Batch,
    Interval,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizeShare {
    pub bytes: u32,
    /// Fraction of messages of this size; the shares add up to 1.
    pub share: f64,
}

/// N clients reconnecting within T seconds (after an outage, say).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storm {
    pub clients: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub peak_msgs_per_s: f64,
    pub connections: u64,
    #[serde(default = "one")]
    pub records_per_write: u32,
    pub cores_per_node: u32,
    #[serde(default)]
    pub headroom_pct: f64,
    pub retention_days: f64,
    #[serde(default = "never")]
    pub fsync: Fsync,
    #[serde(default = "file")]
    pub output: Output,
    pub sizes: Vec<SizeShare>,
    pub storm: Option<Storm>,
    /// A node's network interface, Gbit/s (optional: a node limit).
    pub node_nic_gbit: Option<f64>,
    /// A node's sustained disk write, MB/s (optional: a node limit).
    pub node_disk_mb_s: Option<f64>,
}

fn one() -> u32 {
    1
}
fn never() -> Fsync {
    Fsync::Never
}
fn file() -> Output {
    Output::File
}

/// What is wrong with a workload file, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "workload field `{}`: {}", self.field, self.reason)
    }
}

impl std::error::Error for WorkloadError {}

impl Workload {
    pub fn load(path: &Path) -> Result<Workload, WorkloadError> {
        let text = std::fs::read_to_string(path).map_err(|e| WorkloadError {
            field: "(file)".into(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        Workload::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Workload, WorkloadError> {
        let de = toml::Deserializer::new(text);
        let w: Workload = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let reason = e.inner().message().to_string();
            // Unknown and missing keys are reported on their parent: name
            // the key itself, which the message quotes.
            let quoted = reason.split('`').nth(1).filter(|_| {
                reason.starts_with("unknown field") || reason.starts_with("missing field")
            });
            let field = match (quoted, path.as_str()) {
                (Some(k), "." | "") => k.to_string(),
                (Some(k), p) if !p.ends_with(k) => format!("{p}.{k}"),
                (_, p) => p.to_string(),
            };
            WorkloadError { field, reason }
        })?;
        w.validate()?;
        Ok(w)
    }

    fn validate(&self) -> Result<(), WorkloadError> {
        let err = |field: &str, reason: String| {
            Err(WorkloadError {
                field: field.into(),
                reason,
            })
        };
        if !(self.peak_msgs_per_s > 0.0 && self.peak_msgs_per_s.is_finite()) {
            return err("peak_msgs_per_s", "must be a positive rate".into());
        }
        if self.cores_per_node == 0 {
            return err("cores_per_node", "must be at least 1".into());
        }
        if self.records_per_write == 0 {
            return err("records_per_write", "must be at least 1".into());
        }
        if !(0.0..=400.0).contains(&self.headroom_pct) {
            return err("headroom_pct", "must be between 0 and 400".into());
        }
        if !(self.retention_days >= 0.0 && self.retention_days.is_finite()) {
            return err("retention_days", "must be 0 or more".into());
        }
        if self.sizes.is_empty() {
            return err("sizes", "give at least one { bytes, share }".into());
        }
        for (i, s) in self.sizes.iter().enumerate() {
            if s.bytes == 0 || s.share < 0.0 {
                return err(
                    &format!("sizes[{i}]"),
                    "bytes must be positive and share 0 or more".into(),
                );
            }
        }
        let total: f64 = self.sizes.iter().map(|s| s.share).sum();
        if (total - 1.0).abs() > 0.01 {
            return err("sizes", format!("the shares add up to {total:.3}, not 1"));
        }
        for (field, v) in [
            ("node_nic_gbit", self.node_nic_gbit),
            ("node_disk_mb_s", self.node_disk_mb_s),
        ] {
            if v.is_some_and(|v| v.is_nan() || v <= 0.0) {
                return err(field, "must be positive".into());
            }
        }
        if let Some(s) = self.storm {
            if s.seconds.is_nan() || s.seconds <= 0.0 {
                return err("storm.seconds", "must be positive".into());
            }
        }
        Ok(())
    }

    /// The mean message size, bytes.
    pub fn mean_bytes(&self) -> f64 {
        self.sizes
            .iter()
            .map(|s| f64::from(s.bytes) * s.share)
            .sum()
    }

    pub fn headroom(&self) -> f64 {
        1.0 + self.headroom_pct / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const EXAMPLE: &str = r#"
peak_msgs_per_s = 2_000_000
connections = 40_000
cores_per_node = 32
headroom_pct = 30
retention_days = 30
sizes = [{ bytes = 300, share = 1.0 }]
storm = { clients = 40_000, seconds = 60 }
"#;

    #[test]
    fn the_example_parses_with_defaults() {
        let w = Workload::parse(EXAMPLE).unwrap();
        assert_eq!(w.records_per_write, 1);
        assert_eq!(w.output, Output::File);
        assert_eq!(w.mean_bytes(), 300.0);
    }

    #[test]
    fn errors_name_the_field() {
        let field = |text: &str| Workload::parse(text).unwrap_err().field;
        assert_eq!(
            field(&EXAMPLE.replace("share = 1.0", "share = 0.5")),
            "sizes"
        );
        assert_eq!(
            field(&EXAMPLE.replace("cores_per_node = 32", "cores_per_node = 0")),
            "cores_per_node"
        );
        assert_eq!(
            field(&EXAMPLE.replace("peak_msgs_per_s", "peak_rate")),
            "peak_rate"
        );
        assert_eq!(
            field(&EXAMPLE.replace("connections = 40_000", "connections = -1")),
            "connections"
        );
        assert_eq!(
            field(&EXAMPLE.replace("seconds = 60", "secs = 60")),
            "storm.secs"
        );
        assert_eq!(
            field(&EXAMPLE.replace(", seconds = 60", "")),
            "storm.seconds"
        );
        let e = Workload::parse(&EXAMPLE.replace("seconds = 60", "seconds = 0")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "workload field `storm.seconds`: must be positive"
        );
    }
}
