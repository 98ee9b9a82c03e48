//! The disk a run's output will take, checked before the run (issue 12).
//! Pure but for [`make_room`], which deletes pool files; it takes the free
//! disk as a function, so tests drive it with figures of their own.
//!
//! Why: in session 8, `bench latency --duration 30` at 60% of ~5.5M msg/s
//! of 301 B wrote ~30 GB of engine output beside ~19 GB of steady-state
//! pool (steady.rs) and ran the disk full; ringest then paused its writes
//! on ENOSPC, as it should, and the run was lost after minutes of load.
//! Refusing such a run up front, with the figures, costs nothing.
//!
//! The estimate, per run:
//! - paced (loadgen `--rate R`): R × duration × the scenario's bytes per
//!   message on disk ([`bytes_per_msg_max`]);
//! - unpaced: [`UNPACED_OUTPUT_BYTES_PER_S_MAX`] × duration, a stated upper
//!   bound on what an engine writes per second here (kafka:
//!   [`UNPACED_KAFKA_BYTES_PER_S_MAX`], twice: the broker's log, and the
//!   topic read back into a file for verify);
//! - need = estimate + [`MARGIN_PCT`]% + [`MARGIN_BYTES`] (file-system
//!   blocks, the engine's logs, the write probe, run files).
//!
//! Then, against the free disk of the output's file system ([`room`]): it
//! fits; or the steady-state pool's oldest files are deleted until it fits
//! (they are the page cache's least recently used pages, so this frees
//! disk rather than memory); or, if even the whole pool would not make it
//! fit, the run is refused and the pool is left as it was (it still serves
//! the runs that do fit). An unpaced run's estimate is only a bound, far
//! above most such runs: it is not refused on it, but goes on with a
//! warning in its notes and on stderr.

use std::io;

use crate::record::Run;
use crate::scenario::{Scenario, Work};
use crate::steady::{self, Pool};

/// An unpaced run's output rate, assumed: above the fastest seen on this
/// project's VMs (ringest, mtls-large-8: 6.94M msg/s × 301 B = 2.09 GB/s,
/// session 8's direct-buffer runs). On a faster machine, pace the run or
/// shorten it.
pub const UNPACED_OUTPUT_BYTES_PER_S_MAX: u64 = 2_500_000_000;
/// Kafka, unpaced: the bytes the broker takes per second, assumed: over
/// twice the fastest seen (ringest, large records: 1.51M msg/s × 300 B =
/// 0.45 GB/s, session 7). The producers and the broker, not the disk, are
/// the limit there.
pub const UNPACED_KAFKA_BYTES_PER_S_MAX: u64 = 1_000_000_000;
/// The margin on an estimate: this percentage of it...
pub const MARGIN_PCT: u64 = 10;
/// ...plus this many bytes.
pub const MARGIN_BYTES: u64 = 1 << 30;
/// Parsed to JSON: at most this many bytes per byte of message, plus
/// [`PARSED_FIXED_BYTES`]. ringest writes 746 B for a 300 B message (its
/// object carries the peer, the client identity and structured data), the
/// peers about 410 (README, "Parsed to JSON").
pub const PARSED_BYTES_PER_MESSAGE_BYTE: u64 = 3;
pub const PARSED_FIXED_BYTES: u64 = 256;
/// Kafka: the broker's log keeps each value with at most this much record
/// and batch overhead.
pub const KAFKA_RECORD_OVERHEAD_BYTES: u64 = 64;

/// Bytes one message takes on the output's file system, at most.
pub fn bytes_per_msg_max(sc: &Scenario) -> u64 {
    let size = u64::from(sc.size);
    // Every engine writes the raw message and LF (scenario::Work::Raw).
    let line = size + 1;
    let out = match sc.work {
        Work::Raw => line,
        Work::Parsed => PARSED_BYTES_PER_MESSAGE_BYTE * size + PARSED_FIXED_BYTES,
    };
    if sc.kafka {
        // The broker's log, then the topic read back into a file for verify.
        size + KAFKA_RECORD_OVERHEAD_BYTES + out
    } else {
        out
    }
}

