//! `tuning validate`: the model's prediction for another `shards` against a
//! profile measured there. Pure: two profiles in, a table out.
//!
//! The model (stated so a miss can be explained):
//! - CPU per message does not depend on the number of shards (each message
//!   costs the same work wherever it lands);
//! - a rate grows with the shards until the machine's cores are spent:
//!   `min(N × R₁ / N₁, cores / (machine + loadgen CPU per message))`. On one
//!   machine loadgen takes its share of the same cores, and so does the
//!   kernel's work for the server outside its process (softirq,
//!   writeback): the machine-wide figure counts it, the process figure
//!   does not (it is used only for a profile that lacks the machine one).
//!   This holds for the zero-loss maximum, which is capacity. The rate at
//!   the p99 SLO is predicted the same way, but on cores the server shares
//!   with loadgen its tail is set by scheduling, not by capacity, so that
//!   row can miss for reasons outside the model (validate.md says so).

use serde::Serialize;

use crate::measure::RATE_BYTES;
use crate::profile::{Figure, Profile};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    pub quantity: String,
    pub predicted: Option<f64>,
    pub measured: Option<f64>,
    /// (predicted − measured) / measured, percent.
    pub error_pct: Option<f64>,
}

/// The prediction for `target.shards` from `base`, against `target`.
pub fn compare(base: &Profile, target: &Profile) -> Vec<Comparison> {
    let mut out = Vec::new();
    let row = |quantity: String, predicted: Option<f64>, measured: Option<f64>| Comparison {
        quantity,
        predicted,
        measured,
        error_pct: match (predicted, measured) {
            (Some(p), Some(m)) if m != 0.0 => Some((p - m) / m * 100.0),
            _ => None,
        },
    };
    for t in &target.cpu {
        let bytes = f64::from(t.bytes);
        let predicted = base
            .cpu
            .iter()
            .find(|b| b.bytes == t.bytes && b.records_per_write == t.records_per_write)
            .map(|b| b.cpu_us_per_msg.value)
            .or_else(|| base.cpu_us_at(bytes, t.records_per_write).map(|i| i.value));
        out.push(row(
            format!(
                "server CPU-µs per message, {} B, {} per record",
                t.bytes, t.records_per_write
            ),
            predicted,
            Some(t.cpu_us_per_msg.value),
        ));
    }
    out.push(row(
        format!("highest rate with zero loss, {RATE_BYTES} B, msg/s"),
        predicted_rate(base, base.zero_loss_max_msgs_per_s, target),
        target.zero_loss_max_msgs_per_s.map(|f| f.value),
    ));
    out.push(row(
        format!("highest rate at the p99 SLO, {RATE_BYTES} B, msg/s"),
        predicted_rate(base, base.max_rate_msgs_per_s, target),
        target.max_rate_msgs_per_s.map(|f| f.value),
    ));
    out
}

/// `rate` (measured in `base`) predicted for the target's shards and cores.
fn predicted_rate(base: &Profile, rate: Option<Figure>, target: &Profile) -> Option<f64> {
    scaled_rate(base, rate?.value, target.shards, target.machine.cores)
}

/// `min(N × R₁ / N₁, cores / (machine + loadgen CPU per message))` at the
/// rate search's size, one message per record.
pub fn scaled_rate(base: &Profile, r1: f64, shards: u32, cores: u32) -> Option<f64> {
    let per_shard = r1 / f64::from(base.shards.max(1)) * f64::from(shards);
    let point = base
        .cpu
        .iter()
        .find(|p| p.bytes == base.max_rate_bytes && p.records_per_write == 1)?;
    let server = point.cores_cpu_us_per_msg().0.value;
    let per_msg_us = server + point.client_cpu_us_per_msg?.value;
    let cpu_bound = f64::from(cores) / (per_msg_us / 1e6);
    Some(per_shard.min(cpu_bound))
}

pub fn markdown(base: &Profile, target: &Profile, rows: &[Comparison]) -> String {
    let mut s = format!(
        "# Model check: shards = {} predicted from shards = {}\n\n{} ({} cores); base measured {}, target {}.\n\n| quantity | predicted | measured | error |\n|---|---|---|---|\n",
        target.shards,
        base.shards,
        target.machine.cpu_model,
        target.machine.cores,
        base.measured_at,
        target.measured_at
    );
    let f = |v: Option<f64>| v.map_or("unmeasured".to_string(), |v| format!("{v:.3}"));
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.quantity,
            f(r.predicted),
            f(r.measured),
            r.error_pct.map_or("–".to_string(), |e| format!("{e:+.1}%"))
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::tests::{fig, fixed};

    #[test]
    fn the_rate_is_capped_by_the_cores_loadgen_and_the_kernel_leave() {
        let mut base = fixed();
        // 300 B: machine 1.8 + loadgen 0.75 µs → 2 cores give 784,314/s;
        // 2 shards × 1M would be 2M.
        let r = scaled_rate(&base, 1e6, 2, 2).unwrap();
        assert!((r - 2.0 / 2.55e-6).abs() < 1.0, "{r}");
        // With 64 cores the shards are the cap.
        assert_eq!(scaled_rate(&base, 1e6, 2, 64), Some(2_000_000.0));
        // A profile without the machine figure falls back to the process's.
        for p in &mut base.cpu {
            p.machine_cpu_us_per_msg = None;
        }
        let r = scaled_rate(&base, 1e6, 2, 2).unwrap();
        assert!((r - 2.0 / 2.25e-6).abs() < 1.0, "{r}");
    }

    /// Both rates are predicted, each from its own base figure.
    #[test]
    fn the_zero_loss_and_slo_rates_each_scale_their_own_measurement() {
        let base = fixed();
        let mut target = fixed();
        target.shards = 2;
        target.machine.cores = 64;
        let rows = compare(&base, &target);
        let zero = rows
            .iter()
            .find(|r| r.quantity.contains("zero loss"))
            .unwrap();
        let slo = rows
            .iter()
            .find(|r| r.quantity.contains("p99 SLO"))
            .unwrap();
        assert_eq!(zero.predicted, Some(3_000_000.0));
        assert_eq!(slo.predicted, Some(2_000_000.0));
        assert_eq!(zero.measured, Some(1_500_000.0));
    }

    #[test]
    fn errors_are_relative_to_the_measurement() {
        let base = fixed();
        let mut target = fixed();
        target.shards = 2;
        target.cpu[1].cpu_us_per_msg = fig(1.2);
        target.max_rate_msgs_per_s = None;
        let rows = compare(&base, &target);
        let r = rows
            .iter()
            .find(|r| r.quantity.contains("300 B, 1 per"))
            .unwrap();
        assert!((r.error_pct.unwrap() - 25.0).abs() < 1e-9);
        let rate = rows.last().unwrap();
        assert_eq!(rate.error_pct, None);
        assert!(markdown(&base, &target, &rows).contains("| unmeasured |"));
    }
}
