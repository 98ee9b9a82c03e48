//! End-to-end: a stuck destination pauses only the sources that feed it.
//!
//! One shard, two sources with no destination in common, so two
//! destination groups: source `a` (TCP) feeds a forward destination whose
//! server does not exist (every connect is refused, so its writer retries
//! in place), source `b` (mutual TLS) feeds a file. Rings are tiny, so
//! `a`'s group fills at once and `a`'s connections are paused. Meanwhile
//! `b` must keep going on the same shard: new mutual-TLS handshakes
//! complete, its messages are received and written (loadgen verify: every
//! one exactly once). Then SIGTERM: the process exits within the bound
//! below, with status 2 and the exit report naming the forward destination
//! and every message of `a` it had read.
//!
//! The first test has one connection on `a`. On a build without
//! destination groups the shard has one batch and one ring for both
//! sources, so `b` is paused with `a` and it fails at "source b's messages
//! are written". The second has many busy connections on `a` and few
//! receive buffers: each paused connection holds the completions it had
//! in hand, and on a build where those keep their provided buffers without
//! a cap per group, `a` holds every buffer of the shard, `b`'s receives
//! find none, and it fails at "source b's sender did not finish".

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use e2e::loadgen::{loadgen_send, loadgen_verify, send_tcp};
use e2e::pki::Pki;
use e2e::server::{free_port, temp_dir, Server};

/// drain_timeout_ms of the config below.
const DRAIN_TIMEOUT_MS: u64 = 1_000;
/// ringest's `writer::GIVE_UP_AFTER_DRAIN_MS`: a destination still failing
/// this long past `drain_timeout_ms` after SIGTERM is given up.
const GIVE_UP_AFTER_DRAIN_MS: u64 = ringest::writer::GIVE_UP_AFTER_DRAIN_MS;
/// After the give-up, the stuck group's writer counts what is left and
/// returns at once; a shard stops at most 1 s after `drain_timeout_ms`
/// (before the give-up), so 2 s covers that and a loaded test machine.
const EXIT_SLACK_MS: u64 = 2_000;
/// Messages of source `b`, over two connections.
const B_MESSAGES: u64 = 5_000;

/// The config; `tuning`: more top-level keys.
fn config(pki: &Pki, a: u16, b: u16, closed: u16, stats: u16, tuning: &str) -> String {
    format!(
        r#"shards = 1
{tuning}
drain_timeout_ms = {DRAIN_TIMEOUT_MS}
ring_capacity_batches = 2
batch_max_bytes = 4096
max_queue_delay_ms = 0

[[source]]
name = "a"
listen = "127.0.0.1:{a}"
transport = "tcp"
destinations = ["up"]

[[source]]
name = "b"
listen = "127.0.0.1:{b}"
transport = "tls"
destinations = ["messages"]
[source.tls]
cert_file = "{}"
key_file = "{}"
ca_file = "{}"
peer_verify = "required-trusted"

[[destination]]
name = "up"
type = "forward"
servers = ["127.0.0.1:{closed}"]
transport = "tcp"
reconnect_min_ms = 50
reconnect_max_ms = 200

[[destination]]
name = "messages"
type = "file"
path = "data/b.log"
fsync = "never"

[stats]
listen = "127.0.0.1:{stats}"
"#,
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    )
}

