//! `io = "direct"`: a file written with `O_DIRECT`, whose size is always
//! exactly the bytes written, and whose readers see every byte.
//!
//! `O_DIRECT` takes only whole aligned blocks, but a log file ends wherever
//! the last line ends. So [`DirectFile`] splits each write in three, on two
//! descriptors of the file:
//!
//! - the head, up to the next block boundary, goes through the buffered
//!   descriptor: it completes the file's partial last block in place;
//! - the whole blocks after it go with one `O_DIRECT` `pwrite`, copied
//!   into an aligned buffer of the writer thread's (see below);
//! - the tail, less than a block, goes buffered again: the file size grows
//!   to the exact end, and a reader (`tail -f`) sees it at once.
//!
//! Why the partial block is completed buffered and never rewritten with
//! `O_DIRECT` (the other known way): Linux does not keep a buffered reader
//! coherent with a direct write over a block the reader may cache. A
//! `tail -f` reading the partial block while the direct write lands could
//! cache its old copy (zeros past the old end), then see the new, larger
//! size and hand out those zeros (seen in tests/direct_io.rs). A direct
//! write here only ever covers blocks wholly past the end of the file,
//! which no reader can have cached, and the kernel makes the new size
//! visible only after the data is on disk.
//!
//! Writes are positional at the offset this file keeps, never `O_APPEND`:
//! a failed or short write is retried at the same offset with the same
//! bytes, so nothing is duplicated, and only bytes known to be in the file
//! are reported as taken (a retry resumes exactly after them, as in
//! [`file`](super::file)). Because of this, nothing else may append to or
//! truncate the file: rotate by renaming (logrotate `create`, then SIGHUP),
//! not with `copytruncate`.
//!
//! Several writer threads may feed one destination: [`DirectFiles`] hands
//! every opener of the same file (device and inode) the same [`DirectFile`]
//! behind a mutex, and one [`append`](DirectFile::append) writes everything
//! it is given while holding it. So the offset has one owner, and writes of
//! different writers never overlap or interleave inside a write. The
//! newline that ends a torn last line (see [`file`](super::file)) is
//! written under the same lock, once, before anyone's first bytes.
//!
//! Blocks are 4 KiB, the page size on x86_64; with larger pages the head
//! would have to reach the next page boundary for the reasoning above.
//!
//! **The aligned buffer** belongs to the writer thread, not to the file:
//! one per thread, of the largest `direct_buffer_bytes` it has used, in
//! transparent huge pages ([`AnonMap::huge`]: the kernel pins one page per
//! 2 MiB for the device instead of 512). A path-templated destination with
//! many open files costs one buffer per writer, not one per file.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::sys::{BlockFile, Fs, SinkFile};
use crate::anon_map::AnonMap;

/// Alignment of `O_DIRECT` buffers, offsets and lengths. Linux needs the
/// device's logical block size (512 or 4096 bytes); 4096 is a multiple of
/// both.
pub const DIRECT_ALIGN_BYTES: usize = 4096;

const ALIGN: u64 = DIRECT_ALIGN_BYTES as u64;

thread_local! {
    /// This thread's aligned buffer (see the module doc).
    static SCRATCH: RefCell<Option<AnonMap>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's aligned buffer, cut to `len` bytes; the
/// buffer is mapped (or replaced by a larger one) when it is shorter.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> io::Result<R> {
    SCRATCH.with_borrow_mut(|scratch| {
        let mut buf = match scratch.take() {
            Some(m) if m.len() >= len => m,
            // The old buffer goes first, so the two are never both mapped.
            old => {
                drop(old);
                AnonMap::huge(len)?
            }
        };
        let r = f(&mut buf.bytes_mut()[..len]);
        *scratch = Some(buf);
        Ok(r)
    })
}

/// One file written with direct I/O at its own offset.
pub struct DirectFile<B: BlockFile> {
    blocks: B,
    /// The most one direct write moves (`direct_buffer_bytes`).
    buffer_bytes: usize,
    /// The file's size: where the next byte goes.
    size: u64,
    /// The file ended without `\n` when opened (a line torn by a crash):
    /// one goes in before the first bytes appended.
    needs_newline: bool,
}

