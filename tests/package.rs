//! Running ringest the way operators run syslog servers (issue 17).
//!
//! Quick, against the workspace build:
//! - `/metrics` parses as Prometheus text (prometheus-parse, line by line
//!   and as a whole), every family has one HELP and one TYPE, and the
//!   process and build metrics are there and plausible;
//! - `log_format = "json"`: every stderr line is one JSON object, and a
//!   refused handshake names peer, source, reason and hint;
//! - `NOTIFY_SOCKET`: READY=1, STATUS= and STOPPING=1 arrive as systemd
//!   would receive them.
//!
//! Slow (a release build, about 7 minutes from cold on this 2-core
//! machine), as root: the Debian package's whole life,
//! [`deb_installs_serves_rotates_and_purges`]. Without systemd as PID 1
//! (as here and in CI) the unit is checked with `systemd-analyze verify`
//! and its ExecStart runs directly, as its User=, with its limits,
//! NoNewPrivileges, its SystemCallFilter as a seccomp filter
//! (python3-seccomp), and a mount namespace like its ProtectSystem=strict,
//! ReadWritePaths, PrivateTmp and ProtectHome. packaging/README.md lists
//! what only a real systemd can show.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::loadgen::{run, send as loadgen_send, verify as loadgen_verify};
use e2e::pki::Pki;
use e2e::server::{free_port, temp_dir, Launch, Server};
use e2e::{basic_config, loopback};
use prometheus_parse::{LineInfo, Scrape, Value};

// ---------------------------------------------------------------- metrics

/// What one scrape holds, after checking that it is valid text format.
struct Metrics {
    samples: Vec<prometheus_parse::Sample>,
}