/// The bytes a run of `duration_s` writes at `rate_msg_per_s` (None:
/// unpaced, at the stated upper bounds).
pub fn output_bytes(sc: &Scenario, rate_msg_per_s: Option<f64>, duration_s: u32) -> u64 {
    let secs = f64::from(duration_s);
    let bytes = match rate_msg_per_s {
        Some(r) => r.max(0.0) * secs * bytes_per_msg_max(sc) as f64,
        None if sc.kafka => 2.0 * UNPACED_KAFKA_BYTES_PER_S_MAX as f64 * secs,
        None => UNPACED_OUTPUT_BYTES_PER_S_MAX as f64 * secs,
    };
    // `as` saturates: an absurd rate reads as "more than any disk".
    bytes.ceil() as u64
}

/// The free disk a run of `output` bytes needs before it starts.
pub fn need_bytes(output: u64) -> u64 {
    output
        .saturating_add(output / 100 * MARGIN_PCT)
        .saturating_add(MARGIN_BYTES)
}

/// What to do before a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// The free disk is enough.
    Fits,
    /// Delete at least this many bytes of the pool's oldest files first.
    Trim(u64),
    /// Even the whole pool would not make room: refuse the run. The free
    /// disk there would be with the pool gone.
    Short { free_after_trim_bytes: u64 },
}

/// `need` bytes against `free` on the disk and `pool` bytes the pool
/// could give back.
pub fn room(need: u64, free: u64, pool: u64) -> Room {
    if need <= free {
        return Room::Fits;
    }
    let with_pool = free.saturating_add(pool);
    if need <= with_pool {
        Room::Trim(need - free)
    } else {
        Room::Short {
            free_after_trim_bytes: with_pool,
        }
    }
}

/// Bytes as decimal GB with one decimal, as `df -H` shows them.
pub fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// " even after trimming the pool" when there is one.
fn pool_words(pooled: bool) -> &'static str {
    if pooled {
        " even after trimming the pool"
    } else {
        ""
    }
}

/// The reason a run is refused: what it needs, what there is, and what to
/// change (`duration_flag`: the option that set this run's duration).
pub fn refusal(need: u64, free: u64, pooled: bool, duration_flag: &str) -> String {
    format!(
        "needs {} of disk for its output, {} free{}; use {duration_flag} N or free disk",
        gb(need),
        gb(free),
        pool_words(pooled)
    )
}

/// The warning for an unpaced run whose upper bound the disk cannot hold.
pub fn at_risk(need: u64, free: u64, duration_flag: &str) -> String {
    format!(
        "unpaced, so only bounded: this run may need up to {} of disk for its output, {} free; \
         it may fill the disk (a shorter {duration_flag} makes sure it cannot)",
        gb(need),
        gb(free),
    )
}

/// How far an estimate can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Estimate {
    /// A paced run: the rate is given, so a run that cannot fit is refused.
    Paced,
    /// An unpaced run: only the stated upper bound is known, far above
    /// most runs (a 30-s run of one connection writes a fraction of it).
    /// Neither the pool is trimmed nor the run refused on it: a warning.
    UpperBound,
}

/// What [`make_room`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Go,
    /// Go, but an unpaced run's bound is more than the disk has: this line
    /// (also in the run's notes) says so.
    AtRisk(String),
    /// Refused: the run is failed, with the figures as its reason.
    Refused,
}

