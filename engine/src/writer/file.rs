//! The `file` destination: appends whole rounds with as few writev calls as
//! the kernel allows, and never writes a byte twice.
//!
//! - A write resumes at the byte where the last one stopped. A short write
//!   followed by an error (ENOSPC, EIO) leaves `done` at the first byte the
//!   kernel did not take, and the retry starts there: the half-written line
//!   is completed, not glued to a fresh copy of the round.
//! - An fsync that fails is retried on its own; the bytes are not written
//!   again (they are in the file; whether they reach the disk, a retried
//!   fsync cannot tell, so the caller counts them as maybe lost).
//! - A file that does not end with `\n` when opened has a torn last line (a
//!   crash in the middle of a write): a `\n` goes in before the next message,
//!   so no message is glued to the torn one.
//! - With `io = "direct"` the same holds through [`direct`](super::direct):
//!   the handle differs, the rules above do not. Where the file system
//!   refuses `O_DIRECT`, the file is opened buffered instead.

use std::io::{self, IoSlice};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::direct::{open_direct, SharedDirect};
use super::sys::{Fs, SinkFile};
use crate::config::{DestinationConfig, FileIo, FsyncPolicy, OutputFormat};

/// writev takes at most IOV_MAX (1024 on Linux) slices per call.
const IOV_MAX: usize = 1024;

/// What opening a file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The file ended without `\n`; one is written before the next message.
    pub torn_last_line: bool,
    /// `io = "direct"`, but the file system refused `O_DIRECT` (EINVAL):
    /// the file is written buffered.
    pub direct_refused: bool,
}

/// The open file, as `io` asked and the file system allowed.
enum Handle<F: Fs> {
    Buffered(F::File),
    Direct(SharedDirect<F::Blocks>),
}

impl<F: Fs> Handle<F> {
    /// Whether this sink writes the newline after a torn last line: a
    /// direct file, shared between writers, writes it itself.
    fn sink_ends_torn_line(&self, opened: Opened) -> bool {
        opened.torn_last_line && matches!(self, Handle::Buffered(_))
    }
}

impl<F: Fs> SinkFile for Handle<F> {
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Handle::Buffered(f) => f.write_vectored(bufs),
            Handle::Direct(f) => f.write_vectored(bufs),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        match self {
            Handle::Buffered(f) => f.sync_data(),
            Handle::Direct(f) => f.sync_data(),
        }
    }

    fn last_byte(&mut self) -> io::Result<Option<u8>> {
        match self {
            Handle::Buffered(f) => f.last_byte(),
            Handle::Direct(f) => f.last_byte(),
        }
    }
}

pub struct FileSink<F: Fs> {
    pub name: String,
    pub path: PathBuf,
    pub format: OutputFormat,
    fsync: FsyncPolicy,
    fsync_interval: Duration,
    io: FileIo,
    direct_buffer_bytes: usize,
    fs: F,
    file: Handle<F>,
    last_sync: Instant,
    /// Bytes written since the last successful fsync.
    dirty: bool,
    /// The file ends in a torn line: write `\n` before anything else.
    needs_newline: bool,
}

/// Opens `path` for buffered appends; true when its last line is torn.
fn buffered<F: Fs>(fs: &mut F, path: &Path) -> io::Result<(Handle<F>, bool)> {
    let mut file = fs.open_append(path)?;
    let torn = file.last_byte()?.is_some_and(|b| b != b'\n');
    Ok((Handle::Buffered(file), torn))
}

/// Opens `path` as `io` asks (buffered where direct I/O is refused) and
/// looks at its last byte.
fn open_checked<F: Fs>(
    fs: &mut F,
    path: &Path,
    io: FileIo,
    direct_buffer_bytes: usize,
) -> io::Result<(Handle<F>, Opened)> {
    let mut direct_refused = false;
    let (file, torn_last_line) = match io {
        FileIo::Buffered => buffered(fs, path)?,
        FileIo::Direct => match open_direct(fs, path, direct_buffer_bytes) {
            // The shared direct file ends a torn line itself, once for all
            // writers: this sink must not add a second newline.
            Ok(d) => (Handle::Direct(d.file), d.torn_last_line),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                direct_refused = true;
                buffered(fs, path)?
            }
            Err(e) => return Err(e),
        },
    };
    Ok((
        file,
        Opened {
            torn_last_line,
            direct_refused,
        },
    ))
}