/// What one step of an append did.
struct Step {
    /// Bytes copied into the buffer for this step.
    filled: usize,
    /// Bytes of them now in the file.
    written: usize,
}

impl<B: BlockFile> DirectFile<B> {
    /// Takes over `blocks`, to append at its end. `buffer_bytes` (a
    /// multiple of [`DIRECT_ALIGN_BYTES`], at least two blocks) bounds the
    /// bytes of one `O_DIRECT` write.
    pub fn open(blocks: B, buffer_bytes: usize) -> io::Result<DirectFile<B>> {
        assert!(
            buffer_bytes >= 2 * DIRECT_ALIGN_BYTES
                && buffer_bytes.is_multiple_of(DIRECT_ALIGN_BYTES),
            "direct buffer of {buffer_bytes} bytes: config validation keeps it aligned"
        );
        let size = blocks.size_bytes()?;
        let mut f = DirectFile {
            blocks,
            buffer_bytes,
            size,
            needs_newline: false,
        };
        f.needs_newline = f.last_byte()?.is_some_and(|b| b != b'\n');
        Ok(f)
    }

    /// True when the file was found ending in a torn line that no append
    /// has ended yet.
    pub fn torn_last_line(&self) -> bool {
        self.needs_newline
    }

    /// The file's size as written through this file.
    pub fn size_bytes(&self) -> u64 {
        self.size
    }

    /// Appends `bufs`, one buffer's worth at a time, until all of it is in
    /// the file or a write fails. Returns how many bytes are in the file;
    /// an error only when none are (the caller retries with the rest).
    pub fn append(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.needs_newline && total > 0 {
            // One byte: it goes in whole or not at all. Not counted as taken.
            if self.blocks.write_buffered_at(b"\n", self.size)? == 0 {
                return Ok(0);
            }
            self.size += 1;
            self.needs_newline = false;
        }
        if total == 0 {
            return Ok(0);
        }
        with_scratch(self.buffer_bytes, |buf| {
            let mut taken = 0;
            while taken < total {
                match self.step(bufs, taken, buf) {
                    Ok(s) => {
                        taken += s.written;
                        if s.written < s.filled {
                            break;
                        }
                    }
                    Err(e) if taken == 0 => return Err(e),
                    // The error comes back on the retry of the rest.
                    Err(_) => break,
                }
            }
            Ok(taken)
        })?
    }

    /// Writes the next piece of `bufs` (from byte `skip`): the head up to
    /// the next block boundary buffered, or else as many whole blocks as
    /// `buf` holds direct and then the tail buffered.
    fn step(&mut self, bufs: &[IoSlice<'_>], skip: usize, buf: &mut [u8]) -> io::Result<Step> {
        let head = ((ALIGN - self.size % ALIGN) % ALIGN) as usize;
        let want = if head > 0 { head } else { buf.len() };
        let filled = fill(buf, bufs, skip, want);
        let whole = if head > 0 {
            0
        } else {
            filled - filled % DIRECT_ALIGN_BYTES
        };
        let mut written = 0;
        if whole > 0 {
            let n = self
                .blocks
                .write_direct_at(&buf[..whole], self.size)?
                .min(whole);
            self.size += n as u64;
            written = n;
            if n < whole {
                return Ok(Step { filled, written });
            }
        }
        if filled > written {
            match self
                .blocks
                .write_buffered_at(&buf[written..filled], self.size)
            {
                Ok(n) => {
                    let n = n.min(filled - written);
                    self.size += n as u64;
                    written += n;
                }
                Err(e) if written == 0 => return Err(e),
                // The whole blocks are in: report them; the retry meets the error.
                Err(_) => {}
            }
        }
        Ok(Step { filled, written })
    }

    pub fn sync_data(&mut self) -> io::Result<()> {
        self.blocks.sync_data()
    }

    pub fn last_byte(&self) -> io::Result<Option<u8>> {
        if self.size == 0 {
            return Ok(None);
        }
        let mut b = [0u8; 1];
        match self.blocks.read_at(&mut b, self.size - 1)? {
            1 => Ok(Some(b[0])),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank under a direct writer",
            )),
        }
    }
}

