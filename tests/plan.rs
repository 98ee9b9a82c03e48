//! `check-config` builds the same plan as `serve`: a config whose TLS files
//! are broken fails both, with the same message (issue 10).

use std::path::Path;
use std::process::Command;

use e2e::pki::Pki;
use e2e::server::{bin, free_port, temp_dir};

fn config(pki: &Pki, ca: &Path, key: &Path, extra_tls: &str) -> String {
    format!(
        r#"[[source]]
name = "tls"
listen = "127.0.0.1:{}"
transport = "tls"
[source.tls]
cert_file = "{}"
key_file = "{}"
ca_file = "{}"
peer_verify = "required-trusted"
{extra_tls}
[[destination]]
name = "d"
type = "file"
path = "out.log"
"#,
        free_port(),
        pki.server_cert.display(),
        key.display(),
        ca.display()
    )
}

/// Runs `ringest ARGS --config FILE`; returns (success, the last stderr line).
fn run(cmd: &str, file: &Path) -> (bool, String) {
    let out = Command::new(bin("ringest"))
        .args([cmd, "--config"])
        .arg(file)
        .env("RINGEST_LOG", "warn")
        .output()
        .expect("run ringest");
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err
        .lines()
        .rfind(|l| l.starts_with("ringest: "))
        .unwrap_or("")
        .to_string();
    (out.status.success(), last)
}

#[test]
fn broken_tls_files_fail_check_config_with_the_message_serve_gives() {
    let dir = temp_dir("plan");
    let pki = Pki::generate(&dir.join("pki"));
    let cases = [
        (
            "missing CA",
            config(&pki, &dir.join("pki/no-such-ca.pem"), &pki.server_key, ""),
        ),
        (
            "key of another certificate",
            config(&pki, &pki.ca, &pki.client_key, ""),
        ),
        (
            "unknown cipher",
            config(
                &pki,
                &pki.ca,
                &pki.server_key,
                "cipher_suites = [\"TLS_NO_SUCH_CIPHER\"]\n",
            ),
        ),
    ];
    for (what, text) in cases {
        let file = dir.join(format!("{}.toml", what.replace(' ', "-")));
        std::fs::write(&file, text).expect("config");
        let (check_ok, check_err) = run("check-config", &file);
        let (serve_ok, serve_err) = run("serve", &file);
        assert!(!check_ok, "{what}: check-config accepted it");
        assert!(!serve_ok, "{what}: serve started");
        assert!(!check_err.is_empty(), "{what}: no error line");
        assert_eq!(check_err, serve_err, "{what}: different messages");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
