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

use super::direct::{DirectFiles, DIRECT_ALIGN_BYTES};
use super::sys::{BlockFile, Fs, SinkFile};

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
    /// Opening for direct I/O fails with EINVAL, as on ramfs.
    pub direct_refused: bool,
    /// Every positional write of a direct file, in order.
    pub block_writes: Vec<BlockWrite>,
}

/// One `pwrite` of a direct file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockWrite {
    /// Through the `O_DIRECT` descriptor.
    pub direct: bool,
    pub offset: u64,
    pub len: usize,
    /// The buffer's address was a multiple of the alignment.
    pub aligned_addr: bool,
    /// The file's size when the write began.
    pub size_before: u64,
}

#[derive(Clone, Default)]
pub struct FakeFs(Arc<Mutex<Disk>>, Arc<DirectFiles<FakeFile>>);

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
    type Blocks = FakeFile;

    fn open_blocks(&mut self, path: &Path) -> io::Result<FakeFile> {
        let refused = self.disk().direct_refused;
        let f = self.open_append(path)?;
        if refused {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        Ok(f)
    }

    fn direct_files(&self) -> &DirectFiles<FakeFile> {
        &self.1
    }

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

impl Disk {
    /// How many of `total` bytes the next write takes, or its error.
    fn next_write(&mut self, total: usize) -> io::Result<usize> {
        self.writes += 1;
        match self.write_faults.pop_front() {
            Some(WriteFault::Fail(errno)) => Err(io::Error::from_raw_os_error(errno)),
            Some(WriteFault::Short(n)) => Ok(n.min(total)),
            None => match self.write_fails_forever {
                Some(errno) => Err(io::Error::from_raw_os_error(errno)),
                None => Ok(total),
            },
        }
    }
}

impl FakeFile {
    /// A `pwrite` of a direct file: EINVAL when `direct` and misaligned,
    /// as the kernel answers.
    fn write_at(&mut self, buf: &[u8], offset: u64, direct: bool) -> io::Result<usize> {
        let mut d = self.fs.disk();
        let align = DIRECT_ALIGN_BYTES;
        let aligned_addr = (buf.as_ptr() as usize).is_multiple_of(align);
        let size_before = d.inodes[self.inode].len() as u64;
        d.block_writes.push(BlockWrite {
            direct,
            offset,
            len: buf.len(),
            aligned_addr,
            size_before,
        });
        let misaligned = !aligned_addr
            || !buf.len().is_multiple_of(align)
            || !offset.is_multiple_of(align as u64);
        if direct && misaligned {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let n = d.next_write(buf.len())?;
        let file = &mut d.inodes[self.inode];
        let at = usize::try_from(offset).expect("fake files are small");
        assert!(at <= file.len(), "a write past the end would leave a hole");
        let end = at + n;
        if end > file.len() {
            file.resize(end, 0);
        }
        file[at..end].copy_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl BlockFile for FakeFile {
    fn identity(&self) -> io::Result<(u64, u64)> {
        Ok((0, self.inode as u64))
    }

    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.fs.disk().inodes[self.inode].len() as u64)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let d = self.fs.disk();
        let file = &d.inodes[self.inode];
        let at = (offset as usize).min(file.len());
        let n = buf.len().min(file.len() - at);
        buf[..n].copy_from_slice(&file[at..at + n]);
        Ok(n)
    }

    fn write_direct_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.write_at(buf, offset, true)
    }

    fn write_buffered_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.write_at(buf, offset, false)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        SinkFile::sync_data(self)
    }
}

impl SinkFile for FakeFile {
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut d = self.fs.disk();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let n = d.next_write(total)?;
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
