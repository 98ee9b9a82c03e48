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

/// Read size for input files.
const READ_BYTES: usize = 8 << 20;
/// Longest line accepted; a longer one counts as corrupted and is skipped.
const LINE_BYTES_MAX: usize = 16 << 20;
/// Highest connection index accepted (bounds the per-run tables).
const CONN_MAX: u32 = 1 << 20;
/// Connections listed by name in the human report.
const REPORT_CONNS_MAX: usize = 20;

#[derive(Clone, Debug, Default)]
pub struct ConnState {
    bits: Vec<u64>,
    /// Lines carrying this connection's marker (duplicates included).
    pub received: u64,
    /// Distinct sequence numbers seen.
    pub unique: u64,
    pub duplicated: u64,
    /// Marker fine, but the padding or length is wrong.
    pub corrupted: u64,
    /// One past the highest sequence number seen (0 if none).
    pub seq_end: u64,
}

impl ConnState {
    /// Marks `seq` seen; returns false if it already was.
    fn mark(&mut self, seq: u64) -> bool {
        let word = (seq / 64) as usize;
        if word >= self.bits.len() {
            // Grow geometrically (amortised O(1)), by at most 8 MiB at a time.
            let want = (self.bits.len() * 2).min(self.bits.len() + (1 << 20));
            self.bits.resize(want.max(word + 1), 0);
        }
        let bit = 1u64 << (seq % 64);
        let fresh = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        self.seq_end = self.seq_end.max(seq + 1);
        fresh
    }

    /// Distinct sequence numbers seen in 0..upto.
    pub fn seen_below(&self, upto: u64) -> u64 {
        if upto >= self.seq_end {
            return self.unique;
        }
        let full = (upto / 64) as usize;
        let mut n: u64 = self.bits[..full.min(self.bits.len())]
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum();
        if let Some(w) = self.bits.get(full) {
            let mask = (1u64 << (upto % 64)) - 1;
            n += u64::from((w & mask).count_ones());
        }
        n
    }

    /// Sequence numbers in 0..upto never seen.
    pub fn missing(&self, upto: u64) -> u64 {
        upto - self.seen_below(upto)
    }

    /// Distinct sequence numbers seen at or above `from`.
    pub fn beyond(&self, from: u64) -> u64 {
        self.unique - self.seen_below(from)
    }
}

#[derive(Clone, Debug, Default)]
pub struct RunState {
    pub run: u32,
    pub conns: Vec<ConnState>,
}

impl RunState {
    fn conn(&mut self, conn: u32) -> &mut ConnState {
        let i = conn as usize;
        if i >= self.conns.len() {
            self.conns.resize_with(i + 1, ConnState::default);
        }
        &mut self.conns[i]
    }
}

/// Delivery checker, fed one message at a time.
pub struct Checker {
    pub runs: Vec<RunState>,
    finder: memmem::Finder<'static>,
    check_padding: bool,
    size: Option<usize>,
    max_seq: u64,
    only_run: Option<u32>,
    /// Runs whose messages carry no padding (`send --read-file`).
    no_padding_runs: Vec<u32>,
    pub lines: u64,
    /// Lines without a marker (other traffic, relay notices...).
    pub unmarked: u64,
    /// Lines of other runs when only one run is checked.
    pub other_runs: u64,
    /// Corrupted lines that cannot be attributed to a connection, by reason.
    pub unattributed: BTreeMap<&'static str, u64>,
}

impl Checker {
    pub fn new(
        check_padding: bool,
        size: Option<usize>,
        max_seq: u64,
        only_run: Option<u32>,
    ) -> Self {
        Checker {
            runs: Vec::new(),
            finder: memmem::Finder::new(MARKER_PREFIX),
            check_padding,
            size,
            max_seq,
            only_run,
            no_padding_runs: Vec::new(),
            lines: 0,
            unmarked: 0,
            other_runs: 0,
            unattributed: BTreeMap::new(),
        }
    }

    fn run_state(&mut self, run: u32) -> &mut RunState {
        let pos = match self.runs.iter().position(|r| r.run == run) {
            Some(p) => p,
            None => {
                self.runs.push(RunState {
                    run,
                    conns: Vec::new(),
                });
                self.runs.len() - 1
            }
        };
        &mut self.runs[pos]
    }

    fn unattributed(&mut self, why: &'static str) {
        *self.unattributed.entry(why).or_default() += 1;
    }

