//! A writer round as Kafka records, without IO: the round's messages are
//! staged a [`Chunk`] at a time (each value borrowed, the keys written
//! into one buffer), and each chunk is cut into the batches handed to
//! librdkafka.
//!
//! A `key = "host"` is the HOSTNAME from the round's parsed view
//! ([`crate::writer::parsed`]), not a parse of its own: a message is parsed
//! once per round whether routing, json, a path template or the key reads
//! it, and a failure is counted once.
//!
//! A chunk, not the whole round: a round may hold hundreds of thousands
//! of messages, and staging them all at once allocated megabytes of fresh
//! pages per round (3.5% of ringest's samples on the bench's kafka load,
//! all page faults); a chunk's few tens of KiB are reused by the allocator.

use std::io::Write;
use std::ops::Range;

use super::native::{Record, PRODUCE_BATCH_MAX};
use crate::config::kafka::KafkaKey;
use crate::writer::encode::Message;

/// Messages staged at most before they are produced: a few
/// `rd_kafka_produce_batch` calls' worth of amortised overhead, small
/// enough that the chunk's vectors stay in the allocator's reused pages.
pub const CHUNK_MESSAGES: usize = 1_024;

/// Bytes a record takes on the wire besides its value and key, at most:
/// at least librdkafka's `RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD` (36 in 2.12),
/// which it adds before comparing with `message.max.bytes`.
pub const RECORD_OVERHEAD_BYTES: usize = 64;

/// A message of the round: its value, and its key's bytes in the keys
/// buffer when it has one.
pub type Staged<'a> = (&'a [u8], Option<Range<usize>>);

/// Up to [`CHUNK_MESSAGES`] messages of a round, in order, each with its
/// key (by the destination's `key` setting) written into one buffer.
pub struct Chunk<'a> {
    key: KafkaKey,
    staged: Vec<Staged<'a>>,
    keys: Vec<u8>,
}

impl<'a> Chunk<'a> {
    /// An empty chunk; `keys` is a buffer kept from an earlier round.
    pub fn new(key: KafkaKey, mut keys: Vec<u8>) -> Chunk<'a> {
        keys.clear();
        Chunk {
            key,
            staged: Vec::with_capacity(CHUNK_MESSAGES),
            keys,
        }
    }

    /// Stages `m`: its value borrowed, its key written into the buffer.
    pub fn push(&mut self, m: &Message<'a, '_>) {
        debug_assert!(!self.is_full());
        let start = self.keys.len();
        let keyed = key_into(self.key, m, &mut self.keys);
        self.staged
            .push((m.value, keyed.then_some(start..self.keys.len())));
    }

    pub fn is_full(&self) -> bool {
        self.staged.len() >= CHUNK_MESSAGES
    }

    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// The staged messages as records.
    pub fn records(&self) -> Vec<Record<'_>> {
        self.staged
            .iter()
            .map(|&(value, ref key)| Record {
                value,
                key: key.clone().and_then(|k| self.keys.get(k)),
            })
            .collect()
    }

    /// Empties the chunk for the next messages (capacity kept).
    pub fn clear(&mut self) {
        self.staged.clear();
        self.keys.clear();
    }

    /// The keys buffer, to keep for the next round.
    pub fn into_keys(self) -> Vec<u8> {
        self.keys
    }
}

/// Appends the message's key to `keys`; false when it has none. The host
/// comes from the round's parsed view: the message is parsed once per
/// round, whether routing, json, a path template or this key reads it.
fn key_into(key: KafkaKey, m: &Message<'_, '_>, keys: &mut Vec<u8>) -> bool {
    let Some(from) = m.from else {
        return false;
    };
    if key == KafkaKey::Host {
        if let Some(host) = from.fields().host {
            keys.extend_from_slice(host);
            return true;
        }
    }
    match key {
        KafkaKey::None => false,
        KafkaKey::Peer | KafkaKey::Host => write!(keys, "{}", from.conn.peer.ip()).is_ok(),
    }
}

/// How many of `records`, from the first, go to librdkafka in one call:
/// at most [`PRODUCE_BATCH_MAX`], and never a record that may be over
/// `message_max_bytes` behind others. librdkafka refuses such a record and
/// takes the ones after it (see native.rs's test), so it goes alone, and
/// its refusal holds back everything newer, as any refusal does.
pub fn batch_len(records: &[Record<'_>], message_max_bytes: usize) -> usize {
    let fits = |r: &Record<'_>| {
        r.value.len() + r.key.map_or(0, <[u8]>::len) + RECORD_OVERHEAD_BYTES <= message_max_bytes
    };
    match records
        .iter()
        .take(PRODUCE_BATCH_MAX)
        .position(|r| !fits(r))
    {
        Some(0) => 1,
        Some(i) => i,
        None => records.len().min(PRODUCE_BATCH_MAX),
    }
}

