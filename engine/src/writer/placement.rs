//! Which file of a templated destination each message of a round goes to.
//!
//! The writer encodes a destination's messages of a round into one buffer,
//! in round order ([`encode_fed`](super::encode::encode_fed)); [`Placement::place`]
//! walks the round in the same order, with the same feeds and routing masks,
//! and gives each of those messages the index of its rendered path. Paths
//! are numbered in order of first appearance, so a destination writes its
//! files in that order, each file's messages in round order (per
//! connection order is kept).

use std::collections::HashMap;
use std::net::IpAddr;

use super::parsed::Parsed;
use super::template::{DateFrom, PathTemplate, Values};
use crate::parse::Message;

pub struct Placement {
    template: PathTemplate,
    date_from: DateFrom,
    reads_message: bool,
    /// The paths of this round, in order of first appearance.
    paths: Vec<Vec<u8>>,
    index: HashMap<Vec<u8>, u32>,
    /// For each message of this round's output, its path's index.
    targets: Vec<u32>,
    buf: Vec<u8>,
    /// This round: values made safe, fields missing, and one peer that sent a
    /// value that had to be made safe (for the log line).
    pub sanitized: u64,
    pub missing: u64,
    pub sanitized_peer: Option<IpAddr>,
}

impl Placement {
    pub fn new(template: PathTemplate, date_from: DateFrom) -> Placement {
        Placement {
            reads_message: template.reads_message(date_from),
            template,
            date_from,
            paths: Vec::new(),
            index: HashMap::new(),
            targets: Vec::new(),
            buf: Vec::new(),
            sanitized: 0,
            missing: 0,
            sanitized_peer: None,
        }
    }

    /// Places the messages of the round that this destination takes: those
    /// of the sources it is fed by (`feeds`) and, when the config routes,
    /// whose mask has bit `dest` (`masks[batch][message]`). A template that
    /// reads message fields gets each message from `parsed` (parsed once
    /// per round, a source without parsing read as `auto`, as the router
    /// reads it); `names` are the sources' names.
    pub fn place(
        &mut self,
        parsed: &Parsed<'_>,
        feeds: &[bool],
        routed: Option<(&[Vec<u64>], usize)>,
        names: &[String],
    ) {
        self.paths.clear();
        self.index.clear();
        self.targets.clear();
        self.sanitized = 0;
        self.missing = 0;
        self.sanitized_peer = None;
        for pb in parsed.batches() {
            let (bi, b) = (pb.index(), pb.batch());
            for (i, run) in b.runs.iter().enumerate() {
                let source = run.conn.source as usize;
                if !feeds.get(source).copied().unwrap_or(false) {
                    continue;
                }
                let end = b.runs.get(i + 1).map_or(b.len(), |r| r.first as usize);
                let source_name = names.get(source).map_or("", String::as_str);
                for m in run.first as usize..end {
                    if let Some((masks, d)) = routed {
                        let takes = masks
                            .get(bi)
                            .and_then(|ms| ms.get(m))
                            .is_some_and(|mask| mask & (1 << d) != 0);
                        if !takes {
                            continue;
                        }
                    }
                    let msg = if self.reads_message {
                        pb.message(source, m)
                    } else {
                        Message::unparsed(b.message(m))
                    };
                    let v = Values {
                        msg: &msg,
                        source: source_name,
                        peer: run.conn.peer.ip(),
                        received_unix_ns: run.received_unix_ns,
                        date_from: self.date_from,
                    };
                    let r = self.template.render(&mut self.buf, &v);
                    if r.sanitized > 0 {
                        self.sanitized += u64::from(r.sanitized);
                        self.sanitized_peer.get_or_insert(v.peer);
                    }
                    self.missing += u64::from(r.missing);
                    let t = match self.index.get(self.buf.as_slice()) {
                        Some(&t) => t,
                        None => {
                            let t = self.paths.len() as u32;
                            self.paths.push(self.buf.clone());
                            self.index.insert(self.buf.clone(), t);
                            t
                        }
                    };
                    self.targets.push(t);
                }
            }
        }
    }

