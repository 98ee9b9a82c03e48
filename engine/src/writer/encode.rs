//! One round's bytes for one destination, and where each message ends in
//! them: the writer writes the bytes, and when it has to give up it counts
//! the messages that did not wholly land from the same ends.

use std::ops::ControlFlow;

use super::json;
use super::parsed::{Parsed, ParsedBatch};
use crate::batch::{Batch, ConnMeta};
use crate::config::OutputFormat;
use crate::parse::json::JsonOptions;
use crate::parse::{self, ParseMode};
use crate::stats::Stats;

/// How one destination encodes its messages.
#[derive(Clone, Copy)]
pub struct Encoding<'a> {
    pub format: OutputFormat,
    /// Each source's parse mode (json only).
    pub parse: &'a [ParseMode],
    pub include_raw: bool,
}

impl Encoding<'_> {
    pub const RAW: Encoding<'static> = Encoding {
        format: OutputFormat::Raw,
        parse: &[],
        include_raw: false,
    };
}

/// The bytes of one round for one destination (`'a`: the writer's
/// scratch; `'r`: the round), with the round's [`Parsed`] view, so a
/// destination that reads a message's fields (kafka's `key = "host"`)
/// reads them parsed once per round, as routing, json and templates do.
pub enum Out<'a, 'r> {
    /// The round's batches as they are: a raw destination fed by every source.
    Batches(&'a Parsed<'r>),
    /// Encoded into the writer's scratch buffer; `ends[i]` is the offset just
    /// past message i's `\n`. `origins[i]`, when the destination asked for
    /// them ([`Origin`]), says which message of `round` message i is.
    Encoded {
        bytes: &'a [u8],
        ends: &'a [usize],
        /// The round; `None` only for [`Out::NOTHING`].
        round: Option<&'a Parsed<'r>>,
        origins: &'a [Origin],
    },
}

/// Where an encoded message came from: (batch of the round, message of the
/// batch). Recorded only for destinations that key messages by sender.
pub type Origin = (u32, u32);

/// One message as a destination sends it on its own (not as a line): its
/// bytes without the newline, and where it came from when known.
pub struct Message<'a, 'r> {
    pub value: &'a [u8],
    pub from: Option<Sender<'a, 'r>>,
}

/// Where a message came from: its connection, and its place in the round,
/// where its fields are parsed once for every step that reads them.
#[derive(Clone, Copy)]
pub struct Sender<'a, 'r> {
    pub conn: &'a ConnMeta,
    batch: ParsedBatch<'a, 'r>,
    m: usize,
}

impl<'r> Sender<'_, 'r> {
    /// The message's syslog fields, read with its source's `parse` mode
    /// (`auto` for `none`): parsed at the round's first ask only, and a
    /// failure counted then ([`super::parsed`]).
    pub fn fields(&self) -> parse::Message<'r> {
        self.batch.message(self.conn.source as usize, self.m)
    }
}

/// The connection message `m` of `b` came from.
fn conn_of(b: &Batch, m: usize) -> Option<&ConnMeta> {
    let run = b
        .runs
        .partition_point(|r| r.first as usize <= m)
        .checked_sub(1)?;
    b.runs.get(run).map(|r| &*r.conn)
}

impl<'a, 'r> Out<'a, 'r> {
    /// No message: an idle turn (fsync policy, retries) or a torn-line repair.
    pub const NOTHING: Out<'static, 'static> = Out::Encoded {
        bytes: &[],
        ends: &[],
        round: None,
        origins: &[],
    };

    pub fn parts(&self) -> Vec<&[u8]> {
        match self {
            Out::Batches(parsed) => parsed
                .round()
                .iter()
                .map(|(_, b)| b.bytes.as_slice())
                .collect(),
            Out::Encoded { bytes, .. } => vec![bytes],
        }
    }

