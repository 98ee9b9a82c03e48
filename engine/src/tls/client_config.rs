//! `[destination.tls]` -> `Arc<rustls::ClientConfig>`, with the source
//! side's loaders (`load.rs`, `load_roots`, `suites.rs`) and its error type,
//! so a bad CA file reads the same whichever side names it.
//!
//! The server's certificate is judged by [`UpstreamVerifier`]: in the
//! `*-trusted` modes webpki checks the chain against `ca_file`/`ca_dir`, the
//! validity dates and the name (`server_name`, or the host part of the
//! address); `trusted_keys` pins the leaf in every mode; in the
//! `*-untrusted` modes without pins any certificate is taken (a warning at
//! build time says so). The handshake signature is always checked.
//!
//! Resumption is off: every connection makes a full handshake, so a server
//! that has just reloaded its CA list judges our certificate again, and the
//! "was the handshake accepted" question (forward/session.rs) has one answer
//! per connection.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{
    aws_lc_rs, verify_tls12_signature, verify_tls13_signature, CryptoProvider,
    WebPkiSupportedAlgorithms,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, Error, SignatureScheme};

use super::client_settings::ClientTlsConfig;
use super::error::TlsConfigError;
use super::fingerprint::{parse_pins, sha1, sha256, Fingerprint};
use super::load;
use super::server_config::{load_roots, protocol_versions};
use super::suites;

/// Builds the client config; a pure function of the settings and the files.
pub fn build_client_config(s: &ClientTlsConfig) -> Result<Arc<ClientConfig>, TlsConfigError> {
    if s.tls_version_min > s.tls_version_max {
        return Err(TlsConfigError::VersionRange {
            min: s.tls_version_min.as_str(),
            max: s.tls_version_max.as_str(),
        });
    }
    let versions = protocol_versions(s.tls_version_min, s.tls_version_max);
    let provider = Arc::new(CryptoProvider {
        cipher_suites: suites::resolve_suites(&s.cipher_suites)?,
        kx_groups: suites::resolve_groups(&[])?,
        ..aws_lc_rs::default_provider()
    });
    let verifier = Arc::new(UpstreamVerifier::build(s, &provider)?);
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| TlsConfigError::Rustls {
            key: "cipher_suites",
            detail: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (&s.cert_file, &s.key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(TlsConfigError::Missing {
                key: "key_file",
                reason: "cert_file is set: the private key of the client certificate is needed",
            })
        }
        (None, Some(_)) => {
            return Err(TlsConfigError::Missing {
                key: "cert_file",
                reason: "key_file is set: the client certificate is needed",
            })
        }
        (Some(cert_file), Some(key_file)) => {
            let chain = load::load_certs("cert_file", cert_file)?;
            let key = load::load_private_key("key_file", key_file)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| match e {
                    Error::InconsistentKeys(_) => TlsConfigError::KeyMismatch {
                        cert_file: cert_file.clone(),
                        key_file: key_file.clone(),
                    },
                    e => TlsConfigError::InvalidKey {
                        key: "key_file",
                        path: key_file.clone(),
                        detail: e.to_string(),
                    },
                })?
        }
    };
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry: `server_name`, else the
/// host part of the address (`[v6]:port`, `v4:port`, `name:port`).
pub fn server_name_for(
    s: &ClientTlsConfig,
    host: &str,
) -> Result<ServerName<'static>, rustls::pki_types::InvalidDnsNameError> {
    let name = s.server_name.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_string())
}

#[derive(Debug)]
pub struct UpstreamVerifier {
    /// Present exactly in the `*-trusted` modes.
    chain: Option<Arc<WebPkiServerVerifier>>,
    pins: Vec<Fingerprint>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl UpstreamVerifier {
    fn build(
        s: &ClientTlsConfig,
        provider: &Arc<CryptoProvider>,
    ) -> Result<UpstreamVerifier, TlsConfigError> {
        let pins = parse_pins(&s.trusted_keys)?;
        let roots = load_roots(s.ca_file.as_deref(), s.ca_dir.as_deref())?;
        let chain = if s.peer_verify.is_trusted() {
            let roots = roots.ok_or(TlsConfigError::Missing {
                key: "ca_file",
                reason: "peer_verify = *-trusted needs the CA that signs the server's \
                         certificate: set ca_file or ca_dir",
            })?;
            let v =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
                    .build()
                    .map_err(|e| TlsConfigError::Rustls {
                        key: "ca_file",
                        detail: e.to_string(),
                    })?;
            Some(v)
        } else {
            if pins.is_empty() {
                log::warn!(
                    "destination tls: peer_verify = {} without trusted_keys accepts any server \
                     certificate: anyone on the path can read and change the forwarded logs",
                    s.peer_verify
                );
            }
            None
        };
        Ok(UpstreamVerifier {
            chain,
            pins,
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ServerCertVerifier for UpstreamVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if let Some(chain) = &self.chain {
            chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        }
        if !self.pins.is_empty() {
            let (s1, s256) = (sha1(end_entity), sha256(end_entity));
            if !self.pins.iter().any(|p| p.matches(&s1, &s256)) {
                return Err(Error::InvalidCertificate(
                    CertificateError::ApplicationVerificationFailure,
                ));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
