//! The `[source.tls]` table of the config file, as written by the admin.
//!
//! This file only describes and parses the options; it opens no file. All
//! checking that needs the files (does the CA parse, does the key match the
//! certificate, is a cipher name known) happens in `build_server_config`, so
//! `check-config` and a SIGHUP reload run exactly the same validation.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::error::TlsConfigError;

/// The `[source.tls]` table. Every key and its default is listed in
/// [`OPTIONS`]; a test keeps the two in step.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM chain presented to clients: the server certificate first, then
    /// any intermediates.
    pub cert_file: Option<PathBuf>,
    /// PEM private key for `cert_file`: PKCS#8, SEC1 (EC) or PKCS#1 (RSA).
    pub key_file: Option<PathBuf>,
    /// syslog-ng's `pkcs12-file()`. Not supported: building the config with
    /// it set fails with a message that gives the `openssl` command to
    /// convert the bundle to PEM (see the module doc for why).
    pub pkcs12_file: Option<PathBuf>,
    /// PEM file of trusted CA certificates.
    pub ca_file: Option<PathBuf>,
    /// Folder of trusted CA certificates (OpenSSL `c_rehash` layout, but the
    /// hash names are not needed: every file holding PEM certificates counts).
    pub ca_dir: Option<PathBuf>,
    /// A CRL file, PEM or DER.
    pub crl_file: Option<PathBuf>,
    /// Folder of PEM CRLs (OpenSSL's `<hash>.r0` layout; again any name works).
    pub crl_dir: Option<PathBuf>,
    /// How client certificates are requested and checked.
    pub peer_verify: PeerVerify,
    /// Subject DN patterns (`*` and `?` wildcards); the client's subject must
    /// match one. Empty: no DN constraint.
    pub trusted_dn: Vec<String>,
    /// SHA-256 or SHA-1 certificate fingerprints (`AA:BB:..`, an optional
    /// `SHA256:`/`SHA1:` prefix as syslog-ng prints them). Empty: no pin.
    pub trusted_keys: Vec<String>,
    /// rsyslog's `x509/name` permitted peers, matched against the DNS SANs
    /// and the CN, `*` wildcards inside one label. Empty: no name constraint.
    pub permitted_peer: Vec<String>,
    /// Lets a `*-untrusted` mode use `trusted_dn`/`permitted_peer` without
    /// `trusted_keys`. Off by default: nothing then vouches for the names
    /// (see [`TlsSettings::check_trust`]).
    pub allow_unverified_names: bool,
    /// Lowest TLS version offered: "1.2" or "1.3".
    pub tls_version_min: TlsVersion,
    /// Highest TLS version offered: "1.2" or "1.3".
    pub tls_version_max: TlsVersion,
    /// Cipher suites in server preference order, IANA or OpenSSL names.
    /// Empty: the RFC 9662 default list (AES-GCM before ChaCha20).
    pub cipher_suites: Vec<String>,
    /// Key-exchange groups in preference order (syslog-ng's
    /// `ecdh-curve-list`). Empty: the provider's defaults.
    pub kx_groups: Vec<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            cert_file: None,
            key_file: None,
            pkcs12_file: None,
            ca_file: None,
            ca_dir: None,
            crl_file: None,
            crl_dir: None,
            peer_verify: PeerVerify::default(),
            trusted_dn: Vec::new(),
            trusted_keys: Vec::new(),
            permitted_peer: Vec::new(),
            allow_unverified_names: false,
            tls_version_min: TlsVersion::Tls12,
            tls_version_max: TlsVersion::Tls13,
            cipher_suites: Vec::new(),
            kx_groups: Vec::new(),
        }
    }
}

