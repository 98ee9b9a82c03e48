//! Decrypt cost per record, printed. Run in release:
//!
//! ```text
//! cargo test --release -- --ignored --nocapture record_decrypt_cost
//! ```
//!
//! For comparison it also runs the same client records through an
//! unconverted `UnbufferedServerConnection` (rustls's own path, which copies
//! every plaintext into a fresh Vec).

use std::time::{Duration, Instant};

use super::harness::*;

/// Bytes handed to `process` per call, like one receive buffer.
const RECV_CHUNK_BYTES: usize = 64 * 1024;
/// Ciphertext per measurement pass (kept modest: the machine is shared).
const PASS_BYTES: usize = 8 << 20;
const PASSES: usize = 5;

struct Figure {
    ns_per_record: f64,
    gbit_per_s: f64,
}

fn report(label: &str, payload_len: usize, records: usize, best: Duration) -> Figure {
    let ns = best.as_nanos() as f64 / records as f64;
    let fig = Figure {
        ns_per_record: ns,
        gbit_per_s: (payload_len as f64 * 8.0) / ns,
    };
    println!(
        "{label:<44} {payload_len:>6} B/record: {:>8.1} ns/record  {:>6.2} Gbit/s plaintext",
        fig.ns_per_record, fig.gbit_per_s
    );
    fig
}

/// Ours: forged client records, decrypted in place in 64 KiB slices.
fn ours(case: Case, payload_len: usize) -> Figure {
    let records = (PASS_BYTES / payload_len).max(1);
    let payload = message(3, payload_len);
    let mut best = Duration::MAX;
    for _ in 0..PASSES {
        let h = handshake(case, HandshakeOpts::default());
        let mut reader = h.reader;
        let mut f = Forger::from_client(h.client, case.suite);
        let mut wire = Vec::with_capacity(records * (payload_len + 40));
        for _ in 0..records {
            wire.extend_from_slice(&f.app_data(&payload));
        }
        let mut delivered = 0usize;
        let start = Instant::now();
        let mut pos = 0;
        let mut carry = 0;
        while pos < wire.len() {
            // Whole-buffer semantics without a copy: process the window
            // [pos, pos + chunk) and continue from what was consumed.
            let end = (pos + carry + RECV_CHUNK_BYTES).min(wire.len());
            let progress = reader
                .process(&mut wire[pos..end], &mut |p: &[u8]| delivered += p.len())
                .expect("bench process");
            pos += progress.consumed;
            carry = end - pos;
            if end == wire.len() && progress.consumed == 0 {
                break;
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(delivered, records * payload_len);
        best = best.min(elapsed);
    }
    report(
        &format!("record::RecordReader {:?}", case.suite.suite()),
        payload_len,
        records,
        best,
    )
}

/// rustls's unbuffered server on the same kind of records.
fn rustls_unbuffered(case: Case, payload_len: usize) -> Figure {
    use rustls::unbuffered::ConnectionState;
    let records = (PASS_BYTES / payload_len).max(1);
    let payload = message(3, payload_len);
    let mut best = Duration::MAX;
    for _ in 0..PASSES {
        let mut hs = handshake_unconverted(case, HandshakeOpts::default());
        let mut wire = std::mem::take(&mut hs.inbuf);
        for _ in 0..records {
            wire.extend_from_slice(&client_send(&mut hs.client, &payload));
        }
        let mut delivered = 0usize;
        let start = Instant::now();
        let mut pos = 0;
        let mut carry = 0;
        while pos < wire.len() {
            let end = (pos + carry + RECV_CHUNK_BYTES).min(wire.len());
            let window = &mut wire[pos..end];
            let status = hs.server.process_tls_records(window);
            let mut discard = status.discard;
            match status.state.expect("rustls state") {
                ConnectionState::ReadTraffic(mut t) => {
                    while let Some(r) = t.next_record() {
                        let r = r.expect("record");
                        discard += r.discard;
                        delivered += r.payload.len();
                    }
                }
                ConnectionState::WriteTraffic(_) => {
                    if end == wire.len() && discard == 0 {
                        break;
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
            pos += discard;
            carry = end - pos;
        }
        let elapsed = start.elapsed();
        assert_eq!(delivered, records * payload_len);
        best = best.min(elapsed);
    }
    report(
        &format!("rustls unbuffered {:?}", case.suite.suite()),
        payload_len,
        records,
        best,
    )
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn record_decrypt_cost() {
    if cfg!(debug_assertions) {
        println!("(debug build: figures are meaningless, use --release)");
    }
    for case in [TLS13_AES128, TLS13_AES256, TLS13_CHACHA, TLS12_ECDSA_AES256] {
        let big = ours(case, 16_384);
        let small = ours(case, 300);
        println!(
            "  => {:.3} µs per 300-byte message packed in 16 KiB records; {:.3} µs per 300-byte record",
            big.ns_per_record * 300.0 / 16_384.0 / 1000.0,
            small.ns_per_record / 1000.0
        );
        if case.suite.suite() == TLS13_AES128.suite.suite() {
            rustls_unbuffered(case, 16_384);
            rustls_unbuffered(case, 300);
        }
    }
}
