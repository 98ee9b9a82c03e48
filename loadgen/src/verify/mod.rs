//! `loadgen verify`: reads received messages (raw lines or JSON lines) and
//! reports, per run id and connection, what was received, missing,
//! duplicated and corrupted.
//!
//! The checker (`Checker`) is sans-IO: it is fed one message at a time. Each
//! connection keeps a bitmap of the sequence numbers seen, so memory is one
//! bit per message and multi-GB files stream through in big reads.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use memchr::memmem;
use serde_json::json;

use crate::cli::{VerifyArgs, VerifyFormat};
use crate::jsonline;
use crate::message::{self, MARKER_PREFIX};

mod checker;
mod report;

pub use checker::{Checker, ConnState, RunState};
pub use report::{passes, report, ConnReport, Expect};

/// Read size for input files.
const READ_BYTES: usize = 8 << 20;
/// Longest line accepted; a longer one counts as corrupted and is skipped.
const LINE_BYTES_MAX: usize = 16 << 20;
/// Highest connection index accepted (bounds the per-run tables).
const CONN_MAX: u32 = 1 << 20;
/// Connections listed by name in the human report.
const REPORT_CONNS_MAX: usize = 20;

/// Parses `0=100,1=100,...`.
pub fn parse_expect_list(s: &str) -> Result<Vec<u64>, String> {
    let mut v: Vec<u64> = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (c, n) = part
            .split_once('=')
            .ok_or_else(|| format!("--expect: {part:?} is not CONN=COUNT"))?;
        let c: usize = c
            .trim()
            .parse()
            .map_err(|_| format!("--expect: bad connection {c:?}"))?;
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("--expect: bad count {n:?}"))?;
        if c > CONN_MAX as usize {
            return Err(format!("--expect: connection {c} is out of range"));
        }
        if c >= v.len() {
            v.resize(c + 1, 0);
        }
        v[c] = n;
    }
    Ok(v)
}

fn expect_from_json(path: &Path) -> Result<Expect, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The last JSON object in the file (send prints one).
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("{}: no JSON object", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("{}: {e}", path.display()))?;
    let run = v["run_id"]
        .as_str()
        .ok_or_else(|| format!("{}: no run_id", path.display()))
        .and_then(message::parse_run_id)?;
    let per_conn = v["per_connection_sent"]
        .as_array()
        .ok_or_else(|| format!("{}: no per_connection_sent", path.display()))?
        .iter()
        .map(|x| {
            x.as_u64()
                .ok_or_else(|| format!("{}: bad per_connection_sent", path.display()))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    Ok(Expect {
        run: Some(run),
        per_conn: Some(per_conn),
        total: None,
        connections: None,
        padding: v["padding"].as_bool().unwrap_or(true),
    })
}

/// Streams `reader` line by line into the checker.
fn check_stream(
    checker: &mut Checker,
    mut reader: impl Read,
    format: VerifyFormat,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; READ_BYTES];
    let mut filled = 0;
    let mut scratch = Vec::new();
    let mut skipping_long = false;
    loop {
        if filled == buf.len() {
            if buf.len() < LINE_BYTES_MAX {
                buf.resize(buf.len() * 2, 0);
            } else {
                // A line longer than the limit: count it once and drop it.
                checker.lines += 1;
                checker.unattributed("line_too_long");
                skipping_long = true;
                filled = 0;
            }
        }
        let n = match reader.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let eof = n == 0;
        let end = filled + n;
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', &buf[filled..end]) {
            let nl = filled + nl;
            if skipping_long {
                skipping_long = false;
            } else {
                one_line(checker, &buf[start..nl], format, &mut scratch);
            }
            start = nl + 1;
        }
        if eof {
            if start < end && !skipping_long {
                one_line(checker, &buf[start..end], format, &mut scratch);
            }
            return Ok(());
        }
        buf.copy_within(start..end, 0);
        filled = end - start;
    }
}

fn one_line(checker: &mut Checker, line: &[u8], format: VerifyFormat, scratch: &mut Vec<u8>) {
    match format {
        VerifyFormat::Raw => checker.message(line),
        VerifyFormat::Json => {
            if line.iter().all(u8::is_ascii_whitespace) {
                return;
            }
            match jsonline::string_field(line, b"message", scratch) {
                Ok(true) => {
                    let msg = std::mem::take(scratch);
                    checker.message(&msg);
                    *scratch = msg;
                }
                Ok(false) => {
                    checker.lines += 1;
                    checker.unmarked += 1;
                }
                Err(e) => {
                    checker.lines += 1;
                    checker.unattributed(e.as_str());
                }
            }
        }
    }
}

pub fn run(args: VerifyArgs) -> i32 {
    match run_inner(&args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("loadgen verify: {e}");
            2
        }
    }
}

