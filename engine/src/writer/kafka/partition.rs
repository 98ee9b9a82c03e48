//! Which partition each message of a produce call goes to, without IO.
//!
//! Given the partition `UA` (unassigned), `rd_kafka_produce_batch` runs the
//! topic's partitioner for every message: the topic's read lock, the
//! partitioner, a partition lookup with its reference count, an
//! availability check (rdkafka_msg.c, `rd_kafka_msg_partitioner`). Given a
//! partition, it looks the partition up once for the whole call. So the
//! destination groups a call's messages by partition ([`Groups`]) and
//! makes one call per partition, each group in the messages' order:
//!
//! - **Keyed messages** get what librdkafka would give them: the topic's
//!   configured [`Partitioner`] applied to the key, with the topic's
//!   partition count. The hash itself is librdkafka's exported function
//!   (`native::hash_partition`), not a copy of it, so a sender's messages
//!   land in the partition they always did, and in order.
//! - **Messages librdkafka spreads** (no key, or an empty key under
//!   `consistent_random`; every message under `random`): librdkafka sends
//!   them to a sticky partition that changes every
//!   `sticky.partitioning.linger.ms` (or to a random one per message).
//!   Here they go to one partition per produce call, the next one each
//!   call ([`Rotation`]): the same spread over the partitions, with no
//!   per-message cost.
//! - **Unknown partition count** (no metadata yet: the brokers were down
//!   at start, the topic is missing): every message goes `UA`, as before,
//!   and librdkafka partitions it.

use std::ops::Range;

use super::native::Record;

/// librdkafka's `RD_KAFKA_PARTITION_UA` (a C macro the bindings lack):
/// the topic's partitioner picks each message's partition.
pub const UNASSIGNED: i32 = -1;

/// The values of librdkafka's `partitioner` topic property
/// (rdkafka_conf.c); [`Partitioner::from_property`] maps them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    Random,
    Consistent,
    ConsistentRandom,
    Murmur2,
    Murmur2Random,
    Fnv1a,
    Fnv1aRandom,
}

impl Partitioner {
    /// librdkafka's default.
    pub const DEFAULT: Partitioner = Partitioner::ConsistentRandom;

    /// The partitioner a `partitioner` property names; `None` for one this
    /// module does not know (a librdkafka newer than 2.12): the destination
    /// then leaves partitioning to librdkafka.
    pub fn from_property(value: &str) -> Option<Partitioner> {
        use Partitioner as P;
        Some(match value {
            "random" => P::Random,
            "consistent" => P::Consistent,
            "consistent_random" => P::ConsistentRandom,
            "murmur2" => P::Murmur2,
            "murmur2_random" => P::Murmur2Random,
            "fnv1a" => P::Fnv1a,
            "fnv1a_random" => P::Fnv1aRandom,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use Partitioner as P;
        match self {
            P::Random => "random",
            P::Consistent => "consistent",
            P::ConsistentRandom => "consistent_random",
            P::Murmur2 => "murmur2",
            P::Murmur2Random => "murmur2_random",
            P::Fnv1a => "fnv1a",
            P::Fnv1aRandom => "fnv1a_random",
        }
    }

    /// Whether librdkafka hashes a message with this key (else it spreads
    /// it: sticky, or random per message). From `rd_kafka_msg_partitioner`
    /// and the partitioner functions (rdkafka_msg.c, 2.12.1): a message
    /// without a key, or with an empty one under `consistent_random`, is
    /// sticky unless `sticky.partitioning.linger.ms` is 0, and then the
    /// partitioner's own random branch takes it; `consistent`, `murmur2`
    /// and `fnv1a` hash every message, a missing key as an empty one (one
    /// partition for all of them); `random` hashes nothing. So the linger
    /// never decides whether a message is hashed, only how it is spread.
    pub fn hashes(self, key: Option<&[u8]>) -> bool {
        use Partitioner as P;
        match self {
            P::Random => false,
            P::Consistent | P::Murmur2 | P::Fnv1a => true,
            P::ConsistentRandom => key.is_some_and(|k| !k.is_empty()),
            P::Murmur2Random | P::Fnv1aRandom => key.is_some(),
        }
    }
}

/// A topic's partitions, as its metadata last said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Partitions 0..count.
    pub count: i32,
    /// Those with a leader, ascending: where spread messages go (all of
    /// them when none has one: the messages wait for a leader there).
    pub led: Vec<i32>,
}

/// The partition spread messages go to, one per produce call, the next
/// one each call.
#[derive(Debug, Clone)]
pub struct Rotation {
    turn: usize,
}

impl Rotation {
    /// Starting at `seed`, so that several nodes do not all start at
    /// partition 0.
    pub fn new(seed: usize) -> Rotation {
        Rotation { turn: seed }
    }

