//! The shard's provided buffer ring: the kernel picks a free buffer for each
//! multishot recv completion; the shard gives it back once the bytes are
//! decoded (frames are copied into the writer's batch, so that is at once).
//!
//! **Credit.** Every buffer the kernel holds may come back full, and what
//! comes back while the writer is behind waits in the shard (deferred
//! completions) before the writer's own queue, which `max_queue_delay_ms`
//! bounds. With 512 buffers of 128 KiB that wait was up to 64 MiB per shard,
//! tens of milliseconds of the writer's time: the p99 tail at 80% load
//! (session 6: `ringest_writer_shard_hold_seconds` p99 65 ms, queue wait
//! 3 ms). So while a lane is held back the shard lowers the number of
//! buffers it lets the kernel hold ([`Credit`]) to about what the writer
//! drains in `max_queue_delay_ms`; the rest are withheld, the multishot
//! receives end with ENOBUFS, and TCP's window closes on the senders
//! instead. Once no lane has been held for a while the limit is lifted.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

use crate::anon_map::AnonMap;

/// Which buffers the kernel may have: at most `limit` at a time; the others
/// wait here until the limit rises or the kernel hands some back. Pure.
#[derive(Debug)]
pub struct Credit {
    /// Given to the kernel and not yet handed back in a completion.
    in_kernel: u16,
    limit: u16,
    withheld: Vec<u16>,
}

impl Credit {
    pub fn new(entries: u16) -> Credit {
        Credit {
            in_kernel: 0,
            limit: entries,
            withheld: Vec::with_capacity(entries as usize),
        }
    }

    /// Buffer `bid` is ours again: `Some(bid)` if the kernel may have it now.
    pub fn give_back(&mut self, bid: u16) -> Option<u16> {
        if self.in_kernel < self.limit {
            self.in_kernel += 1;
            Some(bid)
        } else {
            self.withheld.push(bid);
            None
        }
    }

    /// A completion handed a buffer back from the kernel.
    pub fn taken(&mut self) {
        debug_assert!(self.in_kernel > 0, "a buffer came back that was not given");
        self.in_kernel = self.in_kernel.saturating_sub(1);
    }

    /// Sets the limit (at least 1); [`release`](Self::release) then hands
    /// out the withheld buffers the kernel may have under it.
    pub fn set_limit(&mut self, limit: u16) {
        self.limit = limit.max(1);
    }

    /// A withheld buffer the kernel may have now (there is room under the
    /// limit), or `None`.
    pub fn release(&mut self) -> Option<u16> {
        if self.in_kernel >= self.limit {
            return None;
        }
        let bid = self.withheld.pop()?;
        self.in_kernel += 1;
        Some(bid)
    }

    /// Buffers the kernel has (free, or filled and not yet reaped).
    pub fn in_kernel(&self) -> u16 {
        self.in_kernel
    }
}

/// Its mappings are unmapped when it drops, which must be after the
/// io_uring instance that uses them is gone (field order in `Shard`).
pub struct BufRing {
    /// The entries the kernel reads (`BufRingEntry`s); page-aligned.
    ring: AnonMap,
    /// `entries` buffers of `buf_bytes`, one after another.
    bufs: AnonMap,
    entries: u16,
    buf_bytes: usize,
    /// Our copy of the tail; published to the kernel once per loop turn.
    tail: u16,
    published: u16,
    pub bgid: u16,
    credit: Credit,
}

