//! Writer-level tests: rounds go through a disk in memory that fails on
//! demand ([`super::fake`]), and the test checks the bytes that land, the
//! counters and the report.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fake::{FakeFs, WriteFault};
use super::forward::ForwardPlans;
use super::pool::{self, GroupRings, WriterPool};
use super::report::WriterReport;
use super::{Writer, WriterControl};
use crate::batch::{Batch, ConnMeta, Ring, WriterWaker};
use crate::config::Config;
use crate::stats::Stats;

const OUT: &str = "/fake/data/out.log";

pub(super) fn config(format: &str, fsync: &str) -> Config {
    let text = format!(
        r#"drain_timeout_ms = 0
[[source]]
name = "s"
listen = "127.0.0.1:1"
transport = "tcp"

[[destination]]
name = "d"
type = "file"
path = "{OUT}"
format = "{format}"
fsync = "{fsync}"
"#
    );
    Config::from_toml(&text, Path::new("/fake/ringest.toml"), Path::new("/fake")).expect("config")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(super) fn batch(received_unix_ns: u64, msgs: &[&str]) -> Batch {
    let meta = Arc::new(ConnMeta {
        source: 0,
        peer: "127.0.0.1:5000".parse().expect("addr"),
        identity: None,
    });
    let mut b = Batch::with_capacity(4096);
    b.begin_run(&meta, received_unix_ns);
    for m in msgs {
        b.push(m.as_bytes());
    }
    b
}

pub(super) struct Rig {
    pub fs: FakeFs,
    pub ring: Arc<Ring>,
    pub stats: Arc<Stats>,
    pub control: Arc<WriterControl>,
    pub writer: Writer<FakeFs>,
}

/// A writer over `fs` for `cfg`, fed by one ring (source 0).
pub(super) fn rig_on(fs: FakeFs, cfg: &Config) -> Rig {
    let ring = Arc::new(Ring::new(1024));
    let sources = cfg.sources.iter().map(|s| s.name.clone()).collect();
    let dests = cfg.destinations.iter().map(|d| d.name.clone()).collect();
    let stats = Arc::new(Stats::new(sources).with_destinations(dests));
    let control = Arc::new(WriterControl::default());
    let writer = Writer::with_fs(
        fs.clone(),
        cfg,
        &ForwardPlans::default(),
        vec![Arc::clone(&ring)],
        Arc::clone(&stats),
        Arc::new(WriterWaker::new()),
        Arc::clone(&control),
    )
    .expect("writer");
    Rig {
        fs,
        ring,
        stats,
        control,
        writer,
    }
}

fn rig(format: &str, fsync: &str) -> Rig {
    rig_on(FakeFs::default(), &config(format, fsync))
}

impl Rig {
    fn push(&self, b: Batch) {
        self.ring.full.push(b).expect("ring has room");
    }

    /// The output file, as text so a failed assertion is readable.
    fn out(&self) -> String {
        text(&self.fs.content(Path::new(OUT)))
    }

    fn write_errors(&self, reason: &str) -> u64 {
        self.stats.destinations[0].write_errors.get(reason)
    }
}

/// Closes the ring and runs the writer to the end on its own thread; fails
/// the test (instead of hanging it) if the writer does not finish in `limit`.
pub(super) fn run_within(rig: Rig, limit: Duration) -> (WriterReport, Duration) {
    rig.ring.closed.store(true, Relaxed);
    let start = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = rig.writer;
    std::thread::spawn(move || {
        let _ = tx.send(writer.run());
    });
    match rx.recv_timeout(limit) {
        Ok(report) => (report, start.elapsed()),
        Err(_) => panic!("the writer did not finish within {limit:?}"),
    }
}

/// The output a disk that never fails gets for the same batches.
fn clean_output(format: &str, batches: impl Fn() -> Vec<Batch>) -> Vec<u8> {
    let r = rig(format, "batch");
    for b in batches() {
        r.push(b);
    }
    let fs = r.fs.clone();
    let (report, _) = run_within(r, Duration::from_secs(5));
    assert!(report.is_clean());
    fs.content(Path::new(OUT))
}

fn two_batches() -> Vec<Batch> {
    vec![
        batch(1, &["first message", "second message"]),
        batch(2, &["third message", "fourth \"quoted\" message"]),
    ]
}

#[test]
fn a_healthy_disk_gets_every_line_once_and_a_clean_report() {
    let r = rig("raw", "batch");
    for b in two_batches() {
        r.push(b);
    }
    let fs = r.fs.clone();
    let stats = Arc::clone(&r.stats);
    let (report, _) = run_within(r, Duration::from_secs(5));
    assert!(report.is_clean(), "{report}");
    assert_eq!(
        text(&fs.content(Path::new(OUT))),
        "first message\nsecond message\nthird message\nfourth \"quoted\" message\n"
    );
    assert_eq!(stats.sources[0].messages_written.load(Relaxed), 4);
}

#[test]
fn short_write_then_enospc_resumes_at_the_byte_where_it_stopped() {
    let mut r = rig("raw", "batch");
    for b in two_batches() {
        r.push(b);
    }
    // 20 bytes land (the first line and 6 bytes of the second), then the disk
    // is full twice, then there is space again.
    r.fs.disk().write_faults.extend([
        WriteFault::Short(20),
        WriteFault::Fail(libc::ENOSPC),
        WriteFault::Fail(libc::ENOSPC),
    ]);
    assert!(r.writer.step());
    assert_eq!(
        r.out(),
        "first message\nsecond message\nthird message\nfourth \"quoted\" message\n",
        "no line torn, glued or written twice"
    );
    assert_eq!(r.write_errors("no_space"), 2);
    assert_eq!(r.stats.destinations[0].failing.load(Relaxed), 0, "resumed");
    assert_eq!(r.stats.sources[0].messages_written.load(Relaxed), 4);
}

#[test]
fn json_short_write_then_eio_resumes_mid_line() {
    let want = clean_output("json", two_batches);
    let mut r = rig("json", "batch");
    for b in two_batches() {
        r.push(b);
    }
    // Cut inside the second JSON line, then an I/O error, then success.
    r.fs.disk().write_faults.extend([
        WriteFault::Short(want.len() / 2 + 3),
        WriteFault::Fail(libc::EIO),
    ]);
    assert!(r.writer.step());
    assert_eq!(r.out(), text(&want));
    assert_eq!(r.write_errors("io"), 1);
}

#[test]
fn fsync_eio_after_a_full_write_retries_the_fsync_not_the_write() {
    let mut r = rig("raw", "batch");
    r.push(batch(1, &["a", "b", "c"]));
    r.fs.disk().sync_faults.push_back(libc::EIO);
    assert!(r.writer.step());
    assert_eq!(r.out(), "a\nb\nc\n", "the round is not written twice");
    let d = &r.stats.destinations[0];
    assert_eq!(d.fsync_errors.get("io"), 1);
    assert_eq!(
        d.unsynced_messages.load(Relaxed),
        3,
        "the retried fsync's success proves nothing about the failed one"
    );
    let (report, _) = run_within(r, Duration::from_secs(5));
    assert_eq!(report.destinations[0].unsynced_messages, 3);
    assert!(
        !report.is_clean(),
        "the exit status must not say all is well"
    );
}

#[test]
fn failed_final_fsync_reports_the_messages_that_may_not_be_on_disk() {
    // fsync = "never": the only fsync is the final one.
    let r = rig("raw", "never");
    r.push(batch(1, &["a", "b"]));
    r.push(batch(2, &["c"]));
    r.fs.disk().sync_fails_forever = Some(libc::EIO);
    let (report, _) = run_within(r, Duration::from_secs(5));
    let d = &report.destinations[0];
    assert_eq!(d.unsynced_messages, 3, "{report}");
    assert!(!report.is_clean());
    assert!(report.to_string().contains("3 messages may not be on disk"));
}

#[test]
fn failing_disk_at_shutdown_gives_up_after_the_drain_timeout_and_counts_what_was_not_written() {
    let r = rig("raw", "batch");
    // Two rounds: more batches than one round takes.
    let rounds = super::ROUND_MAX_BATCHES + 4;
    for i in 0..rounds {
        r.push(batch(i as u64, &["0123456789", "abc"]));
    }
    {
        let mut d = r.fs.disk();
        d.write_faults.push_back(WriteFault::Short(4));
        d.write_fails_forever = Some(libc::ENOSPC);
    }
    r.control.begin_shutdown(Instant::now());
    let fs = r.fs.clone();
    let stats = Arc::clone(&r.stats);
    // drain_timeout_ms = 0, so the writer gives up GIVE_UP_AFTER_DRAIN_MS after shutdown.
    let bound = Duration::from_millis(super::GIVE_UP_AFTER_DRAIN_MS);
    let (report, took) = run_within(r, bound + Duration::from_secs(3));
    assert!(
        took < bound + Duration::from_millis(1500),
        "gave up after {took:?}"
    );
    let d = &report.destinations[0];
    // 4 bytes of the first message landed: it counts as not written.
    assert_eq!(d.not_written_messages, 2 * rounds as u64, "{report}");
    assert_eq!(d.not_written_bytes, 15 * rounds as u64 - 4);
    assert_eq!(text(&fs.content(Path::new(OUT))), "0123");
    assert!(report.to_string().contains(&format!(
        "{} messages ({} bytes) not written",
        2 * rounds,
        15 * rounds - 4
    )));
    assert_eq!(stats.sources[0].messages_written.load(Relaxed), 0);
    assert_eq!(stats.destinations[0].failing.load(Relaxed), 1);
    // Nothing written, so no latency either.
    let recorded = |l: &crate::stats::Latency| l.lock().expect("histogram").len();
    assert_eq!(recorded(&stats.destinations[0].latency), 0);
    assert_eq!(recorded(&stats.latency), 0);
}

#[test]
fn torn_last_line_from_a_crash_gets_a_newline_before_the_next_message() {
    let fs = FakeFs::default();
    fs.put(Path::new(OUT), b"whole line\ntorn li");
    let mut r = rig_on(fs, &config("raw", "batch"));
    r.push(batch(1, &["next"]));
    assert!(r.writer.step());
    assert_eq!(r.out(), "whole line\ntorn li\nnext\n");
    assert_eq!(r.stats.destinations[0].torn_lines_repaired.load(Relaxed), 1);
}

#[test]
fn file_ending_in_a_newline_or_empty_is_left_as_it_is() {
    for existing in [&b""[..], b"whole line\n"] {
        let fs = FakeFs::default();
        fs.put(Path::new(OUT), existing);
        let mut r = rig_on(fs, &config("raw", "batch"));
        r.push(batch(1, &["next"]));
        assert!(r.writer.step());
        assert_eq!(r.out(), text(&[existing, b"next\n"].concat()));
        assert_eq!(r.stats.destinations[0].torn_lines_repaired.load(Relaxed), 0);
    }
}

#[test]
fn failed_reopen_after_rotation_is_retried_and_then_writes_the_new_file() {
    let mut r = rig("raw", "batch");
    let rotated = Path::new("/fake/data/out.log.1");
    r.push(batch(1, &["before rotation"]));
    assert!(r.writer.step());
    // logrotate moves the file; the first reopen fails.
    r.fs.rename(Path::new(OUT), rotated);
    r.fs.disk().open_faults.push_back(libc::EACCES);
    r.control.request_reopen();
    r.push(batch(2, &["while reopen fails"]));
    assert!(r.writer.step());
    assert_eq!(
        r.stats.destinations[0]
            .reopen_errors
            .get("permission_denied"),
        1
    );
    // No new SIGHUP: the writer retries by itself.
    let start = Instant::now();
    while r.fs.disk().opens < 3 && start.elapsed() < Duration::from_secs(5) {
        assert!(r.writer.step());
    }
    r.push(batch(3, &["after reopen"]));
    assert!(r.writer.step());
    assert_eq!(
        text(&r.fs.content(rotated)),
        "before rotation\nwhile reopen fails\n"
    );
    assert_eq!(r.out(), "after reopen\n");
}

#[test]
fn sigterm_while_already_retrying_still_gives_up_in_time() {
    let r = rig("raw", "batch");
    r.push(batch(1, &["never lands"]));
    r.fs.disk().write_fails_forever = Some(libc::EIO);
    let control = Arc::clone(&r.control);
    let stats = Arc::clone(&r.stats);
    // The writer is in its retry loop before shutdown begins.
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        control.begin_shutdown(Instant::now());
    });
    let bound = Duration::from_millis(300 + super::GIVE_UP_AFTER_DRAIN_MS);
    let (report, took) = run_within(r, bound + Duration::from_secs(3));
    stopper.join().expect("stopper");
    assert!(took < bound + Duration::from_millis(1500), "took {took:?}");
    assert_eq!(report.destinations[0].not_written_messages, 1);
    assert!(
        stats.destinations[0].write_errors.get("io") > 3,
        "retried with backoff"
    );
}

