//! Which connections to offload (sans-IO).
//!
//! Offload must never lose an accepted message. The one case where the
//! kernel can lose some is TLS 1.3 KeyUpdate on a kernel that cannot install
//! a new RX key (before Linux 6.14): the records after the KeyUpdate are
//! under a key the kernel does not have. GnuTLS, and so rsyslog, sends one
//! every 2^24 records, so a long-lived TLS 1.3 connection will meet one.
//! `auto` therefore keeps TLS 1.3 in userspace on such kernels; `on` offloads
//! it anyway and closes the connection, with a logged reason, when a
//! KeyUpdate comes.

use std::fmt;

use rustls::{CipherSuite, ProtocolVersion, SupportedCipherSuite};
use serde::Deserialize;

use super::crypto_info::{KtlsCipher, KtlsVersion};
use super::probe::KtlsSupport;

/// The `ktls` option of a source.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum KtlsMode {
    /// Offload what this kernel keeps safe; the rest stays in userspace.
    #[default]
    Auto,
    /// Offload whatever the kernel can encrypt; fail start-up without kTLS.
    On,
    /// Never offload.
    Off,
}

impl KtlsMode {
    pub fn label(self) -> &'static str {
        match self {
            KtlsMode::Auto => "auto",
            KtlsMode::On => "on",
            KtlsMode::Off => "off",
        }
    }
}

/// Why a connection stays in userspace rustls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserspaceReason {
    /// `ktls = "off"`.
    ModeOff,
    /// No `tls` ULP in this kernel.
    KernelLacksKtls,
    /// A TLS version kTLS does not have (only 1.2 and 1.3 exist).
    VersionUnsupported,
    /// The negotiated AEAD is not one the kernel accepted at the probe.
    CipherUnsupported,
    /// TLS 1.3 under `auto` on a kernel that cannot follow a KeyUpdate.
    Tls13RekeyUnsupported,
    /// Bytes past the handshake had already been read into userspace, so
    /// the kernel could not start at a record boundary. Record-exact
    /// handshake reads make this unreachable; it is the safe answer if not.
    HandshakeNotAligned,
}

impl UserspaceReason {
    pub const ALL: [UserspaceReason; 6] = [
        UserspaceReason::ModeOff,
        UserspaceReason::KernelLacksKtls,
        UserspaceReason::VersionUnsupported,
        UserspaceReason::CipherUnsupported,
        UserspaceReason::Tls13RekeyUnsupported,
        UserspaceReason::HandshakeNotAligned,
    ];

    /// Stats label.
    pub fn label(self) -> &'static str {
        match self {
            UserspaceReason::ModeOff => "mode_off",
            UserspaceReason::KernelLacksKtls => "kernel_lacks_ktls",
            UserspaceReason::VersionUnsupported => "version_unsupported",
            UserspaceReason::CipherUnsupported => "cipher_unsupported",
            UserspaceReason::Tls13RekeyUnsupported => "tls13_rekey_unsupported",
            UserspaceReason::HandshakeNotAligned => "handshake_not_aligned",
        }
    }
}

impl fmt::Display for UserspaceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UserspaceReason::ModeOff => "ktls is off",
            UserspaceReason::KernelLacksKtls => "the kernel has no kTLS",
            UserspaceReason::VersionUnsupported => "kTLS has no such TLS version",
            UserspaceReason::CipherUnsupported => "the kernel does not offload this cipher",
            UserspaceReason::Tls13RekeyUnsupported => {
                "the kernel cannot follow a TLS 1.3 KeyUpdate (needs Linux 6.14)"
            }
            UserspaceReason::HandshakeNotAligned => {
                "bytes past the handshake were already read into userspace"
            }
        })
    }
}

/// The path a connection takes after its handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Offload,
    Userspace(UserspaceReason),
}

impl Decision {
    /// Stats / debug-log label: "offload" or the userspace reason.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Offload => "offload",
            Decision::Userspace(r) => r.label(),
        }
    }
}

/// The AEAD of a rustls suite, if kTLS has it.
pub fn suite_cipher(suite: SupportedCipherSuite) -> Option<KtlsCipher> {
    match suite.suite() {
        CipherSuite::TLS13_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => Some(KtlsCipher::Aes128Gcm),
        CipherSuite::TLS13_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => Some(KtlsCipher::Aes256Gcm),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            Some(KtlsCipher::Chacha20Poly1305)
        }
        _ => None,
    }
}

