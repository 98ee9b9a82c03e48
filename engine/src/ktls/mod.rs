//! Kernel TLS (kTLS) offload after the rustls handshake.
//!
//! rustls does the handshake; afterwards the symmetric keys move into the
//! kernel (`TCP_ULP "tls"`, then `TLS_TX` / `TLS_RX`) and the socket yields
//! plaintext. This module holds every piece of that switch, and nothing that
//! moves bytes for a connection:
//!
//! | file             | role                                                              |
//! |------------------|-------------------------------------------------------------------|
//! | `probe.rs`       | start-up probe: is `tls` there, which ciphers, can TLS 1.3 rekey  |
//! | `policy.rs`      | sans-IO: `ktls = auto/on/off` × probe × suite → offload or not    |
//! | `crypto_info.rs` | rustls secrets → the kernel's `tls12_crypto_info_*` bytes         |
//! | `handoff.rs`     | sans-IO: where the last whole TLS record ends in a buffer         |
//! | `sockopt.rs`     | the syscalls: enable, rekey, `recvmsg` with the record type, alerts |
//! | `control.rs`     | sans-IO: parse a non-data record and say what to do with it       |
//!
//! Every `unsafe` block of the kTLS path is in `sockopt.rs` and
//! `crypto_info.rs`, each with a `// SAFETY:` comment.
//!
//! The order a connection goes through is written down in
//! `tests/ktls-vm/NOTES.md`; `engine/examples/ktls_selftest/` runs it end
//! to end in a guest kernel that has kTLS. The engine drives it from
//! `conn.rs` and `conn/offload.rs` (the per-connection phases, sans-IO) and
//! `shard/` (which receive to arm); `tests/ktls-vm/engine.sh` checks the
//! real binary in the guest.

mod control;
mod crypto_info;
mod handoff;
mod policy;
mod probe;
mod sockopt;

pub use control::{
    action_for, parse_control_record, ControlAction, ControlError, ControlRecord,
    CONTENT_TYPE_ALERT, CONTENT_TYPE_APPLICATION_DATA, CONTENT_TYPE_CHANGE_CIPHER_SPEC,
    CONTENT_TYPE_HANDSHAKE,
};
pub use crypto_info::{CryptoInfo, KtlsCipher, KtlsVersion, Unsupported};
pub use handoff::{record_boundary, RecordBoundary};
pub use policy::{
    check_mode_at_startup, decide, decide_handoff, suite_cipher, Decision, KtlsMode,
    UserspaceReason,
};
pub use probe::{CipherSet, KtlsSupport, RekeyEvidence};
pub use sockopt::{
    enable, recv_record, send_alert, send_close_notify, send_record, set_rx, set_tx, set_ulp,
    CONTROL_RECORD_BYTES_MIN,
};
