//! The sans-IO delivery checker: fed one message at a time, it keeps a
//! bitmap of the sequence numbers seen per run and connection.

use super::*;

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
    pub(super) fn mark(&mut self, seq: u64) -> bool {
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
    pub(super) no_padding_runs: Vec<u32>,
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

    pub(super) fn unattributed(&mut self, why: &'static str) {
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
