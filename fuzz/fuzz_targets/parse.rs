//! The syslog parsers and everything that renders their result, on
//! arbitrary frames. Checked on every input, in every parse mode:
//! - no panic (parse, JSON, RFC 5424/3164 re-emission, path components);
//! - every field borrows from the frame (a slice inside it);
//! - a frame that fails to parse comes back whole as the message;
//! - the JSON line is one valid JSON object ending in `\n`, with `message`
//!   (lone surrogates `\udcXX`, the lossless form of non-UTF-8 bytes, aside);
//! - a host or app name made into a path component is always safe (no
//!   `/`, no leading `.`, not empty, bounded).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringest::parse::emit::{render_rfc3164, render_rfc5424, EmitContext};
use ringest::parse::json::{render_json, JsonOptions};
use ringest::parse::path::{is_safe_component, push_component};
use ringest::parse::{parse, ParseMode};

fn inside(frame: &[u8], field: Option<&[u8]>) -> bool {
    field.is_none_or(|f| {
        let (s, e) = (frame.as_ptr() as usize, frame.as_ptr() as usize + frame.len());
        let (fs, fe) = (f.as_ptr() as usize, f.as_ptr() as usize + f.len());
        f.is_empty() || (fs >= s && fe <= e)
    })
}

fuzz_target!(|frame: &[u8]| {
    let mut out = Vec::with_capacity(frame.len() * 2 + 256);
    for mode in ParseMode::ALL {
        let msg = parse(frame, mode);
        for f in [msg.host, msg.app, msg.procid, msg.msgid, msg.seq, Some(msg.message)] {
            assert!(inside(frame, f), "a field does not borrow from the frame");
        }
        if msg.error.is_some() {
            assert_eq!(msg.message, frame, "a failed parse keeps the frame whole");
        }
        out.clear();
        render_json(&mut out, b"{\"source\":\"f\"", &msg, JsonOptions { include_raw: true });
        assert_eq!(out.last(), Some(&b'\n'));
        // Bytes that are not UTF-8 are written as lone surrogates `\udcXX`
        // (lossless, documented); serde_json refuses those, so the copy it
        // checks has them as `\u00XX`: the same structure.
        let checked = String::from_utf8_lossy(&out[..out.len() - 1]).replace("\\udc", "\\u00");
        let v: serde_json::Value = serde_json::from_str(&checked)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(&out)));
        assert!(v.get("message").is_some());
        let ctx = EmitContext {
            received_unix_ns: 1_764_000_000_000_000_000,
            fallback_host: b"127.0.0.1",
            extra_sd: b"",
        };
        out.clear();
        render_rfc5424(&mut out, &msg, &ctx);
        out.clear();
        render_rfc3164(&mut out, &msg, &ctx);
        for name in [msg.host, msg.app].into_iter().flatten() {
            out.clear();
            push_component(&mut out, name);
            assert!(is_safe_component(&out), "unsafe component {out:?}");
        }
    }
});
