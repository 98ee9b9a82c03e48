//! The rustls client-certificate verifier implementing `peer_verify`.
//!
//! | mode               | cert requested | cert required | chain + time + CRL checked | proof of key possession | trusted_keys / trusted_dn / permitted_peer |
//! |--------------------|----------------|---------------|----------------------------|-------------------------|--------------------------------------------|
//! | optional-untrusted | yes            | no            | no                         | yes, if a cert is sent  | yes, if a cert is sent                     |
//! | optional-trusted   | yes            | no            | yes, if a cert is sent     | yes, if a cert is sent  | yes, if a cert is sent                     |
//! | required-untrusted | yes            | yes           | no                         | yes                     | yes                                        |
//! | required-trusted   | yes            | yes           | yes                        | yes                     | yes                                        |
//!
//! "Proof of key possession" is the CertificateVerify signature over the
//! handshake transcript. It is checked in every mode: without it anyone
//! could replay a public certificate and the logged identity would be a lie.
//!
//! syslog-ng sends no certificate request at all in optional-untrusted; we
//! do send one so that clients that have a certificate present it and their
//! identity can be logged. No CA names are sent in the request (syslog-ng
//! sends none either): clients then present their certificate whatever CA
//! issued it, so a wrong-CA client is logged as `unknown_ca`, which says
//! what to fix, instead of `no_client_cert`.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme,
};

use super::chain::ChainCheck;
use super::policy::PeerPolicy;
use super::settings::PeerVerify;

#[derive(Debug)]
pub struct PolicyVerifier {
    mode: PeerVerify,
    /// webpki chain validation (trust anchors, validity period, CRLs,
    /// clientAuth key usage); present exactly in the `*-trusted` modes.
    chain: Option<ChainCheck>,
    policy: PeerPolicy,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PolicyVerifier {
    pub(crate) fn new(
        mode: PeerVerify,
        chain: Option<ChainCheck>,
        policy: PeerPolicy,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> PolicyVerifier {
        // A trusted mode without a chain verifier would accept anything;
        // server_config.rs refuses that configuration before we get here.
        assert_eq!(
            mode.is_trusted(),
            chain.is_some(),
            "chain verifier iff *-trusted mode"
        );
        PolicyVerifier {
            mode,
            chain,
            policy,
            algorithms,
        }
    }

    pub fn mode(&self) -> PeerVerify {
        self.mode
    }
}

impl ClientCertVerifier for PolicyVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// rustls refuses a handshake without a certificate
    /// (`Error::NoCertificatesPresented`) when this is true.
    fn client_auth_mandatory(&self) -> bool {
        self.mode.is_required()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if let Some(chain) = &self.chain {
            chain.verify(end_entity, intermediates, now)?;
        }
        self.policy.check(end_entity).map_err(|refusal| {
            Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(refusal))))
        })?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
