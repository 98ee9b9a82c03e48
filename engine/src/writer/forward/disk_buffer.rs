//! `[destination.disk_buffer]`: frames the upstream cannot take now, kept in
//! segment files in order and replayed in order when it is back.
//!
//! A segment is `RGSTBUF1`, its creation time (u64 LE, Unix ms), then
//! records of `u32 LE length` + the framed message. Segments are named by a
//! rising sequence number (`00000000000000000042.seg`), so the folder's
//! order is the replay order. A new segment starts once the current one
//! holds [`SEGMENT_BYTES`]. A segment is deleted once every frame of it is
//! delivered; until then a restart replays it again from its first frame
//! not known to be delivered in this run (from its start after a restart:
//! a crash or SIGTERM in the middle of a replay can send up to one segment
//! twice). Every round is fsynced before the writer takes the next, so what
//! the buffer took survives kill -9 and power loss. A record cut by a crash
//! at the end of the last segment is found at start-up, logged, and cut off.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Bytes per segment file before the next one starts; also the most a
/// restart can replay twice.
pub const SEGMENT_BYTES: u64 = 8 << 20;
const MAGIC: &[u8; 8] = b"RGSTBUF1";
const HEADER_BYTES: u64 = 16;
const RECORD_OVERHEAD: u64 = 4;

#[derive(Debug)]
struct Segment {
    seq: u64,
    bytes: u64,
    frames: u64,
    created_unix_ms: u64,
}

pub struct DiskBuffer {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    /// Appends to the last segment; None once it is closed for replay.
    writer: Option<BufWriter<File>>,
    bytes: u64,
    messages: u64,
    /// Frames of the first segment delivered in this run.
    head_done: u64,
}

/// What start-up found in the folder.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub messages: u64,
    pub torn_bytes: u64,
}

impl DiskBuffer {
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<(DiskBuffer, Recovered)> {
        fs::create_dir_all(dir)?;
        let mut seqs: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| {
                let name = e.ok()?.file_name();
                name.to_str()?.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        seqs.sort_unstable();
        let mut b = DiskBuffer {
            dir: dir.to_path_buf(),
            max_bytes,
            segments: VecDeque::new(),
            writer: None,
            bytes: 0,
            messages: 0,
            head_done: 0,
        };
        let mut rec = Recovered::default();
        for seq in seqs {
            let path = b.path(seq);
            let data = fs::read(&path)?;
            let (frames, whole, created) = scan(&data);
            if whole < data.len() as u64 {
                rec.torn_bytes += data.len() as u64 - whole;
                OpenOptions::new().write(true).open(&path)?.set_len(whole)?;
            }
            if frames == 0 {
                fs::remove_file(&path)?;
                continue;
            }
            rec.messages += frames;
            b.bytes += whole;
            b.messages += frames;
            b.segments.push_back(Segment {
                seq,
                bytes: whole,
                frames,
                created_unix_ms: created,
            });
        }
        Ok((b, rec))
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.seg"))
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Creation time of the oldest segment: the age of the oldest message.
    pub fn oldest_unix_ms(&self) -> Option<u64> {
        self.segments.front().map(|s| s.created_unix_ms)
    }

    pub fn has_room(&self, frame_bytes: usize) -> bool {
        self.bytes + HEADER_BYTES + RECORD_OVERHEAD + frame_bytes as u64 <= self.max_bytes
    }

    pub fn push(&mut self, frame: &[u8], now_unix_ms: u64) -> io::Result<()> {
        let full = self
            .segments
            .back()
            .is_none_or(|s| s.bytes >= SEGMENT_BYTES);
        if self.writer.is_none() || full {
            self.roll(now_unix_ms)?;
        }
        let (Some(w), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("disk buffer: no open segment"));
        };
        let len = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too large"))?;
        w.write_all(&len.to_le_bytes())?;
        w.write_all(frame)?;
        let n = RECORD_OVERHEAD + frame.len() as u64;
        seg.bytes += n;
        seg.frames += 1;
        self.bytes += n;
        self.messages += 1;
        Ok(())
    }

    fn roll(&mut self, now_unix_ms: u64) -> io::Result<()> {
        self.sync()?;
        let seq = self.segments.back().map_or(0, |s| s.seq + 1);
        let mut f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.path(seq))?;
        f.write_all(MAGIC)?;
        f.write_all(&now_unix_ms.to_le_bytes())?;
        self.writer = Some(BufWriter::with_capacity(256 * 1024, f));
        self.segments.push_back(Segment {
            seq,
            bytes: HEADER_BYTES,
            frames: 0,
            created_unix_ms: now_unix_ms,
        });
        self.bytes += HEADER_BYTES;
        Ok(())
    }

    /// Makes what was pushed durable (one fdatasync per round).
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.as_mut() {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        Ok(())
    }