    /// Finds the marker: the first `lg=` at the start or after a byte that
    /// is not alphanumeric (so `flg=` in a header does not count).
    fn find_marker(&self, msg: &[u8]) -> Option<usize> {
        self.finder.find_iter(msg).find(|&at| {
            at == 0 || {
                let b = msg[at - 1];
                !(b.is_ascii_alphanumeric() || b == b'_')
            }
        })
    }

    /// Checks one received message (a raw line, or a JSON message field).
    pub fn message(&mut self, msg: &[u8]) {
        self.lines += 1;
        let msg = msg.strip_suffix(b"\r").unwrap_or(msg);
        let Some(at) = self.find_marker(msg) else {
            self.unmarked += 1;
            return;
        };
        let (m, used) = match message::parse_marker(&msg[at..]) {
            Ok(x) => x,
            Err(e) => {
                self.unattributed(e.as_str());
                return;
            }
        };
        if self.only_run.is_some_and(|r| r != m.run) {
            self.other_runs += 1;
            return;
        }
        if m.conn > CONN_MAX {
            self.unattributed("conn_out_of_range");
            return;
        }
        if m.seq > self.max_seq {
            self.unattributed("seq_out_of_range");
            return;
        }
        let intact = (!self.check_padding
            || self.no_padding_runs.contains(&m.run)
            || message::padding_matches(&msg[at + used..], m.conn, m.seq))
            && self.size.is_none_or(|s| msg.len() == s);
        let c = self.run_state(m.run).conn(m.conn);
        c.received += 1;
        if c.mark(m.seq) {
            c.unique += 1;
        } else {
            c.duplicated += 1;
        }
        if !intact {
            c.corrupted += 1;
        }
    }
}

/// Where expectations come from: explicit per-connection counts, or a total
/// spread like `send --count`.
#[derive(Clone, Debug)]
pub struct Expect {
    pub run: Option<u32>,
    pub per_conn: Option<Vec<u64>>,
    pub total: Option<u64>,
    pub connections: Option<u32>,
    /// False when the run's messages carry no padding (`send --read-file`).
    pub padding: bool,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            run: None,
            per_conn: None,
            total: None,
            connections: None,
            padding: true,
        }
    }
}

/// One connection's line in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnReport {
    pub conn: u32,
    pub received: u64,
    pub expected: Option<u64>,
    pub missing: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub beyond_expected: u64,
}

#[derive(Clone, Debug)]
pub struct RunReport {
    pub run: u32,
    pub conns: Vec<ConnReport>,
}

impl RunReport {
    fn sum(&self, f: impl Fn(&ConnReport) -> u64) -> u64 {
        self.conns.iter().map(f).sum()
    }
}

/// Builds the per-connection report of every run; expectations apply to
/// `expect.run`, or to the only run present.
pub fn report(checker: &Checker, expect: &Expect) -> Result<Vec<RunReport>, String> {
    let target = match expect.run {
        Some(r) => Some(r),
        None if expect.per_conn.is_some() || expect.total.is_some() => match checker.runs.len() {
            0 => None,
            1 => Some(checker.runs[0].run),
            _ => return Err("several run ids in the input: name one with --run-id".into()),
        },
        None => None,
    };
    let mut out = Vec::new();
    let mut runs: Vec<&RunState> = checker.runs.iter().collect();
    // An expected run that never showed up is all missing.
    let empty;
    if let Some(t) = target {
        if !runs.iter().any(|r| r.run == t) {
            empty = RunState {
                run: t,
                conns: Vec::new(),
            };
            runs.push(&empty);
        }
    }
    for r in runs {
        let expected: Option<Vec<u64>> = if Some(r.run) == target {
            match (&expect.per_conn, expect.total) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(n)) => {
                    let parts = expect.connections.unwrap_or(r.conns.len().max(1) as u32);
                    Some(
                        (0..parts)
                            .map(|i| crate::send::share(n, parts, i))
                            .collect(),
                    )
                }
                (None, None) => None,
            }
        } else {
            None
        };
        let n = r.conns.len().max(expected.as_ref().map_or(0, Vec::len));
        let default = ConnState::default();
        let conns = (0..n)
            .map(|i| {
                let c = r.conns.get(i).unwrap_or(&default);
                let exp = expected.as_ref().map(|v| v.get(i).copied().unwrap_or(0));
                let upto = exp.map_or(c.seq_end, |e| e.max(c.seq_end));
                let beyond = exp.map_or(0, |e| c.beyond(e));
                ConnReport {
                    conn: i as u32,
                    received: c.received,
                    expected: exp,
                    missing: c.missing(upto),
                    duplicated: c.duplicated,
                    corrupted: c.corrupted,
                    beyond_expected: beyond,
                }
            })
            .filter(|c| c.received > 0 || c.expected.is_some_and(|e| e > 0))
            .collect();
        out.push(RunReport { run: r.run, conns });
    }
    Ok(out)
}

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

