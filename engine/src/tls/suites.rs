//! Names of cipher suites and key-exchange groups, as admins write them.
//!
//! syslog-ng and rsyslog users paste OpenSSL names (`ECDHE-RSA-AES128-GCM-
//! SHA256`), RFCs and IANA use `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`, and
//! rustls prints `TLS13_AES_128_GCM_SHA256`. All three are accepted, case
//! does not matter, and an entry may hold a `:`- or `,`-separated list as
//! OpenSSL's `cipher_list` strings do. A name rustls lacks is an error that
//! lists every valid name, so `check-config` tells the admin what to write.

use rustls::crypto::aws_lc_rs::{cipher_suite as cs, kx_group, DEFAULT_KX_GROUPS};
use rustls::crypto::SupportedKxGroup;
use rustls::{CipherSuite, SupportedCipherSuite};

use super::error::TlsConfigError;

/// One implemented suite and its names.
struct SuiteName {
    suite: SupportedCipherSuite,
    iana: &'static str,
    /// OpenSSL's name; for TLS 1.3 OpenSSL uses the IANA name.
    openssl: &'static str,
}

/// Every suite we offer, in the default server preference order.
///
/// Why this order: RFC 9662 makes TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
/// mandatory for TLS 1.2 syslog and TLS_AES_128_GCM_SHA256 is TLS 1.3's
/// mandatory suite; AES-GCM runs on AES-NI and is about twice as fast as
/// ChaCha20-Poly1305 here, and AES-128 is cheaper than AES-256 at the same
/// security margin for this use. With `ignore_client_order` the server picks
/// the first suite of this list that the client offers. TLS 1.2 suites are
/// further filtered by rustls to those matching the server key type.
static SUITES: &[SuiteName] = &[
    SuiteName {
        suite: cs::TLS13_AES_128_GCM_SHA256,
        iana: "TLS_AES_128_GCM_SHA256",
        openssl: "TLS_AES_128_GCM_SHA256",
    },
    SuiteName {
        suite: cs::TLS13_AES_256_GCM_SHA384,
        iana: "TLS_AES_256_GCM_SHA384",
        openssl: "TLS_AES_256_GCM_SHA384",
    },
    SuiteName {
        suite: cs::TLS13_CHACHA20_POLY1305_SHA256,
        iana: "TLS_CHACHA20_POLY1305_SHA256",
        openssl: "TLS_CHACHA20_POLY1305_SHA256",
    },
    SuiteName {
        suite: cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        iana: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
    },
    SuiteName {
        suite: cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        iana: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
    },
    SuiteName {
        suite: cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        iana: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
    },
    SuiteName {
        suite: cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        iana: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
    },
    SuiteName {
        suite: cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        iana: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
    },
    SuiteName {
        suite: cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        iana: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
    },
];

/// The IANA name of a negotiated suite, for logs and the identity record.
pub fn iana_name(suite: CipherSuite) -> &'static str {
    SUITES
        .iter()
        .find(|s| s.suite.suite() == suite)
        .map_or("unknown", |s| s.iana)
}

/// Every accepted spelling, for the "valid:" part of error messages.
pub fn valid_suite_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = SUITES.iter().map(|s| s.iana).collect();
    names.extend(SUITES.iter().map(|s| s.openssl).filter(|n| n.contains('-')));
    names
}

/// Splits config entries that may themselves be OpenSSL-style lists.
fn split_names(entries: &[String]) -> impl Iterator<Item = &str> {
    entries
        .iter()
        .flat_map(|e| e.split([':', ',']))
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

fn find_suite(name: &str) -> Option<SupportedCipherSuite> {
    SUITES
        .iter()
        .find(|s| {
            name.eq_ignore_ascii_case(s.iana)
                || name.eq_ignore_ascii_case(s.openssl)
                || s.suite
                    .suite()
                    .as_str()
                    .is_some_and(|r| name.eq_ignore_ascii_case(r))
        })
        .map(|s| s.suite)
}

/// Resolves `cipher_suites`; empty means the default list. Order is kept
/// (it is the server's preference) and duplicates are dropped.
pub fn resolve_suites(entries: &[String]) -> Result<Vec<SupportedCipherSuite>, TlsConfigError> {
    if entries.is_empty() {
        return Ok(SUITES.iter().map(|s| s.suite).collect());
    }
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    for name in split_names(entries) {
        let suite = find_suite(name).ok_or_else(|| TlsConfigError::UnknownCipherSuite {
            name: name.to_string(),
            valid: valid_suite_names(),
        })?;
        if !out.iter().any(|s| s.suite() == suite.suite()) {
            out.push(suite);
        }
    }
    Ok(out)
}

/// One implemented key-exchange group and the names it goes by.
struct GroupName {
    group: &'static dyn SupportedKxGroup,
    /// First name is the canonical one (IANA's).
    names: &'static [&'static str],
}

