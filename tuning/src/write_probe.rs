//! The writer's cost per GB: this thread's CPU time to write a file in
//! 256 KiB `write()`s (like `dd bs=256K`), through the page cache or with
//! O_DIRECT. The file goes in the profile's folder and is removed after each
//! repeat, so its pages are recycled, as on a server whose cache is full.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const BLOCK_BYTES: usize = 256 * 1024;
/// O_DIRECT needs buffers, offsets and lengths aligned to the logical block.
const ALIGN_BYTES: usize = 4096;

/// CPU-seconds per GB written, one value per repeat.
pub fn cpu_s_per_gb(dir: &Path, mib: usize, direct: bool, repeats: u32) -> io::Result<Vec<f64>> {
    let layout = std::alloc::Layout::from_size_align(BLOCK_BYTES, ALIGN_BYTES)
        .map_err(|e| io::Error::other(e.to_string()))?;
    // SAFETY: the layout has a non-zero size; the block is freed below and
    // only used as a byte slice of exactly that size in between.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    if ptr.is_null() {
        return Err(io::Error::other("cannot allocate the probe's block"));
    }
    // SAFETY: `ptr` points to BLOCK_BYTES zeroed bytes owned here.
    let block = unsafe { std::slice::from_raw_parts_mut(ptr, BLOCK_BYTES) };
    block.fill(b'x');
    let result = (0..repeats)
        .map(|i| one(dir, i, mib, direct, block))
        .collect();
    // SAFETY: allocated above with this layout, not used after this.
    unsafe { std::alloc::dealloc(ptr, layout) };
    result
}

fn one(dir: &Path, i: u32, mib: usize, direct: bool, block: &[u8]) -> io::Result<f64> {
    let path = dir.join(format!("write-probe-{i}"));
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if direct {
        opts.custom_flags(libc::O_DIRECT);
    }
    let mut f = opts.open(&path)?;
    let blocks = mib * 1024 * 1024 / BLOCK_BYTES;
    let start = thread_cpu_s();
    for _ in 0..blocks {
        f.write_all(block)?;
    }
    f.sync_data()?;
    let cpu = thread_cpu_s() - start;
    drop(f);
    std::fs::remove_file(&path)?;
    let gb = (blocks * BLOCK_BYTES) as f64 / 1e9;
    Ok(cpu / gb)
}

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}
