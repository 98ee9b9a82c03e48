//! The bench's throwaway PKI, from the workspace's one builder (testkit): an ECDSA P-256 CA, a server
//! certificate for localhost/127.0.0.1 (ECDSA P-256 or RSA-2048), and a
//! client certificate. syslog-ng wants a hashed CA folder (`openssl rehash`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKey {
    EcdsaP256,
    Rsa2048,
}

impl ServerKey {
    pub fn name(self) -> &'static str {
        match self {
            ServerKey::EcdsaP256 => "ECDSA P-256",
            ServerKey::Rsa2048 => "RSA-2048",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pki {
    pub ca: PathBuf,
    /// Folder holding ca.pem and its `<hash>.0` link, for syslog-ng's ca-dir().
    pub ca_dir: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// The workspace's one test PKI builder (`testkit`): an ECDSA CA, the
/// server certificate with the chosen key, an ECDSA client certificate.
pub fn generate(dir: &Path, server: ServerKey, openssl: &Path) -> Result<Pki> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let ca = testkit::Ca::new("bench CA");
    let mut server_spec = testkit::LeafSpec::server(1);
    server_spec.alg = match server {
        ServerKey::EcdsaP256 => testkit::KeyAlg::EcdsaP256,
        ServerKey::Rsa2048 => testkit::KeyAlg::Rsa2048,
    };
    let (server_cert, server_key) = ca.issue(&server_spec).write(dir, "server");
    let (client_cert, client_key) = ca
        .issue(&testkit::LeafSpec::client("bench-client", 2))
        .write(dir, "client");
    let pki = Pki {
        server_cert,
        server_key,
        client_cert,
        client_key,
        ca_dir: dir.join("ca.d"),
        ca: ca.write(&dir.join("ca.pem")),
    };
    std::fs::create_dir_all(&pki.ca_dir)?;
    std::fs::copy(&pki.ca, pki.ca_dir.join("ca.pem"))?;
    let out = Command::new(openssl)
        .arg("rehash")
        .arg(&pki.ca_dir)
        .output()
        .with_context(|| {
            format!(
                "cannot run {} rehash (apt-get install openssl)",
                openssl.display()
            )
        })?;
    if !out.status.success() {
        bail!(
            "openssl rehash {} failed: {}",
            pki.ca_dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let hashed = std::fs::read_dir(&pki.ca_dir)?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".0"));
    if !hashed {
        bail!(
            "openssl rehash left no <hash>.0 link in {}",
            pki.ca_dir.display()
        );
    }
    Ok(pki)
}