impl<F: Fs> FileSink<F> {
    pub fn open(fs: F, cfg: &DestinationConfig) -> io::Result<(FileSink<F>, Opened)> {
        Self::open_at(fs, cfg, cfg.path.clone())
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", cfg.path.display())))
    }

    /// Opens `path` with `cfg`'s settings (a path template's file); the
    /// error is the OS one as it is, so it classifies as a write failure.
    pub fn open_at(
        mut fs: F,
        cfg: &DestinationConfig,
        path: PathBuf,
    ) -> io::Result<(FileSink<F>, Opened)> {
        let direct_buffer_bytes = cfg.direct_buffer_bytes;
        let (file, opened) = open_checked(&mut fs, &path, cfg.io, direct_buffer_bytes)?;
        let needs_newline = file.sink_ends_torn_line(opened);
        let sink = FileSink {
            name: cfg.name.clone(),
            path,
            format: cfg.format,
            fsync: cfg.fsync,
            io: cfg.io,
            direct_buffer_bytes,
            fsync_interval: Duration::from_millis(cfg.fsync_interval_ms),
            fs,
            file,
            last_sync: Instant::now(),
            dirty: false,
            needs_newline,
        };
        Ok((sink, opened))
    }

    /// Opens the path again (logrotate). The new file is opened first: if
    /// that fails, the old one stays in use and nothing changes. Otherwise
    /// the old file is synced if it holds unsynced bytes (the result is the
    /// inner one: an fsync failure there means those bytes may not be on
    /// disk) and then closed.
    pub fn reopen(&mut self) -> io::Result<(Opened, io::Result<()>)> {
        let (file, opened) =
            open_checked(&mut self.fs, &self.path, self.io, self.direct_buffer_bytes)?;
        let old_sync = if self.dirty {
            self.file.sync_data()
        } else {
            Ok(())
        };
        self.needs_newline = file.sink_ends_torn_line(opened);
        self.file = file;
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok((opened, old_sync))
    }

