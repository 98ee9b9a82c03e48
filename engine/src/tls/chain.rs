//! Chain validation of a client certificate in the `*-trusted` modes: trust
//! anchors, validity dates, clientAuth purpose, and revocation.
//!
//! This is what rustls' `WebPkiClientVerifier` does (one webpki
//! `verify_for_usage` call, its errors mapped the same way), plus the CRLs
//! webpki cannot parse ([`BareCrl`], see `crl.rs`): webpki hands every path
//! it has verified to a callback, which checks those CRLs for each
//! certificate of the path; a path that fails there makes webpki try the
//! next candidate path, as it does with its own CRL checks.
//!
//! CRL policy, as syslog-ng: a certificate whose issuer has no CRL is
//! accepted; a CRL past its nextUpdate refuses the certificates it covers;
//! every certificate of the path is checked, not only the client's.

use std::sync::Arc;

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, TrustAnchor, UnixTime};
use rustls::{CertRevocationListError, CertificateError, Error, OtherError};
use webpki::{
    EndEntityCert, ExpirationPolicy, RevocationCheckDepth, RevocationOptionsBuilder,
    UnknownStatusPolicy, VerifiedPath,
};

use super::crl::{BareCrl, LoadedCrl};

/// webpki's callback for each path it has verified.
type PathCheck<'a> = dyn Fn(&VerifiedPath<'_>) -> Result<(), webpki::Error> + 'a;

#[derive(Debug)]
pub(crate) struct ChainCheck {
    roots: Vec<TrustAnchor<'static>>,
    webpki_crls: Vec<webpki::CertRevocationList<'static>>,
    bare_crls: Vec<BareCrl>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ChainCheck {
    pub(crate) fn new(
        roots: Vec<TrustAnchor<'static>>,
        crls: Vec<LoadedCrl>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> ChainCheck {
        let mut webpki_crls = Vec::new();
        let mut bare_crls = Vec::new();
        for crl in crls {
            match crl {
                LoadedCrl::Webpki(c) => webpki_crls.push(c.into()),
                LoadedCrl::Bare(c) => bare_crls.push(c),
            }
        }
        ChainCheck {
            roots,
            webpki_crls,
            bare_crls,
            algorithms,
        }
    }

    pub(crate) fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Error> {
        let cert = EndEntityCert::try_from(end_entity).map_err(pki_error)?;
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> = self.webpki_crls.iter().collect();
        let revocation = RevocationOptionsBuilder::new(&crl_refs).ok().map(|b| {
            b.with_depth(RevocationCheckDepth::Chain)
                .with_status_policy(UnknownStatusPolicy::Allow)
                .with_expiration_policy(ExpirationPolicy::Enforce)
                .build()
        });
        let bare = |path: &VerifiedPath<'_>| self.check_bare_crls(path, now);
        let verify_path: Option<&PathCheck<'_>> = if self.bare_crls.is_empty() {
            None
        } else {
            Some(&bare)
        };
        cert.verify_for_usage(
            self.algorithms.all,
            &self.roots,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            revocation,
            verify_path,
        )
        .map(|_| ())
        .map_err(pki_error)
    }

    /// Each certificate of the path below the anchor, against every bare
    /// CRL of its issuer.
    fn check_bare_crls(&self, path: &VerifiedPath<'_>, now: UnixTime) -> Result<(), webpki::Error> {
        let anchor = path.anchor();
        let anchor_spki = webpki::spki_for_anchor(anchor);
        // (certificate, its issuer) pairs, from the client up to the anchor.
        let mut certs: Vec<&webpki::Cert<'_>> = vec![&**path.end_entity()];
        certs.extend(path.intermediate_certificates());
        for (i, cert) in certs.iter().enumerate() {
            let (issuer_spki, issuer_der) = match certs.get(i + 1) {
                Some(issuer) => (issuer.subject_public_key_info(), Some(issuer.der())),
                None => (anchor_spki.clone(), None),
            };
            for crl in &self.bare_crls {
                crl.check(
                    cert.serial(),
                    cert.issuer(),
                    &issuer_spki,
                    issuer_der.as_ref().map(|d| d.as_ref()),
                    &self.algorithms,
                    now,
                )?;
            }
        }
        Ok(())
    }
}

/// webpki's error as rustls reports it (the mapping of rustls'
/// `WebPkiClientVerifier`), so that `HandshakeFailure::classify` sees the
/// same errors whichever verifier ran.
fn pki_error(error: webpki::Error) -> Error {
    use webpki::Error::*;
    match error {
        BadDer | BadDerTime | TrailingData(_) => CertificateError::BadEncoding.into(),
        CertNotValidYet { time, not_before } => {
            CertificateError::NotValidYetContext { time, not_before }.into()
        }
        CertExpired { time, not_after } => {
            CertificateError::ExpiredContext { time, not_after }.into()
        }
        InvalidCertValidity => CertificateError::Expired.into(),
        UnknownIssuer => CertificateError::UnknownIssuer.into(),
        CertRevoked => CertificateError::Revoked.into(),
        UnknownRevocationStatus => CertificateError::UnknownRevocationStatus.into(),
        CrlExpired { time, next_update } => {
            CertificateError::ExpiredRevocationListContext { time, next_update }.into()
        }
        IssuerNotCrlSigner => CertRevocationListError::IssuerInvalidForCrl.into(),
        InvalidSignatureForPublicKey => CertificateError::BadSignature.into(),
        InvalidCrlSignatureForPublicKey => CertRevocationListError::BadSignature.into(),
        #[allow(deprecated)]
        RequiredEkuNotFound | RequiredEkuNotFoundContext(_) => {
            CertificateError::InvalidPurpose.into()
        }
        #[allow(deprecated)]
        UnsupportedSignatureAlgorithm | UnsupportedSignatureAlgorithmForPublicKey => {
            CertificateError::UnsupportedSignatureAlgorithm.into()
        }
        UnsupportedSignatureAlgorithmContext(cx) => {
            CertificateError::UnsupportedSignatureAlgorithmContext {
                signature_algorithm_id: cx.signature_algorithm_id,
                supported_algorithms: cx.supported_algorithms,
            }
            .into()
        }
        UnsupportedSignatureAlgorithmForPublicKeyContext(cx) => {
            CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext {
                signature_algorithm_id: cx.signature_algorithm_id,
                public_key_algorithm_id: cx.public_key_algorithm_id,
            }
            .into()
        }
        other => CertificateError::Other(OtherError(Arc::new(other))).into(),
    }
}
