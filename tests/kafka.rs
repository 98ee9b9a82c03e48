//! End-to-end: the kafka destination against a real Apache Kafka 4.x broker
//! (tests/kafka/broker.sh, started by tests/support/kafka.rs with a fresh
//! data folder per test). Every message sent is read back from the topic by
//! a consumer and checked by `loadgen verify`: each exactly once.
//!
//! The tests take turns (one broker at a time on a small machine).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use e2e::cmd::run;
use e2e::kafka::{Broker, Consumed};
use e2e::loadgen::{loadgen_send, loadgen_verify as verify};
use e2e::pki::Pki;
use e2e::server::{free_port, temp_dir, Server};

/// One test's setting: its folder and PKI, a broker, and one ringest node
/// on 127.0.0.1 writing to `topic` (the server first: it stops before the
/// broker on drop).
struct Case {
    server: Server,
    broker: Broker,
    port: u16,
    pki: Pki,
    dir: PathBuf,
}

impl Case {
    /// `create`: whether the topic exists before ringest starts; `extra`:
    /// more keys of the kafka destination.
    fn start(
        name: &str,
        broker: impl FnOnce(&Pki) -> Broker,
        topic: &str,
        create: bool,
        extra: &str,
    ) -> Case {
        let dir = temp_dir(&format!("kafka-{name}"));
        let pki = Pki::generate(&dir.join("pki"));
        let broker = broker(&pki);
        if create {
            broker.create_topic(topic, PARTITIONS);
        }
        let (port, stats) = (free_port(), free_port());
        let server = Server::start(
            &dir,
            &config(&pki, "127.0.0.1", port, stats, &broker, topic, extra),
        );
        Case {
            server,
            broker,
            port,
            pki,
            dir,
        }
    }

    /// `loadgen send` of `n` messages over `connections`; `more`: further
    /// options. Returns its summary for `verify`.
    fn send(&self, n: u64, connections: u32, json: &str, more: &[&str]) -> Command {
        let (n, c) = (n.to_string(), connections.to_string());
        // A close waits for ringest to read the client's close_notify: after
        // an outage ringest reads again only as the backlog drains
        // (back-pressure), which takes longer than loadgen's 2 s default.
        let mut args = vec![
            "--count",
            &n,
            "--connections",
            &c,
            "--timeout",
            "60s",
            "--close-timeout",
            "60s",
        ];
        args.extend_from_slice(more);
        loadgen_send(
            format!("127.0.0.1:{}", self.port),
            &self.pki,
            &args,
            &self.dir.join(json),
        )
    }
}

/// Every test topic's partitions.
const PARTITIONS: u32 = 4;

static ONE_BROKER_AT_A_TIME: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    ONE_BROKER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// One mutual-TLS source on `ip`, one kafka destination named "kafka".
fn config(
    pki: &Pki,
    ip: &str,
    port: u16,
    stats: u16,
    broker: &Broker,
    topic: &str,
    extra: &str,
) -> String {
    format!(
        r#"shards = 2
drain_timeout_ms = 3000

[[source]]
name = "tls"
listen = "{ip}:{port}"
transport = "tls"
framing = "auto"

[source.tls]
cert_file = "{cert}"
key_file = "{key}"
ca_file = "{ca}"
peer_verify = "required-trusted"

[[destination]]
name = "kafka"
type = "kafka"
brokers = ["{bootstrap}"]
topic = "{topic}"
{extra}
[stats]
listen = "127.0.0.1:{stats}"
"#,
        cert = pki.server_cert.display(),
        key = pki.server_key.display(),
        ca = pki.ca.display(),
        bootstrap = broker.bootstrap(),
    )
}

const DELIVERED: &str = "ringest_delivered_messages_total{destination=\"kafka\"}";

/// Reads `topic` back and checks it holds exactly `n` records (the high
/// watermarks too: no duplicate sits past what was read) and, with
/// `loadgen verify`, every message of each run in `sends` exactly once.
fn consume_and_verify(
    broker: &Broker,
    topic: &str,
    n: u64,
    dir: &Path,
    sends: &[PathBuf],
) -> Consumed {
    let out = dir.join(format!("consumed-{topic}.log"));
    let c = broker.consume(topic, PARTITIONS, n, Duration::from_secs(300), &out);
    assert_eq!(c.records, n, "records in the topic: {c:?}");
    assert_eq!(
        c.high_watermarks.iter().sum::<u64>(),
        n,
        "no duplicate in the log"
    );
    for send in sends {
        verify(send, &[&out]);
    }
    c
}