/// Waits (bounded) for a child we started to exit.
fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Kills a child we started (by its own handle) and reaps it.
fn end_child(mut child: Child) {
    if let Ok(None) = child.try_wait() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// The ports of sources a and b.
struct Ports {
    a: u16,
    b: u16,
}

/// Starts the server of the config above (with `tuning`), in a new
/// temporary folder named `name`.
fn start(name: &str, tuning: &str) -> (std::path::PathBuf, Pki, Server, Ports) {
    let dir = temp_dir(name);
    let pki = Pki::generate(&dir.join("pki"));
    let (a, b, closed, stats) = (free_port(), free_port(), free_port(), free_port());
    let server = Server::start(&dir, &config(&pki, a, b, closed, stats, tuning));
    (dir, pki, server, Ports { a, b })
}

/// Waits (bounded) until `metric` reaches `want`: it must be exactly that.
fn assert_reaches(server: &Server, metric: &str, want: u64, what: &str) {
    let got = server.wait_metric(metric, want, Duration::from_secs(20));
    assert_eq!(
        got,
        want,
        "{what}:\n{}\n{}",
        server.metrics(),
        server.stderr()
    );
}

/// Waits until source `a` has been paused (its group is stuck), and
/// returns how many of its messages were received before.
fn wait_until_a_is_paused(server: &Server) -> u64 {
    let paused = server.wait_metric(
        "ringest_backpressure_pauses_total{source=\"a\"}",
        1,
        Duration::from_secs(20),
    );
    assert!(
        paused >= 1,
        "source a was never paused:\n{}",
        server.stderr()
    );
    let a_received = server.metric("ringest_messages_received_total{source=\"a\"}");
    assert!(a_received > 0, "source a sent nothing before its pause");
    a_received
}

/// Source b on the same shard, while a stays paused: new mutual-TLS
/// handshakes (loadgen's two connections), every message received and
/// written within a bounded time. Returns loadgen's summary and b's file.
fn b_is_received_and_written(
    dir: &std::path::Path,
    pki: &Pki,
    server: &Server,
    b: u16,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let b_json = dir.join("send-b.json");
    let mut b_sender = loadgen_send(
        format!("127.0.0.1:{b}"),
        pki,
        &["--connections", "2", "--count", &B_MESSAGES.to_string()],
        &b_json,
    )
    .spawn()
    .expect("run loadgen for source b");
    let b_status = wait_child(&mut b_sender, Duration::from_secs(30));
    if b_status.is_none() {
        end_child(b_sender);
    }
    assert!(
        b_status.is_some_and(|s| s.success()),
        "source b's sender (handshakes, then {B_MESSAGES} messages) did not finish: {b_status:?}\n{}\n{}",
        server.metrics(),
        server.stderr()
    );
    assert_reaches(
        server,
        "ringest_messages_written_total{source=\"b\"}",
        B_MESSAGES,
        "source b's messages are written while source a is paused",
    );
    let b_file = dir.join("data/b.log");
    let report = loadgen_verify(&b_json, &[b_file.to_str().expect("utf-8 path")]);
    assert!(
        report.contains(&format!(
            "received {B_MESSAGES}, missing 0, duplicated 0, corrupted 0"
        )),
        "{report}"
    );
    // (b may pause briefly behind its own writer with rings this small;
    // what matters is that it resumes while a stays stuck.)
    (b_json, b_file)
}

/// a is still stuck: nothing of it written, nothing more read than
/// `a_received`, its sender still blocked.
fn a_is_still_stuck(server: &Server, a_sender: &mut Child, a_received: u64) {
    let metrics = server.metrics();
    let metric = |p: &str| e2e::server::metric_in(&metrics, p);
    assert_eq!(
        metric("ringest_messages_written_total{source=\"a\"}"),
        0,
        "{metrics}"
    );
    assert_eq!(
        metric("ringest_messages_received_total{source=\"a\"}"),
        a_received,
        "a paused source reads nothing more:\n{metrics}"
    );
    assert!(
        matches!(a_sender.try_wait(), Ok(None)),
        "source a's sender is blocked by the pause"
    );
    let log = server.stderr();
    assert!(
        log.contains("2 destination groups for 1 shards"),
        "one group per source, as they share no destination:\n{log}"
    );
}

/// SIGTERM: b's group closes at once; a's destination is tried until
/// drain_timeout_ms + GIVE_UP_AFTER_DRAIN_MS, then given up and counted
/// (`a_received` messages); b's file still holds every message once.
fn sigterm_gives_up_on_a_within_the_bound(
    mut server: Server,
    a_sender: Child,
    a_received: u64,
    (b_json, b_file): (std::path::PathBuf, std::path::PathBuf),
) {
    let stopped = Instant::now();
    server.signal(libc::SIGTERM);
    let bound = Duration::from_millis(DRAIN_TIMEOUT_MS + GIVE_UP_AFTER_DRAIN_MS + EXIT_SLACK_MS);
    let status = server.wait_exit(bound + Duration::from_secs(10));
    let took = stopped.elapsed();
    end_child(a_sender);
    let log = server.stderr();
    let status = status.unwrap_or_else(|| panic!("no exit {took:?} after SIGTERM:\n{log}"));
    assert!(
        took <= bound,
        "exit {took:?} after SIGTERM, bound {bound:?}:\n{log}"
    );
    assert!(
        took >= Duration::from_millis(DRAIN_TIMEOUT_MS + GIVE_UP_AFTER_DRAIN_MS),
        "the failing destination is tried until its give-up ({took:?}):\n{log}"
    );
    assert_eq!(status.code(), Some(2), "not everything delivered:\n{log}");
    let exit_report = log
        .lines()
        .find(|l| l.contains("not everything is safely written"))
        .unwrap_or_else(|| panic!("no exit report:\n{log}"));
    assert!(
        exit_report.contains(&format!("destination up: {a_received} messages")),
        "the exit report names every message of a that was read ({a_received}):\n{log}"
    );
    assert!(
        !exit_report.contains("destination messages"),
        "b's destination lost nothing:\n{log}"
    );
    let report = loadgen_verify(&b_json, &[b_file.to_str().expect("utf-8 path")]);
    assert!(report.contains("missing 0, duplicated 0"), "{report}");
}

#[test]
fn a_stuck_destination_pauses_only_its_own_sources_and_sigterm_still_ends_the_process() {
    let (dir, pki, server, ports) = start("isolation", "");
    // Source a: far more than the tiny rings and the failing writer's
    // round hold; its sender blocks once a is paused.
    let mut a_sender = send_tcp(ports.a, 200_000, 1, &[], &dir.join("send-a.json"))
        .spawn()
        .expect("run loadgen for source a");
    let a_received = wait_until_a_is_paused(&server);
    let b = b_is_received_and_written(&dir, &pki, &server, ports.b);
    a_is_still_stuck(&server, &mut a_sender, a_received);
    sigterm_gives_up_on_a_within_the_bound(server, a_sender, a_received, b);
}

/// Connections of source a, each busy: more than the shard has receive
/// buffers, so each holding one would leave none for b.
const A_CONNECTIONS: u64 = 20;

/// Many busy connections of the stuck group, few receive buffers: the
/// stuck group keeps at most its share of the shard's buffers (the rest of
/// what its paused connections had in hand is copied out), so b's
/// connections still find buffers: handshakes complete and every message
/// is written. a reads nothing more, and SIGTERM ends as above.
#[test]
fn many_busy_connections_of_a_stuck_destination_leave_receive_buffers_for_the_others() {
    let (dir, pki, server, ports) = start(
        "isolation-buffers",
        "recv_buffers_per_shard = 16\nrecv_buffer_bytes = 4096",
    );
    let mut a_sender = send_tcp(
        ports.a,
        2_000_000,
        A_CONNECTIONS as u32,
        &[],
        &dir.join("send-a.json"),
    )
    .spawn()
    .expect("run loadgen for source a");
    assert_reaches(
        &server,
        "ringest_connections_active{source=\"a\"}",
        A_CONNECTIONS,
        "source a's connections are all open",
    );
    wait_until_a_is_paused(&server);
    // Every connection of a has been sending all along: let whatever each
    // had in flight land (in held buffers or copies) before b starts.
    std::thread::sleep(Duration::from_secs(1));
    let a_received = server.metric("ringest_messages_received_total{source=\"a\"}");
    let b = b_is_received_and_written(&dir, &pki, &server, ports.b);
    a_is_still_stuck(&server, &mut a_sender, a_received);
    sigterm_gives_up_on_a_within_the_bound(server, a_sender, a_received, b);
}
