//! The `[destination.tls]` table: how ringest, as a TLS client, proves who
//! it is to an upstream server and checks who the server is.
//!
//! Like `settings.rs` for sources, this only describes and parses; the files
//! are read by `build_client_config`, so `check-config` and start-up run the
//! same checks. The names and meanings follow `[source.tls]`, seen from the
//! other end: `peer_verify` and `trusted_keys` judge the server's
//! certificate, `cert_file`/`key_file` are the client certificate.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::settings::{PeerVerify, TlsVersion};

/// The `[destination.tls]` table; every key is in [`CLIENT_OPTIONS`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    /// PEM file of CAs trusted to sign the server's certificate.
    pub ca_file: Option<PathBuf>,
    /// Folder of PEM CA files (the same loader as `[source.tls] ca_dir`).
    pub ca_dir: Option<PathBuf>,
    /// PEM client certificate chain, leaf first; none = no client certificate.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The name checked against the server's certificate (and sent as SNI
    /// when it is a DNS name). None: the host part of each server address.
    pub server_name: Option<String>,
    /// How the server's certificate is checked: the `*-trusted` modes check
    /// the chain and the name; a server always has to send a certificate.
    pub peer_verify: PeerVerify,
    /// Pinned server certificate fingerprints (SHA-256 or SHA-1).
    pub trusted_keys: Vec<String>,
    pub tls_version_min: TlsVersion,
    pub tls_version_max: TlsVersion,
    /// Suites in preference order, IANA or OpenSSL names; empty = the default list.
    pub cipher_suites: Vec<String>,
}

impl Default for ClientTlsConfig {
    fn default() -> Self {
        ClientTlsConfig {
            ca_file: None,
            ca_dir: None,
            cert_file: None,
            key_file: None,
            server_name: None,
            peer_verify: PeerVerify::default(),
            trusted_keys: Vec::new(),
            tls_version_min: TlsVersion::Tls12,
            tls_version_max: TlsVersion::Tls13,
            cipher_suites: Vec::new(),
        }
    }
}

/// (key, default as written in TOML, meaning) of `[destination.tls]`.
#[rustfmt::skip]
pub const CLIENT_OPTIONS: &[(&str, &str, &str)] = &[
    ("ca_file",         "none",               "PEM file of CAs trusted to sign the upstream server's certificate; *-trusted modes need ca_file or ca_dir. Kafka: the table turns on TLS to the brokers, and only ca_file (else the system CAs), cert_file and key_file apply"),
    ("ca_dir",          "none",               "folder of PEM CA files (c_rehash layout works, hash names not required)"),
    ("cert_file",       "none",               "PEM client certificate chain, leaf first, presented to the upstream"),
    ("key_file",        "none",               "PEM private key of cert_file"),
    ("server_name",     "host of each server", "name checked against the server's certificate (DNS name or IP address)"),
    ("peer_verify",     "\"required-trusted\"", "how the server's certificate is checked: *-trusted check chain and name; *-untrusted only trusted_keys"),
    ("trusted_keys",    "[]",                 "pinned SHA-256 or SHA-1 fingerprints of the server's certificate"),
    ("tls_version_min", "\"1.2\"",            "lowest TLS version offered: \"1.2\" or \"1.3\""),
    ("tls_version_max", "\"1.3\"",            "highest TLS version offered: \"1.2\" or \"1.3\""),
    ("cipher_suites",   "[] = RFC 9662 list", "IANA or OpenSSL names, preference order"),
];

impl ClientTlsConfig {
    pub fn resolve_paths(&mut self, base_dir: &Path) {
        let paths = [
            &mut self.ca_file,
            &mut self.ca_dir,
            &mut self.cert_file,
            &mut self.key_file,
        ];
        for path in paths.into_iter().flatten() {
            if path.is_relative() {
                *path = base_dir.join(&*path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option table and the struct cannot drift (see settings.rs).
    #[test]
    fn option_table_matches_struct() {
        let ClientTlsConfig {
            ca_file: _,
            ca_dir: _,
            cert_file: _,
            key_file: _,
            server_name: _,
            peer_verify: _,
            trusted_keys: _,
            tls_version_min: _,
            tls_version_max: _,
            cipher_suites: _,
        } = ClientTlsConfig::default();
        let fields = [
            "ca_file",
            "ca_dir",
            "cert_file",
            "key_file",
            "server_name",
            "peer_verify",
            "trusted_keys",
            "tls_version_min",
            "tls_version_max",
            "cipher_suites",
        ];
        let keys: Vec<&str> = CLIENT_OPTIONS.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(keys, fields);
        let empty: ClientTlsConfig = toml::from_str("").expect("empty table");
        assert_eq!(empty, ClientTlsConfig::default());
        let err = toml::from_str::<ClientTlsConfig>("crl_file = \"x\"")
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }
}
