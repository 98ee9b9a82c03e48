//! End-to-end record-layer tests: a real rustls handshake in memory, the
//! handover from the module docs, then client records through `RecordReader`.

mod bench;
mod harness;

use rustls::{AlertDescription, ContentType};

use super::{ControlEvent, Needed, RecordError, Version};
use harness::*;

/// Messages of syslog-like and awkward sizes: one byte, exactly one record,
/// several records.
const MESSAGE_LENS: [usize; 7] = [300, 1, 16384, 40_000, 300, 299, 16385];

/// The whole life of a connection for one suite: data behind the client's
/// Finished (TLS 1.3), a stream of messages fed in random splits, a KeyUpdate
/// mid-stream with data before and after (TLS 1.3), close_notify with bytes
/// after it, then our own KeyUpdate answer and close_notify back to the client.
fn full_stream(case: Case) {
    let early = message(99, 700);
    let mut h = handshake(
        case,
        HandshakeOpts {
            early_client_data: if case.is_tls13() { &early } else { &[] },
            ..Default::default()
        },
    );
    if case.is_tls13() {
        assert_eq!(
            h.drained, early,
            "data behind Finished must be drained, not lost"
        );
    }
    assert_eq!(
        h.reader.negotiated_cipher_suite().suite(),
        case.suite.suite()
    );
    let mut sent = Vec::new();
    let mut wire = h.pending_wire();
    for (i, &len) in MESSAGE_LENS.iter().enumerate() {
        let m = message(i as u32, len);
        wire.extend_from_slice(&client_send(&mut h.client, &m));
        sent.extend_from_slice(&m);
    }
    if case.is_tls13() {
        h.client.refresh_traffic_keys().expect("key update");
        for i in 0..3 {
            let m = message(100 + i, 300);
            wire.extend_from_slice(&client_send(&mut h.client, &m));
            sent.extend_from_slice(&m);
        }
    }
    h.client.send_close_notify();
    wire.extend_from_slice(&client_wire(&mut h.client));
    wire.extend_from_slice(b"after close_notify");

    let fed = feed(&mut h.reader, &wire, &chunk_sizes(7, 97, 3000)).expect("stream");
    assert_eq!(fed.plaintext.len(), sent.len());
    assert!(fed.plaintext == sent, "plaintext differs");
    assert_eq!(fed.event, Some(ControlEvent::CloseNotify));
    assert_eq!(fed.unconsumed, b"after close_notify");
    assert_eq!(fed.key_updates, u32::from(case.is_tls13()));
    assert_eq!(fed.key_update_requested, case.is_tls13());
    assert!(h.reader.is_stopped());

    let mut out = Vec::new();
    if fed.key_update_requested {
        h.writer
            .key_update(h.reader.kernel_mut().expect("TLS 1.3"), &mut out)
            .expect("our key update");
    }
    h.writer.close_notify(&mut out).expect("close_notify");
    let state = client_receive(&mut h.client, &out);
    assert!(state.peer_has_closed(), "client must see our close_notify");
}

#[test]
fn tls13_aes128_gcm_full_stream() {
    full_stream(TLS13_AES128);
}

#[test]
fn tls13_aes256_gcm_full_stream() {
    full_stream(TLS13_AES256);
}

#[test]
fn tls13_chacha20_full_stream() {
    full_stream(TLS13_CHACHA);
}

#[test]
fn tls12_ecdhe_rsa_aes128_gcm_full_stream() {
    full_stream(TLS12_RSA_AES128);
}

#[test]
fn tls12_ecdhe_ecdsa_aes256_gcm_full_stream() {
    full_stream(TLS12_ECDSA_AES256);
}

#[test]
fn tls12_ecdhe_ecdsa_chacha20_full_stream() {
    full_stream(TLS12_ECDSA_CHACHA);
}