#[cfg(test)]
mod tests {
    use std::ops::ControlFlow;
    use std::sync::Arc;

    use super::*;
    use crate::batch::{Batch, ConnMeta};
    use crate::parse::{self, ParseMode, PARSE_CALLS};
    use crate::writer::encode::Out;
    use crate::writer::parsed::{ParseScratch, Parsed};

    fn round(msgs: &[(&str, &[&str])]) -> Vec<(usize, Batch)> {
        let mut b = Batch::with_capacity(1024);
        for (i, (peer, msgs)) in msgs.iter().enumerate() {
            let meta = Arc::new(ConnMeta {
                source: 0,
                peer: peer.parse().expect("addr"),
                identity: None,
            });
            b.begin_run(&meta, i as u64);
            for m in *msgs {
                b.push(m.as_bytes());
            }
        }
        vec![(0, b)]
    }

    /// Each message's value and staged key, from `parsed`'s round.
    fn staged_keys_in(key: KafkaKey, parsed: &Parsed<'_>) -> Vec<(String, Option<String>)> {
        let out = Out::Batches(parsed);
        let mut chunk = Chunk::new(key, vec![b'?'; 3]);
        out.for_each_message(|m| {
            chunk.push(&m);
            ControlFlow::Continue(())
        });
        chunk
            .records()
            .iter()
            .map(|r| {
                let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                (s(r.value), r.key.map(s))
            })
            .collect()
    }

    fn staged_keys(key: KafkaKey, r: &[(usize, Batch)]) -> Vec<(String, Option<String>)> {
        staged_keys_in(key, &ParseScratch::default().round(r, &[], &[]))
    }

    fn calls() -> u64 {
        PARSE_CALLS.with(std::cell::Cell::get)
    }

    #[test]
    fn a_chunk_fills_at_its_limit_and_clears_for_the_next_messages() {
        let msgs: Vec<String> = (0..CHUNK_MESSAGES + 1).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
        let r = round(&[("10.0.0.1:5000", &refs)]);
        let parsed = ParseScratch::default().round(&r, &[], &[]);
        let out = Out::Batches(&parsed);
        let mut chunk = Chunk::new(KafkaKey::Peer, Vec::new());
        assert!(chunk.is_empty());
        let mut chunks: Vec<Vec<String>> = Vec::new();
        out.for_each_message(|m| {
            chunk.push(&m);
            if chunk.is_full() {
                chunks.push(
                    chunk
                        .records()
                        .iter()
                        .map(|r| String::from_utf8_lossy(r.value).into_owned())
                        .collect(),
                );
                chunk.clear();
            }
            ControlFlow::Continue(())
        });
        assert_eq!(chunks.len(), 1, "one full chunk");
        assert_eq!(chunks[0].len(), CHUNK_MESSAGES);
        assert_eq!(chunks[0][0], "0");
        let rest = chunk.records();
        assert_eq!(rest.len(), 1, "the last message starts the next chunk");
        assert_eq!(rest[0].value, CHUNK_MESSAGES.to_string().as_bytes());
        assert_eq!(
            rest[0].key,
            Some(&b"10.0.0.1"[..]),
            "its key from a cleared buffer"
        );
        drop(rest);
        assert_eq!(
            chunk.into_keys(),
            b"10.0.0.1",
            "only the current chunk's keys"
        );
    }

    #[test]
    fn peer_keys_are_each_senders_address_without_the_port() {
        let r = round(&[
            ("10.0.0.1:5000", &["a", "b"]),
            ("[2001:db8::1]:6000", &["c"]),
        ]);
        let k = |s: &str| Some(s.to_string());
        assert_eq!(
            staged_keys(KafkaKey::Peer, &r),
            [
                ("a".into(), k("10.0.0.1")),
                ("b".into(), k("10.0.0.1")),
                ("c".into(), k("2001:db8::1")),
            ],
            "keys buffer cleared first, each key its own range"
        );
        assert!(staged_keys(KafkaKey::None, &r)
            .iter()
            .all(|(_, key)| key.is_none()));
    }

    #[test]
    fn host_keys_fall_back_to_the_peer_when_the_message_names_no_host() {
        let r = round(&[(
            "10.0.0.9:1",
            &["<13>1 2026-11-30T00:00:00Z web7 app - - - hi", "no header"],
        )]);
        let keys: Vec<Option<String>> = staged_keys(KafkaKey::Host, &r)
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        assert_eq!(keys, [Some("web7".into()), Some("10.0.0.9".into())]);
    }

