//! The embedded default: `ringest serve` with no `--config` generates a dev
//! PKI under `./ringest-data/pki/`, listens with mutual TLS on
//! 127.0.0.1:6514 and writes to `./ringest-data/messages.log`.

use std::path::Path;

use crate::config::{Config, ConfigError};
use crate::tls::{ensure_dev_pki, DevPki};

pub const DATA_DIR: &str = "ringest-data";

/// The config text for `pki`. Its paths are written relative to `data_dir`,
/// the folder the text is resolved against (like any config file's folder):
/// writing them as the user sees them (`ringest-data/pki/…`) would resolve to
/// `ringest-data/ringest-data/pki/…`.
pub fn config_text(pki: &DevPki, data_dir: &Path) -> String {
    let rel = |p: &Path| -> String { p.strip_prefix(data_dir).unwrap_or(p).display().to_string() };
    format!(
        r#"[[source]]
name = "tls"
listen = "127.0.0.1:6514"
transport = "tls"
framing = "auto"
[source.tls]
cert_file = "{}"
key_file = "{}"
ca_file = "{}"
peer_verify = "required-trusted"

[[destination]]
name = "messages"
type = "file"
path = "messages.log"
format = "raw"
fsync = "batch"

[stats]
listen = "127.0.0.1:9514"
"#,
        rel(&pki.server_cert),
        rel(&pki.server_key),
        rel(&pki.ca_cert)
    )
}

/// Builds the default config, generating the dev PKI on first run.
pub fn load(data_dir: &Path) -> Result<(Config, DevPki), String> {
    let pki = ensure_dev_pki(&data_dir.join("pki")).map_err(|e| format!("dev PKI: {e}"))?;
    let text = config_text(&pki, data_dir);
    let config = Config::from_toml(&text, Path::new("<embedded default>"), data_dir)
        .map_err(|e: ConfigError| e.to_string())?;
    Ok((config, pki))
}

/// The command a user can paste to send one test message with the dev client cert.
pub fn hint(pki: &DevPki) -> String {
    format!(
        "send a test message:\n  echo '<14>1 - myhost myapp - - - hello from openssl' | openssl s_client -quiet -no_ign_eof \\\n    -connect 127.0.0.1:6514 -CAfile {} -cert {} -key {}\nthen: tail {}/messages.log   (metrics: curl -s 127.0.0.1:9514/metrics)",
        pki.ca_cert.display(),
        pki.client_cert.display(),
        pki.client_key.display(),
        DATA_DIR
    )
}
