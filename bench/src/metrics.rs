//! ringest's /metrics: fetched over HTTP/1.0 (the thin part) and parsed
//! from text (sans-IO, tested on fixed bodies): the counters and gauges, and
//! every latency summary's p50/p99/p999.
//!
//! Latency series accepted: today's `ringest_write_latency_seconds`,
//! `ringest_writer_round_seconds` (how long the writer's rounds took),
//! `ringest_writer_shard_hold_seconds` and `ringest_writer_queue_wait_seconds`
//! (the waits before a round), and
//! any other `ringest_*latency*` summary with `quantile` labels, such as
//! per-destination series (`…{destination="out",quantile="0.99"}`), each
//! keyed by its name and its other labels.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use crate::record::Quantiles;

/// GET /metrics from 127.0.0.1:port; empty when it cannot be read.
pub fn fetch(port: u16) -> String {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_secs(2),
    ) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.take(4 << 20).read_to_string(&mut body);
    body
}

/// Every `ringest_` sample without a quantile label, by its full name
/// (labels included).
pub fn counters(body: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for l in body.lines() {
        if !l.starts_with("ringest_") || l.contains("quantile=") {
            continue;
        }
        if let Some((k, v)) = l.rsplit_once(' ') {
            if let Ok(v) = v.parse::<f64>() {
                out.insert(k.to_string(), v);
            }
        }
    }
    out
}

/// One latency sample: (series key, quantile, seconds).
fn latency_sample(line: &str) -> Option<(String, f64, f64)> {
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.trim().parse().ok()?;
    let (name, labels) = head.split_once('{')?;
    // The writer's round durations and the two waits before a round too:
    // they tell a slow disk from queueing, and where the queueing was.
    const WRITER_SERIES: [&str; 3] = [
        "ringest_writer_round_seconds",
        "ringest_writer_shard_hold_seconds",
        "ringest_writer_queue_wait_seconds",
    ];
    if !name.starts_with("ringest_") || !(name.contains("latency") || WRITER_SERIES.contains(&name))
    {
        return None;
    }
    let labels = labels.strip_suffix('}')?;
    let mut q = None;
    let mut rest = Vec::new();
    for kv in labels.split(',').filter(|x| !x.is_empty()) {
        let (k, v) = kv.split_once('=')?;
        let v = v.trim_matches('"');
        if k.trim() == "quantile" {
            q = v.parse::<f64>().ok();
        } else {
            rest.push(format!("{}=\"{v}\"", k.trim()));
        }
    }
    let key = if rest.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", rest.join(","))
    };
    Some((key, q?, value))
}

