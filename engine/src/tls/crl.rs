//! CRLs as OpenSSL writes them, including the ones webpki refuses.
//!
//! webpki (rustls' certificate checker) takes only RFC 5280's CRL profile:
//! version 2 with a `crlExtensions` block. `openssl ca -gencrl` writes a v1
//! CRL when no `crlnumber` file and no `crl_extensions` are configured, and
//! a v2 CRL without `crlExtensions` when an entry has a reason code; webpki
//! refuses both (`UnsupportedCrlVersion`, `MalformedExtensions`), while
//! OpenSSL, GnuTLS and syslog-ng use them. So every CRL is sorted here once,
//! at load:
//! - [`LoadedCrl::Webpki`]: webpki parses it, and checks it while it builds
//!   the chain, scope extensions (issuingDistributionPoint) included;
//! - [`LoadedCrl::Bare`]: webpki refuses it, but it has no extension that
//!   narrows or redirects its scope (issuingDistributionPoint,
//!   deltaCRLIndicator, certificateIssuer entries) and no critical extension
//!   we do not know. Such a CRL covers every certificate its issuer signed,
//!   and [`BareCrl::check`] is the whole check OpenSSL makes for it: same
//!   issuer DN, signed by that issuer's key, the issuer (if an intermediate
//!   with keyUsage) may sign CRLs, nextUpdate not passed, serial not listed;
//! - anything else is refused with a [`CrlRefusal`] that names the field
//!   and says how to regenerate the CRL.
//!
//! Like webpki, the keyUsage of a trust anchor is not checked: the admin
//! put that CA in `ca_file`/`ca_dir` on purpose.

use std::collections::BTreeSet;
use std::fmt;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls_pki_types::{SubjectPublicKeyInfoDer, UnixTime};
use x509_parser::asn1_rs::Any;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

/// One CRL from `crl_file`/`crl_dir`, sorted by who checks it.
#[derive(Debug)]
pub(crate) enum LoadedCrl {
    Webpki(webpki::OwnedCertRevocationList),
    Bare(BareCrl),
}

/// A CRL without scope extensions, checked by [`BareCrl::check`].
#[derive(Debug, Clone)]
pub(crate) struct BareCrl {
    /// Issuer Name, DER without its outer SEQUENCE header (the form webpki's
    /// `Cert::issuer()` and `subject()` give).
    issuer: Vec<u8>,
    /// The signed bytes: the whole tbsCertList TLV.
    tbs: Vec<u8>,
    /// signatureAlgorithm, DER without its SEQUENCE header (the form of
    /// `SignatureVerificationAlgorithm::signature_alg_id`).
    signature_alg: Vec<u8>,
    signature: Vec<u8>,
    /// None: a v1 CRL may omit nextUpdate; it then never goes stale.
    next_update_secs: Option<u64>,
    /// Serial numbers as DER INTEGER contents (webpki's `Cert::serial()`).
    revoked: BTreeSet<Vec<u8>>,
}

/// Why a CRL can be used by neither webpki nor [`BareCrl`]. Each Display
/// names the field and the fix, because the admin reads it in
/// `check-config` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CrlRefusal {
    /// webpki refused it for a reason other than its profile (v1, no
    /// crlExtensions): damaged, or using a feature webpki does not support.
    Webpki { detail: String },
    /// Not DER of an X.509 CertificateList at all.
    Unparsable { detail: String },
    /// A deltaCRLIndicator: only full CRLs are supported.
    Delta,
    /// An issuingDistributionPoint in a CRL that webpki cannot take.
    DistributionPoint,
    /// An entry with a certificateIssuer: an indirect CRL.
    Indirect { serial: String },
    /// A critical CRL or entry extension we do not implement.
    UnknownCritical { oid: String },
    /// tbsCertList.signature differs from signatureAlgorithm.
    SignatureAlgorithmMismatch,
    /// No signature algorithm of the crypto provider has this identifier.
    UnsupportedSignature,
}

const REGENERATE: &str = "regenerate it with `openssl ca -gencrl -out crl.pem` \
     (a plain full CRL; a `crlnumber` file is optional)";

