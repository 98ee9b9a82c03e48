//! Batches of messages and the bounded lock-free rings that carry them from
//! shards to the writer.
//!
//! A shard appends each decoded frame to its current [`Batch`] (message bytes
//! followed by `\n`, ready for a raw file write) and pushes whole batches into
//! its ring. The writer returns emptied batches through a second ring, so the
//! data plane does not allocate in steady state. A ring is bounded in
//! batches (memory) and, through its writer's [`WriterLoad`], in time: a
//! batch is handed over only while the writer's queue drains within
//! `max_queue_delay_ms` ([`crate::queue_delay`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use crate::queue_delay::WriterLoad;
use crate::tls::PeerIdentity;

/// What is known about a connection; computed once, shared by every run of its messages.
#[derive(Debug)]
pub struct ConnMeta {
    pub source: u16,
    pub peer: SocketAddr,
    pub identity: Option<PeerIdentity>,
}

/// Consecutive messages of one connection received in one read.
#[derive(Debug, Clone)]
pub struct Run {
    /// Index of the run's first message in the batch.
    pub first: u32,
    pub conn: Arc<ConnMeta>,
    pub received_unix_ns: u64,
    /// The same instant on the monotonic clock (the shard's receive
    /// completion), for the latency histograms.
    pub received: Instant,
}

#[derive(Debug)]
pub struct Batch {
    /// Every message followed by `\n`.
    pub bytes: Vec<u8>,
    /// End offset (exclusive, after the `\n`) of each message in `bytes`.
    pub ends: Vec<u32>,
    pub runs: Vec<Run>,
    /// When the shard handed it to the writer's ring (for the writer's
    /// queue-wait and shard-hold summaries).
    pub handed_at: Option<Instant>,
}

impl Batch {
    pub fn with_capacity(bytes: usize) -> Batch {
        Batch {
            bytes: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(bytes / 64),
            runs: Vec::new(),
            handed_at: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
        self.runs.clear();
        self.handed_at = None;
    }

    /// The message at `i`, without its trailing `\n`.
    pub fn message(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        let end = self.ends[i] as usize - 1;
        &self.bytes[start..end]
    }

    /// Starts a run for `conn`, received now, unless the last run already
    /// is this connection's.
    pub fn begin_run(&mut self, conn: &Arc<ConnMeta>, received_unix_ns: u64) {
        self.begin_run_at(conn, received_unix_ns, Instant::now());
    }

    /// Starts a run for `conn`, received at `received` (monotonic), unless
    /// the last run already is this connection's.
    pub fn begin_run_at(&mut self, conn: &Arc<ConnMeta>, received_unix_ns: u64, received: Instant) {
        if let Some(last) = self.runs.last() {
            if Arc::ptr_eq(&last.conn, conn) && last.received_unix_ns == received_unix_ns {
                return;
            }
        }
        self.runs.push(Run {
            first: self.ends.len() as u32,
            conn: Arc::clone(conn),
            received_unix_ns,
            received,
        });
    }

    /// Messages in run `i`.
    pub fn run_len(&self, i: usize) -> usize {
        let end = self
            .runs
            .get(i + 1)
            .map_or(self.len(), |r| r.first as usize);
        self.runs.get(i).map_or(0, |r| end - r.first as usize)
    }

    pub fn push(&mut self, message: &[u8]) {
        debug_assert!(!self.runs.is_empty(), "a message needs a run");
        self.bytes.extend_from_slice(message);
        self.bytes.push(b'\n');
        self.ends.push(self.bytes.len() as u32);
    }
}

/// One shard's rings: full batches to the writer, empty ones back.
pub struct Ring {
    pub full: ArrayQueue<Batch>,
    pub empty: ArrayQueue<Batch>,
    /// Set by the shard when it will push nothing more.
    pub closed: AtomicBool,
    /// Set once the writer has returned (after shutdown, or after giving up
    /// on destinations that keep failing): a shard waiting for room stops
    /// waiting, and what it could not hand over is counted as lost.
    pub abandoned: AtomicBool,
    /// The queue of the writer that drains this ring (shared with the other
    /// rings that writer drains).
    pub load: Arc<WriterLoad>,
}

impl Ring {
    /// A ring with a writer of its own.
    pub fn new(capacity_batches: usize) -> Ring {
        Ring::for_writer(capacity_batches, Arc::new(WriterLoad::default()))
    }