impl Metrics {
    /// Parses `text`, failing on anything that is not valid exposition
    /// format: prometheus-parse skips lines it cannot read, so every line is
    /// first checked on its own.
    fn parse(text: &str) -> Metrics {
        let mut helps: HashMap<&str, usize> = HashMap::new();
        let mut types: HashMap<String, usize> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            match LineInfo::parse(line) {
                LineInfo::Doc { metric_name, .. } => *helps.entry(metric_name).or_default() += 1,
                LineInfo::Type { metric_name, .. } => *types.entry(metric_name).or_default() += 1,
                LineInfo::Sample { value, .. } => assert!(
                    value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
                    "line {}: value {value:?} is not a number: {line}",
                    i + 1
                ),
                LineInfo::Empty => {}
                LineInfo::Ignored => panic!("line {}: not text format: {line:?}", i + 1),
            }
        }
        for (name, n) in helps.iter() {
            assert_eq!(
                *n, 1,
                "{name}: HELP given {n} times (families must be contiguous)"
            );
        }
        for (name, n) in types.iter() {
            assert_eq!(*n, 1, "{name}: TYPE given {n} times");
            assert!(
                helps.contains_key(name.as_str()),
                "{name}: TYPE without HELP"
            );
        }
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parse");
        for s in &scrape.samples {
            // A summary's _count/_sum take the family's TYPE.
            let family = ["_count", "_sum"]
                .iter()
                .find_map(|suffix| s.metric.strip_suffix(suffix))
                .filter(|base| types.contains_key(*base))
                .unwrap_or(&s.metric);
            assert!(
                types.contains_key(family),
                "{}: sample without TYPE",
                s.metric
            );
            assert!(scrape.docs.contains_key(family), "{}: no HELP", s.metric);
        }
        Metrics {
            samples: scrape.samples,
        }
    }

    fn get(&self, name: &str) -> &prometheus_parse::Sample {
        self.samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    fn counter(&self, name: &str) -> f64 {
        match self.get(name).value {
            Value::Counter(v) => v,
            ref other => panic!("{name} is not a counter: {other:?}"),
        }
    }

    fn gauge(&self, name: &str) -> f64 {
        match self.get(name).value {
            Value::Gauge(v) => v,
            ref other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    /// The sum of a labelled counter whose `label` is `value`.
    fn counter_where(&self, name: &str, label: &str, value: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.metric == name && s.labels.get(label) == Some(value))
            .map(|s| match s.value {
                Value::Counter(v) => v,
                ref other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    /// The process and build metrics of issue 17, checked for sense.
    fn check_process_and_build(&self) {
        assert!(self.counter("process_cpu_seconds_total") > 0.0);
        let rss = self.gauge("process_resident_memory_bytes");
        assert!(rss > 1e6 && rss < 64e9, "rss {rss}");
        let (open, max) = (
            self.gauge("process_open_fds"),
            self.gauge("process_max_fds"),
        );
        assert!(open >= 3.0 && open < max, "open {open}, max {max}");
        let start = self.gauge("process_start_time_seconds");
        let now = unix_now();
        assert!(start <= now + 1.0 && start > now - 3600.0, "start {start}");
        let info = self.get("ringest_build_info");
        assert!(matches!(info.value, Value::Gauge(v) if v == 1.0));
        assert_eq!(info.labels.get("version"), Some("0.1.0"));
        let commit = info.labels.get("commit").unwrap_or("");
        assert!(
            !commit.is_empty() && commit != "unknown",
            "commit {commit:?}"
        );
        assert!(
            matches!(info.labels.get("ktls"), Some("yes" | "no")),
            "ktls {:?}",
            info.labels.get("ktls")
        );
    }

    fn reload_timestamp(&self) -> f64 {
        self.gauge("ringest_config_last_reload_success_timestamp_seconds")
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// GET /metrics from `addr`, body only.
fn scrape(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("stats");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut all = String::new();
    s.read_to_string(&mut all).expect("response");
    let (head, body) = all.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// Sends `n` newline-framed lines to a plain TCP source.
fn send_tcp_lines(addr: SocketAddr, n: usize) {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let text: String = (0..n)
        .map(|i| format!("<14>1 - h app - - - line {i}\n"))
        .collect();
    s.write_all(text.as_bytes()).expect("send");
}

#[test]
fn metrics_are_valid_prometheus_text_with_process_and_build_metrics() {
    let dir = temp_dir("metrics_text");
    let pki = Pki::generate(&dir.join("pki"));
    let (tls, tcp, stats) = (free_port(), free_port(), free_port());
    let server = Server::start(
        &dir,
        &basic_config(&pki, loopback(tls), loopback(tcp), loopback(stats), ""),
    );
    send_tcp_lines(loopback(tcp), 100);
    server.wait_metric(
        "ringest_messages_written_total{source=\"tcp\"",
        100,
        Duration::from_secs(10),
    );

    let first = Metrics::parse(&scrape(server.stats));
    first.check_process_and_build();
    assert_eq!(
        first.counter_where("ringest_messages_written_total", "source", "tcp"),
        100.0
    );
    let started = first.reload_timestamp();
    assert!(
        (unix_now() - started).abs() < 60.0,
        "start-up counts as a load: {started}"
    );

    std::thread::sleep(Duration::from_millis(50));
    server.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    let reloaded = loop {
        let t = Metrics::parse(&scrape(server.stats)).reload_timestamp();
        if t > started || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        reloaded > started,
        "a good SIGHUP moves the timestamp: {reloaded}"
    );
    assert!(server.stop().success());
}

// ---------------------------------------------------------------- JSON logs

#[test]
fn json_log_lines_name_peer_source_reason_and_hint() {
    let dir = temp_dir("json_logs");
    let pki = Pki::generate(&dir.join("pki"));
    let (tls, tcp, stats) = (free_port(), free_port(), free_port());
    let config = format!(
        "log_format = \"json\"\n{}",
        basic_config(&pki, loopback(tls), loopback(tcp), loopback(stats), "")
    );
    let server = Server::start(&dir, &config);
    // A client certificate from a CA the server does not trust.
    let rogue = e2e::client::client_config(&pki.ca, Some((&pki.rogue_cert, &pki.rogue_key)));
    if let Ok(mut s) = e2e::client::connect(loopback(tls), rogue) {
        use std::io::{Read, Write};
        let _ = s.write_all(b"5 hello");
        let _ = s.flush();
        let _ = s.read(&mut [0u8; 64]);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let stderr = server.stderr();
        let found = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| {
                v["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("handshake refused"))
            });
        if let Some(v) = found {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "no refused handshake logged:\n{stderr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused["level"], "warn");
    assert_eq!(refused["source"], "tls");
    let peer: SocketAddr = refused["peer"]
        .as_str()
        .expect("peer")
        .parse()
        .expect("addr");
    assert!(peer.ip().is_loopback());
    assert!(
        !refused["hint"].as_str().unwrap_or("").is_empty(),
        "{refused}"
    );
    assert!(
        refused["time"].as_str().unwrap_or("").ends_with('Z'),
        "{refused}"
    );
    let stderr = server.stderr();
    assert!(server.stop().success());
    // Every line, start-up and shutdown included, is one JSON object.
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["message"].is_string() && v["level"].is_string(), "{line}");
    }
}

// ---------------------------------------------------------------- sd_notify

/// Reads notify datagrams until one contains `want`; returns everything seen.
fn await_notify(sock: &UnixDatagram, want: &str, seen: &mut String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        assert!(
            Instant::now() < deadline,
            "no {want} on NOTIFY_SOCKET; got:\n{seen}"
        );
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    }
}

fn notify_socket(dir: &Path) -> (UnixDatagram, PathBuf) {
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    (sock, path)
}

#[test]
fn notify_socket_gets_ready_status_and_stopping() {
    let dir = temp_dir("notify");
    let pki = Pki::generate(&dir.join("pki"));
    let (sock, path) = notify_socket(&dir);
    let (tls, tcp, stats) = (free_port(), free_port(), free_port());
    let server = Server::start_with(
        &dir,
        &basic_config(&pki, loopback(tls), loopback(tcp), loopback(stats), ""),
        &Launch {
            env: vec![("NOTIFY_SOCKET".into(), path.display().to_string())],
            nofile: None,
        },
    );
    let mut seen = String::new();
    await_notify(&sock, "READY=1", &mut seen);
    assert!(
        seen.contains("STATUS=ready: 2 sources on 2 shards"),
        "{seen}"
    );
    await_notify(&sock, "STATUS=serving: ", &mut seen);
    assert!(!seen.contains("STOPPING=1"));
    assert!(server.stop().success());
    await_notify(&sock, "STOPPING=1", &mut seen);
}

// ---------------------------------------------------------------- the package

const UNIT: &str = "/usr/lib/systemd/system/ringest.service";
const CONFIG: &str = "/etc/ringest/ringest.toml";
const PKI_DIR: &str = "/etc/ringest/pki";
const LOG_DIR: &str = "/var/log/ringest";
const MESSAGES: &str = "/var/log/ringest/messages.log";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every tool the test needs, checked first so a missing one fails the
/// test at once with its name (never a skip).
fn require_tools() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the package test installs a .deb: run it as root (CI does)"
    );
    for (tool, package) in [
        ("dpkg", "dpkg"),
        ("runuser", "util-linux"),
        ("setpriv", "util-linux"),
        ("prlimit", "util-linux"),
        ("unshare", "util-linux"),
        ("logrotate", "logrotate (apt-get install logrotate)"),
        ("systemd-analyze", "systemd"),
        ("adduser", "adduser"),
    ] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false)
            || ["/usr/sbin", "/sbin"]
                .iter()
                .any(|d| Path::new(d).join(tool).is_file());
        assert!(found, "{tool} is missing: install {package}");
    }
    let seccomp = Command::new("/usr/bin/python3")
        .args(["-c", "import seccomp"])
        .output();
    assert!(
        seccomp.is_ok_and(|o| o.status.success()),
        "python3-seccomp is missing: apt-get install python3-seccomp"
    );
    let deb = Command::new("cargo").args(["deb", "--version"]).output();
    assert!(
        deb.is_ok_and(|o| o.status.success()),
        "cargo-deb is missing: cargo install cargo-deb --locked"
    );
}

/// Serialises package tests across processes: dpkg and /etc/ringest are
/// machine-wide. Held until dropped.
struct MachineLock(#[allow(dead_code)] std::fs::File);

impl MachineLock {
    fn take() -> MachineLock {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::create("/run/lock/ringest-package-test.lock")
            .or_else(|_| std::fs::File::create("/tmp/ringest-package-test.lock"))
            .expect("lock file");
        // SAFETY: flock on a descriptor we own.
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        MachineLock(f)
    }
}

/// Puts the machine back however the test ends: the server killed, the
/// package purged.
struct Installed {
    server: Option<Child>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(pid) = ringest_pid() {
            // SAFETY: kill(2) on a pid we found running the installed binary.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("dpkg").args(["--purge", "ringest"]).output();
    }
}

/// The installed server's pid: the process whose command line is the
/// unit's ExecStart.
fn ringest_pid() -> Option<i32> {
    let want = format!("/usr/bin/ringest\0serve\0--config\0{CONFIG}\0");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == want.as_bytes()))
}

/// `Key=value` of the installed unit (the last one wins, as in systemd).
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("{key}= missing from the unit"))
        .trim()
        .to_string()
}