/// The read that carried the client's Finished also carried two whole data
/// records and half of a third. rustls drains the whole ones (ReadTraffic),
/// the half is left in the buffer untouched and completes in the reader.
fn handover_with_partial_record(case: Case, configs: HandshakeOpts<'_>) {
    // 2 × 16 KiB + 7232 bytes: three records.
    let early = message(5, 40_000);
    let mut h = handshake(
        case,
        HandshakeOpts {
            early_client_data: &early,
            hold_back: 1000,
            ..configs
        },
    );
    assert_eq!(h.held_back.len(), 1000);
    assert_eq!(h.drained_records, 2);
    assert_eq!(h.drained, early[..32_768]);
    assert!(!h.leftover.is_empty(), "a partial record must be left over");
    assert!(matches!(
        super::record_len_needed(&h.leftover),
        Ok(Needed::More { missing: 1000 })
    ));

    let later = message(6, 300);
    let mut wire = h.pending_wire();
    wire.extend_from_slice(&client_send(&mut h.client, &later));
    let fed = feed(&mut h.reader, &wire, &[513]).expect("after handover");
    let mut got = h.drained.clone();
    got.extend_from_slice(&fed.plaintext);
    let mut want = early.clone();
    want.extend_from_slice(&later);
    assert!(
        got == want,
        "nothing may be lost or repeated across the handover"
    );
    assert!(fed.unconsumed.is_empty());
}

#[test]
fn tls13_handover_keeps_partial_record_behind_finished() {
    for case in [TLS13_AES128, TLS13_AES256, TLS13_CHACHA] {
        handover_with_partial_record(case, HandshakeOpts::default());
    }
}