    /// Frames of every kind, and the key each got when the key parsed the
    /// frame itself (`auto`, before session 8); the keys now come from the
    /// round's parsed view and must not change.
    const KINDS: [(&str, &str); 7] = [
        ("<38>1 2026-11-30T00:00:00Z web1 sshd 1 - - rfc5424", "web1"),
        (
            "<38>1 2026-11-30T00:00:00Z - sshd 1 - - nil host",
            "10.0.0.9",
        ),
        ("<13>Nov 30 00:00:00 db2 cron[7]: rfc3164", "db2"),
        ("<13>2026-11-30T00:00:00Z db3 app: iso stamp", "db3"),
        ("no header at all", "10.0.0.9"),
        ("<999>1 - - - - - bad pri", "10.0.0.9"),
        ("<13>1 2026-11-30T00:00:00Z web4", "10.0.0.9"),
    ];

    #[test]
    fn host_keys_are_the_same_as_before_for_rfc5424_rfc3164_and_unparsable_frames() {
        let frames: Vec<&str> = KINDS.iter().map(|(f, _)| *f).collect();
        let r = round(&[("10.0.0.9:1", &frames)]);
        let keys: Vec<String> = staged_keys(KafkaKey::Host, &r)
            .into_iter()
            .map(|(_, k)| k.expect("host keys always have a key"))
            .collect();
        let want: Vec<&str> = KINDS.iter().map(|(_, k)| *k).collect();
        assert_eq!(keys, want);
        // What the old code computed, frame by frame.
        let before: Vec<String> = frames
            .iter()
            .map(|f| match parse::parse(f.as_bytes(), ParseMode::Auto).host {
                Some(h) => String::from_utf8_lossy(h).into_owned(),
                None => "10.0.0.9".into(),
            })
            .collect();
        assert_eq!(keys, before);
    }

    #[test]
    fn host_keys_take_the_parse_other_steps_made_and_parse_nothing_more() {
        let frames: Vec<&str> = KINDS.iter().map(|(f, _)| *f).collect();
        let r = round(&[("10.0.0.9:1", &frames)]);
        let parsed = ParseScratch::default().round(&r, &[], &[]);
        let start = calls();
        // Routing or a json destination read every message first.
        for m in 0..frames.len() {
            let _ = parsed.batch(0).message(0, m);
        }
        assert_eq!(calls() - start, frames.len() as u64);
        let keys = staged_keys_in(KafkaKey::Host, &parsed);
        assert_eq!(keys.len(), frames.len());
        assert_eq!(
            calls() - start,
            frames.len() as u64,
            "the keys parsed nothing of their own"
        );
        // A key read first parses the message for the steps after it.
        let fresh = ParseScratch::default().round(&r, &[], &[]);
        let start = calls();
        let _ = staged_keys_in(KafkaKey::Host, &fresh);
        let _ = staged_keys_in(KafkaKey::Host, &fresh);
        let _ = fresh.batch(0).message(0, 0);
        assert_eq!(calls() - start, frames.len() as u64);
        // Peer keys need no field: nothing parsed.
        let other = ParseScratch::default().round(&r, &[], &[]);
        let start = calls();
        let _ = staged_keys_in(KafkaKey::Peer, &other);
        assert_eq!(calls(), start);
    }

    /// The host is the one json's `host` and `{host}` show: read with the
    /// source's `parse` mode (`auto` for `none`, the default, so the keys
    /// above are unchanged). A source forced to `rfc5424` does not read a
    /// BSD frame's host, so that message is keyed by its sender.
    #[test]
    fn host_keys_follow_the_sources_parse_mode() {
        let r = round(&[("10.0.0.9:1", &[KINDS[0].0, KINDS[2].0])]);
        let keys = |mode: ParseMode| -> Vec<Option<String>> {
            let modes = [mode];
            let parsed = ParseScratch::default().round(&r, &modes, &[]);
            staged_keys_in(KafkaKey::Host, &parsed)
                .into_iter()
                .map(|(_, k)| k)
                .collect()
        };
        let k = |s: &str| Some(s.to_string());
        assert_eq!(keys(ParseMode::None), [k("web1"), k("db2")]);
        assert_eq!(keys(ParseMode::Auto), [k("web1"), k("db2")]);
        assert_eq!(keys(ParseMode::Rfc5424), [k("web1"), k("10.0.0.9")]);
    }

    #[test]
    fn a_batch_stops_before_a_record_that_may_be_too_large_which_goes_alone() {
        let small = Record {
            value: &[b'x'; 100],
            key: None,
        };
        let big = Record {
            value: &[b'x'; 1_000],
            key: None,
        };
        let max = 1_000;
        assert_eq!(batch_len(&[small, small, big, small], max), 2);
        assert_eq!(batch_len(&[big, small], max), 1, "alone");
        assert_eq!(batch_len(&[small; 3], max), 3);
        let keyed = Record {
            value: &[b'x'; 900],
            key: Some(&[b'k'; 37]),
        };
        assert_eq!(batch_len(&[keyed, small], max), 1, "the key counts");
        assert_eq!(batch_len(&[], max), 0);
        let many = vec![small; PRODUCE_BATCH_MAX + 5];
        assert_eq!(batch_len(&many, max), PRODUCE_BATCH_MAX);
    }
}