fn uid_of(user: &str) -> u32 {
    let out = run(Command::new("id").args(["-u", user]));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid")
}

/// The shell run in a new mount namespace before the ExecStart line: what
/// the unit's ProtectSystem=strict + ReadWritePaths, PrivateTmp and
/// ProtectHome do, with plain mounts (read-only binds over every file
/// system but the API ones, the write paths bound again read-write, empty
/// tmpfs on /tmp, /var/tmp and the home folders).
fn sandbox_script(read_write: &[&str]) -> String {
    let rw: Vec<String> = read_write
        .iter()
        .map(|p| format!("mount --bind {p} {p}"))
        .collect();
    format!(
        r#"set -eu
mount --make-rprivate /
{binds}
for m in $(awk '{{print $5}}' /proc/self/mountinfo | sort -u); do
  case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
  case " {rw_list} " in *" $m "*) continue ;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || mount --bind -o ro "$m" "$m" 2>/dev/null || true
done
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
for h in /home /root /run/user; do [ -d "$h" ] && mount -t tmpfs -o ro,mode=0755 tmpfs "$h"; done
# The proof the sandbox holds: / is read-only here, the write path is not.
if touch /usr/.ringest-rw-probe 2>/dev/null; then rm -f /usr/.ringest-rw-probe; echo "sandbox: /usr writable" >&2; exit 90; fi
exec "$@"
"#,
        binds = rw.join("\n"),
        rw_list = read_write.join(" "),
    )
}

