//! The embedded default's dev PKI: generated once, reused, usable.

use std::os::unix::fs::PermissionsExt;

use rustls::version::TLS13;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::pump::{client_config, connect, ClientAuth};
use super::TempDir;
use crate::tls::{build_server_config, ensure_dev_pki, PeerIdentity, TlsSettings, DEV_CLIENT_CN};

#[test]
fn dev_pki_is_generated_once_and_works_for_mutual_tls() {
    let tmp = TempDir::new("devpki");
    let dir = tmp.path().join("pki");
    let pki = ensure_dev_pki(&dir).unwrap();
    for key in [&pki.server_key, &pki.client_key] {
        let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key.display());
    }

    // Reused as is on the next run.
    let before = std::fs::read(&pki.server_cert).unwrap();
    assert_eq!(ensure_dev_pki(&dir).unwrap(), pki);
    assert_eq!(std::fs::read(&pki.server_cert).unwrap(), before);

    // The default mode (required-trusted) accepts the dev client.
    let settings = TlsSettings {
        cert_file: Some(pki.server_cert.clone()),
        key_file: Some(pki.server_key.clone()),
        ca_file: Some(pki.ca_cert.clone()),
        ..TlsSettings::default()
    };
    let ca = CertificateDer::from_pem_file(&pki.ca_cert).unwrap();
    let client = super::pki::Leaf {
        cert: CertificateDer::from_pem_file(&pki.client_cert).unwrap(),
        key_pkcs8: PrivateKeyDer::from_pem_file(&pki.client_key)
            .unwrap()
            .secret_der()
            .to_vec(),
        cert_pem: String::new(),
        key_pem: String::new(),
    };
    let session = connect(
        build_server_config(&settings).unwrap(),
        client_config(&ca, ClientAuth::Cert(&client), &[&TLS13]),
    );
    session.server_result.unwrap();
    let id = PeerIdentity::from_parts(
        session.server.protocol_version().unwrap(),
        session.server.negotiated_cipher_suite(),
        session.server.peer_certificates(),
    );
    assert_eq!(id.client_cn.as_deref(), Some(DEV_CLIENT_CN));

    // A missing file regenerates the whole set (a new CA).
    std::fs::remove_file(&pki.client_key).unwrap();
    ensure_dev_pki(&dir).unwrap();
    assert!(pki.client_key.is_file());
    assert_ne!(std::fs::read(&pki.server_cert).unwrap(), before);
}
