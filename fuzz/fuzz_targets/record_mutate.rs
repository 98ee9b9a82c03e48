//! The in-place record reader on valid encrypted records, then mutated.
//!
//! The input is a script: a suite, up to 64 records to encrypt under the
//! client's real key schedule (application data of any size up to past
//! 2^14, empty records, alerts, KeyUpdates that rekey the sender, other
//! handshake messages, any inner content type), then up to 4 mutations of
//! the encrypted wire (bit flip, byte overwrite, truncation, insertion,
//! record swap, record replay), then the sizes of the pieces it arrives in.
//!
//! `record_model` says what the reader must do with the records that the
//! mutations left intact. Checked on every input:
//! - the contract checked by `record_run::feed` at every call;
//! - authenticity: the plaintext delivered is a prefix of what was sent;
//! - the intact records give exactly the model's plaintext, and the
//!   model's stop event or error if it has one within them;
//! - with no mutation, the whole outcome is the model's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringest_fuzz::det_tls::{handshake, is_tls13};
use ringest_fuzz::record_model::{self, Rec};
use ringest_fuzz::record_run::feed;
use ringest_fuzz::{cut, Input};
use rustls::ContentType;

const RECORDS_MAX: usize = 64;

fn script(input: &mut Input<'_>, tls13: bool) -> Vec<Rec> {
    let mut recs = Vec::new();
    while !input.is_empty() && recs.len() < RECORDS_MAX {
        let op = input.byte();
        match op % 12 {
            0..=3 => {
                let len = usize::from(input.byte());
                recs.push(Rec::AppData(input.take(len).to_vec()));
            }
            // Around the 2^14 plaintext limit.
            4 => {
                let len = (1 << 14) - 8 + usize::from(input.byte() % 16);
                recs.push(Rec::AppData(vec![op; len]));
            }
            // Runs of empty records, past the limit of 32 in a row.
            5 => {
                for _ in 0..input.byte() % 40 {
                    recs.push(Rec::AppData(Vec::new()));
                }
            }
            6 => {
                let level = [1, 2, input.byte()][usize::from(op / 12 % 3)];
                recs.push(Rec::Alert(vec![level, input.byte()]));
            }
            7 => {
                let len = usize::from(input.byte() % 4);
                recs.push(Rec::Alert(input.take(len).to_vec()));
            }
            8 if tls13 => recs.push(Rec::KeyUpdate(op & 0x80 != 0)),
            8 => recs.push(Rec::Handshake(vec![24, 0, 0, 1, 0])),
            9 => {
                let len = usize::from(input.byte() % 8);
                recs.push(Rec::Handshake(input.take(len).to_vec()));
            }
            10 => {
                let typ = input.byte();
                let len = usize::from(input.byte() % 8);
                recs.push(Rec::Raw(typ, input.take(len).to_vec()));
            }
            // Runs of KeyUpdates, past the limit of 32 without data.
            _ if tls13 => {
                for _ in 0..input.byte() % 40 {
                    recs.push(Rec::KeyUpdate(false));
                }
            }
            _ => recs.push(Rec::AppData(b"<13>tls12".to_vec())),
        }
    }
    recs
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let suite = usize::from(input.byte());
    let script_len = usize::from(input.u16() % 4096);
    let mut script_input = Input::new(input.take(script_len));
    let mut peers = handshake(suite);
    let tls13 = is_tls13(peers.forger.suite());
    let recs = script(&mut script_input, tls13);

    // Encrypt; remember where each record ends on the wire.
    let mut wire = Vec::new();
    let mut ends = Vec::new();
    for rec in &recs {
        let bytes = match rec {
            Rec::AppData(p) => peers.forger.app_data(p),
            Rec::Alert(p) => peers.forger.record(ContentType::Alert, p),
            Rec::Handshake(p) => peers.forger.record(ContentType::Handshake, p),
            Rec::KeyUpdate(requested) => peers
                .forger
                .record(ContentType::Handshake, &[24, 0, 0, 1, u8::from(*requested)]),
            Rec::Raw(typ, p) => peers.forger.record(ContentType::from(*typ), p),
        };
        if record_model::is_key_update(rec, tls13) {
            peers.forger.rekey();
        }
        wire.extend_from_slice(&bytes);
        ends.push(wire.len());
    }
    let starts: Vec<usize> = std::iter::once(0).chain(ends.iter().copied()).collect();

    // Mutate; `first_touched` is the first wire byte whose value or place changed.
    let mut first_touched = wire.len();
    let mut mutated = false;
    for _ in 0..input.byte() % 5 {
        if wire.is_empty() {
            break;
        }
        let kind = input.byte();
        let pos = usize::from(input.u16()) % wire.len();
        match kind % 6 {
            0 => wire[pos] ^= 1 << (kind / 8 % 8),
            1 => wire[pos] = input.byte(),
            2 => wire.truncate(pos),
            3 => wire.insert(pos, input.byte()),
            // Swap two records, or replay one after another (first, while
            // the record boundaries are still those of `ends`).
            k if !mutated && recs.len() >= 2 => {
                let a = pos % recs.len();
                let b = (a + 1 + usize::from(input.byte()) % (recs.len() - 1)) % recs.len();
                let (a, b) = (a.min(b), a.max(b));
                let rec_a = wire[starts[a]..ends[a]].to_vec();
                let rec_b = wire[starts[b]..ends[b]].to_vec();
                if k == 4 {
                    wire.splice(starts[b]..ends[b], rec_a);
                    wire.splice(starts[a]..ends[a], rec_b);
                    first_touched = starts[a];
                } else {
                    wire.splice(ends[b]..ends[b], rec_a);
                    first_touched = ends[b];
                }
                mutated = true;
                continue;
            }
            _ => continue,
        }
        mutated = true;
        first_touched = first_touched.min(pos);
    }
    let intact = ends.iter().take_while(|&&end| end <= first_touched).count();

    let n = usize::from(input.byte() % 4);
    let mut sizes: Vec<usize> = (0..n).map(|_| usize::from(input.u16()) + 1).collect();
    if sizes.is_empty() {
        sizes.push(wire.len().max(1));
    }
    let got = feed(&mut peers.reader, &cut(&wire, &sizes));

    let sent = record_model::sent_plaintext(&recs, tls13);
    assert!(
        sent.starts_with(&got.plaintext),
        "delivered plaintext that was never sent"
    );
    let want = record_model::run(&recs[..intact], tls13);
    if want.stopped() || !mutated {
        assert_eq!(got.plaintext, want.plaintext, "plaintext");
        assert_eq!(got.event, want.event, "event");
        assert_eq!(got.error_label(), want.error, "error");
        if want.error.is_none() {
            assert_eq!(got.records as usize, want.records, "records");
            assert_eq!(got.key_updates, want.key_updates, "key updates");
            assert_eq!(got.key_update_requested, want.key_update_requested);
        }
        if !want.stopped() {
            assert_eq!(got.consumed, wire.len(), "records left unconsumed");
        }
    } else {
        assert!(
            got.plaintext.starts_with(&want.plaintext),
            "intact records lost"
        );
    }
});
