//! Kernel TLS on an upstream connection, without IO: what the client makes
//! of each record the kernel hands back, and the keys it installs.
//!
//! After the handshake (read record by record, so the kernel can start at
//! a record boundary) [`choose_path`] picks the path. On `Offload`,
//! `link.rs` installs TX and RX: frames go to the socket as plaintext, and
//! the server's records still come back, one per `recvmsg`, with their
//! content type. The confirmation rules of `session.rs` do not change:
//! - application data or a NewSessionTicket is the server speaking, which
//!   confirms a TLS 1.3 connection;
//! - an alert is the failure it names (held frames go back to the queue);
//!   close_notify is a close;
//! - a KeyUpdate cannot be followed (the kernel needs the next key, and
//!   this client does not derive it): the connection closes with
//!   [`UpstreamFailure::KtlsKeyUpdate`] and held frames are resent;
//! - anything else after the handshake is a protocol error and closes.

use rustls::{AlertDescription, ExtractedSecrets, ProtocolVersion, SupportedCipherSuite};

use super::failure::UpstreamFailure;
use super::link::Heard;
use crate::conn::KtlsPlan;
use crate::ktls::{
    action_for, decide_handoff, parse_control_record, ControlAction, ControlRecord, CryptoInfo,
    Decision, KtlsVersion, Unsupported, UserspaceReason, CONTENT_TYPE_APPLICATION_DATA,
};
use crate::record::ControlBudget;

/// The path of an upstream connection after its handshake: a source's
/// policy (`ktls::decide_handoff`), with one difference. A kernel that
/// cannot follow a TLS 1.3 KeyUpdate (before Linux 6.14) keeps a source's
/// TLS 1.3 in userspace under `auto`, because the client's records after
/// its KeyUpdate would be lost. Here the only records the kernel decrypts
/// are the server's, which carry no messages: a KeyUpdate closes the
/// connection cleanly (`KtlsKeyUpdate`), unconfirmed messages are resent,
/// and nothing is lost. So `auto` offloads TLS 1.3 on such kernels too.
/// The handshake was read in whole records, so nothing is left unread.
pub fn choose_path(
    plan: &KtlsPlan,
    version: Option<ProtocolVersion>,
    suite: Option<SupportedCipherSuite>,
) -> Decision {
    match decide_handoff(plan.mode, &plan.support, version, suite, 0) {
        // Every other check passed before this one (see `ktls::decide`).
        Decision::Userspace(UserspaceReason::Tls13RekeyUnsupported) => Decision::Offload,
        d => d,
    }
}

/// What one record from the server means for the connection.
pub fn on_server_record(
    content_type: u8,
    payload: &[u8],
    version: KtlsVersion,
    budget: &mut ControlBudget,
) -> Result<Heard, UpstreamFailure> {
    if content_type == CONTENT_TYPE_APPLICATION_DATA {
        // A syslog server sends no data; any it does is dropped, but it
        // shows the server took the handshake.
        return Ok(Heard::Something);
    }
    let record = parse_control_record(content_type, payload)
        .map_err(|e| UpstreamFailure::KtlsProtocol(e.label()))?;
    if record == ControlRecord::NewSessionTicket {
        // A server sends tickets only to a client it accepted. Resumption
        // is off, so the ticket itself is not kept.
        return Ok(Heard::Something);
    }
    // The client never installs a second RX key: `can_rekey` is false.
    match action_for(&record, version, false, budget) {
        ControlAction::Ignore => Ok(Heard::Nothing),
        ControlAction::Finish => Err(UpstreamFailure::Closed),
        ControlAction::Rekey { .. } | ControlAction::CloseRekeyUnsupported => {
            Err(UpstreamFailure::KtlsKeyUpdate)
        }
        ControlAction::CloseAlert { description, .. } => {
            Err(UpstreamFailure::Alert(AlertDescription::from(description)))
        }
        ControlAction::CloseProtocolError(why) => Err(UpstreamFailure::KtlsProtocol(why)),
    }
}

