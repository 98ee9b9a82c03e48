//! The pool over several destination groups, on a disk in memory: each
//! group's writers open and write only its destinations, writers are
//! numbered across groups, and the report holds every destination once.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::fake::FakeFs;
use super::pool::GroupRings;
use super::WriterControl;
use crate::batch::{Batch, ConnMeta};
use crate::config::Config;
use crate::stats::Stats;

/// Source a feeds x only, source b feeds y only: two groups of two writers.
fn two_groups() -> Config {
    let text = "shards = 2\nwriters = 2\ndrain_timeout_ms = 0\n\
        [[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\ndestinations = [\"x\"]\n\
        [[source]]\nname = \"b\"\nlisten = \"127.0.0.1:2\"\ntransport = \"tcp\"\ndestinations = [\"y\"]\n\
        [[destination]]\nname = \"x\"\ntype = \"file\"\npath = \"/fake/x.log\"\nfsync = \"never\"\n\
        [[destination]]\nname = \"y\"\ntype = \"file\"\npath = \"/fake/y.log\"\nfsync = \"never\"\n";
    Config::from_toml(text, Path::new("/fake/ringest.toml"), Path::new("/fake")).expect("config")
}

fn batch(source: u16, msgs: &[String]) -> Batch {
    let meta = Arc::new(ConnMeta {
        source,
        peer: "127.0.0.1:5000".parse().expect("addr"),
        identity: None,
    });
    let mut b = Batch::with_capacity(4096);
    b.begin_run(&meta, 1);
    for m in msgs {
        b.push(m.as_bytes());
    }
    b
}

#[test]
fn each_group_writes_only_its_destinations_and_the_report_holds_both() {
    let fs = FakeFs::default();
    let cfg = two_groups();
    let stats = Arc::new(
        Stats::new(vec!["a".into(), "b".into()]).with_destinations(vec!["x".into(), "y".into()]),
    );
    let control = Arc::new(WriterControl::default());
    let groups = GroupRings::of_config(&cfg, 2);
    assert_eq!(groups.len(), 2);
    let p = super::tests::start_files(&fs, &cfg, &groups, &stats, &control);
    assert_eq!((p.writers(), p.writers_of(0), p.writers_of(1)), (4, 2, 2));
    assert_eq!(fs.disk().opens, 4, "each writer opens its group's one file");
    assert_eq!(p.loads().len(), 4, "one queue per writer, across groups");
    for s in 0..2 {
        assert!(!Arc::ptr_eq(&p.waker_of(0, s), &p.waker_of(1, s)));
    }
    for (g, group) in groups.iter().enumerate() {
        for (s, ring) in group.rings.iter().enumerate() {
            for i in 0..5 {
                let msgs = [format!("g{g} s{s} b{i}")];
                ring.full.push(batch(g as u16, &msgs)).expect("room");
            }
        }
    }
    for r in groups.iter().flat_map(|g| &g.rings) {
        r.closed.store(true, Relaxed);
    }
    p.wake_all();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(p.join());
    });
    let report = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the pool finished")
        .expect("no writer panicked");
    assert!(report.is_clean(), "{report}");
    let names: Vec<&str> = report
        .destinations
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["x", "y"]);
    for (g, file) in [(0, "/fake/x.log"), (1, "/fake/y.log")] {
        let text = String::from_utf8(fs.content(Path::new(file))).expect("utf-8");
        assert_eq!(text.lines().count(), 10, "{file}: {text}");
        assert!(
            text.lines().all(|l| l.starts_with(&format!("g{g} "))),
            "{file} holds only its group's lines: {text}"
        );
        assert_eq!(stats.sources[g].messages_written.load(Relaxed), 10);
    }
}
