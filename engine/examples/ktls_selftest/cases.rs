//! The cases: suites, key types, how the server reads its handshake, and
//! the twist each case adds (leftover data, KeyUpdate, garbage).

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ServerReads {
    /// Header, then exactly the body: nothing past the handshake is read.
    RecordExact,
    /// Whatever the socket has, up to GREEDY_READ_BYTES: the records after
    /// Finished are decrypted in userspace and the tail of a cut record is
    /// read exactly before the switch.
    Greedy,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Twist {
    None,
    /// The client writes its first messages before the handshake ends, so
    /// they leave in the same flight as its Finished.
    EarlyWrite,
    /// KeyUpdate after this many messages, then the rest.
    KeyUpdateAfter(usize),
    /// Raw bytes on the TCP stream after this many messages.
    GarbageAfter(usize),
}

pub(crate) struct Case {
    pub(crate) name: String,
    pub(crate) version: &'static SupportedProtocolVersion,
    pub(crate) suite: SupportedCipherSuite,
    pub(crate) rsa: bool,
    pub(crate) reads: ServerReads,
    pub(crate) twist: Twist,
    /// Run a full handshake first, so this connection resumes. A resumed
    /// TLS 1.2 handshake ends with the client's Finished, which the client
    /// may send together with its first records: the TLS 1.2 leftover path.
    pub(crate) resume: bool,
    pub(crate) messages: usize,
}

pub(crate) fn cases(messages: usize) -> Vec<Case> {
    let mut v = Vec::new();
    let case = |name: &str, version, suite, rsa, reads, twist| Case {
        name: name.to_string(),
        version,
        suite,
        rsa,
        reads,
        twist,
        resume: false,
        messages,
    };
    use ServerReads::*;
    use Twist::None as Plain;
    let t13 = &rustls::version::TLS13;
    let t12 = &rustls::version::TLS12;
    v.push(case(
        "tls1.3 aes128gcm ecdsa",
        t13,
        cs::TLS13_AES_128_GCM_SHA256,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.3 aes256gcm ecdsa",
        t13,
        cs::TLS13_AES_256_GCM_SHA384,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.3 chacha20 ecdsa",
        t13,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.3 aes128gcm rsa",
        t13,
        cs::TLS13_AES_128_GCM_SHA256,
        true,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-ecdsa-aes128gcm",
        t12,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-ecdsa-aes256gcm",
        t12,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-ecdsa-chacha20",
        t12,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        false,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-rsa-aes128gcm",
        t12,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        true,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-rsa-aes256gcm",
        t12,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        true,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.2 ecdhe-rsa-chacha20",
        t12,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        true,
        RecordExact,
        Plain,
    ));
    v.push(case(
        "tls1.3 leftover (greedy reads)",
        t13,
        cs::TLS13_AES_128_GCM_SHA256,
        false,
        Greedy,
        Twist::EarlyWrite,
    ));
    v.push(Case {
        resume: true,
        ..case(
            "tls1.2 leftover (greedy reads, resumed)",
            t12,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            true,
            Greedy,
            Twist::EarlyWrite,
        )
    });
    v.push(case(
        "tls1.3 keyupdate",
        t13,
        cs::TLS13_AES_128_GCM_SHA256,
        false,
        RecordExact,
        Twist::KeyUpdateAfter(messages / 2),
    ));
    v.push(case(
        "tls1.3 garbage after handshake",
        t13,
        cs::TLS13_AES_256_GCM_SHA384,
        false,
        RecordExact,
        Twist::GarbageAfter(messages / 2),
    ));
    v.push(case(
        "tls1.2 garbage after handshake",
        t12,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        false,
        RecordExact,
        Twist::GarbageAfter(messages / 2),
    ));
    v
}

/// Message `i`, RFC 5424 with octet counting; lengths vary from ~60 to ~460
/// bytes so records hold different numbers of messages.
pub(crate) fn message(i: usize) -> Vec<u8> {
    let body = format!(
        "<13>1 2026-11-01T00:00:00Z host ktls-selftest {i} - - msg {i:06} {}",
        "x".repeat(i * 37 % 400)
    );
    format!("{} {}", body.len(), body).into_bytes()
}

pub(crate) fn messages_bytes(range: std::ops::Range<usize>) -> Vec<u8> {
    range.flat_map(message).collect()
}

/// How many messages the client writes per `write()` (one rustls record
/// per write, split at 16 KiB): small and large records alternate.
pub(crate) const WRITE_BATCHES: [usize; 6] = [1, 1, 3, 50, 1, 120];
