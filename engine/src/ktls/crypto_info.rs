//! rustls traffic secrets → the kernel's `struct tls12_crypto_info_*`.
//!
//! The layouts are those of `include/uapi/linux/tls.h`. The kernel uses the
//! same structs for TLS 1.2 and TLS 1.3; only `version` differs.
//!
//! How rustls's 12-byte IV maps onto the kernel's fields:
//! - AES-GCM: the kernel splits the nonce into a 4-byte `salt` and an 8-byte
//!   `iv`. TLS 1.3 (RFC 8446 §5.3): nonce = (salt ‖ iv) XOR seq, so the split
//!   is `salt = iv[..4]`, `iv = iv[4..]`. TLS 1.2 (RFC 5288): the salt is the
//!   4-byte implicit part; rustls's `iv` for TLS 1.2 GCM is implicit ‖ 8 bytes
//!   that seed the explicit nonce, so the same split is right: the receiver
//!   reads the explicit nonce off the wire, and the sender's kernel starts its
//!   explicit nonces at `iv[4..]` and counts up from there.
//! - ChaCha20-Poly1305 (RFC 7905): no salt; the whole 12-byte IV goes in `iv`.
//! - `rec_seq` is the next record's sequence number, big-endian.

use std::fmt;
use std::mem::size_of;

use rustls::{ConnectionTrafficSecrets, ProtocolVersion};
use zeroize::Zeroize;

/// `TLS_1_2_VERSION` in linux/tls.h.
const TLS_1_2_VERSION: u16 = 0x0303;
/// `TLS_1_3_VERSION` in linux/tls.h.
const TLS_1_3_VERSION: u16 = 0x0304;
/// `TLS_CIPHER_AES_GCM_128`.
const TLS_CIPHER_AES_GCM_128: u16 = 51;
/// `TLS_CIPHER_AES_GCM_256`.
const TLS_CIPHER_AES_GCM_256: u16 = 52;
/// `TLS_CIPHER_CHACHA20_POLY1305`.
const TLS_CIPHER_CHACHA20_POLY1305: u16 = 54;

/// The TLS version as the kernel knows it. Only these two exist in kTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KtlsVersion {
    Tls12,
    Tls13,
}

impl KtlsVersion {
    pub const ALL: [KtlsVersion; 2] = [KtlsVersion::Tls12, KtlsVersion::Tls13];

    pub fn from_rustls(version: ProtocolVersion) -> Option<Self> {
        match version {
            ProtocolVersion::TLSv1_2 => Some(KtlsVersion::Tls12),
            ProtocolVersion::TLSv1_3 => Some(KtlsVersion::Tls13),
            _ => None,
        }
    }

    fn kernel_id(self) -> u16 {
        match self {
            KtlsVersion::Tls12 => TLS_1_2_VERSION,
            KtlsVersion::Tls13 => TLS_1_3_VERSION,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KtlsVersion::Tls12 => "tls1.2",
            KtlsVersion::Tls13 => "tls1.3",
        }
    }
}

/// The AEADs that both rustls and kTLS implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KtlsCipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

impl KtlsCipher {
    pub const ALL: [KtlsCipher; 3] = [
        KtlsCipher::Aes128Gcm,
        KtlsCipher::Aes256Gcm,
        KtlsCipher::Chacha20Poly1305,
    ];

    fn kernel_id(self) -> u16 {
        match self {
            KtlsCipher::Aes128Gcm => TLS_CIPHER_AES_GCM_128,
            KtlsCipher::Aes256Gcm => TLS_CIPHER_AES_GCM_256,
            KtlsCipher::Chacha20Poly1305 => TLS_CIPHER_CHACHA20_POLY1305,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KtlsCipher::Aes128Gcm => "aes128gcm",
            KtlsCipher::Aes256Gcm => "aes256gcm",
            KtlsCipher::Chacha20Poly1305 => "chacha20",
        }
    }
}

/// Why a negotiated connection cannot be described to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// kTLS knows TLS 1.2 and 1.3 only.
    Version(ProtocolVersion),
    /// A `ConnectionTrafficSecrets` variant added to rustls after this code.
    Cipher,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Version(v) => write!(f, "kTLS has no {v:?}"),
            Unsupported::Cipher => f.write_str("kTLS has no such cipher"),
        }
    }
}

impl std::error::Error for Unsupported {}

/// `struct tls_crypto_info`: the header of every variant.
#[repr(C)]
#[derive(Clone, Copy)]
struct Header {
    version: u16,
    cipher_type: u16,
}

/// `struct tls12_crypto_info_aes_gcm_128`.
#[repr(C)]
#[derive(Clone, Copy)]
struct AesGcm128 {
    info: Header,
    iv: [u8; 8],
    key: [u8; 16],
    salt: [u8; 4],
    rec_seq: [u8; 8],
}

