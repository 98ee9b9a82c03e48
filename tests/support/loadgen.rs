//! Driving `loadgen` from tests: send marked messages, then check with
//! `loadgen verify` that each arrived exactly once.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::server::bin;

/// `loadgen send --tcp` of `count` messages (200 bytes unless `extra` sets `--size`) over
/// `connections` to 127.0.0.1:`port`; its JSON report goes to `json`.
pub fn send_tcp(port: u16, count: u64, connections: u32, extra: &[&str], json: &Path) -> Command {
    let mut c = Command::new(bin("loadgen"));
    c.args(["send", "--tcp", "--target"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--count", &count.to_string()])
        .args(["--connections", &connections.to_string()])
        .args(["--json", "--quiet"])
        .args(extra)
        .stdin(Stdio::null());
    if !extra.contains(&"--size") {
        c.args(["--size", "200"]);
    }
    c.stdout(std::fs::File::create(json).expect("send json"));
    c
}

/// Runs [`send_tcp`] to the end; it must succeed.
pub fn send_tcp_all(port: u16, count: u64, connections: u32, json: &Path) {
    let status = send_tcp(port, count, connections, &[], json)
        .status()
        .expect("run loadgen");
    assert!(status.success(), "loadgen send failed");
}

/// `loadgen verify` of a raw file (marker anywhere in the line) against
/// what `send --json` reported: every message exactly once.
pub fn verify_raw(send_json: &Path, file: &Path) {
    let out = Command::new(bin("loadgen"))
        .args(["verify", "--format", "raw", "--expect-json"])
        .arg(send_json)
        .arg(file)
        .output()
        .expect("run loadgen verify");
    assert!(
        out.status.success(),
        "loadgen verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
