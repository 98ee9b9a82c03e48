//! The producer settings every engine is given in the kafka rows, so that
//! each does the same work per message. All three engines produce through
//! librdkafka (ringest the `rdkafka` crate's bundled 2.12; syslog-ng's
//! `kafka-c` and rsyslog's `omkafka` Debian's librdkafka1 2.0.2), so the
//! same librdkafka properties mean the same thing in each:
//!
//! - `acks=all` with the idempotent producer: ringest's `acks = "all"`
//!   turns idempotence on; the peers get `enable.idempotence=true`, which
//!   librdkafka 2.0.2 supports (it lowers max.in.flight to 5 itself).
//! - No compression (each engine's default): the broker stores and the
//!   table's bytes per message are the message bytes themselves.
//! - `linger.ms=5` (ringest's default and librdkafka's since 1.5) and
//!   `batch.size=1000000` (librdkafka's default), set explicitly in every
//!   engine so that a change of default cannot skew a row.
//! - The producer queue: not matched, each engine gets the bound it runs
//!   best with. It bounds memory, not the work per message, and the
//!   engines answer a full queue differently: ringest waits for delivery
//!   reports; syslog-ng's kafka-c logs "Local: Queue full" and backs off,
//!   and then sends far less (with 16 MiB for every engine, session 12:
//!   syslog-ng's msg/s dropped to 231k–561k with the machine 47–86% busy,
//!   `bench/results/2026-11-30-s12/kafka-q16/`). So ringest gets its
//!   `producer_queue_max_bytes` default (16 MiB, which costs it less CPU
//!   per message than 64: engine/src/config/kafka.rs), and the peers
//!   64 MiB of `queue.buffering.max.kbytes` (what every earlier session's
//!   rows gave all three), with a message bound (10M) that 300-byte
//!   messages never reach first.
//! - `message.timeout.ms=0`: no engine lets librdkafka drop a message that
//!   took too long (ringest sets this itself).
//! - No key: librdkafka's default partitioner spreads the messages over the
//!   partitions in every engine.
//! - `max.in.flight.requests.per.connection=2` (ringest's default, given to
//!   ringest too through its `[destination.properties]`): with the
//!   idempotent producer's 5, librdkafka's broker thread polls its socket
//!   with a 0 ms timeout while a backlog waits for the partitions' in-flight
//!   requests, in 2.0.2 and 2.12 alike (engine/src/writer/kafka/settings.rs
//!   has the source lines). Set it to 5 here to compare.
//!
//! The message value is the same bytes in every engine: the whole frame
//! as received, without framing and without a newline (ringest's raw
//! value; syslog-ng `flags(no-parse)` and `message("${MSG}")`; rsyslog
//! `%rawmsg%`).

pub const ACKS: &str = "all";
pub const COMPRESSION: &str = "none";
pub const LINGER_MS: u32 = 5;
pub const BATCH_BYTES: u32 = 1_000_000;
/// ringest's queue: its `producer_queue_max_bytes` default, written
/// into its config all the same so that the run's config shows it.
pub fn ringest_producer_queue_max_bytes() -> u64 {
    ringest::config::kafka::defaults::producer_queue_max_bytes()
}
/// The peers' `queue.buffering.max.kbytes`, in bytes (see above).
pub const PEER_PRODUCER_QUEUE_MAX_BYTES: u64 = 64 << 20;
pub const PRODUCER_QUEUE_MAX_MESSAGES: u32 = 10_000_000;
pub const MAX_IN_FLIGHT_REQUESTS: u32 = 2;

/// The librdkafka properties the peers are given (syslog-ng `config()`,
/// rsyslog `confParam`), the same values ringest's keys set.
pub fn peer_properties() -> Vec<(&'static str, String)> {
    vec![
        ("acks", ACKS.into()),
        ("enable.idempotence", "true".into()),
        ("compression.type", COMPRESSION.into()),
        ("linger.ms", LINGER_MS.to_string()),
        ("batch.size", BATCH_BYTES.to_string()),
        (
            "queue.buffering.max.kbytes",
            (PEER_PRODUCER_QUEUE_MAX_BYTES >> 10).to_string(),
        ),
        (
            "queue.buffering.max.messages",
            PRODUCER_QUEUE_MAX_MESSAGES.to_string(),
        ),
        ("message.timeout.ms", "0".into()),
        (IN_FLIGHT, MAX_IN_FLIGHT_REQUESTS.to_string()),
    ]
}

const IN_FLIGHT: &str = "max.in.flight.requests.per.connection";

/// The librdkafka properties ringest is given in its
/// `[destination.properties]`: those it has no key for.
pub fn ringest_properties() -> Vec<(&'static str, String)> {
    vec![(IN_FLIGHT, MAX_IN_FLIGHT_REQUESTS.to_string())]
}

/// ringest's destination keys for the same settings (its kafka
/// destination owns these properties and refuses them in
/// `[destination.properties]`).
pub fn ringest_keys() -> Vec<(&'static str, String)> {
    vec![
        ("acks", format!("\"{ACKS}\"")),
        ("compression", format!("\"{COMPRESSION}\"")),
        ("linger_ms", LINGER_MS.to_string()),
        ("batch_bytes", BATCH_BYTES.to_string()),
        (
            "producer_queue_max_bytes",
            ringest_producer_queue_max_bytes().to_string(),
        ),
    ]
}
