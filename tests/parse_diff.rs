//! Differential test of ringest's parser and JSON renderer against syslog-ng
//! 3.38's own parser (issue 14).
//!
//! The corpus (tests/parse_diff/corpus.txt, from gen_corpus.py: public
//! samples with their sources, then generated variants of every case) goes
//! octet-counted to a real syslog-ng, which writes `$(format-json --scope
//! rfc5424 --scope nv-pairs)` per message, and through ringest's framing
//! decoder, `parse::parse(.., Auto)` and `parse::json::render_json` — the
//! functions the writer will call. Both JSON lines are read back and
//! compared on PRI, facility, severity, timestamp, host, app, pid, msgid,
//! SD and message. Every disagreement must belong to a class in
//! parse_diff/classes.rs, each a row of engine/src/parse/DIFFERENCES.md;
//! any other fails the test with both sides printed.
//!
//! The same binary also checks that parsing, filtering and rendering the
//! corpus allocates nothing per message (a counting global allocator).

#[path = "parse_diff/classes.rs"]
mod classes;
#[path = "parse_diff/corpus.rs"]
mod corpus;
#[path = "parse_diff/syslog_ng.rs"]
mod syslog_ng;
#[path = "parse_diff/view.rs"]
mod view;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

use e2e::json;
use e2e::server::temp_dir;
use ringest::framing::{Decoder, FramingMode, OversizePolicy};
use ringest::parse::emit::{render_rfc3164, render_rfc5424, EmitContext};
use ringest::parse::json::{render_json, JsonOptions};
use ringest::parse::path::push_component;
use ringest::parse::{parse, Filter, FilterSpec, ParseMode};

use classes::{Case, Kind, CLASSES};

/// Counts allocations made by the current thread.
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the
// counter is a const-initialised thread-local that never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const FRAMES_MIN: usize = 2_000;
/// ringest's default max_message_bytes is larger than any corpus line.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

fn differences_md() -> String {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/src/parse/DIFFERENCES.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `LEN SP frame` for every frame.
fn octet_counted(frames: &[corpus::Entry]) -> Vec<u8> {
    let mut stream = Vec::new();
    for e in frames {
        stream.extend_from_slice(format!("{} ", e.frame.len()).as_bytes());
        stream.extend_from_slice(&e.frame);
    }
    stream
}

/// The frames as ringest's framing decoder cuts them from the same stream.
fn ringest_frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut decoder = Decoder::new(
        FramingMode::Auto,
        MAX_MESSAGE_BYTES,
        OversizePolicy::Truncate,
    );
    let mut frames = Vec::new();
    decoder
        .feed(stream, &mut |f| frames.push(f.bytes.to_vec()))
        .expect("corpus stream decodes");
    decoder
        .finish(&mut |f| frames.push(f.bytes.to_vec()))
        .expect("stream ends on a frame");
    frames
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes.escape_ascii().collect::<Vec<u8>>()).into_owned()
}

#[test]
fn corpus_has_2000_frames_each_with_a_named_source() {
    let entries = corpus::load();
    assert!(
        entries.len() >= FRAMES_MIN,
        "{} frames, want {FRAMES_MIN}",
        entries.len()
    );
    let sources: std::collections::BTreeSet<&str> =
        entries.iter().map(|e| e.source.as_str()).collect();
    let public = sources
        .iter()
        .filter(|s| !s.starts_with("generated"))
        .count();
    assert!(public >= 20, "only {public} public sources");
    assert!(entries.iter().all(|e| !e.frame.is_empty()));
}

