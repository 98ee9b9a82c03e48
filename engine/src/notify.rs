//! Telling systemd how the service is doing (`Type=notify`), through the
//! `sd-notify` crate: `READY=1` once every listener is bound and the writer
//! has its files open, `STATUS=` lines that `systemctl status` shows, and
//! `STOPPING=1` when a signal starts the drain.
//!
//! Without `NOTIFY_SOCKET` (started by hand, by a test, or by another
//! supervisor) every function here does nothing. A failed send is logged at
//! debug level and otherwise ignored: systemd's view of the service must
//! never stop the service.
//!
//! Control plane only: called from the runtime's signal loop, never from a
//! shard.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::stats::Stats;

/// How often [`tick`] refreshes the status line: often enough for an
/// operator running `systemctl status`, rare enough to cost nothing.
pub const STATUS_INTERVAL_MS: u64 = 10_000;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        log::debug!("sd_notify: {e}");
    }
}

/// The service is up: listeners bound, writer running. `status` says what it serves.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A free-form status line for `systemctl status`.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// A signal arrived: the service is draining and will exit.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining connections, then flushing"),
    ]);
}

/// One watchdog ping. The unit sets no `WatchdogSec=` yet: a ping from the
/// control loop would only prove the control loop alive, not the shards
/// (see packaging/README.md).
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The status line [`tick`] sends: what an operator checks first.
pub fn status_line(stats: &Stats) -> String {
    let active: i64 = stats
        .sources
        .iter()
        .map(|s| {
            s.connections_active
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    format!(
        "serving: {} connections open, {} messages received, {} written",
        active.max(0),
        stats.total_received(),
        stats.total_written()
    )
}

/// When [`tick`] last sent a status; `None` until the first one.
static LAST_STATUS: Mutex<Option<Instant>> = Mutex::new(None);

/// Called on every turn of the control loop; refreshes the status line at
/// most once per [`STATUS_INTERVAL_MS`], and only under systemd.
pub fn tick(stats: &Stats) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let now = Instant::now();
    let Ok(mut last) = LAST_STATUS.lock() else {
        return;
    };
    if last.is_some_and(|t| now.duration_since(t) < Duration::from_millis(STATUS_INTERVAL_MS)) {
        return;
    }
    *last = Some(now);
    drop(last);
    status(&status_line(stats));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_sums_every_source() {
        let stats = Stats::new(vec!["a".into(), "b".into()]);
        use std::sync::atomic::Ordering::Relaxed;
        stats.sources[0].connections_active.store(2, Relaxed);
        stats.sources[1].connections_active.store(3, Relaxed);
        stats.sources[1].messages_received.store(7, Relaxed);
        stats.sources[0].messages_written.store(5, Relaxed);
        assert_eq!(
            status_line(&stats),
            "serving: 5 connections open, 7 messages received, 5 written"
        );
    }

    /// Without NOTIFY_SOCKET (as under `cargo test`) nothing is sent and nothing fails.
    #[test]
    fn without_notify_socket_every_call_is_a_no_op() {
        if std::env::var_os("NOTIFY_SOCKET").is_some() {
            return;
        }
        ready("x");
        status("x");
        stopping();
        watchdog();
        tick(&Stats::new(vec![]));
    }
}
