//! Records other than application data on an offloaded socket (sans-IO).
//!
//! Once the kernel decrypts, a record that is not application data makes a
//! plain `recv` fail with EIO; `recv_record` then returns its decrypted
//! payload and content type. This module turns that into a `ControlRecord`
//! and says what the connection must do about it (`ControlAction`). It
//! never panics on any input: the payload comes from the peer.

use std::fmt;

use super::crypto_info::KtlsVersion;
use crate::record::{decide_alert, AlertAction, ControlBudget, Version};

pub const CONTENT_TYPE_CHANGE_CIPHER_SPEC: u8 = 20;
pub const CONTENT_TYPE_ALERT: u8 = 21;
pub const CONTENT_TYPE_HANDSHAKE: u8 = 22;
pub const CONTENT_TYPE_APPLICATION_DATA: u8 = 23;

const ALERT_CLOSE_NOTIFY: u8 = 0;
const HANDSHAKE_NEW_SESSION_TICKET: u8 = 4;
const HANDSHAKE_KEY_UPDATE: u8 = 24;
/// A handshake message header: type (1), length (3).
const HANDSHAKE_HEADER_BYTES: usize = 4;

/// A record that is not application data, as the peer sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlRecord {
    /// The peer is done sending; everything before it has been delivered.
    CloseNotify,
    /// Any other alert (TLS 1.3 treats every one but close_notify and
    /// user_canceled as fatal; we close on all of them).
    Alert { level: u8, description: u8 },
    /// TLS 1.3 KeyUpdate: the peer's next record uses its next traffic key.
    KeyUpdate { update_requested: bool },
    /// Clients never send this; a confused one is ignored, as the issue asks.
    NewSessionTicket,
    /// Any other post-handshake handshake message, e.g. a TLS 1.2
    /// ClientHello asking for renegotiation, which we do not do.
    OtherHandshake(u8),
    /// A content type that has no business after the handshake (such as
    /// change_cipher_spec, or an unknown type).
    Unexpected(u8),
}

impl ControlRecord {
    /// Stats label, one per variant.
    pub fn label(&self) -> &'static str {
        match self {
            ControlRecord::CloseNotify => "close_notify",
            ControlRecord::Alert { .. } => "alert",
            ControlRecord::KeyUpdate { .. } => "key_update",
            ControlRecord::NewSessionTicket => "new_session_ticket",
            ControlRecord::OtherHandshake(_) => "other_handshake",
            ControlRecord::Unexpected(_) => "unexpected",
        }
    }
}

impl fmt::Display for ControlRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlRecord::CloseNotify => f.write_str("close_notify"),
            ControlRecord::Alert { level, description } => {
                write!(f, "alert level {level} description {description}")
            }
            ControlRecord::KeyUpdate { update_requested } => {
                write!(f, "KeyUpdate (update_requested: {update_requested})")
            }
            ControlRecord::NewSessionTicket => f.write_str("NewSessionTicket"),
            ControlRecord::OtherHandshake(t) => write!(f, "handshake message type {t}"),
            ControlRecord::Unexpected(t) => write!(f, "record of content type {t}"),
        }
    }
}

/// A control record that does not parse. Every variant closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// Content type 23 is data, not control; the caller mixed up paths.
    NotControl,
    /// An alert is exactly two bytes.
    AlertLength(usize),
    /// Fewer than the 4 bytes of a handshake message header.
    HandshakeTooShort(usize),
    /// The handshake message's length disagrees with the record: it is
    /// fragmented across records or several messages share one. A client
    /// has no reason to do either after the handshake, so we refuse rather
    /// than keep a reassembly buffer per connection.
    HandshakeLength { declared: usize, in_record: usize },
    /// A KeyUpdate body is one byte, 0 or 1.
    BadKeyUpdate,
}

impl ControlError {
    pub fn label(&self) -> &'static str {
        match self {
            ControlError::NotControl => "not_control",
            ControlError::AlertLength(_) => "bad_alert",
            ControlError::HandshakeTooShort(_) | ControlError::HandshakeLength { .. } => {
                "bad_handshake"
            }
            ControlError::BadKeyUpdate => "bad_key_update",
        }
    }
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::NotControl => f.write_str("application data is not a control record"),
            ControlError::AlertLength(n) => write!(f, "alert of {n} bytes, want 2"),
            ControlError::HandshakeTooShort(n) => {
                write!(f, "handshake record of {n} bytes, shorter than a header")
            }
            ControlError::HandshakeLength {
                declared,
                in_record,
            } => write!(
                f,
                "handshake message declares {declared} bytes, record holds {in_record}"
            ),
            ControlError::BadKeyUpdate => f.write_str("malformed KeyUpdate"),
        }
    }
}