/// p50, p99 and p999 of every latency summary in `body`, in microseconds.
/// A series missing one of the three is left out.
pub fn latencies_us(body: &str) -> BTreeMap<String, Quantiles> {
    let mut parts: BTreeMap<String, [Option<f64>; 3]> = BTreeMap::new();
    for (key, q, secs) in body.lines().filter_map(latency_sample) {
        let slot = match q {
            x if (x - 0.5).abs() < 1e-9 => 0,
            x if (x - 0.99).abs() < 1e-9 => 1,
            x if (x - 0.999).abs() < 1e-9 => 2,
            _ => continue,
        };
        parts.entry(key).or_default()[slot] = Some(secs * 1e6);
    }
    parts
        .into_iter()
        .filter_map(|(k, v)| match v {
            [Some(p50), Some(p99), Some(p999)] => Some((k, Quantiles { p50, p99, p999 })),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: &str =
        "# HELP ringest_write_latency_seconds From frame decoded to write() done, per message.\n\
        # TYPE ringest_write_latency_seconds summary\n\
        ringest_write_latency_seconds{quantile=\"0.5\"} 0.000183\n\
        ringest_write_latency_seconds{quantile=\"0.9\"} 0.0003\n\
        ringest_write_latency_seconds{quantile=\"0.99\"} 0.004\n\
        ringest_write_latency_seconds{quantile=\"0.999\"} 0.0125\n\
        ringest_write_latency_seconds{quantile=\"1\"} 0.2\n\
        ringest_write_latency_seconds_count 1000\n\
        ringest_messages_total 1000\n\
        ringest_write_errors_total{destination=\"out\",reason=\"eio\"} 0\n";

    #[test]
    fn todays_write_latency_is_read_in_microseconds() {
        let l = latencies_us(TODAY);
        assert_eq!(l.len(), 1, "{l:?}");
        let q = &l["ringest_write_latency_seconds"];
        assert!(
            (q.p50 - 183.0).abs() < 1e-6 && (q.p99 - 4000.0).abs() < 1e-6,
            "{q:?}"
        );
        assert!((q.p999 - 12_500.0).abs() < 1e-6, "{q:?}");
    }

    #[test]
    fn per_destination_series_are_kept_apart() {
        let body = format!(
            "{TODAY}ringest_destination_latency_seconds{{destination=\"a\",quantile=\"0.5\"}} 0.001\n\
             ringest_destination_latency_seconds{{destination=\"a\",quantile=\"0.99\"}} 0.002\n\
             ringest_destination_latency_seconds{{destination=\"a\",quantile=\"0.999\"}} 0.003\n\
             ringest_destination_latency_seconds{{quantile=\"0.5\",destination=\"b\"}} 0.01\n\
             ringest_destination_latency_seconds{{quantile=\"0.99\",destination=\"b\"}} 0.02\n\
             ringest_destination_latency_seconds{{quantile=\"0.999\",destination=\"b\"}} 0.03\n"
        );
        let l = latencies_us(&body);
        assert_eq!(l.len(), 3, "{l:?}");
        assert!(
            (l["ringest_destination_latency_seconds{destination=\"a\"}"].p99 - 2000.0).abs() < 1e-6
        );
        assert!(
            (l["ringest_destination_latency_seconds{destination=\"b\"}"].p999 - 30_000.0).abs()
                < 1e-6
        );
    }

    /// The writer's rounds are read as well, per writer; other summaries
    /// that are not latencies are not.
    #[test]
    fn the_writers_round_durations_are_read_per_writer() {
        let body = "ringest_writer_round_seconds{writer=\"0\",quantile=\"0.5\"} 0.0001\n\
                    ringest_writer_round_seconds{writer=\"0\",quantile=\"0.99\"} 0.0009\n\
                    ringest_writer_round_seconds{writer=\"0\",quantile=\"0.999\"} 0.012\n\
                    ringest_writer_round_bytes{writer=\"0\",quantile=\"0.5\"} 1\n\
                    ringest_writer_round_bytes{writer=\"0\",quantile=\"0.99\"} 2\n\
                    ringest_writer_round_bytes{writer=\"0\",quantile=\"0.999\"} 3\n";
        let l = latencies_us(body);
        assert_eq!(l.len(), 1, "{l:?}");
        let q = &l["ringest_writer_round_seconds{writer=\"0\"}"];
        assert!((q.p999 - 12_000.0).abs() < 1e-6, "{q:?}");
    }

    #[test]
    fn an_incomplete_series_or_other_metric_is_not_a_latency() {
        let body = "ringest_x_latency_seconds{quantile=\"0.5\"} 0.1\n\
                    ringest_x_latency_seconds{quantile=\"0.99\"} 0.2\n\
                    other_latency_seconds{quantile=\"0.5\"} 1\n\
                    ringest_y_latency_seconds{quantile=\"0.5\"} nope\n";
        assert!(latencies_us(body).is_empty());
    }

    #[test]
    fn counters_leave_quantiles_out() {
        let c = counters(TODAY);
        assert_eq!(c["ringest_messages_total"], 1000.0);
        assert_eq!(c["ringest_write_latency_seconds_count"], 1000.0);
        assert!(c.keys().all(|k| !k.contains("quantile")));
        assert!(c.contains_key("ringest_write_errors_total{destination=\"out\",reason=\"eio\"}"));
    }
}
