//! A kafka destination as the writer drives it.
//!
//! [`deliver`](KafkaDestination::deliver) hands the round's messages to the
//! producer in batches ([`native`](super::native): one
//! `rd_kafka_produce_batch` per batch and partition, see
//! [`partition`](super::partition)) and returns: the producer's queue
//! holds them until the brokers acknowledge (the delivery reports release
//! them from the [`Ledger`]). The queue is bounded
//! (`producer_queue_max_bytes`); when it is full, `deliver` waits there,
//! polling, so the writer stops taking batches, the rings fill and the
//! shards stop reading. Nothing is dropped: librdkafka never times a
//! message out (`message.timeout.ms = 0`), and a delivery that fails anyway
//! (a missing topic, a refused client) is kept, logged once with its reason
//! and hint, counted, and produced again after a backoff, before any newer
//! message.
//!
//! One producer per destination: the pool gives a group with a kafka
//! destination one writer (config `writers_of`), so all of its messages go
//! through one librdkafka client, one broker connection and one broker
//! thread, in batches as large as the traffic allows.
//!
//! A producer that holds messages but gets no delivery report for
//! `delivery_stall_ms` while the brokers answer is reported as stalled
//! ([`stall`](super::stall)), once, and counted.
//!
//! At shutdown, [`finish`](KafkaDestination::finish) waits for the
//! acknowledgements until the give-up instant and counts what is still
//! unacknowledged as not written.

use std::ops::ControlFlow;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, Producer as _};

use super::context::ClientLog;
use super::failure::KafkaFailure;
use super::ledger::{Ledger, Pending};
use super::native::{Producer, Record, Served};
use super::stall::{Check, Stall, Watchdog};
use super::{round, settings};
use crate::config::kafka::KafkaKey;
use crate::config::{DestinationConfig, OutputFormat};
use crate::stats::{publish_share, DestinationStats};
use crate::writer::destination::GiveUp;
use crate::writer::encode::Out;
use crate::writer::failure::{Backoff, Health};
use crate::writer::report::DestinationLoss;

/// Waits before a failed message is produced again; the cap is how soon
/// delivery resumes once the topic exists or the client is allowed.
const RETRY_BACKOFF: Backoff = Backoff {
    min: Duration::from_millis(100),
    max: Duration::from_millis(5_000),
};

/// How long one wait for room in the producer's queue polls before the
/// give-up instant is looked at again.
const QUEUE_FULL_POLL: Duration = Duration::from_millis(10);

/// Events served per poll round at most (a delivery report event reports
/// a produce request's messages).
const POLL_EVENTS_MAX: usize = 1_000;

/// How long a metadata request for a missing topic may take before a retry.
const METADATA_TIMEOUT: Duration = Duration::from_millis(1_000);

/// How long `finish` waits for acknowledgements when shutdown never began
/// (the rings closed on their own, as in tests).
const FLUSH_WITHOUT_SHUTDOWN: Duration = Duration::from_secs(10);

pub struct KafkaDestination {
    pub name: String,
    pub format: OutputFormat,
    /// For each source, whether it feeds this destination.
    pub feeds: Vec<bool>,
    topic: String,
    key: KafkaKey,
    producer: Producer,
    /// The client's `message.max.bytes`: a record that may be larger is
    /// produced alone (round::batch_len).
    message_max_bytes: usize,
    ledger: Ledger,
    health: Health<KafkaFailure>,
    /// Scratch kept between rounds: the round's keys, the per-record
    /// results of a batch, what the events reported.
    keys: Vec<u8>,
    codes: Vec<RDKafkaErrorCode>,
    served: Served,
    gave_up: bool,
    loss: DestinationLoss,
    /// What this destination published of `in_flight_bytes` and `queue_messages`.
    gauges_published: (u64, u64),
    /// Its share of the destination's failing gauge, as last published.
    failing_published: u64,
    watchdog: Watchdog,
}