    /// This call's partition, and the next call's after it.
    pub fn next(&mut self, layout: &Layout) -> i32 {
        let turn = self.turn;
        self.turn = self.turn.wrapping_add(1);
        if layout.led.is_empty() {
            // count > 0 for a layout (native::topic_layout).
            let count = usize::try_from(layout.count.max(1)).unwrap_or(1);
            return i32::try_from(turn % count).unwrap_or(0);
        }
        layout.led[turn % layout.led.len()]
    }
}

/// What a produce call's grouping knows of the topic: its layout, the
/// partitioner and the partition for spread messages this call.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'l> {
    pub layout: &'l Layout,
    pub partitioner: Partitioner,
    pub spread: i32,
}

/// A produce call's records grouped by partition: record indices, each
/// group in the records' order. Kept between calls (no allocation once
/// grown).
#[derive(Debug, Default)]
pub struct Groups {
    /// Record indices, group after group.
    order: Vec<u32>,
    /// Each non-empty group: its partition and its range in `order`.
    spans: Vec<(i32, Range<usize>)>,
    /// Scratch: each record's bucket (0 = UA, p + 1 = partition p), and
    /// the records per bucket.
    buckets: Vec<u32>,
    counts: Vec<usize>,
}

impl Groups {
    /// Groups `records`. Without a plan (the partition count is unknown)
    /// all go [`UNASSIGNED`]. `hash(key, count)` is the partitioner's
    /// partition for a key it hashes (`None` if it did not); a partition
    /// out of range leaves that record to librdkafka (`UA`).
    pub fn group(
        &mut self,
        records: &[Record<'_>],
        plan: Option<Plan<'_>>,
        mut hash: impl FnMut(&[u8], i32) -> Option<i32>,
    ) {
        self.order.clear();
        self.spans.clear();
        self.buckets.clear();
        let Some(plan) = plan.filter(|p| p.layout.count > 0) else {
            self.order.extend(0..index(records.len()));
            if !records.is_empty() {
                self.spans.push((UNASSIGNED, 0..records.len()));
            }
            return;
        };
        let count = plan.layout.count;
        let bucket = |p: i32| u32::try_from(p + 1).unwrap_or(0);
        // A run of one sender's messages has one key: hashed once.
        let mut last: Option<(&[u8], u32)> = None;
        for r in records {
            let b = match r.key {
                Some(k) if plan.partitioner.hashes(Some(k)) => match last {
                    Some((lk, lb)) if lk == k => lb,
                    _ => {
                        let b = in_range(hash(k, count), count).map_or(0, bucket);
                        last = Some((k, b));
                        b
                    }
                },
                // `consistent`, `murmur2`, `fnv1a`: one partition for
                // every message without a key (librdkafka hashes none).
                None if plan.partitioner.hashes(None) => {
                    in_range(hash(&[], count), count).map_or(0, bucket)
                }
                _ => in_range(Some(plan.spread), count).map_or(0, bucket),
            };
            self.buckets.push(b);
        }
        // A counting sort by bucket, stable: each group keeps the records'
        // order.
        self.counts.clear();
        self.counts.resize(bucket(count) as usize, 0);
        for &b in &self.buckets {
            self.counts[b as usize] += 1;
        }
        let mut start = 0;
        for (b, n) in self.counts.iter_mut().enumerate() {
            if *n > 0 {
                self.spans
                    .push((i32::try_from(b).unwrap_or(0) - 1, start..start + *n));
            }
            // From here on, counts hold where each bucket's next index goes.
            let at = start;
            start += *n;
            *n = at;
        }
        self.order.resize(records.len(), 0);
        for (i, &b) in self.buckets.iter().enumerate() {
            let at = &mut self.counts[b as usize];
            self.order[*at] = index(i);
            *at += 1;
        }
    }

    /// Each group: its partition and its records' indices, in order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &[u32])> {
        self.spans
            .iter()
            .map(|(p, r)| (*p, self.order.get(r.clone()).unwrap_or(&[])))
    }
}