#[test]
fn writer_that_gave_up_does_not_wait_forever_for_a_shard_that_never_stops() {
    let r = rig("raw", "batch");
    r.push(batch(1, &["a", "b"]));
    r.fs.disk().write_fails_forever = Some(libc::ENOSPC);
    r.control.begin_shutdown(Instant::now());
    // The ring is never closed: its shard is stuck.
    let ring = Arc::clone(&r.ring);
    let writer = r.writer;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(writer.run());
    });
    // A batch handed over after the give-up is counted too.
    std::thread::sleep(Duration::from_millis(super::GIVE_UP_AFTER_DRAIN_MS + 500));
    ring.full.push(batch(2, &["c"])).expect("room");
    let bound = Duration::from_millis(super::GIVE_UP_AFTER_DRAIN_MS + super::SHARD_STOP_WAIT_MS);
    let report = rx
        .recv_timeout(bound + Duration::from_secs(2))
        .expect("the writer must return although a ring stays open");
    assert_eq!(report.destinations[0].not_written_messages, 3, "{report}");
}

// The pool: several writers, each with its own descriptors on the same files.

/// A pool of two writers over two shards' rings on `fs`, started.
fn pool_on(
    fs: &FakeFs,
    cfg: &Config,
) -> (WriterPool, Vec<Arc<Ring>>, Arc<Stats>, Arc<WriterControl>) {
    let stats = Arc::new(Stats::new(vec!["s".into()]).with_destinations(vec!["d".into()]));
    let control = Arc::new(WriterControl::default());
    let rings = pool::rings(2, 2, 64);
    let groups = [GroupRings::whole(cfg, rings.clone(), 2)];
    let p = start_files(fs, cfg, &groups, &stats, &control);
    (p, rings, stats, control)
}

