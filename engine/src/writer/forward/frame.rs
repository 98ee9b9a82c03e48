//! One message as it goes on the wire to the upstream: framed, and with
//! `forward_identity`, carrying the original client's TLS identity.
//!
//! Framing: RFC 5425 octet counting (`LEN SP MSG`, LEN in decimal without
//! leading zeros) or RFC 6587 newline (`MSG LF`; a message holding a LF
//! would split, which is why octet counting is the default).
//!
//! Identity: the SD element `[tls@32473 cn="…" fp="…"]` goes first in the
//! STRUCTURED-DATA of an RFC 5424 message (`-` is replaced). 32473 is the
//! private enterprise number RFC 5612 reserves for documentation; the
//! SD-ID is therefore a private one, `tls@32473`, with two params: `cn`, the
//! client certificate's first CN, and `fp`, its SHA-256 fingerprint
//! (`AA:BB:..`), each present when known. Values escape `"`, `\` and `]` as
//! RFC 5424 says. A message that already carries `tls@32473` (set by an
//! earlier relay) keeps it unchanged, so the last hop sees who first sent
//! it, and an SD-ID never appears twice. A message that is not RFC 5424
//! (RFC 3164, plain text), or a client without a certificate, is sent
//! unchanged.

use crate::config::ForwardFraming;
use crate::tls::PeerIdentity;

/// The SD-ID of the identity element.
pub const IDENTITY_SD_ID: &str = "tls@32473";

/// Appends `msg` framed to `out`, with the identity element when given.
pub fn push_frame(
    out: &mut Vec<u8>,
    framing: ForwardFraming,
    msg: &[u8],
    identity: Option<&PeerIdentity>,
) {
    let element = identity.and_then(|id| identity_element(msg, id));
    let split = element.as_ref().map(|(at, e, replace)| (*at, e, *replace));
    let len = msg.len() + split.map_or(0, |(_, e, replace)| e.len() - usize::from(replace));
    if framing == ForwardFraming::OctetCounted {
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
    }
    match split {
        Some((at, e, replace)) => {
            out.extend_from_slice(&msg[..at]);
            out.extend_from_slice(e);
            out.extend_from_slice(&msg[at + usize::from(replace)..]);
        }
        None => out.extend_from_slice(msg),
    }
    if framing == ForwardFraming::Newline {
        out.push(b'\n');
    }
}

/// Where the element goes in `msg`, the element, and whether it replaces
/// the `-` there; None when the message is not RFC 5424, already has one,
/// or there is nothing to say.
fn identity_element(msg: &[u8], id: &PeerIdentity) -> Option<(usize, Vec<u8>, bool)> {
    if id.client_cn.is_none() && id.client_sha256.is_none() {
        return None;
    }
    let at = sd_offset(msg)?;
    let replace = match msg.get(at) {
        Some(b'-') if matches!(msg.get(at + 1), None | Some(b' ')) => true,
        Some(b'[') => false,
        _ => return None,
    };
    if !replace && contains(&msg[at..], IDENTITY_SD_ID.as_bytes()) {
        return None;
    }
    let mut e = Vec::with_capacity(128);
    e.extend_from_slice(b"[");
    e.extend_from_slice(IDENTITY_SD_ID.as_bytes());
    for (name, value) in [("cn", &id.client_cn), ("fp", &id.client_sha256)] {
        if let Some(v) = value {
            e.extend_from_slice(format!(" {name}=\"").as_bytes());
            for &b in v.as_bytes() {
                if matches!(b, b'"' | b'\\' | b']') {
                    e.push(b'\\');
                }
                e.push(b);
            }
            e.push(b'"');
        }
    }
    e.push(b']');
    Some((at, e, replace))
}

/// Offset of STRUCTURED-DATA in an RFC 5424 message: after `<PRI>1 ` and
/// five space-ended header fields (TIMESTAMP HOSTNAME APP-NAME PROCID MSGID).
fn sd_offset(msg: &[u8]) -> Option<usize> {
    let close = msg.iter().take(5).position(|&b| b == b'>')?;
    if msg.first() != Some(&b'<') || close < 2 || !msg[1..close].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut at = close + 1;
    if msg.get(at..at + 2) != Some(b"1 ") {
        return None;
    }
    at += 2;
    for _ in 0..5 {
        let field = msg.get(at..)?.iter().position(|&b| b == b' ')?;
        if field == 0 {
            return None;
        }
        at += field + 1;
    }
    Some(at)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(cn: Option<&str>) -> PeerIdentity {
        PeerIdentity {
            tls_version: "TLSv1.3",
            cipher: "TLS_AES_128_GCM_SHA256",
            client_cn: cn.map(str::to_string),
            client_sans: Vec::new(),
            client_sha256: Some("AA:BB".into()),
            client_issuer: None,
        }
    }

    fn frame(framing: ForwardFraming, msg: &str, identity: Option<&PeerIdentity>) -> String {
        let mut out = Vec::new();
        push_frame(&mut out, framing, msg.as_bytes(), identity);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn octet_counted_and_newline_framing() {
        assert_eq!(
            frame(ForwardFraming::OctetCounted, "hello", None),
            "5 hello"
        );
        assert_eq!(frame(ForwardFraming::Newline, "hello", None), "hello\n");
        assert_eq!(frame(ForwardFraming::OctetCounted, "", None), "0 ");
    }

    #[test]
    fn identity_replaces_a_nil_sd_and_the_length_counts_it() {
        let msg = "<34>1 2026-11-29T10:00:00Z host app 12 ID7 - hi";
        let got = frame(ForwardFraming::OctetCounted, msg, Some(&id(Some("edge-1"))));
        let body =
            "<34>1 2026-11-29T10:00:00Z host app 12 ID7 [tls@32473 cn=\"edge-1\" fp=\"AA:BB\"] hi";
        assert_eq!(got, format!("{} {body}", body.len()));
    }

    #[test]
    fn identity_goes_before_existing_sd_and_escapes_values() {
        let msg = "<34>1 - h a - - [x@1 a=\"b\"] m";
        let got = frame(ForwardFraming::Newline, msg, Some(&id(Some("a\"b]c\\"))));
        assert_eq!(
            got,
            "<34>1 - h a - - [tls@32473 cn=\"a\\\"b\\]c\\\\\" fp=\"AA:BB\"][x@1 a=\"b\"] m\n"
        );
    }

    #[test]
    fn an_earlier_hops_identity_is_kept_and_not_repeated() {
        let msg = "<34>1 - h a - - [tls@32473 cn=\"first\"] m";
        assert_eq!(
            frame(ForwardFraming::Newline, msg, Some(&id(Some("relay")))),
            format!("{msg}\n")
        );
    }

    #[test]
    fn non_5424_messages_and_clients_without_identity_pass_unchanged() {
        let bsd = "<34>Nov 29 10:00:00 host app: hi";
        assert_eq!(
            frame(ForwardFraming::Newline, bsd, Some(&id(Some("c")))),
            format!("{bsd}\n")
        );
        let truncated = "<34>1 - h a";
        assert_eq!(
            frame(ForwardFraming::Newline, truncated, Some(&id(Some("c")))),
            format!("{truncated}\n")
        );
        let mut none = id(None);
        none.client_sha256 = None;
        let msg = "<34>1 - h a - - - m";
        assert_eq!(
            frame(ForwardFraming::Newline, msg, Some(&none)),
            format!("{msg}\n")
        );
    }
}
