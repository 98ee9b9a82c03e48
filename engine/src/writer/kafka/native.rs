//! The librdkafka calls the kafka destination makes itself, through the
//! `rdkafka` crate's raw bindings (`rdkafka::bindings`, i.e. rdkafka-sys):
//! on the data path, the crate's safe API costs per message what
//! librdkafka itself does not.
//!
//! - **Producing.** `BaseProducer::send` is one `rd_kafka_producev` per
//!   message, naming the topic by a `CString` allocated for that message;
//!   librdkafka then finds the topic by name under the client's write lock
//!   and reads both clocks, per message. [`Producer::produce`] hands a
//!   round's messages to `rd_kafka_produce_batch` on a topic handle made
//!   once: one lookup, one pair of clock reads and one topic lock per
//!   batch. The crate has no batch call.
//! - **Partitions.** Given partition UA, `rd_kafka_produce_batch` runs the
//!   partitioner and looks the partition up for every message. Once the
//!   topic's partition count is known ([`layout`](super::layout), read by
//!   [`Handles::layout`]), [`Producer::produce`] groups a batch by
//!   partition ([`partition`](super::partition)) with librdkafka's own
//!   partitioner function ([`hash_partition`]) and makes one call per
//!   partition, which looks its partition up once.
//! - **Delivery reports.** The crate's `poll` turns each report into a
//!   callback, building a reference-counted event handle and a borrowed
//!   message per message. [`Producer::serve`] reads a report event's
//!   messages in one pass (`rd_kafka_event_message_array`), sums the
//!   delivered ones and copies only the failed ones, which are kept for a
//!   retry. Every message still gets its report: the delivered count and
//!   in-flight bytes stay exact (`delivery.report.only.error` would lose
//!   the bytes of each delivered message, which nothing else exposes).
//!
//! Every `unsafe` block of the kafka destination is in this file. What
//! makes them sound:
//!
//! 1. **Handles die before the client.** The topic and queue handles are
//!    fields of [`Producer`] declared before the `BaseProducer` that owns
//!    the client, so they are destroyed first (fields drop in order), and
//!    the client is alive for every call made through them. The layout
//!    thread, which makes metadata requests with the client and topic
//!    handles ([`Handles`]), is declared before both: its watch's drop
//!    stops and joins it before either is destroyed.
//! 2. **Borrowed bytes live through the call, and only through it.** Each
//!    `rd_kafka_message_t` given to `rd_kafka_produce_batch` points into a
//!    [`Record`]'s borrowed slices, alive for the whole call; librdkafka
//!    copies them (`RD_KAFKA_MSG_F_COPY`) before it returns and never
//!    writes through them. The array is read back for the error codes and
//!    cleared before `produce` returns: no pointer into the caller's data
//!    outlives the call.
//! 3. **Event memory lives as long as the event.** Messages, error
//!    strings and log lines read from an event belong to it and stay
//!    valid until `rd_kafka_event_destroy`, which [`Event`]'s drop calls
//!    once, after they were read (and copied where kept).
//! 4. **Threads.** librdkafka's client, topic and queue handles are
//!    thread-safe; a [`Producer`] is used by one writer thread at a time
//!    (`&mut self` for every call), so it is `Send` and not `Sync`.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::{self, NonNull};
use std::time::{Duration, SystemTime};

use rdkafka::bindings as rd;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, Producer as _};
use rdkafka::types::RDKafkaRespErr;

use super::context::ClientLog;
use super::layout::{Fetched, LayoutWatch};
use super::ledger::Pending;
use super::partition::{Groups, Layout, Partitioner, Plan, Rotation, UNASSIGNED};

/// Messages given to `rd_kafka_produce_batch` per call at most (its count
/// is a C int; callers cut rounds smaller than this anyway).
pub const PRODUCE_BATCH_MAX: usize = 4_096;

/// Report messages read from an event per `rd_kafka_event_message_array`
/// call (a stack array); an event holds a produce request's worth.
const REPORTS_PER_READ: usize = 256;

/// What an empty value or key points at: librdkafka `memcpy`s zero bytes
/// from it, and C wants a valid pointer even then.
static EMPTY: u8 = 0;

/// One message to produce: its value and, when it has one, its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'r> {
    pub value: &'r [u8],
    pub key: Option<&'r [u8]>,
}