    /// The first segment's frames not yet delivered, in order. The segment
    /// being written is closed first: new frames go to the next one.
    pub fn head_frames(&mut self) -> io::Result<Vec<Vec<u8>>> {
        if self.segments.len() == 1 && self.writer.is_some() {
            self.sync()?;
            self.writer = None;
        }
        let Some(head) = self.segments.front() else {
            return Ok(Vec::new());
        };
        let mut data = Vec::with_capacity(head.bytes as usize);
        File::open(self.path(head.seq))?.read_to_end(&mut data)?;
        let mut frames = Vec::with_capacity(head.frames as usize);
        let mut at = HEADER_BYTES as usize;
        while let Some(len) = data.get(at..at + 4) {
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
            let Some(f) = data.get(at + 4..at + 4 + len) else {
                break;
            };
            frames.push(f.to_vec());
            at += 4 + len;
        }
        let skip = (self.head_done as usize).min(frames.len());
        frames.drain(..skip);
        Ok(frames)
    }

    /// `n` more frames of the first segment were delivered; a segment
    /// wholly delivered is deleted.
    pub fn delivered(&mut self, n: u64) -> io::Result<()> {
        let Some(head) = self.segments.front() else {
            return Ok(());
        };
        let n = n.min(head.frames - self.head_done);
        self.head_done += n;
        self.messages -= n;
        if self.head_done == head.frames && (self.segments.len() > 1 || self.writer.is_none()) {
            let path = self.path(head.seq);
            self.bytes -= head.bytes;
            self.segments.pop_front();
            self.head_done = 0;
            fs::remove_file(path)?;
        }
        Ok(())
    }
}

/// (whole frames, bytes up to the end of the last whole frame, creation ms).
fn scan(data: &[u8]) -> (u64, u64, u64) {
    if data.len() < HEADER_BYTES as usize || &data[..8] != MAGIC {
        return (0, 0, 0);
    }
    let mut created = [0u8; 8];
    created.copy_from_slice(&data[8..16]);
    let mut at = HEADER_BYTES as usize;
    let mut frames = 0;
    while let Some(len) = data.get(at..at + 4) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if data.len() < at + 4 + len {
            break;
        }
        at += 4 + len;
        frames += 1;
    }
    (frames, at as u64, u64::from_le_bytes(created))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ringest-diskbuf-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn frames_replay_in_order_across_a_restart_and_delivered_segments_go() {
        let d = dir("order");
        let (mut b, rec) = DiskBuffer::open(&d, 1 << 30).expect("open");
        assert_eq!(rec, Recovered::default());
        for i in 0..5 {
            b.push(format!("m{i}").as_bytes(), 1000).expect("push");
        }
        b.sync().expect("sync");
        drop(b);
        let (mut b, rec) = DiskBuffer::open(&d, 1 << 30).expect("reopen");
        assert_eq!(rec.messages, 5);
        assert_eq!(b.oldest_unix_ms(), Some(1000));
        let frames = b.head_frames().expect("head");
        assert_eq!(
            frames,
            ["m0", "m1", "m2", "m3", "m4"].map(|s| s.as_bytes().to_vec())
        );
        b.delivered(2).expect("delivered");
        assert_eq!(
            b.head_frames().expect("rest").len(),
            3,
            "resumes after what was delivered"
        );
        b.delivered(3).expect("delivered");
        assert!(b.is_empty());
        assert_eq!(fs::read_dir(&d).expect("dir").count(), 0, "segment deleted");
        b.push(b"new", 2000).expect("push after replay");
        assert_eq!(b.head_frames().expect("new"), [b"new".to_vec()]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_record_torn_by_a_crash_is_cut_off_at_start() {
        let d = dir("torn");
        let (mut b, _) = DiskBuffer::open(&d, 1 << 30).expect("open");
        b.push(b"whole", 1).expect("push");
        b.sync().expect("sync");
        drop(b);
        let seg = d.join(format!("{:020}.seg", 0));
        let mut f = OpenOptions::new().append(true).open(&seg).expect("seg");
        f.write_all(&100u32.to_le_bytes()).expect("torn len");
        f.write_all(b"part").expect("torn body");
        drop(f);
        let (mut b, rec) = DiskBuffer::open(&d, 1 << 30).expect("reopen");
        assert_eq!(
            rec,
            Recovered {
                messages: 1,
                torn_bytes: 8
            }
        );
        assert_eq!(b.head_frames().expect("head"), [b"whole".to_vec()]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn room_is_bounded_by_max_bytes() {
        let d = dir("room");
        let (mut b, _) = DiskBuffer::open(&d, 64).expect("open");
        assert!(b.has_room(40));
        b.push(&[b'x'; 40], 1).expect("push");
        assert!(!b.has_room(8), "{} bytes used", b.bytes());
        let _ = fs::remove_dir_all(&d);
    }
}