    /// A ring drained by the writer whose queue is `load`.
    pub fn for_writer(capacity_batches: usize, load: Arc<WriterLoad>) -> Ring {
        Ring {
            full: ArrayQueue::new(capacity_batches),
            empty: ArrayQueue::new(capacity_batches + 2),
            closed: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            load,
        }
    }

    /// Hands `batch` to the writer, counting its bytes in the writer's
    /// queue; gives it back when the ring has no room.
    fn hand_over(&self, mut batch: Batch) -> Result<(), Batch> {
        let bytes = batch.bytes.len();
        batch.handed_at = Some(Instant::now());
        // Counted first: the writer may take and write it at once.
        self.load.queued(bytes);
        self.full
            .push(batch)
            .inspect_err(|_| self.load.unqueued(bytes))
    }
}

/// Wakes the writer only when it said it is about to sleep, so a busy writer
/// costs the shards nothing.
pub struct WriterWaker {
    pub sleeping: AtomicBool,
    pub thread: std::sync::OnceLock<Thread>,
}

impl WriterWaker {
    pub fn new() -> WriterWaker {
        WriterWaker {
            sleeping: AtomicBool::new(false),
            thread: std::sync::OnceLock::new(),
        }
    }

    pub fn wake(&self) {
        // SeqCst: see the writer's store before it looks at the rings.
        if self.sleeping.swap(false, Ordering::SeqCst) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }
}

impl Default for WriterWaker {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a connection's decoded frames go. The connection state machine
/// only pushes; whether the shard should keep feeding it is the shard's
/// question ([`FrameSink::is_full`]): a sink never blocks and never sleeps.
pub trait FrameSink {
    /// Appends one message of `conn`, received at `received_unix_ns`.
    fn push(&mut self, conn: &Arc<ConnMeta>, received_unix_ns: u64, message: &[u8]);
    /// The writer has not taken the last full batch: stop feeding (the
    /// shard pauses the connections that would feed it).
    fn is_full(&self) -> bool;
}

/// The shard's side: fills a batch and hands it to the writer's ring when
/// full or at the end of a loop turn. When the ring has no room, the full
/// batch waits here (`pending`) and [`Batcher::is_full`] says so; the shard
/// then stops feeding it until [`Batcher::try_resume`] succeeds. At most one
/// batch waits, plus the current one, which grows past `batch_max_bytes`
/// only by what the shard's current receive buffer still holds. "No room"
/// is either the ring full or the writer's queue longer than
/// `max_queue_delay_ms` ([`WriterLoad::has_room`]).
pub struct Batcher {
    pub current: Batch,
    /// A full batch the ring had no room for.
    pending: Option<Batch>,
    ring: Arc<Ring>,
    waker: Arc<WriterWaker>,
    batch_max_bytes: usize,
    /// 0 = bounded by the ring's capacity only.
    max_queue_delay_ms: u64,
    /// When the frames pushed now were received (the shard's receive
    /// completion, monotonic): stamped on each new run.
    pub received_at: Instant,
    /// Messages dropped because the writer had gone (see [`Ring::abandoned`]).
    pub lost_messages: u64,
    /// Batches handed to the ring so far: a shard tells a writer that is
    /// behind (it keeps taking batches) from one that is stuck.
    pub handed_over: u64,
}

impl FrameSink for Batcher {
    #[inline]
    fn push(&mut self, conn: &Arc<ConnMeta>, received_unix_ns: u64, message: &[u8]) {
        Batcher::push(self, conn, received_unix_ns, message);
    }

