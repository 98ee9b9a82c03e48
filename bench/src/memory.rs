//! The memory state a command measures in (issue 19), shared by `compare`
//! and `latency`: the options, and making the state before the first run.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::compare::{self, Memory};
use crate::record::MemState;
use crate::report::StateInfo;
use crate::{steady, sys};

/// Disk space the pool leaves free on the output filesystem: room for the
/// outputs of a run, which are written outside the pool. A run that needs
/// more trims the pool's oldest files first, or is refused
/// (compare::run_one, disk_budget.rs).
pub const POOL_DISK_RESERVE_BYTES: u64 = 16 << 30;

#[derive(clap::Args, Clone, Debug)]
pub struct MemoryArgs {
    /// Memory states to measure (steady first): `steady` (the page cache
    /// full, as on a server that has run for weeks) and/or `fresh`
    /// (memory free for a while). `steady,fresh` runs the fresh case as well.
    #[arg(long, default_value = "steady")]
    pub states: String,
    /// Steady state: fill the page cache until MemFree is at most this many MiB.
    #[arg(long, default_value_t = 3072)]
    pub free_target_mib: u64,
    /// Steady state: the fill pool's bound on disk, MiB (default: MemTotal + 2 GiB,
    /// and at most the filesystem's free space minus 16 GiB).
    #[arg(long)]
    pub pool_max_mib: Option<u64>,
    /// Steady state: one fill or top-up stops after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub fill_timeout: u64,
    /// The page-cache write probe before every run, MiB (256 KiB write()s, like dd).
    #[arg(long, default_value_t = 256)]
    pub write_probe_mib: u64,
    /// Fresh state: seconds freed memory sits free before each run.
    #[arg(long, default_value_t = 10)]
    pub fresh_wait: u64,
}

impl MemoryArgs {
    pub fn check(&self) -> Result<()> {
        if !(1..=4096).contains(&self.write_probe_mib)
            || self.fresh_wait > 600
            || self.fill_timeout > 3600
        {
            bail!("--write-probe-mib must be 1..=4096, --fresh-wait at most 600, --fill-timeout at most 3600");
        }
        Ok(())
    }

    pub fn parse_states(&self) -> Result<Vec<MemState>> {
        parse_states(&self.states)
    }
}

pub fn parse_states(s: &str) -> Result<Vec<MemState>> {
    let mut v = Vec::new();
    for p in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let st = match p {
            "steady" => MemState::Steady,
            "fresh" => MemState::Fresh,
            _ => bail!("--states: {p:?} is not steady or fresh"),
        };
        if !v.contains(&st) {
            v.push(st);
        }
    }
    if v.is_empty() {
        bail!("--states needs steady, fresh or both");
    }
    // Steady first: it is the state that counts, and a Ctrl-C during the
    // fresh runs still leaves it complete.
    v.sort();
    Ok(v)
}

/// Makes `state` before the first run. Steady: creates the pool under the
/// work folder and fills it (dropping the Memory removes it). None when
/// Ctrl-C came during the fill.
pub fn open(
    ctx: &compare::Ctx,
    state: MemState,
    m: &MemoryArgs,
) -> Result<Option<(Memory, StateInfo)>> {
    match state {
        MemState::Steady => {
            let dir = ctx.work_dir.join("steady");
            std::fs::create_dir_all(&ctx.work_dir)?;
            let mut target = steady::Target::default_for(&ctx.work_dir, POOL_DISK_RESERVE_BYTES)
                .context("read /proc/meminfo and the output filesystem")?;
            target.mem_free_bytes = m.free_target_mib << 20;
            if let Some(p) = m.pool_max_mib {
                target.pool_bytes_max = p << 20;
            }
            target.time_max = Duration::from_secs(m.fill_timeout);
            eprintln!(
                "bench: steady state: filling the page cache in {} until MemFree ≤ {} MiB \
                 (pool at most {} MiB, {} s)",
                dir.display(),
                m.free_target_mib,
                target.pool_bytes_max >> 20,
                m.fill_timeout
            );
            let mut info = StateInfo {
                state,
                how: format!(
                    "Fill files written in 1 MiB blocks and synced until MemFree ≤ {} MiB, topped up before every run; \
                     outputs and write probes kept in that pool (at most {} MiB on disk), removed at the end.",
                    m.free_target_mib,
                    target.pool_bytes_max >> 20
                ),
                first_fill: None,
            };
            let mut pool = steady::Pool::create(&dir, target)
                .with_context(|| format!("create {}", dir.display()))?;
            // The first fill, before any engine runs: the big one. Each
            // run tops it up again (compare::run_one).
            let first = match pool.top_up(&sys::interrupted) {
                Ok(t) => t.describe(&pool.target),
                Err(_) if sys::interrupted() => return Ok(None),
                Err(e) => format!("failed: {e}"),
            };
            eprintln!("bench: steady state: {first}");
            info.first_fill = Some(first);
            Ok(Some((Memory::Steady(pool), info)))
        }
        MemState::Fresh => Ok(Some((
            Memory::Fresh,
            StateInfo {
                state,
                how: format!(
                    "No fill held by bench; each run's output deleted, then {} s of waiting before the next run, \
                     so that freed memory sat free.",
                    m.fresh_wait
                ),
                first_fill: None,
            },
        ))),
    }
}

/// Removes the steady state's pool at the end (its Drop would too, quietly).
pub fn close(mem: Memory) {
    if let Memory::Steady(pool) = mem {
        let dir = pool.dir().to_path_buf();
        if let Err(e) = pool.remove() {
            eprintln!("bench: could not remove {}: {e}", dir.display());
        }
    }
}
