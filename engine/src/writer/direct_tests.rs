//! Writer-level tests of `io = "direct"`: whole rounds through the writer
//! onto the disk in memory ([`super::fake`]), checking that the buffered
//! path's guarantees hold with direct I/O too: exact bytes, resume after a
//! failed write, torn-line repair, reopen after rotation, fsync, and the
//! fallback where the file system refuses `O_DIRECT`.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::direct::DIRECT_ALIGN_BYTES;
use super::fake::{FakeFs, WriteFault};
use super::forward::ForwardPlans;
use super::pool::{self, GroupRings};
use super::{Writer, WriterControl};
use crate::batch::{Batch, ConnMeta, Ring, WriterWaker};
use crate::config::{Config, FileIo};
use crate::stats::Stats;

const OUT: &str = "/fake/data/out.log";
const A: usize = DIRECT_ALIGN_BYTES;

struct Rig {
    fs: FakeFs,
    ring: Arc<Ring>,
    stats: Arc<Stats>,
    control: Arc<WriterControl>,
    writer: Writer<FakeFs>,
}

fn direct_config() -> Config {
    let text = format!(
        "drain_timeout_ms = 0\n[[source]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
         [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"{OUT}\"\nfsync = \"batch\"\nio = \"direct\"\n"
    );
    let cfg =
        Config::from_toml(&text, Path::new("/fake/r.toml"), Path::new("/fake")).expect("config");
    assert_eq!(cfg.destinations[0].io, FileIo::Direct);
    cfg
}

fn rig(fs: FakeFs) -> Rig {
    let cfg = direct_config();
    let ring = Arc::new(Ring::new(1024));
    let stats = Arc::new(Stats::new(vec!["s".into()]).with_destinations(vec!["d".into()]));
    let control = Arc::new(WriterControl::default());
    let writer = Writer::with_fs(
        fs.clone(),
        &cfg,
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

/// Messages `from..from + n`, each `len` bytes before its newline.
fn messages(from: usize, n: usize, len: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("{i:06} {}", "x".repeat(len.saturating_sub(7))))
        .collect()
}

impl Rig {
    /// Pushes the messages as one batch and writes one round.
    fn round(&mut self, msgs: &[String]) -> Vec<u8> {
        let meta = Arc::new(ConnMeta {
            source: 0,
            peer: "127.0.0.1:5000".parse().expect("addr"),
            identity: None,
        });
        let mut b = Batch::with_capacity(1 << 16);
        b.begin_run(&meta, 1);
        for m in msgs {
            b.push(m.as_bytes());
        }
        self.ring.full.push(b).expect("ring has room");
        assert!(self.writer.step());
        msgs.iter()
            .flat_map(|m| [m.as_bytes(), b"\n"].concat())
            .collect()
    }

    fn direct_writes(&self) -> usize {
        self.fs
            .disk()
            .block_writes
            .iter()
            .filter(|w| w.direct)
            .count()
    }
}

#[test]
fn rounds_of_odd_sizes_land_exactly_with_an_fsync_each() {
    let mut r = rig(FakeFs::default());
    let mut want = Vec::new();
    let mut seq = 0;
    for (n, len) in [(1, 10), (3, 1500), (7, 4095), (1, 1), (20, 999), (2, 5000)] {
        want.extend(r.round(&messages(seq, n, len)));
        seq += n;
        assert_eq!(r.fs.content(Path::new(OUT)), want, "after message {seq}");
    }
    assert!(r.direct_writes() > 0, "blocks went through O_DIRECT");
    let d = r.fs.disk();
    assert!(d
        .block_writes
        .iter()
        .filter(|w| w.direct)
        .all(|w| w.aligned_addr && w.len % A == 0 && w.offset % A as u64 == 0));
    assert_eq!(d.syncs, 6, "fsync = \"batch\": one per round");
    drop(d);
    assert_eq!(
        r.stats.sources[0].messages_written.load(Relaxed),
        seq as u64
    );
}

#[test]
fn a_round_cut_short_by_a_full_disk_resumes_without_tearing_or_duplicates() {
    let mut r = rig(FakeFs::default());
    let mut want = r.round(&messages(0, 1, 100));
    // The head completes block 0, one of six direct blocks lands, then the
    // disk is full for two tries.
    r.fs.disk().write_faults.extend([
        WriteFault::Short(usize::MAX),
        WriteFault::Short(A),
        WriteFault::Fail(libc::ENOSPC),
        WriteFault::Fail(libc::ENOSPC),
    ]);
    want.extend(r.round(&messages(1, 10, 3000)));
    let d = r.fs.disk();
    assert_eq!(
        (d.block_writes[2].direct, d.block_writes[2].len),
        (true, 6 * A)
    );
    assert!(d.block_writes.iter().all(|w| w.offset == w.size_before));
    drop(d);
    assert_eq!(r.fs.content(Path::new(OUT)), want);
    assert_eq!(r.stats.destinations[0].write_errors.get("no_space"), 2);
    assert_eq!(r.stats.sources[0].messages_written.load(Relaxed), 11);
}

#[test]
fn a_torn_last_line_is_ended_before_the_first_direct_write() {
    let fs = FakeFs::default();
    let old = [
        messages(0, 5, 1000).join("\n").as_bytes(),
        b"\ntorn by a cr",
    ]
    .concat();
    fs.put(Path::new(OUT), &old);
    let mut r = rig(fs);
    let new = r.round(&messages(5, 4, 2000));
    assert_eq!(
        r.fs.content(Path::new(OUT)),
        [&old[..], b"\n", &new].concat()
    );
    assert_eq!(r.stats.destinations[0].torn_lines_repaired.load(Relaxed), 1);
    assert!(r.direct_writes() > 0);
}

#[test]
fn sighup_reopen_after_rotation_leaves_both_files_exact() {
    let mut r = rig(FakeFs::default());
    let rotated = Path::new("/fake/data/out.log.1");
    let before = r.round(&messages(0, 3, 3000));
    r.fs.rename(Path::new(OUT), rotated);
    r.control.request_reopen();
    let after = r.round(&messages(3, 3, 3000));
    assert_eq!(r.fs.content(rotated), before);
    assert_eq!(r.fs.content(Path::new(OUT)), after);
    assert_eq!(r.fs.disk().opens, 2);
}

#[test]
fn a_file_system_refusing_o_direct_falls_back_to_buffered_and_counts_each_open() {
    let fs = FakeFs::default();
    fs.disk().direct_refused = true;
    let mut r = rig(fs);
    let mut want = r.round(&messages(0, 3, 3000));
    r.control.request_reopen();
    want.extend(r.round(&messages(3, 3, 3000)));
    assert_eq!(r.fs.content(Path::new(OUT)), want);
    assert_eq!(r.direct_writes(), 0);
    assert_eq!(
        r.stats.destinations[0].direct_io_fallbacks.load(Relaxed),
        2,
        "the open and the reopen"
    );
    assert!(r
        .stats
        .render_prometheus()
        .contains("ringest_direct_io_fallbacks_total{destination=\"d\"} 2"));
}

#[test]
fn a_direct_buffer_that_is_not_whole_blocks_or_out_of_range_is_refused_by_name() {
    for (bytes, why) in [
        (65_537, "not a multiple of 4096"),
        (4096, "out of range"),
        (128 << 20, "out of range"),
    ] {
        let text = format!(
            "[[source]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
             [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x\"\nio = \"direct\"\ndirect_buffer_bytes = {bytes}\n"
        );
        let err = Config::from_toml(&text, Path::new("/fake/r.toml"), Path::new("/fake"))
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("destination[0].direct_buffer_bytes") && err.contains(why),
            "{bytes}: {err}"
        );
    }
}

/// Two writers of the pool on one direct file: they share one offset (one
/// open file, joined by the second writer), so no write overlaps another
/// and every write appends at the end; each shard's batches land whole and
/// in order; a torn last line gets exactly one newline, counted once; a
/// SIGHUP after a rotation moves both writers to the new file.
#[test]
fn two_pool_writers_share_one_direct_file_and_its_rotation() {
    let fs = FakeFs::default();
    fs.put(Path::new(OUT), b"torn");
    let cfg = direct_config();
    let stats = Arc::new(Stats::new(vec!["s".into()]).with_destinations(vec!["d".into()]));
    let control = Arc::new(WriterControl::default());
    let rings = pool::rings(2, 2, 64);
    let groups = [GroupRings::whole(&cfg, rings.clone(), 2)];
    let p = super::tests::start_files(&fs, &cfg, &groups, &stats, &control);
    assert_eq!(p.writers(), 2);
    let meta = Arc::new(ConnMeta {
        source: 0,
        peer: "127.0.0.1:5000".parse().expect("addr"),
        identity: None,
    });
    let push = |ring: &Ring, tag: &str, n: usize| {
        for i in 0..n {
            let mut b = Batch::with_capacity(1 << 16);
            b.begin_run(&meta, 1);
            // Two messages per batch, 1000..6000 bytes: batches cross blocks.
            for m in 0..2 {
                let len = 1000 + (i * 1777 + m * 331) % 5000;
                let mut msg = format!("{tag} b{i:03} m{m} ").into_bytes();
                msg.resize(len, b'x');
                b.push(&msg);
            }
            ring.full.push(b).expect("room");
        }
    };
    let wait_lines = |path: &Path, n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fs.content(path).iter().filter(|b| **b == b'\n').count() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{n} lines in {}",
                path.display()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    };
    for (s, ring) in rings.iter().enumerate() {
        push(ring, &format!("old{s}"), 20);
    }
    p.wake_all();
    wait_lines(Path::new(OUT), 81);
    let rotated = Path::new("/fake/data/out.log.1");
    fs.rename(Path::new(OUT), rotated);
    control.request_reopen();
    p.wake_all();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs.disk().opens < 4 {
        assert!(std::time::Instant::now() < deadline, "both writers reopen");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for (s, ring) in rings.iter().enumerate() {
        push(ring, &format!("new{s}"), 20);
    }
    for r in &rings {
        r.closed.store(true, Relaxed);
    }
    p.wake_all();
    let report = p.join().expect("no writer panicked");
    assert!(report.is_clean(), "{report}");

    for (path, tag, first) in [
        (rotated, "old", Some("torn")),
        (Path::new(OUT), "new", None),
    ] {
        let text = String::from_utf8(fs.content(path)).expect("utf8");
        let mut lines: Vec<&str> = text.lines().collect();
        if let Some(first) = first {
            assert_eq!(lines.remove(0), first, "one newline after the torn line");
        }
        assert_eq!(lines.len(), 80, "{}", path.display());
        for s in 0..2 {
            let prefix = format!("{tag}{s} ");
            let mine: Vec<String> = lines
                .iter()
                .filter(|l| l.starts_with(&prefix))
                .map(|l| l[..prefix.len() + 7].to_string())
                .collect();
            let want: Vec<String> = (0..20)
                .flat_map(|i| [0, 1].map(|m| format!("{prefix}b{i:03} m{m}")))
                .collect();
            assert_eq!(
                mine,
                want,
                "shard {s} in order, whole, once in {}",
                path.display()
            );
        }
        for pair in lines.chunks(2) {
            assert_eq!(
                pair[0][..12].replace("m0", "m1"),
                pair[1][..12],
                "whole batches"
            );
        }
    }
    let d = fs.disk();
    assert!(
        d.block_writes.iter().all(|w| w.offset == w.size_before),
        "every write appends at the end"
    );
    assert!(d.block_writes.iter().any(|w| w.direct));
    drop(d);
    assert_eq!(stats.destinations[0].torn_lines_repaired.load(Relaxed), 1);
    assert_eq!(stats.sources[0].messages_written.load(Relaxed), 160);
}
