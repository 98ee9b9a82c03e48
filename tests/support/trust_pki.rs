//! CAs, leaves, CRLs and openssl fingerprints for the TLS trust tests: the
//! workspace's one PKI builder, in `testkit`.
pub use testkit::{
    openssl_fingerprint, openssl_rehash, self_signed, Ca, KeyAlg, Leaf, LeafSpec, Ymd,
};
