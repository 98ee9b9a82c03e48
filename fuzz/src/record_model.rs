//! What the record reader must do with a sequence of records that arrive
//! intact, from the rules in `engine/src/record/mod.rs`'s module doc, in
//! the simplest form: one record at a time, no buffers, no crypto.

use ringest::record::{ControlEvent, PLAINTEXT_LEN_MAX};

/// One record as the `record_mutate` target asks the forger for it.
#[derive(Clone, Debug)]
pub enum Rec {
    AppData(Vec<u8>),
    Alert(Vec<u8>),
    Handshake(Vec<u8>),
    /// A TLS 1.3 KeyUpdate; the sender switches keys after it.
    KeyUpdate(bool),
    /// Content type chosen by the fuzzer (the inner type under TLS 1.3).
    Raw(u8, Vec<u8>),
}

/// The reader's defaults (`ReaderLimits::default()`).
const EMPTY_RECORDS_MAX: u32 = 32;
const WARNING_ALERTS_MAX: u32 = 4;
const KEY_UPDATES_MAX: u32 = 32;

/// What the receiver sees once a record is decrypted.
enum Seen {
    Data(Vec<u8>),
    Alert(Vec<u8>),
    Handshake(Vec<u8>),
    /// Refused before its content is looked at: the error's label.
    Refused(&'static str),
}

fn seen(rec: &Rec, tls13: bool) -> Seen {
    let (typ, payload) = match rec {
        Rec::AppData(p) => return Seen::Data(p.clone()),
        Rec::Alert(p) => return Seen::Alert(p.clone()),
        Rec::Handshake(p) => return Seen::Handshake(p.clone()),
        Rec::KeyUpdate(requested) => {
            return Seen::Handshake(vec![24, 0, 0, 1, u8::from(*requested)])
        }
        Rec::Raw(typ, p) => (*typ, p.clone()),
    };
    let (typ, content) = if tls13 {
        // TLSInnerPlaintext: content, type, zero padding; the type is the
        // last non-zero byte (RFC 8446 §5.4). The forger adds no padding,
        // but the fuzzer's content may end in zeros after a type 0.
        let mut inner = payload;
        inner.push(typ);
        while inner.last() == Some(&0) {
            inner.pop();
        }
        let Some(typ) = inner.pop() else {
            return Seen::Refused("empty_inner_plaintext");
        };
        (typ, inner)
    } else {
        // The outer type: the header check allows 20..=24 only.
        if !(20..=24).contains(&typ) {
            return Seen::Refused("bad_record_header");
        }
        (typ, payload)
    };
    match typ {
        23 => Seen::Data(content),
        21 => Seen::Alert(content),
        22 => Seen::Handshake(content),
        _ => Seen::Refused("unexpected_content_type"),
    }
}

/// Whether the receiver takes `rec` as a KeyUpdate, so the sender must
/// switch keys after it (whatever its spelling: the fuzzer can write one as
/// a handshake record or a raw TLS 1.3 inner type 22).
pub fn is_key_update(rec: &Rec, tls13: bool) -> bool {
    tls13 && matches!(seen(rec, tls13), Seen::Handshake(p) if matches!(p[..], [24, 0, 0, 1, 0 | 1]))
}

/// Everything sent as application data, in order: a reader may deliver a
/// prefix of this and nothing else.
pub fn sent_plaintext(recs: &[Rec], tls13: bool) -> Vec<u8> {
    let mut sent = Vec::new();
    for rec in recs {
        if let Seen::Data(p) = seen(rec, tls13) {
            sent.extend_from_slice(&p);
        }
    }
    sent
}

#[derive(Debug, Default)]
pub struct Want {
    pub plaintext: Vec<u8>,
    pub event: Option<ControlEvent>,
    pub error: Option<&'static str>,
    /// Records consumed; counted only when there is no error.
    pub records: usize,
    pub key_updates: u32,
    pub key_update_requested: bool,
}

impl Want {
    pub fn stopped(&self) -> bool {
        self.event.is_some() || self.error.is_some()
    }
}

/// The reader's outcome for `recs` arriving intact, in order.
pub fn run(recs: &[Rec], tls13: bool) -> Want {
    let mut w = Want::default();
    let (mut empty, mut warnings, mut key_updates) = (0, 0, 0);
    for rec in recs {
        w.records += 1;
        let error = match seen(rec, tls13) {
            Seen::Refused(label) => Some(label),
            Seen::Data(p) if p.len() > PLAINTEXT_LEN_MAX => Some("plaintext_too_large"),
            Seen::Data(p) if p.is_empty() => {
                empty += 1;
                (empty > EMPTY_RECORDS_MAX).then_some("too_many_empty_records")
            }
            Seen::Data(p) => {
                (empty, warnings, key_updates) = (0, 0, 0);
                w.plaintext.extend_from_slice(&p);
                None
            }
            Seen::Alert(p) => match p[..] {
                [level @ (1 | 2), 0] => {
                    let _ = level;
                    w.event = Some(ControlEvent::CloseNotify);
                    return w;
                }
                [1, description] if !tls13 || description == 90 => {
                    warnings += 1;
                    (warnings > WARNING_ALERTS_MAX).then_some("too_many_warning_alerts")
                }
                [level @ (1 | 2), description] => {
                    w.event = Some(ControlEvent::Alert { level, description });
                    return w;
                }
                _ => Some("bad_alert"),
            },
            Seen::Handshake(p) => match p[..] {
                [] | [_] | [_, _] | [_, _, _] => Some("handshake_message_not_aligned"),
                [typ, ..] if !tls13 || typ != 24 => Some("handshake_message_unsupported"),
                [_, l0, l1, l2, ref body @ ..]
                    if body.len()
                        != usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2) =>
                {
                    Some("handshake_message_not_aligned")
                }
                [_, _, _, _, requested @ (0 | 1)] => {
                    key_updates += 1;
                    if key_updates > KEY_UPDATES_MAX {
                        Some("too_many_key_updates")
                    } else {
                        w.key_updates += 1;
                        w.key_update_requested |= requested == 1;
                        None
                    }
                }
                _ => Some("bad_key_update"),
            },
        };
        if error.is_some() {
            w.error = error;
            return w;
        }
    }
    w
}
