//! rustls configuration for both ends: the sender's ClientConfig and the
//! sink's ServerConfig, built once, validated, then shared read-only.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsVersion {
    V12,
    V13,
}

pub fn parse_tls_version(s: &str) -> Result<TlsVersion, String> {
    match s {
        "1.2" | "tls1.2" | "TLSv1.2" => Ok(TlsVersion::V12),
        "1.3" | "tls1.3" | "TLSv1.3" => Ok(TlsVersion::V13),
        _ => Err(format!("unknown TLS version {s:?} (use 1.2 or 1.3)")),
    }
}

/// Options shared by both ends.
#[derive(Clone, Debug, Default)]
pub struct CryptoOptions {
    pub version: Option<TlsVersion>,
    /// Comma-separated suite names (see `suite_matches`).
    pub cipher: Option<String>,
    /// Comma-separated key-exchange group names, e.g. `x25519,secp256r1`.
    pub kx: Option<String>,
}

/// True when `want` names `suite`: rustls's name (`TLS13_AES_128_GCM_SHA256`),
/// the IANA name (`TLS_AES_128_GCM_SHA256`), or a short alias (`aes128gcm`,
/// `aes256gcm`, `chacha20`), case-insensitively.
fn suite_matches(suite: &rustls::SupportedCipherSuite, want: &str) -> bool {
    let name = format!("{:?}", suite.suite()).to_ascii_uppercase();
    let want = want.trim().to_ascii_uppercase();
    let iana = name.replacen("TLS13_", "TLS_", 1);
    if name == want || iana == want {
        return true;
    }
    let alias = match want.as_str() {
        "AES128GCM" | "AES-128-GCM" => "AES_128_GCM",
        "AES256GCM" | "AES-256-GCM" => "AES_256_GCM",
        "CHACHA20" | "CHACHA20-POLY1305" => "CHACHA20_POLY1305",
        _ => return false,
    };
    name.contains(alias)
}

/// The aws-lc-rs provider restricted to the requested suites and groups.
pub fn provider(opts: &CryptoOptions) -> Result<Arc<CryptoProvider>, String> {
    let mut p = aws_lc_rs::default_provider();
    if let Some(list) = &opts.cipher {
        let wanted: Vec<&str> = list.split(',').filter(|s| !s.trim().is_empty()).collect();
        p.cipher_suites = aws_lc_rs::ALL_CIPHER_SUITES
            .iter()
            .filter(|s| wanted.iter().any(|w| suite_matches(s, w)))
            .copied()
            .collect();
        if p.cipher_suites.is_empty() {
            let known: Vec<String> = aws_lc_rs::ALL_CIPHER_SUITES
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .collect();
            return Err(format!(
                "--cipher {list:?} matches no suite; known: {}",
                known.join(", ")
            ));
        }
    }
    if let Some(list) = &opts.kx {
        let wanted: Vec<String> = list
            .split(',')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        p.kx_groups = aws_lc_rs::ALL_KX_GROUPS
            .iter()
            .filter(|g| wanted.contains(&format!("{:?}", g.name()).to_ascii_lowercase()))
            .copied()
            .collect();
        if p.kx_groups.is_empty() {
            return Err(format!("--kx {list:?} matches no key-exchange group (try x25519, secp256r1, X25519MLKEM768)"));
        }
    }
    Ok(Arc::new(p))
}

static ONLY_TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
static ONLY_TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

fn versions(v: Option<TlsVersion>) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match v {
        Some(TlsVersion::V12) => &ONLY_TLS12,
        Some(TlsVersion::V13) => &ONLY_TLS13,
        None => rustls::DEFAULT_VERSIONS,
    }
}

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect();
    let certs = certs.map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn roots(ca: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca)? {
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    Ok(roots)
}

pub struct ClientOptions<'a> {
    pub crypto: CryptoOptions,
    /// Verify the server against this CA; without it the server is not verified.
    pub ca: Option<&'a Path>,
    pub cert: Option<&'a Path>,
    pub key: Option<&'a Path>,
    /// Offer session resumption (off by default, so every handshake is full).
    pub resume: bool,
}