/// The verdict: at least one run found, and nothing missing, duplicated,
/// corrupted or unattributable. A line without a marker fails too unless
/// `allow_unmarked`: a file written only by loadgen's traffic has none, and
/// an empty or rewritten line (a relay that dropped the message body) must
/// not pass as "other traffic".
pub fn passes(checker: &Checker, runs: &[RunReport], allow_unmarked: bool) -> bool {
    let unattributed: u64 = checker.unattributed.values().sum();
    let bad: u64 = runs
        .iter()
        .map(|r| r.sum(|c| c.missing + c.duplicated + c.corrupted))
        .sum();
    !runs.is_empty() && unattributed == 0 && bad == 0 && (allow_unmarked || checker.unmarked == 0)
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
mod tests {
    use super::*;
    use crate::message::{ConnEncoder, Format, Framing, MessageSpec};

    /// Messages of `conns` connections x `per_conn` each, one per line.
    fn lines(conns: u32, per_conn: u64) -> Vec<Vec<u8>> {
        let spec = MessageSpec {
            format: Format::Rfc5424,
            framing: Framing::Newline,
            size: 200,
            sd: false,
            run: 0x1234_abcd,
            hostname: "h".into(),
            pid: 1,
        };
        let mut out = Vec::new();
        for c in 0..conns {
            let enc = ConnEncoder::new(&spec, c, None);
            for s in 0..per_conn {
                let mut m = Vec::new();
                enc.encode(s, &mut m).unwrap();
                m.pop(); // the LF
                out.push(m);
            }
        }
        out
    }

    fn check(lines: &[Vec<u8>], expect: &Expect) -> (Checker, Vec<RunReport>) {
        let mut data = Vec::new();
        for l in lines {
            data.extend_from_slice(l);
            data.push(b'\n');
        }
        let mut c = Checker::new(true, None, 1 << 32, None);
        check_stream(&mut c, &data[..], VerifyFormat::Raw).unwrap();
        let r = report(&c, expect).unwrap();
        (c, r)
    }

    fn totals(r: &[RunReport]) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for run in r {
            t.0 += run.sum(|c| c.received);
            t.1 += run.sum(|c| c.missing);
            t.2 += run.sum(|c| c.duplicated);
            t.3 += run.sum(|c| c.corrupted);
        }
        t
    }

    #[test]
    fn intact_file_passes() {
        let l = lines(3, 100);
        let expect = Expect {
            total: Some(300),
            connections: Some(3),
            ..Default::default()
        };
        let (c, r) = check(&l, &expect);
        assert_eq!(totals(&r), (300, 0, 0, 0));
        assert!(c.unattributed.is_empty());
        assert_eq!(c.unmarked, 0);
    }

    #[test]
    fn removed_line_is_missing() {
        let mut l = lines(2, 50);
        l.remove(10); // conn 0, seq 10
        let (_, r) = check(&l, &Expect::default());
        assert_eq!(totals(&r), (99, 1, 0, 0));
        assert_eq!(r[0].conns[0].missing, 1);
        assert_eq!(r[0].conns[1].missing, 0);
    }

    #[test]
    fn trailing_loss_needs_an_expectation() {
        let mut l = lines(2, 50);
        l.remove(49); // conn 0's last message
        let (_, r) = check(&l, &Expect::default());
        assert_eq!(
            totals(&r).1,
            0,
            "no gap, nothing to see without expectations"
        );
        let expect = Expect {
            total: Some(100),
            connections: Some(2),
            ..Default::default()
        };
        let (_, r) = check(&l, &expect);
        assert_eq!(totals(&r).1, 1);
        // And a connection that never showed up at all.
        let expect = Expect {
            per_conn: Some(parse_expect_list("0=50,1=50,2=7").unwrap()),
            ..Default::default()
        };
        let (_, r) = check(&lines(2, 50), &expect);
        assert_eq!(totals(&r).1, 7);
    }

    #[test]
    fn duplicated_line_is_reported() {
        let mut l = lines(2, 50);
        l.insert(70, l[60].clone());
        let (_, r) = check(&l, &Expect::default());
        assert_eq!(totals(&r), (101, 0, 1, 0));
        assert_eq!(r[0].conns[1].duplicated, 1);
    }

    #[test]
    fn altered_padding_byte_is_corrupted() {
        let mut l = lines(2, 50);
        let last = l[5].len() - 10;
        l[5][last] ^= 0x01;
        let (_, r) = check(&l, &Expect::default());
        assert_eq!(totals(&r), (100, 0, 0, 1));
    }

    #[test]
    fn removed_duplicated_and_altered_together_fail() {
        let mut l = lines(3, 40);
        l.remove(3);
        l.push(l[20].clone());
        let n = l[50].len();
        l[50][n - 2] = b'#';
        let (_, r) = check(&l, &Expect::default());
        assert_eq!(totals(&r), (120, 1, 1, 1));
    }

    #[test]
    fn truncated_and_unparsable_markers_are_corrupted() {
        let mut l = lines(1, 10);
        let n = l[2].len();
        l[2].truncate(n - 1); // the terminator is gone
        l.push(b"<13>1 - - - - - - lg=zzzz/1/2 hello".to_vec());
        l.push(b"no marker here, flg=1 either".to_vec());
        let mut data = Vec::new();
        for x in &l {
            data.extend_from_slice(x);
            data.push(b'\n');
        }
        let mut c = Checker::new(true, None, 1 << 32, None);
        check_stream(&mut c, &data[..], VerifyFormat::Raw).unwrap();
        let r = report(&c, &Expect::default()).unwrap();
        assert_eq!(totals(&r), (10, 0, 0, 1));
        assert_eq!(c.unattributed.get("marker_bad_run_id"), Some(&1));
        assert_eq!(c.unmarked, 1);
    }

    #[test]
    fn marker_survives_a_rewritten_header_and_json() {
        let l = lines(1, 3);
        let mut data = Vec::new();
        for x in &l {
            let at = memmem::find(x, b"lg=").unwrap();
            let rewritten = [b"Nov 26 15:16:40 otherhost prog: ".as_slice(), &x[at..]].concat();
            let s = serde_json::to_string(&String::from_utf8(rewritten).unwrap()).unwrap();
            data.extend_from_slice(format!("{{\"host\":\"x\",\"message\":{s}}}\n").as_bytes());
        }
        let mut c = Checker::new(true, None, 1 << 32, None);
        check_stream(&mut c, &data[..], VerifyFormat::Json).unwrap();
        let r = report(&c, &Expect::default()).unwrap();
        assert_eq!(totals(&r), (3, 0, 0, 0));
    }

    #[test]
    fn lines_split_across_reads() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(7).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let l = lines(2, 20);
        let mut data = Vec::new();
        for x in &l {
            data.extend_from_slice(x);
            data.push(b'\n');
        }
        data.pop(); // no final LF
        let mut c = Checker::new(true, None, 1 << 32, None);
        check_stream(&mut c, Trickle(&data), VerifyFormat::Raw).unwrap();
        let r = report(&c, &Expect::default()).unwrap();
        assert_eq!(totals(&r), (40, 0, 0, 0));
    }

    #[test]
    fn unmarked_line_fails_unless_allowed() {
        let mut l = lines(1, 10);
        let (c, r) = check(&l, &Expect::default());
        assert!(passes(&c, &r, false));
        // An empty line (a relay that wrote an empty $MSG) and a foreign one.
        l.insert(4, Vec::new());
        l.push(b"<13>1 - host app - - - relay restarted".to_vec());
        let (c, r) = check(&l, &Expect::default());
        assert_eq!(c.unmarked, 2);
        assert_eq!(totals(&r), (10, 0, 0, 0));
        assert!(!passes(&c, &r, false), "unmarked lines fail by default");
        assert!(passes(&c, &r, true), "--allow-unmarked accepts them");
    }

    #[test]
    fn a_file_without_any_marker_never_passes() {
        let (c, r) = check(&[b"hello".to_vec()], &Expect::default());
        assert!(!passes(&c, &r, true));
    }

    #[test]
    fn bitmap_counts() {
        let mut c = ConnState::default();
        for s in [0u64, 1, 5, 64, 200] {
            assert!(c.mark(s));
            c.unique += 1;
        }
        assert!(!c.mark(5));
        assert_eq!(c.missing(201), 201 - 5);
        assert_eq!(c.missing(6), 3);
        assert_eq!(c.missing(64), 61);
        assert_eq!(c.missing(65), 61);
        assert_eq!(c.beyond(6), 2);
        assert_eq!(c.beyond(0), 5);
    }
}
