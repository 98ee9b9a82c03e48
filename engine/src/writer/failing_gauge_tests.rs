//! `ringest_destination_failing` with two writers of one destination, each
//! on its own disk in memory ([`super::fake`]): every writer publishes its
//! share of the gauge ([`crate::stats::publish_share`]), so the sum counts
//! the writers whose writing fails and the metric shows 1 until the last of
//! them writes again.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fake::FakeFs;
use super::forward::ForwardPlans;
use super::tests::{batch, config};
use super::{Writer, WriterControl};
use crate::batch::{Ring, WriterWaker};
use crate::config::Config;
use crate::stats::Stats;

/// A writer of `cfg` on `fs` with one batch waiting in its ring, taking one
/// round on a thread of its own: the round retries until the disk takes
/// it. The receiver gets `step`'s result once it has.
fn one_round(fs: &FakeFs, cfg: &Config, stats: &Arc<Stats>) -> Receiver<bool> {
    let ring = Arc::new(Ring::new(4));
    let mut writer = Writer::with_fs(
        fs.clone(),
        cfg,
        &ForwardPlans::default(),
        vec![Arc::clone(&ring)],
        Arc::clone(stats),
        Arc::new(WriterWaker::new()),
        Arc::new(WriterControl::default()),
    )
    .expect("writer");
    ring.full.push(batch(1, &["m"])).expect("room");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(writer.step());
    });
    rx
}

/// The gauge's sum (writers failing) and the line `/metrics` shows.
fn gauge(stats: &Stats) -> (u64, String) {
    let shown = stats
        .render_prometheus()
        .lines()
        .find_map(|l| l.strip_prefix("ringest_destination_failing{destination=\"d\"} "))
        .expect("gauge rendered")
        .to_string();
    (stats.destinations[0].failing.load(Relaxed), shown)
}

/// Waits (bounded) until `want` writers fail, then checks the metric.
fn expect_failing(stats: &Stats, want: u64, shown: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while gauge(stats).0 != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(gauge(stats), (want, shown.to_string()));
}

/// Writer a fails (and keeps failing through retries), then b as well;
/// then a writes again while b still fails, then b.
#[test]
fn each_writer_publishes_its_share_of_the_failing_gauge() {
    let cfg = config("raw", "never");
    let stats = Arc::new(Stats::new(vec!["s".into()]).with_destinations(vec!["d".into()]));
    let (disk_a, disk_b) = (FakeFs::default(), FakeFs::default());
    disk_a.disk().write_fails_forever = Some(libc::ENOSPC);
    let a = one_round(&disk_a, &cfg, &stats);
    expect_failing(&stats, 1, "1");
    // Retries at 10, 20, 40 and 80 ms: the same outage, counted once.
    std::thread::sleep(Duration::from_millis(200));
    assert!(disk_a.disk().writes >= 3, "a retried");
    expect_failing(&stats, 1, "1");

    disk_b.disk().write_fails_forever = Some(libc::EIO);
    let b = one_round(&disk_b, &cfg, &stats);
    expect_failing(&stats, 2, "1");

    disk_a.disk().write_fails_forever = None;
    assert_eq!(a.recv_timeout(Duration::from_secs(5)), Ok(true), "a wrote");
    expect_failing(&stats, 1, "1");

    disk_b.disk().write_fails_forever = None;
    assert_eq!(b.recv_timeout(Duration::from_secs(5)), Ok(true), "b wrote");
    expect_failing(&stats, 0, "0");
    assert_eq!(stats.sources[0].messages_written.load(Relaxed), 2);
}
