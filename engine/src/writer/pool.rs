//! The writer pool: several writer threads, so writing scales with the
//! shards instead of one thread capping them all.
//!
//! - Each destination group ([`crate::config::groups`]) has its own rings,
//!   one per shard, and its own writers: a destination that keeps failing
//!   stops only its group's writers, so only the sources of that group are
//!   paused. With one group (every source feeds every destination) this is
//!   the whole pool.
//! - Within a group, shard i's ring is drained by writer `i % writers`
//!   ([`writer_of`]), always the same one: a connection lives on one shard
//!   and its source in one group, so its batches go through one writer, in
//!   order.
//! - Each writer owns its group's destinations: its own file descriptor
//!   per file (`O_APPEND`), its own retries and give-up, its own fsyncs.
//!   Writers share nothing but the stats (atomics, and one histogram lock
//!   per destination per round) and the [`WriterControl`].
//! - A group with a kafka destination has one writer
//!   ([`Config::writers_of`]), so each kafka destination has one producer:
//!   its batches, retries, order per key and delivery accounting stay in
//!   one place, as with one writer of a single file.
//! - A writer hands whole batches to each write call, and an `O_APPEND`
//!   write on a local file system lands whole at the end of the file: lines
//!   of different writers interleave only at batch boundaries.
//! - Writers are numbered across groups (group 0's first), which is the
//!   `writer` label of the `ringest_writer_*` metrics and the thread name.
//! - At exit, each writer's [`WriterReport`] is merged per destination
//!   ([`WriterReport::merge`]).

use std::sync::Arc;
use std::thread::JoinHandle;

use super::forward::ForwardPlans;
use super::report::WriterReport;
use super::sys::{Fs, RealFs};
use super::{Writer, WriterControl};
use crate::batch::{Ring, WriterWaker};
use crate::config::{Config, DestinationGroup};
use crate::queue_delay::WriterLoad;
use crate::stats::Stats;

