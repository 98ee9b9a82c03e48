//! Steady state: the page cache full, as on a log server that has run for
//! weeks (issue 19), and the page-cache write cost that goes with a state.
//!
//! Why: on these VMs memory that has sat free for a while is given back to
//! the host, and the first touch of such a page costs a fault on the host
//! side. A buffered write into the page cache then costs several times more
//! than one into memory the kernel just reclaimed. A server that has run for
//! weeks has no such memory: its page cache is full, and every new page is a
//! recycled one. A benchmark that starts on a freshly booted VM measures the
//! host, not the engine.
//!
//! How: a [`Pool`] is one folder of files that bench wrote or kept.
//! - [`Pool::top_up`] writes fill files in 1 MiB blocks until MemFree
//!   (/proc/meminfo) is at most the target, about 3 GiB by default. MemAvailable
//!   cannot be the measure: it counts clean page cache as available, so it
//!   hardly moves while the cache fills. Every 64 MiB the fill is synced
//!   (fdatasync), so the cache stays clean (cheap to reclaim) and no
//!   writeback of the fill lands inside a measurement. It is bounded in time
//!   and in bytes, and stops at once when `stop()` says so (Ctrl-C).
//! - Free pages go back to the host within seconds, so one fill at the start
//!   is not enough: the caller tops up before every run.
//! - [`Pool::adopt`] moves a finished run's output (or a write probe) into
//!   the pool instead of deleting it. Deleting frees its pages, which go cold
//!   again before the next run; kept, they are simply the oldest cache.
//! - The pool's bytes on disk are bounded ([`Target::pool_bytes_max`]): the
//!   oldest files go first. The kernel evicts the least recently used pages
//!   first too, so deleting the oldest files frees disk, not memory.
//! - Dropping the pool removes its folder: a normal end, an error, a failed
//!   run and Ctrl-C all end by dropping it. A pool left by a bench that was
//!   killed outright (SIGKILL) is removed by the next [`Pool::create`] in the
//!   same folder.
//!
//! The module uses only std and libc, and takes the stop flag as a closure,
//! so `tuning measure` (issue 16) can use it as it is.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Fill is written in blocks of this size.
const FILL_BLOCK_BYTES: u64 = MIB;
/// ... and synced every this many bytes, which bounds the dirty pages.
const FILL_SYNC_BYTES: u64 = 64 * MIB;
/// MemFree is read again after this many bytes.
const FILL_CHECK_BYTES: u64 = 16 * MIB;
/// One fill file holds at most this much (the unit `trim` deletes).
const FILL_FILE_BYTES_MAX: u64 = GIB;
/// The write probe's block size: ringest's writer batch, and dd's `bs=256K`.
pub const PROBE_BLOCK_BYTES: usize = 256 * 1024;

/// Where a top-up stops.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Fill until MemFree is at most this.
    pub mem_free_bytes: u64,
    /// The pool (fill + kept files) never holds more than this on disk.
    pub pool_bytes_max: u64,
    /// One top-up gives up after this long.
    pub time_max: Duration,
}

impl Target {
    /// About 3 GiB free (issue 19), a pool of at most MemTotal + 2 GiB (more
    /// can never be cached at once) and at most what the disk has beyond
    /// `disk_reserve_bytes`, and 10 minutes per top-up.
    pub fn default_for(dir: &Path, disk_reserve_bytes: u64) -> io::Result<Target> {
        let mem = meminfo()?;
        let disk = disk_available_bytes(dir)?;
        Ok(Target {
            mem_free_bytes: 3 * GIB,
            pool_bytes_max: (mem.total + 2 * GIB).min(disk.saturating_sub(disk_reserve_bytes)),
            time_max: Duration::from_secs(600),
        })
    }
}

/// What one top-up did.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct TopUp {
    pub written_bytes: u64,
    pub secs: f64,
    pub mem_free_before_bytes: u64,
    pub mem_free_after_bytes: u64,
    pub cached_after_bytes: u64,
    /// MemFree reached the target.
    pub reached: bool,
    /// When not reached: stopped by the byte bound (else by the time bound).
    pub stopped_by_bytes: bool,
}

impl TopUp {
    pub fn describe(&self, target: &Target) -> String {
        let gib = |b: u64| b as f64 / GIB as f64;
        let how = if self.reached {
            "reached".to_string()
        } else if self.stopped_by_bytes {
            format!(
                "NOT reached: the pool's bound of {:.2} GiB",
                gib(target.pool_bytes_max)
            )
        } else {
            format!("NOT reached within {:?}", target.time_max)
        };
        format!(
            "MemFree {:.2} → {:.2} GiB (target ≤ {:.2}: {how}), page cache {:.2} GiB, {:.0} MiB written in {:.1} s",
            gib(self.mem_free_before_bytes),
            gib(self.mem_free_after_bytes),
            gib(target.mem_free_bytes),
            gib(self.cached_after_bytes),
            self.written_bytes as f64 / MIB as f64,
            self.secs
        )
    }
}

