//! Why a `[source.tls]` table could not be turned into a server config.
//!
//! Every variant names the config key at fault, and the path when a file is
//! involved, because the admin reads this in `check-config` output or in the
//! log line of a refused SIGHUP reload and has to know what to fix.

use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum TlsConfigError {
    /// A key that this configuration needs is not set.
    Missing {
        key: &'static str,
        reason: &'static str,
    },
    /// A file or folder could not be read.
    Io {
        key: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A file is bigger than any sane PEM bundle; refused rather than read.
    FileTooLarge {
        key: &'static str,
        path: PathBuf,
        bytes_max: u64,
    },
    /// A folder holds more entries than we are willing to scan.
    TooManyFiles {
        key: &'static str,
        path: PathBuf,
        files_max: usize,
    },
    /// A PEM file could not be decoded.
    InvalidPem {
        key: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// The file (or every file of the folder) holds no certificate.
    NoCertificates { key: &'static str, path: PathBuf },
    /// The file holds no private key.
    NoPrivateKey { key: &'static str, path: PathBuf },
    /// The file (or folder) holds no CRL.
    NoCrls { key: &'static str, path: PathBuf },
    /// A certificate was found but cannot be used.
    InvalidCertificate {
        key: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// A CRL was found but cannot be parsed.
    InvalidCrl {
        key: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// The private key is of a type or format the crypto provider refuses.
    InvalidKey {
        key: &'static str,
        path: PathBuf,
        detail: String,
    },
    /// `key_file` is not the key of the first certificate of `cert_file`.
    KeyMismatch {
        cert_file: PathBuf,
        key_file: PathBuf,
    },
    /// A `cipher_suites` name that rustls does not implement.
    UnknownCipherSuite {
        name: String,
        valid: Vec<&'static str>,
    },
    /// A `kx_groups` name that the provider does not implement.
    UnknownKxGroup {
        name: String,
        valid: Vec<&'static str>,
    },
    /// An enabled TLS version has no cipher suite left in `cipher_suites`.
    NoSuiteForVersion { version: &'static str },
    /// An enabled TLS version has no usable group left in `kx_groups`.
    NoGroupForVersion { version: &'static str },
    /// TLS 1.2 is enabled but none of its suites fits the server key type.
    NoSuiteForKey { key_type: String },
    /// `tls_version_min` is above `tls_version_max`.
    VersionRange {
        min: &'static str,
        max: &'static str,
    },
    /// A `trusted_keys` entry is not a SHA-1 or SHA-256 fingerprint.
    InvalidFingerprint {
        index: usize,
        value: String,
        reason: &'static str,
    },
    /// An empty entry in a pattern list would match nothing (or, for
    /// `trusted_dn`, only an empty subject): almost certainly a typo.
    EmptyPattern { key: &'static str, index: usize },
    /// A `*-untrusted` mode with name constraints but no pin: the names are
    /// whatever a self-signed certificate claims. See `check_trust`.
    UnverifiedNames {
        key: &'static str,
        mode: &'static str,
    },
    /// At reload, `crl_dir` holds no CRL although the config in force has
    /// some from it: refused, so revocation is not silently turned off.
    CrlDirEmptied { path: PathBuf, crls_in_force: usize },
    /// `pkcs12_file` is set; see the module doc for why it is not supported.
    Pkcs12Unsupported { path: PathBuf },
    /// rustls refused the assembled configuration.
    Rustls { key: &'static str, detail: String },
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use TlsConfigError::*;
        match self {
            Missing { key, reason } => write!(f, "{key}: not set; {reason}"),
            Io { key, path, source } => write!(f, "{key}: {}: {source}", path.display()),
            FileTooLarge {
                key,
                path,
                bytes_max,
            } => write!(
                f,
                "{key}: {}: larger than {bytes_max} bytes; not a certificate file?",
                path.display()
            ),
            TooManyFiles {
                key,
                path,
                files_max,
            } => write!(
                f,
                "{key}: {}: more than {files_max} entries; point it at a folder of CA files only",
                path.display()
            ),
            InvalidPem { key, path, detail } => {
                write!(f, "{key}: {}: invalid PEM: {detail}", path.display())
            }
            NoCertificates { key, path } => {
                write!(f, "{key}: {}: no certificates found", path.display())
            }
            NoPrivateKey { key, path } => write!(
                f,
                "{key}: {}: no private key found (expected PEM PRIVATE KEY, EC PRIVATE KEY \
                 or RSA PRIVATE KEY; encrypted keys are not supported)",
                path.display()
            ),
            NoCrls { key, path } => write!(f, "{key}: {}: no CRLs found", path.display()),
            InvalidCertificate { key, path, detail } => {
                write!(
                    f,
                    "{key}: {}: unusable certificate: {detail}",
                    path.display()
                )
            }
            InvalidCrl { key, path, detail } => {
                write!(f, "{key}: {}: invalid CRL: {detail}", path.display())
            }
            InvalidKey { key, path, detail } => {
                write!(
                    f,
                    "{key}: {}: unusable private key: {detail}",
                    path.display()
                )
            }
            KeyMismatch {
                cert_file,
                key_file,
            } => write!(
                f,
                "key_file: {}: does not match the certificate in cert_file {}",
                key_file.display(),
                cert_file.display()
            ),
            UnknownCipherSuite { name, valid } => write!(
                f,
                "cipher_suites: unknown suite {name:?}; valid: {}",
                valid.join(", ")
            ),
            UnknownKxGroup { name, valid } => write!(
                f,
                "kx_groups: unknown group {name:?}; valid: {}",
                valid.join(", ")
            ),
            NoSuiteForVersion { version } => write!(
                f,
                "cipher_suites: no {version} suite listed, but {version} is enabled; \
                 add one or narrow tls_version_min/tls_version_max"
            ),
            NoGroupForVersion { version } => write!(
                f,
                "kx_groups: no group usable with {version} is listed (the ML-KEM groups \
                 are TLS 1.3 only); add X25519 or secp256r1, or narrow \
                 tls_version_min/tls_version_max"
            ),
            NoSuiteForKey { key_type } => write!(
                f,
                "cipher_suites: no TLS 1.2 suite usable with the {key_type} server key \
                 (ECDHE-ECDSA-* needs an EC key, ECDHE-RSA-* an RSA key)"
            ),
            VersionRange { min, max } => {
                write!(f, "tls_version_min: {min} is above tls_version_max {max}")
            }
            InvalidFingerprint {
                index,
                value,
                reason,
            } => write!(f, "trusted_keys[{index}]: {value:?}: {reason}"),
            EmptyPattern { key, index } => write!(f, "{key}[{index}]: empty pattern"),
            UnverifiedNames { key, mode } => write!(
                f,
                "{key}: authenticates nobody with peer_verify = \"{mode}\": no CA checks the \
                 client certificate, so anyone can make a self-signed certificate with a \
                 matching name, be accepted, and be logged under that name; use \
                 peer_verify = \"required-trusted\" with ca_file/ca_dir, or pin the \
                 certificates with trusted_keys, or set allow_unverified_names = true to \
                 accept names as claimed"
            ),
            CrlDirEmptied {
                path,
                crls_in_force,
            } => write!(
                f,
                "crl_dir: {}: no CRLs found, but {crls_in_force} from it are in force; \
                 keeping them, since an empty folder would turn revocation off (a CRL \
                 publisher caught mid-update?); put the CRLs back and reload, or remove \
                 crl_dir from the config and restart",
                path.display()
            ),
            Pkcs12Unsupported { path } => write!(
                f,
                "pkcs12_file: {}: not supported; convert it to PEM with \
                 `openssl pkcs12 -in {0} -nodes -nokeys -out cert.pem` and \
                 `openssl pkcs12 -in {0} -nodes -nocerts -out key.pem`, \
                 then set cert_file and key_file",
                path.display()
            ),
            Rustls { key, detail } => write!(f, "{key}: {detail}"),
        }
    }
}

impl std::error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsConfigError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