/// Writer `w` (of `writers`, in its group)'s view of the config: what a
/// writer keeps on its own gets its own place. A forward destination's
/// disk buffer is one folder per writer (`dir/writer-W`, W counted within
/// the destination's group, so a one-group config keeps its folders), each
/// with an equal share of `max_bytes`: the segments of one writer's
/// connections stay in their order, and no two writers append to one
/// segment file.
pub fn per_writer(config: &Config, w: usize, writers: usize) -> Config {
    let writers = writers.max(1) as u64;
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
fn warn_orphaned_disk_buffers(config: &Config, group: &GroupRings) {
    let writers = group.writers;
    for d in group
        .group
        .destinations
        .iter()
        .filter_map(|&d| config.destinations.get(d))
    {
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

/// The writer (within its group) that drains shard `shard`'s ring.
pub fn writer_of(shard: usize, writers: usize) -> usize {
    shard % writers.max(1)
}

/// The shards writer `writer` drains, in order.
pub fn shards_of(writer: usize, shards: usize, writers: usize) -> Vec<usize> {
    (0..shards)
        .filter(|&s| writer_of(s, writers) == writer)
        .collect()
}

/// One destination group as the pool runs it: its sources and
/// destinations, its writers, and its rings (one per shard).
pub struct GroupRings {
    pub group: DestinationGroup,
    pub writers: usize,
    pub rings: Vec<Arc<Ring>>,
}

impl GroupRings {
    /// Every destination group of `config`, each with one ring per shard and
    /// its writer count ([`Config::writers_of`]).
    pub fn of_config(config: &Config, shards: usize) -> Vec<GroupRings> {
        config
            .destination_groups()
            .into_iter()
            .map(|group| {
                let writers = config.writers_of(&group).clamp(1, shards.max(1));
                GroupRings {
                    rings: rings(shards, writers, config.ring_capacity_batches),
                    writers,
                    group,
                }
            })
            .collect()
    }

    /// One group of every source and destination of `config` over `rings`
    /// (from [`rings`]), as a config without groups would run.
    pub fn whole(config: &Config, rings: Vec<Arc<Ring>>, writers: usize) -> GroupRings {
        GroupRings {
            group: DestinationGroup {
                sources: (0..config.sources.len()).collect(),
                destinations: (0..config.destinations.len()).collect(),
            },
            writers: writers.clamp(1, rings.len().max(1)),
            rings,
        }
    }
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
    /// One per writer, across groups: shards wake their own writer only.
    wakers: Vec<Arc<WriterWaker>>,
    /// Per group: the index of its first writer, and its writer count.
    groups: Vec<(usize, usize)>,
    /// Each writer's queue, by writer index across groups.
    loads: Vec<Arc<WriterLoad>>,
}

impl WriterPool {
    /// Opens every group's writers over its rings (from
    /// [`GroupRings::of_config`]) and starts their threads.
    pub fn start(
        config: &Config,
        forwards: &ForwardPlans,
        groups: &[GroupRings],
        stats: &Arc<Stats>,
        control: &Arc<WriterControl>,
    ) -> Result<WriterPool, String> {
        WriterPool::start_with_fs(RealFs, config, forwards, groups, stats, control)
    }

    /// [`start`](Self::start) on a given disk (tests pass one in memory).
    ///
    /// Every writer's files are opened before any thread starts, so a file
    /// that cannot be opened fails start-up. A group's writer 0 opens first
    /// and, when the group has several, ends a torn last line (a crash) at
    /// once: the others then find the file ending in `\n` and add no
    /// newline of their own (a destination is in one group only).
    pub fn start_with_fs<F: Fs + Clone + Send + 'static>(
        fs: F,
        config: &Config,
        forwards: &ForwardPlans,
        groups: &[GroupRings],
        stats: &Arc<Stats>,
        control: &Arc<WriterControl>,
    ) -> Result<WriterPool, String>
    where
        F::File: Send,
    {
        let mut wakers = Vec::new();
        let mut placed = Vec::with_capacity(groups.len());
        let mut loads_all = Vec::new();
        let mut opened = Vec::new();
        for g in groups {
            let writers = g.writers.clamp(1, g.rings.len().max(1));
            placed.push((wakers.len(), writers));
            loads_all.extend(loads(&g.rings, writers));
            warn_orphaned_disk_buffers(config, g);
            for w in 0..writers {
                let waker = Arc::new(WriterWaker::new());
                let mine = shards_of(w, g.rings.len(), writers)
                    .into_iter()
                    .map(|s| Arc::clone(&g.rings[s]))
                    .collect();
                let own = per_writer(config, w, writers);
                let mut writer = Writer::for_destinations(
                    fs.clone(),
                    &own,
                    forwards,
                    &g.group.destinations,
                    mine,
                    Arc::clone(stats),
                    Arc::clone(&waker),
                    Arc::clone(control),
                )
                .map_err(|e| format!("cannot open destination: {e}"))?;
                if w == 0 && writers > 1 {
                    writer.repair_torn_lines()?;
                }
                opened.push(writer);
                wakers.push(waker);
            }
        }
        let mut threads = Vec::with_capacity(opened.len());
        for (w, writer) in opened.into_iter().enumerate() {
            let h = std::thread::Builder::new()
                .name(format!("ringest-writer-{w}"))
                .spawn(move || writer.run())
                .map_err(|e| format!("cannot start writer {w}: {e}"))?;
            let _ = wakers[w].thread.set(h.thread().clone());
            threads.push(h);
        }
        Ok(WriterPool {
            threads,
            wakers,
            groups: placed,
            loads: loads_all,
        })
    }

    /// Writers over all groups.
    pub fn writers(&self) -> usize {
        self.wakers.len()
    }

    /// The writers of group `group`.
    pub fn writers_of(&self, group: usize) -> usize {
        self.groups.get(group).map_or(0, |g| g.1)
    }

    /// Each writer's queue, by writer index across groups (the metrics' label).
    pub fn loads(&self) -> Vec<Arc<WriterLoad>> {
        self.loads.clone()
    }

    /// The waker of the writer of group `group` that drains shard `shard`.
    pub fn waker_of(&self, group: usize, shard: usize) -> Arc<WriterWaker> {
        let (first, writers) = self.groups[group];
        Arc::clone(&self.wakers[first + writer_of(shard, writers)])
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

    /// Sources with no destination in common: a group each, each with a
    /// ring per shard and writers of its own (auto: one per shard for a
    /// path template, one for a fixed file), counted in `writer_count`.
    #[test]
    fn each_destination_group_gets_rings_and_writers_of_its_own() {
        let text = "shards = 3\n\
            [[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\ndestinations = [\"x\"]\n\
            [[source]]\nname = \"b\"\nlisten = \"127.0.0.1:2\"\ntransport = \"tcp\"\ndestinations = [\"y\"]\n\
            [[destination]]\nname = \"x\"\ntype = \"file\"\npath = \"x-{host}.log\"\n\
            [[destination]]\nname = \"y\"\ntype = \"file\"\npath = \"y.log\"\n";
        let (file, base) = (std::path::Path::new("t.toml"), std::path::Path::new("/tmp"));
        let c = Config::from_toml(text, file, base).expect("config");
        let g = GroupRings::of_config(&c, 3);
        assert_eq!(g.len(), 2);
        let shape = |g: &GroupRings| {
            (
                g.group.sources.clone(),
                g.group.destinations.clone(),
                g.writers,
                g.rings.len(),
            )
        };
        assert_eq!(shape(&g[0]), (vec![0], vec![0], 3, 3));
        assert_eq!(shape(&g[1]), (vec![1], vec![1], 1, 3));
        for s in 0..3 {
            assert!(!Arc::ptr_eq(&g[0].rings[s], &g[1].rings[s]));
            assert!(!Arc::ptr_eq(&g[0].rings[s].load, &g[1].rings[s].load));
        }
        assert_eq!(c.writer_count(), 4);
        // Every source feeds both: one group, as before groups.
        let one = load("shards = 3").expect("config");
        let g = GroupRings::of_config(&one, 3);
        assert_eq!(g.len(), 1);
        assert_eq!(shape(&g[0]), (vec![0], vec![0], 3, 3));
    }

    /// A group with a kafka destination has one writer, so one producer,
    /// whatever `writers` says; the other groups keep theirs.
    #[cfg(feature = "kafka")]
    #[test]
    fn a_group_with_a_kafka_destination_has_one_writer_and_so_one_producer() {
        let config = |top: &str| {
            let text = format!(
                "shards = 3\n{top}\n\
                [[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\ndestinations = [\"k\", \"x\"]\n\
                [[source]]\nname = \"b\"\nlisten = \"127.0.0.1:2\"\ntransport = \"tcp\"\ndestinations = [\"y\"]\n\
                [[destination]]\nname = \"k\"\ntype = \"kafka\"\nbrokers = [\"127.0.0.1:9092\"]\ntopic = \"logs\"\n\
                [[destination]]\nname = \"x\"\ntype = \"file\"\npath = \"x-{{host}}.log\"\n\
                [[destination]]\nname = \"y\"\ntype = \"file\"\npath = \"y-{{host}}.log\"\n"
            );
            let (file, base) = (std::path::Path::new("t.toml"), std::path::Path::new("/tmp"));
            Config::from_toml(&text, file, base).expect("config")
        };
        for top in ["", "writers = 2"] {
            let c = config(top);
            let g = GroupRings::of_config(&c, 3);
            let shape: Vec<_> = g
                .iter()
                .map(|g| (g.group.destinations.clone(), g.writers, g.rings.len()))
                .collect();
            let others = if top.is_empty() { 3 } else { 2 };
            assert_eq!(
                shape,
                vec![(vec![0, 1], 1, 3), (vec![2], others, 3)],
                "{top:?}: one writer drains every shard's ring of the kafka group"
            );
            assert_eq!(c.writer_count(), 1 + others, "{top:?}");
        }
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