    fn is_full(&self) -> bool {
        self.pending.is_some()
    }
}

/// Whether `ring` takes `batch` now; gives it back when it has no room (in
/// batches, or in time when `max_queue_delay_ms` is not 0).
fn offer(ring: &Ring, batch: Batch, max_queue_delay_ms: u64) -> Result<(), Batch> {
    if !ring.load.has_room(max_queue_delay_ms) {
        return Err(batch);
    }
    ring.hand_over(batch)
}

impl Batcher {
    pub fn new(ring: Arc<Ring>, waker: Arc<WriterWaker>, batch_max_bytes: usize) -> Batcher {
        Batcher {
            current: Batch::with_capacity(batch_max_bytes + 64 * 1024),
            pending: None,
            ring,
            waker,
            batch_max_bytes,
            max_queue_delay_ms: 0,
            received_at: Instant::now(),
            lost_messages: 0,
            handed_over: 0,
        }
    }

    /// Bounds the writer's queue in time as well ([`crate::queue_delay`]).
    pub fn with_max_queue_delay_ms(mut self, max_queue_delay_ms: u64) -> Batcher {
        self.max_queue_delay_ms = max_queue_delay_ms;
        self
    }

    /// Appends one message, handing the batch over first if it is full.
    #[inline]
    pub fn push(&mut self, conn: &Arc<ConnMeta>, received_unix_ns: u64, message: &[u8]) {
        if self.current.bytes.len() + message.len() >= self.batch_max_bytes
            && !self.current.is_empty()
        {
            self.flush();
        }
        self.current
            .begin_run_at(conn, received_unix_ns, self.received_at);
        self.current.push(message);
    }

    pub fn is_full(&self) -> bool {
        self.pending.is_some()
    }

    /// What the writer drains within `max_queue_delay_ms` at its fitted
    /// rate; `None` when the queue is not bounded in time or the rate is
    /// not measured yet.
    pub fn drain_budget_bytes(&self) -> Option<u64> {
        let rate = self.ring.load.drain_bytes_per_s.load(Ordering::Acquire);
        if self.max_queue_delay_ms == 0 || rate == 0 {
            return None;
        }
        Some(rate.saturating_mul(self.max_queue_delay_ms) / 1000)
    }

    /// Offers the waiting batch to the ring again; true once nothing waits.
    pub fn try_resume(&mut self) -> bool {
        if let Some(batch) = self.pending.take() {
            if self.ring.abandoned.load(Ordering::Acquire) {
                // The writer has gone: nothing in the ring will be written.
                self.lost_messages += batch.len() as u64;
                return true;
            }
            match offer(&self.ring, batch, self.max_queue_delay_ms) {
                Ok(()) => {
                    self.handed_over += 1;
                    self.waker.wake();
                }
                Err(back) => {
                    self.pending = Some(back);
                    self.waker.wake();
                    if self.ring.abandoned.load(Ordering::Acquire) {
                        // Nobody will ever make room: stop waiting; the
                        // loss is reported.
                        if let Some(lost) = self.pending.take() {
                            self.lost_messages += lost.len() as u64;
                        }
                    }
                }
            }
        }
        self.pending.is_none()
    }

    /// Hands the current batch to the writer, or keeps it as the waiting
    /// batch when the ring is full. Never waits: back-pressure is the
    /// shard's, by pausing connections, so TCP's window closes on the
    /// senders and nothing is dropped.
    pub fn flush(&mut self) {
        // The waiting batch first, whatever `current` holds: close() relies
        // on flush() to offer it again.
        if !self.try_resume() || self.current.is_empty() {
            return;
        }
        if self.ring.abandoned.load(Ordering::Acquire) {
            self.lost_messages += self.current.len() as u64;
            self.current.clear();
            return;
        }
        let next = self
            .ring
            .empty
            .pop()
            .unwrap_or_else(|| Batch::with_capacity(self.batch_max_bytes + 64 * 1024));
        let batch = std::mem::replace(&mut self.current, next);
        match offer(&self.ring, batch, self.max_queue_delay_ms) {
            Ok(()) => self.handed_over += 1,
            Err(back) => self.pending = Some(back),
        }
        self.waker.wake();
    }

