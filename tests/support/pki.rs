//! The standard test PKI: the workspace's one builder, in `testkit`.
pub use testkit::Pki;