/// Copies up to `want` bytes of `bufs`, from byte `skip` on, to the
/// start of `dst`; returns how many.
fn fill(dst: &mut [u8], bufs: &[IoSlice<'_>], mut skip: usize, want: usize) -> usize {
    let want = want.min(dst.len());
    let mut end = 0;
    for b in bufs {
        if end == want {
            break;
        }
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        let src = &b[skip..];
        skip = 0;
        let n = src.len().min(want - end);
        dst[end..end + n].copy_from_slice(&src[..n]);
        end += n;
    }
    end
}

/// Which file: (device, inode), whatever its name now.
type FileId = (u64, u64);

/// A [`DirectFile`] shared by every writer that opened the same file. An
/// fsync holds the lock too, so it waits for (and holds back) the other
/// writers' appends to this file.
pub struct SharedDirect<B: BlockFile>(Arc<Mutex<DirectFile<B>>>);

impl<B: BlockFile> SharedDirect<B> {
    fn lock(&self) -> MutexGuard<'_, DirectFile<B>> {
        // A writer that panicked mid-append left the offset consistent:
        // it moves only past bytes a write reported as in the file.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn size_bytes(&self) -> u64 {
        self.lock().size_bytes()
    }
}

impl<B: BlockFile> SinkFile for SharedDirect<B> {
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.lock().append(bufs)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.lock().sync_data()
    }

    fn last_byte(&mut self) -> io::Result<Option<u8>> {
        self.lock().last_byte()
    }
}

/// The direct files open in one process, by (device, inode).
pub struct DirectFiles<B: BlockFile>(Mutex<HashMap<FileId, Weak<Mutex<DirectFile<B>>>>>);

impl<B: BlockFile> Default for DirectFiles<B> {
    fn default() -> Self {
        DirectFiles(Mutex::new(HashMap::new()))
    }
}

/// A direct file as one writer opened it.
pub struct OpenedDirect<B: BlockFile> {
    pub file: SharedDirect<B>,
    /// This open found the file ending in a torn line (a writer that joins
    /// an open file does not report it again); the file ends it itself.
    pub torn_last_line: bool,
}

