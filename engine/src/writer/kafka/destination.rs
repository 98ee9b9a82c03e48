//! A kafka destination as the writer drives it.
//!
//! [`deliver`](KafkaDestination::deliver) hands every message of the round
//! to the producer and returns: the producer's queue holds them until the
//! brokers acknowledge (the delivery reports release them from the
//! [`Ledger`]). The queue is bounded (`producer_queue_max_bytes`); when it
//! is full, `deliver` waits there, polling, so the writer stops taking
//! batches, the rings fill and the shards stop reading. Nothing is dropped:
//! librdkafka never times a message out (`message.timeout.ms = 0`), and a
//! delivery that fails anyway (a missing topic, a refused client) is kept,
//! logged once with its reason and hint, counted, and produced again after
//! a backoff, before any newer message.
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

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::context::Reports;
use super::failure::KafkaFailure;
use super::ledger::{Ledger, Pending};
use super::settings;
use super::stall::{Check, Stall, Watchdog};
use crate::config::kafka::KafkaKey;
use crate::config::{DestinationConfig, OutputFormat};
use crate::parse::{self, ParseMode};
use crate::stats::{publish_share, DestinationStats};
use crate::writer::destination::GiveUp;
use crate::writer::encode::{Message, Out};
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

/// A wait polls in slices this long and ends after the first slice that
/// served a callback: a delivery report makes room at once, and
/// `BaseProducer::poll` itself only returns at the end of its timeout.
const WAIT_SLICE: Duration = Duration::from_millis(1);

/// Callbacks served per poll round at most (each poll serves one event,
/// which may report many messages).
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
    producer: BaseProducer<Reports>,
    ledger: Ledger,
    health: Health<KafkaFailure>,
    key_buf: Vec<u8>,
    gave_up: bool,
    loss: DestinationLoss,
    /// What this destination published of `in_flight_bytes` and `queue_messages`.
    gauges_published: (u64, u64),
    watchdog: Watchdog,
}

