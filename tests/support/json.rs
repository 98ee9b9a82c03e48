//! The tests' one JSON reader, for ringest's output and its peers' alike
//! (serde_json parses; this keeps what the comparisons need that
//! `serde_json::Value` would lose):
//! - strings are bytes: ringest writes a byte that is not UTF-8 as the lone
//!   surrogate `\udcXX`, which reads back as that byte, so a comparison sees
//!   what was sent; any other lone surrogate is an error;
//! - keys stay in the order written, and a duplicate key is an error (not
//!   the last one winning);
//! - a number, `true`, `false` or `null` keeps the text it was written as.
//!
//! Anything that is not valid JSON (a raw control byte, a missing comma,
//! bytes after the value) is an error, so a renderer bug fails the test.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Str(Vec<u8>),
    /// Fields in the order written.
    Obj(Vec<(Vec<u8>, Json)>),
    Arr(Vec<Json>),
    /// A number, `true`, `false` or `null`, as written.
    Other(String),
}

impl Json {
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields
                .iter()
                .find(|(k, _)| k == key.as_bytes())
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&[u8]> {
        match self.get(key) {
            Some(Json::Str(s)) => Some(s),
            _ => None,
        }
    }
}

/// One JSON value (a line without its newline).
pub fn parse(line: &[u8]) -> Result<Json, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    // serde_json checks the whole line is one valid value and nothing else.
    let raw: &RawValue = serde_json::from_str(text).map_err(|e| e.to_string())?;
    value(raw.get())
}

/// `text` is one value serde_json has already checked. Each container's
/// members are taken as raw text and read again by their first byte: only
/// a string read as bytes keeps a lone surrogate, and only raw text keeps a
/// number as written.
fn value(text: &str) -> Result<Json, String> {
    let mut reader = serde_json::Deserializer::from_str(text);
    let read = match text.as_bytes().first() {
        Some(b'"') => reader.deserialize_bytes(BytesVisitor).map(Json::Str),
        Some(b'{' | b'[') => reader.deserialize_any(Container),
        _ => return Ok(Json::Other(text.to_string())),
    };
    read.map_err(|e| e.to_string())
}

/// serde_json hands a string's lone surrogates over as WTF-8: three bytes,
/// `ED A0..BF xx`, which UTF-8 never holds, so each one here came from an
/// escape. ringest's `\udc80`..`\udcff` become the byte they stand for.
fn surrogates_to_bytes(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        match (b, s.get(i + 1..i + 3)) {
            (0xED, Some(&[hi @ 0xA0..=0xBF, lo])) => {
                let unit = 0xD000 | (u32::from(hi & 0x3F) << 6) | u32::from(lo & 0x3F);
                if !(0xDC80..=0xDCFF).contains(&unit) {
                    return Err(format!("lone surrogate \\u{unit:04x}"));
                }
                out.push((unit & 0xFF) as u8);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

struct BytesVisitor;

impl Visitor<'_> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        surrogates_to_bytes(v).map_err(E::custom)
    }
}

/// An object key, as bytes like any string.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Vec<u8>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(BytesVisitor)
    }
}

/// An object or an array: each member is taken as raw text and read again
/// by [`value`].
struct Container;

impl<'de> Visitor<'de> for Container {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object or an array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields: Vec<(Vec<u8>, Json)> = Vec::new();
        while let Some(key) = map.next_key_seed(Key)? {
            let raw: &RawValue = map.next_value()?;
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format!(
                    "duplicate key {:?}",
                    String::from_utf8_lossy(&key)
                )));
            }
            let v = value(raw.get()).map_err(de::Error::custom)?;
            fields.push((key, v));
        }
        Ok(Json::Obj(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            items.push(value(raw.get()).map_err(de::Error::custom)?);
        }
        Ok(Json::Arr(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: &[u8]) -> Json {
        Json::Str(b.to_vec())
    }

    #[test]
    fn ringest_non_utf8_escape_reads_back_as_the_byte() {
        let j = parse(br#"{"m":"a\udc80b\udcff","k\udcfe":"\ud83d\ude00\u00e9"}"#).unwrap();
        assert_eq!(j.str("m"), Some(&b"a\x80b\xff"[..]));
        let Json::Obj(fields) = &j else {
            panic!("{j:?}")
        };
        assert_eq!(fields[1].0, b"k\xfe");
        assert_eq!(fields[1].1, s("😀é".as_bytes()));
    }

    #[test]
    fn other_lone_surrogates_are_errors() {
        for bad in [
            r#""\udc7f""#,
            r#""\ud800""#,
            r#""\ud800x""#,
            r#""\ud800\u0041""#,
            r#""\udd00""#,
        ] {
            let e = parse(bad.as_bytes()).expect_err(bad);
            assert!(e.contains("surrogate"), "{bad}: {e}");
        }
    }

    #[test]
    fn key_order_nesting_and_number_text_are_kept() {
        let j =
            parse(br#" {"z":{"b":"1","a":[]},"a":[1.50,-0,1e3,true,null,"x"],"e":{}} "#).unwrap();
        let Json::Obj(fields) = &j else {
            panic!("{j:?}")
        };
        let keys: Vec<&[u8]> = fields.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(keys, [&b"z"[..], b"a", b"e"]);
        assert_eq!(
            j.get("z"),
            Some(&Json::Obj(vec![
                (b"b".to_vec(), s(b"1")),
                (b"a".to_vec(), Json::Arr(vec![])),
            ]))
        );
        let other = |t: &str| Json::Other(t.into());
        assert_eq!(
            j.get("a"),
            Some(&Json::Arr(vec![
                other("1.50"),
                other("-0"),
                other("1e3"),
                other("true"),
                other("null"),
                s(b"x"),
            ]))
        );
        assert_eq!(j.get("e"), Some(&Json::Obj(vec![])));
        assert_eq!(parse(b"\"\\n\\t\\\"\\\\\\/\"").unwrap(), s(b"\n\t\"\\/"));
    }

    #[test]
    fn invalid_json_is_an_error() {
        for bad in [
            &b"{\"a\":\"b\""[..],
            b"{\"a\":\"b\x01\"}",
            b"{\"a\":\"b\",\"a\":\"c\"}",
            b"{\"z\":{\"a\":1,\"a\":2}}",
            b"{\"a\":bogus}",
            b"{\"a\":\"b\" \"c\":1}",
            b"{\"a\":1} x",
            b"[1,]",
            b"+1",
            b"\"\\q\"",
            b"\"\xff\"",
            b"",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
