//! The one throwaway PKI builder of the workspace (dev-only), generated with
//! rcgen: CAs that sign leaves with chosen names, dates, serials and key
//! types, CRLs, self-signed leaves, the standard test layout ([`Pki`]), and
//! fingerprints computed by the `openssl` command line (so the engine's own
//! fingerprint code is checked against an independent implementation, in
//! the form an admin would paste).

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams,
    CertificateRevocationListParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, RsaKeySize, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};

/// The key of a leaf.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyAlg {
    #[default]
    EcdsaP256,
    Rsa2048,
}

impl KeyAlg {
    fn generate(self) -> KeyPair {
        match self {
            KeyAlg::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("ecdsa key"),
            KeyAlg::Rsa2048 => {
                KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).expect("rsa key")
            }
        }
    }
}

/// A (year, month, day) date; rcgen wants `time` types, which the tests do
/// not depend on directly.
pub type Ymd = (i32, u8, u8);

pub struct Ca {
    pub cn: String,
    cert: Certificate,
    key: KeyPair,
}

/// What a leaf should look like. Subject DN is `C=<country>, O=<org>,
/// CN=<cn>` in encoding order, which syslog-ng (and the engine) print as
/// `CN=<cn>, O=<org>, C=<country>`.
#[derive(Clone)]
pub struct LeafSpec {
    pub cn: String,
    pub org: String,
    pub country: String,
    pub dns_sans: Vec<String>,
    pub ip_sans: Vec<std::net::IpAddr>,
    pub serial: u64,
    pub not_before: Ymd,
    pub not_after: Ymd,
    pub server: bool,
    pub alg: KeyAlg,
}

impl LeafSpec {
    /// A valid client certificate (2020..2090) for `cn`, DNS SAN `cn`,
    /// O=Ringest Test, C=HU, extendedKeyUsage clientAuth.
    pub fn client(cn: &str, serial: u64) -> LeafSpec {
        LeafSpec {
            cn: cn.to_string(),
            org: "Ringest Test".into(),
            country: "HU".into(),
            dns_sans: vec![cn.to_string()],
            ip_sans: Vec::new(),
            serial,
            not_before: (2020, 1, 1),
            not_after: (2090, 1, 1),
            server: false,
            alg: KeyAlg::EcdsaP256,
        }
    }

    /// A server certificate for `localhost` / 127.0.0.1 (CN=localhost).
    pub fn server(serial: u64) -> LeafSpec {
        LeafSpec {
            ip_sans: vec!["127.0.0.1".parse().expect("ip")],
            server: true,
            ..LeafSpec::client("localhost", serial)
        }
    }

    /// The subject as syslog-ng and the engine print it.
    pub fn subject_dn(&self) -> String {
        format!("CN={}, O={}, C={}", self.cn, self.org, self.country)
    }

    fn params(&self) -> CertificateParams {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, self.country.as_str());
        dn.push(DnType::OrganizationName, self.org.as_str());
        dn.push(DnType::CommonName, self.cn.as_str());
        p.distinguished_name = dn;
        p.subject_alt_names = self
            .dns_sans
            .iter()
            .map(|s| SanType::DnsName(s.as_str().try_into().expect("dns san")))
            .chain(self.ip_sans.iter().map(|ip| SanType::IpAddress(*ip)))
            .collect();
        p.serial_number = Some(SerialNumber::from(self.serial));
        p.not_before = date_time_ymd(self.not_before.0, self.not_before.1, self.not_before.2);
        p.not_after = date_time_ymd(self.not_after.0, self.not_after.1, self.not_after.2);
        p.extended_key_usages = vec![if self.server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p
    }
}

/// A leaf certificate with its key, in PEM and DER (the key as PKCS#8).
pub struct Leaf {
    pub spec: LeafSpec,
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    /// The issuer DN as the engine prints it (`client_issuer`).
    pub issuer_dn: String,
}

impl Leaf {
    /// Writes `<name>.pem` and `<name>.key` into `dir`; returns (cert, key).
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).expect("pki dir");
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write cert");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }
}

impl Ca {
    /// A self-signed CA, `CN=<cn>, O=Ringest Test`, valid 2020..2095.
    pub fn new(cn: &str) -> Ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("ca key");
        let cert = ca_params(cn).self_signed(&key).expect("ca cert");
        Ca {
            cn: cn.to_string(),
            cert,
            key,
        }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// The rcgen certificate and key, for tests that sign something unusual.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }

