//! A strict JSON reader for one line of either side's output: nested objects
//! (syslog-ng's `_SDATA`, ringest's `sd`), arrays and strings. Strings come
//! back as bytes: ringest's `\udcXX` escape of a byte that is not UTF-8
//! decodes to that byte, so the comparison sees what was sent.
//! Anything that is not valid JSON (a raw control byte, a stray surrogate,
//! a missing comma) is an error, so a renderer bug fails the test.

#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Str(Vec<u8>),
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

pub fn parse(line: &[u8]) -> Result<Json, String> {
    std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut p = Parser { s: line, i: 0 };
    let v = p.value()?;
    p.ws();
    if p.i != line.len() {
        return Err(format!("trailing bytes at {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
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
        match self.bump() {
            Some(b) if b == want => Ok(()),
            other => Err(format!(
                "expected {:?} at {}, got {other:?}",
                want as char,
                self.i - 1
            )),
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(_) => {
                let start = self.i;
                while matches!(
                    self.peek(),
                    Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'a'..=b'z' | b'E')
                ) {
                    self.i += 1;
                }
                let word = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
                let is_literal = matches!(word, "true" | "false" | "null");
                if is_literal || word.parse::<f64>().is_ok() {
                    Ok(Json::Other(word.to_string()))
                } else {
                    Err(format!("bad value at {start}: {word:?}"))
                }
            }
            None => Err("unexpected end".into()),
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.expect(b'{')?;
        let mut fields: Vec<(Vec<u8>, Json)> = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Json::Obj(fields));
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.expect(b':')?;
            let value = self.value()?;
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(format!("duplicate key {:?}", String::from_utf8_lossy(&key)));
            }
            fields.push((key, value));
            self.ws();
            match self.bump() {
                Some(b',') => continue,
                Some(b'}') => return Ok(Json::Obj(fields)),
                other => return Err(format!("expected , or }} at {}, got {other:?}", self.i - 1)),
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Json::Arr(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match self.bump() {
                Some(b',') => continue,
                Some(b']') => return Ok(Json::Arr(items)),
                other => return Err(format!("expected , or ] at {}, got {other:?}", self.i - 1)),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
        let text = std::str::from_utf8(digits).map_err(|_| "bad \\u escape")?;
        let n = u32::from_str_radix(text, 16).map_err(|_| format!("bad \\u escape {text:?}"))?;
        self.i += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => return Err("unterminated string".into()),
                Some(b'"') => return Ok(out),
                Some(b'\\') => match self.bump() {
                    Some(b'"') => out.push(b'"'),
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'/') => out.push(b'/'),
                    Some(b'b') => out.push(8),
                    Some(b'f') => out.push(12),
                    Some(b'n') => out.push(b'\n'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'u') => {
                        let n = self.hex4()?;
                        let c = match n {
                            // ringest's escape of a byte that is not UTF-8.
                            0xdc80..=0xdcff => {
                                out.push((n & 0xff) as u8);
                                continue;
                            }
                            0xd800..=0xdbff => {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(format!("lone high surrogate {n:x}"));
                                }
                                self.i += 2;
                                let low = self.hex4()?;
                                if !(0xdc00..=0xdfff).contains(&low) {
                                    return Err(format!("bad surrogate pair {n:x} {low:x}"));
                                }
                                0x10000 + ((n - 0xd800) << 10) + (low - 0xdc00)
                            }
                            0xdc00..=0xdfff => return Err(format!("lone low surrogate {n:x}")),
                            n => n,
                        };
                        let c = char::from_u32(c).ok_or("bad code point")?;
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    other => return Err(format!("bad escape {other:?} at {}", self.i - 1)),
                },
                Some(b) if b < 0x20 => {
                    return Err(format!("raw control byte {b:#04x} at {}", self.i - 1))
                }
                Some(b) => out.push(b),
            }
        }
    }
}
