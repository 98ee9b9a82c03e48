//! What a decrypted non-application-data record means (sans-IO): alerts and
//! post-handshake handshake messages. Pure functions from plaintext to a
//! decision; the reader acts on the decision.

use rustls::AlertDescription;

use super::error::RecordError;
use super::keys::Version;

/// An event that ends a [`process`](super::RecordReader::process) call early.
/// The connection's receive side is finished after either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlEvent {
    /// The peer sent close_notify: every byte it sent before has been
    /// delivered. Anything after it in the buffer is ignored.
    CloseNotify,
    /// The peer sent an error alert (fatal, or a warning that TLS 1.3 says
    /// to treat as fatal). Raw wire values; [`ControlEvent::alert_description`]
    /// names it.
    Alert { level: u8, description: u8 },
}

impl ControlEvent {
    /// rustls's name for the alert, e.g. `AlertDescription::HandshakeFailure`.
    pub fn alert_description(&self) -> AlertDescription {
        match self {
            Self::CloseNotify => AlertDescription::CloseNotify,
            Self::Alert { description, .. } => AlertDescription::from(*description),
        }
    }

    /// Stable snake_case name for metrics labels.
    pub fn label(&self) -> &'static str {
        match self {
            Self::CloseNotify => "close_notify",
            Self::Alert { .. } => "alert",
        }
    }
}

pub(crate) const ALERT_LEVEL_WARNING: u8 = 1;
pub(crate) const ALERT_LEVEL_FATAL: u8 = 2;
const ALERT_CLOSE_NOTIFY: u8 = 0;
const ALERT_USER_CANCELED: u8 = 90;

/// What to do with an alert record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AlertAction {
    /// Stop and report this event.
    Stop(ControlEvent),
    /// A warning that is safe to skip (user_canceled; any warning in TLS 1.2,
    /// as rustls does). Bounded by the reader's warning limit.
    Ignore { description: u8 },
}

/// Decides on a decrypted alert record.
///
/// - close_notify at either level: [`ControlEvent::CloseNotify`].
/// - TLS 1.3: only user_canceled may be a warning; every other alert is an
///   error alert "regardless of the AlertLevel" (RFC 8446 §6), so it stops
///   with [`ControlEvent::Alert`].
/// - TLS 1.2: warnings are skipped (e.g. no_renegotiation), fatal alerts stop.
pub(crate) fn alert(version: Version, payload: &[u8]) -> Result<AlertAction, RecordError> {
    // Exactly one alert per record: RFC 8446 §5.1 forbids both fragmenting
    // and coalescing alerts.
    let &[level, description] = payload else {
        return Err(RecordError::BadAlert);
    };
    if level != ALERT_LEVEL_WARNING && level != ALERT_LEVEL_FATAL {
        return Err(RecordError::BadAlert);
    }
    if description == ALERT_CLOSE_NOTIFY {
        return Ok(AlertAction::Stop(ControlEvent::CloseNotify));
    }
    let ignorable = level == ALERT_LEVEL_WARNING
        && (version == Version::Tls12 || description == ALERT_USER_CANCELED);
    if ignorable {
        Ok(AlertAction::Ignore { description })
    } else {
        Ok(AlertAction::Stop(ControlEvent::Alert {
            level,
            description,
        }))
    }
}

const HANDSHAKE_HEADER_LEN: usize = 4;
const HANDSHAKE_KEY_UPDATE: u8 = 24;

/// A post-handshake message this layer acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandshakeAction {
    /// TLS 1.3 KeyUpdate: the peer's next record uses the next key.
    KeyUpdate { update_requested: bool },
}

/// Decides on a decrypted handshake record.
///
/// Only a TLS 1.3 KeyUpdate is accepted, and only as the single whole
/// message of its record. RFC 8446 §5.1 already requires a message before a
/// key change to end at a record boundary, so "KeyUpdate followed by more
/// bytes" is illegal anyway; a KeyUpdate split across records (5 bytes!) is
/// legal but pointless and rejected with
/// [`RecordError::HandshakeMessageNotAligned`]. Every other post-handshake
/// message from a client (NewSessionTicket, which only servers send;
/// post-handshake auth, which ringest never requests; a TLS 1.2
/// renegotiation ClientHello) is [`RecordError::HandshakeMessageUnsupported`].
pub(crate) fn handshake(version: Version, payload: &[u8]) -> Result<HandshakeAction, RecordError> {
    let Some((&[typ, l0, l1, l2], body)) = payload.split_first_chunk::<HANDSHAKE_HEADER_LEN>()
    else {
        return Err(RecordError::HandshakeMessageNotAligned {
            len_needed: HANDSHAKE_HEADER_LEN,
            len_have: payload.len(),
        });
    };
    if version != Version::Tls13 || typ != HANDSHAKE_KEY_UPDATE {
        return Err(RecordError::HandshakeMessageUnsupported(typ));
    }
    let len = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
    if body.len() != len {
        return Err(RecordError::HandshakeMessageNotAligned {
            len_needed: HANDSHAKE_HEADER_LEN + len,
            len_have: payload.len(),
        });
    }
    match body {
        [0] => Ok(HandshakeAction::KeyUpdate {
            update_requested: false,
        }),
        [1] => Ok(HandshakeAction::KeyUpdate {
            update_requested: true,
        }),
        _ => Err(RecordError::BadKeyUpdate),
    }
}