/// TLS 1.2 can only put data behind the client's Finished in an abbreviated
/// (resumed) handshake: there the client finishes last.
#[test]
fn tls12_resumed_handover_keeps_data_behind_finished() {
    for case in [TLS12_RSA_AES128, TLS12_ECDSA_AES256, TLS12_ECDSA_CHACHA] {
        let shared = HandshakeOpts {
            client_config: Some(client_config(case)),
            server_config: Some(server_config(case)),
            ..Default::default()
        };
        let first = handshake(
            case,
            HandshakeOpts {
                client_config: shared.client_config.clone(),
                server_config: shared.server_config.clone(),
                ..Default::default()
            },
        );
        assert_eq!(
            first.client.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
        drop(first);
        // handover_with_partial_record asserts the drained/leftover split,
        // which only happens if the client's Finished led its final flight,
        // i.e. if this second handshake was resumed.
        handover_with_partial_record(case, shared);
    }
}

#[test]
fn records_fed_one_byte_at_a_time() {
    for case in [TLS13_AES128, TLS12_ECDSA_CHACHA] {
        let mut h = handshake(case, HandshakeOpts::default());
        let mut sent = Vec::new();
        let mut wire = Vec::new();
        for i in 0..4 {
            let m = message(i, 5000 + i as usize);
            wire.extend_from_slice(&client_send(&mut h.client, &m));
            sent.extend_from_slice(&m);
        }
        let fed = feed(&mut h.reader, &wire, &[1]).expect("bytewise");
        assert!(fed.plaintext == sent);
        assert!(fed.unconsumed.is_empty());
        assert_eq!(fed.records, 4);
    }
}

/// Data, KeyUpdate, data, KeyUpdate, data, all in one buffer: one `process`
/// call applies both updates and decrypts everything with the right keys.
#[test]
fn key_updates_mid_buffer_apply_in_the_same_call() {
    for case in [TLS13_AES128, TLS13_AES256, TLS13_CHACHA] {
        let mut h = handshake(case, HandshakeOpts::default());
        let mut buf = Vec::new();
        let mut sent = Vec::new();
        for round in 0..3u32 {
            if round > 0 {
                h.client.refresh_traffic_keys().expect("key update");
            }
            for i in 0..2 {
                let m = message(round * 10 + i, 300);
                buf.extend_from_slice(&client_send(&mut h.client, &m));
                sent.extend_from_slice(&m);
            }
        }
        let mut got = Vec::new();
        let progress = h
            .reader
            .process(&mut buf, &mut |p: &[u8]| got.extend_from_slice(p))
            .expect("process");
        assert_eq!(progress.consumed, buf.len());
        assert_eq!(progress.key_updates, 2);
        assert!(progress.key_update_requested);
        assert_eq!(progress.event, None);
        // 6 data records + 2 KeyUpdate records.
        assert_eq!(progress.records, 8);
        assert!(got == sent);
        // Two data records under the newest key.
        assert_eq!(h.reader.rx_seq(), 2);
    }
}

/// An idle connection holds secrets, not AEAD keys: the receiving key is
/// built at the first record, the sending key at the first record sent, and
/// a KeyUpdate's next key again only when used. Keys built late decrypt
/// and encrypt as the eager ones did (the client reads what we send).
#[test]
fn keys_are_built_at_first_use_only() {
    for case in [TLS13_AES128, TLS12_ECDSA_AES256] {
        let mut h = handshake(case, HandshakeOpts::default());
        assert!(
            !h.reader.key_built(),
            "{case:?}: idle, no receiving key yet"
        );
        assert!(!h.writer.key_built(), "{case:?}: idle, no sending key yet");
        let m = message(1, 300);
        let mut wire = h.pending_wire();
        wire.extend_from_slice(&client_send(&mut h.client, &m));
        let fed = feed(&mut h.reader, &wire, &[wire.len()]).expect("stream");
        assert!(fed.plaintext == m);
        assert!(h.reader.key_built(), "{case:?}: built by the first record");
        assert!(!h.writer.key_built(), "{case:?}: nothing sent yet");
        if case.is_tls13() {
            h.client.refresh_traffic_keys().expect("key update");
            let wire = client_wire(&mut h.client);
            let fed = feed(&mut h.reader, &wire, &[wire.len()]).expect("key update");
            assert_eq!(fed.key_updates, 1);
            assert!(
                !h.reader.key_built(),
                "the next key waits for its first record"
            );
            let m2 = message(2, 300);
            let wire = client_send(&mut h.client, &m2);
            let fed = feed(&mut h.reader, &wire, &[wire.len()]).expect("after key update");
            assert!(fed.plaintext == m2, "the late key decrypts");
            assert!(h.reader.key_built());
        }
        let mut out = Vec::new();
        h.writer.close_notify(&mut out).expect("close_notify");
        assert!(
            h.writer.key_built(),
            "{case:?}: built by the first record sent"
        );
        let state = client_receive(&mut h.client, &out);
        assert!(
            state.peer_has_closed(),
            "{case:?}: the client reads our late key"
        );
    }
}

#[test]
fn tls12_keeps_no_key_schedule_for_a_key_update() {
    let mut h = handshake(TLS12_ECDSA_AES256, HandshakeOpts::default());
    // No key schedule is kept for TLS 1.2 (nothing could use it), so our
    // KeyUpdate is refused before anything is written.
    assert!(matches!(
        h.reader.kernel_mut(),
        Err(RecordError::UnsupportedVersion(0x0303))
    ));
    assert_eq!(h.reader.version(), Version::Tls12);
    // The connection still closes cleanly.
    let mut out = Vec::new();
    h.writer.close_notify(&mut out).expect("close_notify");
    assert!(client_receive(&mut h.client, &out).peer_has_closed());
}

#[test]
fn flipped_ciphertext_byte_is_decrypt_failed() {
    for case in ALL_CASES {
        let mut h = handshake(case, HandshakeOpts::default());
        let rec = client_send(&mut h.client, &message(1, 300));
        let body_len = rec.len() - 5;
        // First body byte (TLS 1.2 GCM: explicit nonce), middle, last (tag).
        for pos in [5, 5 + body_len / 2, rec.len() - 1] {
            let mut h = handshake(case, HandshakeOpts::default());
            let mut bad = client_send(&mut h.client, &message(1, 300));
            bad[pos] ^= 0x01;
            let mut called = false;
            let r = h.reader.process(&mut bad, &mut |_: &[u8]| called = true);
            assert!(
                matches!(r, Err(RecordError::DecryptFailed)),
                "{case:?} pos {pos}: {r:?}"
            );
            assert!(!called);
            let err = r.unwrap_err();
            assert_eq!(err.label(), "decrypt_failed");
            assert_eq!(err.alert(), Some(AlertDescription::BadRecordMac));
            // The reader refuses to go on after a failure.
            assert!(matches!(
                h.reader.process(&mut [], &mut |_: &[u8]| {}),
                Err(RecordError::Closed)
            ));
        }
    }
}

#[test]
fn replayed_record_is_decrypt_failed() {
    let mut h = handshake(TLS13_AES128, HandshakeOpts::default());
    let rec = client_send(&mut h.client, &message(1, 300));
    let mut twice = rec.clone();
    twice.extend_from_slice(&rec);
    let r = h.reader.process(&mut twice, &mut |_: &[u8]| {});
    assert!(matches!(r, Err(RecordError::DecryptFailed)));
}

#[test]
fn garbage_header_is_bad_record_header() {
    for garbage in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"<13>Oct 11 22:14:15 host app: hi\n",
        &[23, 3, 1, 0, 20],
    ] {
        let mut h = handshake(TLS13_AES128, HandshakeOpts::default());
        let mut buf = garbage.to_vec();
        let r = h.reader.process(&mut buf, &mut |_: &[u8]| {});
        assert!(
            matches!(r, Err(RecordError::BadRecordHeader { .. })),
            "{r:?}"
        );
    }
    // Detected from the first byte, without waiting for a whole header.
    let mut h = handshake(TLS12_RSA_AES128, HandshakeOpts::default());
    let r = h.reader.process(&mut [b'<'], &mut |_: &[u8]| {});
    assert!(matches!(
        r,
        Err(RecordError::BadRecordHeader {
            content_type: b'<',
            ..
        })
    ));
}

