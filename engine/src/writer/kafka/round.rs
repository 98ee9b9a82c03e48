//! A writer round as Kafka records, without IO: each message's value and
//! key (the keys written into one buffer), and where the round is cut
//! into the batches handed to librdkafka.

use std::io::Write;
use std::ops::{ControlFlow, Range};

use super::native::{Record, PRODUCE_BATCH_MAX};
use crate::config::kafka::KafkaKey;
use crate::parse::{self, ParseMode};
use crate::writer::encode::{Message, Out};

/// Bytes a record takes on the wire besides its value and key, at most:
/// at least librdkafka's `RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD` (36 in 2.12),
/// which it adds before comparing with `message.max.bytes`.
pub const RECORD_OVERHEAD_BYTES: usize = 64;

/// A message of the round: its value, and its key's bytes in the keys
/// buffer when it has one.
pub type Staged<'a> = (&'a [u8], Option<Range<usize>>);

/// The round's messages in order, their keys written into `keys`.
pub fn stage<'a>(out: &Out<'a>, key: KafkaKey, keys: &mut Vec<u8>) -> Vec<Staged<'a>> {
    keys.clear();
    let mut staged = Vec::with_capacity(usize::try_from(out.messages()).unwrap_or(0));
    out.for_each_message(|m| {
        let start = keys.len();
        let keyed = key_into(key, &m, keys);
        staged.push((m.value, keyed.then_some(start..keys.len())));
        ControlFlow::Continue(())
    });
    staged
}

/// The records of `staged`, whose keys are in `keys`.
pub fn records<'r>(staged: &[Staged<'r>], keys: &'r [u8]) -> Vec<Record<'r>> {
    staged
        .iter()
        .map(|&(value, ref key)| Record {
            value,
            key: key.clone().and_then(|k| keys.get(k)),
        })
        .collect()
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
    use std::sync::Arc;

    use super::*;
    use crate::batch::{Batch, ConnMeta};

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
        let mut keys = vec![b'?'; 3];
        let out = Out::Batches(r);
        let staged = stage(&out, key, &mut keys);
        records(&staged, &keys)
            .iter()
            .map(|r| {
                let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                (s(r.value), r.key.map(s))
            })
            .collect()
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
