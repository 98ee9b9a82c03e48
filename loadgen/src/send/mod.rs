//! `loadgen send`: plans the run, runs one event loop per worker thread over
//! its share of the connections, and reports.
//!
//! Each worker owns its connections outright (no locks on the data path). Its
//! loop: start connects (paced by --connect-rate, at most --max-pending in
//! flight), give every writable sending connection a turn of at most
//! `TURN_BYTES`, then wait in epoll for sockets (edge-triggered), the rate
//! timer, or a deadline sweep. Counters go to the reporting thread once per
//! batch.
//!
//! | file        | role |
//! |-------------|------|
//! | `plan.rs`   | everything fixed for the run, from the arguments |
//! | `worker.rs` | one worker thread's event loop over its connections |
//! | `report.rs` | the final report: counts, latency, JSON |

mod plan;
mod report;
mod worker;

use plan::{plan, Plan};
use report::report;
use worker::{run_worker, WorkerResult};

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use serde_json::json;

use crate::cli::{SendArgs, DURATION_DEFAULT};
use crate::congestion::Congestion;
use crate::conn::{ClientConn, ConnError, Ctx, Dial, Mode, Phase, Progress};
use crate::message::{
    self, ConnEncoder, LineTemplate, MessageSpec, SEQ_DIGITS_MAX, SIZE_MAX_BYTES,
    TLS_PLAINTEXT_MAX_BYTES,
};
use crate::schedule::{Schedule, Tick};
use crate::stats::{self, Counters, ProgressView};
use crate::sys::{self, Epoll, Timer};
use crate::tls;

/// Bytes a connection writes per turn before the next connection's turn.
const TURN_BYTES: usize = 1 << 20;
/// Deadline sweep period.
const SWEEP_NS: u64 = 20_000_000;
/// Longest epoll wait, so stop requests are seen promptly.
const WAIT_MS_MAX: i32 = 100;
/// Bound for a --count run without --duration.
const COUNT_ONLY_DURATION: Duration = Duration::from_secs(3600);
const TIMER_TOKEN: u64 = u64::MAX;
const CONNECTIONS_MAX: u32 = 1_000_000;

/// `n` spread over `parts`: the first `n % parts` get one more.
pub fn share(n: u64, parts: u32, i: u32) -> u64 {
    let parts = u64::from(parts.max(1));
    n / parts + u64::from(u64::from(i) < n % parts)
}

pub fn run(args: SendArgs) -> i32 {
    sys::install_stop_signals();
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("loadgen send: {e}");
            return 2;
        }
    };
    let plan = Arc::new(plan);
    let what = match plan.mode {
        Mode::Stream => "sent",
        Mode::HandshakeOnly => "handshakes",
        Mode::HoldIdle => "established",
    };
    let cpu0 = sys::cpu_seconds();
    let counters: Vec<Arc<Counters>> = (0..plan.threads).map(|_| Arc::default()).collect();
    let mut handles = Vec::new();
    for t in 0..plan.threads {
        let plan = plan.clone();
        let c = counters[t as usize].clone();
        let h = std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || run_worker(&plan, t, &c));
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("loadgen send: cannot start thread: {e}");
                return 2;
            }
        }
    }
    let total_s = (plan.end_ns - plan.start_ns) as f64 / 1e9;
    let mut view = ProgressView::new(args.quiet, total_s);
    // Poll the workers until all are done; they end by themselves before
    // hard_end_ns, so this loop is bounded too.
    let hard_end = plan.hard_end_ns() + 1_000_000_000;
    while !handles.iter().all(|h| h.is_finished()) && sys::mono_ns() < hard_end {
        std::thread::sleep(Duration::from_millis(100));
        let sum = |f: fn(&Counters) -> u64| counters.iter().map(|c| f(c)).sum::<u64>();
        let done = match plan.mode {
            Mode::Stream => sum(|c| Counters::get(&c.sent)),
            Mode::HandshakeOnly => sum(|c| Counters::get(&c.handshakes)),
            Mode::HoldIdle => sum(|c| Counters::get(&c.established)),
        };
        let elapsed = (sys::mono_ns().saturating_sub(plan.start_ns)) as f64 / 1e9;
        view.update(
            elapsed,
            done,
            what,
            sum(|c| Counters::get(&c.established)),
            sum(|c| Counters::get(&c.errors)),
        );
    }
    view.finish();
    let mut results = Vec::new();
    for h in handles {
        match h.join() {
            Ok(r) => results.push(r),
            Err(_) => {
                eprintln!("loadgen send: a worker thread panicked");
                return 2;
            }
        }
    }
    let end_ns = sys::mono_ns();
    let cpu_s = sys::cpu_seconds() - cpu0;
    report(&args, &plan, results, cpu_s, end_ns)
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn count_is_spread_like_verify_expects() {
        let parts: Vec<u64> = (0..8).map(|i| share(100, 8, i)).collect();
        assert_eq!(parts, vec![13, 13, 13, 13, 12, 12, 12, 12]);
        assert_eq!((0..3).map(|i| share(2, 3, i)).sum::<u64>(), 2);
    }
}