#[test]
fn a_million_messages_over_8_mtls_connections_land_in_4_partitions_exactly_once() {
    let _turn = turn();
    let t = Case::start(
        "million",
        |_| Broker::start("million", false),
        "logs",
        true,
        "compression = \"lz4\"\n",
    );
    run(&mut t.send(1_000_000, 8, "send.json", &[]));
    let delivered = t
        .server
        .wait_metric(DELIVERED, 1_000_000, Duration::from_secs(300));
    assert_eq!(delivered, 1_000_000, "acknowledged by the broker");
    let c = consume_and_verify(
        &t.broker,
        "logs",
        1_000_000,
        &t.dir,
        &[t.dir.join("send.json")],
    );
    assert_eq!(
        c.per_partition.len(),
        4,
        "spread over the 4 partitions: {:?}",
        c.per_partition
    );
    let status = t.server.stop();
    assert!(
        status.success(),
        "ringest exit {status:?}: every message delivered"
    );
}

#[test]
fn a_broker_down_for_10s_mid_run_loses_and_duplicates_nothing() {
    let _turn = turn();
    // A small producer queue: the outage fills it, then the rings, and the
    // sources stop reading (back-pressure) until the broker is back.
    let mut t = Case::start(
        "outage",
        |_| Broker::start("outage", false),
        "logs",
        true,
        "key = \"peer\"\nproducer_queue_max_bytes = 1048576\n",
    );
    const N: u64 = 200_000;
    let mut load = t
        .send(N, 4, "send.json", &["--rate", "10000"])
        .spawn()
        .expect("loadgen");
    t.server
        .wait_metric(DELIVERED, 20_000, Duration::from_secs(60));
    t.broker.stop();
    std::thread::sleep(Duration::from_secs(10));
    let during = t.server.metric(DELIVERED);
    t.broker.restart();
    let status = load.wait().expect("loadgen");
    assert!(status.success(), "loadgen {status:?}");
    let delivered = t.server.wait_metric(DELIVERED, N, Duration::from_secs(180));
    assert_eq!(delivered, N, "metrics:\n{}", t.server.metrics());
    assert!(
        during < N,
        "the outage happened mid-run ({during} of {N} delivered)"
    );
    // 0 lost, 0 duplicated.
    let c = consume_and_verify(&t.broker, "logs", N, &t.dir, &[t.dir.join("send.json")]);
    // key = "peer": one sender, one partition, so its order holds.
    assert_eq!(c.keys.len(), 1, "one key: {:?}", c.keys.keys());
    for (k, parts) in &c.keys {
        assert!(
            parts.iter().all(|p| *p == parts[0]),
            "key {k} spread over partitions"
        );
    }
    let stderr = t.server.stderr();
    assert!(
        stderr.contains("no broker reachable"),
        "the outage is logged:\n{stderr}"
    );
    assert!(
        stderr.contains("kafka deliveries resumed"),
        "and its end:\n{stderr}"
    );
    // A broker that was away is an outage, not a stalled producer; a
    // producer left stuck after the restart would be reported here.
    assert_eq!(t.server.metric(STALLS), 0, "{stderr}");
    let status = t.server.stop();
    assert!(status.success(), "ringest exit {status:?}");
}

