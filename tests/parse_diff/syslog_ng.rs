//! syslog-ng 3.38 as the reference parser: one `syslog()` TCP source
//! (octet-counted, RFC 5424 with its fallback to RFC 3164 per message,
//! which is what ringest's `auto` mirrors) and a file destination writing
//! `$(format-json --scope rfc5424 --scope nv-pairs)` per message.
//!
//! Settings, and why:
//! - `TZ=UTC`, so a stamp without a zone reads as UTC on both sides.
//! - `keep-hostname(yes)`, or syslog-ng replaces HOST by the peer address.
//! - `frac-digits(6)`: syslog-ng keeps microseconds, its maximum.
//! - Extra pairs: `PRI`, `ISODATE` (the parsed stamp, in its own zone) and
//!   `R_ISODATE` (the receive time): equal when the message had no stamp.
//!
//! One connection carries the whole corpus, so the output keeps its order.
//! The process is killed on drop and everything is bounded in time.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::server::free_port;

const START_TIMEOUT: Duration = Duration::from_secs(15);
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(60);

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_syslog_ng() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("syslog-ng"))
        .find(|p| p.is_file())
        .expect("syslog-ng not found: run tests/install-deps.sh (Debian package syslog-ng-core)")
}

fn config(port: u16, out: &Path) -> String {
    format!(
        r#"@version: 3.38
options {{ stats-freq(0); use-dns(no); dns-cache(no); keep-hostname(yes); chain-hostnames(no);
           frac-digits(6); log-msg-size(65536); }};
source s_diff {{ syslog(ip("127.0.0.1") port({port}) transport("tcp") log-iw-size(100000)); }};
destination d_json {{
  file("{out}" template("$(format-json --scope rfc5424 --scope nv-pairs --pair PRI=$PRI --pair ISODATE=$ISODATE --pair R_ISODATE=$R_ISODATE)\n"));
}};
log {{ source(s_diff); destination(d_json); flags(flow-control); }};
"#,
        out = out.display()
    )
}

/// Sends `frames` octet-counted to a fresh syslog-ng and returns its output
/// lines, one per frame.
pub fn run(dir: &Path, stream: &[u8], frames: usize) -> Vec<Vec<u8>> {
    let port = free_port();
    let out = dir.join("syslog-ng.jsonl");
    let conf = dir.join("syslog-ng.conf");
    std::fs::write(&conf, config(port, &out)).expect("write syslog-ng.conf");
    let log = std::fs::File::create(dir.join("syslog-ng.log")).expect("syslog-ng.log");
    let child = Command::new(find_syslog_ng())
        .env("TZ", "UTC")
        .args(["-F", "-e", "--no-caps", "-f"])
        .arg(&conf)
        .arg("-R")
        .arg(dir.join("syslog-ng.persist"))
        .arg("-p")
        .arg(dir.join("syslog-ng.pid"))
        .arg("-c")
        .arg(dir.join("syslog-ng.ctl"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start syslog-ng");
    let mut process = Process(child);

    let started = Instant::now();
    let mut conn = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(c) => break c,
            Err(e) => {
                if let Ok(Some(status)) = process.0.try_wait() {
                    panic!("syslog-ng exited ({status}): {}", log_text(dir));
                }
                assert!(
                    started.elapsed() < START_TIMEOUT,
                    "syslog-ng not listening: {e}; {}",
                    log_text(dir)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    conn.write_all(stream).expect("send corpus");
    drop(conn);

    let started = Instant::now();
    loop {
        let text = std::fs::read(&out).unwrap_or_default();
        let lines = text.iter().filter(|&&b| b == b'\n').count();
        if lines >= frames {
            assert_eq!(lines, frames, "syslog-ng wrote more lines than frames sent");
            return text
                .split(|&b| b == b'\n')
                .take(frames)
                .map(<[u8]>::to_vec)
                .collect();
        }
        assert!(
            started.elapsed() < OUTPUT_TIMEOUT,
            "syslog-ng wrote {lines} of {frames} lines in {OUTPUT_TIMEOUT:?}: {}",
            log_text(dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("syslog-ng.log")).unwrap_or_default()
}