    /// Writes `parts` from byte `*done` of their concatenation on, advancing
    /// `*done` past every byte the kernel took, also when it then fails: a
    /// retry with the same `parts` and `done` resumes exactly where this
    /// call stopped. Empty parts are skipped (an all-empty writev returns 0,
    /// which would read as "disk full").
    pub fn write_from(&mut self, parts: &[&[u8]], done: &mut usize) -> io::Result<()> {
        while self.needs_newline {
            // One byte: it goes in whole or not at all.
            match self.file.write_vectored(&[IoSlice::new(b"\n")]) {
                Ok(0) => return Err(write_zero()),
                Ok(_) => {
                    self.needs_newline = false;
                    self.dirty = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let total: usize = parts.iter().map(|p| p.len()).sum();
        assert!(
            *done <= total,
            "resume offset {} past the end {total}",
            *done
        );
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len().min(IOV_MAX));
        while *done < total {
            slices.clear();
            let mut skip = *done;
            for p in parts {
                if slices.len() == IOV_MAX {
                    break;
                }
                if skip >= p.len() {
                    skip -= p.len();
                    continue;
                }
                slices.push(IoSlice::new(&p[skip..]));
                skip = 0;
            }
            match self.file.write_vectored(&slices) {
                Ok(0) => return Err(write_zero()),
                Ok(n) => {
                    *done += n;
                    self.dirty = true;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Applies the fsync policy after a round of writes (or on an idle tick);
    /// `force` syncs whatever the policy. Returns whether an fsync succeeded.
    /// On error the bytes stay unsynced and the next call tries again.
    pub fn after_round(&mut self, force: bool) -> io::Result<bool> {
        if !self.dirty {
            return Ok(false);
        }
        let due = match self.fsync {
            FsyncPolicy::Never => false,
            FsyncPolicy::Batch => true,
            FsyncPolicy::Interval => self.last_sync.elapsed() >= self.fsync_interval,
        };
        if !(due || force) {
            return Ok(false);
        }
        self.file.sync_data()?;
        self.last_sync = Instant::now();
        self.dirty = false;
        Ok(true)
    }

    /// True while written bytes wait for an fsync.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }
}

fn write_zero() -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, "write returned 0")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{DestinationType, OutputFormat};
    use crate::writer::fake::{FakeFs, WriteFault};
    use crate::writer::sys::RealFs;

    fn cfg(path: PathBuf) -> DestinationConfig {
        // Parsed, so every other key takes its documented default.
        let mut d: DestinationConfig =
            toml::from_str("name = \"d\"\ntype = \"file\"\nfsync = \"never\"").expect("config");
        d.path = path;
        assert_eq!(
            (d.kind, d.format, d.fsync, d.io),
            (
                DestinationType::File,
                OutputFormat::Raw,
                FsyncPolicy::Never,
                FileIo::Direct
            )
        );
        // These tests are about the buffered path (direct.rs has its own).
        d.io = FileIo::Buffered;
        d
    }

    #[test]
    fn empty_parts_are_skipped_not_an_error() {
        let dir = std::env::temp_dir().join(format!("ringest-file-test-{}", std::process::id()));
        let (mut s, _) = FileSink::open(RealFs, &cfg(dir.join("out.log"))).expect("open");
        let mut done = 0;
        s.write_from(&[], &mut done)
            .expect("nothing to write is fine");
        s.write_from(&[b"", b"a\n", b"", b"b\n"], &mut done)
            .expect("write");
        assert_eq!(done, 4);
        done = 0;
        s.write_from(&[b""], &mut done).expect("only empty");
        assert_eq!(std::fs::read(dir.join("out.log")).expect("read"), b"a\nb\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn real_file_with_torn_last_line_gets_a_newline_first() {
        let dir = std::env::temp_dir().join(format!("ringest-torn-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("out.log");
        std::fs::write(&path, b"ok\ntorn").expect("seed");
        let (mut s, opened) = FileSink::open(RealFs, &cfg(path.clone())).expect("open");
        assert!(opened.torn_last_line);
        s.write_from(&[b"next\n"], &mut 0).expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"ok\ntorn\nnext\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_short_write_advances_done_and_the_error_keeps_it() {
        let fs = FakeFs::default();
        let path = Path::new("/f/out.log");
        let (mut s, _) = FileSink::open(fs.clone(), &cfg(path.into())).expect("open");
        fs.disk().write_faults.extend([
            WriteFault::Short(3),
            WriteFault::Short(2),
            WriteFault::Fail(libc::ENOSPC),
        ]);
        let parts: [&[u8]; 3] = [b"ab", b"cd\n", b"ef\n"];
        let mut done = 0;
        let err = s.write_from(&parts, &mut done).expect_err("ENOSPC");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(done, 5, "3 + 2 bytes landed before the error");
        s.write_from(&parts, &mut done).expect("space again");
        assert_eq!((done, fs.content(path)), (8, b"abcd\nef\n".to_vec()));
    }

    #[test]
    fn a_failed_torn_line_repair_is_retried_before_the_message() {
        let fs = FakeFs::default();
        let path = Path::new("/f/out.log");
        fs.put(path, b"torn");
        let (mut s, _) = FileSink::open(fs.clone(), &cfg(path.into())).expect("open");
        fs.disk()
            .write_faults
            .push_back(WriteFault::Fail(libc::EIO));
        let mut done = 0;
        assert!(s.write_from(&[b"m\n"], &mut done).is_err());
        assert_eq!(done, 0);
        s.write_from(&[b"m\n"], &mut done).expect("retry");
        assert_eq!(fs.content(path), b"torn\nm\n");
    }
}