#[test]
fn a_missing_topic_is_a_clear_error_and_nothing_is_lost_once_it_is_created() {
    let _turn = turn();
    // A short metadata wait: the producer gives up on the missing topic
    // quickly, so ringest's own keep-and-retry is what carries the messages.
    let t = Case::start(
        "missing",
        |_| Broker::start("missing", false),
        "late",
        false,
        "[destination.properties]\n\"topic.metadata.propagation.max.ms\" = \"1000\"\n",
    );
    const N: u64 = 20_000;
    run(&mut t.send(N, 2, "send.json", &[]));
    let failures =
        "ringest_delivery_failures_total{destination=\"kafka\",reason=\"unknown_topic\"}";
    t.server.wait_metric(failures, 1, Duration::from_secs(60));
    assert_eq!(t.server.metric(DELIVERED), 0);
    let stderr = t.server.stderr();
    let line = stderr
        .lines()
        .find(|l| l.contains("the topic does not exist"))
        .unwrap_or_else(|| panic!("no clear error line:\n{stderr}"));
    assert!(line.contains("create the topic"), "with a hint: {line}");
    assert!(line.contains("kept"), "says nothing is dropped: {line}");
    // One writer, so one producer, for the kafka destination's group
    // (whichever shards the two connections land on): the outage is
    // logged once, not per retry.
    assert!(stderr.contains("1 writers for 2 shards"), "{stderr}");
    let lines = stderr.matches("the topic does not exist").count();
    assert_eq!(lines, 1, "logged once, not per retry:\n{stderr}");
    t.broker.create_topic("late", PARTITIONS);
    let delivered = t.server.wait_metric(DELIVERED, N, Duration::from_secs(120));
    assert_eq!(delivered, N);
    assert!(
        t.server
            .metric("ringest_retried_messages_total{destination=\"kafka\"}")
            > 0
    );
    consume_and_verify(&t.broker, "late", N, &t.dir, &[t.dir.join("send.json")]);
    let status = t.server.stop();
    assert!(status.success(), "ringest exit {status:?}");
}

const STALLS: &str = "ringest_producer_stalls_total{destination=\"kafka\"}";

#[test]
fn a_producer_without_delivery_reports_while_the_broker_answers_is_reported_stalled_once() {
    let _turn = turn();
    // A stand-in for a stuck client: a linger longer than delivery_stall_ms
    // holds every message without a delivery report while the broker
    // answers. The watchdog cannot tell the two apart (so keep
    // delivery_stall_ms well above linger_ms); what it must do is report
    // once, count, keep every message, and log the end.
    let t = Case::start(
        "stall",
        |_| Broker::start("stall", false),
        "logs",
        true,
        "linger_ms = 6000\ndelivery_stall_ms = 1000\n",
    );
    const N: u64 = 2_000;
    run(&mut t.send(N, 1, "send.json", &[]));
    let stalls = t.server.wait_metric(STALLS, 1, Duration::from_secs(30));
    assert_eq!(stalls, 1, "{}", t.server.stderr());
    assert_eq!(t.server.metric(DELIVERED), 0, "still held by the producer");
    let delivered = t.server.wait_metric(DELIVERED, N, Duration::from_secs(60));
    assert_eq!(delivered, N);
    assert_eq!(t.server.metric(STALLS), 1, "reported once");
    let stderr = t.server.stderr();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("kafka producer stalled"))
        .collect();
    assert_eq!(lines.len(), 1, "logged once:\n{stderr}");
    assert!(
        lines[0].contains("destination kafka:")
            && lines[0].contains("messages for topic logs")
            && lines[0].contains("although the brokers answer")
            && lines[0].contains("kept"),
        "names the destination, what it holds and why it is a stall: {}",
        lines[0]
    );
    assert!(
        stderr.contains("kafka producer delivering again after a stall"),
        "and its end:\n{stderr}"
    );
    consume_and_verify(&t.broker, "logs", N, &t.dir, &[t.dir.join("send.json")]);
    let status = t.server.stop();
    assert!(status.success(), "ringest exit {status:?}");
}

#[test]
fn two_nodes_on_127_0_0_2_and_3_write_one_topic_every_message_exactly_once() {
    let _turn = turn();
    let dir = temp_dir("kafka-tier");
    let pki = Pki::generate(&dir.join("pki"));
    let broker = Broker::start("tier", false);
    broker.create_topic("logs", PARTITIONS);
    let mut nodes = Vec::new();
    for ip in ["127.0.0.2", "127.0.0.3"] {
        let node_dir = dir.join(ip);
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let (port, stats) = (free_port(), free_port());
        let cfg = config(&pki, ip, port, stats, &broker, "logs", "key = \"peer\"\n");
        nodes.push((ip, port, Server::start(&node_dir, &cfg)));
    }
    const PER_NODE: u64 = 100_000;
    let loads: Vec<_> = nodes
        .iter()
        .map(|(ip, port, _)| {
            let json = dir.join(format!("send-{ip}.json"));
            let child = loadgen_send(
                format!("{ip}:{port}"),
                &pki,
                // The test server certificate names localhost and 127.0.0.1.
                &[
                    "--count",
                    &PER_NODE.to_string(),
                    "--connections",
                    "4",
                    "--timeout",
                    "30s",
                    "--sni",
                    "localhost",
                ],
                &json,
            )
            .spawn()
            .expect("loadgen");
            (child, json)
        })
        .collect();
    let mut sends = Vec::new();
    for (mut child, json) in loads {
        let status = child.wait().expect("loadgen");
        assert!(status.success(), "loadgen {status:?}");
        sends.push(json);
    }
    for (ip, _, server) in &nodes {
        let d = server.wait_metric(DELIVERED, PER_NODE, Duration::from_secs(180));
        assert_eq!(d, PER_NODE, "node {ip}");
    }
    consume_and_verify(&broker, "logs", 2 * PER_NODE, &dir, &sends);
    for (ip, _, server) in nodes {
        let status = server.stop();
        assert!(status.success(), "node {ip}: ringest exit {status:?}");
    }
}

