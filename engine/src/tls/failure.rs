//! Why a TLS handshake was refused, as one typed reason.
//!
//! The engine logs one line per refused handshake (peer address, source,
//! `Display`, `hint()`) and counts it under `label()`; both come from this
//! type so the log and the metrics always agree.

use std::fmt;

use rustls::{CertificateError, Error, InvalidMessage};

use super::policy::PolicyRefusal;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The client certificate does not chain to a CA in ca_file/ca_dir
    /// (also: self-signed, or an intermediate is missing).
    UnknownCa,
    /// The client certificate (or a CA above it) has expired.
    Expired,
    /// The client certificate (or a CA above it) is not valid yet.
    NotYetValid,
    /// A loaded CRL lists the certificate.
    Revoked,
    /// The CRL that covers the certificate is past its nextUpdate.
    CrlExpired,
    /// The certificate's extendedKeyUsage does not allow clientAuth.
    WrongPurpose,
    /// A certificate is required and the client sent none.
    NoClientCert,
    /// The subject DN matches no `trusted_dn` pattern.
    DnNotTrusted,
    /// The certificate fingerprint is not in `trusted_keys`.
    FingerprintNotTrusted,
    /// No DNS SAN nor the CN matches `permitted_peer`.
    PeerNotPermitted,
    /// No TLS version, cipher suite, key-exchange group or signature
    /// scheme in common.
    NoSharedProtocol,
    /// The bytes are not TLS at all (plaintext syslog or HTTP on a TLS port).
    NotTls,
    /// The handshake did not finish in time (set by the engine, not rustls).
    Timeout,
    /// The certificate is malformed, its signature is bad, or the client
    /// failed to prove it holds the key.
    BadCertificate,
    /// The client aborted the handshake with this alert; usually it
    /// refused our server certificate.
    PeerAlert(String),
    /// Anything else; the text is rustls' error.
    Other(String),
}

impl HandshakeFailure {
    /// Maps the error `process_new_packets` returned on the server side.
    pub fn classify(err: &Error) -> HandshakeFailure {
        use HandshakeFailure as F;
        match err {
            Error::InvalidCertificate(cert_err) => classify_certificate(cert_err),
            Error::NoCertificatesPresented => F::NoClientCert,
            Error::PeerIncompatible(_) => F::NoSharedProtocol,
            Error::AlertReceived(alert) => F::PeerAlert(format!("{alert:?}")),
            // A record header whose content type or version is not TLS:
            // the first bytes were not a ClientHello.
            Error::InvalidMessage(InvalidMessage::InvalidContentType)
            | Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion) => F::NotTls,
            other => F::Other(other.to_string()),
        }
    }

    /// Stable snake_case label for the handshake-failure counter.
    pub fn label(&self) -> &'static str {
        use HandshakeFailure as F;
        match self {
            F::UnknownCa => "unknown_ca",
            F::Expired => "expired",
            F::NotYetValid => "not_yet_valid",
            F::Revoked => "revoked",
            F::CrlExpired => "crl_expired",
            F::WrongPurpose => "wrong_purpose",
            F::NoClientCert => "no_client_cert",
            F::DnNotTrusted => "dn_not_trusted",
            F::FingerprintNotTrusted => "fingerprint_not_trusted",
            F::PeerNotPermitted => "peer_not_permitted",
            F::NoSharedProtocol => "no_shared_protocol",
            F::NotTls => "not_tls",
            F::Timeout => "handshake_timeout",
            F::BadCertificate => "bad_certificate",
            F::PeerAlert(_) => "peer_alert",
            F::Other(_) => "other",
        }
    }

    /// What the admin should do about it.
    pub fn hint(&self) -> &'static str {
        use HandshakeFailure as F;
        match self {
            F::UnknownCa => {
                "the client certificate is not signed by a CA in ca_file/ca_dir: add the \
                 issuing CA (and make the client send its intermediates), or issue the client \
                 a certificate from a trusted CA"
            }
            F::Expired => {
                "the client certificate (or its CA) has expired: renew it, and check the \
                 clocks of both hosts"
            }
            F::NotYetValid => {
                "the client certificate is not valid yet: check the clocks of both hosts, or \
                 wait until its notBefore date"
            }
            F::Revoked => {
                "the client certificate is revoked by a loaded CRL: issue the client a new \
                 certificate if it should still send logs"
            }
            F::CrlExpired => {
                "the CRL for this client's CA is past its nextUpdate: publish a fresh CRL \
                 into crl_file/crl_dir and reload"
            }
            F::WrongPurpose => {
                "the client certificate's extendedKeyUsage lacks clientAuth: reissue it \
                 with clientAuth (e.g. openssl extendedKeyUsage = clientAuth)"
            }
            F::NoClientCert => {
                "the client sent no certificate but peer_verify requires one: configure the \
                 client's cert and key, or use peer_verify = \"optional-trusted\""
            }
            F::DnNotTrusted => {
                "the certificate's subject matches no trusted_dn pattern: add a pattern \
                 (format \"CN=host, O=Org, C=XX\", `*` wildcards) or reissue the certificate"
            }
            F::FingerprintNotTrusted => {
                "the certificate is not pinned in trusted_keys: add its SHA-256 fingerprint \
                 (openssl x509 -noout -fingerprint -sha256 -in client.pem)"
            }
            F::PeerNotPermitted => {
                "no DNS SAN nor the CN of the certificate matches permitted_peer: add the \
                 client's name (wildcards like *.example.com allowed)"
            }
            F::NoSharedProtocol => {
                "client and server share no TLS version, cipher suite or key-exchange group: \
                 compare tls_version_min/max, cipher_suites and kx_groups with the client's"
            }
            F::NotTls => {
                "the client is not speaking TLS: it probably sends plain syslog to the TLS \
                 port; enable TLS on the client or point it at a plain TCP source"
            }
            F::Timeout => {
                "the handshake did not finish in time: check the network path, and that the \
                 client really speaks TLS on this port"
            }
            F::BadCertificate => {
                "the client certificate is malformed or its signature does not verify (the \
                 client may be using a key that does not belong to its certificate)"
            }
            F::PeerAlert(_) => {
                "the client aborted the handshake, usually because it does not trust our \
                 server certificate: check the client's CA file and the name it expects"
            }
            F::Other(_) => "unexpected TLS error: see the detail in this log line",
        }
    }
}