/// The kernel's TX and RX keys from rustls's secrets, at the sequence
/// numbers rustls reached.
pub fn crypto_pair(
    version: ProtocolVersion,
    secrets: &ExtractedSecrets,
) -> Result<(CryptoInfo, CryptoInfo), Unsupported> {
    let tx = CryptoInfo::new(version, secrets.tx.0, &secrets.tx.1)?;
    let rx = CryptoInfo::new(version, secrets.rx.0, &secrets.rx.1)?;
    Ok((tx, rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ktls::{
        CipherSet, KtlsMode, KtlsSupport, CONTENT_TYPE_ALERT, CONTENT_TYPE_HANDSHAKE,
    };
    use crate::record::ReaderLimits;
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    use std::sync::Arc;

    fn plan(mode: KtlsMode, ulp: bool, rekey: bool) -> KtlsPlan {
        let all = if ulp { CipherSet::ALL } else { CipherSet::NONE };
        KtlsPlan {
            mode,
            support: Arc::new(KtlsSupport::simulated(ulp, all, all, rekey)),
        }
    }

    #[test]
    fn path_table_for_upstream_connections() {
        use KtlsMode::*;
        use UserspaceReason::*;
        let (v12, v13) = (ProtocolVersion::TLSv1_2, ProtocolVersion::TLSv1_3);
        let t12 = cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384;
        let t13 = cs::TLS13_CHACHA20_POLY1305_SHA256;
        let user = Decision::Userspace;
        #[rustfmt::skip]
        let table = [
            // mode, kTLS, rekey, version, suite -> path
            (Off,  true,  true,  v13, t13, user(ModeOff)),
            (Auto, false, false, v12, t12, user(KernelLacksKtls)),
            (On,   false, false, v13, t13, user(KernelLacksKtls)),
            (Auto, true,  false, v12, t12, Decision::Offload),
            // Linux 6.1: a source keeps this in userspace, a client need not.
            (Auto, true,  false, v13, t13, Decision::Offload),
            (On,   true,  false, v13, t13, Decision::Offload),
            (Auto, true,  true,  v13, t13, Decision::Offload),
        ];
        for (i, (mode, ulp, rekey, v, suite, want)) in table.into_iter().enumerate() {
            assert_eq!(
                choose_path(&plan(mode, ulp, rekey), Some(v), Some(suite)),
                want,
                "row {i}"
            );
        }
        let mut no_chacha = CipherSet::ALL;
        no_chacha.chacha20 = false;
        let k = KtlsPlan {
            mode: Auto,
            support: Arc::new(KtlsSupport::simulated(true, no_chacha, no_chacha, false)),
        };
        assert_eq!(
            choose_path(&k, Some(v13), Some(t13)),
            user(CipherUnsupported)
        );
        assert_eq!(choose_path(&k, None, Some(t13)), user(VersionUnsupported));
    }

    const V13: KtlsVersion = KtlsVersion::Tls13;
    const V12: KtlsVersion = KtlsVersion::Tls12;

    fn hear(ct: u8, payload: &[u8], v: KtlsVersion) -> Result<Heard, UpstreamFailure> {
        on_server_record(
            ct,
            payload,
            v,
            &mut ControlBudget::new(&ReaderLimits::default()),
        )
    }

    /// type 4, length 0x000005, then a body the client does not read.
    const TICKET: [u8; 9] = [4, 0, 0, 5, 1, 2, 3, 4, 5];

    #[test]
    fn a_session_ticket_confirms_the_connection() {
        assert_eq!(
            hear(CONTENT_TYPE_HANDSHAKE, &TICKET, V13),
            Ok(Heard::Something)
        );
        assert_eq!(
            hear(CONTENT_TYPE_APPLICATION_DATA, b"x", V12),
            Ok(Heard::Something)
        );
    }

    #[test]
    fn a_refusal_after_the_handoff_is_the_alert_it_names() {
        // fatal unknown_ca (48): the TLS 1.3 late refusal of our certificate.
        let f = hear(CONTENT_TYPE_ALERT, &[2, 48], V13).unwrap_err();
        assert_eq!(f, UpstreamFailure::Alert(AlertDescription::UnknownCA));
        assert_eq!(f.label(), "unknown_ca");
        let f = hear(CONTENT_TYPE_ALERT, &[2, 116], V13).unwrap_err();
        assert_eq!(f.label(), "certificate_required");
    }

    #[test]
    fn close_notify_is_a_close() {
        assert_eq!(
            hear(CONTENT_TYPE_ALERT, &[1, 0], V12),
            Err(UpstreamFailure::Closed)
        );
    }

    #[test]
    fn a_key_update_closes_with_its_own_reason() {
        for requested in [0u8, 1] {
            let f = hear(CONTENT_TYPE_HANDSHAKE, &[24, 0, 0, 1, requested], V13).unwrap_err();
            assert_eq!(f, UpstreamFailure::KtlsKeyUpdate);
            assert_eq!(f.label(), "ktls_key_update");
            assert!(f.to_string().contains("KeyUpdate"), "{f}");
        }
        // Under TLS 1.2 a KeyUpdate is not even a message.
        assert_eq!(
            hear(CONTENT_TYPE_HANDSHAKE, &[24, 0, 0, 1, 0], V12)
                .unwrap_err()
                .label(),
            "ktls_protocol"
        );
    }

    #[test]
    fn renegotiation_and_garbage_are_protocol_errors_not_panics() {
        // HelloRequest (type 0) asks a TLS 1.2 client to renegotiate.
        let f = hear(CONTENT_TYPE_HANDSHAKE, &[0, 0, 0, 0], V12).unwrap_err();
        assert_eq!(f.label(), "ktls_protocol");
        for (ct, payload) in [
            (CONTENT_TYPE_ALERT, &[2u8][..]),
            (CONTENT_TYPE_HANDSHAKE, &[4, 0][..]),
            (CONTENT_TYPE_HANDSHAKE, &[4, 0, 0, 9, 1][..]),
            (20, &[1][..]),
            (99, &[][..]),
        ] {
            let f = hear(ct, payload, V13).unwrap_err();
            assert_eq!(f.label(), "ktls_protocol", "{ct} {payload:?}: {f}");
        }
    }

    #[test]
    fn warning_alerts_are_read_past_within_the_budget() {
        let mut budget = ControlBudget::new(&ReaderLimits::default());
        let mut heard = Vec::new();
        for _ in 0..16 {
            // user_canceled, a warning TLS 1.2 lets a peer send.
            heard.push(on_server_record(
                CONTENT_TYPE_ALERT,
                &[1, 90],
                V12,
                &mut budget,
            ));
            if heard.last().is_some_and(|h| h.is_err()) {
                break;
            }
        }
        assert_eq!(heard[0], Ok(Heard::Nothing));
        assert_eq!(
            heard
                .last()
                .and_then(|h| h.clone().err())
                .map(|f| f.label()),
            Some("ktls_protocol"),
            "a flood of warnings ends the connection"
        );
    }
}
