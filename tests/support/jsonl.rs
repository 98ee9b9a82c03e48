//! The engine's `format = "json"` output read back: one flat JSON object per
//! line whose values are strings or arrays of strings (numbers, booleans
//! and null are accepted too), through the tests' JSON reader
//! ([`crate::json`]), which rejects anything that is not valid JSON, so a
//! writer bug (a raw control byte, a bad escape, a missing comma, a key
//! written twice) fails the test.
//!
//! Strings are text here: a byte that is not UTF-8 (the engine's `\udcXX`
//! escape) reads as U+FFFD.

use std::path::Path;

use crate::json::{self, Json};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Array(Vec<Value>),
    /// A number, `true`, `false` or `null`, as written.
    Other(String),
}

/// One output line: its fields in the order they were written.
#[derive(Debug, Clone, Default)]
pub struct Object {
    fields: Vec<(String, Value)>,
}

impl Object {
    fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The keys in the order they were written.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_str())
    }

    /// A string field, if present and a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// A string field that must be present.
    pub fn req(&self, key: &str) -> &str {
        self.str(key)
            .unwrap_or_else(|| panic!("field {key:?} missing or not a string in {self:?}"))
    }

    /// An array of strings; empty if absent.
    pub fn strs(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::Str(s) => s.clone(),
                    other => panic!("{key}: not a string: {other:?}"),
                })
                .collect(),
            Some(other) => panic!("{key}: not an array: {other:?}"),
            None => Vec::new(),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Parses every line of a JSON-lines file (missing file: no lines).
pub fn read_file(path: &Path) -> Vec<Object> {
    let text = match std::fs::read(path) {
        Ok(b) => b,
        Err(_) => return Vec::new(),
    };
    let text = String::from_utf8(text).expect("json output must be UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "json output must end with a newline"
    );
    text.lines()
        .enumerate()
        .map(|(i, l)| parse_line(l).unwrap_or_else(|e| panic!("line {}: {e}: {l}", i + 1)))
        .collect()
}

pub fn parse_line(line: &str) -> Result<Object, String> {
    let Json::Obj(fields) = json::parse(line.as_bytes())? else {
        return Err("not a JSON object".into());
    };
    let fields = fields
        .into_iter()
        .map(|(k, v)| flat(v).map(|v| (text(k), v)))
        .collect::<Result<_, String>>()?;
    Ok(Object { fields })
}

fn flat(v: Json) -> Result<Value, String> {
    match v {
        Json::Str(s) => Ok(Value::Str(text(s))),
        Json::Arr(items) => items
            .into_iter()
            .map(flat)
            .collect::<Result<_, _>>()
            .map(Value::Array),
        Json::Other(o) => Ok(Value::Other(o)),
        Json::Obj(_) => Err("nested objects are not expected".into()),
    }
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_engine_lines_and_rejects_broken_ones() {
        let o = parse_line(
            r#"{"received":"2026-11-26T00:00:00.000000001Z","source":"tls","client_sans":["a","b"],"message":"x\"y\\z\n\u0001\udcff"}"#,
        )
        .unwrap();
        assert_eq!(o.req("source"), "tls");
        assert_eq!(o.strs("client_sans"), ["a", "b"]);
        assert_eq!(o.req("message"), "x\"y\\z\n\u{1}\u{fffd}");
        assert_eq!(
            o.keys().collect::<Vec<_>>(),
            ["received", "source", "client_sans", "message"]
        );
        assert!(parse_line("{\"a\":\"b\"").is_err());
        assert!(parse_line("{\"a\":\"b\u{1}\"}").is_err());
        assert!(parse_line("{\"a\":\"b\",\"a\":\"c\"}").is_err());
        assert!(parse_line("{\"a\":bogus}").is_err());
        assert!(parse_line("{\"a\":{\"b\":\"c\"}}").is_err());
        assert!(parse_line("[\"a\"]").is_err());
    }
}