/// A delivery that failed, with the message to produce again.
pub struct FailedDelivery {
    pub code: RDKafkaErrorCode,
    pub message: Pending,
}

/// What the served events reported; the destination takes it after each
/// [`Producer::serve`] (the vectors keep their capacity).
#[derive(Default)]
pub struct Served {
    /// Acknowledged messages and their value bytes.
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub failed: Vec<FailedDelivery>,
    /// Client-level errors (brokers unreachable, authentication).
    pub errors: Vec<(RDKafkaErrorCode, String)>,
}

struct Topic(NonNull<rd::rd_kafka_topic_t>);

impl Drop for Topic {
    fn drop(&mut self) {
        // SAFETY: made by rd_kafka_topic_new, destroyed once, while the
        // client lives (invariant 1).
        unsafe { rd::rd_kafka_topic_destroy(self.0.as_ptr()) }
    }
}

struct Queue(NonNull<rd::rd_kafka_queue_t>);

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: our own reference from rd_kafka_queue_get_main, released
        // once, while the client lives (invariant 1).
        unsafe { rd::rd_kafka_queue_destroy(self.0.as_ptr()) }
    }
}

/// One polled event, destroyed on drop (invariant 3).
struct Event(NonNull<rd::rd_kafka_event_t>);

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: returned by rd_kafka_queue_poll, ours, destroyed once.
        unsafe { rd::rd_kafka_event_destroy(self.0.as_ptr()) }
    }
}

/// A producer client with a handle on its topic and on the queue its
/// reports arrive on.
pub struct Producer {
    // Invariant 1: these three are declared before `client`, so they are
    // destroyed before it, and the watch (its thread joined) first.
    watch: Option<LayoutWatch>,
    topic: Topic,
    queue: Queue,
    client: BaseProducer<ClientLog>,
    /// Scratch for produce_batch; empty between calls (invariant 2).
    messages: Vec<rd::rd_kafka_message_t>,
    /// The topic's partitioner, when it is one librdkafka exports (else
    /// every message goes UA and there is no watch).
    partitioner: Option<Partitioner>,
    /// The layout the watch last gave (and its generation), unless a
    /// produce found it stale: without one, every message goes UA.
    layout: Option<Layout>,
    seen: u64,
    rotation: Rotation,
    groups: Groups,
    /// "destination NAME: kafka topic TOPIC", for log lines.
    who: String,
}

/// The client and topic handles, for the layout thread's metadata
/// requests.
#[derive(Clone, Copy)]
struct Handles {
    rk: NonNull<rd::rd_kafka_t>,
    rkt: NonNull<rd::rd_kafka_topic_t>,
}

// SAFETY: librdkafka's client and topic handles are thread-safe; the
// thread that uses these is joined before they are destroyed (invariant 1).
unsafe impl Send for Handles {}

/// A metadata answer, destroyed on drop (invariant 3's rule: read while
/// it lives).
struct Metadata(NonNull<rd::rd_kafka_metadata>);

impl Drop for Metadata {
    fn drop(&mut self) {
        // SAFETY: returned by rd_kafka_metadata, ours, destroyed once.
        unsafe { rd::rd_kafka_metadata_destroy(self.0.as_ptr()) }
    }
}

impl Handles {
    /// One metadata request for the topic, blocking up to `timeout`.
    fn layout(self, timeout: Duration) -> Fetched {
        let mut md: *const rd::rd_kafka_metadata = ptr::null();
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: rk and rkt are live (invariant 1: the thread calling this
        // is joined before they are destroyed); `md` is a valid out
        // pointer, set only on success.
        let err =
            unsafe { rd::rd_kafka_metadata(self.rk.as_ptr(), 0, self.rkt.as_ptr(), &mut md, ms) };
        if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Fetched::NoAnswer;
        }
        let Some(md) = NonNull::new(md.cast_mut()).map(Metadata) else {
            return Fetched::NoAnswer;
        };
        // SAFETY: the answer is live until `md` drops, after this read;
        // `topics` holds `topic_cnt` entries and each topic's `partitions`
        // `partition_cnt` (rdkafka.h), read only when non-null.
        let topics = unsafe {
            let m = md.0.as_ref();
            array(m.topics, m.topic_cnt)
        };
        // Asked for this topic only: one entry.
        let Some(t) = topics.first() else {
            return Fetched::Unknown;
        };
        if t.partition_cnt <= 0 {
            return Fetched::Unknown;
        }
        // SAFETY: as above.
        let partitions = unsafe { array(t.partitions, t.partition_cnt) };
        let count = t.partition_cnt;
        let mut led: Vec<i32> = partitions
            .iter()
            .filter(|p| p.leader >= 0 && (0..count).contains(&p.id))
            .map(|p| p.id)
            .collect();
        led.sort_unstable();
        led.dedup();
        Fetched::Known(Layout { count, led })
    }
}