    /// This round's paths, in order of first appearance.
    pub fn paths(&self) -> &[Vec<u8>] {
        &self.paths
    }

    /// For each placed message, in output order, its index in [`paths`](Self::paths).
    pub fn targets(&self) -> &[u32] {
        &self.targets
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::batch::{Batch, ConnMeta};
    use crate::parse::ParseMode;
    use crate::writer::parsed::ParseScratch;

    fn batch(runs: &[(u16, &str, &[&str])]) -> Batch {
        let mut b = Batch::with_capacity(4096);
        for (source, peer, msgs) in runs {
            let meta = Arc::new(ConnMeta {
                source: *source,
                peer: peer.parse().expect("addr"),
                identity: None,
            });
            b.begin_run(&meta, 1_795_977_000_000_000_000);
            for m in *msgs {
                b.push(m.as_bytes());
            }
        }
        b
    }

    fn placement(path: &str) -> Placement {
        let t = PathTemplate::parse(Path::new(path))
            .expect("valid")
            .expect("template");
        Placement::new(t, DateFrom::Received)
    }

    fn paths(p: &Placement) -> Vec<String> {
        p.paths()
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn messages_get_their_path_in_output_order() {
        let round = vec![
            (
                0,
                batch(&[
                    (
                        0,
                        "10.0.0.1:5",
                        &["<13>1 - web1 a - - - x", "<13>1 - db1 a - - - y"],
                    ),
                    (1, "10.0.0.2:5", &["<13>1 - web1 a - - - z"]),
                ]),
            ),
            (
                1,
                batch(&[(0, "10.0.0.1:6", &["<13>1 - ../x a - - - w", "nopri"])]),
            ),
        ];
        let mut p = placement("/l/{host}/{source}.log");
        let names = ["in".to_string(), "other".to_string()];
        let parsed = ParseScratch::default().round(&round, &[ParseMode::None; 2], &[]);
        p.place(&parsed, &[true, false], None, &names);
        assert_eq!(
            paths(&p),
            [
                "/l/web1/in.log",
                "/l/db1/in.log",
                "/l/%2E.%2Fx/in.log",
                "/l/@unknown/in.log"
            ]
        );
        assert_eq!(p.targets(), [0, 1, 2, 3], "source 1 does not feed it");
        assert_eq!((p.sanitized, p.missing), (1, 1));
        assert_eq!(p.sanitized_peer, Some("10.0.0.1".parse().expect("ip")));
        // Routed: only the messages whose mask has this destination's bit.
        let masks = vec![vec![0b10, 0b01, 0b10], vec![0b10, 0b10]];
        let parsed = ParseScratch::default().round(&round, &[ParseMode::Auto; 2], &[]);
        p.place(&parsed, &[true, true], Some((&masks, 1)), &names);
        assert_eq!(
            paths(&p),
            [
                "/l/web1/in.log",
                "/l/web1/other.log",
                "/l/%2E.%2Fx/in.log",
                "/l/@unknown/in.log"
            ]
        );
        assert_eq!(p.targets(), [0, 1, 2, 3]);
    }

    #[test]
    fn the_peer_needs_no_parse() {
        let round = vec![(
            0,
            batch(&[(0, "[::1]:5", &["a"]), (0, "10.0.0.9:7", &["b", "c"])]),
        )];
        let mut p = placement("/l/{peer}.log");
        assert!(!p.reads_message);
        let parsed = ParseScratch::default().round(&round, &[ParseMode::None], &[]);
        p.place(&parsed, &[true], None, &["s".into()]);
        assert_eq!(paths(&p), ["/l/%3A%3A1.log", "/l/10.0.0.9.log"]);
        assert_eq!(p.targets(), [0, 1, 1]);
    }
}
