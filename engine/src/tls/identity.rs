//! Who is on the other end of a TLS connection, computed once per
//! connection right after the handshake and shared by every message of it.

use rustls::pki_types::CertificateDer;
use rustls::{ProtocolVersion, SupportedCipherSuite};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::dn::format_dn;
use super::fingerprint;
use super::policy::first_cn;
use super::suites::iana_name;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerIdentity {
    /// "TLSv1.3" or "TLSv1.2".
    pub tls_version: &'static str,
    /// IANA suite name, e.g. "TLS_AES_128_GCM_SHA256".
    pub cipher: &'static str,
    /// First CN of the client certificate's subject.
    pub client_cn: Option<String>,
    /// Subject alternative names: DNS names, IP addresses (textual form),
    /// e-mail addresses and URIs, each as its bare value, in certificate
    /// order. Other SAN kinds are left out.
    pub client_sans: Vec<String>,
    /// SHA-256 of the client certificate's DER, `AA:BB:..` (the form
    /// `trusted_keys` takes, so an admin can paste it there).
    pub client_sha256: Option<String>,
    /// Issuer DN in the same format as `trusted_dn` matches subjects.
    pub client_issuer: Option<String>,
}

impl PeerIdentity {
    /// Builds the identity from what the connection reports after the
    /// handshake: `protocol_version()`, `negotiated_cipher_suite()` and
    /// `peer_certificates()`. A certificate that cannot be parsed (only
    /// possible in the `*-untrusted` modes) still gets its fingerprint.
    pub fn from_parts(
        version: ProtocolVersion,
        suite: Option<SupportedCipherSuite>,
        peer_certs: Option<&[CertificateDer<'_>]>,
    ) -> Self {
        let tls_version = match version {
            ProtocolVersion::TLSv1_3 => "TLSv1.3",
            ProtocolVersion::TLSv1_2 => "TLSv1.2",
            _ => "unknown",
        };
        let cipher = suite.map_or("unknown", |s| iana_name(s.suite()));
        let mut identity = PeerIdentity {
            tls_version,
            cipher,
            ..PeerIdentity::default()
        };
        let Some(leaf) = peer_certs.and_then(|certs| certs.first()) else {
            return identity;
        };
        identity.client_sha256 = Some(fingerprint::colon_hex(&fingerprint::sha256(leaf)));
        if let Ok((_, cert)) = X509Certificate::from_der(leaf) {
            identity.client_cn = first_cn(&cert);
            identity.client_sans = sans(&cert);
            identity.client_issuer = Some(format_dn(cert.issuer()));
        }
        // Kept for the connection's whole life: no spare capacity from
        // building them (the SAN list starts at 4 entries, the DN doubles).
        identity.client_sans.shrink_to_fit();
        for s in [&mut identity.client_cn, &mut identity.client_issuer]
            .into_iter()
            .flatten()
        {
            s.shrink_to_fit();
        }
        identity
    }
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
                Some(s.to_string())
            }
            GeneralName::IPAddress(bytes) => ip_text(bytes),
            _ => None,
        })
        .collect()
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(std::net::Ipv4Addr::from(v4).to_string());
    }
    if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        return Some(std::net::Ipv6Addr::from(v6).to_string());
    }
    None
}