/// One row of the option table: key, default as written in TOML, meaning.
/// The lead's README table is generated from (or checked against) this.
#[rustfmt::skip]
pub const OPTIONS: &[(&str, &str, &str)] = &[
    ("cert_file",       "none (required)",    "PEM server certificate chain, leaf first"),
    ("key_file",        "none (required)",    "PEM private key: PKCS#8, SEC1 EC or PKCS#1 RSA; not encrypted"),
    ("pkcs12_file",     "none",               "not supported; the error gives the openssl command to convert to PEM"),
    ("ca_file",         "none",               "PEM file of trusted CAs; *-trusted modes need ca_file or ca_dir"),
    ("ca_dir",          "none",               "folder of PEM CA files (c_rehash layout works, hash names not required)"),
    ("crl_file",        "none",               "CRL file, PEM or DER; revoked client certificates are refused"),
    ("crl_dir",         "none",               "folder of PEM CRL files (c_rehash .r0 layout works, names not required)"),
    ("peer_verify",     "\"required-trusted\"", "optional-untrusted | optional-trusted | required-untrusted | required-trusted | yes | no"),
    ("trusted_dn",      "[]",                 "subject DN patterns, `*`/`?` wildcards, syslog-ng DN format"),
    ("trusted_keys",    "[]",                 "SHA-256 or SHA-1 fingerprints, AA:BB:.. (SHA256:/SHA1: prefix optional)"),
    ("permitted_peer",  "[]",                 "names matched against DNS SANs and the CN, `*` within one label"),
    ("allow_unverified_names", "false",       "let optional-/required-untrusted use trusted_dn/permitted_peer without trusted_keys: names are then taken as claimed by any self-signed certificate"),
    ("tls_version_min", "\"1.2\"",              "lowest TLS version offered: \"1.2\" or \"1.3\""),
    ("tls_version_max", "\"1.3\"",              "highest TLS version offered: \"1.2\" or \"1.3\""),
    ("cipher_suites",   "[] = RFC 9662 list", "IANA or OpenSSL names, server preference order"),
    ("kx_groups",       "[] = X25519, secp256r1, secp384r1, X25519MLKEM768", "key-exchange groups, preference order"),
];

impl TlsSettings {
    /// Refuses trust settings that authenticate nobody: in a `*-untrusted`
    /// mode no CA vouches for the certificate, so `trusted_dn` or
    /// `permitted_peer` without a `trusted_keys` pin admits anyone who makes
    /// a self-signed certificate claiming a matching name, and logs them
    /// under that name. Allowed only with `allow_unverified_names = true`.
    /// Reads no file: `check-config` and `build_server_config` both call it.
    pub fn check_trust(&self) -> Result<(), TlsConfigError> {
        if self.peer_verify.is_trusted()
            || !self.trusted_keys.is_empty()
            || self.allow_unverified_names
        {
            return Ok(());
        }
        let key = if !self.trusted_dn.is_empty() {
            "trusted_dn"
        } else if !self.permitted_peer.is_empty() {
            "permitted_peer"
        } else {
            return Ok(());
        };
        Err(TlsConfigError::UnverifiedNames {
            key,
            mode: self.peer_verify.as_str(),
        })
    }

    /// Makes every relative path absolute against `base_dir`, the folder of
    /// the config file, so that the daemon does not depend on its working
    /// directory (which systemd sets to `/`).
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let paths = [
            &mut self.cert_file,
            &mut self.key_file,
            &mut self.pkcs12_file,
            &mut self.ca_file,
            &mut self.ca_dir,
            &mut self.crl_file,
            &mut self.crl_dir,
        ];
        for path in paths.into_iter().flatten() {
            if path.is_relative() {
                *path = base_dir.join(&*path);
            }
        }
    }
}

/// syslog-ng's `peer-verify()`. The four modes differ on two questions:
/// must the client send a certificate, and must that certificate chain to a
/// trusted CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PeerVerify {
    /// A certificate is requested but never required, and not validated.
    OptionalUntrusted,
    /// A missing certificate is accepted; one that is sent must be valid.
    OptionalTrusted,
    /// A certificate must be sent; its chain is not validated, but the
    /// handshake signature still proves the client holds its key.
    RequiredUntrusted,
    /// A certificate must be sent and must be valid. syslog-ng's default.
    #[default]
    RequiredTrusted,
}