/// The policy's own explanation of a refusal (the DN that did not match,
/// the fingerprint, the names tried), for the log line; None for others.
pub fn refusal_detail(err: &rustls::Error) -> Option<String> {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other
            .0
            .downcast_ref::<PolicyRefusal>()
            .map(|r| r.to_string()),
        _ => None,
    }
}

fn classify_certificate(err: &CertificateError) -> HandshakeFailure {
    use CertificateError as C;
    use HandshakeFailure as F;
    match err {
        C::UnknownIssuer => F::UnknownCa,
        C::Expired | C::ExpiredContext { .. } => F::Expired,
        C::NotValidYet | C::NotValidYetContext { .. } => F::NotYetValid,
        C::Revoked => F::Revoked,
        C::ExpiredRevocationList | C::ExpiredRevocationListContext { .. } => F::CrlExpired,
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => F::WrongPurpose,
        C::Other(other) => match other.0.downcast_ref::<PolicyRefusal>() {
            Some(PolicyRefusal::FingerprintNotTrusted { .. }) => F::FingerprintNotTrusted,
            Some(PolicyRefusal::DnNotTrusted { .. }) => F::DnNotTrusted,
            Some(PolicyRefusal::PeerNotPermitted { .. }) => F::PeerNotPermitted,
            Some(PolicyRefusal::Malformed { .. }) => F::BadCertificate,
            None => F::Other(other.to_string()),
        },
        C::UnknownRevocationStatus => F::Other("unknown revocation status".to_string()),
        _ => F::BadCertificate,
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HandshakeFailure as F;
        let text = match self {
            F::UnknownCa => "client certificate signed by an unknown CA",
            F::Expired => "client certificate expired",
            F::NotYetValid => "client certificate not yet valid",
            F::Revoked => "client certificate revoked",
            F::CrlExpired => "CRL expired",
            F::WrongPurpose => "client certificate not valid for client authentication",
            F::NoClientCert => "no client certificate",
            F::DnNotTrusted => "client certificate DN not trusted",
            F::FingerprintNotTrusted => "client certificate fingerprint not trusted",
            F::PeerNotPermitted => "client certificate name not permitted",
            F::NoSharedProtocol => "no shared TLS version or cipher",
            F::NotTls => "not TLS",
            F::Timeout => "handshake timeout",
            F::BadCertificate => "bad client certificate",
            F::PeerAlert(alert) => return write!(f, "client sent alert {alert}"),
            F::Other(detail) => return write!(f, "TLS error: {detail}"),
        };
        f.write_str(text)
    }
}