/// Decides, after a handshake, whether this connection goes to the kernel.
pub fn decide(
    mode: KtlsMode,
    support: &KtlsSupport,
    version: ProtocolVersion,
    suite: SupportedCipherSuite,
) -> Decision {
    if mode == KtlsMode::Off {
        return Decision::Userspace(UserspaceReason::ModeOff);
    }
    if !support.ulp {
        return Decision::Userspace(UserspaceReason::KernelLacksKtls);
    }
    let Some(version) = KtlsVersion::from_rustls(version) else {
        return Decision::Userspace(UserspaceReason::VersionUnsupported);
    };
    let Some(cipher) = suite_cipher(suite) else {
        return Decision::Userspace(UserspaceReason::CipherUnsupported);
    };
    if !support.ciphers(version).has(cipher) {
        return Decision::Userspace(UserspaceReason::CipherUnsupported);
    }
    if version == KtlsVersion::Tls13 && !support.tls13_rekey && mode == KtlsMode::Auto {
        return Decision::Userspace(UserspaceReason::Tls13RekeyUnsupported);
    }
    Decision::Offload
}

/// [`decide`] for a finished handshake, server or client side: `version`
/// and `suite` as rustls reports them (none: nothing to offload), and the
/// ciphertext bytes past the handshake already read into userspace, which
/// the kernel could never decrypt (so never `Offload` then).
pub fn decide_handoff(
    mode: KtlsMode,
    support: &KtlsSupport,
    version: Option<ProtocolVersion>,
    suite: Option<SupportedCipherSuite>,
    unread_bytes: usize,
) -> Decision {
    let decision = match (version, suite) {
        (Some(version), Some(suite)) => decide(mode, support, version, suite),
        (None, _) => Decision::Userspace(UserspaceReason::VersionUnsupported),
        (Some(_), None) => Decision::Userspace(UserspaceReason::CipherUnsupported),
    };
    if decision == Decision::Offload && unread_bytes > 0 {
        return Decision::Userspace(UserspaceReason::HandshakeNotAligned);
    }
    decision
}

/// `on` refuses to start on a kernel without kTLS; `auto` and `off` start
/// anywhere. The error is the whole message for the operator.
pub fn check_mode_at_startup(mode: KtlsMode, support: &KtlsSupport) -> Result<(), String> {
    if mode != KtlsMode::On || support.ulp {
        return Ok(());
    }
    Err(format!(
        "ktls = \"on\" but this kernel has no kTLS ({}); \
         load the tls module (CONFIG_TLS) or set ktls = \"auto\" or \"off\"",
        support.unavailable_reason()
    ))
}

#[cfg(test)]
mod tests {
    use super::super::probe::CipherSet;
    use super::*;
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;

    fn kernel(ulp: bool, rekey: bool) -> KtlsSupport {
        let all = if ulp { CipherSet::ALL } else { CipherSet::NONE };
        KtlsSupport::simulated(ulp, all, all, rekey)
    }

    const V12: ProtocolVersion = ProtocolVersion::TLSv1_2;
    const V13: ProtocolVersion = ProtocolVersion::TLSv1_3;
    const OFFLOAD: Decision = Decision::Offload;

    fn user(r: UserspaceReason) -> Decision {
        Decision::Userspace(r)
    }

    #[test]
    fn decide_table() {
        use KtlsMode::*;
        use UserspaceReason::*;
        let none = kernel(false, false);
        let k61 = kernel(true, false); // Linux 6.1: kTLS, no rekey
        let k614 = kernel(true, true); // Linux 6.14+
        let t13 = cs::TLS13_AES_128_GCM_SHA256;
        let t12 = cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256;
        // Every mode × kernel × version.
        #[rustfmt::skip]
        let table = [
            // mode, kernel, version, suite → decision
            (Off,  &none, V12, t12, user(ModeOff)),
            (Off,  &none, V13, t13, user(ModeOff)),
            (Off,  &k61,  V12, t12, user(ModeOff)),
            (Off,  &k61,  V13, t13, user(ModeOff)),
            (Off,  &k614, V12, t12, user(ModeOff)),
            (Off,  &k614, V13, t13, user(ModeOff)),
            (Auto, &none, V12, t12, user(KernelLacksKtls)),
            (Auto, &none, V13, t13, user(KernelLacksKtls)),
            (Auto, &k61,  V12, t12, OFFLOAD),
            (Auto, &k61,  V13, t13, user(Tls13RekeyUnsupported)),
            (Auto, &k614, V12, t12, OFFLOAD),
            (Auto, &k614, V13, t13, OFFLOAD),
            (On,   &none, V12, t12, user(KernelLacksKtls)),
            (On,   &none, V13, t13, user(KernelLacksKtls)),
            (On,   &k61,  V12, t12, OFFLOAD),
            (On,   &k61,  V13, t13, OFFLOAD),
            (On,   &k614, V12, t12, OFFLOAD),
            (On,   &k614, V13, t13, OFFLOAD),
        ];
        for (i, (mode, support, version, suite, want)) in table.into_iter().enumerate() {
            assert_eq!(decide(mode, support, version, suite), want, "row {i}");
        }
    }