#[test]
fn oversize_length_is_record_too_large_from_the_header_alone() {
    let mut h = handshake(TLS13_CHACHA, HandshakeOpts::default());
    let r = h
        .reader
        .process(&mut [23, 3, 3, 0x41, 0x01], &mut |_: &[u8]| {});
    assert!(matches!(
        r,
        Err(RecordError::RecordTooLarge {
            len: 16_641,
            len_max: 16_640
        })
    ));
    // TLS 1.2 allows 2^14 + 2048 of ciphertext; that header just waits for its body.
    let mut h = handshake(TLS12_ECDSA_AES256, HandshakeOpts::default());
    let progress = h
        .reader
        .process(&mut [23, 3, 3, 0x48, 0x00], &mut |_: &[u8]| {})
        .expect("legal length");
    assert_eq!(progress.consumed, 0);
    let r = h
        .reader
        .process(&mut [23, 3, 3, 0x48, 0x01], &mut |_: &[u8]| {});
    assert!(matches!(
        r,
        Err(RecordError::RecordTooLarge { len: 18_433, .. })
    ));
}

#[test]
fn tls13_change_cipher_spec_after_handshake_is_unexpected() {
    let mut h = handshake(TLS13_AES256, HandshakeOpts::default());
    let r = h
        .reader
        .process(&mut [20, 3, 3, 0, 1, 1], &mut |_: &[u8]| {});
    assert!(matches!(r, Err(RecordError::UnexpectedContentType(20))));
    // An unencrypted alert is just as unexpected.
    let mut h = handshake(TLS13_AES256, HandshakeOpts::default());
    let r = h
        .reader
        .process(&mut [21, 3, 3, 0, 2, 2, 40], &mut |_: &[u8]| {});
    assert!(matches!(r, Err(RecordError::UnexpectedContentType(21))));
}

#[test]
fn tls12_change_cipher_spec_after_handshake_is_unexpected() {
    let mut h = handshake(TLS12_RSA_AES128, HandshakeOpts::default());
    let r = h
        .reader
        .process(&mut [20, 3, 3, 0, 1, 1], &mut |_: &[u8]| {});
    assert!(matches!(r, Err(RecordError::UnexpectedContentType(20))));
}

