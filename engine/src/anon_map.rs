//! Anonymous memory mappings owned by one value: the shard's provided
//! buffer ring (`shard/bufring.rs`) and the direct writer's aligned buffer
//! (`writer/direct.rs`). The only `mmap`/`munmap` of the engine.
//!
//! **Huge pages for direct writes.** An `O_DIRECT` write pins every page of
//! its source buffer for the device; with 4 KiB pages that is 256 pins per
//! MiB, with one 2 MiB transparent huge page one. Measured on this
//! project's VM (2 vCPU AMD EPYC, virtio disk, ext4; a loop of `pwrite`s
//! of one buffer, CPU-s per GB written, three repeats): 1 MiB writes cost
//! 0.064–0.071 from 4 KiB pages and 0.027–0.031 from a huge page; 4 MiB
//! writes 0.039–0.049 and 0.010–0.017. [`AnonMap::huge`] asks for them with
//! `madvise(MADV_HUGEPAGE)`, which is what the kernel's default
//! `transparent_hugepage=madvise` needs; with THP off it is a plain mapping.

use std::io;
use std::ptr::NonNull;

/// The size of an x86_64 transparent huge page (PMD size).
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// A private anonymous mapping, zero-filled, unmapped on drop.
pub struct AnonMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone, like a `Box<[u8]>`.
unsafe impl Send for AnonMap {}
// SAFETY: shared references only read it (see `bytes`).
unsafe impl Sync for AnonMap {}

fn map(len: usize) -> io::Result<NonNull<u8>> {
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

/// Unmaps `[at, at + len)`, a range of a mapping made by [`map`] that
/// nothing refers to. A zero length is nothing to do.
fn unmap(at: *mut u8, len: usize) {
    if len > 0 {
        // SAFETY: per the caller, the range is ours and unreferenced; munmap
        // of a valid range cannot fail in a way that leaves it in use.
        unsafe { libc::munmap(at.cast(), len) };
    }
}

impl AnonMap {
    /// `len` bytes (rounded up to whole pages by the kernel), page-aligned.
    pub fn new(len: usize) -> io::Result<AnonMap> {
        assert!(len > 0, "an empty mapping");
        Ok(AnonMap {
            ptr: map(len)?,
            len,
        })
    }

    /// `len` rounded up to whole huge pages, starting on a huge-page
    /// boundary, with huge pages asked for before any byte is touched.
    /// The request is advisory: where the kernel has THP off or cannot
    /// find a huge page, the memory is the same, in 4 KiB pages.
    pub fn huge(len: usize) -> io::Result<AnonMap> {
        assert!(len > 0, "an empty mapping");
        let len = len.div_ceil(HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES;
        // Map one huge page more, keep the aligned part, give back the rest.
        let span = len + HUGE_PAGE_BYTES;
        let raw = map(span)?.as_ptr();
        let head = (HUGE_PAGE_BYTES - raw as usize % HUGE_PAGE_BYTES) % HUGE_PAGE_BYTES;
        unmap(raw, head);
        // SAFETY: head + len <= span: both ranges lie inside the mapping.
        let (start, tail) = unsafe { (raw.add(head), raw.add(head + len)) };
        unmap(tail, span - head - len);
        // SAFETY: the range is the mapping we keep; MADV_HUGEPAGE changes no
        // contents. Its error (EINVAL without THP in the kernel) is ignored:
        // the mapping works the same without huge pages.
        unsafe { libc::madvise(start.cast(), len, libc::MADV_HUGEPAGE) };
        Ok(AnonMap {
            ptr: NonNull::new(start).ok_or_else(|| io::Error::other("mmap returned null"))?,
            len,
        })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes (zero-filled at first)
        // for as long as self lives; a `&self` allows no writes through us.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AnonMap {
    fn drop(&mut self) {
        unmap(self.ptr.as_ptr(), self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_mapping_is_aligned_whole_huge_pages_and_zeroed() {
        let mut m = AnonMap::huge(HUGE_PAGE_BYTES + 1).expect("map");
        assert_eq!(m.as_ptr() as usize % HUGE_PAGE_BYTES, 0);
        assert_eq!(m.len(), 2 * HUGE_PAGE_BYTES);
        assert!(m.bytes().iter().all(|&b| b == 0));
        let last = m.len() - 1;
        m.bytes_mut()[last] = 7;
        assert_eq!(m.bytes()[last], 7);
    }

    #[test]
    fn a_plain_mapping_is_page_aligned_and_zeroed() {
        let m = AnonMap::new(10_000).expect("map");
        assert_eq!(m.as_ptr() as usize % 4096, 0);
        assert_eq!(m.len(), 10_000);
        assert!(m.bytes().iter().all(|&b| b == 0));
    }
}
