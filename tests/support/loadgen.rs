//! Driving `loadgen` from a test: `send` with the test PKI's client
//! identity, `verify` of the files against what it sent.

use std::ffi::OsStr;
use std::fmt::Display;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::cmd::{run, text};
use crate::pki::Pki;
use crate::server::bin;

/// `loadgen send` to `target` as the PKI's client, its JSON summary into
/// `json`, plus `args`.
pub fn loadgen_send(target: impl Display, pki: &Pki, args: &[&str], json: &Path) -> Command {
    let mut c = Command::new(bin("loadgen"));
    c.arg("send")
        .arg("--target")
        .arg(target.to_string())
        .arg("--ca")
        .arg(&pki.ca)
        .arg("--cert")
        .arg(&pki.client_cert)
        .arg("--key")
        .arg(&pki.client_key)
        .args(["--confirm-timeout", "0", "--json", "--quiet"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(json).expect("send json"));
    c
}

/// `loadgen verify --format raw` of `files` against the summary `send_json`;
/// fails the test unless every message arrived exactly once. Returns its
/// report.
pub fn loadgen_verify(send_json: &Path, files: &[impl AsRef<OsStr>]) -> String {
    let out = run(Command::new(bin("loadgen"))
        .args(["verify", "--format", "raw", "--expect-json"])
        .arg(send_json)
        .args(files));
    text(&out)
}

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
    loadgen_verify(send_json, &[file.to_str().expect("UTF-8 path")]);
}
