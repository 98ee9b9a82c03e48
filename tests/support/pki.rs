//! A throwaway PKI for tests, generated with rcgen: a CA, a server cert for
//! localhost/127.0.0.1, a client cert, and a client cert from another CA.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

#[derive(Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Signed by a CA the server does not trust.
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
}

struct Issuer {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn new_ca(cn: &str) -> Issuer {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).expect("ca");
    Issuer { cert, key }
}

fn leaf(issuer: &Issuer, cn: &str, server: bool) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, cn);
    if server {
        p.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().expect("dns")),
            SanType::IpAddress("127.0.0.1".parse().expect("ip")),
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    } else {
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let cert = p.signed_by(&key, &issuer.cert, &issuer.key).expect("sign");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn generate(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("pki dir");
        let ca = new_ca("ringest test CA");
        let rogue_ca = new_ca("rogue CA");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write pki file");
            p
        };
        let (sc, sk) = leaf(&ca, "localhost", true);
        let (cc, ck) = leaf(&ca, "test-client", false);
        let (rc, rk) = leaf(&rogue_ca, "rogue-client", false);
        Pki {
            dir: dir.to_path_buf(),
            ca: write("ca.pem", &ca.cert.pem()),
            server_cert: write("server.pem", &sc),
            server_key: write("server.key", &sk),
            client_cert: write("client.pem", &cc),
            client_key: write("client.key", &ck),
            rogue_cert: write("rogue.pem", &rc),
            rogue_key: write("rogue.key", &rk),
        }
    }
}
