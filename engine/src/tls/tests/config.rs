//! Configuration errors: each names the key, the path when there is one,
//! and the reason; and the file formats that must load.

use std::os::unix::fs::symlink;
use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rcgen::date_time_ymd;
use rustls::version::TLS13;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateRevocationListDer, PrivateKeyDer};

use super::fixture::Fixture;
use super::pki::{LeafSpec, TestCa};
use super::pump::{client_config, connect, ClientAuth};
use crate::config::Config;
use crate::tls::{
    build_server_config, HandshakeFailure, PeerVerify, ServerConfigCell, TlsConfigError,
    TlsSettings, TlsVersion,
};

fn build_err(s: &TlsSettings) -> (TlsConfigError, String) {
    let err = build_server_config(s).expect_err("config must be refused");
    let text = err.to_string();
    (err, text)
}

#[test]
fn unknown_cipher_suite_lists_valid_names() {
    let fx = Fixture::new("cfg-cipher");
    let s = TlsSettings {
        cipher_suites: vec!["FOO".into()],
        ..fx.base.clone()
    };
    let (err, text) = build_err(&s);
    assert!(matches!(err, TlsConfigError::UnknownCipherSuite { .. }));
    assert!(
        text.starts_with("cipher_suites: unknown suite \"FOO\"; valid: TLS_AES_128_GCM_SHA256, "),
        "{text}"
    );
    assert!(text.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{text}");
}

#[test]
fn unknown_kx_group_lists_valid_names() {
    let fx = Fixture::new("cfg-kx");
    let s = TlsSettings {
        kx_groups: vec!["prime256v1:ffdhe2048".into()],
        ..fx.base.clone()
    };
    let (_, text) = build_err(&s);
    assert!(
        text.starts_with("kx_groups: unknown group \"ffdhe2048\"; valid: X25519"),
        "{text}"
    );
}

#[test]
fn missing_file_names_key_and_path() {
    let fx = Fixture::new("cfg-missing");
    let s = TlsSettings {
        cert_file: Some("/nonexistent/server.pem".into()),
        ..fx.base.clone()
    };
    let (err, text) = build_err(&s);
    assert!(matches!(
        err,
        TlsConfigError::Io {
            key: "cert_file",
            ..
        }
    ));
    assert!(
        text.starts_with("cert_file: /nonexistent/server.pem: "),
        "{text}"
    );
    assert!(text.contains("No such file"), "{text}");

    let s = TlsSettings {
        ca_dir: Some("/nonexistent/ca.d".into()),
        ..fx.base.clone()
    };
    assert!(build_err(&s).1.starts_with("ca_dir: /nonexistent/ca.d: "));

    let s = TlsSettings {
        key_file: None,
        ..fx.base.clone()
    };
    assert!(build_err(&s).1.starts_with("key_file: not set;"));
}

#[test]
fn empty_ca_file_is_refused() {
    let fx = Fixture::new("cfg-empty-ca");
    let empty = fx.dir.write("empty.pem", "");
    let s = TlsSettings {
        ca_file: Some(empty.clone()),
        ..fx.base.clone()
    };
    assert_eq!(
        build_err(&s).1,
        format!("ca_file: {}: no certificates found", empty.display())
    );

    // A file with a key but no certificate is just as empty.
    let key_only = fx.base.key_file.clone().unwrap();
    let s = TlsSettings {
        ca_file: Some(key_only.clone()),
        ..fx.base.clone()
    };
    assert_eq!(
        build_err(&s).1,
        format!("ca_file: {}: no certificates found", key_only.display())
    );
}

#[test]
fn trusted_modes_need_a_ca_untrusted_modes_do_not() {
    let fx = Fixture::new("cfg-no-ca");
    for mode in [PeerVerify::RequiredTrusted, PeerVerify::OptionalTrusted] {
        let s = TlsSettings {
            ca_file: None,
            peer_verify: mode,
            ..fx.base.clone()
        };
        let (err, text) = build_err(&s);
        assert!(
            matches!(err, TlsConfigError::Missing { key: "ca_file", .. }),
            "{text}"
        );
        assert!(text.contains("set ca_file or ca_dir"), "{text}");
    }
    for mode in [PeerVerify::RequiredUntrusted, PeerVerify::OptionalUntrusted] {
        let s = TlsSettings {
            ca_file: None,
            peer_verify: mode,
            ..fx.base.clone()
        };
        build_server_config(&s).unwrap();
    }
}

#[test]
fn key_not_matching_cert_is_refused() {
    let fx = Fixture::new("cfg-mismatch");
    let other = fx.server_ca.issue(&LeafSpec::server());
    let s = TlsSettings {
        key_file: Some(fx.dir.write("other-key.pem", &other.key_pem)),
        ..fx.base.clone()
    };
    let (err, text) = build_err(&s);
    assert!(matches!(err, TlsConfigError::KeyMismatch { .. }), "{text}");
    assert!(text.starts_with("key_file: "), "{text}");
}

#[test]
fn bad_trusted_keys_and_empty_patterns_are_refused() {
    let fx = Fixture::new("cfg-fpr");
    let s = TlsSettings {
        trusted_keys: vec!["AA:BB:CC".into()],
        ..fx.base.clone()
    };
    assert!(build_err(&s)
        .1
        .starts_with("trusted_keys[0]: \"AA:BB:CC\": expected a SHA-256"));
    let s = TlsSettings {
        trusted_dn: vec!["CN=a".into(), " ".into()],
        ..fx.base.clone()
    };
    assert_eq!(build_err(&s).1, "trusted_dn[1]: empty pattern");
}

#[test]
fn version_range_and_suite_coverage_are_checked() {
    let fx = Fixture::new("cfg-versions");
    let s = TlsSettings {
        tls_version_min: TlsVersion::Tls13,
        tls_version_max: TlsVersion::Tls12,
        ..fx.base.clone()
    };
    assert_eq!(
        build_err(&s).1,
        "tls_version_min: TLSv1.3 is above tls_version_max TLSv1.2"
    );

    // TLS 1.2 + 1.3 enabled but only a TLS 1.3 suite listed.
    let s = TlsSettings {
        cipher_suites: vec!["TLS_AES_128_GCM_SHA256".into()],
        ..fx.base.clone()
    };
    assert!(matches!(
        build_err(&s).0,
        TlsConfigError::NoSuiteForVersion { version: "TLS 1.2" }
    ));
    // ...which is fine once TLS 1.2 is off.
    let s = TlsSettings {
        tls_version_min: TlsVersion::Tls13,
        ..s
    };
    build_server_config(&s).unwrap();

    // ML-KEM alone cannot serve TLS 1.2 clients.
    let s = TlsSettings {
        kx_groups: vec!["MLKEM768".into()],
        ..fx.base.clone()
    };
    assert!(matches!(
        build_err(&s).0,
        TlsConfigError::NoGroupForVersion { version: "TLS 1.2" }
    ));

    // The fixture's server key is ECDSA: an RSA-only TLS 1.2 list is useless.
    let s = TlsSettings {
        cipher_suites: vec!["ECDHE-RSA-AES128-GCM-SHA256".into()],
        tls_version_max: TlsVersion::Tls12,
        ..fx.base.clone()
    };
    let (err, text) = build_err(&s);
    assert!(
        matches!(err, TlsConfigError::NoSuiteForKey { .. }),
        "{text}"
    );
}

#[test]
fn pkcs12_is_refused_with_conversion_command() {
    let fx = Fixture::new("cfg-p12");
    let s = TlsSettings {
        pkcs12_file: Some("/etc/ssl/server.p12".into()),
        ..fx.base.clone()
    };
    let text = build_err(&s).1;
    assert!(
        text.starts_with("pkcs12_file: /etc/ssl/server.p12: not supported;"),
        "{text}"
    );
    assert!(
        text.contains("openssl pkcs12 -in /etc/ssl/server.p12 -nodes"),
        "{text}"
    );
}

/// PKCS#8 (rcgen's output), SEC1 `EC PRIVATE KEY` and PKCS#1 `RSA PRIVATE
/// KEY` server keys all load and serve a handshake.
#[test]
fn server_key_formats_pkcs8_sec1_pkcs1() {
    // SEC1 from the fixture's PKCS#8 ECDSA key.
    let fx = Fixture::new("cfg-sec1");
    let pkcs8 = PrivateKeyDer::from_pem_file(fx.base.key_file.as_ref().unwrap()).unwrap();
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.secret_der()).unwrap();
    let sec1 = ec.private_key().as_der().unwrap();
    let sec1_pem = pem_encode("EC PRIVATE KEY", sec1.as_ref());
    let s = TlsSettings {
        key_file: Some(fx.dir.write("sec1.pem", sec1_pem)),
        ..fx.base.clone()
    };
    handshake_ok(&fx, &s);

    // PKCS#1: the private-key OCTET STRING inside PKCS#8 is the RSAPrivateKey.
    let fx = Fixture::with_server_alg("cfg-pkcs1", &rcgen::PKCS_RSA_SHA256);
    let pkcs8 = PrivateKeyDer::from_pem_file(fx.base.key_file.as_ref().unwrap()).unwrap();
    let (_, info) = x509_parser::der_parser::parse_der(pkcs8.secret_der()).unwrap();
    let pkcs1 = info.as_sequence().unwrap()[2].as_slice().unwrap().to_vec();
    let pkcs1_pem = pem_encode("RSA PRIVATE KEY", &pkcs1);
    assert!(pkcs1_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    let s = TlsSettings {
        key_file: Some(fx.dir.write("pkcs1.pem", pkcs1_pem)),
        ..fx.base.clone()
    };
    handshake_ok(&fx, &s);
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use std::fmt::Write;
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        let _ = writeln!(out, "{}", std::str::from_utf8(line).unwrap());
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

/// A valid client of `fx.client_ca` completes a TLS 1.3 handshake.
fn handshake_ok(fx: &Fixture, s: &TlsSettings) {
    let client = fx
        .client_ca
        .issue(&LeafSpec::client("c.example.com", &["c.example.com"], 5));
    let session = connect(
        build_server_config(s).unwrap(),
        client_config(&fx.server_ca_der(), ClientAuth::Cert(&client), &[&TLS13]),
    );
    session.server_result.unwrap();
}

/// An OpenSSL hashed folder: `<hash>.0` symlinks next to the real files, a
/// README, a CRL and a key. Certificates load once each; the rest is
/// skipped. A folder without certificates is an error.
#[test]
fn ca_dir_loads_hashed_folder() {
    let fx = Fixture::new("cfg-cadir");
    let ca_dir = fx.dir.path().join("ca.d");
    std::fs::create_dir(&ca_dir).unwrap();
    std::fs::write(ca_dir.join("client-ca.pem"), fx.client_ca.pem()).unwrap();
    symlink(ca_dir.join("client-ca.pem"), ca_dir.join("1a2b3c4d.0")).unwrap();
    symlink(ca_dir.join("missing.pem"), ca_dir.join("dangling.0")).unwrap();
    std::fs::write(ca_dir.join("README"), "not a certificate\n").unwrap();
    std::fs::write(
        ca_dir.join("1a2b3c4d.r0"),
        fx.client_ca.crl_pem(&[], date_time_ymd(2090, 1, 1)),
    )
    .unwrap();
    std::fs::copy(
        fx.base.key_file.as_ref().unwrap(),
        ca_dir.join("some-key.pem"),
    )
    .unwrap();
    let s = TlsSettings {
        ca_file: None,
        ca_dir: Some(ca_dir.clone()),
        ..fx.base.clone()
    };
    handshake_ok(&fx, &s);

    let empty = fx.dir.path().join("empty.d");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("README"), "nothing here\n").unwrap();
    let s = TlsSettings {
        ca_file: None,
        ca_dir: Some(empty.clone()),
        ..fx.base.clone()
    };
    assert_eq!(
        build_err(&s).1,
        format!("ca_dir: {}: no certificates found", empty.display())
    );
}

#[test]
fn crl_dir_and_der_crl_file_load_and_corrupt_crl_is_refused() {
    let fx = Fixture::new("cfg-crl");
    let revoked = fx
        .client_ca
        .issue(&LeafSpec::client("r.example.com", &["r.example.com"], 77));
    let crl_pem = fx.client_ca.crl_pem(&[77], date_time_ymd(2090, 1, 1));

    // crl_dir may be the CA folder itself: certificates there are skipped.
    let dir = fx.dir.path().join("crl.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("1a2b3c4d.r0"), &crl_pem).unwrap();
    std::fs::write(dir.join("client-ca.pem"), fx.client_ca.pem()).unwrap();
    let s = TlsSettings {
        crl_dir: Some(dir.clone()),
        ..fx.base.clone()
    };
    let refused = |s: &TlsSettings| {
        let session = connect(
            build_server_config(s).unwrap(),
            client_config(&fx.server_ca_der(), ClientAuth::Cert(&revoked), &[&TLS13]),
        );
        crate::tls::HandshakeFailure::classify(&session.server_result.unwrap_err())
    };
    assert_eq!(refused(&s), crate::tls::HandshakeFailure::Revoked);

    // The same CRL as DER in crl_file.
    let der = CertificateRevocationListDer::from_pem_slice(crl_pem.as_bytes()).unwrap();
    let s = TlsSettings {
        crl_file: Some(fx.dir.write("crl.der", der.as_ref())),
        ..fx.base.clone()
    };
    assert_eq!(refused(&s), crate::tls::HandshakeFailure::Revoked);

    // An empty crl_dir is accepted (with a warning), as syslog-ng does.
    let empty = fx.dir.path().join("empty-crl.d");
    std::fs::create_dir(&empty).unwrap();
    build_server_config(&TlsSettings {
        crl_dir: Some(empty),
        ..fx.base.clone()
    })
    .unwrap();

    // A damaged CRL is an error naming its file, never silently dropped.
    let mut bad = crl_pem.clone().into_bytes();
    let mid = bad.len() / 2;
    bad[mid] = if bad[mid] == b'A' { b'B' } else { b'A' };
    std::fs::write(dir.join("1a2b3c4d.r0"), &bad).unwrap();
    let s = TlsSettings {
        crl_dir: Some(dir.clone()),
        ..fx.base.clone()
    };
    let text = build_err(&s).1;
    assert!(
        text.starts_with(&format!("crl_dir: {}", dir.join("1a2b3c4d.r0").display())),
        "{text}"
    );
}

/// SIGHUP reload is "build again": the same settings build twice, and a
/// second CA is picked up by the new config only.
#[test]
fn rebuilding_picks_up_changed_files() {
    let fx = Fixture::new("cfg-reload");
    let new_ca = TestCa::new("Ringest Test New CA");
    let new_client = new_ca.issue(&LeafSpec::client("n.example.com", &["n.example.com"], 9));
    let old_config = build_server_config(&fx.base).unwrap();
    std::fs::write(fx.base.ca_file.as_ref().unwrap(), new_ca.pem()).unwrap();
    let new_config = build_server_config(&fx.base).unwrap();
    let try_with = |config| {
        connect(
            config,
            client_config(
                &fx.server_ca_der(),
                ClientAuth::Cert(&new_client),
                &[&TLS13],
            ),
        )
        .server_result
    };
    assert!(try_with(old_config).is_err());
    try_with(new_config).unwrap();
}

/// `*-untrusted` with `trusted_dn` or `permitted_peer` and no
/// `trusted_keys`: no CA vouches for the certificate, so anyone can make a
/// self-signed one that claims a matching name, get in, and be logged under
/// that name. `check-config` (config validation) and `build_server_config`
/// refuse it with the reason, unless `allow_unverified_names = true`.
#[test]
fn untrusted_mode_with_names_but_no_pins_authenticates_nobody() {
    let fx = Fixture::new("cfg-unverified-names");
    let check_config = |tls: &str| {
        let text = format!(
            "[[source]]\nname = \"s\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tls\"\n\
             [source.tls]\ncert_file = \"s.pem\"\nkey_file = \"k.pem\"\n{tls}\n\
             [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x\"\n"
        );
        Config::from_toml(&text, Path::new("t.toml"), Path::new("/tmp")).map(|_| ())
    };
    let build = |tls: &str| {
        let parsed: TlsSettings = toml::from_str(tls).unwrap();
        let s = TlsSettings {
            cert_file: fx.base.cert_file.clone(),
            key_file: fx.base.key_file.clone(),
            ca_file: fx.base.ca_file.clone(),
            ..parsed
        };
        build_server_config(&s).map(|_| ())
    };
    for mode in ["required-untrusted", "optional-untrusted", "no"] {
        for names in [
            "trusted_dn = [\"CN=*\"]",
            "permitted_peer = [\"*.example.com\"]",
        ] {
            let tls = format!("peer_verify = \"{mode}\"\n{names}\n");
            let key = names.split(' ').next().unwrap();
            let err = check_config(&tls).expect_err(&tls).to_string();
            assert!(err.contains(&format!("source[0].tls: {key}:")), "{err}");
            assert!(err.contains("self-signed"), "{err}");
            assert!(err.contains("allow_unverified_names = true"), "{err}");
            let err = build(&tls).expect_err(&tls).to_string();
            assert!(err.starts_with(&format!("{key}: ")), "{err}");

            // A pin or the explicit opt-in makes it a deliberate choice.
            let pinned = format!(
                "{tls}trusted_keys = [\"SHA256:{}\"]\n",
                ["AB"; 32].join(":")
            );
            check_config(&pinned).unwrap();
            build(&pinned).unwrap();
            let opted_in = format!("{tls}allow_unverified_names = true\n");
            check_config(&opted_in).unwrap();
            build(&opted_in).unwrap();
        }
    }
    // In the trusted modes the CA vouches for the names.
    check_config("peer_verify = \"required-trusted\"\ntrusted_dn = [\"CN=*\"]\n").unwrap();
    check_config("peer_verify = \"optional-trusted\"\npermitted_peer = [\"a\"]\n").unwrap();
}

/// A `crl_dir` that held CRLs and is empty at reload (a CRL publisher
/// caught between delete and write) would turn revocation off without a
/// word. The reload is refused, so the caller counts a reload error, and
/// the old CRLs stay in force; once CRLs are back, reloads work again.
#[test]
fn reload_with_emptied_crl_dir_keeps_old_crls() {
    let fx = Fixture::new("cfg-crl-dir-emptied");
    let revoked = fx
        .client_ca
        .issue(&LeafSpec::client("r.example.com", &[], 77));
    let dir = fx.dir.path().join("crl.d");
    std::fs::create_dir(&dir).unwrap();
    let crl = fx.client_ca.crl_pem(&[77], date_time_ymd(2090, 1, 1));
    std::fs::write(dir.join("ca.r0"), &crl).unwrap();
    let cell = ServerConfigCell::new(TlsSettings {
        crl_dir: Some(dir.clone()),
        ..fx.base.clone()
    })
    .unwrap();
    let verdict = |config| {
        connect(
            config,
            client_config(&fx.server_ca_der(), ClientAuth::Cert(&revoked), &[&TLS13]),
        )
        .server_result
        .err()
        .map(|e| crate::tls::HandshakeFailure::classify(&e))
    };
    assert_eq!(verdict(cell.current()), Some(HandshakeFailure::Revoked));

    std::fs::remove_file(dir.join("ca.r0")).unwrap();
    let err = cell
        .reload()
        .expect_err("an emptied crl_dir must not reload");
    assert!(
        matches!(
            err,
            TlsConfigError::CrlDirEmptied {
                crls_in_force: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .starts_with(&format!("crl_dir: {}: ", dir.display())));
    assert_eq!(verdict(cell.current()), Some(HandshakeFailure::Revoked));

    std::fs::write(dir.join("ca.r0"), &crl).unwrap();
    cell.reload().unwrap();
    assert_eq!(verdict(cell.current()), Some(HandshakeFailure::Revoked));
}
