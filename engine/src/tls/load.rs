//! Reading certificates, keys and CRLs from files and folders.
//!
//! Everything here runs at start-up and on reload, never per connection.
//! Reads are bounded (file size, folder entries) so that a config pointing at
//! the wrong place (`/`, a log file) fails fast with a clear message instead
//! of reading gigabytes.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use rustls::crypto::WebPkiSupportedAlgorithms;

use super::crl::{parse_crl, LoadedCrl};
use super::error::TlsConfigError;

/// A PEM bundle of every public CA is ~250 KiB; 16 MiB leaves ample room.
pub(crate) const PEM_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// `/etc/ssl/certs` holds a few hundred entries; this bounds the scan.
pub(crate) const DIR_ENTRIES_MAX: usize = 10_000;

/// Reads a whole file, refusing anything over [`PEM_FILE_BYTES_MAX`].
pub(crate) fn read_bounded(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    let io_err = |source| TlsConfigError::Io {
        key,
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::new();
    // Read one byte past the limit so "exactly at the limit" and "over it"
    // are told apart without trusting the (racy) metadata length.
    file.take(PEM_FILE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err)?;
    if bytes.len() as u64 > PEM_FILE_BYTES_MAX {
        return Err(TlsConfigError::FileTooLarge {
            key,
            path: path.to_path_buf(),
            bytes_max: PEM_FILE_BYTES_MAX,
        });
    }
    Ok(bytes)
}

fn pem_error(key: &'static str, path: &Path, err: pem::Error) -> TlsConfigError {
    TlsConfigError::InvalidPem {
        key,
        path: path.to_path_buf(),
        detail: err.to_string(),
    }
}

/// Every certificate of a PEM file, in file order. Other PEM sections (a
/// key bundled in the same file, a CRL) are skipped, as OpenSSL does.
pub(crate) fn certs_from_pem(
    key: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(key, path, e))
}

/// A PEM certificate file that must hold at least one certificate.
pub(crate) fn load_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let bytes = read_bounded(key, path)?;
    let certs = certs_from_pem(key, path, &bytes)?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificates {
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file, whichever of PKCS#8, SEC1 or PKCS#1
/// it is.
pub(crate) fn load_private_key(
    key: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let bytes = read_bounded(key, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey {
            key,
            path: path.to_path_buf(),
        },
        other => pem_error(key, path, other),
    })
}

/// CRLs of one file: PEM sections if the file is PEM, else the whole file
/// as one DER CRL (what `openssl ca -gencrl -outform DER` writes). Each is
/// parsed and sorted here (`crl::parse_crl`), so a bad one is reported with
/// its file name.
fn crl_ders_from_bytes(
    key: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsConfigError> {
    if looks_like_pem(bytes) {
        CertificateRevocationListDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error(key, path, e))
    } else {
        Ok(vec![CertificateRevocationListDer::from(bytes.to_vec())])
    }
}

fn parse_crls(
    key: &'static str,
    path: &Path,
    ders: Vec<CertificateRevocationListDer<'static>>,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<Vec<LoadedCrl>, TlsConfigError> {
    ders.iter()
        .map(|der| {
            parse_crl(der.as_ref(), algorithms).map_err(|e| TlsConfigError::InvalidCrl {
                key,
                path: path.to_path_buf(),
                detail: e.to_string(),
            })
        })
        .collect()
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// A CRL file that must hold at least one CRL.
pub(crate) fn load_crl_file(
    key: &'static str,
    path: &Path,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<Vec<LoadedCrl>, TlsConfigError> {
    let bytes = read_bounded(key, path)?;
    let ders = crl_ders_from_bytes(key, path, &bytes)?;
    if ders.is_empty() {
        return Err(TlsConfigError::NoCrls {
            key,
            path: path.to_path_buf(),
        });
    }
    parse_crls(key, path, ders, algorithms)
}

/// The regular files of a folder (symlinks followed, as `c_rehash` makes
/// `<hash>.0` links), sorted by name so that loading is deterministic.
fn dir_files(key: &'static str, dir: &Path) -> Result<Vec<PathBuf>, TlsConfigError> {
    let io_err = |source| TlsConfigError::Io {
        key,
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for (seen, entry) in fs::read_dir(dir).map_err(io_err)?.enumerate() {
        let entry = entry.map_err(io_err)?;
        if seen == DIR_ENTRIES_MAX {
            return Err(TlsConfigError::TooManyFiles {
                key,
                path: dir.to_path_buf(),
                files_max: DIR_ENTRIES_MAX,
            });
        }
        let path = entry.path();
        // fs::metadata follows symlinks; a dangling link is skipped like
        // any other file that is not a certificate.
        if fs::metadata(&path).map(|m| m.is_file()).unwrap_or(false) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Every certificate of every file in a CA folder.
///
/// OpenSSL looks up `<subject-hash>.N` on demand; we load everything up
/// front instead, so the hash names are not required (but harmless). Files
/// that are not PEM certificates (READMEs, CRLs kept in the same folder,
/// keys) are skipped silently: that is what a hashed folder contains. The
/// same certificate reached through a hash symlink and its real name is
/// loaded once.
pub(crate) fn load_ca_dir(
    key: &'static str,
    dir: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let mut seen = HashSet::new();
    let mut certs = Vec::new();
    for file in dir_files(key, dir)? {
        let bytes = read_bounded(key, &file)?;
        let Ok(found) = certs_from_pem(key, &file, &bytes) else {
            log::debug!("{key}: {}: not PEM certificates, skipped", file.display());
            continue;
        };
        for cert in found {
            if seen.insert(cert.as_ref().to_vec()) {
                certs.push(cert);
            }
        }
    }
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificates {
            key,
            path: dir.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Every CRL of every PEM file in a CRL folder. Files without a PEM CRL are
/// skipped (so `crl_dir` may be the same folder as `ca_dir`); a file that
/// holds a CRL which does not parse is an error, because silently dropping
/// a CRL would let revoked clients in. A folder without any CRL is not an
/// error (syslog-ng accepts it too: a CA that has revoked nothing may not
/// have published a CRL yet); the caller logs a warning.
pub(crate) fn load_crl_dir(
    key: &'static str,
    dir: &Path,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<Vec<LoadedCrl>, TlsConfigError> {
    let mut seen = HashSet::new();
    let mut crls = Vec::new();
    for file in dir_files(key, dir)? {
        let bytes = read_bounded(key, &file)?;
        if !bytes.windows(15).any(|w| w == b"BEGIN X509 CRL-") {
            continue;
        }
        let fresh = crl_ders_from_bytes(key, &file, &bytes)?
            .into_iter()
            .filter(|der| seen.insert(der.as_ref().to_vec()))
            .collect();
        crls.extend(parse_crls(key, &file, fresh, algorithms)?);
    }
    Ok(crls)
}
