//! The open files of a templated destination: at most `max_open_files`,
//! the least recently used closed first, as rsyslog's dynafile cache and
//! syslog-ng's `file()` with a template bound theirs.
//!
//! Each file is a [`FileSink`], so every guarantee of a single file holds
//! per file: whole lines, resumed short writes, the torn-line repair at
//! open, the fsync policy. A file closed to make room (or on SIGHUP, or at
//! the end) is fsynced first when it holds unsynced bytes and the policy
//! syncs at all, so closing never weakens `fsync = "batch"` or
//! `"interval"`; the result is handed back, with the messages it covers,
//! for the destination to count. Opening creates the missing folders
//! ([`Fs::open_append`]).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::file::{FileSink, Opened};
use super::sys::Fs;
use crate::config::{DestinationConfig, FsyncPolicy};

/// One open file and what it holds unsynced.
pub struct OpenFile<F: Fs> {
    pub sink: FileSink<F>,
    /// Messages written since its last successful fsync.
    pub unsynced: u64,
    /// Its tick in [`FileSet::lru`].
    used: u64,
}

/// A file that was closed, and whether its last fsync worked.
pub struct Closed {
    pub path: PathBuf,
    /// Messages written since its last good fsync, before this close.
    pub unsynced: u64,
    /// `Ok(true)`: synced now; `Ok(false)`: nothing to sync or `fsync = "never"`.
    pub sync: io::Result<bool>,
}

pub struct FileSet<F: Fs> {
    fs: F,
    /// The destination's settings (its `path` is the template).
    cfg: DestinationConfig,
    max_open: usize,
    files: HashMap<Box<[u8]>, OpenFile<F>>,
    /// Use tick → path; the first entry is the least recently used.
    lru: BTreeMap<u64, Box<[u8]>>,
    tick: u64,
}