#[test]
fn sigterm_with_the_broker_down_gives_up_after_the_drain_and_counts_what_kafka_did_not_acknowledge()
{
    let _turn = turn();
    let mut t = Case::start(
        "sigterm",
        |_| Broker::start("sigterm", false),
        "logs",
        true,
        "",
    );
    const FIRST: u64 = 5_000;
    const HELD: u64 = 3_000;
    run(&mut t.send(FIRST, 1, "send1.json", &[]));
    t.server
        .wait_metric(DELIVERED, FIRST, Duration::from_secs(60));
    t.broker.stop();
    run(&mut t.send(HELD, 1, "send2.json", &[]));
    // Every message is with the writer: handed to the producer, none acknowledged.
    t.server.wait_metric(
        "ringest_messages_written_total{source=\"tls\"}",
        FIRST + HELD,
        Duration::from_secs(30),
    );
    assert_eq!(t.server.metric(DELIVERED), FIRST);
    let t0 = Instant::now();
    t.server.signal(libc::SIGTERM);
    // drain_timeout_ms (3 s) + 2 s, then the report.
    let status = t
        .server
        .wait_exit(Duration::from_secs(20))
        .expect("ringest exits after giving up");
    let took = t0.elapsed();
    assert!(
        !status.success(),
        "exit {status:?}: something was not delivered"
    );
    assert!(
        took >= Duration::from_secs(4),
        "waited for the brokers first: {took:?}"
    );
    let stderr = t.server.stderr();
    let held = format!("{HELD} messages");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("not acknowledged by kafka") && l.contains(&held)),
        "the shutdown line counts the {HELD} held messages:\n{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.contains("destination kafka:")
            && l.contains(&format!("{held} ("))
            && l.contains("not written")),
        "the exit report counts them:\n{stderr}"
    );
}

#[test]
fn tls_to_the_brokers_with_a_client_certificate_delivers_every_message() {
    let _turn = turn();
    // The broker's SSL listener requires a client certificate from the test
    // CA, which also signs the broker's certificate.
    let t = Case::start("tls", |pki| Broker::start_tls("tls", pki), "logs", true, "");
    let tls = format!(
        "[destination.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        t.pki.ca.display(),
        t.pki.client_cert.display(),
        t.pki.client_key.display()
    );
    // A second node whose kafka destination goes to the SSL listener.
    let dir = t.dir.join("tls-node");
    std::fs::create_dir_all(&dir).expect("node dir");
    let (port, stats) = (free_port(), free_port());
    let cfg = config(&t.pki, "127.0.0.1", port, stats, &t.broker, "logs", &tls)
        .replace(&t.broker.bootstrap(), &t.broker.tls_bootstrap());
    let server = Server::start(&dir, &cfg);
    const N: u64 = 50_000;
    let send = dir.join("send.json");
    run(&mut loadgen_send(
        format!("127.0.0.1:{port}"),
        &t.pki,
        &[
            "--count",
            &N.to_string(),
            "--connections",
            "2",
            "--timeout",
            "30s",
        ],
        &send,
    ));
    let delivered = server.wait_metric(DELIVERED, N, Duration::from_secs(120));
    assert_eq!(delivered, N, "over TLS:\n{}", server.stderr());
    consume_and_verify(&t.broker, "logs", N, &t.dir, &[send]);
    let status = server.stop();
    assert!(status.success(), "ringest exit {status:?}");
}