    /// Each message in order, until `f` breaks; returns how many `f` took
    /// (the one that broke excluded). The messages borrow the round, not
    /// `self`, so a destination may gather a round's values and hand them
    /// on together (kafka's batch produce).
    pub fn for_each_message(&self, mut f: impl FnMut(Message<'a, 'r>) -> ControlFlow<()>) -> u64 {
        let mut n = 0u64;
        match *self {
            Out::Batches(parsed) => {
                for batch in parsed.batches() {
                    let b = batch.batch();
                    for (i, run) in b.runs.iter().enumerate() {
                        let end = b.runs.get(i + 1).map_or(b.len(), |r| r.first as usize);
                        for m in run.first as usize..end {
                            let msg = Message {
                                value: b.message(m),
                                from: Some(Sender {
                                    conn: &run.conn,
                                    batch,
                                    m,
                                }),
                            };
                            if f(msg).is_break() {
                                return n;
                            }
                            n += 1;
                        }
                    }
                }
            }
            Out::Encoded {
                bytes,
                ends,
                round,
                origins,
            } => {
                let mut start = 0;
                for (i, &end) in ends.iter().enumerate() {
                    // Each message ends with its newline, which is not part of the value.
                    let value = bytes.get(start..end.saturating_sub(1)).unwrap_or(&[]);
                    start = end;
                    let from = origins.get(i).zip(round).and_then(|(&(bi, m), parsed)| {
                        let (bi, m) = (bi as usize, m as usize);
                        let (_, b) = parsed.round().get(bi)?;
                        Some(Sender {
                            conn: conn_of(b, m)?,
                            batch: parsed.batch(bi),
                            m,
                        })
                    });
                    if f(Message { value, from }).is_break() {
                        return n;
                    }
                    n += 1;
                }
            }
        }
        n
    }

    pub fn len_bytes(&self) -> usize {
        match self {
            Out::Batches(parsed) => parsed.round().iter().map(|(_, b)| b.bytes.len()).sum(),
            Out::Encoded { bytes, .. } => bytes.len(),
        }
    }

    pub fn messages(&self) -> u64 {
        self.messages_from(0)
    }

    /// Messages not wholly within the first `done` bytes: not written, or
    /// cut by a failure.
    pub fn messages_from(&self, done: usize) -> u64 {
        match self {
            Out::Batches(parsed) => {
                let mut base = 0usize;
                let mut n = 0usize;
                for (_, b) in parsed.round() {
                    let whole = b.ends.partition_point(|&e| base + e as usize <= done);
                    n += b.len() - whole;
                    base += b.bytes.len();
                }
                n as u64
            }
            Out::Encoded { ends, .. } => (ends.len() - ends.partition_point(|&e| e <= done)) as u64,
        }
    }
}

/// Which messages of a batch a destination takes when the config routes:
/// `masks[m]` has bit `dest` set for message `m` of the batch.
#[derive(Clone, Copy)]
pub struct Taken<'a> {
    pub masks: &'a [u64],
    pub dest: usize,
}

impl Taken<'_> {
    fn takes(&self, m: usize) -> bool {
        self.masks
            .get(m)
            .is_some_and(|mask| mask & (1 << self.dest) != 0)
    }
}

/// Encodes the messages of `parsed`'s batch whose source feeds this
/// destination (and, when routed, that it takes) into `out`, and records
/// each message's end in `ends` and, when asked, its origin in `origins`.
/// `json` takes each message from `parsed`: parsed once per round, however
/// many destinations and steps read it.
#[allow(clippy::too_many_arguments)]
pub fn encode_fed(
    out: &mut Vec<u8>,
    ends: &mut Vec<usize>,
    prefix: &mut Vec<u8>,
    parsed: ParsedBatch<'_, '_>,
    feeds: &[bool],
    taken: Option<Taken<'_>>,
    enc: Encoding<'_>,
    stats: &Stats,
    mut origins: Option<&mut Vec<Origin>>,
) {
    let (batch, bi) = (parsed.batch(), parsed.index() as u32);
    for (i, run) in batch.runs.iter().enumerate() {
        let source = run.conn.source as usize;
        if !feeds.get(source).copied().unwrap_or(false) {
            continue;
        }
        let end = batch
            .runs
            .get(i + 1)
            .map_or(batch.len(), |r| r.first as usize);
        match enc.format {
            OutputFormat::Raw if taken.is_some() || origins.is_some() => {
                let takes = |m: &usize| taken.is_none_or(|t| t.takes(*m));
                for m in (run.first as usize..end).filter(takes) {
                    out.extend_from_slice(batch.message(m));
                    out.push(b'\n');
                    ends.push(out.len());
                    if let Some(o) = origins.as_mut() {
                        o.push((bi, m as u32));
                    }
                }
            }
            OutputFormat::Raw => {
                let start = if run.first == 0 {
                    0
                } else {
                    batch.ends[run.first as usize - 1] as usize
                };
                let stop = if end == 0 {
                    0
                } else {
                    batch.ends[end - 1] as usize
                };
                let base = out.len();
                out.extend_from_slice(&batch.bytes[start..stop]);
                ends.extend(
                    batch.ends[run.first as usize..end]
                        .iter()
                        .map(|&e| base + e as usize - start),
                );
            }
            OutputFormat::Json => {
                let name = stats.source_names.get(source).map_or("", String::as_str);
                json::run_prefix(prefix, run, name);
                let mode = enc.parse.get(source).copied().unwrap_or(ParseMode::None);
                let takes = |m: &usize| taken.is_none_or(|t| t.takes(*m));
                if mode == ParseMode::None {
                    for m in (run.first as usize..end).filter(takes) {
                        out.extend_from_slice(prefix);
                        json::escape_bytes(out, batch.message(m));
                        out.extend_from_slice(b"\"}\n");
                        ends.push(out.len());
                        if let Some(o) = origins.as_mut() {
                            o.push((bi, m as u32));
                        }
                    }
                    continue;
                }
                let meta = parse::json::meta_from_run_prefix(prefix);
                let opts = JsonOptions {
                    include_raw: enc.include_raw,
                };
                for m in (run.first as usize..end).filter(takes) {
                    // Parsed (and a failure counted) at the round's first ask.
                    let msg = parsed.message(source, m);
                    parse::json::render_json(out, meta, &msg, opts);
                    ends.push(out.len());
                    if let Some(o) = origins.as_mut() {
                        o.push((bi, m as u32));
                    }
                }
            }
        }
    }
}

