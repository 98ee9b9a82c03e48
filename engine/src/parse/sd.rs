//! RFC 5424 STRUCTURED-DATA: checked once while parsing, then read through
//! iterators that borrow the frame and unescape values lazily.
//!
//! ```text
//! SD-ELEMENT = "[" SD-ID *(SP SD-PARAM) "]"
//! SD-PARAM   = PARAM-NAME "=" %d34 PARAM-VALUE %d34
//! SD-ID, PARAM-NAME = 1*32 printable US-ASCII except '=', SP, ']', '"'
//! ```
//! - **Names** up to 255 bytes are accepted, as syslog-ng 3.38 does: longer
//!   enterprise SD-IDs than RFC 5424's 32 bytes are seen in the wild.
//! - **Escapes.** In a value, `\"`, `\\` and `\]` stand for `"`, `\` and
//!   `]`. A backslash before any other byte is itself (RFC 5424 §6.3.3), so
//!   `\n` is two bytes, as in syslog-ng.
//! - **Tolerated:** an unescaped `]` inside a quoted value. The quotes say
//!   where the value ends, so nothing is ambiguous; syslog-ng refuses the
//!   whole message, ringest keeps it.
//! - **Refused** (the message is then not RFC 5424): a missing `=` or quote,
//!   an empty or over-long name, a value that does not end, and a frame with
//!   more than [`SD_PARAMS_MAX`] params or [`SD_ELEMENTS_MAX`] elements. The
//!   limits bound the work of the JSON renderer, which groups repeated names
//!   without allocating (quadratic in the number of params).
//! - **Repeated** SD-IDs and PARAM-NAMEs are kept as sent; the JSON renderer
//!   merges elements with the same SD-ID and makes a repeated name an array.

use memchr::memchr;

use super::ParseError;

/// Longest SD-ID or PARAM-NAME, in bytes (RFC 5424 says 32, syslog-ng
/// 3.38 reads 255).
pub const SD_NAME_BYTES_MAX: usize = 255;
/// Most SD-PARAMs in one message, all elements together.
pub const SD_PARAMS_MAX: usize = 128;
/// Most SD-ELEMENTs in one message.
pub const SD_ELEMENTS_MAX: usize = 64;

/// The STRUCTURED-DATA of a message: empty for NILVALUE or RFC 3164.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StructuredData<'a> {
    raw: &'a [u8],
}

/// One `[SD-ID params]` element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Element<'a> {
    pub id: &'a [u8],
    /// ` name="value"` repeated, without the brackets.
    params_raw: &'a [u8],
}

/// One `name="value"` param.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a [u8],
    pub value: SdValue<'a>,
}

/// A PARAM-VALUE as sent, between its quotes, still escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdValue<'a> {
    raw: &'a [u8],
}

impl<'a> StructuredData<'a> {
    /// The SD bytes as sent (`[...][...]`), empty for NILVALUE.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn elements(&self) -> Elements<'a> {
        Elements { rest: self.raw }
    }
}

impl<'a> Element<'a> {
    pub fn params(&self) -> Params<'a> {
        Params {
            rest: self.params_raw,
        }
    }
}

impl<'a> SdValue<'a> {
    /// The value as sent, escapes included.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The unescaped value as consecutive slices of the frame.
    pub fn chunks(&self) -> Unescaped<'a> {
        Unescaped { rest: self.raw }
    }

    /// Does the unescaped value equal `want`?
    pub fn eq_unescaped(&self, want: &[u8]) -> bool {
        let mut want = want;
        for chunk in self.chunks() {
            match want.strip_prefix(chunk) {
                Some(rest) => want = rest,
                None => return false,
            }
        }
        want.is_empty()
    }
}

/// Iterator over the elements of checked structured data.
#[derive(Clone, Debug)]
pub struct Elements<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Elements<'a> {
    type Item = Element<'a>;

    fn next(&mut self) -> Option<Element<'a>> {
        let (element, next) = element_at(self.rest, 0, &mut 0).ok()?;
        self.rest = &self.rest[next..];
        Some(element)
    }
}

/// Iterator over the params of one element.
#[derive(Clone, Debug)]
pub struct Params<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Params<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let (param, next) = param_at(self.rest, 0).ok()?;
        self.rest = &self.rest[next..];
        Some(param)
    }
}

/// Iterator over the unescaped pieces of a value.
#[derive(Clone, Debug)]
pub struct Unescaped<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Unescaped<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let chunk = match memchr(b'\\', self.rest) {
            // Plain bytes up to the next backslash.
            Some(0) => match self.rest.get(1) {
                // An escape: yield the escaped byte itself, from the frame.
                Some(b'"' | b'\\' | b']') => {
                    let byte = &self.rest[1..2];
                    self.rest = &self.rest[2..];
                    return Some(byte);
                }
                // Any other backslash is a literal one.
                _ => &self.rest[..1],
            },
            Some(i) => &self.rest[..i],
            None => self.rest,
        };
        self.rest = &self.rest[chunk.len()..];
        Some(chunk)
    }
}

