//! The `file` destination: appends whole batches with one writev per round.

use std::io::{self, IoSlice};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::sys::{Fs, SinkFile};
use crate::config::{DestinationConfig, FsyncPolicy, OutputFormat};

/// writev takes at most IOV_MAX (1024 on Linux) slices per call.
const IOV_MAX: usize = 1024;

pub struct FileSink<F: Fs> {
    pub name: String,
    pub path: PathBuf,
    pub format: OutputFormat,
    fsync: FsyncPolicy,
    fsync_interval: Duration,
    fs: F,
    file: F::File,
    last_sync: Instant,
    dirty: bool,
}

impl<F: Fs> FileSink<F> {
    pub fn open(mut fs: F, cfg: &DestinationConfig) -> io::Result<FileSink<F>> {
        let file = fs
            .open_append(&cfg.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", cfg.path.display())))?;
        Ok(FileSink {
            name: cfg.name.clone(),
            path: cfg.path.clone(),
            format: cfg.format,
            fsync: cfg.fsync,
            fsync_interval: Duration::from_millis(cfg.fsync_interval_ms),
            fs,
            file,
            last_sync: Instant::now(),
            dirty: false,
        })
    }

    /// Reopens the path, for logrotate (SIGHUP). The old file is synced first.
    pub fn reopen(&mut self) -> io::Result<()> {
        let _ = self.file.sync_data();
        self.file = self.fs.open_append(&self.path)?;
        Ok(())
    }

    /// Writes all of `parts`, in order, looping over short writes.
    pub fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        // Empty parts would make writev return 0, which reads as "disk full".
        let owned: Vec<&[u8]>;
        let parts = if parts.iter().any(|p| p.is_empty()) {
            owned = parts.iter().copied().filter(|p| !p.is_empty()).collect();
            &owned[..]
        } else {
            parts
        };
        if parts.is_empty() {
            return Ok(());
        }
        let mut idx = 0;
        let mut offset = 0;
        while idx < parts.len() {
            let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len().min(IOV_MAX));
            slices.push(IoSlice::new(&parts[idx][offset..]));
            for p in parts[idx + 1..].iter().take(IOV_MAX - 1) {
                slices.push(IoSlice::new(p));
            }
            let mut n = match self.file.write_vectored(&slices) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0")),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            // Advance over what was written.
            while n > 0 && idx < parts.len() {
                let left = parts[idx].len() - offset;
                if n >= left {
                    n -= left;
                    idx += 1;
                    offset = 0;
                } else {
                    offset += n;
                    n = 0;
                }
            }
            while idx < parts.len() && parts[idx].len() == offset {
                idx += 1;
                offset = 0;
            }
        }
        self.dirty = true;
        Ok(())
    }

    /// Applies the fsync policy after a round of writes (or on an idle tick).
    pub fn after_round(&mut self, force: bool) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let due = match self.fsync {
            FsyncPolicy::Never => false,
            FsyncPolicy::Batch => true,
            FsyncPolicy::Interval => self.last_sync.elapsed() >= self.fsync_interval,
        };
        if due || force {
            self.file.sync_data()?;
            self.last_sync = Instant::now();
            self.dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DestinationType, OutputFormat};
    use crate::writer::sys::RealFs;

    fn sink(dir: &std::path::Path) -> FileSink<RealFs> {
        let cfg = DestinationConfig {
            name: "d".into(),
            kind: DestinationType::File,
            path: dir.join("out.log"),
            format: OutputFormat::Raw,
            fsync: FsyncPolicy::Never,
            fsync_interval_ms: 1000,
        };
        FileSink::open(RealFs, &cfg).expect("open")
    }

    #[test]
    fn empty_parts_are_skipped_not_an_error() {
        let dir = std::env::temp_dir().join(format!("ringest-file-test-{}", std::process::id()));
        let mut s = sink(&dir);
        s.write_all(&[]).expect("nothing to write is fine");
        s.write_all(&[b"", b"a\n", b"", b"b\n"]).expect("write");
        s.write_all(&[b""]).expect("only empty");
        assert_eq!(std::fs::read(dir.join("out.log")).expect("read"), b"a\nb\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