impl PeerVerify {
    /// The names accepted in the config file, for error messages.
    pub const NAMES: &'static [&'static str] = &[
        "optional-untrusted",
        "optional-trusted",
        "required-untrusted",
        "required-trusted",
        "yes",
        "no",
    ];

    /// Must the client present a certificate?
    pub fn is_required(self) -> bool {
        matches!(
            self,
            PeerVerify::RequiredUntrusted | PeerVerify::RequiredTrusted
        )
    }

    /// Must a presented certificate chain to a trusted CA?
    pub fn is_trusted(self) -> bool {
        matches!(
            self,
            PeerVerify::OptionalTrusted | PeerVerify::RequiredTrusted
        )
    }

    /// The canonical (kebab-case) name.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerVerify::OptionalUntrusted => "optional-untrusted",
            PeerVerify::OptionalTrusted => "optional-trusted",
            PeerVerify::RequiredUntrusted => "required-untrusted",
            PeerVerify::RequiredTrusted => "required-trusted",
        }
    }

    /// Parses a mode name the way syslog-ng does: case-insensitive, `_` or
    /// `-` as separator, plus the aliases `yes`/`no` (and `none`, syslog-ng's
    /// other spelling of optional-untrusted).
    pub fn parse(name: &str) -> Option<PeerVerify> {
        let name = name.trim().to_ascii_lowercase().replace('_', "-");
        match name.as_str() {
            "optional-untrusted" | "no" | "none" => Some(PeerVerify::OptionalUntrusted),
            "optional-trusted" => Some(PeerVerify::OptionalTrusted),
            "required-untrusted" => Some(PeerVerify::RequiredUntrusted),
            "required-trusted" | "yes" => Some(PeerVerify::RequiredTrusted),
            _ => None,
        }
    }
}

impl fmt::Display for PeerVerify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PeerVerify {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModeVisitor;
        impl Visitor<'_> for ModeVisitor {
            type Value = PeerVerify;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "one of {}", PeerVerify::NAMES.join(", "))
            }
            // `peer_verify = true` reads naturally in TOML; it means "yes".
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<PeerVerify, E> {
                Ok(if v {
                    PeerVerify::RequiredTrusted
                } else {
                    PeerVerify::OptionalUntrusted
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PeerVerify, E> {
                PeerVerify::parse(v).ok_or_else(|| {
                    E::custom(format!(
                        "unknown peer_verify {v:?}; valid: {}",
                        PeerVerify::NAMES.join(", ")
                    ))
                })
            }
        }
        deserializer.deserialize_any(ModeVisitor)
    }
}