/// Messages of the round per source index (sources past `sources` are ignored).
pub fn messages_per_source(round: &[(usize, Batch)], sources: usize) -> Vec<u64> {
    let mut n = vec![0u64; sources];
    for (_, batch) in round {
        for (i, run) in batch.runs.iter().enumerate() {
            let end = batch
                .runs
                .get(i + 1)
                .map_or(batch.len(), |r| r.first as usize);
            if let Some(c) = n.get_mut(run.conn.source as usize) {
                *c += (end - run.first as usize) as u64;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::parsed::ParseScratch;
    use std::sync::Arc;

    fn batch(runs: &[(u16, &[&str])]) -> Batch {
        let mut b = Batch::with_capacity(1024);
        for (i, (source, msgs)) in runs.iter().enumerate() {
            let meta = Arc::new(ConnMeta {
                source: *source,
                peer: "127.0.0.1:1".parse().expect("addr"),
                identity: None,
            });
            b.begin_run(&meta, i as u64);
            for m in *msgs {
                b.push(m.as_bytes());
            }
        }
        b
    }

    #[test]
    fn a_message_cut_by_the_failure_counts_as_not_written() {
        let round = vec![
            (0, batch(&[(0, &["aa", "bbb"])])),
            (0, batch(&[(0, &["c"])])),
        ];
        let parsed = ParseScratch::default().round(&round, &[], &[]);
        let out = Out::Batches(&parsed);
        // Bytes: "aa\n" (0..3) "bbb\n" (3..7) "c\n" (7..9).
        let counts: Vec<u64> = [0, 2, 3, 4, 7, 8, 9]
            .iter()
            .map(|&d| out.messages_from(d))
            .collect();
        assert_eq!(counts, [3, 3, 2, 2, 1, 1, 0]);
        assert_eq!(out.len_bytes(), 9);
    }

    #[test]
    fn raw_filtered_by_source_records_the_ends_of_the_messages_it_keeps() {
        let stats = Stats::new(vec!["a".into(), "b".into()]);
        let round = vec![(
            0,
            batch(&[(0, &["keep1"]), (1, &["drop"]), (0, &["keep2", "k3"])]),
        )];
        let parsed = ParseScratch::default().round(&round, &[], &[]);
        let (mut out, mut ends, mut prefix) = (Vec::new(), Vec::new(), Vec::new());
        let feeds = [true, false];
        encode_fed(
            &mut out,
            &mut ends,
            &mut prefix,
            parsed.batch(0),
            &feeds,
            None,
            Encoding::RAW,
            &stats,
            None,
        );
        assert_eq!(out, b"keep1\nkeep2\nk3\n");
        assert_eq!(ends, [6, 12, 15]);
        let enc = Out::Encoded {
            bytes: &out,
            ends: &ends,
            round: None,
            origins: &[],
        };
        assert_eq!(enc.messages_from(7), 2);
        assert_eq!(messages_per_source(&round, 2), [3, 1]);
    }

    /// What a destination that sends messages one by one (kafka) sees: each
    /// value without its newline, and where it came from, whether the round
    /// went out as it is or encoded (filtered by source, with origins).
    #[test]
    fn each_message_comes_without_its_newline_and_with_its_connection() {
        let stats = Stats::new(vec!["a".into(), "b".into()]);
        let round = vec![
            (0, batch(&[(0, &["m1", "m2"]), (1, &["other"])])),
            (1, batch(&[(0, &["m3"])])),
        ];
        let collect = |out: &Out<'_, '_>, stop_after: usize| {
            let mut seen = Vec::new();
            let n = out.for_each_message(|m| {
                if seen.len() == stop_after {
                    return ControlFlow::Break(());
                }
                // The frame, as the round's parsed view holds it.
                let from = m.from.map(|s| (s.conn.source, s.fields().raw.to_vec()));
                seen.push((m.value.to_vec(), from));
                ControlFlow::Continue(())
            });
            (n, seen)
        };
        let parsed = ParseScratch::default().round(&round, &[], &[]);
        let whole = Out::Batches(&parsed);
        let (n, seen) = collect(&whole, usize::MAX);
        assert_eq!(n, 4);
        assert_eq!(seen[2], (b"other".to_vec(), Some((1, b"other".to_vec()))));
        assert_eq!(collect(&whole, 1).0, 1, "stops where the destination stops");

        let (mut bytes, mut ends, mut prefix, mut origins) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for b in parsed.batches() {
            encode_fed(
                &mut bytes,
                &mut ends,
                &mut prefix,
                b,
                &[true, false],
                None,
                Encoding::RAW,
                &stats,
                Some(&mut origins),
            );
        }
        assert_eq!(origins, [(0, 0), (0, 1), (1, 0)]);
        let enc = Out::Encoded {
            bytes: &bytes,
            ends: &ends,
            round: Some(&parsed),
            origins: &origins,
        };
        let (n, seen) = collect(&enc, usize::MAX);
        assert_eq!(n, 3);
        let values: Vec<&[u8]> = seen.iter().map(|(v, _)| v.as_slice()).collect();
        assert_eq!(values, [&b"m1"[..], b"m2", b"m3"]);
        assert_eq!(seen[2].1, Some((0, b"m3".to_vec())));
        // Without origins the values are the same, with nothing to key by.
        let bare = Out::Encoded {
            bytes: &bytes,
            ends: &ends,
            round: Some(&parsed),
            origins: &[],
        };
        assert!(collect(&bare, usize::MAX)
            .1
            .iter()
            .all(|(_, from)| from.is_none()));
    }
}

#[cfg(test)]
mod fed_conns_tests {
    use std::sync::Arc;

    use super::*;
    use crate::writer::parsed::ParseScratch;

    /// `fed_conns` names each message's connection in the order `encode_fed`
    /// writes the messages, filtered by source and by routing masks alike.
    #[test]
    fn connections_line_up_with_the_encoded_messages() {
        let stats = Stats::new(vec!["a".into(), "b".into()]);
        let mut b = Batch::with_capacity(1024);
        let metas: Vec<Arc<ConnMeta>> = (0..3u16)
            .map(|i| {
                Arc::new(ConnMeta {
                    source: i % 2,
                    peer: format!("127.0.0.1:{}", 1000 + i).parse().expect("addr"),
                    identity: None,
                })
            })
            .collect();
        for (i, (meta, msgs)) in metas
            .iter()
            .zip([&["a1", "a2"][..], &["b1"], &["c1", "c2"]])
            .enumerate()
        {
            b.begin_run(meta, i as u64);
            for m in msgs {
                b.push(m.as_bytes());
            }
        }
        let round = vec![(0, b)];
        // Source 1 (conn 1) not fed; routing drops message 4 ("c2").
        let feeds = [true, false];
        let masks = [vec![1u64, 1, 1, 1, 0]];
        let (mut out, mut ends, mut prefix) = (Vec::new(), Vec::new(), Vec::new());
        let taken = Some(Taken {
            masks: &masks[0],
            dest: 0,
        });
        let mut origins = Vec::new();
        let parsed = ParseScratch::default().round(&round, &[], &[]);
        encode_fed(
            &mut out,
            &mut ends,
            &mut prefix,
            parsed.batch(0),
            &feeds,
            taken,
            Encoding::RAW,
            &stats,
            Some(&mut origins),
        );
        assert_eq!(out, b"a1\na2\nc1\n");
        let (mut msgs, mut ports) = (Vec::new(), Vec::new());
        Out::Encoded {
            bytes: &out,
            ends: &ends,
            round: Some(&parsed),
            origins: &origins,
        }
        .for_each_message(|m| {
            msgs.push(m.value.to_vec());
            ports.extend(m.from.map(|s| s.conn.peer.port()));
            std::ops::ControlFlow::Continue(())
        });
        assert_eq!(ports, [1000, 1000, 1002]);
        assert_eq!(msgs, [b"a1".to_vec(), b"a2".to_vec(), b"c1".to_vec()]);
    }
}
