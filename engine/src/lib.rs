//! ringest: syslog over TLS on per-core io_uring shards, written to files in batches.
//!
//! Data path: `shard` (io_uring accept/recv) → `conn` (TLS + `framing`, no IO)
//! → `batch` (lock-free rings, bounded in batches and, by `queue_delay`, in
//! time) → `writer` (a pool; shard i's ring to writer i % writers; one writev
//! per round).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod anon_map;
pub mod batch;
pub mod config;
pub mod conn;
pub mod default_config;
pub mod fd_limit;
pub mod framing;
pub mod ktls;
pub mod logger;
pub mod notify;
pub mod parse;
pub mod plan;
pub mod process_metrics;
pub mod queue_delay;
pub mod ratelog;
pub mod record;
pub mod runtime;
pub mod shard;
pub mod stats;
pub mod stats_http;
pub mod tls;
pub mod writer;
