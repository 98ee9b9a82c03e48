//! The writer pool: several writer threads, so writing scales with the
//! shards instead of one thread capping them all.
//!
//! - Shard i's ring is drained by writer `i % writers` ([`writer_of`]),
//!   always the same one: a connection lives on one shard, so its batches
//!   go through one writer, in order.
//! - Each writer owns its destinations: its own file descriptor per file
//!   (`O_APPEND`), its own retries and give-up, its own fsyncs. Writers
//!   share nothing but the stats (atomics, and one histogram lock per
//!   destination per round) and the [`WriterControl`].
//! - A writer hands whole batches to each write call, and an `O_APPEND`
//!   write on a local file system lands whole at the end of the file: lines
//!   of different writers interleave only at batch boundaries.
//! - At exit, each writer's [`WriterReport`] is merged per destination
//!   ([`WriterReport::merge`]).

use std::sync::Arc;
use std::thread::JoinHandle;

use super::report::WriterReport;
use super::sys::{Fs, RealFs};
use super::{Writer, WriterControl};
use crate::batch::{Ring, WriterWaker};
use crate::config::Config;
use crate::queue_delay::WriterLoad;
use crate::stats::Stats;

/// The writer that drains shard `shard`'s ring.
/// Writer `w`'s view of the config: what a writer keeps on its own gets
/// its own place. A forward destination's disk buffer is one folder per
/// writer (`dir/writer-W`), each with an equal share of `max_bytes`: the
/// segments of one writer's connections stay in their order, and no two
/// writers append to one segment file.
pub fn per_writer(config: &Config, w: usize) -> Config {
    let writers = config.writer_count().max(1) as u64;
    let mut own = config.clone();
    for d in &mut own.destinations {
        if let Some(b) = &mut d.disk_buffer {
            b.dir = b.dir.join(format!("writer-{w}"));
            b.max_bytes = (b.max_bytes / writers).max(1);
        }
    }
    own
}

/// Disk-buffer folders of writers this run does not have (a run with more
/// writers left them): their messages are not replayed, so say so loudly.
fn warn_orphaned_disk_buffers(config: &Config) {
    let writers = config.writer_count();
    for d in &config.destinations {
        let Some(b) = &d.disk_buffer else { continue };
        let Ok(entries) = std::fs::read_dir(&b.dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(w) = name
                .to_str()
                .and_then(|n| n.strip_prefix("writer-"))
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            let segments = std::fs::read_dir(e.path())
                .map(|r| {
                    r.flatten()
                        .filter(|f| f.path().extension().is_some_and(|x| x == "seg"))
                        .count()
                })
                .unwrap_or(0);
            if w >= writers && segments > 0 {
                log::error!(
                    "destination {}: disk buffer {} holds {segments} segment files of writer {w}, but this run has {writers} writers: they are not replayed; run with writers = {} to send them",
                    d.name,
                    e.path().display(),
                    w + 1
                );
            }
        }
    }
}

pub fn writer_of(shard: usize, writers: usize) -> usize {
    shard % writers.max(1)
}

/// The shards writer `writer` drains, in order.
pub fn shards_of(writer: usize, shards: usize, writers: usize) -> Vec<usize> {
    (0..shards)
        .filter(|&s| writer_of(s, writers) == writer)
        .collect()
}

/// One ring per shard; the rings of one writer share its queue
/// ([`WriterLoad`]), so a shard sees the delay its batch would wait behind
/// every shard of that writer.
pub fn rings(shards: usize, writers: usize, capacity_batches: usize) -> Vec<Arc<Ring>> {
    let loads: Vec<Arc<WriterLoad>> = (0..writers.max(1))
        .map(|_| Arc::new(WriterLoad::default()))
        .collect();
    (0..shards)
        .map(|s| {
            let load = Arc::clone(&loads[writer_of(s, writers)]);
            Arc::new(Ring::for_writer(capacity_batches, load))
        })
        .collect()
}

/// Each writer's queue, by writer index: writer w's first shard is shard
/// w, and all its rings share that ring's load.
pub fn loads(rings: &[Arc<Ring>], writers: usize) -> Vec<Arc<WriterLoad>> {
    (0..writers.clamp(1, rings.len().max(1)))
        .filter_map(|w| rings.get(w).map(|r| Arc::clone(&r.load)))
        .collect()
}

pub struct WriterPool {
    threads: Vec<JoinHandle<WriterReport>>,
    /// One per writer: shards wake their own writer only.
    wakers: Vec<Arc<WriterWaker>>,
}

impl WriterPool {
    /// Opens `writers` writers over `rings` (one per shard, from [`rings`])
    /// and starts their threads.
    pub fn start(
        config: &Config,
        rings: &[Arc<Ring>],
        writers: usize,
        stats: &Arc<Stats>,
        control: &Arc<WriterControl>,
    ) -> Result<WriterPool, String> {
        WriterPool::start_with_fs(RealFs, config, rings, writers, stats, control)
    }

