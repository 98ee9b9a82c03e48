//! The file-system calls of a file destination, behind a trait.
//!
//! [`FileSink`](super::file::FileSink) and the writer loop only reach the
//! disk through [`Fs`] and [`SinkFile`], so unit tests replace the disk
//! with one that fails on demand (a short write, then ENOSPC, then
//! success; EIO on fsync; an open that fails after rotation) and check the
//! bytes that land, the retries and the counts. The engine passes [`RealFs`].
//!
//! `io = "direct"` files go through [`BlockFile`] instead: positional
//! writes on two descriptors of one file, one opened with `O_DIRECT` for
//! whole aligned blocks, one buffered for the partial blocks (see
//! [`direct`](super::direct)).

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::OnceLock;

use super::direct::DirectFiles;

/// Permissions of a file the writer creates.
const CREATE_MODE: u32 = 0o640;

/// Opens output files.
pub trait Fs {
    type File: SinkFile;
    /// Opens `path` for appending, creating it and its folders if missing.
    fn open_append(&mut self, path: &Path) -> io::Result<Self::File>;

    type Blocks: BlockFile + Send;
    /// Opens `path` for positional writes, creating it and its folders if
    /// missing, with a second descriptor in `O_DIRECT` mode. EINVAL: the
    /// file system refuses direct I/O.
    fn open_blocks(&mut self, path: &Path) -> io::Result<Self::Blocks>;
    /// The direct files open in this process, shared by every writer that
    /// opens the same file.
    fn direct_files(&self) -> &DirectFiles<Self::Blocks>;
}

/// One file opened for direct I/O: positional writes at the offset the
/// writer keeps, never `O_APPEND`, so a retry rewrites the same bytes in
/// place instead of appending them twice.
pub trait BlockFile {
    /// (device, inode): which file this is, whatever its name now.
    fn identity(&self) -> io::Result<(u64, u64)>;
    /// The file's size.
    fn size_bytes(&self) -> io::Result<u64>;
    /// `pread`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// `pwrite` through the `O_DIRECT` descriptor: `buf`'s address and
    /// length and `offset` are multiples of
    /// [`DIRECT_ALIGN_BYTES`](super::direct::DIRECT_ALIGN_BYTES).
    fn write_direct_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// `pwrite` through the buffered descriptor (any size and offset).
    fn write_buffered_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// `fdatasync`: one inode, so it covers what both descriptors wrote.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// One open output file.
pub trait SinkFile {
    /// One `writev`: may write fewer bytes than asked (a short write).
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
    /// The file's last byte; `None` when it is empty.
    fn last_byte(&mut self) -> io::Result<Option<u8>>;
}

/// The real disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

/// The direct files of this process (every writer shares them).
static REAL_DIRECT_FILES: OnceLock<DirectFiles<RealBlocks>> = OnceLock::new();

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => std::fs::create_dir_all(dir),
        None => Ok(()),
    }
}

impl Fs for RealFs {
    type File = File;
    type Blocks = RealBlocks;

    fn open_append(&mut self, path: &Path) -> io::Result<File> {
        create_parent(path)?;
        // Read as well as append: the opener checks the last byte (torn line).
        OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(CREATE_MODE)
            .open(path)
    }

    fn open_blocks(&mut self, path: &Path) -> io::Result<RealBlocks> {
        create_parent(path)?;
        // The buffered one first: it creates the file, and reads the last byte.
        let buffered = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .mode(CREATE_MODE)
            .open(path)?;
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)?;
        Ok(RealBlocks { direct, buffered })
    }

    fn direct_files(&self) -> &DirectFiles<RealBlocks> {
        REAL_DIRECT_FILES.get_or_init(DirectFiles::default)
    }
}

/// A file opened twice: `O_DIRECT` for whole blocks, buffered for the rest.
pub struct RealBlocks {
    direct: File,
    buffered: File,
}

impl BlockFile for RealBlocks {
    fn identity(&self) -> io::Result<(u64, u64)> {
        let m = self.buffered.metadata()?;
        Ok((m.dev(), m.ino()))
    }

    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.buffered.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.buffered, buf, offset)
    }

    fn write_direct_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        FileExt::write_at(&self.direct, buf, offset)
    }

    fn write_buffered_at(&mut self, buf: &[u8], offset: u64) -> io::Result<usize> {
        FileExt::write_at(&self.buffered, buf, offset)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.buffered.sync_data()
    }
}

impl SinkFile for File {
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Write::write_vectored(self, bufs)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }

    fn last_byte(&mut self) -> io::Result<Option<u8>> {
        let len = self.metadata()?.len();
        if len == 0 {
            return Ok(None);
        }
        let mut b = [0u8; 1];
        self.read_exact_at(&mut b, len - 1)?;
        Ok(Some(b[0]))
    }
}