/// Checks the structured data at the start of `b` (which is `-` or `[`).
/// Returns it and the bytes consumed.
pub(crate) fn scan_sd(b: &[u8]) -> Result<(StructuredData<'_>, usize), ParseError> {
    match b.first() {
        Some(b'-') => Ok((StructuredData::default(), 1)),
        Some(b'[') => {
            let (mut at, mut params, mut elements) = (0usize, 0usize, 0usize);
            while b.get(at) == Some(&b'[') {
                let (_, next) = element_at(b, at, &mut params).map_err(|_| ParseError::BadSd)?;
                elements += 1;
                if elements > SD_ELEMENTS_MAX || params > SD_PARAMS_MAX {
                    return Err(ParseError::SdTooLarge);
                }
                at = next;
            }
            Ok((StructuredData { raw: &b[..at] }, at))
        }
        _ => Err(ParseError::BadSd),
    }
}

/// The element starting at `b[at]`, and the index after its `]`; counts its
/// params into `params`.
fn element_at<'a>(b: &'a [u8], at: usize, params: &mut usize) -> Result<(Element<'a>, usize), ()> {
    if b.get(at) != Some(&b'[') {
        return Err(());
    }
    let id_end = name_end(b, at + 1)?;
    let mut i = id_end;
    loop {
        match b.get(i) {
            Some(b']') => break,
            Some(b' ') => {
                let (_, next) = param_at(b, i)?;
                *params += 1;
                i = next;
            }
            _ => return Err(()),
        }
    }
    let element = Element {
        id: &b[at + 1..id_end],
        params_raw: &b[id_end..i],
    };
    Ok((element, i + 1))
}

/// The param ` name="value"` starting at `b[at]` (the space), and the index
/// after its closing quote.
fn param_at(b: &[u8], at: usize) -> Result<(Param<'_>, usize), ()> {
    if b.get(at) != Some(&b' ') {
        return Err(());
    }
    let name_stop = name_end(b, at + 1)?;
    if b.get(name_stop) != Some(&b'=') || b.get(name_stop + 1) != Some(&b'"') {
        return Err(());
    }
    let start = name_stop + 2;
    let mut i = start;
    loop {
        match b.get(i) {
            Some(b'"') => break,
            Some(b'\\') if i + 1 < b.len() => i += 2,
            Some(_) => i += 1,
            None => return Err(()),
        }
    }
    let param = Param {
        name: &b[at + 1..name_stop],
        value: SdValue { raw: &b[start..i] },
    };
    Ok((param, i + 1))
}

/// The end of an SD-NAME starting at `b[at]`: 1 to [`SD_NAME_BYTES_MAX`] name bytes.
fn name_end(b: &[u8], at: usize) -> Result<usize, ()> {
    let len = b[at.min(b.len())..]
        .iter()
        .take(SD_NAME_BYTES_MAX + 1)
        .take_while(|&&c| is_name_byte(c))
        .count();
    if len == 0 || len > SD_NAME_BYTES_MAX {
        return Err(());
    }
    Ok(at + len)
}

fn is_name_byte(c: u8) -> bool {
    (33..=126).contains(&c) && !matches!(c, b'=' | b']' | b'"')
}

