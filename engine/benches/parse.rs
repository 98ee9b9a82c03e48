//! Parse + JSON render cost per message, on a fixed corpus, against the
//! writer's raw JSON line (escaping only) on the same messages.
//!
//! ```text
//! cargo bench -p ringest --bench parse
//! RINGEST_BENCH_MESSAGES=200000 cargo bench -p ringest --bench parse
//! ```
//! Prints ns/message for each step and the difference that issue 14's goal
//! is about (parse plus JSON output against raw output; goal: at most
//! 0.15 CPU-µs more per message). Single-threaded, no IO: run it on a quiet
//! machine, several times, and report the median.

use std::hint::black_box;
use std::time::Instant;

use ringest::parse::json::{escape_bytes, render_json, JsonOptions};
use ringest::parse::{parse, Filter, FilterSpec, ParseMode};

/// Shapes seen in practice, each about as long as the bench's 300-byte
/// messages once the filler is added.
const SHAPES: [&str; 8] = [
    "<165>1 2026-11-29T18:00:00.123456+01:00 web-01.example.org app 4242 ID47 - ",
    "<165>1 2026-11-29T18:00:00.123Z web-01 evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][meta sequenceId=\"29\"] ",
    "<38>Nov 29 18:00:00 web-01 sshd[811]: ",
    "<86>2026-11-29T18:00:01.000001+01:00 web-01 sudo: ",
    "<189>123: *Nov 29 18:46:11.123: %SYS-5-CONFIG_I: ",
    "<14>1 2026-11-29T18:00:00.719Z fw-1 RT_FLOW - RT_FLOW_SESSION_CREATE [junos@2636.1.1.1.2.26 source-address=\"192.0.2.1\" source-port=\"50000\" destination-address=\"198.51.100.1\" destination-port=\"443\"] ",
    "<13>Nov 29 18:00:00 host app: caf\u{e9} ",
    "<30>Nov 29 18:00:00 web-01 systemd[1]: ",
];
const MESSAGE_BYTES: usize = 300;

fn corpus() -> Vec<Vec<u8>> {
    SHAPES
        .iter()
        .map(|head| {
            let mut m = head.as_bytes().to_vec();
            let mut i = 0u8;
            while m.len() < MESSAGE_BYTES {
                m.push(b"abcdefghij klmnopqrstuvwxyz \"quoted\" 0123456789"[usize::from(i % 46)]);
                i = i.wrapping_add(7);
            }
            m
        })
        .collect()
}

/// ns per message for `step` over `messages` messages cycling the corpus.
fn measure(corpus: &[Vec<u8>], messages: usize, mut step: impl FnMut(&[u8])) -> f64 {
    // Warm up caches and the output buffer's capacity.
    for m in corpus.iter().cycle().take(corpus.len() * 100) {
        step(m);
    }
    let start = Instant::now();
    for m in corpus.iter().cycle().take(messages) {
        step(black_box(m));
    }
    start.elapsed().as_nanos() as f64 / messages as f64
}

fn main() {
    let messages: usize = std::env::var("RINGEST_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let corpus = corpus();
    let meta =
        br#"{"received":"2026-11-29T18:00:00.123456789Z","source":"tls","peer":"192.0.2.7:50514""#;
    let filter = Filter::new(&FilterSpec {
        severity: Some("warning"),
        facility: &["auth", "authpriv"],
        host: &["web-*"],
        app: &[],
    })
    .expect("filter");
    let mut out = Vec::with_capacity(1 << 16);

    let raw = measure(&corpus, messages, |m| {
        out.clear();
        out.extend_from_slice(meta);
        out.extend_from_slice(b",\"message\":\"");
        escape_bytes(&mut out, m);
        out.extend_from_slice(b"\"}\n");
        black_box(&out);
    });
    let parse_only = measure(&corpus, messages, |m| {
        black_box(parse(m, ParseMode::Auto));
    });
    let parse_filter = measure(&corpus, messages, |m| {
        black_box(filter.matches(&parse(m, ParseMode::Auto)));
    });
    let parse_json = measure(&corpus, messages, |m| {
        out.clear();
        render_json(
            &mut out,
            meta,
            &parse(m, ParseMode::Auto),
            JsonOptions::default(),
        );
        black_box(&out);
    });

    println!(
        "parse bench: {messages} messages of {MESSAGE_BYTES} bytes, {} shapes",
        corpus.len()
    );
    println!("| step | ns/message |");
    println!("|---|---|");
    println!("| raw JSON line (escape only, today's writer) | {raw:.1} |");
    println!("| parse (auto) | {parse_only:.1} |");
    println!("| parse + filter | {parse_filter:.1} |");
    println!("| parse + JSON with parsed fields | {parse_json:.1} |");
    println!(
        "| parse + JSON minus raw JSON (issue 14 goal: <= 150) | {:.1} |",
        parse_json - raw
    );
}