    /// [`start`](Self::start) on a given disk (tests pass one in memory).
    ///
    /// Every writer's files are opened before any thread starts, so a file
    /// that cannot be opened fails start-up. Writer 0 opens first and, when
    /// there are several, ends a torn last line (a crash) at once: the
    /// others then find the file ending in `\n` and add no newline of their
    /// own.
    pub fn start_with_fs<F: Fs + Clone + Send + 'static>(
        fs: F,
        config: &Config,
        rings: &[Arc<Ring>],
        writers: usize,
        stats: &Arc<Stats>,
        control: &Arc<WriterControl>,
    ) -> Result<WriterPool, String>
    where
        F::File: Send,
    {
        let writers = writers.clamp(1, rings.len().max(1));
        let wakers: Vec<Arc<WriterWaker>> =
            (0..writers).map(|_| Arc::new(WriterWaker::new())).collect();
        let mut opened = Vec::with_capacity(writers);
        warn_orphaned_disk_buffers(config);
        for (w, waker) in wakers.iter().enumerate() {
            let mine = shards_of(w, rings.len(), writers)
                .into_iter()
                .map(|s| Arc::clone(&rings[s]))
                .collect();
            let own = per_writer(config, w);
            let mut writer = Writer::with_fs(
                fs.clone(),
                &own,
                mine,
                Arc::clone(stats),
                Arc::clone(waker),
                Arc::clone(control),
            )
            .map_err(|e| format!("cannot open destination: {e}"))?;
            if w == 0 && writers > 1 {
                writer.repair_torn_lines()?;
            }
            opened.push(writer);
        }
        let mut threads = Vec::with_capacity(writers);
        for (w, writer) in opened.into_iter().enumerate() {
            let h = std::thread::Builder::new()
                .name(format!("ringest-writer-{w}"))
                .spawn(move || writer.run())
                .map_err(|e| format!("cannot start writer {w}: {e}"))?;
            let _ = wakers[w].thread.set(h.thread().clone());
            threads.push(h);
        }
        Ok(WriterPool { threads, wakers })
    }

    pub fn writers(&self) -> usize {
        self.wakers.len()
    }

    /// The waker of the writer that drains shard `shard`.
    pub fn waker_of(&self, shard: usize) -> Arc<WriterWaker> {
        Arc::clone(&self.wakers[writer_of(shard, self.wakers.len())])
    }

    /// Wakes every writer (SIGHUP, shutdown).
    pub fn wake_all(&self) {
        for w in &self.wakers {
            w.wake();
        }
    }

    /// Waits for every writer (each returns once its rings are closed and
    /// empty, or a bounded time after giving up) and merges their reports.
    /// A writer that panicked is an error; the others are still joined.
    pub fn join(self) -> Result<WriterReport, String> {
        let mut reports = Vec::with_capacity(self.threads.len());
        let mut panicked = Vec::new();
        for (w, h) in self.threads.into_iter().enumerate() {
            match h.join() {
                Ok(r) => reports.push(r),
                Err(_) => panicked.push(w.to_string()),
            }
        }
        if !panicked.is_empty() {
            return Err(format!(
                "writer thread {} panicked; output may be incomplete",
                panicked.join(", ")
            ));
        }
        Ok(WriterReport::merge(reports))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_has_one_writer_and_each_writer_its_share_of_shards() {
        assert_eq!(shards_of(0, 5, 2), vec![0, 2, 4]);
        assert_eq!(shards_of(1, 5, 2), vec![1, 3]);
        // One per shard.
        for s in 0..4 {
            assert_eq!(shards_of(s, 4, 4), vec![s]);
        }
        // A single writer drains every shard; 0 writers reads as one.
        assert_eq!(shards_of(0, 3, 1), vec![0, 1, 2]);
        assert_eq!(writer_of(7, 0), 0);
        // Every shard exactly once, over all writers.
        let mut all: Vec<usize> = (0..3).flat_map(|w| shards_of(w, 8, 3)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
    }

    /// The config with `top` keys and one file destination at `path`, or its error.
    fn load_path(top: &str, path: &str) -> Result<Config, String> {
        let text = format!(
            "{top}\n[[source]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
             [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"{path}\"\n"
        );
        let (file, base) = (std::path::Path::new("t.toml"), std::path::Path::new("/tmp"));
        Config::from_toml(&text, file, base).map_err(|e| e.to_string())
    }

    /// The config with `top` keys and a path-template file destination.
    fn load(top: &str) -> Result<Config, String> {
        load_path(top, "x-{host}.log")
    }

    /// One writer per shard by default, one when every destination is a
    /// single file; never more writers than shards (a writer without a
    /// shard would only idle); out of range refused.
    #[test]
    fn writers_default_to_one_per_shard_and_never_exceed_the_shards() {
        let writers = |top: &str| load(top).expect("config").writer_count();
        assert_eq!(writers("shards = 3"), 3);
        assert_eq!(writers("shards = 3\nwriters = 2"), 2);
        assert_eq!(writers("shards = 3\nwriters = 8"), 3);
        // Every destination one file: one writer, unless set.
        let fixed = |top: &str| load_path(top, "x.log").expect("config").writer_count();
        assert_eq!(fixed("shards = 3"), 1);
        assert_eq!(fixed("shards = 3\nwriters = 2"), 2);
        assert_eq!(load("shards = 1").map(|c| c.max_queue_delay_ms), Ok(2));
        let err = load("writers = 257").expect_err("out of range");
        assert!(err.contains("writers"), "{err}");
    }

    /// A shard's batch waits behind every shard of its writer, and behind
    /// no other writer's.
    #[test]
    fn rings_of_one_writer_share_its_queue_and_only_theirs() {
        let r = rings(4, 2, 8);
        assert!(Arc::ptr_eq(&r[0].load, &r[2].load));
        assert!(Arc::ptr_eq(&r[1].load, &r[3].load));
        assert!(!Arc::ptr_eq(&r[0].load, &r[1].load));
        let l = loads(&r, 2);
        assert_eq!(l.len(), 2);
        assert!(Arc::ptr_eq(&l[0], &r[2].load) && Arc::ptr_eq(&l[1], &r[3].load));
    }
}
