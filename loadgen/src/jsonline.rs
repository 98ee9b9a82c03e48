//! Takes one string field out of a one-line JSON object, as bytes (sans-IO).
//!
//! Writers such as ringest escape a byte of invalid UTF-8 as the lone low
//! surrogate `\udcXX` (Python's surrogateescape): that decodes back to the
//! byte 0xXX here, so the message is recovered losslessly. A general JSON
//! parser would reject those escapes, and would build the whole object when
//! only one field is needed.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonError {
    NotAnObject,
    Syntax,
    BadEscape,
    /// A lone surrogate that is not a surrogate-escaped byte (\udc80-\udcff).
    LoneSurrogate,
    /// Nesting deeper than `DEPTH_MAX`.
    TooDeep,
}

impl JsonError {
    pub fn as_str(self) -> &'static str {
        match self {
            JsonError::NotAnObject => "json_not_an_object",
            JsonError::Syntax => "json_syntax",
            JsonError::BadEscape => "json_bad_escape",
            JsonError::LoneSurrogate => "json_lone_surrogate",
            JsonError::TooDeep => "json_too_deep",
        }
    }
}

const DEPTH_MAX: usize = 128;

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn expect(&mut self, b: u8) -> Result<(), JsonError> {
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(JsonError::Syntax)
        }
    }

    /// Decodes the string at the cursor (which is on its opening quote).
    fn string(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        self.expect(b'"')?;
        loop {
            let rest = &self.s[self.i..];
            let at = memchr::memchr2(b'"', b'\\', rest).ok_or(JsonError::Syntax)?;
            out.extend_from_slice(&rest[..at]);
            self.i += at;
            if self.s[self.i] == b'"' {
                self.i += 1;
                return Ok(());
            }
            self.i += 1; // backslash
            let e = self.peek().ok_or(JsonError::BadEscape)?;
            self.i += 1;
            match e {
                b'"' => out.push(b'"'),
                b'\\' => out.push(b'\\'),
                b'/' => out.push(b'/'),
                b'b' => out.push(0x08),
                b'f' => out.push(0x0c),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'u' => self.unicode(out)?,
                _ => return Err(JsonError::BadEscape),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self.s.get(self.i..self.i + 4).ok_or(JsonError::BadEscape)?;
        let h = std::str::from_utf8(h).map_err(|_| JsonError::BadEscape)?;
        let v = u32::from_str_radix(h, 16).map_err(|_| JsonError::BadEscape)?;
        self.i += 4;
        Ok(v)
    }

    /// After `\u`: a code point, a surrogate pair, or a surrogate-escaped byte.
    fn unicode(&mut self, out: &mut Vec<u8>) -> Result<(), JsonError> {
        let u = self.hex4()?;
        let cp = match u {
            0xD800..=0xDBFF => {
                // A high surrogate must be followed by a low one.
                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                    return Err(JsonError::LoneSurrogate);
                }
                self.i += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(JsonError::LoneSurrogate);
                }
                0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC80..=0xDCFF => {
                out.push((u - 0xDC00) as u8);
                return Ok(());
            }
            0xDC00..=0xDFFF => return Err(JsonError::LoneSurrogate),
            _ => u,
        };
        let c = char::from_u32(cp).ok_or(JsonError::BadEscape)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        Ok(())
    }

    /// Skips any JSON value.
    fn skip_value(&mut self, depth: usize) -> Result<(), JsonError> {
        if depth > DEPTH_MAX {
            return Err(JsonError::TooDeep);
        }
        self.ws();
        match self.peek().ok_or(JsonError::Syntax)? {
            b'"' => {
                let mut sink = Vec::new();
                self.string(&mut sink)
            }
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.i += 1;
                self.ws();
                if self.peek() == Some(close) {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.ws();
                        let mut sink = Vec::new();
                        self.string(&mut sink)?;
                        self.ws();
                        self.expect(b':')?;
                    }
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(c) if c == close => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return Err(JsonError::Syntax),
                    }
                }
            }
            _ => {
                // number, true, false, null
                let start = self.i;
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.i += 1;
                }
                if self.i == start {
                    Err(JsonError::Syntax)
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The decoded value of top-level string field `key` of the object on
/// `line`, into `out` (cleared first). Ok(false) if the field is absent or
/// not a string.
pub fn string_field(line: &[u8], key: &[u8], out: &mut Vec<u8>) -> Result<bool, JsonError> {
    out.clear();
    let mut c = Cursor { s: line, i: 0 };
    c.ws();
    if c.peek() != Some(b'{') {
        return Err(JsonError::NotAnObject);
    }
    c.i += 1;
    c.ws();
    if c.peek() == Some(b'}') {
        return Ok(false);
    }
    let mut name = Vec::new();
    loop {
        c.ws();
        name.clear();
        c.string(&mut name)?;
        c.ws();
        c.expect(b':')?;
        c.ws();
        if name == key && c.peek() == Some(b'"') {
            c.string(out)?;
            return Ok(true);
        }
        c.skip_value(0)?;
        c.ws();
        match c.peek() {
            Some(b',') => c.i += 1,
            Some(b'}') => return Ok(false),
            _ => return Err(JsonError::Syntax),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(line: &str) -> Result<Option<Vec<u8>>, JsonError> {
        let mut out = Vec::new();
        string_field(line.as_bytes(), b"message", &mut out).map(|found| found.then_some(out))
    }

    #[test]
    fn finds_the_top_level_field() {
        assert_eq!(
            msg(
                r#"{"host":"h","nested":{"message":"no"},"arr":[1,{"a":"b"},"x"],"n":-1.5e3,"t":true,"message":"yes \"q\" \\ \/ \n"}"#
            ),
            Ok(Some(b"yes \"q\" \\ / \n".to_vec()))
        );
        assert_eq!(msg(r#"{"other":"x"}"#), Ok(None));
        assert_eq!(msg(r#"{}"#), Ok(None));
        assert_eq!(msg(r#"{"message":5}"#), Ok(None));
        assert_eq!(msg(r#"[1]"#), Err(JsonError::NotAnObject));
        assert_eq!(msg(r#"{"message":"unterminated"#), Err(JsonError::Syntax));
    }

    #[test]
    fn surrogate_escaped_bytes_decode_losslessly() {
        assert_eq!(
            msg(r#"{"message":"a\udcff\udc80b"}"#),
            Ok(Some(vec![b'a', 0xff, 0x80, b'b']))
        );
        assert_eq!(
            msg(r#"{"message":"\u00e9\ud83d\ude00"}"#),
            Ok(Some("é😀".as_bytes().to_vec()))
        );
        assert_eq!(
            msg(r#"{"message":"\udc10"}"#),
            Err(JsonError::LoneSurrogate)
        );
        assert_eq!(
            msg(r#"{"message":"\ud83d"}"#),
            Err(JsonError::LoneSurrogate)
        );
        assert_eq!(msg(r#"{"message":"\x"}"#), Err(JsonError::BadEscape));
    }
}