/// The steady-state page cache: see the module documentation.
pub struct Pool {
    dir: PathBuf,
    pub target: Target,
    /// Oldest first: (path, bytes).
    files: VecDeque<(PathBuf, u64)>,
    next_id: u64,
    /// The fill file being appended to: always `files.back()`.
    current: Option<File>,
    removed: bool,
}

impl Pool {
    /// An empty pool in `dir` (created; a stale one from a killed run is removed).
    pub fn create(dir: &Path, target: Target) -> io::Result<Pool> {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        fs::create_dir_all(dir)?;
        Ok(Pool {
            dir: dir.to_path_buf(),
            target,
            files: VecDeque::new(),
            next_id: 1,
            current: None,
            removed: false,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes the pool holds on disk.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|(_, b)| b).sum()
    }

    fn new_path(&mut self, kind: &str) -> PathBuf {
        let p = self.dir.join(format!("{kind}-{:06}.bin", self.next_id));
        self.next_id += 1;
        p
    }

    /// Writes fill until MemFree ≤ the target, the pool's bound was written
    /// once over, `time_max` passed, or `stop()`. Returns what it did; an
    /// error only for I/O errors and when stopped (`ErrorKind::Interrupted`).
    pub fn top_up(&mut self, stop: &dyn Fn() -> bool) -> io::Result<TopUp> {
        let start = Instant::now();
        let before = meminfo()?.free;
        let mut r = TopUp {
            mem_free_before_bytes: before,
            mem_free_after_bytes: before,
            ..TopUp::default()
        };
        let block = vec![0xa5u8; FILL_BLOCK_BYTES as usize];
        let mut free = before;
        let mut since_sync = 0u64;
        let mut since_check = 0u64;
        loop {
            if free <= self.target.mem_free_bytes {
                r.reached = true;
                break;
            }
            if stop() {
                self.sync_current()?;
                return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
            }
            // Written the whole bound once over without getting there: the
            // kernel is not keeping our pages, or others free memory as fast.
            if r.written_bytes + FILL_BLOCK_BYTES > self.target.pool_bytes_max {
                r.stopped_by_bytes = true;
                break;
            }
            if start.elapsed() >= self.target.time_max {
                break;
            }
            self.make_room(FILL_BLOCK_BYTES)?;
            let file_max = FILL_FILE_BYTES_MAX.min(self.target.pool_bytes_max);
            let full = self
                .files
                .back()
                .is_none_or(|(_, n)| n + FILL_BLOCK_BYTES > file_max);
            if self.current.is_none() || full {
                self.sync_current()?;
                let p = self.new_path("fill");
                let f = OpenOptions::new().create_new(true).write(true).open(&p)?;
                self.files.push_back((p, 0));
                self.current = Some(f);
            }
            let f = self.current.as_mut().expect("a fill file is open");
            f.write_all(&block)?;
            self.files.back_mut().expect("the fill file is listed").1 += FILL_BLOCK_BYTES;
            r.written_bytes += FILL_BLOCK_BYTES;
            since_sync += FILL_BLOCK_BYTES;
            since_check += FILL_BLOCK_BYTES;
            if since_sync >= FILL_SYNC_BYTES {
                self.sync_current()?;
                since_sync = 0;
            }
            if since_check >= FILL_CHECK_BYTES {
                free = meminfo()?.free;
                since_check = 0;
            }
        }
        self.sync_current()?;
        let m = meminfo()?;
        r.mem_free_after_bytes = m.free;
        r.cached_after_bytes = m.cached;
        r.secs = start.elapsed().as_secs_f64();
        Ok(r)
    }

    fn sync_current(&mut self) -> io::Result<()> {
        if let Some(f) = &self.current {
            f.sync_data()?;
        }
        Ok(())
    }

    /// Deletes the oldest files until `more` bytes fit under the bound.
    fn make_room(&mut self, more: u64) -> io::Result<()> {
        while self.bytes() + more > self.target.pool_bytes_max {
            if self.remove_oldest()?.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// Deletes the oldest files until at least `bytes` are freed on disk or
    /// the pool is empty (disk_budget: room for a run's output); returns
    /// the bytes freed. The oldest files are the least recently used page
    /// cache, so this frees disk rather than memory.
    pub fn trim_oldest(&mut self, bytes: u64) -> io::Result<u64> {
        let mut freed = 0;
        while freed < bytes {
            match self.remove_oldest()? {
                Some(n) => freed += n,
                None => break,
            }
        }
        Ok(freed)
    }

    /// Deletes the oldest file; its bytes, or None when the pool is empty.
    fn remove_oldest(&mut self) -> io::Result<Option<u64>> {
        let Some((p, n)) = self.files.pop_front() else {
            return Ok(None);
        };
        if self.files.is_empty() {
            // That was the fill file being written (always the newest):
            // closed first, so deleting it frees its blocks.
            self.current = None;
        }
        fs::remove_file(&p)?;
        Ok(Some(n))
    }

    /// Moves `file` into the pool (synced first, so its pages are clean and
    /// no writeback of it lands in a later measurement), then keeps the pool
    /// under its bound. The file must be on the pool's filesystem.
    pub fn adopt(&mut self, file: &Path, kind: &str) -> io::Result<()> {
        // The next fill starts a new file, so the one being written stays last.
        self.sync_current()?;
        self.current = None;
        let f = File::open(file)?;
        f.sync_data()?;
        let len = f.metadata()?.len();
        drop(f);
        let p = self.new_path(kind);
        fs::rename(file, &p)?;
        self.files.push_back((p, len));
        self.make_room(0)
    }

    /// Removes the pool's folder (what drop does, with the error).
    pub fn remove(mut self) -> io::Result<()> {
        self.removed = true;
        self.current = None;
        fs::remove_dir_all(&self.dir)
    }
}

#[cfg(test)]
impl Pool {
    /// Tests: adopts `n` new files of 1 MiB; their paths in the pool.
    pub fn adopt_mib_files(&mut self, n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|_| {
                let f = self.dir.with_extension(format!("adopt{}", self.next_id));
                fs::write(&f, vec![0u8; MIB as usize]).unwrap();
                self.adopt(&f, "out").unwrap();
                assert!(!f.exists(), "moved, not copied");
                self.files.back().unwrap().0.clone()
            })
            .collect()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if !self.removed {
            self.current = None;
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// The figures of /proc/meminfo bench uses, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct MemInfo {
    pub total: u64,
    pub free: u64,
    /// Page cache ("Cached").
    pub cached: u64,
}

pub fn meminfo() -> io::Result<MemInfo> {
    parse_meminfo(&fs::read_to_string("/proc/meminfo")?)
        .ok_or_else(|| io::Error::other("unexpected /proc/meminfo"))
}

fn parse_meminfo(s: &str) -> Option<MemInfo> {
    let get = |key: &str| -> Option<u64> {
        s.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some(MemInfo {
        total: get("MemTotal")?,
        free: get("MemFree")?,
        cached: get("Cached")?,
    })
}

/// Bytes an unprivileged user may still write on `dir`'s filesystem.
pub fn disk_available_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path with a NUL byte"))?;
    // SAFETY: statvfs writes into the zeroed struct we pass; `c` is a valid
    // NUL-terminated path that outlives the call.
    let (rc, st) = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &mut st), st)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // fsblkcnt_t and c_ulong are u64 on 64-bit Linux, u32 on some targets.
    #[allow(clippy::unnecessary_cast)]
    let bytes = st.f_bavail as u64 * st.f_frsize as u64;
    Ok(bytes)
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu_s() -> f64 {
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    }
}

/// The page-cache write cost, measured the same way every time: `bytes`
/// written as 256 KiB `write()`s into the new file `path`, no fsync, like
/// `dd if=/dev/zero of=path bs=256K count=N`. Returns CPU-seconds per GB
/// (10^9 bytes) of this thread, and leaves the file for the caller to keep
/// (steady state: into the pool) or delete.
pub fn write_cost_cpu_s_per_gb(path: &Path, bytes: u64) -> io::Result<f64> {
    let block = vec![b'x'; PROBE_BLOCK_BYTES];
    let n = bytes.div_ceil(PROBE_BLOCK_BYTES as u64).max(1);
    let mut f = OpenOptions::new().create_new(true).write(true).open(path)?;
    let t0 = thread_cpu_s();
    for _ in 0..n {
        f.write_all(&block)?;
    }
    let t1 = thread_cpu_s();
    Ok((t1 - t0) / (n as f64 * PROBE_BLOCK_BYTES as f64 / 1e9))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("bench-steady-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn small(pool_mib: u64) -> Target {
        Target {
            // Unreachable on purpose: only the byte bound stops these fills.
            mem_free_bytes: 0,
            pool_bytes_max: pool_mib * MIB,
            time_max: Duration::from_secs(60),
        }
    }

    #[test]
    fn meminfo_parses() {
        let m = parse_meminfo(
            "MemTotal:       24683652 kB\nMemFree:        13446388 kB\nMemAvailable:   22802336 kB\nBuffers: 1 kB\nCached:          9269184 kB\n",
        )
        .unwrap();
        assert_eq!(m.total, 24683652 * 1024);
        assert_eq!(m.free, 13446388 * 1024);
        assert_eq!(m.cached, 9269184 * 1024);
        assert!(parse_meminfo("MemTotal: 1 kB\n").is_none());
        assert!(meminfo().unwrap().total > 0);
    }

    #[test]
    fn top_up_stops_at_the_byte_bound_and_drop_removes_everything() {
        let d = dir("bound");
        let mut p = Pool::create(&d, small(8)).unwrap();
        let r = p.top_up(&|| false).unwrap();
        assert!(!r.reached && r.stopped_by_bytes, "{r:?}");
        assert_eq!(r.written_bytes, 8 * MIB);
        assert_eq!(p.bytes(), 8 * MIB);
        assert!(fs::read_dir(&d).unwrap().count() >= 1);
        drop(p);
        assert!(!d.exists(), "the pool's folder is gone after drop");
    }

    #[test]
    fn a_reached_target_writes_nothing() {
        let d = dir("reached");
        let mut t = small(8);
        t.mem_free_bytes = u64::MAX;
        let mut p = Pool::create(&d, t).unwrap();
        let r = p.top_up(&|| false).unwrap();
        assert!(r.reached && r.written_bytes == 0, "{r:?}");
        p.remove().unwrap();
        assert!(!d.exists());
    }

    #[test]
    fn stop_interrupts_a_top_up() {
        let d = dir("stop");
        let mut p = Pool::create(&d, small(8)).unwrap();
        let e = p.top_up(&|| true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
        drop(p);
        assert!(!d.exists());
    }

    #[test]
    fn adopted_files_count_and_the_oldest_go_first() {
        let d = dir("adopt");
        let mut p = Pool::create(&d, small(3)).unwrap();
        let names = p.adopt_mib_files(3);
        assert_eq!(p.bytes(), 3 * MIB);
        // A fourth pushes the first out.
        p.adopt_mib_files(1);
        assert_eq!(p.bytes(), 3 * MIB);
        assert!(!names[0].exists() && names[1].exists());
        drop(p);
        assert!(!d.exists());
    }

    #[test]
    fn trim_deletes_the_oldest_files_until_enough_is_freed() {
        let d = dir("trim");
        let mut p = Pool::create(&d, small(8)).unwrap();
        let names = p.adopt_mib_files(4);
        // 1.5 MiB asked: whole files go, so two of them.
        assert_eq!(p.trim_oldest(MIB + MIB / 2).unwrap(), 2 * MIB);
        assert!(!names[0].exists() && !names[1].exists());
        assert!(names[2].exists() && names[3].exists());
        assert_eq!(p.bytes(), 2 * MIB);
        assert_eq!(p.trim_oldest(0).unwrap(), 0, "nothing asked, nothing freed");
        // More than it holds: everything, and no error.
        assert_eq!(p.trim_oldest(100 * MIB).unwrap(), 2 * MIB);
        assert_eq!(p.bytes(), 0);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        // The fill file being written can go too, and the next top-up
        // opens a new one.
        let r = p.top_up(&|| false).unwrap();
        assert_eq!(r.written_bytes, 8 * MIB);
        assert_eq!(p.trim_oldest(8 * MIB).unwrap(), 8 * MIB);
        assert!(p.current.is_none());
        p.top_up(&|| false).unwrap();
        assert_eq!(p.bytes(), 8 * MIB);
        drop(p);
        assert!(!d.exists());
    }

    #[test]
    fn a_stale_pool_is_removed_on_create() {
        let d = dir("stale");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("fill-000001.bin"), b"old").unwrap();
        let p = Pool::create(&d, small(1)).unwrap();
        assert_eq!(fs::read_dir(&d).unwrap().count(), 0);
        drop(p);
    }

    #[test]
    fn write_cost_is_positive_and_leaves_the_file() {
        let d = dir("probe");
        fs::create_dir_all(&d).unwrap();
        let f = d.join("probe.bin");
        let c = write_cost_cpu_s_per_gb(&f, 4 * MIB).unwrap();
        assert!(c.is_finite() && c >= 0.0, "{c}");
        assert_eq!(fs::metadata(&f).unwrap().len(), 4 * MIB);
        fs::remove_dir_all(&d).unwrap();
    }
}