/// A TLS protocol version that rustls implements. TLS 1.0 and 1.1 are not
/// offered by rustls at all, and RFC 9662 deprecates them for syslog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// The name used in logs and in the identity record ("TLSv1.3").
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
        }
    }

    /// Accepts "1.2", "TLSv1.2", "tls1.2", "TLS 1.2" (any case).
    pub fn parse(name: &str) -> Option<TlsVersion> {
        let lower = name.trim().to_ascii_lowercase();
        let bare = lower
            .strip_prefix("tlsv")
            .or_else(|| lower.strip_prefix("tls"))
            .unwrap_or(&lower)
            .trim();
        match bare {
            "1.2" | "12" => Some(TlsVersion::Tls12),
            "1.3" | "13" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionVisitor;
        impl Visitor<'_> for VersionVisitor {
            type Value = TlsVersion;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"1.2\" or \"1.3\"")
            }
            // An unquoted `tls_version_min = 1.2` is a TOML float; accept it.
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TlsVersion, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TlsVersion, E> {
                TlsVersion::parse(v).ok_or_else(|| {
                    E::custom(format!(
                        "unsupported TLS version {v:?}; valid: \"1.2\", \"1.3\" \
                         (TLS 1.0 and 1.1 are not implemented)"
                    ))
                })
            }
        }
        deserializer.deserialize_any(VersionVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TlsSettings, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn empty_table_gives_documented_defaults() {
        let s = parse("").unwrap();
        assert_eq!(s, TlsSettings::default());
        assert_eq!(s.peer_verify, PeerVerify::RequiredTrusted);
        assert_eq!(s.tls_version_min, TlsVersion::Tls12);
        assert_eq!(s.tls_version_max, TlsVersion::Tls13);
    }

    #[test]
    fn peer_verify_accepts_syslog_ng_names_and_aliases() {
        let cases = [
            ("\"optional-untrusted\"", PeerVerify::OptionalUntrusted),
            ("\"optional-trusted\"", PeerVerify::OptionalTrusted),
            ("\"required-untrusted\"", PeerVerify::RequiredUntrusted),
            ("\"required-trusted\"", PeerVerify::RequiredTrusted),
            ("\"Required_Trusted\"", PeerVerify::RequiredTrusted),
            ("\"yes\"", PeerVerify::RequiredTrusted),
            ("\"no\"", PeerVerify::OptionalUntrusted),
            ("true", PeerVerify::RequiredTrusted),
            ("false", PeerVerify::OptionalUntrusted),
        ];
        for (value, want) in cases {
            let s = parse(&format!("peer_verify = {value}")).unwrap();
            assert_eq!(s.peer_verify, want, "peer_verify = {value}");
        }
        let err = parse("peer_verify = \"maybe\"").unwrap_err().to_string();
        assert!(err.contains("required-trusted"), "{err}");
    }

    #[test]
    fn tls_versions_parse_in_several_spellings() {
        let s = parse("tls_version_min = \"TLSv1.3\"\ntls_version_max = 1.3").unwrap();
        assert_eq!(s.tls_version_min, TlsVersion::Tls13);
        assert_eq!(s.tls_version_max, TlsVersion::Tls13);
        let err = parse("tls_version_min = \"1.1\"").unwrap_err().to_string();
        assert!(err.contains("not implemented"), "{err}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let err = parse("cert-file = \"x\"").unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn relative_paths_resolve_against_config_folder() {
        let mut s = parse("cert_file = \"certs/server.pem\"\nca_dir = \"/etc/ca\"").unwrap();
        s.resolve_paths(Path::new("/etc/ringest"));
        assert_eq!(
            s.cert_file.unwrap(),
            PathBuf::from("/etc/ringest/certs/server.pem")
        );
        assert_eq!(s.ca_dir.unwrap(), PathBuf::from("/etc/ca"));
    }

    /// The option table and the struct cannot drift: the destructuring below
    /// stops compiling when a field is added, and the names must equal the
    /// table's keys, each of which the parser must accept.
    #[test]
    fn option_table_matches_struct() {
        let TlsSettings {
            cert_file: _,
            key_file: _,
            pkcs12_file: _,
            ca_file: _,
            ca_dir: _,
            crl_file: _,
            crl_dir: _,
            peer_verify: _,
            trusted_dn: _,
            trusted_keys: _,
            permitted_peer: _,
            allow_unverified_names: _,
            tls_version_min: _,
            tls_version_max: _,
            cipher_suites: _,
            kx_groups: _,
        } = TlsSettings::default();
        let fields = [
            "cert_file",
            "key_file",
            "pkcs12_file",
            "ca_file",
            "ca_dir",
            "crl_file",
            "crl_dir",
            "peer_verify",
            "trusted_dn",
            "trusted_keys",
            "permitted_peer",
            "allow_unverified_names",
            "tls_version_min",
            "tls_version_max",
            "cipher_suites",
            "kx_groups",
        ];
        let keys: Vec<&str> = OPTIONS.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(keys, fields);
        for key in fields {
            let value = match key {
                "peer_verify" => "\"yes\"",
                "allow_unverified_names" => "true",
                "tls_version_min" | "tls_version_max" => "\"1.2\"",
                k if k.ends_with("_file") || k.ends_with("_dir") => "\"/x\"",
                _ => "[]",
            };
            parse(&format!("{key} = {value}")).unwrap();
        }
    }
}