/// Sniffs the first bytes of a connection on a TLS port.
///
/// A TLS connection starts with a handshake record: content type 0x16,
/// then the record version 0x03 0x00..=0x04 (clients put 0x0301 or 0x0303
/// there). Plain syslog starts with `<` or a digit, HTTP with a method
/// name, so one byte usually settles it. Returns false only when the bytes
/// prove the stream is not TLS: fewer than three bytes that agree with the
/// prefix so far count as TLS, and the caller should wait for more.
pub fn looks_like_tls(first_bytes: &[u8]) -> bool {
    let prefix_ok = [
        first_bytes.first().is_none_or(|&b| b == 0x16),
        first_bytes.get(1).is_none_or(|&b| b == 0x03),
        first_bytes.get(2).is_none_or(|&b| b <= 0x04),
    ];
    prefix_ok.iter().all(|&ok| ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_client_hello_versus_plaintext() {
        // Start of a real TLS 1.3 ClientHello record (legacy version 0x0301).
        assert!(looks_like_tls(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
        assert!(looks_like_tls(&[0x16, 0x03, 0x03]));
        assert!(!looks_like_tls(
            b"<14>1 2024-01-01T00:00:00Z host app - - - hello"
        ));
        assert!(!looks_like_tls(
            b"123 <14>1 2024-01-01T00:00:00Z host app - - - x"
        ));
        assert!(!looks_like_tls(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!looks_like_tls(&[0x16, 0x03, 0x05]));
        // Too short to tell, but consistent with TLS so far: wait for more.
        assert!(looks_like_tls(&[]));
        assert!(looks_like_tls(&[0x16]));
    }

    #[test]
    fn labels_are_unique_snake_case() {
        let all = [
            HandshakeFailure::UnknownCa,
            HandshakeFailure::Expired,
            HandshakeFailure::NotYetValid,
            HandshakeFailure::Revoked,
            HandshakeFailure::CrlExpired,
            HandshakeFailure::WrongPurpose,
            HandshakeFailure::NoClientCert,
            HandshakeFailure::DnNotTrusted,
            HandshakeFailure::FingerprintNotTrusted,
            HandshakeFailure::PeerNotPermitted,
            HandshakeFailure::NoSharedProtocol,
            HandshakeFailure::NotTls,
            HandshakeFailure::Timeout,
            HandshakeFailure::BadCertificate,
            HandshakeFailure::PeerAlert("x".into()),
            HandshakeFailure::Other("x".into()),
        ];
        let mut labels: Vec<&str> = all.iter().map(|f| f.label()).collect();
        for label in &labels {
            assert!(
                label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{label}"
            );
        }
        for f in &all {
            assert!(!f.hint().is_empty() && !f.to_string().is_empty());
        }
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), all.len());
    }

    #[test]
    fn classify_maps_rustls_errors() {
        use rustls::{AlertDescription, PeerIncompatible};
        let cases = [
            (
                Error::InvalidCertificate(CertificateError::UnknownIssuer),
                HandshakeFailure::UnknownCa,
            ),
            (
                Error::InvalidCertificate(CertificateError::Revoked),
                HandshakeFailure::Revoked,
            ),
            (
                Error::NoCertificatesPresented,
                HandshakeFailure::NoClientCert,
            ),
            (
                Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon),
                HandshakeFailure::NoSharedProtocol,
            ),
            (
                Error::InvalidMessage(InvalidMessage::InvalidContentType),
                HandshakeFailure::NotTls,
            ),
            (
                Error::AlertReceived(AlertDescription::UnknownCA),
                HandshakeFailure::PeerAlert("UnknownCA".into()),
            ),
        ];
        for (err, want) in cases {
            assert_eq!(HandshakeFailure::classify(&err), want, "{err:?}");
        }
    }
}