/// `struct tls12_crypto_info_aes_gcm_256`.
#[repr(C)]
#[derive(Clone, Copy)]
struct AesGcm256 {
    info: Header,
    iv: [u8; 8],
    key: [u8; 32],
    salt: [u8; 4],
    rec_seq: [u8; 8],
}

/// `struct tls12_crypto_info_chacha20_poly1305` (its `salt[0]` takes no room).
#[repr(C)]
#[derive(Clone, Copy)]
struct Chacha20Poly1305 {
    info: Header,
    iv: [u8; 12],
    key: [u8; 32],
    rec_seq: [u8; 8],
}

// The kernel rejects any optlen other than sizeof(struct); these are the C
// sizes, and equal to the sum of the fields, so the structs have no padding
// (which `as_bytes` relies on).
const _: () = assert!(size_of::<AesGcm128>() == 40);
const _: () = assert!(size_of::<AesGcm128>() == 4 + 8 + 16 + 4 + 8);
const _: () = assert!(size_of::<AesGcm256>() == 56);
const _: () = assert!(size_of::<AesGcm256>() == 4 + 8 + 32 + 4 + 8);
const _: () = assert!(size_of::<Chacha20Poly1305>() == 56);
const _: () = assert!(size_of::<Chacha20Poly1305>() == 4 + 12 + 32 + 8);

#[derive(Clone, Copy)]
enum Layout {
    AesGcm128(AesGcm128),
    AesGcm256(AesGcm256),
    Chacha20Poly1305(Chacha20Poly1305),
}

/// One direction's keys in the kernel's format: the `optval` of
/// `setsockopt(SOL_TLS, TLS_TX | TLS_RX)`. Zeroed on drop; `Debug` prints
/// no key material.
pub struct CryptoInfo {
    version: KtlsVersion,
    cipher: KtlsCipher,
    seq: u64,
    layout: Layout,
}

impl CryptoInfo {
    /// `seq` is the sequence number of the next record in this direction, as
    /// rustls reports it in `ExtractedSecrets` or `update_rx_secret`.
    pub fn new(
        version: ProtocolVersion,
        seq: u64,
        secrets: &ConnectionTrafficSecrets,
    ) -> Result<Self, Unsupported> {
        let version = KtlsVersion::from_rustls(version).ok_or(Unsupported::Version(version))?;
        let (cipher, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
                (KtlsCipher::Aes128Gcm, key.as_ref(), iv.as_ref())
            }
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                (KtlsCipher::Aes256Gcm, key.as_ref(), iv.as_ref())
            }
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (KtlsCipher::Chacha20Poly1305, key.as_ref(), iv.as_ref())
            }
            _ => return Err(Unsupported::Cipher),
        };
        Self::from_parts(version, cipher, seq, key, iv)
    }

    /// Builds from raw parts: `iv` is the full 12-byte nonce IV (as rustls
    /// keeps it), `key` is 16 or 32 bytes as the cipher needs. The probe uses
    /// this with dummy keys.
    pub fn from_parts(
        version: KtlsVersion,
        cipher: KtlsCipher,
        seq: u64,
        key: &[u8],
        iv: &[u8],
    ) -> Result<Self, Unsupported> {
        let info = Header {
            version: version.kernel_id(),
            cipher_type: cipher.kernel_id(),
        };
        let rec_seq = seq.to_be_bytes();
        let iv: &[u8; 12] = iv.try_into().map_err(|_| Unsupported::Cipher)?;
        let layout = match cipher {
            KtlsCipher::Aes128Gcm => {
                let key: [u8; 16] = key.try_into().map_err(|_| Unsupported::Cipher)?;
                let mut l = AesGcm128 {
                    info,
                    iv: [0; 8],
                    key,
                    salt: [0; 4],
                    rec_seq,
                };
                l.salt.copy_from_slice(&iv[..4]);
                l.iv.copy_from_slice(&iv[4..]);
                Layout::AesGcm128(l)
            }
            KtlsCipher::Aes256Gcm => {
                let key: [u8; 32] = key.try_into().map_err(|_| Unsupported::Cipher)?;
                let mut l = AesGcm256 {
                    info,
                    iv: [0; 8],
                    key,
                    salt: [0; 4],
                    rec_seq,
                };
                l.salt.copy_from_slice(&iv[..4]);
                l.iv.copy_from_slice(&iv[4..]);
                Layout::AesGcm256(l)
            }
            KtlsCipher::Chacha20Poly1305 => {
                let key: [u8; 32] = key.try_into().map_err(|_| Unsupported::Cipher)?;
                Layout::Chacha20Poly1305(Chacha20Poly1305 {
                    info,
                    iv: *iv,
                    key,
                    rec_seq,
                })
            }
        };
        Ok(Self {
            version,
            cipher,
            seq,
            layout,
        })
    }

    pub fn version(&self) -> KtlsVersion {
        self.version
    }

    pub fn cipher(&self) -> KtlsCipher {
        self.cipher
    }

    /// The sequence number of the first record the kernel will handle.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The struct as the kernel reads it; its length is the `optlen`.
    pub fn as_bytes(&self) -> &[u8] {
        let (ptr, len) = self.raw();
        // SAFETY: `ptr` points at a live `#[repr(C)]` struct of `len` bytes
        // that is borrowed for the lifetime of the returned slice. Its fields
        // are u16s and byte arrays, and the const asserts above show it has
        // no padding, so every byte is initialised.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }

    fn raw(&self) -> (*const u8, usize) {
        match &self.layout {
            Layout::AesGcm128(l) => ((l as *const AesGcm128).cast(), size_of::<AesGcm128>()),
            Layout::AesGcm256(l) => ((l as *const AesGcm256).cast(), size_of::<AesGcm256>()),
            Layout::Chacha20Poly1305(l) => (
                (l as *const Chacha20Poly1305).cast(),
                size_of::<Chacha20Poly1305>(),
            ),
        }
    }
}

