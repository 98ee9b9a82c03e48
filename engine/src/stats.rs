//! Counters and the latency histogram, shared by shards, the writer and the
//! stats endpoint. Shards add to these once per loop turn, not per message.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use hdrhistogram::Histogram;

use crate::queue_delay::WriterLoad;

/// Microseconds from a frame's receive completion (the shard reaping it,
/// monotonic clock) to the write completion of its batch, per message:
/// 1 µs .. 1 hour at 3 significant digits. Writers record a round at a time.
pub struct Latency(Mutex<Histogram<u64>>);

impl std::fmt::Debug for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Latency")
    }
}

impl Default for Latency {
    fn default() -> Latency {
        // Creation cannot fail with these bounds.
        let h = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .unwrap_or_else(|_| Histogram::new(3).expect("hdrhistogram with 3 sigfigs"));
        Latency(Mutex::new(h))
    }
}

impl Latency {
    /// The histogram, locked; `None` if a writer panicked holding it.
    pub fn lock(&self) -> Option<MutexGuard<'_, Histogram<u64>>> {
        self.0.lock().ok()
    }

    /// Writes it as a Prometheus summary in seconds: `name{labels,quantile="q"}`.
    fn render(&self, out: &mut String, name: &str, labels: &str, quantiles: &[f64]) {
        let Some(h) = self.lock() else { return };
        let sep = if labels.is_empty() { "" } else { "," };
        for q in quantiles {
            let v = h.value_at_quantile(*q) as f64 / 1e6;
            let _ = writeln!(out, "{name}{{{labels}{sep}quantile=\"{q}\"}} {v}");
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_count{braces} {}", h.len());
    }
}

#[derive(Default)]
pub struct SourceStats {
    pub messages_received: AtomicU64,
    pub messages_written: AtomicU64,
    pub bytes_received: AtomicU64,
    pub connections_active: AtomicI64,
    pub connections_accepted: AtomicU64,
    pub connections_refused_limit: AtomicU64,
    pub frames_oversize: AtomicU64,
    pub frames_leading_zero: AtomicU64,
    pub backpressure_pauses: AtomicU64,
    pub copied_bytes_frame_span: AtomicU64,
    pub copied_bytes_tls_reassembly: AtomicU64,
    /// Counters keyed by a typed reason's label: handshake failures, framing errors, closes.
    pub handshake_failures: Labelled,
    pub framing_errors: Labelled,
    pub connection_errors: Labelled,
    pub tls_path: Labelled,
    /// Records other than application data read on offloaded sockets, by type.
    pub ktls_control_records: Labelled,
    /// Connections closed at accept by a limit, by the limit's name.
    pub connections_refused: Labelled,
    /// Failed accepts (EMFILE, ENFILE, ENOMEM), after which accepting pauses.
    pub accept_errors: Labelled,
    /// Messages that matched no syslog format, by reason: counted once per
    /// message, where it is parsed (`writer::parsed`), whatever reads it.
    pub parse_errors: Labelled,
}

/// A small map of reason label -> count. Reasons are rare events (failures), so a
/// mutex is fine here; the hot counters above are plain atomics.
#[derive(Default)]
pub struct Labelled(Mutex<BTreeMap<&'static str, u64>>);

impl Labelled {
    pub fn inc(&self, label: &'static str) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(label).or_insert(0) += 1;
        }
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        match self.0.lock() {
            Ok(m) => m.iter().map(|(k, v)| (*k, *v)).collect(),
            Err(_) => Vec::new(),
        }
    }

    pub fn get(&self, label: &str) -> u64 {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(label).copied())
            .unwrap_or(0)
    }
}

