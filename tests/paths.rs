//! Path templates through the real binary: eight loadgen senders, each with
//! its own hostname and two connections, into `hosts/{host}/{app}.log` with
//! `max_open_files = 3`. Every host gets exactly one file, `loadgen verify`
//! finds every message of that host's run in it exactly once (in order per
//! connection), no line of another host is in it, and files were closed and
//! reopened on the way. Hostile and missing host names land under the root.
//! `date_from = "message"` splits by the sender's timestamp, in UTC.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::loopback;
use e2e::server::{bin, count_lines, free_port, temp_dir, Server};

const HOSTS: usize = 8;
const PER_HOST: u64 = 600;

/// Every file under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .expect("read_dir")
            .map_while(Result::ok)
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn one_file_per_host_with_fewer_open_files_than_hosts_every_message_once() {
    let dir = temp_dir("paths");
    let (tcp, stats) = (free_port(), free_port());
    let cfg = format!(
        r#"shards = 2
[[source]]
name = "tcp"
listen = "127.0.0.1:{tcp}"
transport = "tcp"
parse = "auto"

[[destination]]
name = "hosts"
type = "file"
path = "hosts/{{host}}/{{app}}.log"
fsync = "never"
max_open_files = 3

[stats]
listen = "127.0.0.1:{stats}"
"#
    );
    let server = Server::start(&dir, &cfg);
    let senders: Vec<_> = (0..HOSTS)
        .map(|h| {
            let json = dir.join(format!("send-{h}.json"));
            let child = Command::new(bin("loadgen"))
                .args(["send", "--tcp", "--target"])
                .arg(loopback(tcp).to_string())
                .args(["--hostname", &format!("host-{h}")])
                .args(["--connections", "2", "--threads", "1", "--size", "200"])
                .args(["--count", &PER_HOST.to_string()])
                .args(["--records-per-write", "5", "--write-bytes", "4096"])
                // Paced, so every host sends all along and files are
                // closed and opened again many times.
                .args(["--rate", "2000"])
                .args(["--json", "--quiet"])
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&json).expect("send json"))
                .spawn()
                .expect("loadgen send");
            (child, json)
        })
        .collect();
    // Hostile and missing host names, on a connection of their own.
    let hostile = [
        "<13>1 - ../../etc app - - - climb",
        "<13>1 - . app - - - dot",
        "<13>1 - - app - - - nil host",
        "no pri at all",
    ];
    let mut s = TcpStream::connect(loopback(tcp)).expect("connect");
    for m in hostile {
        s.write_all(format!("{}\n", m).as_bytes()).expect("write");
    }
    drop(s);
    let mut jsons = Vec::new();
    for (mut child, json) in senders {
        let st = child.wait().expect("loadgen");
        assert!(st.success(), "loadgen send for {} failed", json.display());
        jsons.push(json);
    }
    let total = HOSTS as u64 * PER_HOST + hostile.len() as u64;
    let written = server.wait_metric(
        "ringest_messages_written_total{source=\"tcp\"}",
        total,
        Duration::from_secs(30),
    );
    assert_eq!(written, total, "written by the server");
    let closed = server.metric("ringest_files_closed_total{destination=\"hosts\"}");
    eprintln!("files closed while running: {closed}");
    assert!(
        closed > (HOSTS + 4) as u64,
        "{HOSTS} hosts sending at once through 3 open files: files closed and opened again, got {closed} closes"
    );
    assert_eq!(
        server.metric("ringest_path_values_sanitized_total{destination=\"hosts\"}"),
        2
    );
    assert_eq!(
        server.metric("ringest_path_values_missing_total{destination=\"hosts\"}"),
        3,
        "nil host; no pri: host and app"
    );
    assert!(server.stop().success());

    let root = dir.join("hosts");
    let files = files_under(&root);
    let mut want: Vec<PathBuf> = (0..HOSTS)
        .map(|h| root.join(format!("host-{h}/loadgen.log")))
        .collect();
    want.extend([
        root.join("%2E.%2F..%2Fetc/app.log"),
        root.join("%2E/app.log"),
        root.join("@unknown/app.log"),
        root.join("@unknown/@unknown.log"),
    ]);
    want.sort();
    assert_eq!(files, want, "exactly these files, all under the root");
    for (h, json) in jsons.iter().enumerate() {
        let file = root.join(format!("host-{h}/loadgen.log"));
        assert_eq!(count_lines(&file), PER_HOST as usize, "{}", file.display());
        let text = std::fs::read_to_string(&file).expect("read");
        let me = format!(" host-{h} loadgen ");
        assert!(
            text.lines().all(|l| l.contains(&me)),
            "{} holds another host's line",
            file.display()
        );
        let out = Command::new(bin("loadgen"))
            .args(["verify", "--format", "raw", "--expect-json"])
            .arg(json)
            .arg(&file)
            .output()
            .expect("loadgen verify");
        assert!(
            out.status.success(),
            "loadgen verify {}:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_default();
    assert_eq!(read("%2E.%2F..%2Fetc/app.log"), format!("{}\n", hostile[0]));
    assert_eq!(read("%2E/app.log"), format!("{}\n", hostile[1]));
    assert_eq!(read("@unknown/app.log"), format!("{}\n", hostile[2]));
    assert_eq!(read("@unknown/@unknown.log"), format!("{}\n", hostile[3]));
    assert!(
        !dir.parent().expect("parent").join("etc").exists(),
        "nothing left the destination's folder"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_template_field_is_refused_at_start_with_the_key_and_the_valid_fields() {
    let dir = temp_dir("paths-bad");
    let tcp = free_port();
    let cfg = format!(
        "[[source]]\nname = \"tcp\"\nlisten = \"127.0.0.1:{tcp}\"\ntransport = \"tcp\"\n\
         [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"logs/{{hostname}}.log\"\n"
    );
    let err = match Server::try_start(&dir, &cfg) {
        Ok(_) => panic!("a template with {{hostname}} must be refused"),
        Err(e) => e,
    };
    assert!(err.contains("destination[0].path"), "{err}");
    assert!(err.contains("unknown field {hostname}"), "{err}");
    assert!(err.contains("valid: host, app"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn date_from_message_splits_by_the_senders_day_in_utc() {
    let dir = temp_dir("paths-date");
    let (tcp, stats) = (free_port(), free_port());
    let cfg = format!(
        r#"[[source]]
name = "tcp"
listen = "127.0.0.1:{tcp}"
transport = "tcp"
framing = "newline"
parse = "auto"

[[destination]]
name = "days"
type = "file"
path = "days/{{year}}-{{month}}-{{day}}/{{hour}}.log"
date_from = "message"

[stats]
listen = "127.0.0.1:{stats}"
"#
    );
    let server = Server::start(&dir, &cfg);
    let lines = [
        "<13>1 2026-11-28T23:59:59Z h a - - - late on the 28th",
        "<13>1 2026-11-28T23:30:00-02:00 h a - - - the 29th in UTC",
        "<13>1 2026-11-29T01:05:00+00:00 h a - - - early on the 29th",
        "<13>1 2025-03-04T05:06:07 h a - - - no zone: as written",
    ];
    let mut s = TcpStream::connect(loopback(tcp)).expect("connect");
    for l in lines {
        s.write_all(format!("{l}\n").as_bytes()).expect("write");
    }
    drop(s);
    let written = server.wait_metric(
        "ringest_messages_written_total{source=\"tcp\"}",
        lines.len() as u64,
        Duration::from_secs(10),
    );
    assert_eq!(written, lines.len() as u64);
    assert!(server.stop().success());
    let read = |p: &str| std::fs::read_to_string(dir.join("days").join(p)).unwrap_or_default();
    assert_eq!(read("2026-11-28/23.log"), format!("{}\n", lines[0]));
    assert_eq!(
        read("2026-11-29/01.log"),
        format!("{}\n{}\n", lines[1], lines[2])
    );
    assert_eq!(read("2025-03-04/05.log"), format!("{}\n", lines[3]));
    assert_eq!(files_under(&dir.join("days")).len(), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 14's end-to-end case: 10 hosts × 3 apps over 4 connections into
/// `logs/{host}/{app}.log` with `max_open_files = 4`; a filter on the auth
/// facilities with `final = true` sends sshd's messages to
/// `auth/{host}.log` and keeps them out of the general files. Every
/// message is in exactly one file (`loadgen verify` over all of them), in
/// the right one (its host and app), and in order per connection.
#[test]
fn ten_hosts_three_apps_four_connections_auth_kept_out_of_the_general_files() {
    const HOSTS10: usize = 10;
    const APPS: [(&str, u8); 3] = [("sshd", 4), ("nginx", 16), ("cron", 9)];
    const COUNT: u64 = 6_000;
    let dir = temp_dir("paths-hosts-apps");
    let (tcp, stats) = (free_port(), free_port());
    let cfg = format!(
        r#"shards = 2
[[source]]
name = "tcp"
listen = "127.0.0.1:{tcp}"
transport = "tcp"
parse = "auto"

[[destination]]
name = "auth"
type = "file"
path = "auth/{{host}}.log"
fsync = "never"
filter = {{ facility = ["auth", "authpriv"] }}
final = true

[[destination]]
name = "general"
type = "file"
path = "logs/{{host}}/{{app}}.log"
fsync = "never"
max_open_files = 4

[stats]
listen = "127.0.0.1:{stats}"
"#
    );
    let server = Server::start(&dir, &cfg);
    // One line per host and app; loadgen replays them in a loop with its
    // marker at the start of MSG.
    let lines = dir.join("lines.txt");
    let mut text = String::new();
    for h in 0..HOSTS10 {
        for (app, facility) in APPS {
            let pri = u32::from(facility) * 8 + 6;
            text.push_str(&format!(
                "<{pri}>1 2026-11-29T10:00:00Z host-{h} {app} 42 - - from {app} on host-{h}\n"
            ));
        }
    }
    std::fs::write(&lines, text).expect("lines");
    let json = dir.join("send.json");
    let status = Command::new(bin("loadgen"))
        .args(["send", "--tcp", "--target"])
        .arg(loopback(tcp).to_string())
        .arg("--read-file")
        .arg(&lines)
        .args(["--connections", "4", "--count", &COUNT.to_string()])
        .args(["--json", "--quiet"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&json).expect("send json"))
        .status()
        .expect("loadgen send");
    assert!(status.success(), "loadgen send");
    let written = server.wait_metric(
        "ringest_messages_written_total{source=\"tcp\"}",
        COUNT,
        Duration::from_secs(30),
    );
    assert_eq!(written, COUNT);
    assert!(server.stop().success());

    let mut files = files_under(&dir.join("logs"));
    let auth = files_under(&dir.join("auth"));
    assert_eq!(auth.len(), HOSTS10, "one auth file per host: {auth:?}");
    assert_eq!(
        files.len(),
        HOSTS10 * 2,
        "nginx and cron per host: {files:?}"
    );
    for h in 0..HOSTS10 {
        let host = format!(" host-{h} ");
        let a = dir.join(format!("auth/host-{h}.log"));
        let t = std::fs::read_to_string(&a).expect("auth file");
        assert!(
            t.lines()
                .all(|l| l.contains(&host) && l.contains(" sshd 42 ")),
            "{} holds a line of another host or app",
            a.display()
        );
        assert!(
            !dir.join(format!("logs/host-{h}/sshd.log")).exists(),
            "final: auth messages stay out of the general files"
        );
        for app in ["nginx", "cron"] {
            let f = dir.join(format!("logs/host-{h}/{app}.log"));
            let t = std::fs::read_to_string(&f).expect("general file");
            let me = format!(" host-{h} {app} 42 ");
            assert!(
                t.lines().all(|l| l.contains(&me)),
                "{} holds a line of another host or app",
                f.display()
            );
        }
    }
    files.extend(auth);
    // Every message exactly once over all the files, in order per connection.
    let out = Command::new(bin("loadgen"))
        .args(["verify", "--format", "raw", "--expect-json"])
        .arg(&json)
        .args(&files)
        .output()
        .expect("loadgen verify");
    assert!(
        out.status.success(),
        "loadgen verify:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