impl BufRing {
    /// Allocates `entries` buffers of `buf_bytes` and registers them as group `bgid`.
    pub fn new(ring: &IoUring, entries: u16, buf_bytes: usize, bgid: u16) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two(), "validated by config");
        let ring_bytes = entries as usize * std::mem::size_of::<BufRingEntry>();
        let mut this = BufRing {
            ring: AnonMap::new(ring_bytes)?,
            bufs: AnonMap::new(entries as usize * buf_bytes)?,
            entries,
            buf_bytes,
            tail: 0,
            published: 0,
            bgid,
            credit: Credit::new(entries),
        };
        // SAFETY: the ring memory is page-aligned, sized for `entries`, and lives
        // until Drop, which runs after the IoUring that uses it is dropped (field order
        // in Shard) or after unregistering.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                this.ring.as_ptr() as u64,
                entries,
                bgid,
                0,
            )?
        };
        for bid in 0..entries {
            this.give_back(bid);
        }
        this.publish();
        Ok(this)
    }

    pub fn buf_bytes(&self) -> usize {
        self.buf_bytes
    }

    /// The bytes the kernel wrote into buffer `bid`.
    ///
    /// The caller must only pass a `bid` the kernel handed over in a completion and
    /// not yet given back, and `len` from that completion.
    pub fn slice_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        debug_assert!(bid < self.entries);
        let bid = (bid as usize).min(self.entries as usize - 1);
        let len = len.min(self.buf_bytes);
        // SAFETY: bid < entries and len <= buf_bytes keep the range inside the
        // mapping; the kernel is done with this buffer (it posted the completion)
        // and will not touch it until we give it back.
        unsafe { std::slice::from_raw_parts_mut(self.bufs.as_ptr().add(bid * self.buf_bytes), len) }
    }

    /// Returns buffer `bid` to the kernel (visible after the next `publish`),
    /// or keeps it withheld while the kernel has its credit's worth.
    pub fn give_back(&mut self, bid: u16) {
        if let Some(bid) = self.credit.give_back(bid) {
            self.push(bid);
        }
    }

    /// A completion carried a buffer: the kernel has one fewer.
    pub fn taken(&mut self) {
        self.credit.taken();
    }

    /// How many buffers the kernel may hold from now on (see [`Credit`]).
    pub fn set_limit(&mut self, limit: u16) {
        self.credit.set_limit(limit.min(self.entries));
        while let Some(bid) = self.credit.release() {
            self.push(bid);
        }
    }

    /// Buffers the kernel has: 0 means a receive armed now would end at
    /// once with ENOBUFS.
    pub fn in_kernel(&self) -> u16 {
        self.credit.in_kernel()
    }

    pub fn entries(&self) -> u16 {
        self.entries
    }

    fn push(&mut self, bid: u16) {
        debug_assert!(bid < self.entries);
        let mask = self.entries - 1;
        let idx = (self.tail & mask) as usize;
        // SAFETY: idx < entries, inside the ring mapping; the kernel only reads
        // entries between its head and the published tail, and this one is past it.
        unsafe {
            let entry = &mut *self.ring.as_ptr().cast::<BufRingEntry>().add(idx);
            entry.set_addr(self.bufs.as_ptr().add(bid as usize * self.buf_bytes) as u64);
            entry.set_len(self.buf_bytes as u32);
            entry.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every buffer given back since the last call visible to the kernel.
    pub fn publish(&mut self) {
        if self.tail == self.published {
            return;
        }
        // SAFETY: the tail field lives in the first entry of our ring mapping;
        // the kernel reads it with acquire semantics, so a release store orders
        // the entry writes above before it.
        unsafe {
            let tail = BufRingEntry::tail(self.ring.as_ptr().cast()) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
        self.published = self.tail;
    }
}

#[cfg(test)]
mod tests {
    use super::Credit;

    /// Sets the limit and takes every withheld buffer it releases, in the
    /// order given to the kernel (what `BufRing::set_limit` does).
    fn set_limit(c: &mut Credit, limit: u16) -> Vec<u16> {
        c.set_limit(limit);
        std::iter::from_fn(|| c.release()).collect()
    }

    #[test]
    fn the_kernel_never_holds_more_than_the_limit_and_gets_the_rest_when_it_rises() {
        let mut c = Credit::new(8);
        for bid in 0..8 {
            assert_eq!(c.give_back(bid), Some(bid));
        }
        assert_eq!(c.in_kernel(), 8);
        // The writer falls behind: the kernel may hold 2.
        assert_eq!(set_limit(&mut c, 2).len(), 0, "nothing withheld yet");
        for _ in 0..5 {
            c.taken();
        }
        assert_eq!(c.in_kernel(), 3, "the limit does not take buffers back");
        // Five come back from the shard: none may go to the kernel yet.
        for bid in 0..5 {
            assert_eq!(c.give_back(bid), None);
        }
        c.taken();
        c.taken();
        assert_eq!(c.in_kernel(), 1);
        assert_eq!(c.give_back(5), Some(5), "room under the limit");
        assert_eq!(c.give_back(6), None);
        // The writer caught up: everything withheld goes back.
        let back = set_limit(&mut c, 8);
        assert_eq!(back.len(), 6);
        assert_eq!(c.in_kernel(), 8);
        assert_eq!(set_limit(&mut c, 8).len(), 0);
    }

    #[test]
    fn a_limit_of_zero_still_lets_one_buffer_through() {
        let mut c = Credit::new(4);
        let _ = set_limit(&mut c, 0);
        assert_eq!(c.give_back(0), Some(0));
        assert_eq!(c.give_back(1), None);
        let back = set_limit(&mut c, 3);
        assert_eq!(back, vec![1]);
        assert_eq!(c.in_kernel(), 2);
    }
}