/// Before a run that needs `need` bytes (compare::run_one). A paced run:
/// trims the steady `pool`'s oldest files if they make the disk short (the
/// run's notes say by how much, with MemFree after the trim); if even the
/// whole pool would not make room, the run is refused (failed,
/// `disk_refused`, the figures as the reason) and the pool left as it was.
/// An unpaced run (only an upper bound known) never trims nor is refused:
/// when its bound is more than the disk has, it goes on with a warning.
/// `free_disk` reads the output file system's free bytes; it is read again
/// after a trim, since the file system decides, not the pool's count.
pub fn make_room(
    need: u64,
    estimate: Estimate,
    free_disk: &dyn Fn() -> io::Result<u64>,
    mut pool: Option<&mut Pool>,
    duration_flag: &str,
    run: &mut Run,
) -> io::Result<Verdict> {
    run.disk_need_bytes = Some(need);
    let free = free_disk()?;
    let pooled = pool.as_ref().map_or(0, |p| p.bytes());
    if estimate == Estimate::UpperBound {
        // Never trimmed for a bound: the pool is the steady state of every
        // engine's run, and the bound is far above most runs (a 10-s
        // large-record run writes ~20 GB against its 28.6 GB bound), so
        // trimming for it would change the state the peers are measured in.
        if free >= need {
            return Ok(Verdict::Go);
        }
        let line = at_risk(need, free, duration_flag);
        run.notes.push(line.clone());
        return Ok(Verdict::AtRisk(line));
    }
    let short = match room(need, free, pooled) {
        Room::Fits => None,
        Room::Short {
            free_after_trim_bytes,
        } => Some(free_after_trim_bytes),
        Room::Trim(bytes) => {
            if let Some(p) = pool.as_mut() {
                let freed = p.trim_oldest(bytes)?;
                run.pool_trimmed_bytes = Some(freed);
                let mem_free = match steady::meminfo() {
                    Ok(m) => format!("{} MiB", m.free >> 20),
                    Err(e) => format!("unknown ({e})"),
                };
                run.notes.push(format!(
                    "page-cache pool trimmed by {} (its oldest files, {} left) to make room for this run's output \
                     (estimated need {}, {} was free); MemFree after the trim {mem_free}",
                    gb(freed),
                    gb(p.bytes()),
                    gb(need),
                    gb(free)
                ));
            }
            let after = free_disk()?;
            (after < need).then_some(after)
        }
    };
    let Some(free) = short else {
        return Ok(Verdict::Go);
    };
    // A paced run (an unpaced one returned above).
    run.disk_refused = true;
    run.fail(refusal(need, free, pooled > 0, duration_flag));
    Ok(Verdict::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{MemState, Status};
    use crate::scenario::Engine;
    use std::cell::RefCell;
    use std::path::PathBuf;
    use std::time::Duration;

    const GB: u64 = 1_000_000_000;

    fn scenario(extra: &str) -> Scenario {
        crate::scenario::for_test(extra)
    }

    #[test]
    fn raw_messages_take_their_size_and_a_newline() {
        assert_eq!(bytes_per_msg_max(&scenario("")), 301);
        assert_eq!(bytes_per_msg_max(&scenario("size=1000")), 1001);
    }

    #[test]
    fn parsed_and_kafka_take_more_than_raw() {
        let parsed = bytes_per_msg_max(&scenario("work='parsed'"));
        // ringest's JSON for a 300 B message is 746 B: the bound is above it.
        assert_eq!(parsed, 3 * 300 + 256);
        assert!(parsed > 746);
        // The broker's log and the file read back from it.
        assert_eq!(bytes_per_msg_max(&scenario("kafka=true")), 300 + 64 + 301);
    }

    #[test]
    fn session_8s_sixty_percent_point_is_over_thirty_gb() {
        // 60% of 5.5M msg/s for 30 s, 301 B each: the run that filled the disk.
        let sc = scenario("");
        let out = output_bytes(&sc, Some(3_300_000.0), 30);
        assert_eq!(out, 3_300_000 * 30 * 301);
        assert!(out > 29 * GB && out < 30 * GB, "{out}");
        // + 10% + 1 GiB.
        assert_eq!(need_bytes(out), out + out / 10 + (1 << 30));
    }

    #[test]
    fn unpaced_runs_use_the_stated_upper_rate() {
        let sc = scenario("");
        assert_eq!(output_bytes(&sc, None, 10), 25 * GB);
        // Kafka: the broker's log and the file read back, 1 GB/s each.
        assert_eq!(output_bytes(&scenario("kafka=true"), None, 10), 20 * GB);
        // Independent of the message size: the bound is on bytes per second.
        assert_eq!(output_bytes(&scenario("size=10000"), None, 10), 25 * GB);
    }

    #[test]
    fn an_absurd_rate_saturates_instead_of_wrapping() {
        let sc = scenario("size=60000");
        let out = output_bytes(&sc, Some(1e30), 300);
        assert_eq!(out, u64::MAX);
        assert_eq!(need_bytes(out), u64::MAX);
        assert!(matches!(
            room(need_bytes(out), 40 * GB, 20 * GB),
            Room::Short { .. }
        ));
    }

    #[test]
    fn room_fits_then_trims_the_pool_then_refuses() {
        assert_eq!(room(10 * GB, 10 * GB, 0), Room::Fits);
        assert_eq!(room(10 * GB, 30 * GB, 19 * GB), Room::Fits);
        // Short by 5 GB, and the pool holds 19: trim 5.
        assert_eq!(room(35 * GB, 30 * GB, 19 * GB), Room::Trim(5 * GB));
        // Exactly the whole pool.
        assert_eq!(room(49 * GB, 30 * GB, 19 * GB), Room::Trim(19 * GB));
        assert_eq!(
            room(50 * GB, 30 * GB, 19 * GB),
            Room::Short {
                free_after_trim_bytes: 49 * GB
            }
        );
        // No pool (fresh state): fits or refused, never trimmed.
        assert_eq!(
            room(11 * GB, 10 * GB, 0),
            Room::Short {
                free_after_trim_bytes: 10 * GB
            }
        );
    }

    #[test]
    fn the_refusal_says_what_is_needed_what_is_free_and_what_to_do() {
        assert_eq!(
            refusal(47_100_000_000, 31_049_000_000, true, "--duration"),
            "needs 47.1 GB of disk for its output, 31.0 GB free even after trimming the pool; \
             use --duration N or free disk"
        );
        assert_eq!(
            refusal(12 * GB, 3 * GB, false, "--search-duration"),
            "needs 12.0 GB of disk for its output, 3.0 GB free; use --search-duration N or free disk"
        );
    }

    const MIB: u64 = 1 << 20;

    fn run() -> Run {
        Run::new("t", Engine::Ringest, 1, MemState::Steady, String::new())
    }

    /// A pool in a fresh temporary folder holding `files` files of 1 MiB,
    /// oldest first; and their paths.
    fn pool(name: &str, files: usize) -> (Pool, Vec<PathBuf>) {
        let d = std::env::temp_dir().join(format!("bench-disk-{name}-{}", std::process::id()));
        let mut p = Pool::create(
            &d,
            steady::Target {
                mem_free_bytes: 0,
                pool_bytes_max: 64 * MIB,
                time_max: Duration::from_secs(10),
            },
        )
        .unwrap();
        let paths = p.adopt_mib_files(files);
        (p, paths)
    }

    /// Free-disk readings in turn, as the file system would give them.
    fn readings(v: &[u64]) -> impl Fn() -> io::Result<u64> {
        let left = RefCell::new(v.to_vec());
        move || {
            let mut l = left.borrow_mut();
            assert!(!l.is_empty(), "read the free disk more often than expected");
            Ok(l.remove(0))
        }
    }

    #[test]
    fn make_room_trims_only_what_the_run_is_short_of() {
        let (mut p, files) = pool("trim", 4);
        let mut r = run();
        let need = 10 * GB;
        // 1.5 MiB short: two whole files go, the file system then has room.
        let free = readings(&[need - MIB - MIB / 2, need + MIB / 2]);
        assert_eq!(
            make_room(
                need,
                Estimate::Paced,
                &free,
                Some(&mut p),
                "--duration",
                &mut r
            )
            .unwrap(),
            Verdict::Go
        );
        assert_eq!(r.pool_trimmed_bytes, Some(2 * MIB));
        assert!(!files[0].exists() && !files[1].exists() && files[2].exists());
        assert_eq!(p.bytes(), 2 * MIB);
        assert_eq!(r.status, Status::Ok);
        assert!(!r.disk_refused);
        assert_eq!(r.disk_need_bytes, Some(need));
        assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
        assert!(
            r.notes[0]
                .starts_with("page-cache pool trimmed by 0.0 GB (its oldest files, 0.0 GB left)")
                && r.notes[0].contains("MemFree after the trim "),
            "{:?}",
            r.notes
        );
        // Room enough: nothing trimmed, no note.
        let mut r = run();
        assert_eq!(
            make_room(
                need,
                Estimate::Paced,
                &readings(&[need]),
                Some(&mut p),
                "--duration",
                &mut r
            )
            .unwrap(),
            Verdict::Go
        );
        assert_eq!((r.pool_trimmed_bytes, r.notes.len()), (None, 0));
        assert_eq!(p.bytes(), 2 * MIB);
    }

    #[test]
    fn make_room_refuses_and_leaves_the_pool_when_even_all_of_it_is_not_enough() {
        let (mut p, files) = pool("short", 3);
        let mut r = run();
        let need = 10 * GB;
        let free = readings(&[need - 4 * MIB]);
        assert_eq!(
            make_room(
                need,
                Estimate::Paced,
                &free,
                Some(&mut p),
                "--search-duration",
                &mut r
            )
            .unwrap(),
            Verdict::Refused
        );
        assert!(r.disk_refused);
        assert_eq!(r.status, Status::Failed);
        assert_eq!(
            r.reason.as_deref(),
            Some(
                "needs 10.0 GB of disk for its output, 10.0 GB free even after trimming the pool; \
                 use --search-duration N or free disk"
            )
        );
        assert_eq!(r.pool_trimmed_bytes, None);
        assert!(
            files.iter().all(|f| f.exists()),
            "the pool is left as it was"
        );
        assert_eq!(p.bytes(), 3 * MIB);
    }

    #[test]
    fn make_room_refuses_when_the_trim_did_not_free_what_the_pool_counted() {
        // Someone else took the disk meanwhile: the second reading decides.
        let (mut p, _) = pool("raced", 2);
        let mut r = run();
        let need = 10 * GB;
        let free = readings(&[need - MIB, need - 1]);
        assert_eq!(
            make_room(
                need,
                Estimate::Paced,
                &free,
                Some(&mut p),
                "--duration",
                &mut r
            )
            .unwrap(),
            Verdict::Refused
        );
        assert!(r.disk_refused);
        assert_eq!(r.pool_trimmed_bytes, Some(MIB));
        assert!(r
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("even after trimming the pool"));
    }

    #[test]
    fn make_room_without_a_pool_fits_or_refuses() {
        let mut r = run();
        assert_eq!(
            make_room(
                GB,
                Estimate::Paced,
                &readings(&[GB]),
                None,
                "--duration",
                &mut r
            )
            .unwrap(),
            Verdict::Go
        );
        assert_eq!(
            make_room(
                GB,
                Estimate::Paced,
                &readings(&[GB - 1]),
                None,
                "--duration",
                &mut r
            )
            .unwrap(),
            Verdict::Refused
        );
        assert_eq!(
            r.reason.as_deref(),
            Some("needs 1.0 GB of disk for its output, 1.0 GB free; use --duration N or free disk")
        );
    }

    #[test]
    fn an_unpaced_run_is_never_trimmed_for_nor_refused_on_its_bound() {
        let (mut p, files) = pool("unpaced", 3);
        let mut r = run();
        let need = 10 * GB;
        let free = readings(&[need]);
        let v = make_room(
            need,
            Estimate::UpperBound,
            &free,
            Some(&mut p),
            "--duration",
            &mut r,
        );
        assert_eq!(v.unwrap(), Verdict::Go);
        // Short by 1 MiB: the pool is left as it was, and the run goes on
        // with the warning.
        let mut r = run();
        let free = readings(&[need - MIB]);
        let v = make_room(
            need,
            Estimate::UpperBound,
            &free,
            Some(&mut p),
            "--duration",
            &mut r,
        );
        let Verdict::AtRisk(line) = v.unwrap() else {
            panic!("an unpaced run is not refused on its bound");
        };
        assert!(
            line.starts_with("unpaced, so only bounded: this run may need up to 10.0 GB"),
            "{line}"
        );
        assert_eq!(r.notes, vec![line]);
        assert_eq!(
            (r.status, r.disk_refused, r.pool_trimmed_bytes),
            (Status::Ok, false, None)
        );
        assert!(files.iter().all(|f| f.exists()) && p.bytes() == 3 * MIB);
    }
}
