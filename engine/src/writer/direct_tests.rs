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

fn rig(fs: FakeFs) -> Rig {
    let text = format!(
        "drain_timeout_ms = 0\n[[source]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
         [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"{OUT}\"\nfsync = \"batch\"\nio = \"direct\"\n"
    );
    let cfg =
        Config::from_toml(&text, Path::new("/fake/r.toml"), Path::new("/fake")).expect("config");
    assert_eq!(cfg.destinations[0].io, FileIo::Direct);
    let ring = Arc::new(Ring::new(1024));
    let stats = Arc::new(Stats::new(vec!["s".into()]).with_destinations(vec!["d".into()]));
    let control = Arc::new(WriterControl::default());
    let writer = Writer::with_fs(
        fs.clone(),
        &cfg,
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
    r.control.reopen.store(true, Relaxed);
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
    r.control.reopen.store(true, Relaxed);
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
