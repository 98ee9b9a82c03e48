//! The shard's provided buffer ring: the kernel picks a free buffer for each
//! multishot recv completion; the shard gives it back once the bytes are
//! decoded (frames are copied into the writer's batch, so that is at once).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

pub struct BufRing {
    ring: NonNull<BufRingEntry>,
    ring_bytes: usize,
    bufs: NonNull<u8>,
    bufs_bytes: usize,
    entries: u16,
    buf_bytes: usize,
    /// Our copy of the tail; published to the kernel once per loop turn.
    tail: u16,
    published: u16,
    pub bgid: u16,
}

fn mmap_anon(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: an anonymous private mapping with no address hint has no preconditions.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl BufRing {
    /// Allocates `entries` buffers of `buf_bytes` and registers them as group `bgid`.
    pub fn new(ring: &IoUring, entries: u16, buf_bytes: usize, bgid: u16) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two(), "validated by config");
        let ring_bytes = entries as usize * std::mem::size_of::<BufRingEntry>();
        let ring_mem = mmap_anon(ring_bytes)?;
        let bufs_bytes = entries as usize * buf_bytes;
        let bufs = match mmap_anon(bufs_bytes) {
            Ok(b) => b,
            Err(e) => {
                // SAFETY: ring_mem was mapped above with ring_bytes and is not used elsewhere.
                unsafe { libc::munmap(ring_mem.as_ptr().cast(), ring_bytes) };
                return Err(e);
            }
        };
        let mut this = BufRing {
            ring: ring_mem.cast(),
            ring_bytes,
            bufs,
            bufs_bytes,
            entries,
            buf_bytes,
            tail: 0,
            published: 0,
            bgid,
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

    /// Returns buffer `bid` to the kernel (visible after the next `publish`).
    pub fn give_back(&mut self, bid: u16) {
        debug_assert!(bid < self.entries);
        let mask = self.entries - 1;
        let idx = (self.tail & mask) as usize;
        // SAFETY: idx < entries, inside the ring mapping; the kernel only reads
        // entries between its head and the published tail, and this one is past it.
        unsafe {
            let entry = &mut *self.ring.as_ptr().add(idx);
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
            let tail = BufRingEntry::tail(self.ring.as_ptr()) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
        self.published = self.tail;
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: both mappings were created in `new` with these lengths; the
        // io_uring instance that referenced them has been dropped (Shard field order).
        unsafe {
            libc::munmap(self.ring.as_ptr().cast(), self.ring_bytes);
            libc::munmap(self.bufs.as_ptr().cast(), self.bufs_bytes);
        }
    }
}