/// A record index as stored (produce calls are far below u32::MAX).
fn index(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn in_range(p: Option<i32>, count: i32) -> Option<i32> {
    p.filter(|p| (0..count).contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(value: &'a [u8], key: Option<&'a [u8]>) -> Record<'a> {
        Record { value, key }
    }

    fn layout(count: i32) -> Layout {
        Layout {
            count,
            led: (0..count).collect(),
        }
    }

    /// A stand-in hash: the key's first byte, modulo the count.
    fn first_byte(k: &[u8], count: i32) -> Option<i32> {
        Some(i32::from(k.first().copied().unwrap_or(0)) % count)
    }

    /// The groups as (partition, values).
    fn grouped(g: &Groups, records: &[Record<'_>]) -> Vec<(i32, Vec<String>)> {
        g.iter()
            .map(|(p, idx)| {
                let v = idx
                    .iter()
                    .map(|&i| String::from_utf8_lossy(records[i as usize].value).into_owned())
                    .collect();
                (p, v)
            })
            .collect()
    }

    fn plan(layout: &Layout, partitioner: Partitioner, spread: i32) -> Option<Plan<'_>> {
        Some(Plan {
            layout,
            partitioner,
            spread,
        })
    }

    #[test]
    fn keyed_messages_group_by_their_partition_each_group_in_the_original_order() {
        // Keys b"\x00".."\x03" hash to partitions 0..3 with the stand-in.
        let records = [
            rec(b"a1", Some(b"\x01")),
            rec(b"b1", Some(b"\x02")),
            rec(b"a2", Some(b"\x01")),
            rec(b"c1", Some(b"\x05")), // 5 % 4 = 1: a's partition
            rec(b"b2", Some(b"\x02")),
            rec(b"a3", Some(b"\x01")),
        ];
        let l = layout(4);
        let mut g = Groups::default();
        g.group(&records, plan(&l, Partitioner::DEFAULT, 3), first_byte);
        assert_eq!(
            grouped(&g, &records),
            [
                (1, vec!["a1".into(), "a2".into(), "c1".into(), "a3".into()]),
                (2, vec!["b1".into(), "b2".into()]),
            ]
        );
    }

    #[test]
    fn a_key_always_gets_the_same_partition_whatever_else_the_call_holds() {
        let l = layout(8);
        let mut g = Groups::default();
        let part_of = |g: &Groups, records: &[Record<'_>], value: &[u8]| {
            g.iter()
                .find(|(_, idx)| idx.iter().any(|&i| records[i as usize].value == value))
                .map(|(p, _)| p)
        };
        let one = [rec(b"x", Some(b"\x0b"))];
        g.group(&one, plan(&l, Partitioner::DEFAULT, 0), first_byte);
        let alone = part_of(&g, &one, b"x");
        let mixed = [
            rec(b"y", Some(b"\x01")),
            rec(b"x", Some(b"\x0b")),
            rec(b"z", None),
        ];
        g.group(&mixed, plan(&l, Partitioner::DEFAULT, 5), first_byte);
        assert_eq!(part_of(&g, &mixed, b"x"), alone);
        assert_eq!(alone, Some(3), "11 % 8");
    }

    #[test]
    fn a_run_of_one_key_is_hashed_once() {
        let l = layout(4);
        let mut g = Groups::default();
        let records = [
            rec(b"1", Some(b"10.0.0.1")),
            rec(b"2", Some(b"10.0.0.1")),
            rec(b"3", Some(b"10.0.0.2")),
            rec(b"4", Some(b"10.0.0.1")),
        ];
        let mut calls = 0;
        g.group(&records, plan(&l, Partitioner::DEFAULT, 0), |k, c| {
            calls += 1;
            first_byte(&k[k.len() - 1..], c)
        });
        assert_eq!(calls, 3, "one per change of key");
        assert_eq!(
            grouped(&g, &records),
            [
                (1, vec!["1".into(), "2".into(), "4".into()]),
                (2, vec!["3".into()]),
            ]
        );
    }

    #[test]
    fn unkeyed_messages_go_to_the_calls_one_partition_and_the_next_call_to_the_next() {
        let l = Layout {
            count: 4,
            led: vec![0, 1, 3],
        };
        let mut turn = Rotation::new(1);
        let records = [rec(b"a", None), rec(b"b", None), rec(b"c", None)];
        let mut g = Groups::default();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let spread = turn.next(&l);
            g.group(&records, plan(&l, Partitioner::DEFAULT, spread), |_, _| {
                panic!("an unkeyed message is not hashed under consistent_random")
            });
            let groups = grouped(&g, &records);
            assert_eq!(groups.len(), 1, "one partition per call: {groups:?}");
            assert_eq!(groups[0].1, ["a", "b", "c"], "in order");
            seen.push(groups[0].0);
        }
        assert_eq!(seen, [1, 3, 0, 1], "the led partitions in turn");
        // No partition with a leader: all of them in turn.
        let none_led = Layout {
            count: 3,
            led: Vec::new(),
        };
        let mut turn = Rotation::new(0);
        let s: Vec<i32> = (0..4).map(|_| turn.next(&none_led)).collect();
        assert_eq!(s, [0, 1, 2, 0]);
    }

    #[test]
    fn empty_keys_are_spread_under_consistent_random_and_hashed_under_murmur2() {
        let l = layout(4);
        let records = [
            rec(b"e", Some(b"")),
            rec(b"n", None),
            rec(b"k", Some(b"\x01")),
        ];
        let mut g = Groups::default();
        g.group(
            &records,
            plan(&l, Partitioner::ConsistentRandom, 3),
            first_byte,
        );
        assert_eq!(
            grouped(&g, &records),
            [(1, vec!["k".into()]), (3, vec!["e".into(), "n".into()])]
        );
        // murmur2_random: an empty key is hashed (its pointer is not
        // null), a missing one spread.
        g.group(
            &records,
            plan(&l, Partitioner::Murmur2Random, 3),
            first_byte,
        );
        assert_eq!(
            grouped(&g, &records),
            [
                (0, vec!["e".into()]),
                (1, vec!["k".into()]),
                (3, vec!["n".into()])
            ]
        );
        // consistent: a missing key is hashed as an empty one.
        g.group(&records, plan(&l, Partitioner::Consistent, 3), first_byte);
        assert_eq!(
            grouped(&g, &records),
            [(0, vec!["e".into(), "n".into()]), (1, vec!["k".into()])]
        );
        // random: nothing hashed, all spread.
        g.group(&records, plan(&l, Partitioner::Random, 2), |_, _| {
            panic!("random hashes nothing")
        });
        assert_eq!(
            grouped(&g, &records),
            [(2, vec!["e".into(), "n".into(), "k".into()])]
        );
    }

    #[test]
    fn an_unknown_partition_count_leaves_every_message_to_librdkafka_in_order() {
        let records = [rec(b"a", Some(b"\x01")), rec(b"b", None)];
        let mut g = Groups::default();
        g.group(&records, None, |_, _| panic!("nothing to hash with"));
        assert_eq!(
            grouped(&g, &records),
            [(UNASSIGNED, vec!["a".into(), "b".into()])]
        );
        g.group(&[], None, first_byte);
        assert_eq!(g.iter().count(), 0, "no empty group");
        // A hash out of range (never from librdkafka's): that record UA.
        let l = layout(2);
        g.group(&records, plan(&l, Partitioner::DEFAULT, 1), |_, _| Some(7));
        assert_eq!(
            grouped(&g, &records),
            [(UNASSIGNED, vec!["a".into()]), (1, vec!["b".into()])]
        );
    }

    #[test]
    fn partitioner_names_round_trip_and_unknown_ones_are_not_mapped() {
        use Partitioner as P;
        for p in [
            P::Random,
            P::Consistent,
            P::ConsistentRandom,
            P::Murmur2,
            P::Murmur2Random,
            P::Fnv1a,
            P::Fnv1aRandom,
        ] {
            assert_eq!(Partitioner::from_property(p.name()), Some(p));
        }
        assert_eq!(Partitioner::from_property("sticky"), None);
        assert_eq!(Partitioner::DEFAULT.name(), "consistent_random");
    }
}
