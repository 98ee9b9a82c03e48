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

/// Checks the secrets against the suite: aws-lc-rs panics on a wrong-length
/// key, and a mismatch here would be a wiring bug, not peer input, but it
/// must still not panic. [`LazyKey::new`] runs this, so a key built later
/// from checked secrets cannot fail.
fn check(
    suite: SupportedCipherSuite,
    secrets: &ConnectionTrafficSecrets,
) -> Result<(), RecordError> {
    let key = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, .. }
        | ConnectionTrafficSecrets::Aes256Gcm { key, .. }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, .. } => key,
        _ => return Err(RecordError::UnsupportedSecrets),
    };
    let key_len = match suite {
        SupportedCipherSuite::Tls13(s) => s.aead_alg.key_len(),
        SupportedCipherSuite::Tls12(s) => {
            tls12_iv_parts(s)?;
            s.aead_alg.key_block_shape().enc_key_len
        }
    };
    if key.as_ref().len() != key_len {
        return Err(RecordError::UnsupportedSecrets);
    }
    Ok(())
}

/// Splits the secrets, checked against the suite first.
fn key_iv(
    suite: SupportedCipherSuite,
    secrets: ConnectionTrafficSecrets,
) -> Result<(rustls::crypto::cipher::AeadKey, rustls::crypto::cipher::Iv), RecordError> {
    check(suite, &secrets)?;
    let (key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (key, iv),
        _ => return Err(RecordError::UnsupportedSecrets),
    };
    debug_assert_eq!(iv.as_ref().len(), NONCE_LEN);
    Ok((key, iv))
}

/// A record protection key, made from its traffic secrets when first used.
///
/// An AES-GCM key in aws-lc costs about 700 bytes of heap (its AES key
/// schedule and GHASH table), and a connection has two. A syslog connection
/// may sit idle for hours: its receiving key is needed at its first record,
/// its sending key only for a close_notify, an alert or a KeyUpdate answer.
/// Until then the secrets wait here (56 bytes inline; rustls zeroes the key
/// on drop). `engine/tests/conn_memory.rs` counts what an idle connection
/// holds.
pub(crate) struct LazyKey<T> {
    state: KeyState<T>,
}

enum KeyState<T> {
    Secrets(ConnectionTrafficSecrets),
    Ready(T),
    /// Only while a key is being built, and after that failed (which
    /// secrets checked by [`LazyKey::new`] cannot make it do).
    Unusable,
}

impl<T> LazyKey<T> {
    /// Checks the secrets now, so that a bad pairing fails at the
    /// handover, not at the first record.
    pub(crate) fn new(
        suite: SupportedCipherSuite,
        secrets: ConnectionTrafficSecrets,
    ) -> Result<Self, RecordError> {
        check(suite, &secrets)?;
        Ok(Self {
            state: KeyState::Secrets(secrets),
        })
    }

    /// The key, built by `make` (from `suite` and the secrets) on first use.
    pub(crate) fn get(
        &mut self,
        suite: SupportedCipherSuite,
        make: fn(SupportedCipherSuite, ConnectionTrafficSecrets) -> Result<T, RecordError>,
    ) -> Result<&mut T, RecordError> {
        if let KeyState::Secrets(_) = self.state {
            if let KeyState::Secrets(secrets) =
                std::mem::replace(&mut self.state, KeyState::Unusable)
            {
                self.state = KeyState::Ready(make(suite, secrets)?);
            }
        }
        match &mut self.state {
            KeyState::Ready(key) => Ok(key),
            KeyState::Secrets(_) | KeyState::Unusable => Err(RecordError::UnsupportedSecrets),
        }
    }

    /// Whether the key was built (for tests of what an idle connection holds).
    #[cfg(test)]
    pub(crate) fn is_built(&self) -> bool {
        matches!(self.state, KeyState::Ready(_))
    }
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