impl<F: Fs + Clone> FileSet<F> {
    pub fn new(fs: F, cfg: &DestinationConfig, max_open: usize) -> FileSet<F> {
        assert!(
            max_open >= 1,
            "max_open_files is validated to be at least 1"
        );
        FileSet {
            fs,
            cfg: cfg.clone(),
            max_open,
            files: HashMap::new(),
            lru: BTreeMap::new(),
            tick: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The file at `path`, marked most recently used; opened when it is
    /// not, after closing the least recently used one if the set is full.
    /// `closed` gets the file closed to make room; the `Opened` is `Some`
    /// when this call opened the file. On an open error nothing was closed.
    pub fn get(
        &mut self,
        path: &[u8],
        closed: &mut Vec<Closed>,
    ) -> io::Result<(&mut OpenFile<F>, Option<Opened>)> {
        self.tick += 1;
        let tick = self.tick;
        let mut opened = None;
        if !self.files.contains_key(path) {
            // Open first: if it fails, the set is as it was.
            let at = PathBuf::from(OsStr::from_bytes(path));
            let (sink, o) = FileSink::open_at(self.fs.clone(), &self.cfg, at)?;
            if self.files.len() >= self.max_open {
                if let Some((_, lru)) = self.lru.pop_first() {
                    if let Some(f) = self.files.remove(&lru) {
                        closed.push(self.close(f));
                    }
                }
            }
            self.files.insert(
                path.into(),
                OpenFile {
                    sink,
                    unsynced: 0,
                    used: tick,
                },
            );
            self.lru.insert(tick, path.into());
            opened = Some(o);
        }
        debug_assert_eq!(self.files.len(), self.lru.len());
        debug_assert!(self.files.len() <= self.max_open);
        let Some(f) = self.files.get_mut(path) else {
            return Err(io::Error::other("file set lost a file it just opened"));
        };
        if f.used != tick {
            if let Some(p) = self.lru.remove(&f.used) {
                self.lru.insert(tick, p);
            }
            f.used = tick;
        }
        Ok((f, opened))
    }

    /// The open file at `path`, if open; its place in the LRU order stays.
    pub fn peek_mut(&mut self, path: &[u8]) -> Option<&mut OpenFile<F>> {
        self.files.get_mut(path)
    }

    /// With `fsync = "interval"`, the open files that hold bytes not yet
    /// fsynced, least recently used first: idle ticks apply the policy to
    /// them. Empty under the other policies (`batch` syncs every write,
    /// `never` only at close).
    pub fn dirty_paths(&self) -> Vec<Box<[u8]>> {
        if self.cfg.fsync != FsyncPolicy::Interval {
            return Vec::new();
        }
        self.lru
            .values()
            .filter(|p| self.files.get(&**p).is_some_and(|f| f.sink.is_dirty()))
            .cloned()
            .collect()
    }

    /// Closes every file (SIGHUP: the next message opens its file by name
    /// again; shutdown). `force` syncs even under `fsync = "never"`.
    pub fn close_all(&mut self, force: bool, closed: &mut Vec<Closed>) {
        self.lru.clear();
        for (_, f) in std::mem::take(&mut self.files) {
            closed.push(self.close_with(f, force));
        }
    }

    fn close(&self, f: OpenFile<F>) -> Closed {
        self.close_with(f, false)
    }

    fn close_with(&self, mut f: OpenFile<F>, force: bool) -> Closed {
        let sync = if force || self.cfg.fsync != FsyncPolicy::Never {
            f.sink.after_round(true)
        } else {
            Ok(false)
        };
        Closed {
            path: f.sink.path.clone(),
            unsynced: f.unsynced,
            sync,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::writer::fake::FakeFs;

    fn cfg(fsync: &str) -> DestinationConfig {
        let text = format!(
            "[[source]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\n\
             [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"/l/{{host}}.log\"\n\
             fsync = \"{fsync}\"\n"
        );
        let c = crate::config::Config::from_toml(&text, Path::new("t"), Path::new("/"));
        c.expect("config").destinations.remove(0)
    }

    fn write(set: &mut FileSet<FakeFs>, path: &str, line: &str, closed: &mut Vec<Closed>) {
        let (f, _) = set.get(path.as_bytes(), closed).expect("open");
        f.sink
            .write_from(&[line.as_bytes()], &mut 0)
            .expect("write");
        f.unsynced += 1;
    }

    #[test]
    fn the_least_recently_used_file_is_closed_first_and_synced() {
        let fs = FakeFs::default();
        let mut set = FileSet::new(fs.clone(), &cfg("interval"), 2);
        let mut closed = Vec::new();
        write(&mut set, "/l/a.log", "a1\n", &mut closed);
        write(&mut set, "/l/b.log", "b1\n", &mut closed);
        write(&mut set, "/l/a.log", "a2\n", &mut closed);
        assert!(closed.is_empty());
        // Full: c pushes out b, used before a's last write.
        write(&mut set, "/l/c.log", "c1\n", &mut closed);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].path, Path::new("/l/b.log"));
        assert_eq!(closed[0].unsynced, 1);
        assert!(matches!(closed[0].sync, Ok(true)), "dirty: synced at close");
        assert_eq!(set.len(), 2);
        // b comes back, a (older than c) goes.
        write(&mut set, "/l/b.log", "b2\n", &mut closed);
        assert_eq!(closed[1].path, Path::new("/l/a.log"));
        assert_eq!(fs.content(Path::new("/l/a.log")), b"a1\na2\n");
        assert_eq!(fs.content(Path::new("/l/b.log")), b"b1\nb2\n");
        assert_eq!(fs.content(Path::new("/l/c.log")), b"c1\n");
        let d = fs.disk();
        assert_eq!((d.opens, d.syncs), (4, 2));
    }

    #[test]
    fn a_failed_open_closes_nothing_and_can_be_retried() {
        let fs = FakeFs::default();
        let mut set = FileSet::new(fs.clone(), &cfg("never"), 1);
        let mut closed = Vec::new();
        write(&mut set, "/l/a.log", "a\n", &mut closed);
        fs.disk().open_faults.push_back(libc::EACCES);
        assert!(set.get(b"/l/b.log", &mut closed).is_err());
        assert!(closed.is_empty());
        assert_eq!(set.len(), 1);
        write(&mut set, "/l/b.log", "b\n", &mut closed);
        assert_eq!(closed.len(), 1);
        assert!(
            matches!(closed[0].sync, Ok(false)),
            "fsync = never: no sync at close"
        );
        assert_eq!(fs.disk().syncs, 0);
    }

    #[test]
    fn a_reopened_file_with_a_torn_line_is_repaired() {
        let fs = FakeFs::default();
        fs.put(Path::new("/l/a.log"), b"torn");
        let mut set = FileSet::new(fs.clone(), &cfg("batch"), 4);
        let mut closed = Vec::new();
        let (_, opened) = set.get(b"/l/a.log", &mut closed).expect("open");
        assert_eq!(opened.map(|o| o.torn_last_line), Some(true));
        let (_, again) = set.get(b"/l/a.log", &mut closed).expect("open");
        assert!(again.is_none(), "already open");
        write(&mut set, "/l/a.log", "m\n", &mut closed);
        assert_eq!(fs.content(Path::new("/l/a.log")), b"torn\nm\n");
    }

    #[test]
    fn close_all_syncs_dirty_files_and_reports_a_failed_sync() {
        let fs = FakeFs::default();
        let mut set = FileSet::new(fs.clone(), &cfg("never"), 4);
        let mut closed = Vec::new();
        write(&mut set, "/l/a.log", "a\n", &mut closed);
        write(&mut set, "/l/b.log", "b\n", &mut closed);
        fs.disk().sync_faults.push_back(libc::EIO);
        set.close_all(true, &mut closed);
        assert!(set.is_empty());
        assert_eq!(closed.len(), 2);
        assert_eq!(closed.iter().filter(|c| c.sync.is_err()).count(), 1);
        assert!(closed.iter().all(|c| c.unsynced == 1));
    }
}