/// Opens `path` for direct I/O, or joins the writer that already has it
/// open. EINVAL: the file system refuses `O_DIRECT`.
pub fn open_direct<F: Fs>(
    fs: &mut F,
    path: &std::path::Path,
    buffer_bytes: usize,
) -> io::Result<OpenedDirect<F::Blocks>> {
    let blocks = fs.open_blocks(path)?;
    let id = blocks.identity()?;
    let mut open = fs
        .direct_files()
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    open.retain(|_, f| f.strong_count() > 0);
    if let Some(f) = open.get(&id).and_then(Weak::upgrade) {
        // Our own descriptors close here; the shared ones stay.
        return Ok(OpenedDirect {
            file: SharedDirect(f),
            torn_last_line: false,
        });
    }
    let f = DirectFile::open(blocks, buffer_bytes)?;
    let torn_last_line = f.torn_last_line();
    let f = Arc::new(Mutex::new(f));
    open.insert(id, Arc::downgrade(&f));
    Ok(OpenedDirect {
        file: SharedDirect(f),
        torn_last_line,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::writer::fake::{BlockWrite, FakeFs, WriteFault};

    const A: usize = DIRECT_ALIGN_BYTES;
    const PATH: &str = "/d/out.log";
    /// A queued fault that lets the write through whole.
    const PASS: WriteFault = WriteFault::Short(usize::MAX);

    /// `n` bytes of lines numbered from `from`, so a misplaced byte shows.
    fn lines(n: usize, from: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        let mut i = from;
        while v.len() < n {
            v.extend_from_slice(format!("line {i}\n").as_bytes());
            i += 1;
        }
        v.truncate(n);
        v
    }

    fn open(fs: &FakeFs, buffer_bytes: usize) -> SharedDirect<crate::writer::fake::FakeFile> {
        open_direct(&mut fs.clone(), Path::new(PATH), buffer_bytes)
            .expect("open")
            .file
    }

    fn w(direct: bool, offset: usize, len: usize) -> BlockWrite {
        BlockWrite {
            direct,
            offset: offset as u64,
            len,
            aligned_addr: true,
            size_before: offset as u64,
        }
    }

    /// Every write appends at the file's end (nothing is ever rewritten,
    /// so no reader can hold a stale copy of what a direct write covers);
    /// direct writes are aligned in address, offset and length; buffered
    /// ones stay inside one block.
    fn assert_appends_aligned(writes: &[BlockWrite]) {
        for w in writes {
            assert_eq!(w.offset, w.size_before, "not at the end: {w:?}");
            if w.direct {
                assert!(
                    w.aligned_addr && w.offset % A as u64 == 0 && w.len % A == 0 && w.len > 0,
                    "misaligned direct write {w:?}"
                );
            } else {
                let block = w.offset - w.offset % A as u64;
                assert!(
                    w.len < A && w.offset + w.len as u64 <= block + A as u64,
                    "a buffered write across a block boundary: {w:?}"
                );
            }
        }
    }

    #[test]
    fn odd_sizes_across_block_boundaries_leave_exactly_the_bytes_written() {
        let fs = FakeFs::default();
        let mut f = open(&fs, 4 * A);
        let mut want = Vec::new();
        for (i, n) in [1, 4094, 1, 1, 4097, 3, 8191, 12_289, 4096, 0, 7, 3 * A + 5]
            .into_iter()
            .enumerate()
        {
            let part = lines(n, i * 1000);
            let mut done = 0;
            while done < n {
                done += f
                    .write_vectored(&[IoSlice::new(&part[done..])])
                    .expect("write");
            }
            want.extend_from_slice(&part);
            assert_eq!(
                fs.content(Path::new(PATH)),
                want,
                "after append {i} of {n} bytes"
            );
            assert_eq!(f.size_bytes(), want.len() as u64);
            assert_eq!(f.last_byte().expect("last"), want.last().copied());
        }
        let d = fs.disk();
        assert_appends_aligned(&d.block_writes);
        assert!(d.block_writes.iter().any(|w| w.direct));
        assert!(d.block_writes.iter().any(|w| !w.direct));
    }

    #[test]
    fn the_partial_block_is_completed_buffered_and_only_blocks_past_the_end_go_direct() {
        let fs = FakeFs::default();
        let mut f = open(&fs, 4 * A);
        let parts = [lines(100, 0), lines(5000, 100), lines(10_000, 900)];
        for p in &parts {
            assert_eq!(f.write_vectored(&[IoSlice::new(p)]).expect("w"), p.len());
        }
        assert_eq!(
            fs.disk().block_writes,
            [
                w(false, 0, 100),
                // 100 + 5000: the head completes block 0, the rest is short of a block.
                w(false, 100, A - 100),
                w(false, A, 5100 - A),
                // + 10000: the head completes block 1, one whole block, the tail.
                w(false, 5100, 2 * A - 5100),
                w(true, 2 * A, A),
                w(false, 3 * A, 15_100 - 3 * A),
            ]
        );
        assert_eq!(fs.content(Path::new(PATH)), parts.concat());
    }

    #[test]
    fn opening_an_existing_file_appends_at_its_end() {
        let fs = FakeFs::default();
        let mut old = lines(A + 903, 0);
        old.push(b'\n');
        fs.put(Path::new(PATH), &old);
        let mut f = open(&fs, 4 * A);
        assert_eq!(f.size_bytes(), old.len() as u64);
        assert_eq!(f.last_byte().expect("last"), old.last().copied());
        let new = lines(2 * A, 500);
        assert_eq!(f.write_vectored(&[IoSlice::new(&new)]).expect("w"), 2 * A);
        assert_eq!(
            fs.disk().block_writes,
            [
                w(false, A + 904, A - 904),
                w(true, 2 * A, A),
                w(false, 3 * A, 904)
            ]
        );
        assert_eq!(fs.content(Path::new(PATH)), [old, new].concat());
    }

    #[test]
    fn an_append_larger_than_the_buffer_goes_in_buffer_sized_writes() {
        let fs = FakeFs::default();
        let mut f = open(&fs, 2 * A);
        let parts = [
            lines(3 * A + 17, 0),
            lines(2 * A + 1, 9000),
            lines(5, 20_000),
        ];
        let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let total: usize = parts.iter().map(Vec::len).sum();
        assert_eq!(
            f.write_vectored(&slices).expect("w"),
            total,
            "all in one call"
        );
        let d = fs.disk();
        assert_appends_aligned(&d.block_writes);
        assert!(d.block_writes.iter().all(|w| w.len <= 2 * A));
        assert!(d.block_writes.iter().filter(|w| w.direct).count() >= 2);
        drop(d);
        assert_eq!(fs.content(Path::new(PATH)), parts.concat());
    }

    #[test]
    fn a_failed_direct_write_is_retried_at_the_same_offset_without_duplicates() {
        let fs = FakeFs::default();
        let mut f = open(&fs, 4 * A);
        let a = lines(A, 0);
        f.write_vectored(&[IoSlice::new(&a)]).expect("a");
        fs.disk()
            .write_faults
            .push_back(WriteFault::Fail(libc::ENOSPC));
        let b = lines(2 * A, 100);
        let err = f.write_vectored(&[IoSlice::new(&b)]).expect_err("ENOSPC");
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
        assert_eq!(f.size_bytes(), A as u64, "nothing new counted");
        assert_eq!(f.write_vectored(&[IoSlice::new(&b)]).expect("retry"), 2 * A);
        assert_eq!(fs.content(Path::new(PATH)), [a, b].concat());
        assert_appends_aligned(&fs.disk().block_writes[2..]);
    }

    #[test]
    fn a_short_direct_write_reports_only_the_bytes_in_the_file() {
        let fs = FakeFs::default();
        let mut f = open(&fs, 4 * A);
        let a = lines(300, 0);
        f.write_vectored(&[IoSlice::new(&a)]).expect("a");
        // The head goes in, then one direct block of three, then the disk is full.
        fs.disk()
            .write_faults
            .extend([PASS, WriteFault::Short(A), WriteFault::Fail(libc::ENOSPC)]);
        let b = lines(A - 300 + 3 * A, 100);
        let n = f.write_vectored(&[IoSlice::new(&b)]).expect("short");
        assert_eq!(n, A - 300 + A, "the head and one block");
        assert!(f.write_vectored(&[IoSlice::new(&b[n..])]).is_err());
        let rest = f
            .write_vectored(&[IoSlice::new(&b[n..])])
            .expect("space again");
        assert_eq!(n + rest, b.len());
        assert_eq!(fs.content(Path::new(PATH)), [a, b].concat());
        let d = fs.disk();
        assert_appends_aligned(&d.block_writes[..3]);
        assert_appends_aligned(&d.block_writes[4..]);
    }

    #[test]
    fn a_failed_tail_write_after_the_whole_blocks_reports_the_blocks() {
        let fs = FakeFs::default();
        let mut f = open(&fs, 4 * A);
        fs.disk()
            .write_faults
            .extend([PASS, WriteFault::Fail(libc::EIO)]);
        let b = lines(A + 10, 0);
        assert_eq!(f.write_vectored(&[IoSlice::new(&b)]).expect("blocks"), A);
        assert_eq!(f.size_bytes(), A as u64);
        assert_eq!(
            f.write_vectored(&[IoSlice::new(&b[A..])]).expect("tail"),
            10
        );
        assert_eq!(fs.content(Path::new(PATH)), b);
    }

    #[test]
    fn two_writers_opening_one_file_share_one_offset() {
        let fs = FakeFs::default();
        let mut one = open(&fs, 4 * A);
        let mut two = open(&fs, 4 * A);
        let mut want = Vec::new();
        for i in 0..6 {
            let part = lines(1000 + 1777 * i, i * 100);
            let w = if i % 2 == 0 { &mut one } else { &mut two };
            assert_eq!(
                w.write_vectored(&[IoSlice::new(&part)]).expect("w"),
                part.len()
            );
            want.extend_from_slice(&part);
        }
        assert_eq!(fs.content(Path::new(PATH)), want, "no overlap, no gap");
        assert_eq!(fs.disk().opens, 2);
        assert_appends_aligned(&fs.disk().block_writes);
    }

    #[test]
    fn a_torn_last_line_is_ended_once_for_every_writer_that_shares_the_file() {
        let fs = FakeFs::default();
        fs.put(Path::new(PATH), b"whole\ntorn by a cra");
        let first = open_direct(&mut fs.clone(), Path::new(PATH), 4 * A).expect("first");
        let second = open_direct(&mut fs.clone(), Path::new(PATH), 4 * A).expect("second");
        assert!(first.torn_last_line, "the first opener reports it");
        assert!(
            !second.torn_last_line,
            "a joining writer does not report it again"
        );
        let (mut one, mut two) = (first.file, second.file);
        assert_eq!(two.write_vectored(&[IoSlice::new(b"b\n")]).expect("w"), 2);
        assert_eq!(one.write_vectored(&[IoSlice::new(b"a\n")]).expect("w"), 2);
        assert_eq!(fs.content(Path::new(PATH)), b"whole\ntorn by a cra\nb\na\n");
    }

    #[test]
    fn concurrent_writers_never_interleave_inside_a_write() {
        let fs = FakeFs::default();
        let writers: Vec<_> = (0..2)
            .map(|t| {
                let mut f = open(&fs, 2 * A);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        // Each write is one "chunk" line of its own, 2000..9000 bytes.
                        let len = 2000 + (i * 131 + t * 977) % 7000;
                        let mut chunk = format!("t{t} i{i:02} ").into_bytes();
                        chunk.resize(len - 1, b'a' + t as u8);
                        chunk.push(b'\n');
                        let mut done = 0;
                        while done < chunk.len() {
                            done += f
                                .write_vectored(&[IoSlice::new(&chunk[done..])])
                                .expect("write");
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        let text = String::from_utf8(fs.content(Path::new(PATH))).expect("utf8");
        let mut next = [0usize; 2];
        for line in text.lines() {
            let t = usize::from(line.as_bytes()[1] - b'0');
            assert!(
                line.starts_with(&format!("t{t} i{:02} ", next[t])),
                "out of order or mixed: {:.20}",
                line
            );
            let fill = &line[format!("t{t} i00 ").len()..];
            assert!(
                fill.bytes().all(|b| b == b'a' + t as u8),
                "bytes of another writer inside a write"
            );
            next[t] += 1;
        }
        assert_eq!(next, [50, 50]);
        assert_appends_aligned(&fs.disk().block_writes);
    }

    #[test]
    fn a_renamed_file_keeps_its_writer_and_the_new_path_gets_its_own() {
        let fs = FakeFs::default();
        let mut old = open(&fs, 4 * A);
        old.write_vectored(&[IoSlice::new(b"before\n")]).expect("w");
        fs.rename(Path::new(PATH), Path::new("/d/out.log.1"));
        let mut new = open(&fs, 4 * A);
        assert_eq!(
            new.size_bytes(),
            0,
            "a fresh file, not the rotated one's state"
        );
        new.write_vectored(&[IoSlice::new(b"after\n")]).expect("w");
        assert_eq!(fs.content(Path::new("/d/out.log.1")), b"before\n");
        assert_eq!(fs.content(Path::new(PATH)), b"after\n");
    }
}
