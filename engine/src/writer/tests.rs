//! Writer-level tests: rounds go through a disk in memory that fails on
//! demand ([`super::fake`]), and the test checks the bytes that land, the
//! counters and the report.

#![allow(dead_code)] // The fault-injection harness; the next commits use all of it.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fake::FakeFs;
use super::report::WriterReport;
use super::{Writer, WriterControl};
use crate::batch::{Batch, ConnMeta, Ring, WriterWaker};
use crate::config::Config;
use crate::stats::Stats;

const OUT: &str = "/fake/data/out.log";

fn config(format: &str, fsync: &str) -> Config {
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

fn batch(received_unix_ns: u64, msgs: &[&str]) -> Batch {
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

struct Rig {
    fs: FakeFs,
    ring: Arc<Ring>,
    stats: Arc<Stats>,
    control: Arc<WriterControl>,
    writer: Writer<FakeFs>,
}

fn rig_on(fs: FakeFs, cfg: &Config) -> Rig {
    let ring = Arc::new(Ring::new(1024));
    let stats = Arc::new(Stats::new(vec!["s".into()]).with_destinations(vec!["d".into()]));
    let control = Arc::new(WriterControl::default());
    let writer = Writer::with_fs(
        fs.clone(),
        cfg,
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
fn run_within(rig: Rig, limit: Duration) -> (WriterReport, Duration) {
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
