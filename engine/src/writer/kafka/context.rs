//! The client context the `rdkafka` crate requires. ringest reads the
//! producer's events itself ([`native`](super::native): delivery reports,
//! client errors, statistics and log lines, on the writer thread); the
//! crate calls these only from its own `poll`, which ringest never calls
//! (a producer's drop purges and flushes without polling).

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryResult, ProducerContext};

pub struct ClientLog;

impl ClientContext for ClientLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log::debug!("librdkafka {level:?} {fac}: {message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // The destination counts and logs client errors from their events.
        log::debug!("librdkafka error: {error}: {reason}");
    }
}

impl ProducerContext for ClientLog {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}