fn run_inner(args: &VerifyArgs) -> Result<bool, String> {
    let only_run = args
        .run_id
        .as_deref()
        .map(message::parse_run_id)
        .transpose()?;
    let mut expect = match &args.expect_json {
        Some(p) => expect_from_json(p)?,
        None => Expect::default(),
    };
    if let Some(r) = only_run {
        expect.run = Some(r);
    }
    if let Some(list) = &args.expect {
        expect.per_conn = Some(parse_expect_list(list)?);
    }
    if let Some(n) = args.expect_count {
        expect.total = Some(n);
        expect.per_conn = None;
    }
    expect.connections = args.expect_connections;
    let mut checker = Checker::new(!args.no_padding_check, args.size, args.max_seq, only_run);
    if let (false, Some(run)) = (expect.padding, expect.run) {
        checker.no_padding_runs.push(run);
    }
    let t0 = std::time::Instant::now();
    let mut bytes = 0u64;
    for f in &args.files {
        if f.as_os_str() == "-" {
            check_stream(&mut checker, std::io::stdin().lock(), args.format)
                .map_err(|e| format!("stdin: {e}"))?;
        } else {
            let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
            bytes += file.metadata().map(|m| m.len()).unwrap_or(0);
            check_stream(&mut checker, file, args.format)
                .map_err(|e| format!("{}: {e}", f.display()))?;
        }
    }
    let runs = report(&checker, &expect)?;
    let unattributed: u64 = checker.unattributed.values().sum();
    let ok = passes(&checker, &runs, args.allow_unmarked);
    let mut totals = (0u64, 0u64, 0u64, 0u64);
    let mut json_runs = Vec::new();
    let mut text = String::new();
    use std::fmt::Write as _;
    for r in &runs {
        let received = r.sum(|c| c.received);
        let missing = r.sum(|c| c.missing);
        let duplicated = r.sum(|c| c.duplicated);
        let corrupted = r.sum(|c| c.corrupted);
        totals.0 += received;
        totals.1 += missing;
        totals.2 += duplicated;
        totals.3 += corrupted;
        let _ = write!(
            text,
            "\nrun {}: {} connections, received {received}, missing {missing}, duplicated {duplicated}, corrupted {corrupted}",
            message::run_id_hex(r.run),
            r.conns.len()
        );
        let bad: Vec<&ConnReport> = r
            .conns
            .iter()
            .filter(|c| c.missing + c.duplicated + c.corrupted > 0)
            .collect();
        for c in bad.iter().take(REPORT_CONNS_MAX) {
            let _ = write!(
                text,
                "\n  conn {}: received {} expected {} missing {} duplicated {} corrupted {}",
                c.conn,
                c.received,
                c.expected.map_or("-".to_string(), |e| e.to_string()),
                c.missing,
                c.duplicated,
                c.corrupted
            );
        }
        if bad.len() > REPORT_CONNS_MAX {
            let _ = write!(
                text,
                "\n  ... {} more connections with problems",
                bad.len() - REPORT_CONNS_MAX
            );
        }
        json_runs.push(json!({
            "run_id": message::run_id_hex(r.run),
            "received": received,
            "missing": missing,
            "duplicated": duplicated,
            "corrupted": corrupted,
            "connections": r.conns.iter().map(|c| json!({
                "conn": c.conn,
                "received": c.received,
                "expected": c.expected,
                "missing": c.missing,
                "duplicated": c.duplicated,
                "corrupted": c.corrupted,
                "beyond_expected": c.beyond_expected,
            })).collect::<Vec<_>>(),
        }));
    }
    let secs = t0.elapsed().as_secs_f64();
    let header = format!(
        "loadgen verify: {} lines ({} MB in {secs:.2}s), {} without marker{}, {} unattributed corrupted{}: {}",
        checker.lines,
        bytes / 1_000_000,
        checker.unmarked,
        if checker.unmarked > 0 && !args.allow_unmarked {
            " (not allowed without --allow-unmarked)"
        } else {
            ""
        },
        unattributed,
        if checker.other_runs > 0 {
            format!(", {} of other runs", checker.other_runs)
        } else {
            String::new()
        },
        if ok { "OK" } else { "FAILED" }
    );
    eprintln!("{header}{text}");
    if runs.is_empty() {
        eprintln!("loadgen verify: no loadgen messages found");
    }
    if args.json {
        let out = json!({
            "ok": ok,
            "lines": checker.lines,
            "unmarked": checker.unmarked,
            "unmarked_allowed": args.allow_unmarked,
            "other_runs": checker.other_runs,
            "unattributed": checker.unattributed,
            "received": totals.0,
            "missing": totals.1,
            "duplicated": totals.2,
            "corrupted": totals.3 + unattributed,
            "runs": json_runs,
        });
        println!("{out}");
    }
    Ok(ok)
}

#[cfg(test)]
mod tests;
