//! The in-place record reader (engine/src/record/) on arbitrary bytes, under
//! fixed keys (see `fuzz/src/det_tls.rs`), so corpus entries made of real
//! records decrypt and the fuzzer reaches what lies behind the AEAD check.
//!
//! Input: suite byte (one of six), a count n, n piece sizes (u16), then the
//! wire bytes. The stream goes to one reader whole and to a second reader
//! (same keys) cut into pieces. Checked on every input:
//! - no panic, in the reader or in rustls/aws-lc under it;
//! - the contract checked by `record_run::feed` at every call;
//! - both readers deliver the same plaintext and the same stop event, fail
//!   with the same error (label only for bad_record_header, whose fields
//!   show the bytes seen so far), and without an error report the same
//!   record, KeyUpdate and consumed-byte counts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringest_fuzz::det_tls::handshake;
use ringest_fuzz::record_run::feed;
use ringest_fuzz::{cut, Input};

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let suite = usize::from(input.byte());
    let n = usize::from(input.byte() % 8);
    let mut sizes: Vec<usize> = (0..n).map(|_| usize::from(input.u16() % 20_000)).collect();
    if sizes.is_empty() {
        sizes.push(1);
    }
    let wire = input.rest();

    let whole = feed(&mut handshake(suite).reader, &[wire]);
    let pieces = feed(&mut handshake(suite).reader, &cut(wire, &sizes));
    assert_eq!(
        whole.error_label(),
        pieces.error_label(),
        "{whole:?} vs {pieces:?}"
    );
    if whole.error_label() != Some("bad_record_header") {
        assert_eq!(whole.error, pieces.error);
    }
    assert_eq!(whole.plaintext, pieces.plaintext, "cut at {sizes:?}");
    assert_eq!(whole.event, pieces.event, "cut at {sizes:?}");
    // Counts come with a successful call only: on an error, the whole
    // stream's single call reports none, while earlier pieces did.
    if whole.error.is_none() {
        assert_eq!(
            (whole.records, whole.key_updates, whole.consumed),
            (pieces.records, pieces.key_updates, pieces.consumed),
            "cut at {sizes:?}"
        );
        assert_eq!(whole.key_update_requested, pieces.key_update_requested);
    }
});