/// `key = "host"` next to a json file destination, on a plain TCP source
/// with `parse = "auto"`: RFC 5424 and RFC 3164 frames are keyed by their
/// HOSTNAME, a NILVALUE host and an unparsable frame by the sender's IP (the
/// keys the destination always gave), and the unparsable frame is counted
/// once though the json file and the key both read it.
#[test]
fn host_keys_next_to_a_json_file_are_the_hostname_else_the_sender_and_a_bad_frame_counts_once() {
    let _turn = turn();
    let dir = temp_dir("kafka-host-key");
    // Declared before the server, so dropped after it.
    let broker = Broker::start("host-key", false);
    broker.create_topic("logs", PARTITIONS);
    let (tcp, stats) = (free_port(), free_port());
    let cfg = format!(
        r#"shards = 1
drain_timeout_ms = 3000

[[source]]
name = "tcp"
listen = "127.0.0.1:{tcp}"
transport = "tcp"
framing = "newline"
parse = "auto"

[[destination]]
name = "json"
type = "file"
path = "out.jsonl"
format = "json"
fsync = "never"

[[destination]]
name = "kafka"
type = "kafka"
brokers = ["{bootstrap}"]
topic = "logs"
key = "host"

[stats]
listen = "127.0.0.1:{stats}"
"#,
        bootstrap = broker.bootstrap()
    );
    let server = Server::start(&dir, &cfg);
    let frames = [
        "<38>1 2026-11-30T10:00:00Z web1 sshd 1 - - rfc5424",
        "<13>Nov 30 10:00:01 db2 cron[7]: rfc3164",
        "<38>1 2026-11-30T10:00:02Z - sshd 1 - - no host",
        "no header at all",
    ];
    let mut s = std::net::TcpStream::connect(("127.0.0.1", tcp)).expect("connect");
    for f in frames {
        std::io::Write::write_all(&mut s, format!("{f}\n").as_bytes()).expect("write");
    }
    drop(s);
    let n = frames.len() as u64;
    let delivered = server.wait_metric(DELIVERED, n, Duration::from_secs(60));
    assert_eq!(delivered, n, "{}", server.stderr());
    let c = broker.consume(
        "logs",
        PARTITIONS,
        n,
        Duration::from_secs(60),
        &dir.join("consumed.log"),
    );
    let mut keys: Vec<(String, usize)> = c.keys.iter().map(|(k, p)| (k.clone(), p.len())).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("127.0.0.1".to_string(), 2),
            ("db2".to_string(), 1),
            ("web1".to_string(), 1)
        ]
    );
    let json = std::fs::read_to_string(dir.join("out.jsonl")).expect("json file");
    assert_eq!(json.lines().count(), frames.len());
    assert_eq!(
        server.metric("ringest_parse_errors_total{source=\"tcp\",reason=\"no_pri\"}"),
        1,
        "{}",
        server.metrics()
    );
    let status = server.stop();
    assert!(status.success(), "ringest exit {status:?}");
}