#[test]
fn ringest_agrees_with_syslog_ng_or_the_difference_is_explained() {
    let entries = corpus::load();
    let stream = octet_counted(&entries);
    let frames = ringest_frames(&stream);
    assert_eq!(frames.len(), entries.len());
    let dir = temp_dir("parse-diff");
    let sng_lines = syslog_ng::run(&dir, &stream, entries.len());
    let doc = differences_md();

    let mut exact = 0usize;
    let mut representation_only = 0usize;
    let mut both_refuse = 0usize;
    let mut per_class: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut unexplained = Vec::new();
    // Public samples: (frames, frames that agree).
    let mut public = (0usize, 0usize);
    let mut line = Vec::new();
    for ((entry, frame), sng_line) in entries.iter().zip(&frames).zip(&sng_lines) {
        let msg = parse(frame, ParseMode::Auto);
        line.clear();
        render_json(&mut line, b"{", &msg, JsonOptions::default());
        let our_json = json::parse(line.strip_suffix(b"\n").expect("a line")).unwrap_or_else(|e| {
            panic!(
                "corpus line {}: ringest wrote bad JSON ({e}): {}",
                entry.line,
                show(&line)
            )
        });
        let their_json = json::parse(sng_line).unwrap_or_else(|e| {
            panic!(
                "corpus line {}: syslog-ng line unreadable ({e}): {}",
                entry.line,
                show(sng_line)
            )
        });
        let mut ours = view::ours(&our_json);
        let mut theirs = view::theirs(&their_json);
        if ours.rejected && theirs.rejected {
            both_refuse += 1;
        }
        let case = Case { frame, msg };
        let mut applied = Vec::new();
        for class in CLASSES {
            if (class.apply)(&case, &mut ours, &mut theirs) {
                applied.push(class);
            }
        }
        let diff = ours.diff(&theirs);
        if !diff.is_empty() {
            unexplained.push(format!(
                "corpus line {} ({}), fields {diff:?}\n  frame:    {}\n  ringest:  {}\n  syslog-ng: {}\n  classes applied: {:?}",
                entry.line,
                entry.source,
                show(frame),
                show(&line),
                show(sng_line),
                applied.iter().map(|c| c.id).collect::<Vec<_>>()
            ));
            continue;
        }
        for class in &applied {
            let counts = per_class.entry(class.id).or_insert((0, entry.line));
            counts.0 += 1;
        }
        let deliberate = applied.iter().any(|c| c.kind == Kind::Deliberate);
        match deliberate {
            false if applied.is_empty() => exact += 1,
            false => representation_only += 1,
            true => {}
        }
        if !entry.source.starts_with("generated") {
            public.0 += 1;
            public.1 += usize::from(!deliberate);
        }
    }

    let total = entries.len();
    let agree = exact + representation_only;
    eprintln!("parse_diff: {total} frames; syslog-ng 3.38 and ringest agree on {agree} ({:.1}%): {exact} exactly (of which {both_refuse} both refuse), {representation_only} once the representation is mapped", 100.0 * agree as f64 / total as f64);
    eprintln!(
        "parse_diff: public samples: {} of {} agree",
        public.1, public.0
    );
    eprintln!("| class | kind | frames | first corpus line |");
    eprintln!("|---|---|---|---|");
    for class in CLASSES {
        let (n, first) = per_class.get(class.id).copied().unwrap_or((0, 0));
        eprintln!("| `{}` | {:?} | {n} | {first} |", class.id, class.kind);
    }
    assert!(
        unexplained.is_empty(),
        "{} of {total} frames disagree for no known reason:\n{}",
        unexplained.len(),
        unexplained
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for class in CLASSES {
        assert!(
            doc.contains(&format!("`{}`", class.id)),
            "class `{}` is not explained in engine/src/parse/DIFFERENCES.md",
            class.id
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parse_filter_and_render_allocate_nothing_per_message() {
    let entries = corpus::load();
    let filter = Filter::new(&FilterSpec {
        severity: Some("warning"),
        facility: &["auth", "authpriv", "local7"],
        host: &["web-*", "*.example.org"],
        app: &["sshd", "%*"],
    })
    .expect("filter");
    let ctx = EmitContext {
        received_unix_ns: 1_795_651_200_123_456_789,
        fallback_host: b"192.0.2.7",
        extra_sd: b"[tls@32473 cn=\"client\"]",
    };
    let mut out = Vec::with_capacity(1 << 20);
    let mut matched = 0usize;
    let before = ALLOCATIONS.with(Cell::get);
    drop(std::hint::black_box(vec![0u8; 16]));
    assert_eq!(
        ALLOCATIONS.with(Cell::get),
        before + 1,
        "the counter counts"
    );
    let before = ALLOCATIONS.with(Cell::get);
    for entry in &entries {
        let msg = parse(&entry.frame, ParseMode::Auto);
        matched += usize::from(filter.matches(&msg));
        out.clear();
        render_json(
            &mut out,
            b"{\"source\":\"s\"",
            &msg,
            JsonOptions { include_raw: true },
        );
        render_rfc5424(&mut out, &msg, &ctx);
        render_rfc3164(&mut out, &msg, &ctx);
        push_component(&mut out, msg.host.unwrap_or_default());
        push_component(&mut out, msg.app.unwrap_or_default());
    }
    let allocations = ALLOCATIONS.with(Cell::get) - before;
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations over {} frames",
        entries.len()
    );
    assert!(
        matched > 0 && matched < entries.len(),
        "the filter took {matched}"
    );
}
