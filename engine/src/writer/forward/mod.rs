//! `type = "forward"`: syslog over TLS (RFC 5425) or TCP (RFC 6587) to
//! upstream servers, from the writer thread.
//!
//! - `plan.rs`: the settings, built once per config load (server list, TLS
//!   client config) and handed to every writer.
//! - `frame.rs`: framing, and the `tls@32473` identity element.
//! - `session.rs`: sans-IO queue of one upstream connection: what is sent,
//!   what is held until the server confirms, what is put back after a failure.
//! - `backoff.rs`, `failure.rs`: reconnect waits, and why a connection failed.
//! - `link.rs`: the thin blocking socket + rustls driver, which hands the
//!   keys to the kernel after the handshake where `ktls` says so;
//!   `offload.rs`: what a record from the server means under kTLS (sans-IO).
//! - `disk_buffer.rs`: `[destination.disk_buffer]`, segment files replayed in
//!   order; `buffered.rs`: how a destination with one uses it.
//! - `destination.rs`: the writer's view: deliver a round, retry until
//!   delivered, give up only past shutdown's give-up instant.

mod addr;
mod backoff;
mod buffered;
mod destination;
mod disk_buffer;
mod failure;
mod frame;
mod link;
mod offload;
mod plan;
mod session;

pub use addr::ServerAddr;
pub use destination::{unix_ms, ForwardDestination};
pub use failure::UpstreamFailure;
pub use frame::IDENTITY_SD_ID;
pub use plan::{ForwardPlan, ForwardPlans};
