//! The producer's callbacks. They run inside `poll()` on the writer thread;
//! they only record, and the destination acts on what they recorded.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext};

use super::ledger::Pending;

/// A delivery that failed, with the message to produce again.
pub struct FailedDelivery {
    pub code: RDKafkaErrorCode,
    pub message: Pending,
}

#[derive(Default)]
pub struct Reports {
    /// Acknowledged messages and their value bytes since the last take.
    pub delivered: AtomicU64,
    pub delivered_bytes: AtomicU64,
    pub failed: Mutex<Vec<FailedDelivery>>,
    /// Client-level errors (brokers unreachable, authentication).
    pub errors: Mutex<Vec<(RDKafkaErrorCode, String)>>,
    /// Callbacks run so far: tells the destination whether a poll served anything.
    pub events: AtomicU64,
}

impl ClientContext for Reports {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // Client errors come through error() and are logged once per
        // outage by the destination; librdkafka's own lines are for debugging.
        log::debug!("librdkafka {level:?} {fac}: {message}");
    }

    /// Only with `statistics.interval.ms` set in `[destination.properties]`:
    /// librdkafka's own JSON (queues, requests, round trips per broker),
    /// logged as it is.
    fn stats_raw(&self, statistics: &[u8]) {
        log::info!(
            "librdkafka statistics: {}",
            String::from_utf8_lossy(statistics)
        );
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.events.fetch_add(1, Relaxed);
        let code = error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
        if let Ok(mut e) = self.errors.lock() {
            e.push((code, reason.to_string()));
        }
    }
}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        self.events.fetch_add(1, Relaxed);
        match result {
            Ok(m) => {
                self.delivered.fetch_add(1, Relaxed);
                self.delivered_bytes
                    .fetch_add(m.payload_len() as u64, Relaxed);
            }
            Err((e, m)) => {
                let code = e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail);
                let message = Pending {
                    value: m.payload().unwrap_or(&[]).to_vec(),
                    key: m.key().map(<[u8]>::to_vec),
                };
                if let Ok(mut f) = self.failed.lock() {
                    f.push(FailedDelivery { code, message });
                }
            }
        }
    }
}