pub fn client_config(opts: &ClientOptions<'_>) -> Result<Arc<ClientConfig>, String> {
    let provider = provider(&opts.crypto)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(opts.crypto.version))
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let builder = match opts.ca {
        Some(ca) => builder.with_root_certificates(roots(ca)?),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoServerVerification(provider))),
    };
    let mut config = match (opts.cert, opts.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| format!("client certificate: {e}"))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--cert and --key go together".into()),
    };
    if !opts.resume {
        config.resumption = Resumption::disabled();
    }
    // The data phase of TLS 1.3 runs on loadgen's own record layer (tls13.rs).
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

pub struct ServerOptions<'a> {
    pub crypto: CryptoOptions,
    pub cert: &'a Path,
    pub key: &'a Path,
    /// Require client certificates issued by this CA.
    pub ca: Option<&'a Path>,
    /// TLS 1.3 session tickets sent after each handshake.
    pub tickets: usize,
}

pub fn server_config(opts: &ServerOptions<'_>) -> Result<Arc<ServerConfig>, String> {
    let provider = provider(&opts.crypto)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(opts.crypto.version))
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let builder = match opts.ca {
        Some(ca) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(ca)?),
                provider,
            )
            .build()
            .map_err(|e| format!("client verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(load_certs(opts.cert)?, load_key(opts.key)?)
        .map_err(|e| format!("server certificate: {e}"))?;
    config.send_tls13_tickets = opts.tickets;
    // AES-GCM before ChaCha20 whatever the client prefers: it is twice as fast here.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The SNI / verification name: `--sni`, else the target's host part.
pub fn server_name(sni: Option<&str>, target_host: &str) -> Result<ServerName<'static>, String> {
    let name = sni.unwrap_or(target_host);
    let name = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(name.to_string()).map_err(|e| format!("server name {name:?}: {e}"))
}

/// Accepts any server certificate (the default without `--ca`, like loggen)
/// but still checks the handshake signatures, so the key exchange is real.
#[derive(Debug)]
struct NoServerVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Appends `data` encrypted by rustls's unbuffered API (TLS 1.2 data phase).
pub fn encrypt_into<Data>(
    w: &mut rustls::unbuffered::WriteTraffic<'_, Data>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let start = out.len();
    // Per-record overhead is under 64 bytes; records are at most 16 KiB.
    out.resize(start + data.len() + 64 * (data.len() / 16384 + 1), 0);
    match w.encrypt(data, &mut out[start..]) {
        Ok(n) => {
            out.truncate(start + n);
            Ok(())
        }
        Err(rustls::unbuffered::EncryptError::InsufficientSize(s)) => {
            out.resize(start + s.required_size, 0);
            let n = w
                .encrypt(data, &mut out[start..])
                .map_err(|e| e.to_string())?;
            out.truncate(start + n);
            Ok(())
        }
        Err(other) => {
            out.truncate(start);
            Err(other.to_string())
        }
    }
}

/// aws-lc-rs's first random-number call costs tens of milliseconds; pay it
/// before the clock starts.
pub fn warm_up_rng() {
    let p = aws_lc_rs::default_provider();
    let mut buf = [0u8; 32];
    let _ = p.secure_random.fill(&mut buf);
}

/// A random 32-bit run id.
pub fn random_u32() -> u32 {
    let p = aws_lc_rs::default_provider();
    let mut buf = [0u8; 4];
    if p.secure_random.fill(&mut buf).is_err() {
        // Fall back to the clock: a run id only has to differ between runs.
        return (crate::sys::mono_ns() ^ u64::from(std::process::id()) << 16) as u32;
    }
    u32::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names() {
        let opts = |c: &str| CryptoOptions {
            cipher: Some(c.into()),
            ..Default::default()
        };
        for name in ["TLS13_AES_128_GCM_SHA256", "tls_aes_128_gcm_sha256"] {
            let p = provider(&opts(name)).unwrap();
            assert_eq!(p.cipher_suites.len(), 1);
        }
        let p = provider(&opts("aes128gcm")).unwrap();
        assert!(p.cipher_suites.len() >= 2, "1.3 and 1.2 AES-128-GCM suites");
        assert!(provider(&opts("rot13")).is_err());
        let kx = CryptoOptions {
            kx: Some("x25519".into()),
            ..Default::default()
        };
        assert_eq!(provider(&kx).unwrap().kx_groups.len(), 1);
    }
}
