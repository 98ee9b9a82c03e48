//! The TLS tests' view of the workspace's one test PKI builder (`testkit`):
//! specs with borrowed names and `time` dates, leaves as rustls wants them.
//! Only the mapping lives here; building is testkit's.

use std::sync::Arc;

use rcgen::{Certificate, ExtendedKeyUsagePurpose, KeyPair, SignatureAlgorithm, PKCS_RSA_SHA256};
use rustls::crypto::aws_lc_rs;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

pub(crate) struct TestCa(testkit::Ca);

/// A leaf certificate with its key, as files would hold them.
pub(crate) struct Leaf {
    pub cert: CertificateDer<'static>,
    pub key_pkcs8: Vec<u8>,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Leaf {
    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }

    /// What a rustls client presents: this certificate with `signing_key`
    /// (normally its own key; another one to forge a CertificateVerify).
    pub(crate) fn certified_with(&self, signing_key: PrivateKeyDer<'static>) -> Arc<CertifiedKey> {
        let provider = aws_lc_rs::default_provider();
        let key = provider.key_provider.load_private_key(signing_key).unwrap();
        Arc::new(CertifiedKey::new(vec![self.cert.clone()], key))
    }
}

impl From<testkit::Leaf> for Leaf {
    fn from(l: testkit::Leaf) -> Leaf {
        Leaf {
            cert: CertificateDer::from(l.cert_der),
            key_pkcs8: l.key_der,
            cert_pem: l.cert_pem,
            key_pem: l.key_pem,
        }
    }
}

/// What a leaf should look like.
pub(crate) struct LeafSpec<'a> {
    pub cn: &'a str,
    pub org: &'a str,
    pub country: &'a str,
    pub dns_sans: &'a [&'a str],
    pub serial: u64,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub eku: ExtendedKeyUsagePurpose,
    pub alg: &'static SignatureAlgorithm,
}

impl<'a> LeafSpec<'a> {
    /// A valid client certificate for `cn`, O=Ringest Test, C=HU.
    pub(crate) fn client(cn: &'a str, dns_sans: &'a [&'a str], serial: u64) -> Self {
        LeafSpec {
            cn,
            org: "Ringest Test",
            country: "HU",
            dns_sans,
            serial,
            not_before: rcgen::date_time_ymd(2020, 1, 1),
            not_after: rcgen::date_time_ymd(2090, 1, 1),
            eku: ExtendedKeyUsagePurpose::ClientAuth,
            alg: &rcgen::PKCS_ECDSA_P256_SHA256,
        }
    }

    pub(crate) fn server() -> Self {
        LeafSpec {
            eku: ExtendedKeyUsagePurpose::ServerAuth,
            ..LeafSpec::client("localhost", &["localhost"], 1)
        }
    }

    fn to_testkit(&self) -> testkit::LeafSpec {
        let ymd = |t: OffsetDateTime| (t.year(), u8::from(t.month()), t.day());
        testkit::LeafSpec {
            cn: self.cn.into(),
            org: self.org.into(),
            country: self.country.into(),
            dns_sans: self.dns_sans.iter().map(|s| s.to_string()).collect(),
            ip_sans: Vec::new(),
            serial: self.serial,
            not_before: ymd(self.not_before),
            not_after: ymd(self.not_after),
            server: self.eku == ExtendedKeyUsagePurpose::ServerAuth,
            alg: if self.alg == &PKCS_RSA_SHA256 {
                testkit::KeyAlg::Rsa2048
            } else {
                testkit::KeyAlg::EcdsaP256
            },
        }
    }
}

impl TestCa {
    pub(crate) fn new(cn: &str) -> TestCa {
        TestCa(testkit::Ca::new(cn))
    }

    pub(crate) fn pem(&self) -> String {
        self.0.pem()
    }

    pub(crate) fn cert(&self) -> &Certificate {
        self.0.certificate()
    }

    pub(crate) fn key(&self) -> &KeyPair {
        self.0.key_pair()
    }

    /// A CA certificate signed by this one.
    pub(crate) fn intermediate(&self, cn: &str) -> TestCa {
        TestCa(self.0.intermediate(cn))
    }

    pub(crate) fn issue(&self, spec: &LeafSpec<'_>) -> Leaf {
        self.0.issue(&spec.to_testkit()).into()
    }

    /// A CRL revoking `serials`, valid until `next_update`.
    pub(crate) fn crl_pem(&self, serials: &[u64], next_update: OffsetDateTime) -> String {
        let ymd = (
            next_update.year(),
            u8::from(next_update.month()),
            next_update.day(),
        );
        self.0.crl_pem(serials, ymd)
    }
}

/// A self-signed leaf (no CA at all).
pub(crate) fn self_signed(spec: &LeafSpec<'_>) -> Leaf {
    testkit::self_signed(&spec.to_testkit()).into()
}
