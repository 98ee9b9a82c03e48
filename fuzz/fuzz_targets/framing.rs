//! The frame decoder (engine/src/framing.rs) against the whole-stream model
//! in `fuzz/src/framing_model.rs`, the input fed in pieces chosen by the
//! fuzzer, whole, and one byte at a time.
//!
//! Input: mode/policy byte, max_message_bytes byte, a count n, n piece
//! sizes, then the stream. Checked on every input:
//! - no panic (and the decoder's debug assertions hold: fuzz builds have them);
//! - every frame is at most max_message_bytes long, and exactly that long
//!   when it is marked truncated;
//! - the partial buffer never exceeds max_message_bytes;
//! - frames, result and counters (all but copied_bytes) equal the model's,
//!   for every way of cutting the stream;
//! - the `frames` counter equals the frames emitted; errors are sticky.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringest::framing::{Decoder, DecoderCounters, Frame, FramingMode, OversizePolicy};
use ringest_fuzz::framing_model::{self, Outcome};
use ringest_fuzz::{cut, Input};

fn run(mode: FramingMode, max: usize, policy: OversizePolicy, pieces: &[&[u8]]) -> Outcome {
    let mut d = Decoder::new(mode, max, policy);
    let mut frames = Vec::new();
    let mut emit = |f: Frame<'_>| {
        assert!(
            f.bytes.len() <= max,
            "frame of {} > max {max}",
            f.bytes.len()
        );
        assert!(
            !f.truncated || f.bytes.len() == max,
            "truncated frame not cut to max"
        );
        frames.push((f.bytes.to_vec(), f.truncated));
    };
    let mut result = Ok(());
    for piece in pieces {
        result = d.feed(piece, &mut emit);
        assert!(d.buffered_bytes() <= max, "partial buffer over max");
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = d.finish(&mut emit);
    }
    if let Err(e) = &result {
        // Sticky: nothing more is emitted, the same error comes back.
        let mut none = |_: Frame<'_>| panic!("emitted after an error");
        assert_eq!(d.feed(b"1 a\n", &mut none).as_ref(), Err(e));
        assert_eq!(d.finish(&mut none).as_ref(), Err(e));
    }
    let counters = DecoderCounters {
        copied_bytes: 0,
        ..d.take_counters()
    };
    assert_eq!(counters.frames, frames.len() as u64);
    Outcome {
        frames,
        result,
        counters,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let mode = [
        FramingMode::OctetCounted,
        FramingMode::Newline,
        FramingMode::Auto,
    ][usize::from(flags & 3) % 3];
    let policy = if flags & 4 == 0 {
        OversizePolicy::Truncate
    } else {
        OversizePolicy::Drop
    };
    let max = usize::from(input.byte());
    let n = usize::from(input.byte() % 16);
    let sizes: Vec<usize> = input.take(n).iter().map(|&b| usize::from(b)).collect();
    let stream = input.rest();

    let want = framing_model::decode(mode, max, policy, stream);
    let whole = run(mode, max, policy, &[stream]);
    assert_eq!(whole, want, "whole stream differs from the model");
    if !sizes.is_empty() {
        let pieces = run(mode, max, policy, &cut(stream, &sizes));
        assert_eq!(
            pieces, want,
            "stream cut at {sizes:?} differs from the model"
        );
    }
    let bytes = run(mode, max, policy, &cut(stream, &[1]));
    assert_eq!(
        bytes, want,
        "stream fed byte by byte differs from the model"
    );
});