impl fmt::Display for CrlRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrlRefusal::Webpki { detail } => write!(f, "{detail}; {REGENERATE}"),
            CrlRefusal::Unparsable { detail } => {
                write!(f, "not an X.509 CRL ({detail}); {REGENERATE}")
            }
            CrlRefusal::Delta => write!(
                f,
                "deltaCRLIndicator: delta CRLs are not supported; publish the full CRL: \
                 {REGENERATE}"
            ),
            CrlRefusal::DistributionPoint => write!(
                f,
                "issuingDistributionPoint in a v1 CRL is not supported; {REGENERATE}"
            ),
            CrlRefusal::Indirect { serial } => write!(
                f,
                "revoked entry {serial}: certificateIssuer (indirect CRL) is not supported; \
                 have each CA publish its own CRL: {REGENERATE}"
            ),
            CrlRefusal::UnknownCritical { oid } => write!(
                f,
                "critical extension {oid} is not understood, so the CRL must not be used \
                 (RFC 5280 5.2); {REGENERATE} without it in crl_extensions"
            ),
            CrlRefusal::SignatureAlgorithmMismatch => write!(
                f,
                "tbsCertList.signature differs from signatureAlgorithm: the file is damaged; \
                 {REGENERATE}"
            ),
            CrlRefusal::UnsupportedSignature => write!(
                f,
                "signatureAlgorithm is not one this build verifies (ECDSA, RSA, Ed25519); \
                 {REGENERATE} with such a CA key"
            ),
        }
    }
}

const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_AUTHORITY_KEY_ID: &str = "2.5.29.35";
const OID_DELTA_CRL_INDICATOR: &str = "2.5.29.27";
const OID_ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";
const OID_REASON_CODE: &str = "2.5.29.21";
const OID_INVALIDITY_DATE: &str = "2.5.29.24";
const OID_CERTIFICATE_ISSUER: &str = "2.5.29.29";

