//! End-to-end: fair service under back-pressure (issue 12). Eight plain-TCP
//! connections send as fast as they can, for a bounded time, to one shard
//! whose writer is the bottleneck: it fdatasyncs after every write round
//! (`fsync = "batch"`) of small batches, with its queue bounded at 1 ms, so
//! the shard's lane is held back over and over and its receive credit is
//! in force (the kernel may fill only a few provided buffers). Then each
//! connection must have had a fair share of what was written, counted from
//! the output file (each loadgen message names its connection), part-way
//! through the run while all eight still send.
//!
//! Plain TCP rather than mutual TLS: the shard then does the least work
//! per byte, so the writer (the disk), not the debug build's decryption
//! nor the client, is the limit. One shard, so all eight compete for its
//! buffers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::loadgen::loadgen_verify;
use e2e::loopback;
use e2e::server::{bin, free_port, metric_in, temp_dir, Server};

const CONNECTIONS: u32 = 8;
/// How long loadgen sends. The counts are taken at `SNAPSHOT_AFTER`,
/// before its end: then every connection still sends, and what waits in
/// the sockets' buffers (written after the end whatever the order of
/// service) does not pad a starved connection's count.
const SEND_FOR: Duration = Duration::from_secs(6);
const SNAPSHOT_AFTER: Duration = Duration::from_secs(5);
/// Bounds loadgen's clean close and ringest's writing of the rest.
const CLOSE_WAIT: Duration = Duration::from_secs(30);
/// Larger messages: fewer of them for the debug builds to frame and
/// verify, as many bytes for the writer.
const MESSAGE_BYTES: &str = "1000";

fn config(port: u16, stats: u16) -> String {
    format!(
        r#"shards = 1
writers = 1
max_queue_delay_ms = 1
ring_capacity_batches = 2
batch_max_bytes = 4096
recv_buffer_bytes = 16384
recv_buffers_per_shard = 64
drain_timeout_ms = 10000

[[source]]
name = "tcp"
listen = "{}"
transport = "tcp"
framing = "octet-counted"

[[destination]]
name = "messages"
type = "file"
path = "data/messages.log"
io = "buffered"
fsync = "batch"

[stats]
listen = "{}"
"#,
        loopback(port),
        loopback(stats)
    )
}

/// Messages per loadgen connection in the whole lines of `path` so far
/// (the writer may be half-way through a line at its end), read a line at
/// a time (the file is some 100 MB). Each line has the marker
/// `lg=RUN/CONN/SEQ`; a line without one fails the test.
fn written_per_connection(path: &Path) -> BTreeMap<u32, u64> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = BufReader::new(file);
    let mut per: BTreeMap<u32, u64> = BTreeMap::new();
    let mut line = Vec::new();
    for n in 1.. {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).expect("read output");
        if read == 0 || line.last() != Some(&b'\n') {
            // The end, or a line still being written.
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let marker = text
            .split(' ')
            .find_map(|f| f.strip_prefix("lg="))
            .unwrap_or_else(|| panic!("line {n}: no loadgen marker: {text}"));
        let conn = marker
            .split('/')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("line {n}: bad marker {marker}"));
        *per.entry(conn).or_insert(0) += 1;
    }
    per
}

/// Waits (bounded) for loadgen to exit; it must succeed.
fn wait_loadgen(mut child: Child, limit: Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("loadgen wait") {
            assert!(status.success(), "loadgen send failed: {status}");
            return;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadgen send did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn eight_senders_share_a_writer_bound_shard_fairly() {
    let dir = temp_dir("fairness");
    let (port, stats) = (free_port(), free_port());
    let server = Server::start(&dir, &config(port, stats));
    let out = server.dir.join("data/messages.log");
    let send_json = dir.join("send.json");
    let loadgen = Command::new(bin("loadgen"))
        .args(["send", "--tcp", "--target"])
        .arg(loopback(port).to_string())
        .args(["--connections", &CONNECTIONS.to_string()])
        .args(["--duration", &format!("{}s", SEND_FOR.as_secs())])
        .args(["--size", MESSAGE_BYTES, "--json", "--quiet"])
        // At the end each connection waits for ringest to read all it sent
        // (the writer's pace) before it sees the EOF of a clean close.
        .args(["--close-timeout", &format!("{}s", CLOSE_WAIT.as_secs())])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&send_json).expect("send json"))
        .spawn()
        .expect("run loadgen");

    std::thread::sleep(SNAPSHOT_AFTER);
    let per = written_per_connection(&out);
    let metrics = server.metrics();
    let held = metric_in(
        &metrics,
        "ringest_backpressure_pauses_total{source=\"tcp\"}",
    );
    let credit = metric_in(&metrics, "ringest_recv_credit_entries_total");
    let cancels = metric_in(&metrics, "ringest_recv_credit_cancels_total");
    // A connection with nothing written counts, as 0.
    let counts: Vec<u64> = (0..CONNECTIONS)
        .map(|c| per.get(&c).copied().unwrap_or(0))
        .collect();
    eprintln!(
        "written per connection after {SNAPSHOT_AFTER:?}: {per:?}; pauses {held}, \
         credit entries {credit}, multishots cancelled {cancels}"
    );

    wait_loadgen(loadgen, SEND_FOR + CLOSE_WAIT + Duration::from_secs(5));
    let sent_text = std::fs::read_to_string(&send_json).expect("send json");
    let sent: serde_json::Value = serde_json::from_str(&sent_text).expect("send json parses");
    let sent = sent["sent"].as_u64().expect("sent count");
    let written = server.wait_metric(
        "ringest_messages_written_total{source=\"tcp\"",
        sent,
        CLOSE_WAIT,
    );
    assert_eq!(written, sent, "every message sent is written");
    assert!(server.stop().success(), "clean exit");
    // Cancelling receives loses nothing: every message exactly once.
    let report = loadgen_verify(&send_json, &[out.to_str().expect("UTF-8 path")]);
    assert!(
        report.contains(&format!(
            "received {sent}, missing 0, duplicated 0, corrupted 0"
        )),
        "{report}"
    );

    // The test is about service while the writer is the bottleneck: the
    // lane was held back and the receive credit came into force.
    assert!(held > 0, "the lane was never held back:\n{metrics}");
    assert!(
        credit > 0,
        "the receive credit never came into force:\n{metrics}"
    );
    assert!(
        per.keys().all(|&c| c < CONNECTIONS),
        "lines of connections loadgen did not open: {per:?}"
    );
    let (min, max) = (
        counts.iter().copied().min().unwrap_or(0),
        counts.iter().copied().max().unwrap_or(0),
    );
    // At least a quarter of the largest share. Served in turn, the eight
    // were within 8% of each other in every run (e.g. 34,846..36,177
    // messages each after 5 s); with multishot receives under the credit,
    // as before b36384f, two to four connections had all of it and the
    // others none (e.g. [527, 0, 2089, 0, 1521, 0, 146587, 0]): a quarter
    // leaves room for a slow debug build on a busy machine and still fails
    // that by far.
    assert!(
        min * 4 >= max,
        "unfair service: per connection {counts:?} (min {min}, max {max})"
    );
    // Passed: the output (some 100 MB) goes; a failure keeps it to look at.
    let _ = std::fs::remove_dir_all(&dir);
}