/// The pool of `cfg`, which has no forward destination, started on `fs`.
pub(super) fn start_files(
    fs: &FakeFs,
    cfg: &Config,
    groups: &[GroupRings],
    stats: &Arc<Stats>,
    control: &Arc<WriterControl>,
) -> WriterPool {
    let forwards = ForwardPlans::default();
    WriterPool::start_with_fs(fs.clone(), cfg, &forwards, groups, stats, control).expect("pool")
}

/// Closes the rings and joins the pool; fails instead of hanging.
fn join_within(p: WriterPool, rings: &[Arc<Ring>], limit: Duration) -> WriterReport {
    for r in rings {
        r.closed.store(true, Relaxed);
    }
    p.wake_all();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(p.join());
    });
    rx.recv_timeout(limit)
        .expect("the pool did not finish in time")
        .expect("no writer panicked")
}

/// Waits (bounded) until `path` holds `lines` lines.
fn wait_lines(fs: &FakeFs, path: &Path, lines: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs.content(path).iter().filter(|b| **b == b'\n').count() < lines {
        assert!(
            Instant::now() < deadline,
            "{} lines expected in {}",
            lines,
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Two writers append to one file, each through its own descriptor: a
/// torn last line gets exactly one newline (writer 0 ends it before the
/// other opens), each batch lands whole and in its shard's order, the
/// report is one per destination, and both histograms count every message.
#[test]
fn two_writers_append_whole_batches_in_order_to_one_file() {
    let fs = FakeFs::default();
    fs.put(Path::new(OUT), b"torn");
    let (p, rings, stats, _) = pool_on(&fs, &config("raw", "never"));
    assert_eq!(p.writers(), 2);
    assert_eq!(fs.disk().opens, 2, "one descriptor per writer");
    for i in 0..20 {
        for (s, ring) in rings.iter().enumerate() {
            let (a, b) = (format!("s{s} b{i} m0"), format!("s{s} b{i} m1"));
            ring.full.push(batch(1, &[&a, &b])).expect("room");
        }
    }
    let report = join_within(p, &rings, Duration::from_secs(10));
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.destinations.len(), 1, "merged per destination");
    let out = text(&fs.content(Path::new(OUT)));
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("torn"), "{out}");
    let lines: Vec<&str> = lines.collect();
    assert_eq!(lines.len(), 80, "{out}");
    for s in 0..2 {
        let prefix = format!("s{s} ");
        let mine: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with(&prefix))
            .collect();
        let expected: Vec<String> = (0..20)
            .flat_map(|i| [format!("s{s} b{i} m0"), format!("s{s} b{i} m1")])
            .collect();
        assert_eq!(mine, expected, "shard {s} keeps its order");
    }
    // Whole batches: each m0 is followed by its own m1.
    for pair in lines.chunks(2) {
        assert_eq!(pair[0].replace("m0", "m1"), pair[1], "{out}");
    }
    assert_eq!(stats.destinations[0].torn_lines_repaired.load(Relaxed), 1);
    assert_eq!(stats.sources[0].messages_written.load(Relaxed), 80);
    assert_eq!(stats.latency.lock().expect("histogram").len(), 80);
    assert_eq!(
        stats.destinations[0]
            .latency
            .lock()
            .expect("histogram")
            .len(),
        80
    );
}

