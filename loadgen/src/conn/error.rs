//! Why a connection failed, and how IO, rustls and record-layer errors map
//! onto it: an alert counts as a refusal of our handshake when it comes
//! before the server ever accepted us.

use std::io;

use rustls::AlertDescription;

use super::Phase;
use crate::message::EncodeError;
use crate::tls13::RecordError;

/// Why a connection failed. `key()` is the label counted in the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnError {
    Refused,
    ConnectTimeout,
    HandshakeTimeout,
    CloseTimeout,
    Reset,
    /// The server closed (EOF or close_notify) while we still had work.
    PeerClosed,
    /// The server sent a fatal alert. `handshake`: it refused the handshake
    /// (typically our certificate), as opposed to ending an established session.
    Alert {
        handshake: bool,
        desc: String,
    },
    /// A local TLS failure, e.g. the server's certificate did not verify.
    Tls(String),
    Io(String),
    Encode(EncodeError),
    /// The run ended before this connection was established.
    NotEstablished,
}

impl ConnError {
    pub fn key(&self) -> String {
        match self {
            ConnError::Refused => "refused".into(),
            ConnError::ConnectTimeout => "connect_timeout".into(),
            ConnError::HandshakeTimeout => "handshake_timeout".into(),
            ConnError::CloseTimeout => "close_timeout".into(),
            ConnError::Reset => "reset".into(),
            ConnError::PeerClosed => "peer_closed".into(),
            ConnError::Alert {
                handshake: true,
                desc,
            } => format!("handshake_refused: {desc}"),
            ConnError::Alert {
                handshake: false,
                desc,
            } => format!("alert: {desc}"),
            ConnError::Tls(s) => format!("tls: {s}"),
            ConnError::Io(s) => format!("io: {s}"),
            ConnError::Encode(EncodeError::SizeTooSmall) => "size_too_small".into(),
            ConnError::NotEstablished => "not_established_at_stop".into(),
        }
    }
}

pub fn classify_io(e: &io::Error) -> ConnError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ConnError::Refused,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionAborted => ConnError::Reset,
        io::ErrorKind::TimedOut => ConnError::ConnectTimeout,
        _ => ConnError::Io(e.to_string()),
    }
}

/// Alerts with which servers refuse a client (certificate) in the handshake.
fn is_refusal_alert(d: AlertDescription) -> bool {
    matches!(
        d,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
            | AlertDescription::CertificateRequired
            | AlertDescription::HandshakeFailure
            | AlertDescription::DecryptError
            | AlertDescription::ProtocolVersion
            | AlertDescription::InsufficientSecurity
    )
}

/// An alert is a handshake refusal when it arrives during the handshake or
/// confirmation, or before the server ever accepted us and names a reason
/// for refusing a client.
pub(super) fn alert_error(d: AlertDescription, phase: Phase, confirmed: bool) -> ConnError {
    ConnError::Alert {
        handshake: matches!(phase, Phase::Handshaking | Phase::Confirming)
            || (!confirmed && is_refusal_alert(d)),
        desc: format!("received fatal alert: {d:?}"),
    }
}

pub(super) fn classify_tls(e: rustls::Error, phase: Phase, confirmed: bool) -> ConnError {
    match e {
        rustls::Error::AlertReceived(d) => alert_error(d, phase, confirmed),
        other => ConnError::Tls(other.to_string()),
    }
}

pub(super) fn classify_record(e: RecordError, phase: Phase, confirmed: bool) -> ConnError {
    match e {
        RecordError::Alert(d) => alert_error(d, phase, confirmed),
        other => ConnError::Tls(other.describe()),
    }
}