    /// At shutdown: hands over everything, waiting for the writer (the
    /// control plane may wait) until it has taken it or has gone.
    pub fn close(&mut self) {
        // Bounded: the writer drains until every ring is closed, and a
        // writer that gave up sets `abandoned`, which ends the wait.
        while !self.try_close() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// One step of [`close`](Self::close), which never waits: hands over
    /// what it can; true (and the ring marked closed) once everything is
    /// with the writer, or counted as lost because the writer has gone. A
    /// shard with several batchers (one per destination group) steps them
    /// all, so a group whose writer is stuck holds up none of the others.
    pub fn try_close(&mut self) -> bool {
        if self.ring.closed.load(Ordering::Acquire) {
            return true;
        }
        self.flush();
        if self.is_full() || !self.current.is_empty() {
            if !self.ring.abandoned.load(Ordering::Acquire) {
                return false;
            }
            let _ = self.try_resume();
            self.lost_messages += self.current.len() as u64;
            self.current.clear();
        }
        self.ring.closed.store(true, Ordering::Release);
        self.waker.wake();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Arc<ConnMeta> {
        Arc::new(ConnMeta {
            source: 0,
            peer: "127.0.0.1:1".parse().unwrap(),
            identity: None,
        })
    }

    #[test]
    fn batch_keeps_message_boundaries_and_runs() {
        let (a, b) = (meta(), meta());
        let mut batch = Batch::with_capacity(1024);
        batch.begin_run(&a, 1);
        batch.push(b"one");
        batch.begin_run(&a, 1);
        batch.push(b"two");
        batch.begin_run(&b, 2);
        batch.push(b"");
        assert_eq!(batch.bytes, b"one\ntwo\n\n");
        assert_eq!(batch.message(1), b"two");
        assert_eq!(batch.message(2), b"");
        assert_eq!(batch.runs.len(), 2);
        assert_eq!(batch.runs[1].first, 2);
    }

    /// A batcher of 4 KiB batches on a ring of `capacity`, which has been
    /// offered `batches` batches of one 3000-byte message each.
    fn offered(capacity: usize, batches: usize) -> (Arc<Ring>, Batcher, Arc<ConnMeta>) {
        let ring = Arc::new(Ring::new(capacity));
        let mut batcher = Batcher::new(Arc::clone(&ring), Arc::new(WriterWaker::new()), 4096);
        let m = meta();
        for _ in 0..batches {
            batcher.push(&m, 0, &MSG_3000);
            batcher.flush();
        }
        (ring, batcher, m)
    }

    const MSG_3000: [u8; 3000] = [b'x'; 3000];

    /// A full ring never blocks the shard: the batch waits in the batcher,
    /// which says it is full, and goes out once the writer makes room.
    #[test]
    fn a_full_ring_keeps_the_batch_waiting_without_blocking() {
        let (ring, mut batcher, m) = offered(2, 2);
        assert!(ring.full.is_full());
        assert!(!batcher.is_full());
        batcher.push(&m, 0, &MSG_3000);
        batcher.flush();
        assert!(batcher.is_full(), "the third batch waits");
        assert!(!batcher.try_resume());
        // The writer takes one batch: the waiting one goes in.
        let _ = ring.full.pop();
        assert!(batcher.try_resume());
        assert!(!batcher.is_full());
        assert_eq!(ring.full.len(), 2);
    }

    /// SIGTERM while the writer is behind: the last batch waits in the
    /// batcher with nothing current; close() must offer it again and return
    /// once the writer takes it (found by review: it spun forever).
    #[test]
    fn close_with_a_waiting_batch_and_nothing_current_returns_once_the_writer_takes_it() {
        let (ring, mut batcher, _) = offered(1, 2);
        assert!(batcher.is_full());
        assert!(batcher.current.is_empty());
        let consumer = {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                let mut taken = 0;
                let deadline = Instant::now() + Duration::from_secs(5);
                while taken < 2 && Instant::now() < deadline {
                    if ring.full.pop().is_some() {
                        taken += 1;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                taken
            })
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            batcher.close();
            let _ = tx.send(batcher.lost_messages);
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(0));
        assert_eq!(consumer.join().unwrap(), 2);
    }

    /// A writer that has gone never makes room: closing must not wait for
    /// it forever (SIGTERM with a failing disk), and counts what it dropped.
    #[test]
    fn close_after_the_writer_has_gone_does_not_block() {
        let (ring, mut batcher, m) = offered(2, 3);
        batcher.push(&m, 0, &MSG_3000);
        ring.abandoned.store(true, Ordering::Release);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            batcher.close();
            let _ = tx.send(batcher.lost_messages);
        });
        let lost = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("close returned");
        assert_eq!(lost, 2, "the waiting batch and the current one");
        assert!(ring.closed.load(Ordering::Acquire));
    }

