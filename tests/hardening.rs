//! Faults and hostile inputs found by review and by trying real clients
//! (issue 9): each test here failed before its fix.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::loopback;
use e2e::server::{count_lines, free_port, temp_dir, Server};
use e2e::trust_pki::{Ca, LeafSpec};

/// A one-TLS-source config with the given CA, server cert/key and extra
/// source options.
fn tls_config(
    ca: &Path,
    cert: &Path,
    key: &Path,
    port: u16,
    stats: u16,
    extra: &str,
    extra_top: &str,
) -> String {
    format!(
        r#"shards = 2
drain_timeout_ms = 3000
{extra_top}
[[source]]
name = "tls"
listen = "127.0.0.1:{port}"
transport = "tls"
framing = "auto"
handshake_timeout_ms = 1500
{extra}
[source.tls]
cert_file = "{}"
key_file = "{}"
ca_file = "{}"
peer_verify = "required-trusted"

[[destination]]
name = "messages"
type = "file"
path = "data/messages.log"
format = "json"
fsync = "never"

[stats]
listen = "127.0.0.1:{stats}"
"#,
        cert.display(),
        key.display(),
        ca.display()
    )
}

/// Sends `line` through `openssl s_client` with `args`; returns its exit status and stderr.
fn openssl_send(port: u16, args: &[&str], line: &str) -> (bool, String) {
    let mut child = Command::new("openssl")
        .args(["s_client", "-quiet", "-no_ign_eof", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (tests/install-deps.sh)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(line.as_bytes())
        .expect("write to openssl");
    let out = child.wait_with_output().expect("openssl exits");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `openssl s_client -max_send_frag 512` with a 26 KiB client certificate
/// (400 DNS names): its Certificate message spans dozens of records.
#[test]
fn openssl_with_a_26_kib_client_certificate_in_512_byte_records_is_accepted() {
    let dir = temp_dir("fragmented-handshake");
    let pki = dir.join("pki");
    let ca = Ca::new("Fragment CA");
    let ca_file = ca.write(&pki.join("ca.pem"));
    let (cert, key) = ca.issue(&LeafSpec::server(1)).write(&pki, "server");
    let mut big = LeafSpec::client("big-client", 2);
    big.dns_sans = (0..400)
        .map(|i| format!("host-{i:04}.a-rather-long-subdomain-name-for-testing.example.org"))
        .collect();
    let (ccert, ckey) = ca.issue(&big).write(&pki, "big-client");
    let der_bytes = std::fs::read_to_string(&ccert).expect("cert").len() * 3 / 4;
    assert!(der_bytes > 24 * 1024, "certificate is {der_bytes} bytes");
    let (port, stats) = (free_port(), free_port());
    let server = Server::start(
        &dir,
        &tls_config(&ca_file, &cert, &key, port, stats, "", ""),
    );
    let client_args = |frag: Option<&'static str>| {
        let mut a = vec![
            "-CAfile".to_string(),
            ca_file.display().to_string(),
            "-cert".to_string(),
            ccert.display().to_string(),
            "-key".to_string(),
            ckey.display().to_string(),
        ];
        if let Some(f) = frag {
            a.extend(["-max_send_frag".to_string(), f.to_string()]);
        }
        a
    };
    for (i, frag) in [Some("512"), None, Some("1024")].into_iter().enumerate() {
        let args = client_args(frag);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, err) = openssl_send(
            port,
            &args,
            &format!("<14>1 - host app - - - fragmented handshake {i}\n"),
        );
        assert!(ok, "openssl with -max_send_frag {frag:?} failed: {err}");
    }
    let out = dir.join("data/messages.log");
    let start = std::time::Instant::now();
    while count_lines(&out) < 3 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    for i in 0..3 {
        assert!(
            text.contains(&format!("fragmented handshake {i}")),
            "message {i} missing ({} lines written); stderr:\n{}",
            text.lines().count(),
            server.stderr()
        );
    }
    assert!(text.contains("big-client"), "identity on the JSON line: {text}");
    assert_eq!(server.metric("ringest_handshake_failures_total"), 0);
    assert!(server.stop().success());
}