impl CryptoInfo {
    /// Zeroes the key material: key, IV, salt and record sequence. Through
    /// `&mut self` and `zeroize`'s volatile writes, so the compiler can
    /// neither drop the wipe as a dead store nor see a write through a
    /// shared borrow (the old pointer cast from `&self` was undefined
    /// behaviour).
    fn wipe(&mut self) {
        match &mut self.layout {
            Layout::AesGcm128(l) => {
                l.iv.zeroize();
                l.key.zeroize();
                l.salt.zeroize();
                l.rec_seq.zeroize();
            }
            Layout::AesGcm256(l) => {
                l.iv.zeroize();
                l.key.zeroize();
                l.salt.zeroize();
                l.rec_seq.zeroize();
            }
            Layout::Chacha20Poly1305(l) => {
                l.iv.zeroize();
                l.key.zeroize();
                l.rec_seq.zeroize();
            }
        }
    }
}

impl Drop for CryptoInfo {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl fmt::Debug for CryptoInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoInfo")
            .field("version", &self.version)
            .field("cipher", &self.cipher)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::cipher::{AeadKey, Iv};

    fn key(n: usize) -> Vec<u8> {
        (0..n as u8).map(|i| 0xA0u8.wrapping_add(i)).collect()
    }

    const IV: [u8; 12] = [
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
    ];
    const SEQ: u64 = 0x0102_0304_0506_0708;

    /// rustls's public API makes only 32-byte `AeadKey`s; a real AES-128
    /// secret has 16 bytes, so the AES-128 cases go through `from_parts`,
    /// which `new` calls with `key.as_ref()`.
    fn aead_key32(bytes: &[u8]) -> AeadKey {
        AeadKey::from(<[u8; 32]>::try_from(bytes).unwrap())
    }