/// A handshake whose client keys a test can use to forge records.
fn forger(case: Case) -> (Forger, super::RecordReader) {
    let h = handshake(case, HandshakeOpts::default());
    (Forger::from_client(h.client, case.suite), h.reader)
}

#[test]
fn zero_length_application_data_is_skipped() {
    for case in [TLS13_AES128, TLS12_ECDSA_CHACHA] {
        let (mut f, mut reader) = forger(case);
        let mut buf = f.app_data(b"");
        buf.extend_from_slice(&f.app_data(b"after empty"));
        let mut got = Vec::new();
        let progress = reader
            .process(&mut buf, &mut |p: &[u8]| got.push(p.to_vec()))
            .expect("empty record");
        assert_eq!(got, vec![b"after empty".to_vec()]);
        assert_eq!(progress.records, 2);
    }
}

#[test]
fn too_many_empty_records_is_an_error() {
    let (mut f, mut reader) = forger(TLS13_AES128);
    let mut buf = Vec::new();
    for _ in 0..33 {
        buf.extend_from_slice(&f.app_data(b""));
    }
    let r = reader.process(&mut buf, &mut |_: &[u8]| {});
    assert!(matches!(r, Err(RecordError::TooManyEmptyRecords)));
}

#[test]
fn fatal_alert_is_an_event_and_stops() {
    for case in ALL_CASES {
        let (mut f, mut reader) = forger(case);
        let mut buf = f.app_data(b"before");
        buf.extend_from_slice(&f.record(ContentType::Alert, &[2, 40]));
        let stop = buf.len();
        buf.extend_from_slice(&f.app_data(b"after"));
        let mut got = Vec::new();
        let progress = reader
            .process(&mut buf, &mut |p: &[u8]| got.extend_from_slice(p))
            .expect("alert");
        assert_eq!(got, b"before");
        assert_eq!(progress.consumed, stop);
        let event = progress.event.expect("event");
        assert_eq!(
            event,
            ControlEvent::Alert {
                level: 2,
                description: 40
            }
        );
        assert_eq!(
            event.alert_description(),
            AlertDescription::HandshakeFailure
        );
        assert_eq!(event.label(), "alert");
    }
}

#[test]
fn tls13_warning_alert_is_treated_as_error_but_user_canceled_is_skipped() {
    let (mut f, mut reader) = forger(TLS13_CHACHA);
    let mut buf = f.record(ContentType::Alert, &[1, 90]);
    buf.extend_from_slice(&f.app_data(b"still here"));
    buf.extend_from_slice(&f.record(ContentType::Alert, &[1, 100]));
    let mut got = Vec::new();
    let progress = reader
        .process(&mut buf, &mut |p: &[u8]| got.extend_from_slice(p))
        .expect("alerts");
    assert_eq!(got, b"still here");
    assert_eq!(
        progress.event,
        Some(ControlEvent::Alert {
            level: 1,
            description: 100
        })
    );
}

#[test]
fn tls12_warning_alerts_are_skipped_but_bounded() {
    let (mut f, mut reader) = forger(TLS12_RSA_AES128);
    let mut buf = Vec::new();
    for _ in 0..4 {
        buf.extend_from_slice(&f.record(ContentType::Alert, &[1, 100]));
    }
    buf.extend_from_slice(&f.app_data(b"x"));
    let mut got = Vec::new();
    let progress = reader
        .process(&mut buf, &mut |p: &[u8]| got.extend_from_slice(p))
        .expect("four warnings");
    assert_eq!((progress.event, got.as_slice()), (None, &b"x"[..]));
    let mut buf = Vec::new();
    for _ in 0..5 {
        buf.extend_from_slice(&f.record(ContentType::Alert, &[1, 100]));
    }
    let r = reader.process(&mut buf, &mut |_: &[u8]| {});
    assert!(matches!(r, Err(RecordError::TooManyWarningAlerts)));
}