    pub fn key_pair(&self) -> &KeyPair {
        &self.key
    }

    /// A CA certificate signed by this one (`CN=<cn>, O=Ringest Test`).
    pub fn intermediate(&self, cn: &str) -> Ca {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("ca key");
        let cert = ca_params(cn)
            .signed_by(&key, &self.cert, &self.key)
            .expect("intermediate cert");
        Ca {
            cn: cn.to_string(),
            cert,
            key,
        }
    }

    /// The CA's DN as the engine prints it.
    pub fn dn(&self) -> String {
        format!("CN={}, O=Ringest Test", self.cn)
    }

    /// Writes the CA certificate to `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("ca dir");
        }
        std::fs::write(path, self.pem()).expect("write ca");
        path.to_path_buf()
    }

    pub fn issue(&self, spec: &LeafSpec) -> Leaf {
        let key = spec.alg.generate();
        let cert = spec
            .params()
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign leaf");
        Leaf {
            spec: spec.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            issuer_dn: self.dn(),
        }
    }

    /// A PEM CRL of this CA revoking `serials`, issued 2020-06-01, valid
    /// until `next_update`.
    pub fn crl_pem(&self, serials: &[u64], next_update: Ymd) -> String {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2020, 6, 1),
            next_update: date_time_ymd(next_update.0, next_update.1, next_update.2),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&s| RevokedCertParams {
                    serial_number: SerialNumber::from(s),
                    revocation_time: date_time_ymd(2021, 1, 1),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.cert, &self.key)
            .expect("sign crl")
            .pem()
            .expect("crl pem")
    }
}

/// A CA's parameters: `CN=<cn>, O=Ringest Test`, valid 2020..2095.
fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Ringest Test");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = date_time_ymd(2020, 1, 1);
    p.not_after = date_time_ymd(2095, 1, 1);
    p
}

/// A self-signed leaf (no CA at all).
pub fn self_signed(spec: &LeafSpec) -> Leaf {
    let key = spec.alg.generate();
    let cert = spec.params().self_signed(&key).expect("self-signed");
    Leaf {
        spec: spec.clone(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        cert_der: cert.der().to_vec(),
        key_der: key.serialize_der(),
        issuer_dn: spec.subject_dn(),
    }
}

/// `openssl x509 -noout -fingerprint -<alg>` of a PEM certificate file, as
/// `AA:BB:..` (upper case). `alg` is "sha256" or "sha1".
pub fn openssl_fingerprint(cert: &Path, alg: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", &format!("-{alg}"), "-in"])
        .arg(cert)
        .output()
        .expect("run openssl (install openssl: tests/install-deps.sh)");
    assert!(
        out.status.success(),
        "openssl x509 -fingerprint failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .split_once('=')
        .map(|(_, fp)| fp.trim().to_ascii_uppercase())
        .unwrap_or_else(|| panic!("unexpected openssl output {text:?}"))
}

/// `openssl rehash DIR`: the `<hash>.0` / `<hash>.r0` links syslog-ng's
/// ca-dir() and OpenSSL's lookup need.
pub fn openssl_rehash(dir: &Path) {
    let out = Command::new("openssl")
        .arg("rehash")
        .arg(dir)
        .output()
        .expect("run openssl rehash (install openssl: tests/install-deps.sh)");
    assert!(
        out.status.success(),
        "openssl rehash {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The standard test layout in one folder: `ca.pem`, `server.pem` +
/// `server.key` (localhost, 127.0.0.1), `client.pem` + `client.key`
/// (CN test-client), and `rogue.pem` + `rogue.key`, a client certificate
/// from a CA the server does not trust.
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

impl Pki {
    pub fn generate(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("pki dir");
        let ca = Ca::new("ringest test CA");
        let rogue = Ca::new("rogue CA");
        let (server_cert, server_key) = ca.issue(&LeafSpec::server(1)).write(dir, "server");
        let (client_cert, client_key) = ca
            .issue(&LeafSpec::client("test-client", 2))
            .write(dir, "client");
        let (rogue_cert, rogue_key) = rogue
            .issue(&LeafSpec::client("rogue-client", 3))
            .write(dir, "rogue");
        Pki {
            dir: dir.to_path_buf(),
            ca: ca.write(&dir.join("ca.pem")),
            server_cert,
            server_key,
            client_cert,
            client_key,
            rogue_cert,
            rogue_key,
        }
    }
}