static GROUPS: &[GroupName] = &[
    GroupName {
        group: kx_group::X25519,
        names: &["X25519"],
    },
    GroupName {
        group: kx_group::SECP256R1,
        names: &["secp256r1", "P-256", "prime256v1"],
    },
    GroupName {
        group: kx_group::SECP384R1,
        names: &["secp384r1", "P-384"],
    },
    GroupName {
        group: kx_group::X25519MLKEM768,
        names: &["X25519MLKEM768"],
    },
    GroupName {
        group: kx_group::SECP256R1MLKEM768,
        names: &["SecP256r1MLKEM768"],
    },
    GroupName {
        group: kx_group::MLKEM768,
        names: &["MLKEM768"],
    },
    GroupName {
        group: kx_group::MLKEM1024,
        names: &["MLKEM1024"],
    },
];

pub fn valid_group_names() -> Vec<&'static str> {
    GROUPS
        .iter()
        .flat_map(|g| g.names.iter().copied())
        .collect()
}

/// Resolves `kx_groups`; empty means the provider's defaults (X25519,
/// secp256r1, secp384r1, then the X25519MLKEM768 hybrid that OpenSSL 3.5+
/// clients offer first).
pub fn resolve_groups(
    entries: &[String],
) -> Result<Vec<&'static dyn SupportedKxGroup>, TlsConfigError> {
    if entries.is_empty() {
        return Ok(DEFAULT_KX_GROUPS.to_vec());
    }
    let mut out: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    for name in split_names(entries) {
        let group = GROUPS
            .iter()
            .find(|g| g.names.iter().any(|n| name.eq_ignore_ascii_case(n)))
            .map(|g| g.group)
            .ok_or_else(|| TlsConfigError::UnknownKxGroup {
                name: name.to_string(),
                valid: valid_group_names(),
            })?;
        if !out.iter().any(|g| g.name() == group.name()) {
            out.push(group);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_list_is_rfc9662_with_aes_gcm_first() {
        let got: Vec<&str> = resolve_suites(&[])
            .unwrap()
            .iter()
            .map(|s| iana_name(s.suite()))
            .collect();
        assert_eq!(
            got,
            [
                "TLS_AES_128_GCM_SHA256",
                "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            ]
        );
        // Every suite the provider implements is nameable.
        assert_eq!(
            got.len(),
            rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES.len()
        );
    }

    #[test]
    fn iana_openssl_and_rustls_names_all_resolve() {
        let got = resolve_suites(&names(&[
            "tls_aes_256_gcm_sha384",
            "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
            "TLS13_CHACHA20_POLY1305_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", // duplicate, dropped
        ]))
        .unwrap();
        let got: Vec<&str> = got.iter().map(|s| iana_name(s.suite())).collect();
        assert_eq!(
            got,
            [
                "TLS_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256",
            ]
        );
    }

    #[test]
    fn unknown_suite_lists_valid_names() {
        let err = resolve_suites(&names(&["FOO"])).unwrap_err().to_string();
        assert!(
            err.starts_with("cipher_suites: unknown suite \"FOO\"; valid: "),
            "{err}"
        );
        assert!(err.contains("TLS_AES_128_GCM_SHA256"), "{err}");
        assert!(err.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{err}");
    }

    #[test]
    fn kx_group_aliases_resolve() {
        let got =
            resolve_groups(&names(&["prime256v1:P-384", "x25519", "X25519MLKEM768"])).unwrap();
        let got: Vec<_> = got.iter().map(|g| g.name()).collect();
        assert_eq!(
            got,
            [
                rustls::NamedGroup::secp256r1,
                rustls::NamedGroup::secp384r1,
                rustls::NamedGroup::X25519,
                rustls::NamedGroup::X25519MLKEM768,
            ]
        );
        let err = resolve_groups(&names(&["brainpool"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("valid: X25519, secp256r1, P-256, prime256v1"),
            "{err}"
        );
    }
}
