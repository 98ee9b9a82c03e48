//! `[source.tls]` settings -> `Arc<rustls::ServerConfig>`.
//!
//! This is a pure function of the settings and the files they name, so the
//! same call serves start-up, `check-config` and SIGHUP reload: on reload the
//! caller builds a new config and swaps the `Arc` only if this returned Ok;
//! connections already running keep the config they started with.

use std::sync::Arc;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::server::NoServerSessionStorage;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::CertificateDer;

use super::chain::ChainCheck;
use super::crl::LoadedCrl;
use super::error::TlsConfigError;
use super::load;
use super::policy::PeerPolicy;
use super::settings::{TlsSettings, TlsVersion};
use super::suites;
use super::verifier::PolicyVerifier;

/// Builds the server config. Validates everything it can so that a
/// configuration that loads here does not fail later on a handshake.
pub fn build_server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsConfigError> {
    build(s).map(|built| built.config)
}

/// A built config and what a reload compares against (`reload.rs`).
pub(crate) struct Built {
    pub config: Arc<ServerConfig>,
    /// CRLs found in `crl_dir` (0 when it is not set).
    pub crl_dir_crls: usize,
}

pub(crate) fn build(s: &TlsSettings) -> Result<Built, TlsConfigError> {
    s.check_trust()?;
    if let Some(path) = &s.pkcs12_file {
        return Err(TlsConfigError::Pkcs12Unsupported { path: path.clone() });
    }
    if s.tls_version_min > s.tls_version_max {
        return Err(TlsConfigError::VersionRange {
            min: s.tls_version_min.as_str(),
            max: s.tls_version_max.as_str(),
        });
    }
    let versions = protocol_versions(s.tls_version_min, s.tls_version_max);

    let base = aws_lc_rs::default_provider();
    let provider = Arc::new(CryptoProvider {
        cipher_suites: suites::resolve_suites(&s.cipher_suites)?,
        kx_groups: suites::resolve_groups(&s.kx_groups)?,
        ..base
    });
    // aws-lc-rs seeds its RNG on first use, which costs 30-50 ms; pay that
    // here rather than in the first client's handshake.
    let mut warm_up = [0u8; 32];
    let _ = provider.secure_random.fill(&mut warm_up);

    let certified_key = load_server_key(s, &provider)?;
    check_suites_cover_versions(&provider, &versions, &certified_key)?;

    let (verifier, crl_dir_crls) = build_verifier(s, &provider)?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| TlsConfigError::Rustls {
            key: "cipher_suites",
            detail: e.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key)));

    // Pick the suite from our list (AES-GCM first), not the client's.
    config.ignore_client_order = true;
    // No 0-RTT: early data can be replayed, and a replayed log line is a
    // forged log line.
    config.max_early_data_size = 0;
    config.send_half_rtt_data = false;
    // No TLS 1.3 session tickets. loggen never reads from its socket and
    // closes with unread data in its receive buffer; Linux then sends RST
    // instead of FIN and drops whatever loggen had not sent yet, so its
    // last messages would look lost. syslog senders keep connections open
    // for hours, so resumption would save almost nothing anyway.
    config.send_tls13_tickets = 0;
    // No TLS 1.2 session-ID resumption either (tickets are already off by
    // default): a resumed session skips client-certificate verification,
    // so after a reload with a new CA or CRL an old session could come back
    // in without meeting the new trust policy. Every handshake is full.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    // kTLS needs the traffic secrets after the handshake.
    config.enable_secret_extraction = true;
    Ok(Built {
        config: Arc::new(config),
        crl_dir_crls,
    })
}

pub(crate) fn protocol_versions(
    min: TlsVersion,
    max: TlsVersion,
) -> Vec<&'static SupportedProtocolVersion> {
    [
        (TlsVersion::Tls13, &rustls::version::TLS13),
        (TlsVersion::Tls12, &rustls::version::TLS12),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect()
}

/// Loads `cert_file` + `key_file` and checks that they belong together.
fn load_server_key(
    s: &TlsSettings,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsConfigError> {
    let cert_file = s.cert_file.as_ref().ok_or(TlsConfigError::Missing {
        key: "cert_file",
        reason: "a TLS source needs a server certificate",
    })?;
    let key_file = s.key_file.as_ref().ok_or(TlsConfigError::Missing {
        key: "key_file",
        reason: "a TLS source needs the private key of cert_file",
    })?;
    let chain = load::load_certs("cert_file", cert_file)?;
    let key_der = load::load_private_key("key_file", key_file)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsConfigError::InvalidKey {
            key: "key_file",
            path: key_file.clone(),
            detail: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        // The key's public half cannot always be derived (rare key types);
        // then the first handshake is the check, as in rustls itself.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsConfigError::KeyMismatch {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            });
        }
        Err(e) => {
            return Err(TlsConfigError::InvalidCertificate {
                key: "cert_file",
                path: cert_file.clone(),
                detail: e.to_string(),
            });
        }
    }
    Ok(certified)
}

