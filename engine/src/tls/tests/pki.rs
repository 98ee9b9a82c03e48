//! Test PKI built with rcgen: CAs, leaves with chosen names, dates, serials
//! and key types, and CRLs.

use std::sync::Arc;

use rcgen::{
    date_time_ymd, BasicConstraints, Certificate, CertificateParams,
    CertificateRevocationListParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
    SignatureAlgorithm, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use rustls::crypto::aws_lc_rs;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

pub(crate) struct TestCa {
    pub cert: Certificate,
    pub key: KeyPair,
}

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
            not_before: date_time_ymd(2020, 1, 1),
            not_after: date_time_ymd(2090, 1, 1),
            eku: ExtendedKeyUsagePurpose::ClientAuth,
            alg: &PKCS_ECDSA_P256_SHA256,
        }
    }

    pub(crate) fn server() -> Self {
        LeafSpec {
            eku: ExtendedKeyUsagePurpose::ServerAuth,
            ..LeafSpec::client("localhost", &["localhost"], 1)
        }
    }

    fn params(&self) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, self.country);
        dn.push(DnType::OrganizationName, self.org);
        dn.push(DnType::CommonName, self.cn);
        params.distinguished_name = dn;
        params.subject_alt_names = self
            .dns_sans
            .iter()
            .map(|s| SanType::DnsName((*s).try_into().unwrap()))
            .collect();
        params.serial_number = Some(SerialNumber::from(self.serial));
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.extended_key_usages = vec![self.eku.clone()];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params
    }
}

fn leaf_from(cert: Certificate, key: &KeyPair) -> Leaf {
    Leaf {
        cert: cert.der().clone(),
        key_pkcs8: key.serialize_der(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

impl TestCa {
    pub(crate) fn new(cn: &str) -> TestCa {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = ca_params(cn).self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A CA certificate signed by this one.
    pub(crate) fn intermediate(&self, cn: &str) -> TestCa {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = ca_params(cn)
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        TestCa { cert, key }
    }

    pub(crate) fn issue(&self, spec: &LeafSpec<'_>) -> Leaf {
        let key = if spec.alg == &PKCS_RSA_SHA256 {
            KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap()
        } else {
            KeyPair::generate_for(spec.alg).unwrap()
        };
        let cert = spec
            .params()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        leaf_from(cert, &key)
    }

    /// A CRL revoking `serials`, valid until `next_update`.
    pub(crate) fn crl_pem(&self, serials: &[u64], next_update: OffsetDateTime) -> String {
        let params = CertificateRevocationListParams {
            this_update: date_time_ymd(2020, 6, 1),
            next_update,
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
            .unwrap()
            .pem()
            .unwrap()
    }
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Ringest Test");
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2095, 1, 1);
    params
}

/// A self-signed leaf (no CA at all).
pub(crate) fn self_signed(spec: &LeafSpec<'_>) -> Leaf {
    let key = KeyPair::generate_for(spec.alg).unwrap();
    let cert = spec.params().self_signed(&key).unwrap();
    leaf_from(cert, &key)
}