/// The system calls a `SystemCallFilter=` group allows, as this
/// machine's systemd expands it (nested groups included).
fn syscall_allow_list(group: &str) -> Vec<String> {
    let listing = text(&run(
        Command::new("systemd-analyze").args(["syscall-filter", group])
    ));
    let mut calls = Vec::new();
    for line in listing.lines().skip(1).map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('@') {
            calls.extend(syscall_allow_list(line));
        } else {
            calls.push(line.to_string());
        }
    }
    calls.sort();
    calls.dedup();
    calls
}

/// Loads a seccomp filter that allows `argv[1]` (comma-separated) and
/// fails every other call with EPERM, as `SystemCallFilter=` with
/// `SystemCallErrorNumber=EPERM` does, then execs the rest of argv.
/// python3-seccomp (libseccomp's own binding) builds the BPF.
const SECCOMP_LOADER: &str = r#"
import errno, os, sys, seccomp
f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
for name in sys.argv[1].split(","):
    try:
        f.add_rule(seccomp.ALLOW, name)
    except Exception:
        pass  # not a system call on this architecture
f.load()
os.execv(sys.argv[2], sys.argv[2:])
"#;

fn seccomp_prefix(allowed: &[String]) -> Vec<String> {
    vec![
        "/usr/bin/python3".into(),
        "-c".into(),
        SECCOMP_LOADER.into(),
        allowed.join(","),
    ]
}