/// Appends `value` escaped as an SD PARAM-VALUE (`"`, `\` and `]` get a
/// backslash); for building an element such as a forwarded identity.
pub fn escape_param_value(out: &mut Vec<u8>, value: &[u8]) {
    for &b in value {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd(s: &[u8]) -> Result<(StructuredData<'_>, usize), ParseError> {
        scan_sd(s)
    }

    fn unescaped(v: SdValue<'_>) -> Vec<u8> {
        v.chunks().flatten().copied().collect()
    }

    fn flat(data: StructuredData<'_>) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for e in data.elements() {
            for p in e.params() {
                out.push((
                    String::from_utf8_lossy(e.id).into_owned(),
                    String::from_utf8_lossy(p.name).into_owned(),
                    String::from_utf8_lossy(&unescaped(p.value)).into_owned(),
                ));
            }
        }
        out
    }

    #[test]
    fn rfc5424_example_with_two_elements() {
        let s = br#"[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] msg"#;
        let (data, n) = sd(s).unwrap();
        assert_eq!(&s[n..], b" msg");
        let ids: Vec<&[u8]> = data.elements().map(|e| e.id).collect();
        assert_eq!(ids, [&b"exampleSDID@32473"[..], b"examplePriority@32473"]);
        assert_eq!(flat(data).len(), 4);
        assert_eq!(
            flat(data)[3],
            (
                "examplePriority@32473".into(),
                "class".into(),
                "high".into()
            )
        );
    }

    #[test]
    fn sd_escaped_quote_bracket_and_backslash_unescape_lazily() {
        let s = br#"[a@1 q="say \"hi\"" b="x\]y" s="c:\\dir" n="line\n"]"#;
        let (data, _) = sd(s).unwrap();
        let values: Vec<Vec<u8>> = data
            .elements()
            .flat_map(|e| e.params())
            .map(|p| unescaped(p.value))
            .collect();
        assert_eq!(values[0], br#"say "hi""#);
        assert_eq!(values[1], b"x]y");
        assert_eq!(values[2], br"c:\dir");
        // A backslash before another byte stays: two bytes, `\` and `n`.
        assert_eq!(values[3], br"line\n");
        let p = data.elements().next().unwrap().params().next().unwrap();
        assert!(p.value.eq_unescaped(br#"say "hi""#));
        assert!(!p.value.eq_unescaped(br#"say "hi"!"#));
        assert!(!p.value.eq_unescaped(b"say"));
    }

    #[test]
    fn sd_unescaped_bracket_inside_quotes_is_tolerated() {
        let (data, n) = sd(br#"[a@1 x="a]b"] m"#).unwrap();
        assert_eq!(n, 13);
        assert_eq!(flat(data)[0].2, "a]b");
    }

    #[test]
    fn sd_nilvalue_and_element_without_params() {
        let (data, n) = sd(b"- msg").unwrap();
        assert!(data.is_empty());
        assert_eq!(n, 1);
        let (data, _) = sd(b"[origin]").unwrap();
        let e = data.elements().next().unwrap();
        assert_eq!((e.id, e.params().count()), (&b"origin"[..], 0));
    }

    #[test]
    fn sd_malformed_is_refused() {
        for bad in [
            &b"[bad sd"[..],
            b"[]",
            b"[a x=1]",
            b"[a x=\"1]",
            b"[a  x=\"1\"]",
            b"[a x=\"1\"",
            b"[a =\"1\"]",
            b"[a x\"1\"]",
            b"[a\"b x=\"1\"]",
            b"[a x=\"1\\",
            b"x",
            b"",
        ] {
            assert_eq!(
                sd(bad).map(|_| ()),
                Err(ParseError::BadSd),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn sd_names_longer_than_the_rfcs_32_bytes_up_to_255() {
        for (len, ok) in [(32, true), (33, true), (255, true), (256, false)] {
            let id = format!("[{} x=\"1\"]", "i".repeat(len));
            assert_eq!(sd(id.as_bytes()).is_ok(), ok, "SD-ID of {len}");
            let name = format!("[a {}=\"1\"]", "n".repeat(len));
            assert_eq!(sd(name.as_bytes()).is_ok(), ok, "PARAM-NAME of {len}");
        }
    }

    #[test]
    fn sd_stops_at_the_first_byte_after_an_element() {
        // A space between elements ends the SD: the rest is the message.
        let (data, n) = sd(br#"[a@1 x="1"] [b@1 y="2"]"#).unwrap();
        assert_eq!(n, 11);
        assert_eq!(data.elements().count(), 1);
    }

    #[test]
    fn sd_over_the_param_limit_is_refused() {
        let at_limit: String = (0..SD_PARAMS_MAX).map(|i| format!(" p{i}=\"v\"")).collect();
        assert!(sd(format!("[a{at_limit}]").as_bytes()).is_ok());
        let over = format!("[a{at_limit} x=\"y\"]");
        assert_eq!(sd(over.as_bytes()).map(|_| ()), Err(ParseError::SdTooLarge));
        let elements: String = (0..=SD_ELEMENTS_MAX).map(|i| format!("[e{i}]")).collect();
        assert_eq!(
            sd(elements.as_bytes()).map(|_| ()),
            Err(ParseError::SdTooLarge)
        );
    }

    #[test]
    fn sd_non_utf8_value_bytes_are_kept() {
        let (data, _) = sd(b"[a@1 x=\"\xff\xfe\"]").unwrap();
        let v = data
            .elements()
            .next()
            .unwrap()
            .params()
            .next()
            .unwrap()
            .value;
        assert_eq!(unescaped(v), b"\xff\xfe");
    }

    #[test]
    fn escape_param_value_round_trips_through_the_parser() {
        let original = br#"CN=a "b" \c ]d"#;
        let mut s = b"[tls@32473 cn=\"".to_vec();
        escape_param_value(&mut s, original);
        s.extend_from_slice(b"\"]");
        let (data, _) = sd(&s).unwrap();
        let v = data
            .elements()
            .next()
            .unwrap()
            .params()
            .next()
            .unwrap()
            .value;
        assert_eq!(unescaped(v), original);
    }
}
