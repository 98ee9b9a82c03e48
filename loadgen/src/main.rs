//! loadgen: a syslog-over-TLS load generator ("a faster loggen"), a minimal
//! sink to send into, and a delivery verifier. See README.md.
//!
//! Layout, following one message:
//!   cli.rs       the command line (a contract: names are relied upon)
//!   message.rs   encoding: header, marker, padding (sans-IO)
//!   schedule.rs  fixed-rate schedule, latency from intended time (sans-IO)
//!   tls.rs       rustls client/server configuration
//!   tls13.rs     loadgen's TLS 1.3 record layer for the data phase (sans-IO)
//!   conn/        one sending connection's state machine
//!   send.rs      plan, per-thread event loops, report
//!   sink/        receiving server; framing.rs its frame decoder (sans-IO)
//!   verify/      delivery check; jsonline.rs its JSON field reader (sans-IO)
//!   stats.rs     counters, latency summaries, progress
//!   sys.rs       epoll, timerfd, getrusage... (all the unsafe code)
#![deny(unsafe_op_in_unsafe_fn)]

mod addr;
mod cli;
mod congestion;
mod conn;
mod framing;
mod jsonline;
mod message;
mod schedule;
mod send;
mod sink;
mod stats;
mod sys;
mod tls;
mod tls13;
mod verify;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = cli::Cli::parse();
    let code = match cli.command {
        cli::Command::Send(a) => send::run(*a),
        cli::Command::Sink(a) => sink::run(a),
        cli::Command::Verify(a) => verify::run(a),
    };
    std::process::exit(code);
}
