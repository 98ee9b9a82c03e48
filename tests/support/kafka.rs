//! A real Apache Kafka broker for one test (tests/kafka/broker.sh: KRaft,
//! single node, loopback, a fresh log.dirs per broker), and a consumer that
//! reads a topic back. A missing broker fails the test: run
//! tests/install-deps.sh (it fetches the jars) first.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::server::temp_dir;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kafka/broker.sh")
}

fn run(args: &[&str]) {
    run_with(args, &[]);
}

fn run_with(args: &[&str], env: &[(&str, String)]) {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run tests/kafka/broker.sh");
    assert!(
        out.status.success(),
        "tests/kafka/broker.sh {args:?} failed (run tests/install-deps.sh for the jars):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free port below the kernel's ephemeral range: the broker's (and
/// every other process's) outgoing connections take ephemeral ports, and
/// one of them took the controller port between our check and the
/// broker's bind ("Address already in use" at start).
fn listener_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..1_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(97)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000 for the kafka broker");
}

/// One broker; stopped on drop.
pub struct Broker {
    pub dir: PathBuf,
    pub port: u16,
    cport: u16,
    auto_create: bool,
    running: bool,
    /// The SSL listener's port and its broker.sh environment, when it has one.
    tls: Option<(u16, Vec<(&'static str, String)>)>,
}

impl Broker {
    /// Starts a broker with a fresh data folder; `auto_create`: whether it
    /// creates topics on first use.
    pub fn start(name: &str, auto_create: bool) -> Broker {
        let mut b = Broker {
            dir: temp_dir(&format!("kafka-broker-{name}")),
            port: listener_port(),
            cport: listener_port(),
            auto_create,
            running: false,
            tls: None,
        };
        b.restart();
        b
    }

    /// Like [`start`](Self::start), with an SSL listener too: its
    /// certificate is `pki`'s server certificate, and it requires a client
    /// certificate signed by `pki`'s CA.
    pub fn start_tls(name: &str, pki: &crate::pki::Pki) -> Broker {
        let dir = temp_dir(&format!("kafka-broker-{name}"));
        // Kafka's PEM keystore: the PKCS#8 key and the chain in one file.
        let keystore = dir.join("keystore.pem");
        let pem = |p: &Path| std::fs::read_to_string(p).expect("pki file");
        std::fs::write(&keystore, pem(&pki.server_key) + &pem(&pki.server_cert)).expect("keystore");
        let tls_port = listener_port();
        let env = vec![
            ("KAFKA_TLS_PORT", tls_port.to_string()),
            ("KAFKA_TLS_KEYSTORE", keystore.display().to_string()),
            ("KAFKA_TLS_CA", pki.ca.display().to_string()),
        ];
        let mut b = Broker {
            dir,
            port: listener_port(),
            cport: listener_port(),
            auto_create: false,
            running: false,
            tls: Some((tls_port, env)),
        };
        b.restart();
        b
    }

    /// The SSL listener's address (brokers started with [`start_tls`](Self::start_tls)).
    pub fn tls_bootstrap(&self) -> String {
        let (port, _) = self.tls.as_ref().expect("a broker started with start_tls");
        format!("127.0.0.1:{port}")
    }

    /// Starts it again on the same data (after [`stop`](Self::stop)).
    pub fn restart(&mut self) {
        let (port, cport) = (self.port.to_string(), self.cport.to_string());
        let dir = self.dir.to_string_lossy().to_string();
        let env = self.tls.as_ref().map_or(&[][..], |(_, env)| env.as_slice());
        run_with(
            &["start", &dir, &port, &cport, &self.auto_create.to_string()],
            env,
        );
        self.running = true;
    }

    pub fn stop(&mut self) {
        if self.running {
            run(&["stop", &self.dir.to_string_lossy()]);
            self.running = false;
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        run(&[
            "topic",
            &self.port.to_string(),
            name,
            &partitions.to_string(),
        ]);
    }

    /// Produces one empty record per key to `topic` with a plain producer
    /// that leaves each record's partition to librdkafka (partition UA)
    /// under `partitioner`: a reference for where a key's records go.
    pub fn produce_keyed(&self, topic: &str, partitioner: &str, keys: &[String]) {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("partitioner", partitioner)
            .create()
            .expect("kafka producer");
        for k in keys {
            producer
                .send(BaseRecord::to(topic).key(k.as_str()).payload(""))
                .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
        }
        producer
            .flush(Duration::from_secs(30))
            .expect("reference records acknowledged in 30 s");
    }

    /// Reads every partition of `topic` from the start until the topic's
    /// high watermarks add up to at least `expected` and every record up to
    /// them is read (or `timeout`). Writes each value and a newline to
    /// `out` (for `loadgen verify`); returns what it read.
    pub fn consume(
        &self,
        topic: &str,
        partitions: u32,
        expected: u64,
        timeout: Duration,
        out: &Path,
    ) -> Consumed {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("group.id", "e2e-reader")
            .set("enable.auto.commit", "false")
            .set("fetch.max.bytes", "16777216")
            .create()
            .expect("kafka consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&tpl).expect("assign");
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(out).expect("consumer output"));
        let mut c = Consumed::default();
        let deadline = Instant::now() + timeout;
        let mut next_check = Instant::now();
        loop {
            assert!(
                Instant::now() < deadline,
                "consumed {} of {expected} from {topic} in {timeout:?} (high watermarks {:?})",
                c.records,
                c.high_watermarks
            );
            if let Some(r) = consumer.poll(Duration::from_millis(200)) {
                let m = r.expect("consume");
                let value = m.payload().unwrap_or(&[]);
                file.write_all(value)
                    .and_then(|_| file.write_all(b"\n"))
                    .expect("write");
                c.records += 1;
                *c.per_partition.entry(m.partition()).or_insert(0) += 1;
                if let Some(k) = m.key() {
                    c.keys
                        .entry(String::from_utf8_lossy(k).into_owned())
                        .or_default()
                        .push(m.partition());
                }
                continue;
            }
            if Instant::now() >= next_check {
                next_check = Instant::now() + Duration::from_secs(1);
                c.high_watermarks = (0..partitions as i32)
                    .map(|p| {
                        consumer
                            .fetch_watermarks(topic, p, Duration::from_secs(5))
                            .map(|(_, high)| high as u64)
                            .unwrap_or(0)
                    })
                    .collect();
                let total: u64 = c.high_watermarks.iter().sum();
                if total >= expected && c.records >= total {
                    break;
                }
            }
        }
        file.flush().expect("flush");
        c
    }
}

impl Drop for Broker {
    /// Stops the broker; its data (hundreds of MB after the 1M test) is
    /// removed unless the test failed, for the post-mortem.
    fn drop(&mut self) {
        self.stop();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What a consumer read back.
#[derive(Debug, Default)]
pub struct Consumed {
    pub records: u64,
    pub per_partition: HashMap<i32, u64>,
    /// For each key, the partition of each of its records.
    pub keys: HashMap<String, Vec<i32>>,
    pub high_watermarks: Vec<u64>,
}
