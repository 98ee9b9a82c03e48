//! The test PKI (from the workspace's `testkit`) and the rustls configs
//! of each case.

use super::*;

pub(crate) struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl Identity {
    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

pub(crate) struct Pki {
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) server_ecdsa: Identity,
    pub(crate) server_rsa: Identity,
    pub(crate) client: Identity,
}

impl Pki {
    pub(crate) fn new() -> Self {
        // The workspace's one test PKI builder.
        let ca = testkit::Ca::new("ktls selftest CA");
        let identity = |spec: testkit::LeafSpec| {
            let leaf = ca.issue(&spec);
            Identity {
                chain: vec![CertificateDer::from(leaf.cert_der)],
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der)),
            }
        };
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from(ca.der())).expect("root");
        Pki {
            roots: Arc::new(roots),
            server_ecdsa: identity(testkit::LeafSpec::server(1)),
            server_rsa: identity(testkit::LeafSpec {
                alg: testkit::KeyAlg::Rsa2048,
                ..testkit::LeafSpec::server(2)
            }),
            client: identity(testkit::LeafSpec::client("client.example", 3)),
        }
    }
}

pub(crate) fn provider_with(suite: SupportedCipherSuite) -> Arc<CryptoProvider> {
    let mut p = provider::default_provider();
    p.cipher_suites = vec![suite];
    Arc::new(p)
}

pub(crate) fn server_config(case: &Case, pki: &Pki) -> Result<Arc<ServerConfig>, String> {
    let provider = provider_with(case.suite);
    let verifier = WebPkiClientVerifier::builder_with_provider(pki.roots.clone(), provider.clone())
        .build()
        .map_err(|e| format!("client verifier: {e}"))?;
    let id = if case.rsa {
        &pki.server_rsa
    } else {
        &pki.server_ecdsa
    };
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[case.version])
        .map_err(|e| format!("server versions: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(id.chain.clone(), id.key())
        .map_err(|e| format!("server cert: {e}"))?;
    // Required by dangerous_into_kernel_connection.
    cfg.enable_secret_extraction = true;
    Ok(Arc::new(cfg))
}

pub(crate) fn client_config(case: &Case, pki: &Pki) -> Result<Arc<ClientConfig>, String> {
    let cfg = ClientConfig::builder_with_provider(provider_with(case.suite))
        .with_protocol_versions(&[case.version])
        .map_err(|e| format!("client versions: {e}"))?
        .with_root_certificates(pki.roots.clone())
        .with_client_auth_cert(pki.client.chain.clone(), pki.client.key())
        .map_err(|e| format!("client cert: {e}"))?;
    Ok(Arc::new(cfg))
}