impl KafkaDestination {
    pub fn open(cfg: &DestinationConfig, feeds: Vec<bool>) -> Result<KafkaDestination, String> {
        let config = settings::client_config(cfg)?;
        let message_max_bytes = settings::message_max_bytes(&config)
            .map_err(|e| format!("destination {}: {e}", cfg.name))?;
        let client: BaseProducer<ClientLog> = config
            .create_with_context(ClientLog)
            .map_err(|e| format!("destination {}: kafka client: {e}", cfg.name))?;
        let who = format!("destination {}: kafka topic {}", cfg.name, cfg.topic);
        let partitioner = settings::partitioner(&config);
        if let Err(named) = &partitioner {
            log::warn!(
                "{who}: partitioner {named:?} is not one ringest computes; librdkafka partitions each message"
            );
        }
        let producer = Producer::new(client, &cfg.topic, partitioner.ok(), &who)
            .map_err(|e| format!("destination {}: {e}", cfg.name))?;
        log::info!(
            "destination {}: kafka topic {} on {} (acks={}, compression={})",
            cfg.name,
            cfg.topic,
            cfg.brokers.join(","),
            cfg.acks.property(),
            cfg.compression.property()
        );
        Ok(KafkaDestination {
            name: cfg.name.clone(),
            format: cfg.format,
            feeds,
            topic: cfg.topic.clone(),
            key: cfg.key,
            producer,
            message_max_bytes,
            ledger: Ledger::default(),
            health: Health::new(RETRY_BACKOFF),
            keys: Vec::new(),
            codes: Vec::new(),
            served: Served::default(),
            gave_up: false,
            gauges_published: (0, 0),
            failing_published: 0,
            watchdog: Watchdog::new(Duration::from_millis(cfg.delivery_stall_ms), Instant::now()),
            loss: DestinationLoss {
                name: cfg.name.clone(),
                ..Default::default()
            },
        })
    }

    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// Keys need each message's connection (and frame).
    pub fn wants_origins(&self) -> bool {
        self.key != KafkaKey::None
    }