/// One destination's failures, kept by the writer thread.
#[derive(Default)]
pub struct DestinationStats {
    /// Failed writes by reason; every failed call counts, retries included.
    pub write_errors: Labelled,
    /// Failed fsyncs by reason.
    pub fsync_errors: Labelled,
    /// Failed reopens after SIGHUP by reason (retried; the old file stays in use).
    pub reopen_errors: Labelled,
    /// Forward destinations: failed connects, handshakes and sends by reason.
    pub upstream_errors: Labelled,
    /// Forward destinations over TLS: established connections by data path
    /// (`ktls`, or `userspace_<reason>`), like `tls_path` of a source.
    pub upstream_tls_path: Labelled,
    /// Forward destinations: messages put back at the front of the queue
    /// after their connection failed before it was confirmed.
    pub requeued_messages: AtomicU64,
    /// Forward destinations with a disk buffer: what it holds now.
    pub disk_buffer_bytes: AtomicU64,
    pub disk_buffer_messages: AtomicU64,
    /// Unix ms of the oldest buffered message; 0 when the buffer is empty.
    pub disk_buffer_oldest_unix_ms: AtomicU64,
    /// Messages dropped by a full buffer with `when_full = "drop_newest"`.
    pub disk_buffer_dropped: AtomicU64,
    /// Files found ending without `\n` (a torn last line), fixed with one.
    pub torn_lines_repaired: AtomicU64,
    /// Opens with `io = "direct"` that the file system refused: written buffered.
    pub direct_io_fallbacks: AtomicU64,
    /// Messages written before an fsync that failed: they may not be on disk.
    pub unsynced_messages: AtomicU64,
    /// Writers whose writing to this destination fails and is paused (each
    /// writer has its own connections, files and retries). The metric shows
    /// 1 while any is, so one writer's recovery does not hide another's
    /// failure.
    pub failing: AtomicU64,
    /// Path templates: field values escaped, emptied or cut to be one safe file name.
    pub path_values_sanitized: AtomicU64,
    /// Path templates: fields a message did not have (written as `@unknown`).
    pub path_values_missing: AtomicU64,
    /// Path templates: files closed (least recently used, SIGHUP, shutdown).
    pub files_closed: AtomicU64,
    /// Receive completion to this destination's write completion, for the
    /// messages it took.
    pub latency: Latency,
    /// Kafka: messages the brokers acknowledged.
    pub delivered_messages: AtomicU64,
    /// Kafka: failed deliveries by reason (each is kept and produced again).
    pub delivery_failures: Labelled,
    /// Kafka: messages produced again after a failed delivery.
    pub retried_messages: AtomicU64,
    /// Kafka: bytes handed to the producer and not yet acknowledged.
    pub in_flight_bytes: AtomicU64,
    /// Kafka: messages in the producer's queue (queued and in flight).
    pub queue_messages: AtomicU64,
    /// Kafka: waits for room in the producer's full queue (each ends at the
    /// first delivery report, or after 10 ms).
    pub queue_full_waits: AtomicU64,
    /// Kafka: times the producer held messages without a delivery report for
    /// `delivery_stall_ms` while the brokers answered.
    pub producer_stalls: AtomicU64,
}

/// Publishes one writer's share of a gauge that sums every writer's:
/// moves it by the change from what this writer published last. The one
/// way a gauge summed over writers is published (disk-buffer and Kafka
/// queue gauges, and `failing`). Adds before it subtracts, so a reader
/// never sees the sum below the other writers' shares.
pub fn publish_share(gauge: &AtomicU64, published: &mut u64, value: u64) {
    if value == *published {
        return;
    }
    gauge.fetch_add(value, Relaxed);
    gauge.fetch_sub(*published, Relaxed);
    *published = value;
}

impl DestinationStats {
    /// Publishes one writer's share of [`failing`](Self::failing): 1 while
    /// its writing to this destination fails, 0 otherwise. `published` is
    /// what that writer published last; publishing the same state again
    /// (each retry of an outage) changes nothing.
    pub fn publish_failing(&self, published: &mut u64, failing: bool) {
        publish_share(&self.failing, published, u64::from(failing));
    }
}