/// Batches go to one partition per produce call once the topic's layout is
/// known; a keyed message must still land where librdkafka's partitioner
/// puts its key, in order. Two kafka destinations, each with its topic and
/// partition count: "kafka" with the default partitioner
/// (consistent_random) on 4 partitions, "kafka-m" with murmur2_random on
/// 3. A plain producer that leaves partitioning to librdkafka writes one
/// record per key to a reference topic of each; every key's records must
/// all be in its reference partition, each host's in the order sent. The
/// producer's queue is small and the messages large, so the queue fills
/// in the middle of a call's partitions: what it did not take goes again,
/// in order.
#[test]
fn keyed_messages_land_in_the_partition_librdkafkas_partitioner_gives_their_key_in_order() {
    let _turn = turn();
    let dir = temp_dir("kafka-partitions");
    let broker = Broker::start("partitions", false);
    // (destination, topic, reference topic, partitions, partitioner)
    let cases = [
        ("kafka", "logs", "ref", 4, "consistent_random"),
        ("kafka-m", "logs-m", "ref-m", 3, "murmur2_random"),
    ];
    let mut destinations = String::new();
    for (name, topic, reference, partitions, partitioner) in cases {
        broker.create_topic(topic, partitions);
        broker.create_topic(reference, partitions);
        destinations += &format!(
            "[[destination]]\nname = \"{name}\"\ntype = \"kafka\"\nbrokers = [\"{}\"]\n\
             topic = \"{topic}\"\nkey = \"host\"\nproducer_queue_max_bytes = 1048576\n\
             [destination.properties]\n\"partitioner\" = \"{partitioner}\"\n\n",
            broker.bootstrap()
        );
    }
    let (tcp, stats) = (free_port(), free_port());
    let cfg = format!(
        r#"shards = 2
drain_timeout_ms = 3000

[[source]]
name = "tcp"
listen = "127.0.0.1:{tcp}"
transport = "tcp"
framing = "newline"
parse = "auto"

{destinations}[stats]
listen = "127.0.0.1:{stats}"
"#
    );
    let server = Server::start(&dir, &cfg);
    // The layout of each topic known before any message: every batch goes
    // through the one-partition-per-call path.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (_, topic, _, partitions, partitioner) in cases {
        let line = format!("kafka topic {topic} has {partitions} partitions");
        while !server.stderr().contains(&line) {
            assert!(
                Instant::now() < deadline,
                "no \"{line}\" in 30 s:\n{}",
                server.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            server
                .stderr()
                .contains(&format!("(partitioner {partitioner})")),
            "{}",
            server.stderr()
        );
    }
    const HOSTS: usize = 40;
    const PER_HOST: usize = 250;
    let hosts: Vec<String> = (0..HOSTS).map(|h| format!("host-{h}")).collect();
    // 1 KiB messages: 10 MB through a 1 MiB producer queue.
    let pad = "p".repeat(1_000);
    // Two connections, each host's lines on one of them, interleaved with
    // the other hosts' so that every produce call holds many keys.
    let mut conns: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", tcp)).expect("connect"))
        .collect();
    for seq in 0..PER_HOST {
        let mut lines = [String::new(), String::new()];
        for (h, host) in hosts.iter().enumerate() {
            lines[h % 2] +=
                &format!("<13>1 2026-11-30T10:00:00Z {host} app - - - {pad} {host} seq={seq}\n");
        }
        for (c, text) in conns.iter_mut().zip(&lines) {
            std::io::Write::write_all(c, text.as_bytes()).expect("write");
        }
    }
    drop(conns);
    let n = (HOSTS * PER_HOST) as u64;
    for (name, topic, reference, partitions, partitioner) in cases {
        let metric = format!("ringest_delivered_messages_total{{destination=\"{name}\"}}");
        let delivered = server.wait_metric(&metric, n, Duration::from_secs(120));
        assert_eq!(delivered, n, "{name}: {}", server.stderr());
        let waits = format!("ringest_producer_queue_full_waits_total{{destination=\"{name}\"}}");
        assert!(server.metric(&waits) > 0, "{name}: the queue never filled");
        broker.produce_keyed(reference, partitioner, &hosts);
        let want = broker.consume(
            reference,
            partitions,
            HOSTS as u64,
            Duration::from_secs(60),
            &dir.join(format!("consumed-{reference}.log")),
        );
        let out = dir.join(format!("consumed-{topic}.log"));
        let got = broker.consume(topic, partitions, n, Duration::from_secs(120), &out);
        assert_eq!(got.records, n, "{topic}: {got:?}");
        assert_eq!(got.keys.len(), HOSTS, "{topic}: every host a key");
        for host in &hosts {
            let want = want.keys.get(host).expect("reference record")[0];
            let parts = &got.keys[host];
            assert!(
                parts.iter().all(|p| *p == want),
                "{topic}: {host}'s records in partitions {:?}, librdkafka puts its key in {want}",
                parts.iter().collect::<std::collections::BTreeSet<_>>()
            );
        }
        assert_eq!(
            got.per_partition.len(),
            partitions as usize,
            "{topic}: {HOSTS} hosts over every partition: {:?}",
            got.per_partition
        );
        // Read partition by partition, each in offset order: each host's
        // lines in the order sent.
        let text = std::fs::read_to_string(&out).expect("consumed");
        let mut next = std::collections::HashMap::<&str, usize>::new();
        for line in text.lines() {
            let mut words = line.rsplit(' ');
            let seq = words.next().and_then(|w| w.strip_prefix("seq="));
            let host = words.next();
            let (Some(seq), Some(host)) = (seq, host) else {
                panic!("{topic}: not a test line: {line:?}");
            };
            let expect = next.entry(host).or_insert(0);
            assert_eq!(seq, expect.to_string(), "{topic}: {host} out of order");
            *expect += 1;
        }
        assert!(next.values().all(|c| *c == PER_HOST), "{next:?}");
    }
    let status = server.stop();
    assert!(status.success(), "ringest exit {status:?}");
}