#[test]
fn malformed_alert_record_is_bad_alert() {
    let (mut f, mut reader) = forger(TLS13_AES128);
    let mut buf = f.record(ContentType::Alert, &[1, 0, 1, 0]);
    let r = reader.process(&mut buf, &mut |_: &[u8]| {});
    assert!(matches!(r, Err(RecordError::BadAlert)));
}

#[test]
fn client_new_session_ticket_is_rejected() {
    let (mut f, mut reader) = forger(TLS13_AES128);
    let mut buf = f.record(ContentType::Handshake, &[4, 0, 0, 0]);
    let r = reader.process(&mut buf, &mut |_: &[u8]| {});
    assert!(matches!(
        r,
        Err(RecordError::HandshakeMessageUnsupported(4))
    ));
    assert_eq!(r.unwrap_err().label(), "handshake_message_unsupported");
}

#[test]
fn tls12_renegotiation_client_hello_is_rejected() {
    let (mut f, mut reader) = forger(TLS12_ECDSA_AES256);
    let mut buf = f.record(ContentType::Handshake, &[1, 0, 0, 2, 3, 3]);
    let r = reader.process(&mut buf, &mut |_: &[u8]| {});
    assert!(matches!(
        r,
        Err(RecordError::HandshakeMessageUnsupported(1))
    ));
}

#[test]
fn key_update_coalesced_or_split_is_rejected() {
    let (mut f, mut reader) = forger(TLS13_AES256);
    let mut buf = f.record(ContentType::Handshake, &[24, 0, 0, 1, 0, 24, 0, 0, 1, 0]);
    let r = reader.process(&mut buf, &mut |_: &[u8]| {});
    assert!(matches!(
        r,
        Err(RecordError::HandshakeMessageNotAligned {
            len_needed: 5,
            len_have: 10
        })
    ));
    let (mut f, mut reader) = forger(TLS13_AES256);
    let mut buf = f.record(ContentType::Handshake, &[24, 0, 0]);
    let r = reader.process(&mut buf, &mut |_: &[u8]| {});
    assert!(matches!(
        r,
        Err(RecordError::HandshakeMessageNotAligned { .. })
    ));
}

#[test]
fn tls13_inner_change_cipher_spec_and_all_padding_are_rejected() {
    let (mut f, mut reader) = forger(TLS13_AES128);
    let mut buf = f.record(ContentType::ChangeCipherSpec, &[1]);
    let r = reader.process(&mut buf, &mut |_: &[u8]| {});
    assert!(matches!(r, Err(RecordError::UnexpectedContentType(20))));

    let (mut f, mut reader) = forger(TLS13_AES128);
    let mut buf = f.record(ContentType::Unknown(0), &[0, 0, 0]);
    let r = reader.process(&mut buf, &mut |_: &[u8]| {});
    assert!(matches!(r, Err(RecordError::EmptyInnerPlaintext)));

    let (mut f, mut reader) = forger(TLS13_AES128);
    let mut buf = f.record(ContentType::Unknown(99), b"x");
    let r = reader.process(&mut buf, &mut |_: &[u8]| {});
    assert!(matches!(r, Err(RecordError::UnexpectedContentType(99))));
}

#[test]
fn oversize_plaintext_is_plaintext_too_large() {
    for case in [TLS13_AES128, TLS12_ECDSA_AES256, TLS12_ECDSA_CHACHA] {
        let (mut f, mut reader) = forger(case);
        let mut buf = f.app_data(&[b'a'; 16_385]);
        let r = reader.process(&mut buf, &mut |_: &[u8]| {});
        assert!(
            matches!(r, Err(RecordError::PlaintextTooLarge)),
            "{case:?}: {r:?}"
        );
    }
}

#[test]
fn process_after_close_notify_is_closed() {
    let mut h = handshake(TLS13_AES128, HandshakeOpts::default());
    h.client.send_close_notify();
    let mut buf = client_wire(&mut h.client);
    let progress = h
        .reader
        .process(&mut buf, &mut |_: &[u8]| {})
        .expect("close");
    assert_eq!(progress.event, Some(ControlEvent::CloseNotify));
    assert_eq!(progress.consumed, buf.len());
    assert!(matches!(
        h.reader.process(&mut buf, &mut |_: &[u8]| {}),
        Err(RecordError::Closed)
    ));
}

