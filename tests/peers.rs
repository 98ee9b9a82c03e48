//! syslog-ng's `loggen` against ringest: what loggen reports sent is what is
//! written. loggen cannot present a client certificate, so this source runs
//! `peer_verify = "optional-untrusted"`. Needs syslog-ng-core
//! (tests/install-deps.sh installs it); without loggen these tests fail.

use std::process::Command;
use std::time::Duration;

use e2e::pki::Pki;
use e2e::server::{count_lines, free_port, temp_dir, Server};

fn loggen_config(pki: &Pki, port: u16, stats: u16, framing: &str) -> String {
    format!(
        r#"shards = 2
[[source]]
name = "loggen"
listen = "127.0.0.1:{port}"
transport = "tls"
framing = "{framing}"
[source.tls]
cert_file = "{}"
key_file = "{}"
peer_verify = "optional-untrusted"

[[destination]]
name = "messages"
type = "file"
path = "data/messages.log"
fsync = "never"

[stats]
listen = "127.0.0.1:{stats}"
"#,
        pki.server_cert.display(),
        pki.server_key.display()
    )
}

/// Runs loggen for `seconds` and returns the count it reports sent.
fn run_loggen(port: u16, extra: &[&str], seconds: u32) -> u64 {
    let mut cmd = Command::new("loggen");
    cmd.args([
        "-U",
        "-P",
        "--size",
        "300",
        "--active-connections",
        "4",
        "--rate",
        "20000",
    ])
    .args(["--interval", &seconds.to_string()])
    .args(extra)
    .args(["127.0.0.1", &port.to_string()]);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run loggen ({e}): run tests/install-deps.sh (Debian package syslog-ng-core)"
        ),
    };
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "loggen failed: {text}");
    let summary = text
        .lines()
        .find(|l| l.starts_with("average rate"))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    summary
        .split(", ")
        .find_map(|f| f.strip_prefix("count="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no count in {summary:?}"))
}

fn loggen_delivers_everything(name: &str, framing: &str, extra: &[&str]) {
    let dir = temp_dir(name);
    let pki = Pki::generate(&dir.join("pki"));
    let (port, stats) = (free_port(), free_port());
    let server = Server::start(&dir, &loggen_config(&pki, port, stats, framing));
    let sent = run_loggen(port, extra, 3);
    assert!(sent > 1000, "loggen sent only {sent}");
    let written = server.wait_metric(
        "ringest_messages_written_total{source=\"loggen\"",
        sent,
        Duration::from_secs(20),
    );
    assert_eq!(written, sent, "written equals what loggen reports sent");
    let dir = server.dir.clone();
    assert!(server.stop().success());
    assert_eq!(count_lines(&dir.join("data/messages.log")) as u64, sent);
}

#[test]
fn loggen_tls_octet_counted_delivers_everything() {
    loggen_delivers_everything("loggen-octet", "octet-counted", &[]);
}

#[test]
fn loggen_tls_newline_framing_delivers_everything() {
    loggen_delivers_everything("loggen-newline", "newline", &["-F"]);
}