    /// Hands every message of `out` to the producer, waiting while its
    /// queue is full or failed messages wait for their retry. Returns how
    /// many of `out`'s messages, from the first, the producer holds: all,
    /// unless the give-up instant passed while waiting.
    pub fn deliver(
        &mut self,
        out: &Out<'_, '_>,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> u64 {
        if self.gave_up {
            self.loss.not_written(out.messages(), out.len_bytes());
            return 0;
        }
        self.serve(stats);
        let mut chunk = round::Chunk::new(self.key, std::mem::take(&mut self.keys));
        // Messages the producer holds, and whether the give-up instant cut
        // the round (after which the rest is only counted).
        let (mut taken, mut cut) = (0u64, false);
        out.for_each_message(|m| {
            if cut {
                self.not_written(m.value.len());
                return ControlFlow::Continue(());
            }
            chunk.push(&m);
            if chunk.is_full() {
                cut = self.produce_chunk(&mut chunk, &mut taken, stats, give_up);
            }
            ControlFlow::Continue(())
        });
        if !cut && !chunk.is_empty() {
            cut = self.produce_chunk(&mut chunk, &mut taken, stats, give_up);
        }
        self.keys = chunk.into_keys();
        if cut {
            self.give_up();
        } else {
            // Idle rounds come here too: due retries go out without new messages.
            self.send_due_retries(stats);
        }
        taken
    }

    /// Produces `chunk`'s messages and empties it, adding to `taken` those
    /// the producer holds; true when the give-up instant cut it (the rest
    /// of the chunk is counted as not written).
    fn produce_chunk(
        &mut self,
        chunk: &mut round::Chunk<'_>,
        taken: &mut u64,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> bool {
        let records = chunk.records();
        let cut = match self.produce_all(&records, stats, give_up) {
            Ok(()) => {
                *taken += records.len() as u64;
                false
            }
            Err(n) => {
                *taken += n as u64;
                true
            }
        };
        drop(records);
        chunk.clear();
        cut
    }

    /// A message of `bytes` value bytes that was not handed to the producer.
    fn not_written(&mut self, bytes: usize) {
        self.loss.not_written_messages += 1;
        self.loss.not_written_bytes += bytes as u64;
    }

    /// Hands `records` to the producer, in batches; a refused record is
    /// kept for a retry, and nothing newer goes out before it. Records the
    /// full queue did not take are produced again, before any newer one,
    /// once it has room: in each partition they are the last of their
    /// batch (native::Producer::produce), so each partition's order holds.
    /// `Err(n)`: the give-up instant passed with only the first `n` taken
    /// for sure; the records not taken were counted as not written.
    fn produce_all(
        &mut self,
        records: &[Record<'_>],
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> Result<(), usize> {
        // Records before `next` were handed over once; `again` holds those
        // of them the full queue did not take, in order.
        let (mut next, mut again) = (0, Vec::new());
        while next < records.len() || !again.is_empty() {
            if self.make_room(stats, give_up).is_err() {
                return Err(self.cut(records, next, &again));
            }
            let mut codes = std::mem::take(&mut self.codes);
            if again.is_empty() {
                let start = next;
                next += round::batch_len(&records[start..], self.message_max_bytes);
                self.producer.produce(&records[start..next], &mut codes);
                for (i, &code) in (start..next).zip(&codes) {
                    self.settle(records, i, code, &mut again, stats);
                }
            } else {
                // A part of one batch: none of it over the size limit
                // unless alone.
                let retry: Vec<Record<'_>> = again.iter().map(|&i| records[i]).collect();
                self.producer.produce(&retry, &mut codes);
                for (i, &code) in std::mem::take(&mut again).into_iter().zip(&codes) {
                    self.settle(records, i, code, &mut again, stats);
                }
            }
            self.codes = codes;
            if !again.is_empty() {
                stats.queue_full_waits.fetch_add(1, Relaxed);
                if self.wait(stats, give_up).is_err() {
                    return Err(self.cut(records, next, &again));
                }
            }
        }
        Ok(())
    }

    /// What became of record `i`: held by the producer, left for the queue
    /// to have room (`again`), or refused and kept for a retry.
    fn settle(
        &mut self,
        records: &[Record<'_>],
        i: usize,
        code: RDKafkaErrorCode,
        again: &mut Vec<usize>,
        stats: &DestinationStats,
    ) {
        let r = &records[i];
        match code {
            RDKafkaErrorCode::NoError => self.ledger.produced(r.value.len() as u64),
            RDKafkaErrorCode::QueueFull => again.push(i),
            // Refused (a missing topic, a record too large): kept.
            // librdkafka refuses all of a call alike (the topic's and
            // partition's state hold under its lock for the call), except
            // records over the size limit, which go alone.
            code => {
                let due = self.failed(code, "producing", stats);
                self.ledger.refused(pending(r), due);
            }
        }
    }

    /// The give-up instant cut `produce_all`: counts the records not taken
    /// (`again`, and all from `next`) as not written; returns how many,
    /// from the first, were taken.
    fn cut(&mut self, records: &[Record<'_>], next: usize, again: &[usize]) -> usize {
        for &i in again {
            self.not_written(records[i].value.len());
        }
        for r in &records[next..] {
            self.not_written(r.value.len());
        }
        again.first().copied().unwrap_or(next)
    }

    /// Hands one message to the producer. `Err(None)`: its queue is full;
    /// `Err(Some(code))`: refused.
    fn send(&mut self, record: Record<'_>) -> Result<(), Option<RDKafkaErrorCode>> {
        match self.producer.produce_unassigned(record) {
            RDKafkaErrorCode::NoError => {
                self.ledger.produced(record.value.len() as u64);
                Ok(())
            }
            RDKafkaErrorCode::QueueFull => Err(None),
            code => Err(Some(code)),
        }
    }

    /// Produces the retries that are due until one finds no room (or is
    /// refused again).
    fn send_due_retries(&mut self, stats: &DestinationStats) {
        let now = Instant::now();
        if self.ledger.retry_due().is_none_or(|d| now < d) {
            return;
        }
        if self
            .health
            .outage()
            .is_some_and(|o| o.reason == KafkaFailure::UnknownTopic)
        {
            // librdkafka remembers a missing topic until its next periodic
            // refresh (minutes); ask now, so a topic created meanwhile is
            // used by this retry.
            let _ = self
                .producer
                .base()
                .client()
                .fetch_metadata(Some(&self.topic), METADATA_TIMEOUT);
        }
        while let Some(p) = self.ledger.take_due(now) {
            let record = Record {
                value: &p.value,
                key: p.key.as_deref(),
            };
            match self.send(record) {
                Ok(()) => {
                    stats.retried_messages.fetch_add(1, Relaxed);
                }
                Err(None) => {
                    self.ledger.put_back(p);
                    return;
                }
                Err(Some(code)) => {
                    stats.retried_messages.fetch_add(1, Relaxed);
                    let due = self.failed(code, "producing", stats);
                    self.ledger.refused(p, due);
                    return;
                }
            }
        }
    }

    /// Produces the due retries; waits (polling) until none is left.
    fn make_room(&mut self, stats: &DestinationStats, give_up: GiveUp<'_>) -> Result<(), Instant> {
        while self.ledger.has_retries() {
            self.send_due_retries(stats);
            if !self.ledger.has_retries() {
                break;
            }
            self.wait(stats, give_up)?;
        }
        Ok(())
    }

    /// Serves the producer's events until the first one comes (a delivery
    /// report makes room), at most [`QUEUE_FULL_POLL`] or until the retries
    /// are due, unless the give-up instant has passed.
    fn wait(&mut self, stats: &DestinationStats, give_up: GiveUp<'_>) -> Result<(), Instant> {
        let now = Instant::now();
        if let Some(t) = give_up.at().filter(|t| now >= *t) {
            return Err(t);
        }
        let poll = match self.ledger.retry_due() {
            // A retry not due yet: back when it is.
            Some(due) if due > now => (due - now).min(QUEUE_FULL_POLL),
            // A full queue (a due retry put back is one): until a report
            // frees room, QUEUE_FULL_POLL at most.
            _ => QUEUE_FULL_POLL,
        };
        self.serve_for(poll, stats);
        Ok(())
    }

    /// Serves the events already queued and acts on what they reported.
    fn serve(&mut self, stats: &DestinationStats) {
        self.serve_for(Duration::ZERO, stats);
    }

    /// Serves events, waiting up to `first_wait` for the first one, and
    /// acts on what they reported.
    fn serve_for(&mut self, first_wait: Duration, stats: &DestinationStats) {
        let mut served = std::mem::take(&mut self.served);
        self.producer
            .serve(first_wait, POLL_EVENTS_MAX, &mut served);
        let (n, bytes) = (served.delivered, served.delivered_bytes);
        (served.delivered, served.delivered_bytes) = (0, 0);
        let reported = n > 0 || !served.failed.is_empty();
        if n > 0 {
            self.ledger.delivered(n, bytes);
            stats.delivered_messages.fetch_add(n, Relaxed);
            self.recovered(stats);
        }
        for f in served.failed.drain(..) {
            let due = self.failed(f.code, "delivery", stats);
            self.ledger.failed(f.message, due);
        }
        for (code, reason) in served.errors.drain(..) {
            self.client_error(code, &reason, stats);
        }
        self.served = served;
        // One producer per destination (a kafka group has one writer), so
        // this share is the whole gauge.
        let (bytes, messages) = &mut self.gauges_published;
        publish_share(&stats.in_flight_bytes, bytes, self.ledger.in_flight_bytes());
        let queued = self.producer.base().in_flight_count().max(0) as u64;
        publish_share(&stats.queue_messages, messages, queued);
        self.watch(stats, reported, queued);
    }

    /// The stalled-producer watchdog: probes the brokers when the producer
    /// holds messages and no report came for `delivery_stall_ms`; logs and
    /// counts a stall once, and its end.
    fn watch(&mut self, stats: &DestinationStats, reported: bool, holding: u64) {
        match self
            .watchdog
            .observe(Instant::now(), holding > 0, reported)
        {
            Check::Fine => {}
            Check::Probe => {
                // Blocks at most METADATA_TIMEOUT, once per delivery_stall_ms
                // while no report comes.
                let answer = self
                    .producer
                    .base()
                    .client()
                    .fetch_metadata(Some(&self.topic), METADATA_TIMEOUT)
                    .is_ok();
                if let Some(silent) = self.watchdog.probed(Instant::now(), answer) {
                    stats.producer_stalls.fetch_add(1, Relaxed);
                    let stall = Stall {
                        destination: self.name.clone(),
                        topic: self.topic.clone(),
                        holding_messages: holding,
                        silent,
                    };
                    log::error!("{stall}");
                }
            }
            Check::Resumed(silent) => log::warn!(
                "destination {}: kafka producer delivering again after a stall ({:.1} s without a delivery report)",
                self.name,
                silent.as_secs_f64()
            ),
        }
    }

    /// Counts a failed delivery and logs the first of an outage; returns
    /// when the message may be produced again.
    fn failed(&mut self, code: RDKafkaErrorCode, what: &str, stats: &DestinationStats) -> Instant {
        let now = Instant::now();
        let reason = KafkaFailure::classify(code);
        stats.delivery_failures.inc(reason.label());
        let f = self.health.failed(now, reason);
        stats.publish_failing(&mut self.failing_published, self.health.is_failing());
        if f.log {
            let kind = if reason.is_permanent() {
                "will not heal by itself"
            } else {
                "retrying"
            };
            log::error!(
                "destination {}: {what} to kafka topic {} failed: {reason} ({code:?}), {kind}; messages are kept and produced again ({})",
                self.name,
                self.topic,
                reason.hint()
            );
        }
        now + f.retry_in
    }

    /// A client-level error: the producer retries by itself; logged once
    /// per outage, counted each time.
    fn client_error(&mut self, code: RDKafkaErrorCode, detail: &str, stats: &DestinationStats) {
        let reason = KafkaFailure::classify(code);
        stats.write_errors.inc(reason.label());
        if reason == KafkaFailure::Fatal || self.producer.base().client().fatal_error().is_some() {
            log::error!(
                "destination {}: kafka producer failed for good: {detail} ({})",
                self.name,
                reason.hint()
            );
        }
        // librdkafka reconnects by itself: log once per outage, and once
        // when deliveries resume (recovered()).
        let f = self.health.failed(Instant::now(), reason);
        stats.publish_failing(&mut self.failing_published, self.health.is_failing());
        if f.log {
            log::error!(
                "destination {}: kafka: {reason}: {detail}; messages wait in the producer's queue, then in the rings ({})",
                self.name,
                reason.hint()
            );
        }
    }

    fn recovered(&mut self, stats: &DestinationStats) {
        let ended = self.health.succeeded();
        stats.publish_failing(&mut self.failing_published, self.health.is_failing());
        if let Some(o) = ended {
            log::warn!(
                "destination {}: kafka deliveries resumed after {:.1} s and {} failures (last: {})",
                self.name,
                o.since.elapsed().as_secs_f64(),
                o.failures,
                o.reason
            );
        }
    }

    fn give_up(&mut self) {
        self.gave_up = true;
        log::error!(
            "destination {}: kafka still not accepting after shutdown and the drain timeout; giving up: {} messages not handed to the producer so far, later ones are counted too",
            self.name,
            self.loss.not_written_messages
        );
    }

    /// Waits for the acknowledgements (and produces the retries) until the
    /// give-up instant, then counts what is still unacknowledged.
    pub fn finish(mut self, stats: &DestinationStats, give_up: GiveUp<'_>) -> DestinationLoss {
        let deadline = give_up
            .at()
            .unwrap_or_else(|| Instant::now() + FLUSH_WITHOUT_SHUTDOWN);
        loop {
            self.serve(stats);
            if self.ledger.is_empty() || Instant::now() >= deadline {
                break;
            }
            self.send_due_retries(stats);
            self.serve_for(QUEUE_FULL_POLL, stats);
        }
        let (messages, bytes) = self.ledger.undelivered();
        if messages > 0 {
            self.loss.not_written_messages += messages;
            self.loss.not_written_bytes += bytes;
            log::error!(
                "destination {}: {messages} messages ({bytes} bytes) not acknowledged by kafka when shutdown gave up waiting",
                self.name
            );
        }
        self.loss
    }
}

/// A refused record, owned, to be produced again.
fn pending(r: &Record<'_>) -> Pending {
    Pending {
        value: r.value.to_vec(),
        key: r.key.map(<[u8]>::to_vec),
    }
}