pub struct Stats {
    pub source_names: Vec<String>,
    pub sources: Vec<SourceStats>,
    pub destination_names: Vec<String>,
    pub destinations: Vec<DestinationStats>,
    pub batches_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub reload_errors: AtomicU64,
    /// Times a shard's receive credit came into force (a lane held back:
    /// the kernel may fill only a few of its receive buffers).
    pub recv_credit_entries: AtomicU64,
    /// Multishot receives cancelled as the receive credit came into force,
    /// so that each connection is re-armed in turn.
    pub recv_credit_cancels: AtomicU64,
    /// Receive completion to the write completion of every destination.
    pub latency: Latency,
    /// Each writer's queue, once the pool is built (by writer index).
    pub writers: OnceLock<Vec<Arc<WriterLoad>>>,
}

impl Stats {
    pub fn new(source_names: Vec<String>) -> Stats {
        let sources = source_names
            .iter()
            .map(|_| SourceStats::default())
            .collect();
        Stats {
            source_names,
            sources,
            destination_names: Vec::new(),
            destinations: Vec::new(),
            batches_written: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
            recv_credit_entries: AtomicU64::new(0),
            recv_credit_cancels: AtomicU64::new(0),
            latency: Latency::default(),
            writers: OnceLock::new(),
        }
    }

    /// Adds one set of destination counters per name, in config order.
    pub fn with_destinations(mut self, names: Vec<String>) -> Stats {
        self.destinations = names.iter().map(|_| DestinationStats::default()).collect();
        self.destination_names = names;
        self
    }

    pub fn total_written(&self) -> u64 {
        self.sources
            .iter()
            .map(|s| s.messages_written.load(Relaxed))
            .sum()
    }

