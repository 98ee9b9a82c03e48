//! bench's own Kafka client (librdkafka through `rdkafka`, cargo feature
//! `kafka`): the topic's high watermarks, polled during a run by one
//! thread (no JVM per poll), and one read of the whole topic after it for
//! `loadgen verify`. Without the feature every call fails with the build
//! command, so a kafka row fails rather than passes.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::delivery::State;

/// What one read of a topic found.
#[derive(Debug, Clone, Copy, Default)]
pub struct Consumed {
    pub records: u64,
    /// The values' bytes (no key, no newline).
    pub value_bytes: u64,
}

#[cfg(feature = "kafka")]
mod imp {
    use std::io::Write;
    use std::sync::mpsc;
    use std::thread::JoinHandle;

    use anyhow::{bail, Context};
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};

    use super::super::delivery::{self, Watch};
    use super::*;

    const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    /// How often the poller asks for the watermarks: the delivery window's
    /// end is known to this much.
    const POLL_EVERY: Duration = Duration::from_millis(20);

    fn consumer(bootstrap: &str) -> Result<BaseConsumer> {
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "bench-reader")
            .set("enable.auto.commit", "false")
            .set("fetch.max.bytes", "16777216")
            .create()
            .context("kafka client")
    }

    /// Every partition's high watermark.
    pub fn high_watermarks(c: &BaseConsumer, topic: &str, partitions: u32) -> Result<Vec<i64>> {
        (0..partitions as i32)
            .map(|p| {
                c.fetch_watermarks(topic, p, REQUEST_TIMEOUT)
                    .map(|(_, high)| high)
                    .with_context(|| format!("watermarks of {topic}/{p}"))
            })
            .collect()
    }

    /// Every partition's high watermark of `topic` now, with a new client.
    pub fn watermarks(bootstrap: &str, topic: &str, partitions: u32) -> Result<Vec<i64>> {
        high_watermarks(&consumer(bootstrap)?, topic, partitions)
    }

    /// The thread that polls the watermarks from before the load until the
    /// topic holds loadgen's count (or stalls).
    pub struct Poller {
        target: mpsc::Sender<u64>,
        thread: JoinHandle<Result<State>>,
    }

    impl Poller {
        pub fn spawn(
            bootstrap: &str,
            topic: &str,
            partitions: u32,
            start: Instant,
            stable: Duration,
            limit: Duration,
        ) -> Result<Poller> {
            let c = consumer(bootstrap)?;
            // One request before the load: the topic exists and answers.
            delivery::count(&high_watermarks(&c, topic, partitions)?)?;
            let (tx, rx) = mpsc::channel::<u64>();
            let topic = topic.to_string();
            let thread = std::thread::Builder::new()
                .name("bench-kafka-watch".into())
                .spawn(move || -> Result<State> {
                    let mut watch = Watch::new(start, stable, limit);
                    loop {
                        match rx.try_recv() {
                            Ok(n) => watch.set_target(Instant::now(), n),
                            Err(mpsc::TryRecvError::Empty) => {}
                            // The run ended another way: stop polling.
                            Err(mpsc::TryRecvError::Disconnected) => return Ok(State::Waiting),
                        }
                        let n = delivery::count(&high_watermarks(&c, &topic, partitions)?)?;
                        match watch.observe(Instant::now(), n) {
                            State::Waiting => std::thread::sleep(POLL_EVERY),
                            done => return Ok(done),
                        }
                    }
                })?;
            Ok(Poller { target: tx, thread })
        }

        /// loadgen ended having sent `sent`: wait until the topic holds
        /// them all, or stalls.
        pub fn finish(self, sent: u64) -> Result<State> {
            // An error here means the thread already ended; join says why.
            let _ = self.target.send(sent);
            match self.thread.join() {
                Ok(r) => r,
                Err(_) => bail!("the watermark poller panicked"),
            }
        }
    }

    /// Waits for `f` on this thread (rdkafka's admin futures are completed
    /// by librdkafka's own thread; no async runtime needed), at most `limit`.
    fn wait<F: std::future::Future>(f: F, limit: Duration) -> Result<F::Output> {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        let deadline = Instant::now() + limit;
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return Ok(v);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no answer from the broker in {limit:?}");
            }
            std::thread::park_timeout(left.min(Duration::from_millis(100)));
        }
    }

    /// Produces `value_bytes`-byte values into `topic` as fast as the
    /// broker takes them, with the settings every engine is given, for
    /// `duration` (and at most `max_messages`), then waits for every
    /// delivery (bounded). Returns the messages delivered.
    pub fn warm_up(
        bootstrap: &str,
        topic: &str,
        value_bytes: usize,
        duration: Duration,
        max_messages: u64,
    ) -> Result<u64> {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", bootstrap);
        for (k, v) in super::super::settings::peer_properties() {
            cfg.set(k, v);
        }
        let producer: BaseProducer = cfg.create().context("kafka warm-up producer")?;
        let value = vec![b'w'; value_bytes];
        let end = Instant::now() + duration;
        let mut sent = 0u64;
        while sent < max_messages && Instant::now() < end {
            match producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&value)) {
                Ok(()) => sent += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("warm-up produce to {topic}: {e}"),
            }
            if sent % 1024 == 0 {
                producer.poll(Duration::ZERO);
            }
        }
        producer
            .flush(Duration::from_secs(30))
            .with_context(|| format!("warm-up: {topic} did not take {sent} messages in 30 s"))?;
        Ok(sent)
    }

    /// Deletes `topic` once its run is counted and read, so that a long
    /// bench does not fill the disk with topics.
    pub fn delete_topic(bootstrap: &str, topic: &str) -> Result<()> {
        use rdkafka::admin::{AdminClient, AdminOptions};
        use rdkafka::client::DefaultClientContext;
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .context("kafka admin client")?;
        let opts = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = wait(admin.delete_topics(&[topic], &opts), 2 * REQUEST_TIMEOUT)?
            .with_context(|| format!("deleting {topic}"))?;
        for r in results {
            if let Err((t, code)) = r {
                bail!("deleting {t}: {code}");
            }
        }
        Ok(())
    }

    /// Reads every partition of `topic` from the start until `expected`
    /// records are read (or `timeout`), writing each value and a newline
    /// to `out`.
    pub fn consume(
        bootstrap: &str,
        topic: &str,
        partitions: u32,
        expected: u64,
        timeout: Duration,
        out: &Path,
    ) -> Result<Consumed> {
        let c = consumer(bootstrap)?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        c.assign(&tpl)?;
        let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
        let mut got = Consumed::default();
        let deadline = Instant::now() + timeout;
        while got.records < expected {
            if Instant::now() >= deadline {
                bail!(
                    "read {} of {expected} records of {topic} in {timeout:?}",
                    got.records
                );
            }
            let Some(r) = c.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = r.with_context(|| format!("reading {topic}"))?;
            let value = m.payload().unwrap_or(&[]);
            file.write_all(value)?;
            file.write_all(b"\n")?;
            got.records += 1;
            got.value_bytes += value.len() as u64;
        }
        file.flush()?;
        Ok(got)
    }
}

