//! `type = "kafka"`: the writer's rounds go to Apache Kafka through
//! librdkafka (the `rdkafka` crate, built from its bundled source).
//!
//! - [`settings`]: config keys to librdkafka properties (pure);
//! - [`ledger`]: what is in flight or waits for a retry (pure);
//! - [`failure`]: why a delivery failed, its label and hint;
//! - [`context`]: the client callbacks (delivery reports, client errors);
//! - [`destination`]: the writer-side loop that produces, waits and counts;
//! - [`stall`]: the watchdog that reports a producer stalled while the
//!   brokers answer (pure).

pub mod context;
pub mod destination;
pub mod failure;
pub mod ledger;
pub mod settings;
pub mod stall;

pub use destination::KafkaDestination;
