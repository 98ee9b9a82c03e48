//! A writer round as Kafka records, without IO: the round's messages are
//! staged a [`Chunk`] at a time (each value borrowed, the keys written
//! into one buffer), and each chunk is cut into the batches handed to
//! librdkafka.
//!
//! A chunk, not the whole round: a round may hold hundreds of thousands
//! of messages, and staging them all at once allocated megabytes of fresh
//! pages per round (3.5% of ringest's samples on the bench's kafka load,
//! all page faults); a chunk's few tens of KiB are reused by the allocator.

use std::io::Write;
use std::ops::Range;

use super::native::{Record, PRODUCE_BATCH_MAX};
use crate::config::kafka::KafkaKey;
use crate::parse::{self, ParseMode};
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
    pub fn push(&mut self, m: &Message<'a>) {
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

/// Appends the message's key to `keys`; false when it has none.
fn key_into(key: KafkaKey, m: &Message<'_>, keys: &mut Vec<u8>) -> bool {
    let Some((conn, frame)) = m.from else {
        return false;
    };
    if key == KafkaKey::Host {
        if let Some(host) = parse::parse(frame, ParseMode::Auto).host {
            keys.extend_from_slice(host);
            return true;
        }
    }
    match key {
        KafkaKey::None => false,
        KafkaKey::Peer | KafkaKey::Host => write!(keys, "{}", conn.peer.ip()).is_ok(),
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
    use crate::writer::encode::Out;

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

    fn staged_keys(key: KafkaKey, r: &[(usize, Batch)]) -> Vec<(String, Option<String>)> {
        let out = Out::Batches(r);
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

    #[test]
    fn a_chunk_fills_at_its_limit_and_clears_for_the_next_messages() {
        let msgs: Vec<String> = (0..CHUNK_MESSAGES + 1).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
        let r = round(&[("10.0.0.1:5000", &refs)]);
        let out = Out::Batches(&r);
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
