//! What the checker found, per run and connection, against what was
//! expected, and the verdict.

use super::*;

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
    pub(super) fn sum(&self, f: impl Fn(&ConnReport) -> u64) -> u64 {
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