/// The installed binary's stdout lines, collected by a thread.
fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits until `written` reaches `want` on the installed server's /metrics.
fn wait_written(stats: SocketAddr, want: f64) -> Metrics {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = Metrics::parse(&scrape(stats));
        let w = m.counter_where("ringest_messages_written_total", "source", "tls");
        if w >= want {
            assert_eq!(w, want, "more written than sent");
            return m;
        }
        assert!(Instant::now() < deadline, "written {w} of {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn deb_installs_serves_rotates_and_purges() {
    require_tools();
    let _lock = MachineLock::take();
    let started = Instant::now();
    let work = temp_dir("deb");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo");

    // A leftover from an interrupted run would hide what a first install does.
    let _ = Command::new("dpkg").args(["--purge", "ringest"]).output();

    // 1. Build the package (release) and install it.
    let out = run(&mut Command::new(repo.join("packaging/build-deb.sh")));
    let deb = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("build-deb.sh prints the .deb")
        .trim()
        .to_string();
    eprintln!("package built in {:?}: {deb}", started.elapsed());
    let mut installed = Installed { server: None };
    let out = run(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(
        text(&out).contains("NOT started: it needs certificates first"),
        "the postinst says what to do instead of starting:\n{}",
        text(&out)
    );
    for f in [
        "/usr/bin/ringest",
        "/usr/bin/loadgen",
        "/usr/bin/ringest-bench",
        "/usr/bin/ringest-tuning",
        UNIT,
        CONFIG,
        "/etc/logrotate.d/ringest",
        "/usr/lib/modules-load.d/ringest.conf",
        "/usr/share/man/man1/ringest.1.gz",
        "/usr/share/man/man1/ringest-serve.1.gz",
        "/etc/systemd/system/multi-user.target.wants/ringest.service",
    ] {
        assert!(Path::new(f).exists(), "{f} not installed");
    }
    let ringest_uid = uid_of("ringest");
    {
        use std::os::unix::fs::MetadataExt;
        let log_dir = std::fs::metadata(LOG_DIR).expect("log dir");
        assert_eq!(
            (log_dir.uid(), log_dir.mode() & 0o777),
            (ringest_uid, 0o750)
        );
    }

    // 2. The unit: valid, and with the directives issue 17 asks for.
    let unit = std::fs::read_to_string(UNIT).expect("unit");
    let out = run(Command::new("systemd-analyze").args(["verify", "--man=no", UNIT]));
    assert!(
        text(&out).trim().is_empty(),
        "systemd-analyze verify: {}",
        text(&out)
    );
    for (key, want) in [
        ("Type", "notify"),
        ("User", "ringest"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", LOG_DIR),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
    ] {
        assert_eq!(unit_value(&unit, key), want, "{key}=");
    }
    // The syscall filter lets io_uring through (this systemd's own list).
    let allowed = syscall_allow_list("@system-service");
    for call in [
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "setsockopt",
    ] {
        assert!(
            allowed.iter().any(|c| c == call),
            "SystemCallFilter=@system-service would block {call}"
        );
    }
    let nofile: u64 = unit_value(&unit, "LimitNOFILE")
        .parse()
        .expect("LimitNOFILE");
    assert!(nofile >= 10_000 + 64, "LimitNOFILE covers max_connections");

    // 3. A test PKI into /etc/ringest/pki, readable by the ringest group.
    let pki = Pki::generate(Path::new(PKI_DIR));
    for f in [&pki.server_key, &pki.client_key, &pki.rogue_key] {
        run(Command::new("chgrp").arg("ringest").arg(f));
        run(Command::new("chmod").arg("640").arg(f));
    }
    let out = run(Command::new("/usr/bin/ringest").args(["check-config", "--config", CONFIG]));
    assert!(
        text(&out).contains(&format!("{CONFIG}: ok")),
        "{}",
        text(&out)
    );

    // 4. The operator's edit: loopback and free ports, so the test
    // cannot collide with anything else on the machine.
    let (port, stats_port) = (free_port(), free_port());
    let edited = std::fs::read_to_string(CONFIG)
        .expect("config")
        .replace("\"0.0.0.0:6514\"", &format!("\"127.0.0.1:{port}\""))
        .replace("\"127.0.0.1:9514\"", &format!("\"127.0.0.1:{stats_port}\""));
    std::fs::write(CONFIG, edited).expect("edit config");
    run(Command::new("/usr/bin/ringest").args(["check-config", "--config", CONFIG]));
    let (target, stats) = (loopback(port), loopback(stats_port));

    // 5. Start the unit's ExecStart line as the unit would: as User=, with
    // NoNewPrivileges, LimitNOFILE (capped by what this sandbox's hard
    // limit allows), NOTIFY_SOCKET, SystemCallFilter=@system-service
    // (seccomp, EPERM), in a ProtectSystem=strict-like mount namespace.
    let exec_start = unit_value(&unit, "ExecStart");
    assert_eq!(
        exec_start,
        format!("/usr/bin/ringest serve --config {CONFIG}")
    );
    // The seccomp emulation bites: without io_uring_setup the server
    // cannot start, so the run below under the full list means something.
    let without_uring: Vec<String> = allowed
        .iter()
        .filter(|c| *c != "io_uring_setup")
        .cloned()
        .collect();
    // As the ringest user, so any file it makes is the real server's.
    let out = Command::new("runuser")
        .args(["-u", "ringest", "--", "setpriv", "--no-new-privs", "--"])
        .args(seccomp_prefix(&without_uring))
        .args(exec_start.split_whitespace())
        .stdin(Stdio::null())
        .output()
        .expect("python3 with python3-seccomp");
    assert!(
        !out.status.success() && text(&out).contains("io_uring"),
        "without io_uring_setup ringest must fail to start: {}",
        text(&out)
    );
    let notify_dir = PathBuf::from(format!("/run/ringest-package-test-{}", std::process::id()));
    std::fs::create_dir_all(&notify_dir).expect("notify dir");
    let (notify, notify_path) = notify_socket(&notify_dir);
    run(Command::new("chmod").arg("755").arg(&notify_dir));
    run(Command::new("chmod").arg("666").arg(&notify_path));
    let hard_nofile = {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one rlimit into our local.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        lim.rlim_max
    };
    let nofile = nofile.min(hard_nofile);
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--", "sh", "-c"])
        .arg(sandbox_script(&[LOG_DIR]))
        .arg("sandbox")
        .arg("prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .args(["--", "runuser", "-u", "ringest", "--", "env"])
        .arg(format!("NOTIFY_SOCKET={}", notify_path.display()))
        .args(["setpriv", "--no-new-privs", "--"])
        .args(seccomp_prefix(&allowed))
        .args(exec_start.split_whitespace())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(work.join("ringest.stderr")).expect("stderr file"));
    let mut child = cmd.spawn().expect("start the ExecStart line");
    let stdout = lines_of(&mut child);
    installed.server = Some(child);
    let mut seen = String::new();
    await_notify(&notify, "READY=1", &mut seen);
    assert!(
        stdout
            .recv_timeout(Duration::from_secs(5))
            .is_ok_and(|l| l == "ringest: ready"),
        "stderr:\n{}",
        std::fs::read_to_string(work.join("ringest.stderr")).unwrap_or_default()
    );
    let pid = ringest_pid().expect("the installed ringest runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid");
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == ringest_uid.to_string()),
        "runs as ringest: {uid_line}"
    );
    assert!(status.contains("NoNewPrivs:\t1"), "NoNewPrivileges");
    assert!(
        status.contains("Seccomp:\t2"),
        "SystemCallFilter: a seccomp filter"
    );
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/mnt")).expect("mnt ns");
    assert_ne!(
        ns(&pid.to_string()),
        ns("self"),
        "ProtectSystem: its own mounts"
    );

    // 6. 10,000 messages, counted by the server and by loadgen verify.
    let send1 = work.join("send1.json");
    run(&mut loadgen_send(
        target,
        &pki,
        &["--count", "10000", "--connections", "2"],
        &send1,
    ));
    let m = wait_written(stats, 10_000.0);
    m.check_process_and_build();
    assert_eq!(e2e::server::count_lines(Path::new(MESSAGES)), 10_000);
    loadgen_verify(&send1, &[MESSAGES]);
    let loaded = m.reload_timestamp();

    // 7. logrotate -f with the installed snippet, during an 8-connection
    // load: nothing lost, both files verified. The load runs at a fixed
    // rate so it spans the rotation.
    std::thread::sleep(Duration::from_millis(20));
    let send2 = work.join("send2.json");
    let mut load = loadgen_send(
        target,
        &pki,
        &["--count", "120000", "--connections", "8", "--rate", "40000"],
        &send2,
    )
    .spawn()
    .expect("loadgen");
    std::thread::sleep(Duration::from_millis(1000));
    let out = run(Command::new("logrotate")
        .args(["-f", "-v", "-s"])
        .arg(work.join("logrotate.state"))
        .arg("/etc/logrotate.d/ringest"));
    assert!(
        text(&out).contains("running postrotate script"),
        "{}",
        text(&out)
    );
    assert!(
        load.wait().expect("loadgen").success(),
        "loadgen send failed"
    );
    let m = wait_written(stats, 130_000.0);
    assert!(
        m.reload_timestamp() > loaded,
        "the postrotate SIGHUP was a good reload"
    );
    let rotated = format!("{MESSAGES}.1");
    let run2 = |path: &str| -> usize {
        let id = std::fs::read_to_string(&send2).expect("send2");
        let v: serde_json::Value = serde_json::from_str(id.trim()).expect("send json");
        let marker = format!("lg={}/", v["run_id"].as_str().expect("run_id"));
        std::fs::read_to_string(path)
            .expect(path)
            .lines()
            .filter(|l| l.contains(&marker))
            .count()
    };
    let (before, after) = (run2(&rotated), run2(MESSAGES));
    assert!(
        before > 0 && after > 0,
        "the rotation fell inside the load: {before} lines before, {after} after"
    );
    assert_eq!(before + after, 120_000);
    loadgen_verify(&send2, &[&rotated, MESSAGES]);

    // 8. Stop (SIGTERM, as systemd does): clean exit, STOPPING=1 sent.
    // SAFETY: kill(2) on the installed server's pid.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let mut child = installed.server.take().expect("server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "exit {status}; stderr:\n{}",
        std::fs::read_to_string(work.join("ringest.stderr")).unwrap_or_default()
    );
    await_notify(&notify, "STOPPING=1", &mut seen);
    let _ = std::fs::remove_dir_all(&notify_dir);

    // 9. Remove, then purge: each leaves exactly what Debian says.
    run(Command::new("dpkg").args(["-r", "ringest"]));
    for gone in [
        "/usr/bin/ringest",
        "/usr/bin/loadgen",
        "/usr/bin/ringest-tuning",
        UNIT,
        "/usr/share/man/man1/ringest.1.gz",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after dpkg -r");
    }
    assert!(Path::new(CONFIG).exists(), "dpkg -r keeps conffiles");
    run(Command::new("dpkg").args(["--purge", "ringest"]));
    for gone in [
        "/etc/ringest",
        LOG_DIR,
        "/etc/logrotate.d/ringest",
        "/usr/lib/modules-load.d/ringest.conf",
        "/etc/systemd/system/multi-user.target.wants/ringest.service",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} left after dpkg --purge");
    }
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "ringest"])
        .output()
        .expect("dpkg-query");
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains("installed"),
        "still known to dpkg"
    );
    drop(installed);
    eprintln!("package test took {:?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&work);
}
