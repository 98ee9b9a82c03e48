//! Why an upstream connection failed, as one typed reason: `Display` is the
//! log text, [`label`](UpstreamFailure::label) the metric label and
//! [`hint`](UpstreamFailure::hint) what to do, so log and metrics agree.

use std::fmt;
use std::io;

use rustls::{AlertDescription, CertificateError, Error};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// The name did not resolve (or resolved to nothing).
    Resolve(String),
    /// TCP connect refused: nothing listens there.
    Refused,
    /// TCP connect or the TLS handshake did not finish in `connect_timeout_ms`.
    Timeout,
    /// No route, network down, address not available.
    Unreachable(String),
    /// We refused the server's certificate.
    ServerCertificate(ServerCertProblem),
    /// The server sent this alert: during the handshake, or after it (TLS
    /// 1.3 checks the client certificate after the client finished).
    Alert(AlertDescription),
    /// The server closed the connection (FIN or close_notify).
    Closed,
    /// The connection was reset or the pipe broke while sending.
    Reset,
    /// Any other socket error.
    Io(String),
    /// Any other TLS error; the text is rustls'.
    Tls(String),
    /// kTLS: the server sent a TLS 1.3 KeyUpdate, which this kernel cannot
    /// follow (a new key needs Linux 6.14; ringest's client does not rekey).
    KtlsKeyUpdate,
    /// kTLS: a record the client has no use for after the handshake (a
    /// renegotiation request, a malformed control record, ...).
    KtlsProtocol(&'static str),
    /// kTLS: the kernel refused the keys after the handshake; the
    /// connection is half-switched and is closed.
    KtlsSetup(String),
}

/// Why we refused the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerCertProblem {
    UnknownCa,
    NameMismatch,
    Expired,
    NotYetValid,
    Revoked,
    FingerprintNotTrusted,
    Bad,
}

impl UpstreamFailure {
    pub fn from_connect(e: &io::Error) -> UpstreamFailure {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => UpstreamFailure::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => UpstreamFailure::Timeout,
            _ => UpstreamFailure::Unreachable(e.to_string()),
        }
    }

    pub fn from_io(e: &io::Error) -> UpstreamFailure {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => UpstreamFailure::Reset,
            io::ErrorKind::UnexpectedEof => UpstreamFailure::Closed,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => UpstreamFailure::Timeout,
            _ => UpstreamFailure::Io(e.to_string()),
        }
    }

    /// Maps what rustls' `process_new_packets` returned on our side.
    pub fn from_tls(e: &Error) -> UpstreamFailure {
        use ServerCertProblem as P;
        match e {
            Error::AlertReceived(a) => UpstreamFailure::Alert(*a),
            Error::InvalidCertificate(c) => UpstreamFailure::ServerCertificate(match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => P::UnknownCa,
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => P::NameMismatch,
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => P::Expired,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    P::NotYetValid
                }
                CertificateError::Revoked => P::Revoked,
                CertificateError::ApplicationVerificationFailure => P::FingerprintNotTrusted,
                _ => P::Bad,
            }),
            other => UpstreamFailure::Tls(other.to_string()),
        }
    }

    /// Stable snake_case label for `ringest_upstream_errors_total`.
    pub fn label(&self) -> &'static str {
        use ServerCertProblem as P;
        use UpstreamFailure as F;
        match self {
            F::Resolve(_) => "resolve",
            F::Refused => "connection_refused",
            F::Timeout => "timeout",
            F::Unreachable(_) => "unreachable",
            F::ServerCertificate(p) => match p {
                P::UnknownCa => "server_unknown_ca",
                P::NameMismatch => "server_name_mismatch",
                P::Expired => "server_cert_expired",
                P::NotYetValid => "server_cert_not_yet_valid",
                P::Revoked => "server_cert_revoked",
                P::FingerprintNotTrusted => "server_fingerprint_not_trusted",
                P::Bad => "server_bad_certificate",
            },
            F::Alert(a) => match a {
                AlertDescription::UnknownCA => "unknown_ca",
                AlertDescription::CertificateRequired => "certificate_required",
                AlertDescription::BadCertificate => "bad_certificate",
                AlertDescription::CertificateExpired => "certificate_expired",
                AlertDescription::CertificateRevoked => "certificate_revoked",
                AlertDescription::CertificateUnknown => "certificate_unknown",
                AlertDescription::UnsupportedCertificate => "unsupported_certificate",
                AlertDescription::AccessDenied => "access_denied",
                AlertDescription::HandshakeFailure => "handshake_failure",
                AlertDescription::ProtocolVersion => "protocol_version",
                AlertDescription::DecryptError => "decrypt_error",
                _ => "alert_other",
            },
            F::Closed => "closed",
            F::Reset => "reset",
            F::Io(_) => "io",
            F::Tls(_) => "tls_other",
            F::KtlsKeyUpdate => "ktls_key_update",
            F::KtlsProtocol(_) => "ktls_protocol",
            F::KtlsSetup(_) => "ktls_setup",
        }
    }

    /// What the admin should do about it.
    pub fn hint(&self) -> &'static str {
        use ServerCertProblem as P;
        use UpstreamFailure as F;
        match self {
            F::Resolve(_) => "check the server name and DNS",
            F::Refused => "nothing listens there: is the upstream running? retrying",
            F::Timeout => "no answer in connect_timeout_ms: check the route and firewall",
            F::Unreachable(_) => "check the network and the address",
            F::ServerCertificate(P::UnknownCa) => {
                "the server's certificate is not signed by a CA in [destination.tls] ca_file/ca_dir"
            }
            F::ServerCertificate(P::NameMismatch) => {
                "the server's certificate does not carry the name in servers (or server_name): \
                 fix the address or set server_name"
            }
            F::ServerCertificate(P::Expired | P::NotYetValid) => {
                "the server's certificate is out of its validity dates: renew it, check the clocks"
            }
            F::ServerCertificate(P::Revoked) => "the server's certificate is revoked",
            F::ServerCertificate(P::FingerprintNotTrusted) => {
                "the server's certificate fingerprint is not in trusted_keys"
            }
            F::ServerCertificate(P::Bad) => "the server sent a malformed or unusable certificate",
            F::Alert(
                AlertDescription::UnknownCA
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::AccessDenied,
            ) => {
                "the upstream refused our client certificate: give it our CA (or reissue \
                 cert_file from a CA it trusts); messages are kept and resent"
            }
            F::Alert(AlertDescription::CertificateRequired) => {
                "the upstream requires a client certificate: set cert_file and key_file"
            }
            F::Alert(AlertDescription::CertificateExpired) => "our client certificate expired: renew cert_file",
            F::Alert(AlertDescription::HandshakeFailure | AlertDescription::ProtocolVersion) => {
                "no TLS version or cipher suite in common: check tls_version_min/max and cipher_suites"
            }
            F::Alert(_) => "the upstream ended the TLS session; see its log",
            F::Closed | F::Reset => "the upstream closed the connection; reconnecting",
            F::Io(_) | F::Tls(_) => "reconnecting",
            F::KtlsKeyUpdate => {
                "closed cleanly, unconfirmed messages are resent; reconnecting. If it repeats, \
                 set ktls = \"off\" or tls_version_max = \"1.2\""
            }
            F::KtlsProtocol(_) => "the upstream broke the protocol after the handshake; reconnecting",
            F::KtlsSetup(_) => "the kernel refused the kTLS keys; set ktls = \"off\" if it persists",
        }
    }
}