    #[test]
    fn handoff_needs_a_negotiated_suite_and_an_aligned_socket() {
        let k = kernel(true, true);
        let t13 = cs::TLS13_AES_256_GCM_SHA384;
        let on = KtlsMode::On;
        assert_eq!(decide_handoff(on, &k, Some(V13), Some(t13), 0), OFFLOAD);
        assert_eq!(
            decide_handoff(on, &k, Some(V13), Some(t13), 5),
            user(UserspaceReason::HandshakeNotAligned)
        );
        assert_eq!(
            decide_handoff(on, &k, None, Some(t13), 0),
            user(UserspaceReason::VersionUnsupported)
        );
        assert_eq!(
            decide_handoff(on, &k, Some(V13), None, 0),
            user(UserspaceReason::CipherUnsupported)
        );
        // The policy's own reason wins over alignment.
        assert_eq!(
            decide_handoff(KtlsMode::Off, &k, Some(V13), Some(t13), 5),
            user(UserspaceReason::ModeOff)
        );
    }

    #[test]
    fn every_rustls_suite_maps_to_a_kernel_cipher() {
        for suite in rustls::crypto::aws_lc_rs::ALL_CIPHER_SUITES {
            assert!(suite_cipher(*suite).is_some(), "{:?}", suite.suite());
        }
        assert_eq!(
            suite_cipher(cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
            Some(KtlsCipher::Aes256Gcm)
        );
        assert_eq!(
            suite_cipher(cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
            Some(KtlsCipher::Chacha20Poly1305)
        );
    }

    #[test]
    fn cipher_the_kernel_refused_stays_in_userspace() {
        let mut no_chacha = CipherSet::ALL;
        no_chacha.chacha20 = false;
        let k = KtlsSupport::simulated(true, no_chacha, no_chacha, true);
        for mode in [KtlsMode::Auto, KtlsMode::On] {
            assert_eq!(
                decide(mode, &k, V13, cs::TLS13_CHACHA20_POLY1305_SHA256),
                user(UserspaceReason::CipherUnsupported)
            );
            assert_eq!(decide(mode, &k, V13, cs::TLS13_AES_256_GCM_SHA384), OFFLOAD);
        }
    }

    #[test]
    fn other_versions_stay_in_userspace() {
        let k = kernel(true, true);
        assert_eq!(
            decide(
                KtlsMode::On,
                &k,
                ProtocolVersion::TLSv1_1,
                cs::TLS13_AES_128_GCM_SHA256
            ),
            user(UserspaceReason::VersionUnsupported)
        );
    }

    #[test]
    fn on_refuses_to_start_without_ktls() {
        let none = kernel(false, false);
        let err = check_mode_at_startup(KtlsMode::On, &none).unwrap_err();
        assert!(
            err.contains("ktls = \"on\"") && err.contains("auto"),
            "{err}"
        );
        assert!(check_mode_at_startup(KtlsMode::Auto, &none).is_ok());
        assert!(check_mode_at_startup(KtlsMode::Off, &none).is_ok());
        assert!(check_mode_at_startup(KtlsMode::On, &kernel(true, false)).is_ok());
    }

    #[test]
    fn mode_parses_from_config() {
        #[derive(Deserialize)]
        struct Source {
            #[serde(default)]
            ktls: KtlsMode,
        }
        let parse = |s: &str| toml::from_str::<Source>(s).map(|s| s.ktls);
        assert_eq!(parse("ktls = \"auto\"").unwrap(), KtlsMode::Auto);
        assert_eq!(parse("ktls = \"on\"").unwrap(), KtlsMode::On);
        assert_eq!(parse("ktls = \"off\"").unwrap(), KtlsMode::Off);
        assert_eq!(parse("").unwrap(), KtlsMode::Auto);
        assert!(parse("ktls = \"yes\"").is_err());
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = UserspaceReason::ALL.iter().map(|r| r.label()).collect();
        labels.push(Decision::Offload.label());
        let n = labels.len();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), n);
    }
}
