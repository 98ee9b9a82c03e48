//! Turns extracted traffic secrets into rustls's own AEAD record objects, so
//! no crypto is written here (aws-lc-rs provider, the same code rustls runs).
//!
//! How `ConnectionTrafficSecrets { key, iv }` maps onto the AEAD factories:
//! - TLS 1.3 (any AEAD): `iv` is the 12-byte per-connection IV; the nonce is
//!   `iv XOR seq`. Passed as is to `Tls13AeadAlgorithm::{decrypter, encrypter}`.
//! - TLS 1.2 AES-GCM: rustls packs `salt (4 bytes, the key block's
//!   fixed_iv) || explicit-nonce seed (8 bytes)` into `iv`. The decrypter
//!   wants only the salt (the explicit nonce arrives in each record); the
//!   encrypter wants both parts to derive its explicit nonces as `seed XOR seq`.
//! - TLS 1.2 CHACHA20-POLY1305 (RFC 7905): no explicit nonce; `iv` is the
//!   whole 12-byte fixed IV.
//!
//! Both TLS 1.2 cases fall out of the suite's `KeyBlockShape`: the first
//! `fixed_iv_len` bytes are the fixed IV, the next `explicit_nonce_len`
//! bytes the explicit-nonce seed.

use rustls::crypto::cipher::{MessageDecrypter, MessageEncrypter, NONCE_LEN};
use rustls::{ConnectionTrafficSecrets, ProtocolVersion, SupportedCipherSuite};

use super::error::RecordError;

/// The protocol versions this layer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Tls12,
    Tls13,
}

impl Version {
    pub(crate) fn of(suite: SupportedCipherSuite) -> Version {
        match suite {
            SupportedCipherSuite::Tls12(_) => Version::Tls12,
            SupportedCipherSuite::Tls13(_) => Version::Tls13,
        }
    }

    /// Cross-checks the version rustls negotiated against the suite.
    pub(crate) fn check(
        negotiated: ProtocolVersion,
        suite: SupportedCipherSuite,
    ) -> Result<Version, RecordError> {
        let version = Version::of(suite);
        match (negotiated, version) {
            (ProtocolVersion::TLSv1_2, Version::Tls12)
            | (ProtocolVersion::TLSv1_3, Version::Tls13) => Ok(version),
            (other, _) => Err(RecordError::UnsupportedVersion(u16::from(other))),
        }
    }
}

/// Splits the secrets, checking the key length against the suite first:
/// aws-lc-rs panics on a wrong-length key, and a mismatch here would be a
/// wiring bug, not peer input, but it must still not panic.
fn key_iv(
    suite: SupportedCipherSuite,
    secrets: ConnectionTrafficSecrets,
) -> Result<(rustls::crypto::cipher::AeadKey, rustls::crypto::cipher::Iv), RecordError> {
    let (key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
        _ => return Err(RecordError::UnsupportedSecrets),
    };
    let key_len = match suite {
        SupportedCipherSuite::Tls13(s) => s.aead_alg.key_len(),
        SupportedCipherSuite::Tls12(s) => s.aead_alg.key_block_shape().enc_key_len,
    };
    if key.as_ref().len() != key_len {
        return Err(RecordError::UnsupportedSecrets);
    }
    debug_assert_eq!(iv.as_ref().len(), NONCE_LEN);
    Ok((key, iv))
}

/// The fixed-IV and explicit-nonce-seed ranges of a TLS 1.2 `iv`, checked to
/// fit the 12 bytes rustls hands out.
fn tls12_iv_parts(suite: &rustls::Tls12CipherSuite) -> Result<(usize, usize), RecordError> {
    let shape = suite.aead_alg.key_block_shape();
    let fixed = shape.fixed_iv_len;
    let explicit = shape.explicit_nonce_len;
    if fixed.checked_add(explicit) != Some(NONCE_LEN) {
        return Err(RecordError::UnsupportedSecrets);
    }
    Ok((fixed, explicit))
}

pub(crate) fn decrypter(
    suite: SupportedCipherSuite,
    secrets: ConnectionTrafficSecrets,
) -> Result<Box<dyn MessageDecrypter>, RecordError> {
    let (key, iv) = key_iv(suite, secrets)?;
    Ok(match suite {
        SupportedCipherSuite::Tls13(s) => s.aead_alg.decrypter(key, iv),
        SupportedCipherSuite::Tls12(s) => {
            let (fixed, _) = tls12_iv_parts(s)?;
            s.aead_alg.decrypter(key, &iv.as_ref()[..fixed])
        }
    })
}

pub(crate) fn encrypter(
    suite: SupportedCipherSuite,
    secrets: ConnectionTrafficSecrets,
) -> Result<Box<dyn MessageEncrypter>, RecordError> {
    let (key, iv) = key_iv(suite, secrets)?;
    Ok(match suite {
        SupportedCipherSuite::Tls13(s) => s.aead_alg.encrypter(key, iv),
        SupportedCipherSuite::Tls12(s) => {
            let (fixed, explicit) = tls12_iv_parts(s)?;
            let iv = iv.as_ref();
            s.aead_alg
                .encrypter(key, &iv[..fixed], &iv[fixed..fixed + explicit])
        }
    })
}
