//! The corpus file: one frame per line, its source named by the last
//! `#@ source:` line above it (format in gen_corpus.py).

use std::path::{Path, PathBuf};

pub struct Entry {
    /// 1-based line number in the corpus file.
    pub line: usize,
    pub source: String,
    pub frame: Vec<u8>,
}

pub fn path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("parse_diff/corpus.txt")
}

pub fn load() -> Vec<Entry> {
    let text = std::fs::read(path()).expect("read tests/parse_diff/corpus.txt");
    let mut source = String::new();
    let mut entries = Vec::new();
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if let Some(name) = line.strip_prefix(b"#@ source: ") {
            source = String::from_utf8_lossy(name).into_owned();
        } else if line.starts_with(b"#") || line.is_empty() {
            continue;
        } else {
            assert!(
                !source.is_empty(),
                "corpus line {} has no #@ source above it",
                i + 1
            );
            let frame = match line.strip_prefix(b"~") {
                Some(escaped) => unescape(escaped, i + 1),
                None => line.to_vec(),
            };
            entries.push(Entry {
                line: i + 1,
                source: source.clone(),
                frame,
            });
        }
    }
    entries
}

/// `\xNN` and `\\`; nothing else is an escape.
fn unescape(s: &[u8], line: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match (s[i], s.get(i + 1)) {
            (b'\\', Some(b'\\')) => {
                out.push(b'\\');
                i += 2;
            }
            (b'\\', Some(b'x')) => {
                let hex = std::str::from_utf8(&s[i + 2..i + 4]).expect("hex");
                out.push(
                    u8::from_str_radix(hex, 16)
                        .unwrap_or_else(|_| panic!("line {line}: bad \\x escape")),
                );
                i += 4;
            }
            (b'\\', _) => panic!("corpus line {line}: lone backslash in an escaped line"),
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}
