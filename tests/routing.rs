//! Filters, `final` and `fallback` through the real binary: auth messages
//! kept out of the general file by a final auth destination, warnings and
//! worse from web hosts in their own file too, the rest in a fallback;
//! every count exact.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::loopback;
use e2e::server::{count_lines, free_port, temp_dir, Server};

#[test]
fn final_auth_filter_keeps_auth_out_of_the_general_file_and_counts_are_exact() {
    let dir = temp_dir("routing");
    let (tcp, stats) = (free_port(), free_port());
    let cfg = format!(
        r#"shards = 2
[[source]]
name = "tcp"
listen = "127.0.0.1:{tcp}"
transport = "tcp"
framing = "newline"
parse = "auto"

[[destination]]
name = "auth"
type = "file"
path = "auth.log"
fsync = "never"
filter = {{ facility = ["auth", "authpriv"] }}
final = true

[[destination]]
name = "web-warnings"
type = "file"
path = "web.log"
fsync = "never"
filter = {{ host = "web-*", severity = "warning" }}

[[destination]]
name = "rest"
type = "file"
path = "rest.log"
fsync = "never"
fallback = true

[stats]
listen = "127.0.0.1:{stats}"
"#
    );
    let server = Server::start(&dir, &cfg);
    // 4 connections × 10 hosts × 3 apps × 5 messages.
    let apps = [
        ("sshd", 4 * 8 + 3),
        ("nginx", 3 * 8 + 4),
        ("cron", 9 * 8 + 6),
    ]; // auth.err, daemon.warning, cron.info
    let mut expect = (0usize, 0usize, 0usize);
    let senders: Vec<_> = (0..4)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(loopback(tcp)).expect("connect");
                let mut buf = Vec::new();
                for h in 0..10 {
                    let host = if h < 5 {
                        format!("web-{h}")
                    } else {
                        format!("db-{h}")
                    };
                    for (app, pri) in apps {
                        for i in 0..5 {
                            buf.extend_from_slice(
                                format!(
                                    "<{pri}>1 2026-11-29T00:00:00Z {host} {app} 1 - - c{c} {i}\n"
                                )
                                .as_bytes(),
                            );
                        }
                    }
                }
                s.write_all(&buf).expect("write");
            })
        })
        .collect();
    for _connection in 0..4 {
        for h in 0..10 {
            for (app, _) in apps {
                let n = 5;
                match app {
                    "sshd" => expect.0 += n,
                    "nginx" if h < 5 => expect.1 += n,
                    _ => expect.2 += n,
                }
            }
        }
    }
    for s in senders {
        s.join().expect("sender");
    }
    let total = 4 * 10 * 3 * 5;
    let start = Instant::now();
    while server.metric("ringest_messages_written_total{source=\"tcp\"}") < total as u64
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (auth, web, rest) = (
        dir.join("auth.log"),
        dir.join("web.log"),
        dir.join("rest.log"),
    );
    assert_eq!(count_lines(&auth), expect.0, "auth");
    assert_eq!(count_lines(&web), expect.1, "web warnings");
    assert_eq!(count_lines(&rest), expect.2, "fallback");
    let text = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(text(&auth).lines().all(|l| l.contains(" sshd ")));
    assert!(!text(&web).contains(" sshd "), "final kept auth out");
    assert!(!text(&rest).contains(" sshd "), "final kept auth out");
    assert!(text(&web).lines().all(|l| l.contains(" web-")));
    assert!(server.stop().success());
    let _ = std::fs::remove_dir_all(&dir);
}
