//! A disk in memory that fails on demand, for the writer's unit tests.
//!
//! Files are inodes with names, so a rename (logrotate) keeps an open
//! handle on the old inode, as on a real file system. Faults are queued per
//! call kind and consumed one per call; with none queued a call succeeds
//! (or fails forever, when a `*_forever` errno is set).

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::sys::{Fs, SinkFile};

#[derive(Debug, Clone, Copy)]
pub enum WriteFault {
    /// Writes only the first n bytes, returns n.
    Short(usize),
    /// Writes nothing, returns this errno.
    Fail(i32),
}

#[derive(Default)]
pub struct Disk {
    inodes: Vec<Vec<u8>>,
    names: HashMap<PathBuf, usize>,
    pub write_faults: VecDeque<WriteFault>,
    pub sync_faults: VecDeque<i32>,
    pub open_faults: VecDeque<i32>,
    pub write_fails_forever: Option<i32>,
    pub sync_fails_forever: Option<i32>,
    pub writes: usize,
    pub syncs: usize,
    pub opens: usize,
}

#[derive(Clone, Default)]
pub struct FakeFs(Arc<Mutex<Disk>>);

impl FakeFs {
    pub fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bytes of the file now named `path` (empty if none).
    pub fn content(&self, path: &Path) -> Vec<u8> {
        let d = self.disk();
        d.names
            .get(path)
            .map(|&i| d.inodes[i].clone())
            .unwrap_or_default()
    }

    /// Creates `path` with `bytes`, as a previous run left it.
    pub fn put(&self, path: &Path, bytes: &[u8]) {
        let mut d = self.disk();
        d.inodes.push(bytes.to_vec());
        let i = d.inodes.len() - 1;
        d.names.insert(path.to_path_buf(), i);
    }

    /// `mv from to`: open handles keep writing to the moved file.
    pub fn rename(&self, from: &Path, to: &Path) {
        let mut d = self.disk();
        if let Some(i) = d.names.remove(from) {
            d.names.insert(to.to_path_buf(), i);
        }
    }
}

pub struct FakeFile {
    fs: FakeFs,
    inode: usize,
}

impl Fs for FakeFs {
    type File = FakeFile;

    fn open_append(&mut self, path: &Path) -> io::Result<FakeFile> {
        let mut d = self.disk();
        d.opens += 1;
        if let Some(errno) = d.open_faults.pop_front() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let inode = match d.names.get(path) {
            Some(&i) => i,
            None => {
                d.inodes.push(Vec::new());
                let i = d.inodes.len() - 1;
                d.names.insert(path.to_path_buf(), i);
                i
            }
        };
        drop(d);
        Ok(FakeFile {
            fs: self.clone(),
            inode,
        })
    }
}

impl SinkFile for FakeFile {
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut d = self.fs.disk();
        d.writes += 1;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let n = match d.write_faults.pop_front() {
            Some(WriteFault::Fail(errno)) => return Err(io::Error::from_raw_os_error(errno)),
            Some(WriteFault::Short(n)) => n.min(total),
            None => match d.write_fails_forever {
                Some(errno) => return Err(io::Error::from_raw_os_error(errno)),
                None => total,
            },
        };
        let mut left = n;
        let inode = self.inode;
        for b in bufs {
            let take = left.min(b.len());
            d.inodes[inode].extend_from_slice(&b[..take]);
            left -= take;
        }
        Ok(n)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut d = self.fs.disk();
        d.syncs += 1;
        match d.sync_faults.pop_front().or(d.sync_fails_forever) {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    fn last_byte(&mut self) -> io::Result<Option<u8>> {
        Ok(self.fs.disk().inodes[self.inode].last().copied())
    }
}