    #[test]
    fn aes_gcm_128_tls13_layout() {
        let k = key(16);
        let info = CryptoInfo::from_parts(KtlsVersion::Tls13, KtlsCipher::Aes128Gcm, SEQ, &k, &IV)
            .unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&0x0304u16.to_ne_bytes()); // version
        want.extend_from_slice(&51u16.to_ne_bytes()); // cipher_type
        want.extend_from_slice(&IV[4..]); // iv: the 8 bytes after the salt
        want.extend_from_slice(&k); // key
        want.extend_from_slice(&IV[..4]); // salt: the first 4 bytes
        want.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // rec_seq, big-endian
        assert_eq!(info.as_bytes(), &want[..]);
        // And literally, as x86_64 lays out the u16s:
        #[cfg(target_endian = "little")]
        assert_eq!(
            info.as_bytes(),
            &[
                0x04, 0x03, 51, 0, // header
                0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, // iv
                0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, // key
                0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, //
                0x10, 0x11, 0x12, 0x13, // salt
                1, 2, 3, 4, 5, 6, 7, 8, // rec_seq
            ][..]
        );
    }

    #[test]
    fn aes_gcm_128_tls12_layout() {
        // ECDHE-RSA-AES128-GCM and ECDHE-ECDSA-AES128-GCM give the same
        // secrets; the kernel cares only about the AEAD.
        let k = key(16);
        let info =
            CryptoInfo::from_parts(KtlsVersion::Tls12, KtlsCipher::Aes128Gcm, 7, &k, &IV).unwrap();
        let b = info.as_bytes();
        assert_eq!(b.len(), 40);
        assert_eq!(&b[0..2], &0x0303u16.to_ne_bytes());
        assert_eq!(&b[2..4], &51u16.to_ne_bytes());
        assert_eq!(&b[4..12], &IV[4..]);
        assert_eq!(&b[12..28], &k[..]);
        assert_eq!(&b[28..32], &IV[..4]);
        assert_eq!(&b[32..40], &[0, 0, 0, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn aes_gcm_256_layouts() {
        let k = key(32);
        for (v, id) in [
            (ProtocolVersion::TLSv1_2, 0x0303u16),
            (ProtocolVersion::TLSv1_3, 0x0304u16),
        ] {
            let secrets = ConnectionTrafficSecrets::Aes256Gcm {
                key: aead_key32(&k),
                iv: Iv::from(IV),
            };
            let info = CryptoInfo::new(v, SEQ, &secrets).unwrap();
            let b = info.as_bytes();
            assert_eq!(b.len(), 56);
            assert_eq!(&b[0..2], &id.to_ne_bytes());
            assert_eq!(&b[2..4], &52u16.to_ne_bytes());
            assert_eq!(&b[4..12], &IV[4..]);
            assert_eq!(&b[12..44], &k[..]);
            assert_eq!(&b[44..48], &IV[..4]);
            assert_eq!(&b[48..56], &SEQ.to_be_bytes());
        }
    }

    #[test]
    fn chacha20_poly1305_layouts() {
        let k = key(32);
        for (v, id) in [
            (ProtocolVersion::TLSv1_2, 0x0303u16),
            (ProtocolVersion::TLSv1_3, 0x0304u16),
        ] {
            let secrets = ConnectionTrafficSecrets::Chacha20Poly1305 {
                key: aead_key32(&k),
                iv: Iv::from(IV),
            };
            let info = CryptoInfo::new(v, 0, &secrets).unwrap();
            let b = info.as_bytes();
            assert_eq!(b.len(), 56);
            assert_eq!(&b[0..2], &id.to_ne_bytes());
            assert_eq!(&b[2..4], &54u16.to_ne_bytes());
            assert_eq!(&b[4..16], &IV[..], "whole IV, no salt");
            assert_eq!(&b[16..48], &k[..]);
            assert_eq!(&b[48..56], &[0; 8]);
        }
    }

    #[test]
    fn rejects_other_versions_and_wrong_key_lengths() {
        let secrets = ConnectionTrafficSecrets::Aes256Gcm {
            key: aead_key32(&key(32)),
            iv: Iv::from(IV),
        };
        assert_eq!(
            CryptoInfo::new(ProtocolVersion::TLSv1_1, 0, &secrets).unwrap_err(),
            Unsupported::Version(ProtocolVersion::TLSv1_1)
        );
        // A 32-byte key labelled AES-128 is a mismatch, never truncated.
        let wrong = ConnectionTrafficSecrets::Aes128Gcm {
            key: aead_key32(&key(32)),
            iv: Iv::from(IV),
        };
        assert_eq!(
            CryptoInfo::new(ProtocolVersion::TLSv1_3, 0, &wrong).unwrap_err(),
            Unsupported::Cipher
        );
        assert!(CryptoInfo::from_parts(
            KtlsVersion::Tls13,
            KtlsCipher::Chacha20Poly1305,
            0,
            &key(32),
            &IV[..8]
        )
        .is_err());
    }

    /// Drop wipes every secret byte (through `&mut self`, see `wipe`) and
    /// keeps the header, for each layout.
    #[test]
    fn wipe_zeroes_key_iv_salt_and_sequence() {
        for cipher in KtlsCipher::ALL {
            let k = key(if cipher == KtlsCipher::Aes128Gcm {
                16
            } else {
                32
            });
            let mut info =
                CryptoInfo::from_parts(KtlsVersion::Tls13, cipher, SEQ, &k, &IV).unwrap();
            let header = info.as_bytes()[..4].to_vec();
            info.wipe();
            assert_eq!(&info.as_bytes()[..4], &header[..], "{cipher:?}");
            assert!(
                info.as_bytes()[4..].iter().all(|&b| b == 0),
                "{cipher:?}: {:?}",
                info.as_bytes()
            );
        }
    }

    #[test]
    fn debug_shows_no_key() {
        let info =
            CryptoInfo::from_parts(KtlsVersion::Tls13, KtlsCipher::Aes128Gcm, 3, &key(16), &IV)
                .unwrap();
        let s = format!("{info:?}");
        assert!(s.contains("Aes128Gcm") && s.contains("seq: 3"), "{s}");
        assert!(!s.contains("160") && !s.contains("a0"), "{s}"); // 0xA0, first key byte
    }
}
