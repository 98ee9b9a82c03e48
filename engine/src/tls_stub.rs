//! Temporary minimal TLS policy until the full module lands.
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub peer_verify: Option<String>,
}

impl TlsSettings {
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.cert_file, &mut self.key_file] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(p) = &mut self.ca_file {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

pub fn build_server_config(s: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&s.cert_file)
        .map_err(|e| format!("cert_file: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert_file: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(&s.key_file).map_err(|e| format!("key_file: {e}"))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match (&s.ca_file, s.peer_verify.as_deref()) {
        (Some(ca), None | Some("required-trusted")) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("ca_file: {e}"))? {
                roots.add(c.map_err(|e| format!("ca_file: {e}"))?).map_err(|e| format!("ca_file: {e}"))?;
            }
            let v = WebPkiClientVerifier::builder(Arc::new(roots)).build().map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(v)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(certs, key).map_err(|e| e.to_string())?;
    cfg.enable_secret_extraction = true;
    cfg.send_tls13_tickets = 0;
    cfg.max_early_data_size = 0;
    cfg.ignore_client_order = true;
    Ok(Arc::new(cfg))
}

#[derive(Debug, Clone, PartialEq)]
pub enum HandshakeFailure {
    NotTls,
    Timeout,
    Other(String),
}

impl HandshakeFailure {
    pub fn classify(err: &rustls::Error) -> Self {
        HandshakeFailure::Other(err.to_string())
    }
    pub fn label(&self) -> &'static str {
        match self {
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::Timeout => "handshake_timeout",
            HandshakeFailure::Other(_) => "other",
        }
    }
    pub fn hint(&self) -> &'static str {
        "check the client's TLS settings"
    }
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeFailure::NotTls => write!(f, "not TLS"),
            HandshakeFailure::Timeout => write!(f, "handshake timeout"),
            HandshakeFailure::Other(s) => write!(f, "{s}"),
        }
    }
}

pub fn looks_like_tls(b: &[u8]) -> bool {
    b.first() == Some(&0x16)
}

#[derive(Debug, Clone)]
pub struct PeerIdentity {
    pub tls_version: &'static str,
    pub cipher: &'static str,
    pub client_cn: Option<String>,
    pub client_sans: Vec<String>,
    pub client_sha256: Option<String>,
    pub client_issuer: Option<String>,
}

impl PeerIdentity {
    pub fn from_parts(
        _v: rustls::ProtocolVersion,
        _s: Option<rustls::SupportedCipherSuite>,
        _c: Option<&[CertificateDer<'_>]>,
    ) -> Self {
        PeerIdentity {
            tls_version: "TLS",
            cipher: "",
            client_cn: None,
            client_sans: vec![],
            client_sha256: None,
            client_issuer: None,
        }
    }
}
