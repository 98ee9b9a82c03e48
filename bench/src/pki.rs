//! A throwaway PKI generated with rcgen: an ECDSA P-256 CA, a server
//! certificate for localhost/127.0.0.1 (ECDSA P-256 or RSA-2048), and a
//! client certificate. syslog-ng wants a hashed CA folder (`openssl rehash`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

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

fn new_key(kind: ServerKey) -> Result<KeyPair> {
    Ok(match kind {
        ServerKey::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        ServerKey::Rsa2048 => {
            KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?
        }
    })
}

pub fn generate(dir: &Path, server: ServerKey, openssl: &Path) -> Result<Pki> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("write {}", p.display()))?;
        Ok(p)
    };

    let ca_key = new_key(ServerKey::EcdsaP256)?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, "bench CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = p.self_signed(&ca_key)?;

    let leaf = |cn: &str, key: &KeyPair, server: bool| -> Result<String> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, cn);
        if server {
            p.subject_alt_names = vec![
                SanType::DnsName("localhost".try_into()?),
                SanType::IpAddress("127.0.0.1".parse()?),
            ];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        Ok(p.signed_by(key, &ca_cert, &ca_key)?.pem())
    };
    let server_key = new_key(server)?;
    let client_key = new_key(ServerKey::EcdsaP256)?;

    let ca = write("ca.pem", &ca_cert.pem())?;
    let pki = Pki {
        server_cert: write("server.pem", &leaf("localhost", &server_key, true)?)?,
        server_key: write("server.key", &server_key.serialize_pem())?,
        client_cert: write("client.pem", &leaf("bench-client", &client_key, false)?)?,
        client_key: write("client.key", &client_key.serialize_pem())?,
        ca_dir: dir.join("ca.d"),
        ca,
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
