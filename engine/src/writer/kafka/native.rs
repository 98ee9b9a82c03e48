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
//!    the client is alive for every call made through them.
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
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, Producer as _};
use rdkafka::types::RDKafkaRespErr;

use super::context::ClientLog;
use super::ledger::Pending;

/// librdkafka's `RD_KAFKA_PARTITION_UA` (a C macro the bindings lack):
/// the topic's partitioner picks each message's partition (by key, or
/// sticky for unkeyed messages).
const PARTITION_UNASSIGNED: i32 = -1;

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
    // Invariant 1: these two are declared before `client`, so they are
    // destroyed before it.
    topic: Topic,
    queue: Queue,
    client: BaseProducer<ClientLog>,
    /// Scratch for produce_batch; empty between calls (invariant 2).
    messages: Vec<rd::rd_kafka_message_t>,
}

// SAFETY: invariant 4. The raw handles are only used through `&mut self`
// or read-only librdkafka calls, which are thread-safe; the scratch array
// holds no pointer between calls.
unsafe impl Send for Producer {}

impl Producer {
    /// Takes over `client`'s report queue (ringest never calls the crate's
    /// `poll`) and makes a handle on `topic`.
    pub fn new(client: BaseProducer<ClientLog>, topic: &str) -> Result<Producer, String> {
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
        Ok(Producer {
            topic: handle,
            queue,
            client,
            messages: Vec::new(),
        })
    }

    /// The crate's producer, for what is not on the data path (metadata,
    /// queue length, fatal errors, purge).
    pub fn base(&self) -> &BaseProducer<ClientLog> {
        &self.client
    }

    /// Hands `records` to librdkafka in order, in batches of at most
    /// [`PRODUCE_BATCH_MAX`]. `codes[i]` is record i's result: `NoError`
    /// (librdkafka holds a copy), `QueueFull` (not taken; so are all after
    /// it: librdkafka refuses the rest of a batch once its queue is full,
    /// and no later batch is tried) or why it was refused.
    pub fn produce(&mut self, records: &[Record<'_>], codes: &mut Vec<RDKafkaErrorCode>) {
        codes.clear();
        for chunk in records.chunks(PRODUCE_BATCH_MAX) {
            self.produce_batch(chunk, codes);
            if codes.contains(&RDKafkaErrorCode::QueueFull) {
                codes.resize(records.len(), RDKafkaErrorCode::QueueFull);
                return;
            }
        }
    }

    /// One `rd_kafka_produce_batch` call; appends a code per record.
    fn produce_batch(&mut self, records: &[Record<'_>], codes: &mut Vec<RDKafkaErrorCode>) {
        debug_assert!(records.len() <= PRODUCE_BATCH_MAX && self.messages.is_empty());
        let bytes = |b: &[u8]| {
            let p = if b.is_empty() {
                ptr::from_ref(&EMPTY)
            } else {
                b.as_ptr()
            };
            (p.cast_mut().cast::<c_void>(), b.len())
        };
        self.messages.extend(records.iter().map(|r| {
            let (payload, len) = bytes(r.value);
            let (key, key_len) = r.key.map_or((ptr::null_mut(), 0), bytes);
            rd::rd_kafka_message_t {
                err: RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR,
                rkt: ptr::null_mut(),
                partition: PARTITION_UNASSIGNED,
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
        unsafe {
            rd::rd_kafka_produce_batch(
                self.topic.0.as_ptr(),
                PARTITION_UNASSIGNED,
                rd::RD_KAFKA_MSG_F_COPY,
                self.messages.as_mut_ptr(),
                count,
            );
        }
        codes.extend(self.messages.iter().map(|m| RDKafkaErrorCode::from(m.err)));
        // Invariant 2: no pointer into `records` stays behind.
        self.messages.clear();
    }

    /// Serves librdkafka's events: waits up to `first_wait` for one, then
    /// takes those already queued, `events_max` in all at most. Adds what
    /// they reported to `into`; returns how many events were served.
    pub fn serve(&mut self, first_wait: Duration, events_max: usize, into: &mut Served) -> usize {
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
        Producer::new(base, "t").expect("producer")
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