/// Each enabled version needs a suite and a key-exchange group, and TLS 1.2
/// needs a suite that fits the server key type; otherwise every client of
/// that version would fail with a confusing "no shared cipher" at
/// handshake time.
fn check_suites_cover_versions(
    provider: &CryptoProvider,
    versions: &[&'static SupportedProtocolVersion],
    key: &CertifiedKey,
) -> Result<(), TlsConfigError> {
    for version in versions {
        let of_version: Vec<_> = provider
            .cipher_suites
            .iter()
            .filter(|cs| cs.version() == *version)
            .collect();
        let name = if version.version == rustls::ProtocolVersion::TLSv1_3 {
            "TLS 1.3"
        } else {
            "TLS 1.2"
        };
        if of_version.is_empty() {
            return Err(TlsConfigError::NoSuiteForVersion { version: name });
        }
        if !provider
            .kx_groups
            .iter()
            .any(|g| g.usable_for_version(version.version))
        {
            return Err(TlsConfigError::NoGroupForVersion { version: name });
        }
        let algorithm = key.key.algorithm();
        if !of_version
            .iter()
            .any(|cs| cs.usable_for_signature_algorithm(algorithm))
        {
            return Err(TlsConfigError::NoSuiteForKey {
                key_type: format!("{algorithm:?}"),
            });
        }
    }
    Ok(())
}

/// The CA certificates from `ca_file` and `ca_dir` (either or both).
pub(crate) fn load_roots(
    ca_file: Option<&std::path::Path>,
    ca_dir: Option<&std::path::Path>,
) -> Result<Option<RootCertStore>, TlsConfigError> {
    if ca_file.is_none() && ca_dir.is_none() {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca_file {
        for cert in load::load_certs("ca_file", path)? {
            roots
                .add(cert)
                .map_err(|e| TlsConfigError::InvalidCertificate {
                    key: "ca_file",
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })?;
        }
    }
    if let Some(path) = ca_dir {
        let certs: Vec<CertificateDer<'static>> = load::load_ca_dir("ca_dir", path)?;
        // A system-style folder may hold a certificate webpki cannot use as
        // an anchor; skip it like OpenSSL would never look it up, but say so.
        let (added, ignored) = roots.add_parsable_certificates(certs);
        if ignored > 0 {
            log::warn!(
                "ca_dir: {}: ignored {ignored} unusable certificate(s)",
                path.display()
            );
        }
        if added == 0 {
            return Err(TlsConfigError::NoCertificates {
                key: "ca_dir",
                path: path.to_path_buf(),
            });
        }
    }
    Ok(Some(roots))
}

/// Every CRL, and how many of them came from `crl_dir`.
fn load_crls(
    s: &TlsSettings,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<(Vec<LoadedCrl>, usize), TlsConfigError> {
    let mut crls = Vec::new();
    let mut from_dir = 0;
    if let Some(path) = &s.crl_file {
        crls.extend(load::load_crl_file("crl_file", path, algorithms)?);
    }
    if let Some(path) = &s.crl_dir {
        let found = load::load_crl_dir("crl_dir", path, algorithms)?;
        if found.is_empty() {
            log::warn!(
                "crl_dir: {}: no CRLs found; revocation is not checked",
                path.display()
            );
        }
        from_dir = found.len();
        crls.extend(found);
    }
    Ok((crls, from_dir))
}

fn build_verifier(
    s: &TlsSettings,
    provider: &Arc<CryptoProvider>,
) -> Result<(Arc<PolicyVerifier>, usize), TlsConfigError> {
    let policy = PeerPolicy::from_settings(s)?;
    // Load CA and CRL files in every mode, so that a typo is reported even
    // where they go unused, and a later switch of mode cannot surprise.
    let roots = load_roots(s.ca_file.as_deref(), s.ca_dir.as_deref())?;
    let algorithms = provider.signature_verification_algorithms;
    let (crls, crl_dir_crls) = load_crls(s, &algorithms)?;

    let chain = if s.peer_verify.is_trusted() {
        let roots = roots.ok_or(TlsConfigError::Missing {
            key: "ca_file",
            reason: "peer_verify = *-trusted needs the CA that signs client certificates: \
                     set ca_file or ca_dir",
        })?;
        Some(ChainCheck::new(roots.roots, crls, algorithms))
    } else {
        if roots.is_some() || !crls.is_empty() {
            log::warn!(
                "peer_verify = {}: ca_file/ca_dir/crl_file/crl_dir are loaded but not used \
                 to validate client certificates",
                s.peer_verify
            );
        }
        None
    };
    if !s.peer_verify.is_required() && !policy.is_empty() {
        log::warn!(
            "peer_verify = {}: trusted_keys/trusted_dn/permitted_peer apply only to clients \
             that present a certificate; clients without one are accepted",
            s.peer_verify
        );
    }
    let verifier = PolicyVerifier::new(s.peer_verify, chain, policy, algorithms);
    Ok((Arc::new(verifier), crl_dir_crls))
}
