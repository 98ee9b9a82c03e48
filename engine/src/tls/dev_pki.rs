//! A throw-away PKI for the embedded default config, so that `ringest` with
//! no config accepts mutual TLS on localhost out of the box.
//!
//! First run: generates (ECDSA P-256) a CA, a server certificate for
//! `localhost`, `127.0.0.1` and `::1`, and one client certificate with CN
//! `ringest-dev-client`, as PEM files in `dir`:
//!
//! | file             | content                              | mode |
//! |------------------|--------------------------------------|------|
//! | `ca.pem`         | the dev CA certificate               | 0644 |
//! | `server.pem`     | server certificate                   | 0644 |
//! | `server-key.pem` | server private key (PKCS#8)          | 0600 |
//! | `client.pem`     | client certificate                   | 0644 |
//! | `client-key.pem` | client private key (PKCS#8)          | 0600 |
//!
//! Later runs reuse these files. They are regenerated, all together, when
//! one is missing or a certificate expires within a day. The CA's private
//! key is never written: nobody, not even this tool, can mint more
//! certificates that the dev server trusts. Delete the folder to start over.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::load;

/// Paths of the dev PKI files (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevPki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

#[derive(Debug)]
pub enum DevPkiError {
    Io { path: PathBuf, source: io::Error },
    Generate(rcgen::Error),
}

impl fmt::Display for DevPkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DevPkiError::Io { path, source } => write!(f, "dev PKI: {}: {source}", path.display()),
            DevPkiError::Generate(e) => write!(f, "dev PKI: generating certificates: {e}"),
        }
    }
}

impl std::error::Error for DevPkiError {}

impl From<rcgen::Error> for DevPkiError {
    fn from(e: rcgen::Error) -> Self {
        DevPkiError::Generate(e)
    }
}

/// The dev CA lives 10 years; leaves 825 days (the longest validity
/// mainstream TLS clients still accept for leaf certificates).
const CA_DAYS: i64 = 3650;
const LEAF_DAYS: i64 = 825;
/// Regenerate when a certificate expires within this many seconds.
const EXPIRY_MARGIN_S: i64 = 86_400;

pub const DEV_CLIENT_CN: &str = "ringest-dev-client";

impl DevPki {
    fn in_dir(dir: &Path) -> DevPki {
        DevPki {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client-key.pem"),
        }
    }

    fn all(&self) -> [&Path; 5] {
        [
            &self.ca_cert,
            &self.server_cert,
            &self.server_key,
            &self.client_cert,
            &self.client_key,
        ]
    }
}

/// Returns the dev PKI in `dir`, generating it on first use.
pub fn ensure_dev_pki(dir: &Path) -> Result<DevPki, DevPkiError> {
    let pki = DevPki::in_dir(dir);
    if is_reusable(&pki) {
        return Ok(pki);
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| DevPkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    generate(&pki)?;
    log::info!("generated a development PKI in {}", dir.display());
    Ok(pki)
}

fn is_reusable(pki: &DevPki) -> bool {
    if !pki.all().iter().all(|p| p.is_file()) {
        return false;
    }
    let deadline = OffsetDateTime::now_utc().unix_timestamp() + EXPIRY_MARGIN_S;
    [&pki.ca_cert, &pki.server_cert, &pki.client_cert]
        .iter()
        .all(|path| {
            let Ok(certs) = load::load_certs("dev_pki", path) else {
                return false;
            };
            certs
                .first()
                .is_some_and(|der| match X509Certificate::from_der(der) {
                    Ok((_, cert)) => cert.validity().not_after.timestamp() > deadline,
                    Err(_) => false,
                })
        })
}

fn generate(pki: &DevPki) -> Result<(), DevPkiError> {
    // ca.pem is the commit marker: removed first, written last, so a run
    // interrupted half-way leaves no ca.pem and the next run starts over
    // instead of reusing a mix of old and new files.
    match fs::remove_file(&pki.ca_cert) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(DevPkiError::Io {
                path: pki.ca_cert.clone(),
                source,
            })
        }
    }
    let now = OffsetDateTime::now_utc();
    // Backdate a little so a client whose clock lags slightly accepts it.
    let not_before = now - Duration::hours(1);

    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("ringest development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = not_before;
    ca.not_after = now + Duration::days(CA_DAYS);
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut server = CertificateParams::default();
    server.distinguished_name = name("localhost");
    server.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.not_before = not_before;
    server.not_after = now + Duration::days(LEAF_DAYS);
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;

    let client_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut client = CertificateParams::default();
    client.distinguished_name = name(DEV_CLIENT_CN);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client.not_before = not_before;
    client.not_after = now + Duration::days(LEAF_DAYS);
    let client_cert = client.signed_by(&client_key, &ca_cert, &ca_key)?;

    write_file(&pki.server_key, &server_key.serialize_pem(), 0o600)?;
    write_file(&pki.client_key, &client_key.serialize_pem(), 0o600)?;
    write_file(&pki.server_cert, &server_cert.pem(), 0o644)?;
    write_file(&pki.client_cert, &client_cert.pem(), 0o644)?;
    write_file(&pki.ca_cert, &ca_cert.pem(), 0o644)?;
    Ok(())
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "ringest development");
    dn.push(DnType::CommonName, cn);
    dn
}

/// Writes through a temporary file and renames it into place, so a reader
/// never sees a half-written file and a key is never briefly world-readable
/// (the mode is set at creation).
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), DevPkiError> {
    let tmp = path.with_extension("pem.tmp");
    let io_err = |source| DevPkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err)?;
    file.write_all(contents.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    fs::rename(&tmp, path).map_err(io_err)
}