/// How much a peer may make a connection do without delivering data:
/// consecutive ignorable warning alerts and consecutive KeyUpdates. One
/// budget, used by the userspace record reader and by the kTLS control path
/// alike, so an offloaded connection is held to the same policy. Each count
/// resets when application data arrives.
#[derive(Clone, Copy, Debug)]
pub struct ControlBudget {
    warning_alerts_consecutive_max: u32,
    key_updates_consecutive_max: u32,
    warning_alerts_consecutive: u32,
    key_updates_consecutive: u32,
}

impl ControlBudget {
    pub fn new(limits: &super::ReaderLimits) -> ControlBudget {
        ControlBudget {
            warning_alerts_consecutive_max: limits.warning_alerts_consecutive_max,
            key_updates_consecutive_max: limits.key_updates_consecutive_max,
            warning_alerts_consecutive: 0,
            key_updates_consecutive: 0,
        }
    }

    /// Application data arrived: the counts start over.
    pub fn on_data(&mut self) {
        self.warning_alerts_consecutive = 0;
        self.key_updates_consecutive = 0;
    }

    pub fn on_ignored_warning(&mut self) -> Result<(), RecordError> {
        self.warning_alerts_consecutive += 1;
        if self.warning_alerts_consecutive > self.warning_alerts_consecutive_max {
            return Err(RecordError::TooManyWarningAlerts);
        }
        Ok(())
    }

    pub fn on_key_update(&mut self) -> Result<(), RecordError> {
        self.key_updates_consecutive += 1;
        if self.key_updates_consecutive > self.key_updates_consecutive_max {
            return Err(RecordError::TooManyKeyUpdates);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_notify_at_either_level_stops() {
        for v in [Version::Tls12, Version::Tls13] {
            for level in [1, 2] {
                assert_eq!(
                    alert(v, &[level, 0]).unwrap(),
                    AlertAction::Stop(ControlEvent::CloseNotify)
                );
            }
        }
    }

    #[test]
    fn tls13_warning_other_than_user_canceled_is_an_error_alert() {
        assert_eq!(
            alert(Version::Tls13, &[1, 90]).unwrap(),
            AlertAction::Ignore { description: 90 }
        );
        assert_eq!(
            alert(Version::Tls13, &[1, 100]).unwrap(),
            AlertAction::Stop(ControlEvent::Alert {
                level: 1,
                description: 100
            })
        );
        assert_eq!(
            alert(Version::Tls12, &[1, 100]).unwrap(),
            AlertAction::Ignore { description: 100 }
        );
    }

    #[test]
    fn fatal_alert_stops_and_is_named() {
        let AlertAction::Stop(ev) = alert(Version::Tls12, &[2, 40]).unwrap() else {
            panic!("fatal alert must stop");
        };
        assert_eq!(ev.alert_description(), AlertDescription::HandshakeFailure);
    }

    #[test]
    fn malformed_alerts_are_errors() {
        for p in [&[][..], &[2], &[2, 40, 2, 40], &[3, 0], &[0, 0]] {
            assert!(matches!(
                alert(Version::Tls13, p),
                Err(RecordError::BadAlert)
            ));
        }
    }

    #[test]
    fn key_update_parses_both_flags() {
        assert_eq!(
            handshake(Version::Tls13, &[24, 0, 0, 1, 0]).unwrap(),
            HandshakeAction::KeyUpdate {
                update_requested: false
            }
        );
        assert_eq!(
            handshake(Version::Tls13, &[24, 0, 0, 1, 1]).unwrap(),
            HandshakeAction::KeyUpdate {
                update_requested: true
            }
        );
        assert!(matches!(
            handshake(Version::Tls13, &[24, 0, 0, 1, 2]),
            Err(RecordError::BadKeyUpdate)
        ));
        assert!(matches!(
            handshake(Version::Tls13, &[24, 0, 0, 2, 0, 0]),
            Err(RecordError::BadKeyUpdate)
        ));
    }

    #[test]
    fn key_update_split_or_coalesced_is_rejected() {
        for p in [
            &[24u8][..],
            &[24, 0, 0, 1],
            &[24, 0, 0, 1, 0, 24, 0, 0, 1, 0],
        ] {
            assert!(matches!(
                handshake(Version::Tls13, p),
                Err(RecordError::HandshakeMessageNotAligned { .. })
            ));
        }
    }

    #[test]
    fn other_handshake_messages_are_unsupported() {
        // NewSessionTicket (4) from a client, and a TLS 1.2 renegotiation ClientHello.
        assert!(matches!(
            handshake(Version::Tls13, &[4, 0, 0, 0]),
            Err(RecordError::HandshakeMessageUnsupported(4))
        ));
        assert!(matches!(
            handshake(Version::Tls12, &[1, 0, 0, 0]),
            Err(RecordError::HandshakeMessageUnsupported(1))
        ));
        assert!(matches!(
            handshake(Version::Tls12, &[24, 0, 0, 1, 0]),
            Err(RecordError::HandshakeMessageUnsupported(24))
        ));
    }
}