impl KafkaDestination {
    pub fn open(cfg: &DestinationConfig, feeds: Vec<bool>) -> Result<KafkaDestination, String> {
        let producer: BaseProducer<Reports> = settings::client_config(cfg)?
            .create_with_context(Reports::default())
            .map_err(|e| format!("destination {}: kafka client: {e}", cfg.name))?;
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
            ledger: Ledger::default(),
            health: Health::new(RETRY_BACKOFF),
            key_buf: Vec::with_capacity(256),
            gave_up: false,
            gauges_published: (0, 0),
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
    pub fn deliver(&mut self, out: &Out<'_>, stats: &DestinationStats, give_up: GiveUp<'_>) -> u64 {
        if self.gave_up {
            self.loss.not_written_messages += out.messages();
            self.loss.not_written_bytes += out.len_bytes() as u64;
            return 0;
        }
        self.serve(stats);
        let mut cut = None;
        // Bytes of the messages handed over, each with its newline in `out`.
        let mut taken_bytes = 0usize;
        let taken = out.for_each_message(|m| {
            if let Err(at) = self.produce_one(&m, stats, give_up) {
                cut = Some(at);
                return ControlFlow::Break(());
            }
            taken_bytes += m.value.len() + 1;
            ControlFlow::Continue(())
        });
        if cut.is_some() {
            // Value bytes, as the ledger counts them: without the newlines.
            let missing = out.messages() - taken;
            self.loss.not_written_messages += missing;
            self.loss.not_written_bytes +=
                (out.len_bytes().saturating_sub(taken_bytes) as u64).saturating_sub(missing);
            self.give_up();
        } else {
            // Idle rounds come here too: due retries go out without new messages.
            self.send_due_retries(stats);
        }
        taken
    }

    /// Produces one message; `Err` once the give-up instant passed.
    fn produce_one(
        &mut self,
        m: &Message<'_>,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> Result<(), Instant> {
        self.make_room(stats, give_up)?;
        let mut key_buf = std::mem::take(&mut self.key_buf);
        let key = self.key_of(m, &mut key_buf).then_some(key_buf.as_slice());
        let result = loop {
            match self.send(m.value, key) {
                Ok(()) => break Ok(()),
                Err(None) => {
                    stats.queue_full_waits.fetch_add(1, Relaxed);
                    if let Err(t) = self.wait(stats, give_up) {
                        break Err(t);
                    }
                }
                Err(Some(code)) => {
                    let p = Pending {
                        value: m.value.to_vec(),
                        key: key.map(<[u8]>::to_vec),
                    };
                    let due = self.failed(code, "producing", stats);
                    self.ledger.refused(p, due);
                    break Ok(());
                }
            }
        };
        self.key_buf = key_buf;
        result
    }

    /// Hands one message to the producer. `Err(None)`: its queue is full;
    /// `Err(Some(code))`: refused.
    fn send(&mut self, value: &[u8], key: Option<&[u8]>) -> Result<(), Option<RDKafkaErrorCode>> {
        let mut record = BaseRecord::<[u8], [u8], ()>::to(&self.topic).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        match self.producer.send(record) {
            Ok(()) => {
                self.ledger.produced(value.len() as u64);
                Ok(())
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Err(None),
            Err((e, _)) => Err(Some(
                e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
            )),
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
                .client()
                .fetch_metadata(Some(&self.topic), METADATA_TIMEOUT);
        }
        while let Some(p) = self.ledger.take_due(now) {
            match self.send(&p.value, p.key.as_deref()) {
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

    /// Sets `buf` to the message's key; false when it has none.
    fn key_of(&self, m: &Message<'_>, buf: &mut Vec<u8>) -> bool {
        use std::io::Write;
        buf.clear();
        let Some((conn, frame)) = m.from else {
            return false;
        };
        if self.key == KafkaKey::Host {
            if let Some(host) = parse::parse(frame, ParseMode::Auto).host {
                buf.extend_from_slice(host);
                return true;
            }
        }
        match self.key {
            KafkaKey::None => false,
            KafkaKey::Peer | KafkaKey::Host => write!(buf, "{}", conn.peer.ip()).is_ok(),
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

    /// Polls the producer until a callback is served (a delivery report
    /// makes room), at most [`QUEUE_FULL_POLL`] or until the retries are
    /// due, unless the give-up instant has passed.
    fn wait(&mut self, stats: &DestinationStats, give_up: GiveUp<'_>) -> Result<(), Instant> {
        let now = Instant::now();
        if let Some(t) = give_up.at().filter(|t| now >= *t) {
            return Err(t);
        }
        let until_retry = self
            .ledger
            .retry_due()
            .map_or(QUEUE_FULL_POLL, |d| d.saturating_duration_since(now));
        let end = now + QUEUE_FULL_POLL.min(until_retry);
        let reports = std::sync::Arc::clone(self.producer.context());
        let before = reports.events.load(Relaxed);
        // Bounded: each slice takes WAIT_SLICE, and the loop ends at `end`.
        loop {
            let left = end.saturating_duration_since(Instant::now());
            self.producer.poll(WAIT_SLICE.min(left));
            if left.is_zero() || reports.events.load(Relaxed) != before {
                break;
            }
        }
        self.serve(stats);
        Ok(())
    }

    /// Serves pending callbacks and acts on what they recorded.
    fn serve(&mut self, stats: &DestinationStats) {
        let reports = std::sync::Arc::clone(self.producer.context());
        for _ in 0..POLL_EVENTS_MAX {
            let before = reports.events.load(Relaxed);
            self.producer.poll(Duration::ZERO);
            if reports.events.load(Relaxed) == before {
                break;
            }
        }
        let n = reports.delivered.swap(0, Relaxed);
        let bytes = reports.delivered_bytes.swap(0, Relaxed);
        let mut reported = n > 0;
        if n > 0 {
            self.ledger.delivered(n, bytes);
            stats.delivered_messages.fetch_add(n, Relaxed);
            self.recovered(stats);
        }
        let failed = reports
            .failed
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        for f in failed {
            reported = true;
            let due = self.failed(f.code, "delivery", stats);
            self.ledger.failed(f.message, due);
        }
        let errors = reports
            .errors
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        for (code, reason) in errors {
            self.client_error(code, &reason, stats);
        }
        // One producer per destination (a kafka group has one writer), so
        // this share is the whole gauge.
        let (bytes, messages) = &mut self.gauges_published;
        publish_share(&stats.in_flight_bytes, bytes, self.ledger.in_flight_bytes());
        let queued = self.producer.in_flight_count().max(0) as u64;
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
        if f.began {
            stats.outage_began();
        }
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
        if reason == KafkaFailure::Fatal || self.producer.client().fatal_error().is_some() {
            log::error!(
                "destination {}: kafka producer failed for good: {detail} ({})",
                self.name,
                reason.hint()
            );
        }
        // librdkafka reconnects by itself: log once per outage, and once
        // when deliveries resume (recovered()).
        let f = self.health.failed(Instant::now(), reason);
        if f.began {
            stats.outage_began();
        }
        if f.log {
            log::error!(
                "destination {}: kafka: {reason}: {detail}; messages wait in the producer's queue, then in the rings ({})",
                self.name,
                reason.hint()
            );
        }
    }

    fn recovered(&mut self, stats: &DestinationStats) {
        if let Some(o) = self.health.succeeded() {
            stats.outage_ended();
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
            self.producer.poll(QUEUE_FULL_POLL);
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