#[cfg(not(feature = "kafka"))]
mod imp {
    use anyhow::bail;

    use super::*;

    const NO_CLIENT: &str = "this bench has no Kafka client: build it with \
        `cargo build --release -p bench --features kafka` (and ringest with --features kafka)";

    pub fn watermarks(_bootstrap: &str, _topic: &str, _partitions: u32) -> Result<Vec<i64>> {
        bail!(NO_CLIENT)
    }

    pub struct Poller;

    impl Poller {
        pub fn spawn(
            _bootstrap: &str,
            _topic: &str,
            _partitions: u32,
            _start: Instant,
            _stable: Duration,
            _limit: Duration,
        ) -> Result<Poller> {
            bail!(NO_CLIENT)
        }

        pub fn finish(self, _sent: u64) -> Result<State> {
            bail!(NO_CLIENT)
        }
    }

    pub fn delete_topic(_bootstrap: &str, _topic: &str) -> Result<()> {
        bail!(NO_CLIENT)
    }

    pub fn warm_up(
        _bootstrap: &str,
        _topic: &str,
        _value_bytes: usize,
        _duration: Duration,
        _max_messages: u64,
    ) -> Result<u64> {
        bail!(NO_CLIENT)
    }

    pub fn consume(
        _bootstrap: &str,
        _topic: &str,
        _partitions: u32,
        _expected: u64,
        _timeout: Duration,
        _out: &Path,
    ) -> Result<Consumed> {
        bail!(NO_CLIENT)
    }
}

pub use imp::{consume, delete_topic, warm_up, watermarks, Poller};