    /// The writer drains 1 MB/s and the limit is 2 ms (2000 bytes): the
    /// second batch waits in the batcher although the ring has room, the
    /// shard sees "full" (and pauses its connections), and the batch goes
    /// once the writer has written the first.
    #[test]
    fn a_queue_longer_than_max_queue_delay_keeps_the_batch_waiting_though_the_ring_has_room() {
        let ring = Arc::new(Ring::new(64));
        let mut batcher = Batcher::new(Arc::clone(&ring), Arc::new(WriterWaker::new()), 4096)
            .with_max_queue_delay_ms(2);
        ring.load
            .drain_bytes_per_s
            .store(1_000_000, Ordering::Relaxed);
        let m = meta();
        batcher.push(&m, 0, &MSG_3000);
        batcher.flush();
        assert_eq!(ring.full.len(), 1, "an empty queue always takes a batch");
        batcher.push(&m, 0, &MSG_3000);
        batcher.flush();
        assert!(batcher.is_full(), "3001 bytes queued are 3 ms at 1 MB/s");
        assert_eq!(ring.full.len(), 1);
        assert!(!batcher.try_resume());
        // The writer takes the first batch and writes it.
        let first = ring.full.pop().expect("first batch");
        assert!(!batcher.try_resume(), "still queued while being written");
        ring.load.drained(first.bytes.len());
        assert!(batcher.try_resume());
        assert_eq!(ring.full.len(), 1);
        assert_eq!(ring.load.queued_bytes.load(Ordering::Relaxed), 3001);
    }

    /// Without a time limit, only the ring's capacity bounds the queue.
    #[test]
    fn no_max_queue_delay_leaves_only_the_ring_capacity() {
        let ring = Arc::new(Ring::new(64));
        let mut batcher = Batcher::new(Arc::clone(&ring), Arc::new(WriterWaker::new()), 4096);
        ring.load.drain_bytes_per_s.store(1, Ordering::Relaxed);
        let m = meta();
        for _ in 0..10 {
            batcher.push(&m, 0, &MSG_3000);
            batcher.flush();
        }
        assert!(!batcher.is_full());
        assert_eq!(ring.full.len(), 10);
    }

    /// Each run keeps the monotonic instant its frames were received at
    /// (the shard's receive completion), the latency's start.
    #[test]
    fn runs_carry_the_receive_instant_the_shard_set() {
        let ring = Arc::new(Ring::new(4));
        let mut batcher = Batcher::new(Arc::clone(&ring), Arc::new(WriterWaker::new()), 4096);
        let (a, b) = (meta(), meta());
        let t0 = Instant::now() - Duration::from_millis(30);
        batcher.received_at = t0;
        batcher.push(&a, 1, b"x");
        batcher.push(&a, 1, b"y");
        let t1 = Instant::now();
        batcher.received_at = t1;
        batcher.push(&b, 2, b"z");
        let runs = &batcher.current.runs;
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].received, runs[1].received), (t0, t1));
        assert_eq!(
            (batcher.current.run_len(0), batcher.current.run_len(1)),
            (2, 1)
        );
    }

    #[test]
    fn batcher_flushes_when_full_and_recycles() {
        let ring = Arc::new(Ring::new(4));
        let mut batcher = Batcher::new(Arc::clone(&ring), Arc::new(WriterWaker::new()), 4096);
        let m = meta();
        let msg = [b'x'; 1000];
        for _ in 0..10 {
            batcher.push(&m, 0, &msg);
        }
        batcher.close();
        let mut total = 0;
        while let Some(b) = ring.full.pop() {
            assert!(b.bytes.len() <= 4096 + 1001);
            total += b.len();
        }
        assert_eq!(total, 10);
        assert!(ring.closed.load(Ordering::Acquire));
    }
}