/// SIGHUP reaches every writer, not only the first to look: after the
/// rotation both shards' lines go to the new file.
#[test]
fn sighup_reopens_the_files_of_every_writer() {
    let fs = FakeFs::default();
    let (p, rings, _, control) = pool_on(&fs, &config("raw", "never"));
    let rotated = Path::new("/fake/data/out.log.1");
    for (s, ring) in rings.iter().enumerate() {
        ring.full
            .push(batch(1, &[&format!("old {s}")]))
            .expect("room");
    }
    p.wake_all();
    wait_lines(&fs, Path::new(OUT), 2);
    fs.rename(Path::new(OUT), rotated);
    control.request_reopen();
    p.wake_all();
    // Both writers have reopened once the disk saw two more opens.
    let deadline = Instant::now() + Duration::from_secs(5);
    while fs.disk().opens < 4 {
        assert!(Instant::now() < deadline, "both writers reopen");
        std::thread::sleep(Duration::from_millis(5));
    }
    for (s, ring) in rings.iter().enumerate() {
        ring.full
            .push(batch(1, &[&format!("new {s}")]))
            .expect("room");
    }
    let report = join_within(p, &rings, Duration::from_secs(10));
    assert!(report.is_clean(), "{report}");
    let old = text(&fs.content(rotated));
    let new = text(&fs.content(Path::new(OUT)));
    assert!(
        old.contains("old 0\n") && old.contains("old 1\n") && !old.contains("new"),
        "{old}"
    );
    assert!(
        new.contains("new 0\n") && new.contains("new 1\n") && !new.contains("old"),
        "{new}"
    );
}