#[test]
fn writer_fatal_alert_reaches_client() {
    for case in ALL_CASES {
        let mut h = handshake(case, HandshakeOpts::default());
        let mut out = Vec::new();
        h.writer
            .fatal_alert(AlertDescription::DecodeError, &mut out)
            .expect("alert");
        // The second record under the handed-over key: see RecordWriter docs.
        h.writer
            .close_notify(&mut out)
            .expect("close_notify after alert");
        let mut bytes = &out[..];
        h.client.read_tls(&mut bytes).expect("read_tls");
        let err = h
            .client
            .process_new_packets()
            .expect_err("client sees the alert");
        assert_eq!(
            err,
            rustls::Error::AlertReceived(AlertDescription::DecodeError)
        );
    }
}

#[test]
fn error_labels_are_unique_snake_case() {
    let errors = [
        RecordError::BadRecordHeader {
            content_type: 0,
            version: 0,
        },
        RecordError::RecordTooLarge { len: 0, len_max: 0 },
        RecordError::DecryptFailed,
        RecordError::PlaintextTooLarge,
        RecordError::EmptyInnerPlaintext,
        RecordError::UnexpectedContentType(0),
        RecordError::HandshakeMessageUnsupported(0),
        RecordError::HandshakeMessageNotAligned {
            len_needed: 0,
            len_have: 0,
        },
        RecordError::BadKeyUpdate,
        RecordError::BadAlert,
        RecordError::TooManyEmptyRecords,
        RecordError::TooManyWarningAlerts,
        RecordError::TooManyKeyUpdates,
        RecordError::SequenceExhausted,
        RecordError::Rekey(rustls::Error::HandshakeNotComplete),
        RecordError::Encrypt(rustls::Error::EncryptError),
        RecordError::UnsupportedSecrets,
        RecordError::UnsupportedVersion(0),
        RecordError::Closed,
    ];
    let mut labels: Vec<_> = errors.iter().map(|e| e.label()).collect();
    for (e, l) in errors.iter().zip(&labels) {
        assert!(
            l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{l}"
        );
        assert!(!e.to_string().is_empty());
    }
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), errors.len());
}

/// The kTLS path reads the handshake record-exactly with `record_len_needed`.
/// Walk real client flights (ClientHello carries record version 0x0301) and
/// check every step lands on a record boundary.
#[test]
fn record_len_needed_walks_real_client_flights() {
    for case in ALL_CASES {
        let mut client = new_client(&client_config(case));
        let mut server =
            rustls::server::UnbufferedServerConnection::new(server_config(case)).expect("server");
        let mut flights = Vec::new();
        let mut inbuf = Vec::new();
        let (mut drained, mut n) = (Vec::new(), 0);
        for _ in 0..4 {
            let flight = client_wire(&mut client);
            if !flight.is_empty() {
                flights.push(flight.clone());
            }
            inbuf.extend_from_slice(&flight);
            let (out, phase) = server_step(&mut server, &mut inbuf, &mut drained, &mut n);
            client_receive(&mut client, &out);
            if matches!(phase, Phase::Ready) && !server.is_handshaking() {
                break;
            }
        }
        assert!(flights.len() >= 2, "{case:?}");
        for flight in &flights {
            let mut pos = 0;
            let mut records = 0;
            while pos < flight.len() {
                // One byte at a time up to the header, then the body.
                let mut have = 1;
                let record_len = loop {
                    match super::record_len_needed(&flight[pos..pos + have]).expect("valid") {
                        Needed::Complete { record_len } => break record_len,
                        Needed::More { missing } => have += missing,
                    }
                };
                assert_eq!(have, record_len);
                pos += record_len;
                records += 1;
            }
            assert_eq!(pos, flight.len());
            assert!(records >= 1);
        }
    }
}
