//! End-to-end: the real `loadgen` binary, sink and sender on an ephemeral
//! loopback port, with a PKI made by rcgen in the test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_loadgen");

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let p = std::env::temp_dir().join(format!("loadgen-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// CA, server (localhost, 127.0.0.1) and client certificates, plus a client
/// certificate from another CA ("stranger"): the workspace's test PKI.
fn make_pki(dir: &TempDir) {
    let pki = testkit::Pki::generate(&dir.0);
    std::fs::rename(&pki.rogue_cert, dir.path("stranger.pem")).unwrap();
    std::fs::rename(&pki.rogue_key, dir.path("stranger.key")).unwrap();
}

struct Sink {
    child: Child,
    addr: String,
    stdout: BufReader<std::process::ChildStdout>,
}

/// Starts `loadgen sink` on 127.0.0.1:0 and reads the bound address.
fn start_sink(extra: &[&str]) -> Sink {
    let mut child = Command::new(BIN)
        .args([
            "sink",
            "--listen",
            "127.0.0.1:0",
            "--exit-after-idle-ms",
            "1000",
            "--duration",
            "60s",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start sink");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).expect("listening line");
    assert_eq!(v["event"], "listening");
    let addr = v["addr"].as_str().unwrap().to_string();
    Sink {
        child,
        addr,
        stdout,
    }
}

/// Waits (bounded) for the sink to exit by itself and returns its summary.
fn sink_summary(mut sink: Sink) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if sink.child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = sink.child.kill();
            panic!("sink did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut last = String::new();
    for line in sink.stdout.lines() {
        last = line.unwrap();
    }
    let v: serde_json::Value = serde_json::from_str(&last).expect("summary line");
    assert_eq!(v["event"], "summary");
    v
}

/// Runs `loadgen send` and returns (exit code, JSON report).
fn send(args: &[&str]) -> (i32, serde_json::Value) {
    send_for(args, "20s")
}

/// `send` with `--duration`, for runs that hold connections until it ends.
fn send_for(args: &[&str], duration: &str) -> (i32, serde_json::Value) {
    let out = Command::new(BIN)
        .arg("send")
        .args(args)
        .args(["--json", "--quiet", "--duration", duration])
        .output()
        .expect("run send");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "send JSON: {e}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn verify(args: &[&Path], extra: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(BIN)
        .arg("verify")
        .args(args)
        .args(extra)
        .arg("--json")
        .output()
        .expect("run verify");
    let v = serde_json::from_slice(&out.stdout).expect("verify JSON");
    (out.status.code().unwrap_or(-1), v)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn mutual_tls_octet_counted_count_matches_sink_and_verifies() {
    let dir = TempDir::new("mtls");
    make_pki(&dir);
    let (ca, cert, key) = (
        dir.path("ca.pem"),
        dir.path("server.pem"),
        dir.path("server.key"),
    );
    let out = dir.path("received.log");
    let sink = start_sink(&[
        "--cert",
        s(&cert),
        "--key",
        s(&key),
        "--ca",
        s(&ca),
        "--output",
        s(&out),
    ]);
    let (code, report) = send(&[
        "--target",
        &sink.addr,
        "--ca",
        s(&ca),
        "--sni",
        "localhost",
        "--cert",
        s(&dir.path("client.pem")),
        "--key",
        s(&dir.path("client.key")),
        "--connections",
        "5",
        "--threads",
        "2",
        "--count",
        "20000",
        "--cipher",
        "TLS13_AES_128_GCM_SHA256",
    ]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["sent"], 20000);
    assert_eq!(report["connections_established"], 5);
    assert_eq!(report["tls_version"], "TLSv1_3");
    assert_eq!(report["cipher"], "TLS13_AES_128_GCM_SHA256");
    assert_eq!(report["errors"], serde_json::json!({}));
    let summary = sink_summary(sink);
    assert_eq!(summary["messages"], 20000, "{summary}");
    assert_eq!(summary["handshakes"], 5);
    assert_eq!(
        summary["close_notify_received"], 5,
        "clean close: {summary}"
    );
    assert_eq!(summary["errors"], serde_json::json!({}), "{summary}");

    // The sink's output verifies against what send reported.
    let send_json = dir.path("send.json");
    std::fs::write(&send_json, report.to_string()).unwrap();
    let (code, v) = verify(&[&out], &["--expect-json", s(&send_json)]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["received"], 20000);
    assert_eq!(v["missing"], 0);

    // And fails once a line is removed, one duplicated and one altered.
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.remove(100);
    let dup = lines[200].clone();
    lines.push(dup);
    let mut altered = lines[300].clone().into_bytes();
    let at = altered.len() - 5;
    altered[at] = if altered[at] == b'x' { b'y' } else { b'x' };
    lines[300] = String::from_utf8(altered).unwrap();
    let damaged = dir.path("damaged.log");
    std::fs::write(&damaged, lines.join("\n") + "\n").unwrap();
    let (code, v) = verify(&[&damaged], &["--expect-json", s(&send_json)]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        (
            v["missing"].as_u64(),
            v["duplicated"].as_u64(),
            v["corrupted"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{v}"
    );
}

#[test]
fn newline_framing_over_tls_and_plain_tcp() {
    let dir = TempDir::new("newline");
    make_pki(&dir);
    let out = dir.path("received.log");
    let sink = start_sink(&[
        "--cert",
        s(&dir.path("server.pem")),
        "--key",
        s(&dir.path("server.key")),
        "--output",
        s(&out),
        "--framing",
        "newline",
    ]);
    let (code, report) = send(&[
        "--target",
        &sink.addr,
        "--connections",
        "3",
        "--count",
        "3000",
        "--framing",
        "newline",
        "--format",
        "rfc3164",
        "--records-per-write",
        "1",
    ]);
    assert_eq!(code, 0, "{report}");
    let summary = sink_summary(sink);
    assert_eq!(summary["messages"], 3000, "{summary}");
    let (code, v) = verify(
        &[&out],
        &["--expect-count", "3000", "--expect-connections", "3"],
    );
    assert_eq!(code, 0, "{v}");

    let out = dir.path("tcp.log");
    let sink = start_sink(&["--tcp", "--output", s(&out)]);
    let (code, report) = send(&[
        "--target",
        &sink.addr,
        "--tcp",
        "--connections",
        "2",
        "--count",
        "999",
        "--sd",
    ]);
    assert_eq!(code, 0, "{report}");
    let summary = sink_summary(sink);
    assert_eq!(summary["messages"], 999, "{summary}");
    let (code, v) = verify(
        &[&out],
        &[
            "--expect-count",
            "999",
            "--expect-connections",
            "2",
            "--size",
            "300",
        ],
    );
    assert_eq!(code, 0, "{v}");
}

#[test]
fn refused_client_certificates_are_reported_with_the_servers_alert() {
    let dir = TempDir::new("refused");
    make_pki(&dir);
    let sink = start_sink(&[
        "--cert",
        s(&dir.path("server.pem")),
        "--key",
        s(&dir.path("server.key")),
        "--ca",
        s(&dir.path("ca.pem")),
    ]);
    for (cert, version, alert) in [
        ("stranger", "1.3", "UnknownCA"),
        ("stranger", "1.2", "UnknownCA"),
        ("", "1.3", "CertificateRequired"),
    ] {
        let mut args = vec![
            "--target",
            &sink.addr,
            "--connections",
            "2",
            "--count",
            "100",
            "--tls-version",
            version,
        ];
        let (c, k) = (
            dir.path(&format!("{cert}.pem")),
            dir.path(&format!("{cert}.key")),
        );
        if !cert.is_empty() {
            args.extend(["--cert", s(&c), "--key", s(&k)]);
        }
        let (code, report) = send(&args);
        assert_eq!(code, 1, "{report}");
        assert_eq!(report["sent"], 0, "nothing counted as sent: {report}");
        let key = format!("handshake_refused: received fatal alert: {alert}");
        assert_eq!(report["errors"][&key], 2, "{report}");
    }
    let summary = sink_summary(sink);
    assert_eq!(summary["messages"], 0);
}

/// `--source-addrs`: held connections come from each listed loopback
/// address in turn (the peer addresses a plain listener sees), and a
/// non-loopback source is refused before anything connects.
#[test]
fn hold_idle_spreads_connections_over_source_addresses() {
    use std::collections::BTreeMap;
    use std::net::{IpAddr, TcpListener};

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    const HELD: usize = 6;
    let acceptor = std::thread::spawn(move || {
        let mut peers: BTreeMap<IpAddr, usize> = BTreeMap::new();
        let mut streams = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while streams.len() < HELD && Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, peer)) => {
                    *peers.entry(peer.ip()).or_default() += 1;
                    streams.push(stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
        // Held until loadgen closes them: its FIN is answered by this drop.
        for mut st in streams {
            st.set_nonblocking(false).unwrap();
            st.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let _ = std::io::Read::read_to_end(&mut st, &mut Vec::new());
        }
        peers
    });
    let (code, r) = send_for(
        &[
            "--target",
            &target,
            "--tcp",
            "--hold-idle",
            &HELD.to_string(),
            "--source-addrs",
            "127.0.0.2,127.0.0.3",
        ],
        "1s",
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["idle_connections"], HELD, "{r}");
    assert_eq!(
        r["source_addrs"],
        serde_json::json!(["127.0.0.2", "127.0.0.3"])
    );
    let peers = acceptor.join().unwrap();
    let want: BTreeMap<IpAddr, usize> = [
        ("127.0.0.2".parse().unwrap(), HELD / 2),
        ("127.0.0.3".parse().unwrap(), HELD / 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(peers, want, "peer addresses the listener saw");

    let (code, stderr) = send_raw(&[
        "--target",
        &target,
        "--tcp",
        "--hold-idle",
        "2",
        "--source-addrs",
        "10.0.0.1",
    ]);
    assert_eq!(code, 2, "a non-loopback source is a bad argument: {stderr}");
    assert!(stderr.contains("not in 127.0.0.0/8"), "{stderr}");
}

/// Whether this process may raise its hard open-file limit
/// (CAP_SYS_RESOURCE in its effective set; root in a container often lacks
/// it). loadgen inherits the same capabilities.
fn may_raise_hard_limit() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).expect("CapEff is hex"))
        .expect("CapEff line");
    eff & (1 << CAP_SYS_RESOURCE) != 0
}

/// `--hold-idle 300` started with a hard open-file limit of 256: 300
/// connections and loadgen's margin do not fit. With CAP_SYS_RESOURCE
/// loadgen raises the limit past the hard one (ringest::fd_limit::raise_to)
/// and holds every connection; without it, it says the limit is too low
/// and connects nothing. Either way, one of the two must happen.
#[test]
fn hold_idle_raises_the_open_file_limit_past_the_hard_one_when_privileged() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const HELD: usize = 300;
    const HARD: u64 = 256;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut streams = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while streams.len() < HELD && Instant::now() < deadline && !done.load(Ordering::Acquire)
            {
                match listener.accept() {
                    Ok((stream, _)) => streams.push(stream),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
            let accepted = streams.len();
            // Held until loadgen closes them.
            for mut st in streams {
                st.set_nonblocking(false).unwrap();
                st.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let _ = std::io::Read::read_to_end(&mut st, &mut Vec::new());
            }
            accepted
        })
    };
    // prlimit (util-linux) sets the limits loadgen starts with.
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={HARD}:{HARD}"))
        .arg(BIN)
        .arg("send")
        .args([
            "--target",
            &target,
            "--tcp",
            "--hold-idle",
            &HELD.to_string(),
        ])
        .args(["--json", "--quiet", "--duration", "2s"]);
    let out = cmd
        .output()
        .expect("run prlimit (util-linux) with loadgen send");
    done.store(true, Ordering::Release);
    let accepted = acceptor.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if may_raise_hard_limit() {
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("send JSON");
        assert_eq!(r["idle_connections"], HELD, "{r}");
        assert_eq!(accepted, HELD);
    } else {
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "{HELD} connections need more open files than the limit of {HARD} allows"
            )),
            "{stderr}"
        );
        assert_eq!(accepted, 0, "nothing connects");
    }
}

/// Runs `loadgen send` and returns its exit status and stderr.
fn send_raw(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("send")
        .args(args)
        .args(["--quiet", "--duration", "1s"])
        .output()
        .expect("run send");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn handshake_only_hold_idle_and_rate() {
    let dir = TempDir::new("modes");
    make_pki(&dir);
    let sink = start_sink(&[
        "--cert",
        s(&dir.path("server.pem")),
        "--key",
        s(&dir.path("server.key")),
    ]);
    let (code, r) = send(&[
        "--target",
        &sink.addr,
        "--handshake-only",
        "--connections",
        "2",
        "--count",
        "50",
    ]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["handshakes"], 50);
    assert!(r["handshakes_per_s"].as_f64().unwrap() > 0.0);

    let (code, r) = send_for(
        &[
            "--target",
            &sink.addr,
            "--hold-idle",
            "40",
            "--connect-rate",
            "400",
        ],
        "1s",
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["idle_connections"], 40);

    let (code, r) = send(&[
        "--target",
        &sink.addr,
        "--rate",
        "2000",
        "--count",
        "1000",
        "--connections",
        "2",
    ]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["sent"], 1000);
    // 1000 messages at 2000/s take about half a second.
    let elapsed = r["elapsed_s"].as_f64().unwrap();
    assert!((0.4..3.0).contains(&elapsed), "{r}");
    assert_eq!(r["latency_us"]["count"], 1000);
    assert!(r["latency_us"]["p50"].as_f64().unwrap() > 0.0);

    let summary = sink_summary(sink);
    assert_eq!(summary["messages"], 1000, "{summary}");
    assert_eq!(summary["handshakes"], 50 + 40 + 2, "{summary}");
}

#[test]
fn refused_connection_and_remote_target_fail() {
    // Bind then drop to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let (code, r) = send(&[
        "--target",
        &target,
        "--tcp",
        "--count",
        "10",
        "--connections",
        "2",
    ]);
    assert_eq!(code, 1);
    assert_eq!(r["errors"]["refused"], 2, "{r}");
    let out = Command::new(BIN)
        .args(["send", "--target", "10.0.0.1:6514", "--count", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not loopback"));
}

#[test]
fn record_layers_key_updates_tls12_and_messages_over_16k_all_verify() {
    let dir = TempDir::new("layers");
    make_pki(&dir);
    let out = dir.path("received.log");
    let sink = start_sink(&[
        "--cert",
        s(&dir.path("server.pem")),
        "--key",
        s(&dir.path("server.key")),
        "--ca",
        s(&dir.path("ca.pem")),
        "--output",
        s(&out),
    ]);
    let (cert, key) = (dir.path("client.pem"), dir.path("client.key"));
    let common = [
        "--target",
        &sink.addr,
        "--cert",
        s(&cert),
        "--key",
        s(&key),
        "--connections",
        "3",
    ];
    let cases: [&[&str]; 5] = [
        // loadgen's TLS 1.3 record layer with a KeyUpdate every 7 records.
        &[
            "--count",
            "5000",
            "--records-per-write",
            "3",
            "--rekey-after",
            "7",
        ],
        // rustls's record layer.
        &["--count", "5000", "--record-layer", "rustls"],
        // TLS 1.2 (always rustls's record layer).
        &["--count", "5000", "--tls-version", "1.2"],
        // Messages larger than a TLS record, both layers.
        &["--count", "30", "--size", "40000"],
        &[
            "--count",
            "30",
            "--size",
            "40000",
            "--record-layer",
            "rustls",
            "--framing",
            "newline",
        ],
    ];
    let mut total = 0;
    for extra in cases {
        let args: Vec<&str> = common.iter().chain(extra.iter()).copied().collect();
        let (code, report) = send(&args);
        assert_eq!(code, 0, "{extra:?}: {report}");
        total += report["sent"].as_u64().unwrap();
    }
    let summary = sink_summary(sink);
    assert_eq!(summary["messages"], total, "{summary}");
    assert_eq!(summary["errors"], serde_json::json!({}), "{summary}");
    let (code, v) = verify(&[&out], &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["received"], total);
    assert_eq!(v["runs"].as_array().unwrap().len(), 5);
}