impl fmt::Display for UpstreamFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use UpstreamFailure as F;
        match self {
            F::Resolve(e) => write!(f, "cannot resolve: {e}"),
            F::Refused => f.write_str("connection refused"),
            F::Timeout => f.write_str("timed out"),
            F::Unreachable(e) => write!(f, "unreachable: {e}"),
            F::ServerCertificate(_) => write!(f, "server certificate refused ({})", self.label()),
            F::Alert(a) => write!(f, "the server sent alert {} ({a:?})", self.label()),
            F::Closed => f.write_str("closed by the server"),
            F::Reset => f.write_str("connection reset"),
            F::Io(e) => write!(f, "socket error: {e}"),
            F::Tls(e) => write!(f, "TLS error: {e}"),
            F::KtlsKeyUpdate => f.write_str(
                "the server sent a TLS 1.3 KeyUpdate, which kTLS on this kernel cannot follow",
            ),
            F::KtlsProtocol(e) => write!(f, "kTLS: {e}"),
            F::KtlsSetup(e) => write!(f, "kTLS setup failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_client_certificate_is_named_by_its_alert() {
        let f = UpstreamFailure::from_tls(&Error::AlertReceived(AlertDescription::UnknownCA));
        assert_eq!(f.label(), "unknown_ca");
        assert!(f.hint().contains("client certificate"), "{}", f.hint());
        let f =
            UpstreamFailure::from_tls(&Error::AlertReceived(AlertDescription::CertificateRequired));
        assert_eq!(f.label(), "certificate_required");
    }

    #[test]
    fn a_refused_server_certificate_is_named_from_our_side() {
        let f = UpstreamFailure::from_tls(&Error::InvalidCertificate(
            CertificateError::NotValidForName,
        ));
        assert_eq!(f.label(), "server_name_mismatch");
        assert!(f.to_string().contains("server_name_mismatch"));
    }

    #[test]
    fn socket_errors_map_to_stable_labels() {
        let e = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            UpstreamFailure::from_connect(&e).label(),
            "connection_refused"
        );
        let e = io::Error::from(io::ErrorKind::BrokenPipe);
        assert_eq!(UpstreamFailure::from_io(&e).label(), "reset");
    }
}
