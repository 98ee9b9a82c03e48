//! The common test setup: a server CA and server certificate, the CA that
//! signs client certificates, and a `TlsSettings` pointing at their files.

use rcgen::SignatureAlgorithm;

use super::pki::{Leaf, LeafSpec, TestCa};
use super::TempDir;
use crate::tls::TlsSettings;

pub(crate) struct Fixture {
    pub dir: TempDir,
    pub server_ca: TestCa,
    pub client_ca: TestCa,
    /// Server cert/key files and `ca_file` = the client CA; mode default.
    pub base: TlsSettings,
}

impl Fixture {
    pub(crate) fn new(tag: &str) -> Fixture {
        Fixture::with_server_alg(tag, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    pub(crate) fn with_server_alg(tag: &str, alg: &'static SignatureAlgorithm) -> Fixture {
        let dir = TempDir::new(tag);
        let server_ca = TestCa::new("Ringest Test Server CA");
        let client_ca = TestCa::new("Ringest Test Client CA");
        let server: Leaf = server_ca.issue(&LeafSpec {
            alg,
            ..LeafSpec::server()
        });
        let base = TlsSettings {
            cert_file: Some(dir.write("server.pem", &server.cert_pem)),
            key_file: Some(dir.write("server-key.pem", &server.key_pem)),
            ca_file: Some(dir.write("client-ca.pem", client_ca.pem())),
            ..TlsSettings::default()
        };
        Fixture {
            dir,
            server_ca,
            client_ca,
            base,
        }
    }

    pub(crate) fn server_ca_der(&self) -> rustls_pki_types::CertificateDer<'static> {
        self.server_ca.cert().der().clone()
    }
}