/// A failing disk at shutdown: every writer gives up on its share, and
/// the pool's report counts what each could not write.
#[test]
fn pool_report_counts_what_every_writer_gave_up_on() {
    let fs = FakeFs::default();
    let (p, rings, _, control) = pool_on(&fs, &config("raw", "never"));
    fs.disk().write_fails_forever = Some(libc::ENOSPC);
    for (s, ring) in rings.iter().enumerate() {
        ring.full
            .push(batch(1, &[&format!("lost {s}")]))
            .expect("room");
    }
    control.begin_shutdown(Instant::now());
    let report = join_within(p, &rings, Duration::from_secs(15));
    let d = &report.destinations[0];
    assert_eq!(d.not_written_messages, 2, "{report}");
    assert_eq!(d.not_written_bytes, 14, "{report}");
}

/// A group's destination fed by every source of its group takes whole
/// rounds, even though other groups' sources do not feed it; one that some
/// source of its own group skips does not.
#[test]
fn a_whole_round_is_judged_by_the_groups_own_sources() {
    use super::takes_every_source;
    // Sources: 0 -> d0; 1 -> d1, d2; 2 -> d1. Groups: {d0}, {d1, d2}.
    let routes = vec![vec![0], vec![1, 2], vec![1]];
    assert!(takes_every_source(&routes, &[0], 0));
    assert!(
        takes_every_source(&routes, &[1, 2], 1),
        "sources 1 and 2 both feed d1; source 0 is another group's"
    );
    assert!(
        !takes_every_source(&routes, &[1, 2], 2),
        "source 2 of the same group does not feed d2"
    );
    // One group of everything: every source must feed it, as before groups.
    let all = vec![vec![0, 1], vec![0]];
    assert!(takes_every_source(&all, &[0, 1], 0));
    assert!(!takes_every_source(&all, &[0, 1], 1));
}
