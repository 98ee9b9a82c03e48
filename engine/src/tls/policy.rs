//! The admin's extra constraints on a client certificate: `trusted_keys`,
//! `trusted_dn` and `permitted_peer`.
//!
//! Check order, and why: chain validation (in the verifier) comes first,
//! then `trusted_keys`, then `trusted_dn`, then `permitted_peer`; the first
//! failing check is the reason reported. The first two follow syslog-ng,
//! whose verify callback tests the fingerprint before the DN, both only
//! once the chain is valid. All configured checks must pass (AND), as in
//! syslog-ng where a certificate must match both lists when both are set.
//!
//! Where we differ from syslog-ng on purpose: syslog-ng ignores trusted-keys
//! and trusted-dn entirely in the `*-untrusted` modes. We apply them to every
//! certificate a client presents, in every mode, because a pin the admin
//! wrote must never be silently ignored. This also gives rsyslog's
//! `x509/fingerprint` mode: `required-untrusted` + `trusted_keys` accepts
//! exactly the pinned (for example self-signed) certificates, with no CA.

use std::fmt;

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::dn::{attr_text, format_dn};
use super::error::TlsConfigError;
use super::fingerprint::{self, Fingerprint};
use super::glob::glob_match;
use super::peer_name::name_matches;
use super::settings::TlsSettings;

/// Why the policy refused a certificate that the chain check (if any)
/// accepted. It travels through rustls inside
/// `CertificateError::Other(OtherError(..))` so that
/// `HandshakeFailure::classify` can recover it; its Display is the detail
/// for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRefusal {
    FingerprintNotTrusted {
        sha256: String,
    },
    DnNotTrusted {
        dn: String,
    },
    PeerNotPermitted {
        names: Vec<String>,
    },
    /// The certificate cannot be parsed, so no constraint can be checked.
    Malformed {
        detail: String,
    },
}

impl fmt::Display for PolicyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyRefusal::FingerprintNotTrusted { sha256 } => {
                write!(f, "certificate SHA256:{sha256} is not in trusted_keys")
            }
            // The names come from the client's certificate and end up in a
            // log line: `{:?}` quotes them and escapes control and bidi
            // characters, so a name cannot forge a line or repaint a terminal.
            PolicyRefusal::DnNotTrusted { dn } => {
                write!(f, "subject {dn:?} matches no trusted_dn pattern")
            }
            PolicyRefusal::PeerNotPermitted { names } => {
                f.write_str("no certificate name (")?;
                for (i, name) in names.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{name:?}")?;
                }
                f.write_str(") matches permitted_peer")
            }
            PolicyRefusal::Malformed { detail } => write!(f, "unparsable certificate: {detail}"),
        }
    }
}

impl std::error::Error for PolicyRefusal {}

/// The parsed constraints, built once per config (re)load.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerPolicy {
    keys: Vec<Fingerprint>,
    dn_patterns: Vec<String>,
    peers: Vec<String>,
}

impl PeerPolicy {
    pub(crate) fn from_settings(s: &TlsSettings) -> Result<PeerPolicy, TlsConfigError> {
        let keys = super::fingerprint::parse_pins(&s.trusted_keys)?;
        for (key, list) in [
            ("trusted_dn", &s.trusted_dn),
            ("permitted_peer", &s.permitted_peer),
        ] {
            if let Some(index) = list.iter().position(|p| p.trim().is_empty()) {
                return Err(TlsConfigError::EmptyPattern { key, index });
            }
        }
        Ok(PeerPolicy {
            keys,
            dn_patterns: s.trusted_dn.clone(),
            peers: s
                .permitted_peer
                .iter()
                .map(|p| p.trim().to_string())
                .collect(),
        })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.dn_patterns.is_empty() && self.peers.is_empty()
    }

    /// Applies the constraints to the client's end-entity certificate.
    pub(crate) fn check(&self, cert: &CertificateDer<'_>) -> Result<(), PolicyRefusal> {
        if !self.keys.is_empty() {
            let sha256 = fingerprint::sha256(cert);
            let sha1 = fingerprint::sha1(cert);
            if !self.keys.iter().any(|k| k.matches(&sha1, &sha256)) {
                return Err(PolicyRefusal::FingerprintNotTrusted {
                    sha256: fingerprint::colon_hex(&sha256),
                });
            }
        }
        if self.dn_patterns.is_empty() && self.peers.is_empty() {
            return Ok(());
        }
        let (_, parsed) =
            X509Certificate::from_der(cert).map_err(|e| PolicyRefusal::Malformed {
                detail: e.to_string(),
            })?;
        if !self.dn_patterns.is_empty() {
            let dn = format_dn(parsed.subject());
            if !self.dn_patterns.iter().any(|p| glob_match(p, &dn)) {
                return Err(PolicyRefusal::DnNotTrusted { dn });
            }
        }
        if !self.peers.is_empty() {
            let names = peer_names(&parsed);
            let permitted = names
                .iter()
                .any(|name| self.peers.iter().any(|p| name_matches(p, name)));
            if !permitted {
                return Err(PolicyRefusal::PeerNotPermitted { names });
            }
        }
        Ok(())
    }
}

/// The names rsyslog's `x509/name` mode compares: every DNS SAN, then the
/// first CN. rsyslog falls back to the CN even when DNS SANs exist (unlike
/// RFC 6125 host-name checks), and we keep that so rsyslog configs behave
/// the same.
fn peer_names(cert: &X509Certificate<'_>) -> Vec<String> {
    let mut names: Vec<String> = dns_sans(cert);
    if let Some(cn) = first_cn(cert) {
        names.push(cn);
    }
    names
}

pub(crate) fn dns_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The first CN in encoding order, as OpenSSL's
/// `X509_NAME_get_text_by_NID` and GnuTLS return it.
pub(crate) fn first_cn(cert: &X509Certificate<'_>) -> Option<String> {
    cert.subject().iter_common_name().next().map(attr_text)
}
