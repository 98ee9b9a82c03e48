//! The stalled-producer watchdog, without IO.
//!
//! A producer that holds messages gets delivery reports as the brokers
//! acknowledge them. When none comes for `delivery_stall_ms`, either the
//! brokers are away (an outage: the client reports it, and the destination
//! logs it once) or they answer and nothing is delivered: stalled, the
//! client stuck (seen once after a broker restart in the outage test: the
//! queue stayed full, no report came, and the broker answered everyone
//! else) or retrying what the brokers refuse without a final error. The
//! watchdog tells the two apart by asking the destination to probe the
//! brokers (a metadata request) and reports a stall only when they answer,
//! once per stall, and its end.

use std::fmt;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Watchdog {
    limit: Duration,
    /// The last delivery report, or the last time the producer held nothing.
    progress_at: Instant,
    /// No probe before this: a limit after progress, or after the last probe.
    probe_after: Instant,
    /// A stall was reported and has not ended.
    stalled: bool,
}

/// What the destination does after [`Watchdog::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Fine,
    /// No report for the limit: ask the brokers whether they answer, then
    /// call [`Watchdog::probed`].
    Probe,
    /// Reports came again after a reported stall of this long.
    Resumed(Duration),
}

impl Watchdog {
    pub fn new(limit: Duration, now: Instant) -> Watchdog {
        Watchdog {
            limit,
            progress_at: now,
            probe_after: now + limit,
            stalled: false,
        }
    }

    /// After serving the producer's callbacks: `holding`, whether the
    /// producer holds messages (queued or in flight); `reported`, whether a
    /// delivery report (success or failure) was just served.
    pub fn observe(&mut self, now: Instant, holding: bool, reported: bool) -> Check {
        if reported || !holding {
            let silent = now.saturating_duration_since(self.progress_at);
            self.progress_at = now;
            self.probe_after = now + self.limit;
            if std::mem::take(&mut self.stalled) {
                return Check::Resumed(silent);
            }
            return Check::Fine;
        }
        if self.stalled || now < self.probe_after {
            return Check::Fine;
        }
        Check::Probe
    }

    /// The probe's outcome. `Some(silent)`: the brokers answer while no
    /// report came for `silent`, a stall to report (once). `None`: they do
    /// not answer (an outage, reported as such); probe again a limit later.
    pub fn probed(&mut self, now: Instant, brokers_answer: bool) -> Option<Duration> {
        self.probe_after = now + self.limit;
        if !brokers_answer {
            return None;
        }
        self.stalled = true;
        Some(now.saturating_duration_since(self.progress_at))
    }
}

/// A stalled producer, as logged (Display) and counted
/// (`ringest_producer_stalls_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub destination: String,
    pub topic: String,
    /// Messages the producer holds (queued and in flight).
    pub holding_messages: u64,
    pub silent: Duration,
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "destination {}: kafka producer stalled: it holds {} messages for topic {} and got no delivery report for {:.1} s although the brokers answer: the client is stuck, or it keeps retrying requests the brokers refuse without a final error (such as fewer in-sync replicas than min.insync.replicas); messages stay kept (librdkafka's own lines: \"debug\" = \"broker,topic,msg\" in [destination.properties])",
            self.destination,
            self.holding_messages,
            self.topic,
            self.silent.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn reports_keep_it_quiet_however_long_the_producer_holds_messages() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(LIMIT, t0);
        for i in 1..100 {
            assert_eq!(w.observe(t0 + s(i), true, true), Check::Fine);
        }
    }

    #[test]
    fn an_empty_producer_is_never_stalled() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(LIMIT, t0);
        assert_eq!(w.observe(t0 + s(60), false, false), Check::Fine);
        assert_eq!(w.observe(t0 + s(69), true, false), Check::Fine);
        assert_eq!(
            w.observe(t0 + s(70), true, false),
            Check::Probe,
            "a limit after it last held nothing"
        );
    }

    #[test]
    fn silent_brokers_are_an_outage_not_a_stall_and_are_probed_again_a_limit_later() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(LIMIT, t0);
        assert_eq!(w.observe(t0 + s(9), true, false), Check::Fine);
        assert_eq!(w.observe(t0 + s(10), true, false), Check::Probe);
        assert_eq!(w.probed(t0 + s(11), false), None);
        assert_eq!(w.observe(t0 + s(20), true, false), Check::Fine);
        assert_eq!(w.observe(t0 + s(21), true, false), Check::Probe);
        // The brokers are back but the producer still sends nothing.
        assert_eq!(w.probed(t0 + s(21), true), Some(s(21)));
    }

    #[test]
    fn a_stall_is_reported_once_and_its_end_once() {
        let t0 = Instant::now();
        let mut w = Watchdog::new(LIMIT, t0);
        assert_eq!(w.observe(t0 + s(10), true, false), Check::Probe);
        assert_eq!(w.probed(t0 + s(10), true), Some(s(10)));
        for i in 11..200 {
            assert_eq!(
                w.observe(t0 + s(i), true, false),
                Check::Fine,
                "not again while it lasts"
            );
        }
        assert_eq!(w.observe(t0 + s(200), true, true), Check::Resumed(s(200)));
        assert_eq!(w.observe(t0 + s(201), true, true), Check::Fine);
        assert_eq!(
            w.observe(t0 + s(211), true, false),
            Check::Probe,
            "a new stall is watched for"
        );
    }

    #[test]
    fn the_log_line_names_the_destination_what_it_holds_and_how_to_see_why() {
        let line = Stall {
            destination: "k".into(),
            topic: "logs".into(),
            holding_messages: 3_000,
            silent: Duration::from_millis(12_500),
        }
        .to_string();
        assert!(
            line.starts_with("destination k: kafka producer stalled"),
            "{line}"
        );
        assert!(line.contains("3000 messages for topic logs"), "{line}");
        assert!(line.contains("12.5 s"), "{line}");
        assert!(line.contains("brokers answer"), "{line}");
        assert!(line.contains("debug"), "{line}");
    }
}