    pub fn total_received(&self) -> u64 {
        self.sources
            .iter()
            .map(|s| s.messages_received.load(Relaxed))
            .sum()
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        type Get = fn(&SourceStats) -> u64;
        let counters: [(&str, &str, Get); 11] = [
            (
                "ringest_messages_received_total",
                "Messages decoded from the wire.",
                |s| s.messages_received.load(Relaxed),
            ),
            (
                "ringest_messages_written_total",
                "Messages written to every destination of their source.",
                |s| s.messages_written.load(Relaxed),
            ),
            (
                "ringest_bytes_received_total",
                "Message bytes decoded from the wire.",
                |s| s.bytes_received.load(Relaxed),
            ),
            (
                "ringest_connections_accepted_total",
                "Connections accepted.",
                |s| s.connections_accepted.load(Relaxed),
            ),
            (
                "ringest_connections_refused_limit_total",
                "Connections closed at once because max_connections was reached.",
                |s| s.connections_refused_limit.load(Relaxed),
            ),
            (
                "ringest_frames_oversize_total",
                "Frames longer than max_message_bytes (truncated or dropped).",
                |s| s.frames_oversize.load(Relaxed),
            ),
            (
                "ringest_frames_leading_zero_total",
                "Octet-counted frames whose length had leading zeros (accepted).",
                |s| s.frames_leading_zero.load(Relaxed),
            ),
            (
                "ringest_backpressure_pauses_total",
                "Times a shard stopped reading a connection of this source because the ring to its destination group's writer was full.",
                |s| s.backpressure_pauses.load(Relaxed),
            ),
            (
                "ringest_copied_bytes_total",
                "Message bytes copied because a frame spanned two receive buffers.",
                |s| s.copied_bytes_frame_span.load(Relaxed),
            ),
            (
                "ringest_tls_reassembly_copied_bytes_total",
                "Ciphertext bytes copied because a TLS record spanned two receive buffers.",
                |s| s.copied_bytes_tls_reassembly.load(Relaxed),
            ),
            ("ringest_connections_active", "Open connections.", |s| {
                s.connections_active.load(Relaxed).max(0) as u64
            }),
        ];
        for (name, help, get) in counters {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (src, s) in self.source_names.iter().zip(&self.sources) {
                let _ = writeln!(out, "{name}{{source=\"{src}\"}} {}", get(s));
            }
        }
        type GetL = fn(&SourceStats) -> &Labelled;
        let labelled: [(&str, &str, &str, GetL); 8] = [
            (
                "ringest_parse_errors_total",
                "reason",
                "Messages that matched no syslog format (kept whole, with parse_error), counted once each when parsed, by reason.",
                |s| &s.parse_errors,
            ),
            (
                "ringest_connections_refused_total",
                "limit",
                "Connections closed at once because a limit was reached, by limit.",
                |s| &s.connections_refused,
            ),
            (
                "ringest_accept_errors_total",
                "reason",
                "Failed accepts, by reason; accepting pauses with a backoff after each.",
                |s| &s.accept_errors,
            ),
            (
                "ringest_handshake_failures_total",
                "reason",
                "Refused or failed TLS handshakes by reason.",
                |s| &s.handshake_failures,
            ),
            (
                "ringest_framing_errors_total",
                "reason",
                "Connections closed for a framing error, by reason.",
                |s| &s.framing_errors,
            ),
            (
                "ringest_connection_errors_total",
                "reason",
                "Connections closed for another error, by reason.",
                |s| &s.connection_errors,
            ),
            (
                "ringest_tls_connections_total",
                "path",
                "Established TLS connections by data path (userspace or ktls) and why.",
                |s| &s.tls_path,
            ),
            (
                "ringest_ktls_control_records_total",
                "type",
                "Records other than application data on kTLS sockets, by type.",
                |s| &s.ktls_control_records,
            ),
        ];
        for (name, label, help, get) in labelled {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (src, s) in self.source_names.iter().zip(&self.sources) {
                let snap = get(s).snapshot();
                if snap.is_empty() && name == "ringest_framing_errors_total" {
                    // Always expose the series so a scrape sees 0 rather than nothing.
                    let _ = writeln!(out, "{name}{{source=\"{src}\"}} 0");
                }
                for (reason, v) in snap {
                    let _ = writeln!(out, "{name}{{source=\"{src}\",{label}=\"{reason}\"}} {v}");
                }
            }
        }
        self.render_destinations(&mut out);
        self.render_writers(&mut out);
        let globals: [(&str, &str, u64); 5] = [
            (
                "ringest_batches_written_total",
                "Batches written by the writer.",
                self.batches_written.load(Relaxed),
            ),
            (
                "ringest_bytes_written_total",
                "Bytes written to destinations.",
                self.bytes_written.load(Relaxed),
            ),
            (
                "ringest_reload_errors_total",
                "Reloads that kept the old settings because a new file was invalid.",
                self.reload_errors.load(Relaxed),
            ),
            (
                "ringest_recv_credit_entries_total",
                "Times a shard's receive credit came into force: a lane was held back, so the kernel may fill only a few receive buffers and each connection is read in turn.",
                self.recv_credit_entries.load(Relaxed),
            ),
            (
                "ringest_recv_credit_cancels_total",
                "Multishot receives cancelled as the receive credit came into force, so each connection is re-armed single-shot in turn.",
                self.recv_credit_cancels.load(Relaxed),
            ),
        ];
        for (name, help, v) in globals {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let name = "ringest_write_latency_seconds";
        let _ = writeln!(out, "# HELP {name} From a frame's receive completion to its write done in every destination, per message.\n# TYPE {name} summary");
        self.latency
            .render(&mut out, name, "", &[0.5, 0.9, 0.99, 0.999, 1.0]);
        crate::process_metrics::render(&mut out);
        out
    }

    /// Per writer: what it has queued, how fast it drains (the two that
    /// decide whether `max_queue_delay_ms` holds batches back) and what it
    /// has written.
    fn render_writers(&self, out: &mut String) {
        let Some(loads) = self.writers.get() else {
            return;
        };
        type Get = fn(&WriterLoad) -> u64;
        let series: [(&str, &str, &str, Get); 4] = [
            (
                "ringest_writer_queued_bytes",
                "Bytes handed to this writer and not yet written (its rings and the round in flight).",
                "gauge",
                |l| l.queued_bytes.load(Relaxed),
            ),
            (
                "ringest_writer_drain_bytes_per_second",
                "This writer's marginal rate, fitted on its recent rounds (a round takes fixed + bytes / rate).",
                "gauge",
                |l| l.drain_bytes_per_s.load(Relaxed),
            ),
            (
                "ringest_writer_round_fixed_microseconds",
                "This writer's fixed cost per round (fsync, syscalls), fitted on its recent rounds.",
                "gauge",
                |l| l.round_fixed_us.load(Relaxed),
            ),
            (
                "ringest_writer_drained_bytes_total",
                "Bytes of batches this writer has written (or given up on).",
                "counter",
                |l| l.drained_bytes_total.load(Relaxed),
            ),
        ];
        for (name, help, kind, get) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (w, l) in loads.iter().enumerate() {
                let _ = writeln!(out, "{name}{{writer=\"{w}\"}} {}", get(l));
            }
        }
        type GetW = fn(&WriterLoad) -> &Latency;
        let summaries: [(&str, &str, GetW); 3] = [
            (
                "ringest_writer_queue_wait_seconds",
                "Per message: from its batch's hand-over to this writer's ring to the writer's round taking it.",
                |l| &l.queue_wait,
            ),
            (
                "ringest_writer_shard_hold_seconds",
                "Per message: from its batch's oldest frame's receive completion to the batch's hand-over to this writer (an upper bound for the batch's later frames).",
                |l| &l.shard_hold,
            ),
            (
                "ringest_writer_round_seconds",
                "How long this writer's rounds (one write of everything it took from its rings) take.",
                |l| &l.round_latency,
            ),
        ];
        for (name, help, get) in summaries {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
            for (w, l) in loads.iter().enumerate() {
                get(l).render(
                    out,
                    name,
                    &format!("writer=\"{w}\""),
                    &[0.5, 0.99, 0.999, 1.0],
                );
            }
        }
    }

