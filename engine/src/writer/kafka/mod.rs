//! `type = "kafka"`: the writer's rounds go to Apache Kafka through
//! librdkafka (the `rdkafka` crate, built from its bundled source).
//!
//! - [`settings`]: config keys to librdkafka properties (pure);
//! - [`round`]: a round's messages as records and batches (pure);
//! - [`partition`]: a batch's records grouped by partition, as librdkafka's
//!   partitioner would place them (pure);
//! - [`layout`]: the topic's partition count, kept current by a
//!   control-plane thread;
//! - [`ledger`]: what is in flight or waits for a retry (pure);
//! - [`failure`]: why a delivery failed, its label and hint;
//! - [`native`]: the data path's librdkafka calls (batch produce, reading
//!   the delivery reports), the destination's only unsafe code;
//! - [`context`]: the client context the crate requires;
//! - [`destination`]: the writer-side loop that produces, waits and counts;
//! - [`stall`]: the watchdog that reports a producer stalled while the
//!   brokers answer (pure).

pub mod context;
pub mod destination;
pub mod failure;
pub mod layout;
pub mod ledger;
pub mod native;
pub mod partition;
pub mod round;
pub mod settings;
pub mod stall;

pub use destination::KafkaDestination;
