//! Counters shared between workers and the reporting thread, latency
//! summaries, and the progress display (indicatif on a terminal, one plain
//! line per second otherwise).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

/// Per-worker counters the main thread reads for progress. Workers add
/// once per batch, so the atomics are off the per-message path.
#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub handshakes: AtomicU64,
    pub established: AtomicU64,
    pub errors: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, v: u64) {
        if v > 0 {
            c.fetch_add(v, Ordering::Relaxed);
        }
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Latency histogram in nanoseconds: 1 ns to 1 hour, 3 significant digits.
pub fn new_latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static histogram bounds are valid")
}

#[derive(Clone, Copy, Debug, Default)]
pub struct LatencyUs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub count: u64,
}

pub fn latency_us(h: &Histogram<u64>) -> LatencyUs {
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    LatencyUs {
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        max: h.max() as f64 / 1000.0,
        count: h.len(),
    }
}

/// 3012345.6 -> "3.01M".
pub fn human(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Progress on stderr: a bar on a terminal, else a line per second.
pub struct ProgressView {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    last_line_s: u64,
    last_sent: u64,
    last_elapsed_s: f64,
}

impl ProgressView {
    pub fn new(quiet: bool, total_s: f64) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new((total_s * 10.0).max(1.0) as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        ProgressView {
            bar,
            quiet,
            last_line_s: 0,
            last_sent: 0,
            last_elapsed_s: 0.0,
        }
    }

    /// `what` names the unit counted (messages, handshakes).
    pub fn update(&mut self, elapsed_s: f64, done: u64, what: &str, established: u64, errors: u64) {
        if self.quiet {
            return;
        }
        let dt = elapsed_s - self.last_elapsed_s;
        if let Some(bar) = &self.bar {
            if dt >= 0.2 {
                let rate = (done - self.last_sent) as f64 / dt;
                bar.set_position((elapsed_s * 10.0) as u64);
                bar.set_message(format!(
                    "{} {what} ({}/s) conns={established} errors={errors}",
                    human(done as f64),
                    human(rate)
                ));
                self.last_sent = done;
                self.last_elapsed_s = elapsed_s;
            }
            return;
        }
        let whole_s = elapsed_s as u64;
        if whole_s > self.last_line_s && dt > 0.0 {
            let rate = (done - self.last_sent) as f64 / dt;
            eprintln!(
                "loadgen: t={elapsed_s:.1}s {what}={done} rate={}/s conns={established} errors={errors}",
                human(rate)
            );
            self.last_line_s = whole_s;
            self.last_sent = done;
            self.last_elapsed_s = elapsed_s;
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_in_microseconds() {
        let mut h = new_latency_histogram();
        for i in 1..=1000u64 {
            h.record(i * 1000).unwrap();
        }
        let l = latency_us(&h);
        assert!((l.p50 - 500.0).abs() < 1.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() < 1.0, "{l:?}");
        assert!((l.max - 1000.0).abs() < 1.0, "{l:?}");
        assert_eq!(l.count, 1000);
    }

    #[test]
    fn human_numbers() {
        assert_eq!(human(3_012_345.6), "3.01M");
        assert_eq!(human(240_000.0), "240.0k");
        assert_eq!(human(999.0), "999");
    }
}