/// The `n` entries at `p` (none when null or `n` <= 0).
///
/// # Safety
/// A non-null `p` points at `n` entries that outlive the result.
unsafe fn array<'m, T>(p: *const T, n: c_int) -> &'m [T] {
    let n = usize::try_from(n).unwrap_or(0);
    if p.is_null() || n == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(p, n) }
}

/// The partition librdkafka's `partitioner` gives `key` among `count`
/// partitions, through its own exported function; `None` when that
/// partitioner would not hash this key (it spreads it, see
/// [`Partitioner::hashes`]).
pub fn hash_partition(partitioner: Partitioner, key: &[u8], count: i32) -> Option<i32> {
    type Hash = unsafe extern "C" fn(
        *const rd::rd_kafka_topic_t,
        *const c_void,
        usize,
        i32,
        *mut c_void,
        *mut c_void,
    ) -> i32;
    use Partitioner as P;
    let f: Hash = match partitioner {
        P::Consistent => rd::rd_kafka_msg_partitioner_consistent,
        P::ConsistentRandom if !key.is_empty() => rd::rd_kafka_msg_partitioner_consistent_random,
        P::Murmur2 => rd::rd_kafka_msg_partitioner_murmur2,
        P::Murmur2Random => rd::rd_kafka_msg_partitioner_murmur2_random,
        P::Fnv1a => rd::rd_kafka_msg_partitioner_fnv1a,
        P::Fnv1aRandom => rd::rd_kafka_msg_partitioner_fnv1a_random,
        P::ConsistentRandom | P::Random => return None,
    };
    if count <= 0 {
        return None;
    }
    let p = if key.is_empty() {
        ptr::from_ref(&EMPTY)
    } else {
        key.as_ptr()
    };
    // SAFETY: `p` is non-null and points at key.len() readable bytes. With
    // a non-null key (and for consistent_random a non-empty one, checked
    // above) each of these functions only hashes those bytes modulo
    // `count` (rdkafka_msg.c 1063-1128, 2.12.1): none reaches the random
    // branch, the only one that reads the topic handle, so the null one is
    // never read; the opaques are unused.
    Some(unsafe {
        f(
            ptr::null(),
            p.cast::<c_void>(),
            key.len(),
            count,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    })
}

// SAFETY: invariant 4. The raw handles are only used through `&mut self`
// or read-only librdkafka calls, which are thread-safe; the scratch array
// holds no pointer between calls.
unsafe impl Send for Producer {}

impl Producer {
    /// Takes over `client`'s report queue (ringest never calls the crate's
    /// `poll`) and makes a handle on `topic`. With a `partitioner`, starts
    /// the thread that reads the topic's partitions, so that batches go
    /// to one partition each; `who` names the topic in its log lines.
    pub fn new(
        client: BaseProducer<ClientLog>,
        topic: &str,
        partitioner: Option<Partitioner>,
        who: &str,
    ) -> Result<Producer, String> {
        let name = CString::new(topic).map_err(|_| format!("topic {topic:?} has a NUL byte"))?;
        let rk = client.client().native_ptr();
        // SAFETY: rk is the live client `client` owns; `name` is
        // NUL-terminated and only read during the call; a null topic
        // config means the client's default topic config.
        let rkt = unsafe { rd::rd_kafka_topic_new(rk, name.as_ptr(), ptr::null_mut()) };
        let Some(handle) = NonNull::new(rkt).map(Topic) else {
            // SAFETY: reads this thread's last librdkafka error.
            let code = RDKafkaErrorCode::from(unsafe { rd::rd_kafka_last_error() });
            return Err(format!("kafka topic {topic}: {code}"));
        };
        // SAFETY: rk is live; the call returns a new reference to the
        // client's main queue (where the crate routes reports, errors and
        // log lines), released by Queue's drop.
        let queue = NonNull::new(unsafe { rd::rd_kafka_queue_get_main(rk) })
            .map(Queue)
            .ok_or("kafka client has no main queue")?;
        let watch = match partitioner {
            Some(p) => {
                let handles = Handles {
                    rk: NonNull::new(rk).ok_or("kafka client has no handle")?,
                    rkt: handle.0,
                };
                let who = who.to_string();
                let watch = LayoutWatch::start(
                    move |timeout| handles.layout(timeout),
                    move |layout| match layout {
                        Some(l) => log::info!(
                            "{who} has {} partitions: each produce call hands each partition its messages at once (partitioner {})",
                            l.count,
                            p.name()
                        ),
                        None => log::warn!(
                            "{who}: no partitions known (the topic is missing or being created); librdkafka partitions each message until they are"
                        ),
                    },
                )
                .map_err(|e| format!("kafka topic {topic}: layout thread: {e}"))?;
                Some(watch)
            }
            None => None,
        };
        // Where spread messages start: not partition 0 on every node.
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as usize);
        Ok(Producer {
            watch,
            topic: handle,
            queue,
            client,
            messages: Vec::new(),
            partitioner,
            layout: None,
            seen: 0,
            rotation: Rotation::new(seed),
            groups: Groups::default(),
            who: who.to_string(),
        })
    }

    /// The crate's producer, for what is not on the data path (metadata,
    /// queue length, fatal errors, purge).
    pub fn base(&self) -> &BaseProducer<ClientLog> {
        &self.client
    }

    /// Hands `records` to librdkafka, in batches of at most
    /// [`PRODUCE_BATCH_MAX`], each batch one call per partition (all UA
    /// while the layout is unknown), each partition's records in order.
    /// `codes[i]` is record i's result: `NoError` (librdkafka holds a
    /// copy), `QueueFull` (not taken) or why it was refused. Once the queue
    /// is full librdkafka refuses the rest of that call, and no later call
    /// is made: in each partition, the records taken are the first ones.
    pub fn produce(&mut self, records: &[Record<'_>], codes: &mut Vec<RDKafkaErrorCode>) {
        codes.clear();
        codes.resize(records.len(), RDKafkaErrorCode::QueueFull);
        if let Some(l) = self.watch.as_ref().and_then(|w| w.latest(&mut self.seen)) {
            self.layout = l;
        }
        for (chunk, codes) in records
            .chunks(PRODUCE_BATCH_MAX)
            .zip(codes.chunks_mut(PRODUCE_BATCH_MAX))
        {
            if !self.produce_grouped(chunk, codes) {
                return;
            }
        }
    }

    /// Produces `records` (at most [`PRODUCE_BATCH_MAX`]) partition by
    /// partition, setting `codes`; false when the queue was full.
    fn produce_grouped(&mut self, records: &[Record<'_>], codes: &mut [RDKafkaErrorCode]) -> bool {
        let plan = match (&self.layout, self.partitioner) {
            (Some(layout), Some(partitioner)) => Some(Plan {
                layout,
                partitioner,
                spread: self.rotation.next(layout),
            }),
            _ => None,
        };
        let partitioner = self.partitioner.unwrap_or(Partitioner::DEFAULT);
        let mut groups = std::mem::take(&mut self.groups);
        groups.group(records, plan, |key, count| {
            hash_partition(partitioner, key, count)
        });
        let (mut room, mut stale) = (true, false);
        for (partition, indices) in groups.iter() {
            self.produce_batch(records, indices, partition, codes);
            let code = |c: RDKafkaErrorCode| indices.iter().any(|&i| codes[i as usize] == c);
            stale |= partition != UNASSIGNED && code(RDKafkaErrorCode::UnknownPartition);
            if code(RDKafkaErrorCode::QueueFull) {
                room = false;
                break;
            }
        }
        self.groups = groups;
        if stale {
            self.layout_stale();
        }
        room
    }

    /// A partition librdkafka does not know (the topic was made again with
    /// fewer partitions): UA until the watch answers again.
    fn layout_stale(&mut self) {
        if self.layout.take().is_some() {
            log::info!(
                "{}: a partition is unknown to librdkafka; it partitions each message until the topic's metadata is read again",
                self.who
            );
        }
        if let Some(w) = &self.watch {
            w.refresh();
        }
    }

    /// Hands one record to librdkafka's partitioner (a retry: whatever the
    /// layout, librdkafka decides).
    pub fn produce_unassigned(&mut self, record: Record<'_>) -> RDKafkaErrorCode {
        let mut code = [RDKafkaErrorCode::QueueFull];
        self.produce_batch(&[record], &[0], UNASSIGNED, &mut code);
        code[0]
    }

    /// One `rd_kafka_produce_batch` call to `partition` with the records
    /// at `indices` (in that order); sets their codes.
    fn produce_batch(
        &mut self,
        records: &[Record<'_>],
        indices: &[u32],
        partition: i32,
        codes: &mut [RDKafkaErrorCode],
    ) {
        debug_assert!(indices.len() <= PRODUCE_BATCH_MAX && self.messages.is_empty());
        let bytes = |b: &[u8]| {
            let p = if b.is_empty() {
                ptr::from_ref(&EMPTY)
            } else {
                b.as_ptr()
            };
            (p.cast_mut().cast::<c_void>(), b.len())
        };
        let picked = indices.iter().filter_map(|&i| records.get(i as usize));
        self.messages.extend(picked.map(|r| {
            let (payload, len) = bytes(r.value);
            let (key, key_len) = r.key.map_or((ptr::null_mut(), 0), bytes);
            rd::rd_kafka_message_t {
                err: RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR,
                rkt: ptr::null_mut(),
                partition,
                payload,
                len,
                key,
                key_len,
                offset: 0,
                _private: ptr::null_mut(),
            }
        }));
        // Fits: PRODUCE_BATCH_MAX is far below c_int::MAX.
        let count = c_int::try_from(self.messages.len()).unwrap_or(c_int::MAX);
        // SAFETY: the topic handle is live (invariant 1). `messages` holds
        // `count` initialised entries whose payload and key point at bytes
        // alive for this call (invariant 2); with RD_KAFKA_MSG_F_COPY
        // librdkafka copies them (never writes through the pointers: the
        // `*mut` is the C signature's) and writes only each entry's `err`.
        // A partition it does not know fails the call's records with
        // UNKNOWN_PARTITION; it reads the entries' own `partition` only with
        // RD_KAFKA_MSG_F_PARTITION, which is not set.
        unsafe {
            rd::rd_kafka_produce_batch(
                self.topic.0.as_ptr(),
                partition,
                rd::RD_KAFKA_MSG_F_COPY,
                self.messages.as_mut_ptr(),
                count,
            );
        }
        for (&i, m) in indices.iter().zip(&self.messages) {
            if let Some(c) = codes.get_mut(i as usize) {
                *c = RDKafkaErrorCode::from(m.err);
            }
        }
        // Invariant 2: no pointer into `records` stays behind.
        self.messages.clear();
    }

    /// Serves librdkafka's events: waits up to `first_wait` for one, then
    /// takes those already queued, `events_max` in all at most. Adds what
    /// they reported to `into`; returns how many events were served.
    pub fn serve(&mut self, first_wait: Duration, events_max: usize, into: &mut Served) -> usize {
        let failed_before = into.failed.len();
        let served = self.serve_events(first_wait, events_max, into);
        // Messages librdkafka held for a partition it then did not find.
        if into
            .failed
            .iter()
            .skip(failed_before)
            .any(|f| f.code == RDKafkaErrorCode::UnknownPartition)
        {
            self.layout_stale();
        }
        served
    }

    fn serve_events(
        &mut self,
        first_wait: Duration,
        events_max: usize,
        into: &mut Served,
    ) -> usize {
        let mut wait = first_wait;
        for served in 0..events_max {
            let ms = poll_ms(wait);
            // SAFETY: the queue handle is live (invariant 1); an event it
            // returns is ours until Event's drop destroys it.
            let polled = unsafe { rd::rd_kafka_queue_poll(self.queue.0.as_ptr(), ms) };
            let Some(event) = NonNull::new(polled).map(Event) else {
                return served;
            };
            event.read(into);
            wait = Duration::ZERO;
        }
        events_max
    }
}

impl Event {
    fn read(&self, into: &mut Served) {
        let ev = self.0.as_ptr();
        // SAFETY: ev is live until self drops (invariant 3).
        match unsafe { rd::rd_kafka_event_type(ev) } {
            rd::RD_KAFKA_EVENT_DR => self.read_reports(into),
            rd::RD_KAFKA_EVENT_ERROR => {
                // SAFETY: ev is a live error event; its string is
                // NUL-terminated (or null) and copied now (invariant 3).
                let (code, reason) = unsafe {
                    (
                        rd::rd_kafka_event_error(ev),
                        text(rd::rd_kafka_event_error_string(ev)),
                    )
                };
                into.errors.push((code.into(), reason));
            }
            rd::RD_KAFKA_EVENT_LOG if log::log_enabled!(log::Level::Debug) => {
                let (mut fac, mut line, mut level) = (ptr::null(), ptr::null(), 0);
                // SAFETY: ev is a live log event; the out-pointers are
                // valid locals; the strings are the event's (invariant 3).
                if unsafe { rd::rd_kafka_event_log(ev, &mut fac, &mut line, &mut level) } == 0 {
                    // SAFETY: set by the call above, NUL-terminated or null.
                    let (fac, line) = unsafe { (text(fac), text(line)) };
                    log::debug!("librdkafka {level} {fac}: {line}");
                }
            }
            // Only with `statistics.interval.ms` set in
            // `[destination.properties]`: librdkafka's own JSON (queues,
            // requests, round trips per broker), logged as it is.
            rd::RD_KAFKA_EVENT_STATS => {
                // SAFETY: ev is a live stats event; its JSON is
                // NUL-terminated (or null) and copied now (invariant 3).
                let json = unsafe { text(rd::rd_kafka_event_stats(ev)) };
                log::info!("librdkafka statistics: {json}");
            }
            // Log lines nobody reads.
            _ => {}
        }
    }

    /// Sums the delivered messages; copies the failed ones.
    fn read_reports(&self, into: &mut Served) {
        let mut batch = [ptr::null::<rd::rd_kafka_message_t>(); REPORTS_PER_READ];
        loop {
            // SAFETY: the event is live; librdkafka writes at most
            // batch.len() pointers into batch, each valid until the event
            // is destroyed (invariant 3); each call continues where the
            // last one stopped.
            let n = unsafe {
                rd::rd_kafka_event_message_array(self.0.as_ptr(), batch.as_mut_ptr(), batch.len())
            };
            if n == 0 {
                return;
            }
            for &m in batch.iter().take(n) {
                // SAFETY: a message of this live event (invariant 3).
                let Some(m) = (unsafe { m.as_ref() }) else {
                    continue;
                };
                if m.err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                    into.delivered += 1;
                    into.delivered_bytes += m.len as u64;
                    continue;
                }
                // SAFETY: payload/key point at len/key_len bytes owned by
                // the event (invariant 3); copied before it is destroyed.
                let message = unsafe {
                    Pending {
                        value: bytes(m.payload, m.len).to_vec(),
                        key: (!m.key.is_null()).then(|| bytes(m.key, m.key_len).to_vec()),
                    }
                };
                into.failed.push(FailedDelivery {
                    code: m.err.into(),
                    message,
                });
            }
        }
    }
}

/// `rd_kafka_queue_poll`'s timeout for a wait: whole milliseconds,
/// rounded up, so that a wait of under 1 ms (a retry almost due) does not
/// become a busy poll of 0 ms.
fn poll_ms(wait: Duration) -> c_int {
    c_int::try_from(wait.as_micros().div_ceil(1_000)).unwrap_or(c_int::MAX)
}

/// The `len` bytes at `p` (none when `p` is null).
///
/// # Safety
/// A non-null `p` points at `len` readable bytes that outlive the result.
unsafe fn bytes<'e>(p: *const c_void, len: usize) -> &'e [u8] {
    if p.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }
}

/// A C string, copied (empty when null).
///
/// # Safety
/// A non-null `p` points at a NUL-terminated string.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_string_lossy()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    //! A client with no broker (127.0.0.1:1 refuses connections): the
    //! topic stays unknown, so every message waits in librdkafka's queue,
    //! where these tests fill it and purge it.
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{Producer as _, PurgeConfig};

    use super::*;

    fn producer(extra: &[(&str, &str)]) -> Producer {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", "127.0.0.1:1")
            .set("message.timeout.ms", "0");
        for (k, v) in extra {
            c.set(*k, *v);
        }
        let base = c.create_with_context(ClientLog).expect("client");
        Producer::new(base, "t", None, "test topic t").expect("producer")
    }

    /// A producer that takes its topic to have `count` partitions (with no
    /// broker, librdkafka holds each record in the topic's UA queue, its
    /// partition set, until the topic is known).
    fn producer_of(count: i32, extra: &[(&str, &str)]) -> Producer {
        let mut p = producer(extra);
        p.partitioner = Some(Partitioner::DEFAULT);
        p.layout = Some(Layout {
            count,
            led: (0..count).collect(),
        });
        p
    }

    fn rec(value: &[u8]) -> Record<'_> {
        Record { value, key: None }
    }

    /// Serves until `want` reports arrived (bounded: 5 s).
    fn serve_until(p: &mut Producer, want: usize) -> Served {
        let mut s = Served::default();
        for _ in 0..500 {
            p.serve(Duration::from_millis(10), 100, &mut s);
            if s.failed.len() + s.delivered as usize >= want {
                break;
            }
        }
        s
    }

    #[test]
    fn a_wait_under_a_millisecond_polls_for_one_not_zero() {
        assert_eq!(poll_ms(Duration::ZERO), 0, "serving what is queued");
        assert_eq!(poll_ms(Duration::from_micros(1)), 1);
        assert_eq!(poll_ms(Duration::from_micros(999)), 1);
        assert_eq!(poll_ms(Duration::from_millis(10)), 10);
        assert_eq!(poll_ms(Duration::from_micros(10_001)), 11);
        assert_eq!(poll_ms(Duration::from_secs(u64::MAX)), c_int::MAX);
    }

    #[test]
    fn a_full_queue_refuses_the_rest_of_the_batch_and_takes_nothing_after_it() {
        // 1 KiB of queue: three 300-byte values fit, the fourth does not.
        let mut p = producer(&[("queue.buffering.max.kbytes", "1")]);
        let value = [b'x'; 300];
        let records = vec![rec(&value); 6];
        let mut codes = Vec::new();
        p.produce(&records, &mut codes);
        use RDKafkaErrorCode::{NoError, QueueFull};
        assert_eq!(
            codes,
            [NoError, NoError, NoError, QueueFull, QueueFull, QueueFull]
        );
        // A small record would fit, but nothing after a full queue is taken.
        let small = [rec(&value), rec(&value[..1])];
        p.produce(&small, &mut codes);
        assert_eq!(codes, [QueueFull, QueueFull]);
        assert!(p.messages.is_empty(), "no pointer kept");
        // librdkafka holds exactly the three: purged, each comes back once.
        p.base().purge(PurgeConfig::default().queue());
        let s = serve_until(&mut p, 3);
        assert_eq!(s.failed.len(), 3);
        assert_eq!(s.delivered, 0);
    }

    #[test]
    fn a_failed_report_hands_back_each_message_whole_and_in_order() {
        let mut p = producer(&[]);
        let records = [
            Record {
                value: b"one",
                key: Some(b"10.0.0.1"),
            },
            rec(b""),
            Record {
                value: b"three",
                key: Some(b""),
            },
        ];
        let mut codes = Vec::new();
        p.produce(&records, &mut codes);
        assert_eq!(codes, [RDKafkaErrorCode::NoError; 3]);
        // Purging the queue fails each message with a report, as a
        // broker's refusal does.
        p.base().purge(PurgeConfig::default().queue());
        let s = serve_until(&mut p, 3);
        assert_eq!(s.delivered, 0);
        let back: Vec<(&[u8], Option<&[u8]>)> = s
            .failed
            .iter()
            .map(|f| (f.message.value.as_slice(), f.message.key.as_deref()))
            .collect();
        assert_eq!(
            back,
            [
                (&b"one"[..], Some(&b"10.0.0.1"[..])),
                (b"", None),
                (b"three", Some(b"")),
            ]
        );
        assert!(s
            .failed
            .iter()
            .all(|f| f.code == RDKafkaErrorCode::PurgeQueue));
    }

    #[test]
    fn the_partitioners_are_librdkafkas_own_hashes() {
        use Partitioner as P;
        // Check values: CRC-32 of "123456789" is 0xCBF43926; FNV-1a and
        // murmur2 of "kafka" from librdkafka's unit tests (rdfnv1a.c,
        // rdmurmur2.c).
        let h = |p, k: &[u8]| hash_partition(p, k, 1_000);
        assert_eq!(h(P::Consistent, b"123456789"), Some(262));
        assert_eq!(h(P::ConsistentRandom, b"123456789"), Some(262));
        assert_eq!(h(P::Fnv1a, b"kafka"), Some(545));
        assert_eq!(h(P::Fnv1aRandom, b"kafka"), Some(545));
        assert_eq!(h(P::Murmur2, b"kafka"), Some(580));
        assert_eq!(h(P::Murmur2Random, b"kafka"), Some(580));
        // An empty key: hashed (non-null) except by consistent_random,
        // which would pick at random from the topic's partitions.
        assert_eq!(h(P::Fnv1a, b""), Some(35));
        assert_eq!(h(P::Murmur2Random, b""), Some(681));
        assert_eq!(h(P::Consistent, b""), Some(0));
        assert_eq!(h(P::ConsistentRandom, b""), None);
        assert_eq!(h(P::Random, b"kafka"), None);
        assert_eq!(hash_partition(P::Consistent, b"k", 0), None);
        for k in [&b"10.0.0.1"[..], b"web7", b"2001:db8::1"] {
            let p = hash_partition(P::DEFAULT, k, 4).expect("hashed");
            assert!((0..4).contains(&p), "{p}");
        }
    }

    #[test]
    fn a_full_queue_in_one_partitions_call_leaves_the_first_records_of_each_partition_taken() {
        // Two keys in two partitions, interleaved; 1 KiB of queue: three
        // 300-byte values fit.
        let (a, b) = (&b"123456789"[..], &b"kafka"[..]);
        let (pa, pb) = (
            hash_partition(Partitioner::DEFAULT, a, 2),
            hash_partition(Partitioner::DEFAULT, b, 2),
        );
        assert_ne!(pa, pb, "the two keys must land apart for this test");
        let mut p = producer_of(2, &[("queue.buffering.max.kbytes", "1")]);
        let value = [b'x'; 300];
        let records: Vec<Record<'_>> = (0..6)
            .map(|i| Record {
                value: &value,
                key: Some(if i % 2 == 0 { a } else { b }),
            })
            .collect();
        let mut codes = Vec::new();
        p.produce(&records, &mut codes);
        use RDKafkaErrorCode::{NoError, QueueFull};
        // The lower partition's call goes first and fills the queue.
        let first = if pa < pb { 0 } else { 1 };
        let want: Vec<_> = (0..6)
            .map(|i| if i % 2 == first { NoError } else { QueueFull })
            .collect();
        assert_eq!(codes, want, "in the records' order");
        assert!(p.messages.is_empty(), "no pointer kept");
        // The taken ones come back in their order, each once.
        p.base().purge(PurgeConfig::default().queue());
        let s = serve_until(&mut p, 3);
        assert_eq!(s.failed.len(), 3);
        assert!(s
            .failed
            .iter()
            .all(|f| f.message.key.as_deref() == Some(if first == 0 { a } else { b })));
    }

    #[test]
    fn unkeyed_records_of_one_call_go_to_one_partition_and_come_back_whole() {
        let mut p = producer_of(3, &[]);
        let records = [rec(b"one"), rec(b"two"), rec(b"")];
        let mut codes = Vec::new();
        p.produce(&records, &mut codes);
        assert_eq!(codes, [RDKafkaErrorCode::NoError; 3]);
        p.base().purge(PurgeConfig::default().queue());
        let s = serve_until(&mut p, 3);
        let back: Vec<&[u8]> = s
            .failed
            .iter()
            .map(|f| f.message.value.as_slice())
            .collect();
        assert_eq!(back, [&b"one"[..], b"two", b""]);
        // A retry goes UA whatever the layout.
        assert_eq!(p.produce_unassigned(rec(b"r")), RDKafkaErrorCode::NoError);
    }

    #[test]
    fn a_record_over_the_size_limit_is_refused_alone_so_the_destination_sends_it_alone() {
        // librdkafka checks each record against message.max.bytes and goes
        // on with the next: a too-large record in the middle of a batch
        // would be overtaken by the ones after it. round::batch_len cuts
        // batches before such a record for that reason.
        let mut p = producer(&[("message.max.bytes", "1000")]);
        let big = [b'x'; 2_000];
        let mut codes = Vec::new();
        p.produce(&[rec(b"a"), rec(&big), rec(b"c")], &mut codes);
        use RDKafkaErrorCode::{MessageSizeTooLarge, NoError};
        assert_eq!(codes, [NoError, MessageSizeTooLarge, NoError]);
    }
}