impl std::error::Error for ControlError {}

/// Parses the decrypted payload of one non-data record.
pub fn parse_control_record(
    content_type: u8,
    payload: &[u8],
) -> Result<ControlRecord, ControlError> {
    match content_type {
        CONTENT_TYPE_APPLICATION_DATA => Err(ControlError::NotControl),
        CONTENT_TYPE_ALERT => match *payload {
            [_, ALERT_CLOSE_NOTIFY] => Ok(ControlRecord::CloseNotify),
            [level, description] => Ok(ControlRecord::Alert { level, description }),
            _ => Err(ControlError::AlertLength(payload.len())),
        },
        CONTENT_TYPE_HANDSHAKE => {
            let Some((header, body)) = payload.split_first_chunk::<HANDSHAKE_HEADER_BYTES>() else {
                return Err(ControlError::HandshakeTooShort(payload.len()));
            };
            let [msg_type, l0, l1, l2] = *header;
            let declared = u32::from_be_bytes([0, l0, l1, l2]) as usize;
            if declared != body.len() {
                return Err(ControlError::HandshakeLength {
                    declared,
                    in_record: body.len(),
                });
            }
            match msg_type {
                HANDSHAKE_KEY_UPDATE => match *body {
                    [0] => Ok(ControlRecord::KeyUpdate {
                        update_requested: false,
                    }),
                    [1] => Ok(ControlRecord::KeyUpdate {
                        update_requested: true,
                    }),
                    _ => Err(ControlError::BadKeyUpdate),
                },
                HANDSHAKE_NEW_SESSION_TICKET => Ok(ControlRecord::NewSessionTicket),
                other => Ok(ControlRecord::OtherHandshake(other)),
            }
        }
        other => Ok(ControlRecord::Unexpected(other)),
    }
}

/// What the connection does with a control record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlAction {
    /// Keep reading; nothing changes.
    Ignore,
    /// close_notify: every byte before it has been delivered; flush the
    /// framer, answer close_notify, close.
    Finish,
    /// Derive the next RX key (`KernelConnection::update_rx_secret`) and
    /// install it with `set_rx`; the kernel holds further records
    /// (EKEYEXPIRED) until then. `update_requested` asks us to update our
    /// send key too before we next send application data; the server sends
    /// none (only a final alert), so it may leave its TX key as it is.
    Rekey { update_requested: bool },
    /// TLS 1.3 KeyUpdate on a kernel that cannot install a new RX key: the
    /// next record is under a key the kernel does not have. Only reachable
    /// with `ktls = "on"`; close and log that reason.
    CloseRekeyUnsupported,
    /// A fatal alert from the peer: close and log it.
    CloseAlert { level: u8, description: u8 },
    /// The peer broke the protocol: close with this reason.
    CloseProtocolError(&'static str),
}

impl ControlAction {
    /// Stats and log label.
    pub fn label(&self) -> &'static str {
        match self {
            ControlAction::Ignore => "ignored",
            ControlAction::Finish => "finished",
            ControlAction::Rekey { .. } => "rekeyed",
            ControlAction::CloseRekeyUnsupported => "closed_rekey_unsupported",
            ControlAction::CloseAlert { .. } => "closed_peer_alert",
            ControlAction::CloseProtocolError(_) => "closed_protocol_error",
        }
    }
}