    fn render_destinations(&self, out: &mut String) {
        type GetL = fn(&DestinationStats) -> &Labelled;
        let labelled: [(&str, &str, &str, GetL); 6] = [
            (
                "ringest_write_errors_total",
                "reason",
                "Failed writes by reason (each retry counts); writing pauses until one succeeds.",
                |d| &d.write_errors,
            ),
            (
                "ringest_fsync_errors_total",
                "reason",
                "Failed fsyncs by reason (each retry counts).",
                |d| &d.fsync_errors,
            ),
            (
                "ringest_reopen_errors_total",
                "reason",
                "Failed reopens after SIGHUP by reason (retried; the old file stays in use).",
                |d| &d.reopen_errors,
            ),
            (
                "ringest_upstream_errors_total",
                "reason",
                "Forward destinations: failed connects, handshakes and sends by reason (each retry counts).",
                |d| &d.upstream_errors,
            ),
            (
                "ringest_upstream_tls_connections_total",
                "path",
                "Forward destinations: established TLS connections by data path (ktls, or userspace and why).",
                |d| &d.upstream_tls_path,
            ),
            (
                "ringest_delivery_failures_total",
                "reason",
                "Kafka: failed deliveries by reason; each message is kept and produced again.",
                |d| &d.delivery_failures,
            ),
        ];
        for (name, label, help, get) in labelled {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (dst, d) in self.destination_names.iter().zip(&self.destinations) {
                let snap = get(d).snapshot();
                if snap.is_empty() {
                    // Always expose the series so a scrape sees 0 rather than nothing.
                    let _ = writeln!(out, "{name}{{destination=\"{dst}\"}} 0");
                }
                for (reason, v) in snap {
                    let _ = writeln!(
                        out,
                        "{name}{{destination=\"{dst}\",{label}=\"{reason}\"}} {v}"
                    );
                }
            }
        }
        type Get = fn(&DestinationStats) -> u64;
        let plain: [(&str, &str, Get); 18] = [
            (
                "ringest_torn_lines_repaired_total",
                "Output files found ending in a torn line (crash); a newline was added.",
                |d| d.torn_lines_repaired.load(Relaxed),
            ),
            (
                "ringest_direct_io_fallbacks_total",
                "Opens with io = \"direct\" that the file system refused (EINVAL): written buffered.",
                |d| d.direct_io_fallbacks.load(Relaxed),
            ),
            (
                "ringest_unsynced_messages_total",
                "Messages written before an fsync that failed: they may not be on disk.",
                |d| d.unsynced_messages.load(Relaxed),
            ),
            (
                "ringest_destination_failing",
                "1 while writing to the destination fails and is paused (retrying).",
                |d| u64::from(d.failing.load(Relaxed) > 0),
            ),
            (
                "ringest_path_values_sanitized_total",
                "Path templates: field values that were not a safe file name, escaped (%XX), emptied (@empty) or cut.",
                |d| d.path_values_sanitized.load(Relaxed),
            ),
            (
                "ringest_path_values_missing_total",
                "Path templates: fields a message did not have, written as @unknown.",
                |d| d.path_values_missing.load(Relaxed),
            ),
            (
                "ringest_files_closed_total",
                "Path templates: files closed (least recently used past max_open_files, SIGHUP, shutdown).",
                |d| d.files_closed.load(Relaxed),
            ),
            (
                "ringest_requeued_messages_total",
                "Forward destinations: messages sent again because their connection failed before the server confirmed it.",
                |d| d.requeued_messages.load(Relaxed),
            ),
            (
                "ringest_disk_buffer_bytes",
                "Forward destinations: bytes in the disk buffer's segment files.",
                |d| d.disk_buffer_bytes.load(Relaxed),
            ),
            (
                "ringest_disk_buffer_messages",
                "Forward destinations: messages in the disk buffer, not yet delivered.",
                |d| d.disk_buffer_messages.load(Relaxed),
            ),
            (
                "ringest_disk_buffer_oldest_age_seconds",
                "Forward destinations: age of the oldest message in the disk buffer (0 when empty).",
                |d| match d.disk_buffer_oldest_unix_ms.load(Relaxed) {
                    0 => 0,
                    t => crate::writer::forward::unix_ms().saturating_sub(t) / 1000,
                },
            ),
            (
                "ringest_disk_buffer_dropped_total",
                "Forward destinations: messages dropped by a full disk buffer (when_full = drop_newest).",
                |d| d.disk_buffer_dropped.load(Relaxed),
            ),
            (
                "ringest_delivered_messages_total",
                "Kafka: messages the brokers acknowledged.",
                |d| d.delivered_messages.load(Relaxed),
            ),
            (
                "ringest_retried_messages_total",
                "Kafka: messages produced again after a failed delivery.",
                |d| d.retried_messages.load(Relaxed),
            ),
            (
                "ringest_in_flight_bytes",
                "Kafka: bytes handed to the producer and not yet acknowledged.",
                |d| d.in_flight_bytes.load(Relaxed),
            ),
            (
                "ringest_producer_queue_messages",
                "Kafka: messages in the producer's queue (queued and in flight).",
                |d| d.queue_messages.load(Relaxed),
            ),
            (
                "ringest_producer_queue_full_waits_total",
                "Kafka: waits for room in the producer's full queue (each until the next delivery report, at most 10 ms).",
                |d| d.queue_full_waits.load(Relaxed),
            ),
            (
                "ringest_producer_stalls_total",
                "Kafka: times the producer held messages with no delivery report for delivery_stall_ms while the brokers answered.",
                |d| d.producer_stalls.load(Relaxed),
            ),
        ];
        for (name, help, get) in plain {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (dst, d) in self.destination_names.iter().zip(&self.destinations) {
                let _ = writeln!(out, "{name}{{destination=\"{dst}\"}} {}", get(d));
            }
        }
        let name = "ringest_destination_write_latency_seconds";
        let _ = writeln!(out, "# HELP {name} From a frame's receive completion to its write done in this destination, per message.\n# TYPE {name} summary");
        for (dst, d) in self.destination_names.iter().zip(&self.destinations) {
            d.latency.render(
                out,
                name,
                &format!("destination=\"{dst}\""),
                &[0.5, 0.99, 0.999],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /metrics shows p50, p99 and p999 per destination, in seconds, and
    /// keeps the process-wide summary under its old name.
    #[test]
    fn latency_is_exposed_per_destination_and_overall() {
        let s = Stats::new(vec!["s".into()]).with_destinations(vec!["a".into(), "b".into()]);
        {
            let mut h = s.destinations[1].latency.lock().expect("histogram");
            h.record_n(1_000, 990).expect("in range");
            h.record_n(250_000, 10).expect("in range");
        }
        s.latency
            .lock()
            .expect("histogram")
            .record(2_000)
            .expect("in range");
        let out = s.render_prometheus();
        let line = |l: &str| assert!(out.lines().any(|x| x == l), "{l} missing in\n{out}");
        line("ringest_destination_write_latency_seconds{destination=\"a\",quantile=\"0.99\"} 0");
        line("ringest_destination_write_latency_seconds_count{destination=\"a\"} 0");
        line("ringest_destination_write_latency_seconds{destination=\"b\",quantile=\"0.5\"} 0.001");
        line("ringest_destination_write_latency_seconds{destination=\"b\",quantile=\"0.999\"} 0.250111");
        line("ringest_destination_write_latency_seconds_count{destination=\"b\"} 1000");
        line("ringest_write_latency_seconds{quantile=\"0.5\"} 0.002");
        line("ringest_write_latency_seconds_count 1");
    }

    /// Two writers' shares of one gauge add up, and each moves only its own.
    #[test]
    fn writers_publish_their_shares_of_a_summed_gauge() {
        let gauge = AtomicU64::new(0);
        let (mut a, mut b) = (0, 0);
        publish_share(&gauge, &mut a, 3_495);
        publish_share(&gauge, &mut b, 10);
        assert_eq!(gauge.load(Relaxed), 3_505);
        publish_share(&gauge, &mut b, 0);
        assert_eq!(gauge.load(Relaxed), 3_495, "the other writer's share stays");
        publish_share(&gauge, &mut a, 7);
        assert_eq!((gauge.load(Relaxed), a, b), (7, 7, 0));
    }

    /// Two writers on one destination, each publishing its share: one
    /// fails (and keeps failing through retries), then both, then they
    /// recover one at a time. The sum counts failing writers exactly, and
    /// the metric shows 1 until the last one recovers (it used to follow
    /// whichever wrote last).
    #[test]
    fn a_destination_is_failing_while_any_writer_is() {
        let s = Stats::new(vec!["s".into()]).with_destinations(vec!["d".into()]);
        let gauge = |s: &Stats| {
            let out = s.render_prometheus();
            out.lines()
                .find_map(|l| l.strip_prefix("ringest_destination_failing{destination=\"d\"} "))
                .expect("gauge rendered")
                .to_string()
        };
        let d = &s.destinations[0];
        let sum = || d.failing.load(Relaxed);
        let (mut a, mut b) = (0, 0);
        d.publish_failing(&mut a, false);
        d.publish_failing(&mut b, false);
        assert_eq!((sum(), gauge(&s).as_str()), (0, "0"));
        d.publish_failing(&mut a, true);
        assert_eq!((sum(), gauge(&s).as_str()), (1, "1"), "a fails");
        d.publish_failing(&mut a, true);
        d.publish_failing(&mut a, true);
        assert_eq!(sum(), 1, "a's retries are the same outage");
        d.publish_failing(&mut b, true);
        assert_eq!((sum(), gauge(&s).as_str()), (2, "1"), "both fail");
        d.publish_failing(&mut a, false);
        assert_eq!((sum(), gauge(&s).as_str()), (1, "1"), "b still fails");
        d.publish_failing(&mut a, false);
        assert_eq!(sum(), 1, "a's second success takes nothing off b's share");
        d.publish_failing(&mut b, false);
        assert_eq!((sum(), gauge(&s).as_str()), (0, "0"), "both recovered");
        assert_eq!((a, b), (0, 0));
    }
}
