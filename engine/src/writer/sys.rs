//! The file-system calls of a file destination, behind a trait.
//!
//! [`FileSink`](super::file::FileSink) and the writer loop only reach the
//! disk through [`Fs`] and [`SinkFile`], so unit tests replace the disk
//! with one that fails on demand (a short write, then ENOSPC, then
//! success; EIO on fsync; an open that fails after rotation) and check the
//! bytes that land, the retries and the counts. The engine passes [`RealFs`].

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Permissions of a file the writer creates.
const CREATE_MODE: u32 = 0o640;

/// Opens output files.
pub trait Fs {
    type File: SinkFile;
    /// Opens `path` for appending, creating it and its folders if missing.
    fn open_append(&mut self, path: &Path) -> io::Result<Self::File>;
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

impl Fs for RealFs {
    type File = File;

    fn open_append(&mut self, path: &Path) -> io::Result<File> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Read as well as append: the opener checks the last byte (torn line).
        OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .mode(CREATE_MODE)
            .open(path)
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