/// Decides what a control record means for a connection of `version` on a
/// kernel that can (`can_rekey`) or cannot install a new TLS 1.3 RX key.
///
/// The policy is the userspace record layer's, so a connection is treated
/// the same whichever path carries it: alerts are judged by
/// [`crate::record`]'s rule (TLS 1.2 warnings and TLS 1.3 user_canceled are
/// skipped, the rest close), skipped warnings and KeyUpdates count against
/// the same [`ControlBudget`], and any handshake message but a TLS 1.3
/// KeyUpdate (a NewSessionTicket, which only servers send; renegotiation)
/// closes the connection.
pub fn action_for(
    record: &ControlRecord,
    version: KtlsVersion,
    can_rekey: bool,
    budget: &mut ControlBudget,
) -> ControlAction {
    let record_version = match version {
        KtlsVersion::Tls12 => Version::Tls12,
        KtlsVersion::Tls13 => Version::Tls13,
    };
    match *record {
        ControlRecord::CloseNotify => ControlAction::Finish,
        ControlRecord::Alert { level, description } => {
            match decide_alert(record_version, &[level, description]) {
                Ok(AlertAction::Ignore { .. }) => match budget.on_ignored_warning() {
                    Ok(()) => ControlAction::Ignore,
                    Err(_) => {
                        ControlAction::CloseProtocolError("too many consecutive warning alerts")
                    }
                },
                Ok(AlertAction::Stop(_)) | Err(_) => {
                    ControlAction::CloseAlert { level, description }
                }
            }
        }
        ControlRecord::KeyUpdate { update_requested } => {
            if budget.on_key_update().is_err() {
                return ControlAction::CloseProtocolError(
                    "too many KeyUpdates without application data",
                );
            }
            match (version, can_rekey) {
                (KtlsVersion::Tls13, true) => ControlAction::Rekey { update_requested },
                (KtlsVersion::Tls13, false) => ControlAction::CloseRekeyUnsupported,
                (KtlsVersion::Tls12, _) => {
                    ControlAction::CloseProtocolError("KeyUpdate on a TLS 1.2 connection")
                }
            }
        }
        ControlRecord::NewSessionTicket | ControlRecord::OtherHandshake(_) => {
            ControlAction::CloseProtocolError("handshake message after the handshake")
        }
        ControlRecord::Unexpected(_) => {
            ControlAction::CloseProtocolError("unexpected record type after the handshake")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ReaderLimits;

    /// The action with a fresh budget.
    fn act(rec: &ControlRecord, version: KtlsVersion, can_rekey: bool) -> ControlAction {
        action_for(
            rec,
            version,
            can_rekey,
            &mut ControlBudget::new(&ReaderLimits::default()),
        )
    }

    /// The same policy as the userspace record layer: TLS 1.2 warnings are
    /// skipped, up to the same consecutive limit; data resets the count.
    #[test]
    fn tls12_warning_alerts_are_skipped_up_to_the_userspace_limit() {
        let limits = ReaderLimits::default();
        let mut budget = ControlBudget::new(&limits);
        // no_renegotiation (100), warning
        let rec = parse_control_record(21, &[1, 100]).unwrap();
        for _ in 0..limits.warning_alerts_consecutive_max {
            assert_eq!(
                action_for(&rec, KtlsVersion::Tls12, false, &mut budget),
                ControlAction::Ignore
            );
        }
        assert!(matches!(
            action_for(&rec, KtlsVersion::Tls12, false, &mut budget),
            ControlAction::CloseProtocolError(_)
        ));
        budget.on_data();
        assert_eq!(
            action_for(&rec, KtlsVersion::Tls12, false, &mut budget),
            ControlAction::Ignore
        );
        // TLS 1.3: a warning other than user_canceled is an error alert.
        assert!(matches!(
            act(&rec, KtlsVersion::Tls13, true),
            ControlAction::CloseAlert { .. }
        ));
        let canceled = parse_control_record(21, &[1, 90]).unwrap();
        assert_eq!(
            act(&canceled, KtlsVersion::Tls13, true),
            ControlAction::Ignore
        );
    }

    #[test]
    fn key_updates_without_data_are_bounded_as_in_userspace() {
        let limits = ReaderLimits::default();
        let mut budget = ControlBudget::new(&limits);
        let rec = parse_control_record(22, &[24, 0, 0, 1, 1]).unwrap();
        for _ in 0..limits.key_updates_consecutive_max {
            assert!(matches!(
                action_for(&rec, KtlsVersion::Tls13, true, &mut budget),
                ControlAction::Rekey { .. }
            ));
        }
        assert!(matches!(
            action_for(&rec, KtlsVersion::Tls13, true, &mut budget),
            ControlAction::CloseProtocolError(_)
        ));
    }

    #[test]
    fn close_notify() {
        // TLS 1.2 sends level 1 (warning); TLS 1.3 ignores the level.
        for level in [1, 2] {
            assert_eq!(
                parse_control_record(21, &[level, 0]),
                Ok(ControlRecord::CloseNotify)
            );
        }
    }

    #[test]
    fn fatal_alert() {
        // bad_record_mac, fatal
        let rec = parse_control_record(21, &[2, 20]).unwrap();
        assert_eq!(
            rec,
            ControlRecord::Alert {
                level: 2,
                description: 20
            }
        );
        assert_eq!(
            act(&rec, KtlsVersion::Tls13, true),
            ControlAction::CloseAlert {
                level: 2,
                description: 20
            }
        );
        assert_eq!(rec.label(), "alert");
    }

    #[test]
    fn alert_of_wrong_length() {
        assert_eq!(
            parse_control_record(21, &[]),
            Err(ControlError::AlertLength(0))
        );
        assert_eq!(
            parse_control_record(21, &[2]),
            Err(ControlError::AlertLength(1))
        );
        assert_eq!(
            parse_control_record(21, &[1, 0, 0]),
            Err(ControlError::AlertLength(3))
        );
    }

    #[test]
    fn key_update_requested_and_not() {
        let not = parse_control_record(22, &[24, 0, 0, 1, 0]).unwrap();
        assert_eq!(
            not,
            ControlRecord::KeyUpdate {
                update_requested: false
            }
        );
        let req = parse_control_record(22, &[24, 0, 0, 1, 1]).unwrap();
        assert_eq!(
            req,
            ControlRecord::KeyUpdate {
                update_requested: true
            }
        );
        assert_eq!(
            act(&req, KtlsVersion::Tls13, true),
            ControlAction::Rekey {
                update_requested: true
            }
        );
        assert_eq!(
            act(&req, KtlsVersion::Tls13, false),
            ControlAction::CloseRekeyUnsupported
        );
        assert!(matches!(
            act(&not, KtlsVersion::Tls12, true),
            ControlAction::CloseProtocolError(_)
        ));
    }

    #[test]
    fn key_update_with_bad_body() {
        assert_eq!(
            parse_control_record(22, &[24, 0, 0, 1, 2]),
            Err(ControlError::BadKeyUpdate)
        );
        assert_eq!(
            parse_control_record(22, &[24, 0, 0, 2, 1, 0]),
            Err(ControlError::BadKeyUpdate)
        );
        assert_eq!(
            parse_control_record(22, &[24, 0, 0, 0]),
            Err(ControlError::BadKeyUpdate)
        );
    }

    #[test]
    fn new_session_ticket_closes_as_in_userspace() {
        let mut nst = vec![4, 0, 0, 9];
        nst.extend_from_slice(&[0; 9]);
        let rec = parse_control_record(22, &nst).unwrap();
        assert_eq!(rec, ControlRecord::NewSessionTicket);
        assert!(matches!(
            act(&rec, KtlsVersion::Tls13, false),
            ControlAction::CloseProtocolError(_)
        ));
    }

    #[test]
    fn renegotiation_attempt_closes() {
        // A TLS 1.2 ClientHello after the handshake.
        let rec = parse_control_record(22, &[1, 0, 0, 2, 3, 3]).unwrap();
        assert_eq!(rec, ControlRecord::OtherHandshake(1));
        assert!(matches!(
            act(&rec, KtlsVersion::Tls12, false),
            ControlAction::CloseProtocolError(_)
        ));
    }

    #[test]
    fn short_and_mismatched_handshake() {
        for n in 0..4 {
            assert_eq!(
                parse_control_record(22, &[24, 0, 0, 1][..n]),
                Err(ControlError::HandshakeTooShort(n))
            );
        }
        // Fragmented: declares 1 byte, record has none after the header.
        assert_eq!(
            parse_control_record(22, &[24, 0, 0, 1]),
            Err(ControlError::HandshakeLength {
                declared: 1,
                in_record: 0
            })
        );
        // Two messages in one record.
        assert_eq!(
            parse_control_record(22, &[24, 0, 0, 1, 0, 24, 0, 0, 1, 0]),
            Err(ControlError::HandshakeLength {
                declared: 1,
                in_record: 6
            })
        );
        // A length near 2^24 must not be trusted for anything.
        assert!(parse_control_record(22, &[4, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn other_content_types() {
        assert_eq!(
            parse_control_record(23, b"hello"),
            Err(ControlError::NotControl)
        );
        assert_eq!(
            parse_control_record(20, &[1]),
            Ok(ControlRecord::Unexpected(20))
        );
        assert_eq!(
            parse_control_record(0, &[]),
            Ok(ControlRecord::Unexpected(0))
        );
        assert_eq!(
            parse_control_record(255, &[9; 3]),
            Ok(ControlRecord::Unexpected(255))
        );
    }

    #[test]
    fn never_panics_on_any_short_input() {
        for ct in 0..=255u8 {
            for len in 0..8 {
                for fill in [0u8, 1, 24, 255] {
                    let payload = vec![fill; len];
                    if let Ok(rec) = parse_control_record(ct, &payload) {
                        let _ = rec.label();
                        let _ = act(&rec, KtlsVersion::Tls13, false).label();
                    }
                }
            }
        }
    }
}