/// Sorts one DER CRL (see the module doc).
pub(crate) fn parse_crl(
    der: &[u8],
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<LoadedCrl, CrlRefusal> {
    let webpki_err = match webpki::OwnedCertRevocationList::from_der(der) {
        Ok(crl) => return Ok(LoadedCrl::Webpki(crl)),
        Err(e) => e,
    };
    let (_, crl) = CertificateRevocationList::from_der(der).map_err(unparsable)?;
    // Only webpki's profile refusals fall through to BareCrl: a v1 CRL
    // (webpki reads a version INTEGER first, so any v1 CRL fails there,
    // as BadDer), or a v2 one without crlExtensions. Any other error (a
    // damaged file, a malformed extension) stands.
    let profile_refusal = match webpki_err {
        _ if crl.version().is_none() => true,
        webpki::Error::MalformedExtensions => crl.extensions().is_empty(),
        _ => false,
    };
    if !profile_refusal {
        return Err(CrlRefusal::Webpki {
            detail: format!("{webpki_err:?}"),
        });
    }
    BareCrl::parse(der, algorithms).map(LoadedCrl::Bare)
}

fn unparsable(detail: impl fmt::Display) -> CrlRefusal {
    CrlRefusal::Unparsable {
        detail: detail.to_string(),
    }
}

/// The contents of one DER TLV and the bytes after it.
fn tlv(input: &[u8]) -> Result<(Any<'_>, &[u8]), CrlRefusal> {
    let (rest, any) = Any::from_der(input).map_err(unparsable)?;
    Ok((any, rest))
}

impl BareCrl {
    fn parse(der: &[u8], algorithms: &WebPkiSupportedAlgorithms) -> Result<BareCrl, CrlRefusal> {
        let (rest, crl) = CertificateRevocationList::from_der(der).map_err(unparsable)?;
        if !rest.is_empty() {
            return Err(unparsable("bytes after the CRL"));
        }
        let tbs = &crl.tbs_cert_list;
        if tbs.signature != crl.signature_algorithm {
            return Err(CrlRefusal::SignatureAlgorithmMismatch);
        }
        for ext in tbs.extensions() {
            match ext.oid.to_id_string().as_str() {
                OID_DELTA_CRL_INDICATOR => return Err(CrlRefusal::Delta),
                OID_ISSUING_DISTRIBUTION_POINT => return Err(CrlRefusal::DistributionPoint),
                OID_CRL_NUMBER | OID_AUTHORITY_KEY_ID => {}
                oid if ext.critical => {
                    return Err(CrlRefusal::UnknownCritical {
                        oid: oid.to_string(),
                    })
                }
                _ => {}
            }
        }
        let mut revoked = BTreeSet::new();
        for entry in crl.iter_revoked_certificates() {
            for ext in entry.extensions() {
                match ext.oid.to_id_string().as_str() {
                    OID_CERTIFICATE_ISSUER => {
                        return Err(CrlRefusal::Indirect {
                            serial: entry.raw_serial_as_string(),
                        })
                    }
                    // Every listed serial counts as revoked, whatever the
                    // reason (certificateHold too, as webpki does).
                    OID_REASON_CODE | OID_INVALIDITY_DATE => {}
                    oid if ext.critical => {
                        return Err(CrlRefusal::UnknownCritical {
                            oid: oid.to_string(),
                        })
                    }
                    _ => {}
                }
            }
            revoked.insert(entry.raw_serial().to_vec());
        }

        // The raw pieces the signature covers, cut from the DER itself:
        // CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue }.
        let (outer, _) = tlv(der)?;
        let (_, after_tbs) = tlv(outer.data)?;
        let tbs_der = &outer.data[..outer.data.len() - after_tbs.len()];
        let (alg, rest) = tlv(after_tbs)?;
        let (sig, _) = tlv(rest)?;
        let signature = match sig.data.split_first() {
            Some((0, bits)) => bits.to_vec(),
            _ => return Err(unparsable("signatureValue is not a whole-byte BIT STRING")),
        };
        if !algorithms
            .all
            .iter()
            .any(|a| a.signature_alg_id().as_ref() == alg.data)
        {
            return Err(CrlRefusal::UnsupportedSignature);
        }
        let (issuer, _) = tlv(tbs.issuer.as_raw())?;
        Ok(BareCrl {
            issuer: issuer.data.to_vec(),
            tbs: tbs_der.to_vec(),
            signature_alg: alg.data.to_vec(),
            signature,
            next_update_secs: tbs
                .next_update
                .map(|t| u64::try_from(t.timestamp()).unwrap_or(0)),
            revoked,
        })
    }

    /// The revocation check of one certificate of a verified path against
    /// this CRL: `serial` and `issuer` are the certificate's, `issuer_spki`
    /// and `issuer_der` its issuer's (`issuer_der` is None for a trust
    /// anchor). A CRL of another issuer has nothing to say.
    pub(crate) fn check(
        &self,
        serial: &[u8],
        issuer: &[u8],
        issuer_spki: &SubjectPublicKeyInfoDer<'_>,
        issuer_der: Option<&[u8]>,
        algorithms: &WebPkiSupportedAlgorithms,
        now: UnixTime,
    ) -> Result<(), webpki::Error> {
        if self.issuer != issuer {
            return Ok(());
        }
        self.verify_signature(issuer_spki, algorithms)?;
        if let Some(der) = issuer_der {
            let may_sign_crls = match X509Certificate::from_der(der) {
                Ok((_, cert)) => match cert.key_usage() {
                    Ok(Some(ku)) => ku.value.crl_sign(),
                    Ok(None) => true,
                    Err(_) => false,
                },
                Err(_) => false,
            };
            if !may_sign_crls {
                return Err(webpki::Error::IssuerNotCrlSigner);
            }
        }
        if let Some(next_update) = self.next_update_secs {
            if now.as_secs() > next_update {
                return Err(webpki::Error::CrlExpired {
                    time: now,
                    next_update: UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                        next_update,
                    )),
                });
            }
        }
        if self.revoked.contains(serial) {
            return Err(webpki::Error::CertRevoked);
        }
        Ok(())
    }

    /// The CRL must be signed by the key of the certificate's issuer; an
    /// algorithm is a candidate when both its key and signature identifiers
    /// match (P-256 and P-384 share the ECDSA-SHA256 identifier).
    fn verify_signature(
        &self,
        issuer_spki: &SubjectPublicKeyInfoDer<'_>,
        algorithms: &WebPkiSupportedAlgorithms,
    ) -> Result<(), webpki::Error> {
        let bad = webpki::Error::InvalidCrlSignatureForPublicKey;
        let (spki, _) = tlv(issuer_spki.as_ref()).map_err(|_| bad.clone())?;
        let (key_alg, rest) = tlv(spki.data).map_err(|_| bad.clone())?;
        let (key_bits, _) = tlv(rest).map_err(|_| bad.clone())?;
        let Some((0, public_key)) = key_bits.data.split_first() else {
            return Err(bad);
        };
        let verified = algorithms.all.iter().any(|a| {
            a.public_key_alg_id().as_ref() == key_alg.data
                && a.signature_alg_id().as_ref() == self.signature_alg
                && a.verify_signature(public_key, &self.tbs, &self.signature)
                    .is_ok()
        });
        if verified {
            Ok(())
        } else {
            Err(bad)
        }
    }
}
