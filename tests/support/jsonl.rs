//! A strict reader for the engine's `format = "json"` output: one flat JSON
//! object per line whose values are strings or arrays of strings (numbers,
//! booleans and null are accepted too). Small on purpose, so the tests need
//! no JSON crate; it rejects anything that is not valid JSON, so a writer
//! bug (a raw control byte, a bad escape, a missing comma) fails the test.
//!
//! String escapes are decoded; `\udcXX` lone surrogates (the engine's
//! escape for a byte that is not UTF-8) decode to U+FFFD.

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Array(Vec<Value>),
    /// A number, `true`, `false` or `null`, as written.
    Other(String),
}

/// One output line.
#[derive(Debug, Clone, Default)]
pub struct Object {
    pub fields: BTreeMap<String, Value>,
    /// Keys in the order they were written.
    pub keys: Vec<String>,
}

impl Object {
    /// A string field, if present and a string.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.fields.get(key) {
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
        match self.fields.get(key) {
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
        self.fields.contains_key(key)
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
    let mut p = Parser {
        s: line.as_bytes(),
        i: 0,
    };
    p.ws();
    p.expect(b'{')?;
    let mut obj = Object::default();
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            let value = p.value()?;
            if obj.fields.insert(key.clone(), value).is_some() {
                return Err(format!("duplicate key {key:?}"));
            }
            obj.keys.push(key);
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                other => return Err(format!("expected , or }} at {}, got {other:?}", p.i)),
            }
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing bytes at {}", p.i));
    }
    Ok(obj)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.i += 1;
        b
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, want: u8) -> Result<(), String> {
        match self.next() {
            Some(b) if b == want => Ok(()),
            other => Err(format!(
                "expected {:?} at {}, got {other:?}",
                want as char,
                self.i - 1
            )),
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                loop {
                    self.ws();
                    items.push(self.value()?);
                    self.ws();
                    match self.next() {
                        Some(b',') => continue,
                        Some(b']') => return Ok(Value::Array(items)),
                        other => return Err(format!("expected , or ] got {other:?}")),
                    }
                }
            }
            Some(b'{') => Err("nested objects are not expected".into()),
            _ => {
                let start = self.i;
                while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                {
                    self.i += 1;
                }
                let word =
                    std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                let ok = matches!(word, "true" | "false" | "null")
                    || (!word.is_empty() && word.parse::<f64>().is_ok());
                if ok {
                    Ok(Value::Other(word.to_string()))
                } else {
                    Err(format!("bad value {word:?} at {start}"))
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("bad \\u escape at {}", self.i))?;
        self.i += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.i;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.i += 1;
            }
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?);
            match self.next() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let hi = self.hex4()?;
                            if (0xd800..0xdc00).contains(&hi)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                self.i += 2;
                                let lo = self.hex4()?;
                                let cp = 0x10000
                                    + ((hi - 0xd800) << 10)
                                    + (lo.wrapping_sub(0xdc00) & 0x3ff);
                                char::from_u32(cp).unwrap_or('\u{fffd}')
                            } else {
                                char::from_u32(hi).unwrap_or('\u{fffd}')
                            }
                        }
                        other => return Err(format!("bad escape {other:?} at {}", self.i - 1)),
                    };
                    out.push(c);
                }
                Some(b) => {
                    return Err(format!(
                        "raw control byte {b:#04x} in string at {}",
                        self.i - 1
                    ))
                }
                None => return Err("unterminated string".into()),
            }
        }
    }
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
        assert_eq!(o.keys[0], "received");
        assert!(parse_line("{\"a\":\"b\"").is_err());
        assert!(parse_line("{\"a\":\"b\u{1}\"}").is_err());
        assert!(parse_line("{\"a\":\"b\",\"a\":\"c\"}").is_err());
        assert!(parse_line("{\"a\":bogus}").is_err());
    }
}
