//! The `json` output with parsed fields: one object per line.
//!
//! ```text
//! {<connection fields>,"facility":"auth","severity":"err",
//!  "timestamp":"2026-11-29T18:00:00Z","host":"h","app":"sshd","procid":"7",
//!  "msgid":"ID1","seq":"12","sd":{"id@1":{"p":"v","twice":["a","b"]}},
//!  "message":"...","parse_error":"bad_sd","raw":"..."}
//! ```
//! - **Connection fields** (`received`, `source`, `peer`, the TLS identity)
//!   are the writer's, unchanged: the caller passes them pre-rendered as
//!   `meta`, which is what `writer::json::run_prefix` writes before
//!   `,"message":"` ([`meta_from_run_prefix`] cuts it there). With
//!   [`ParseMode::None`](super::ParseMode::None) the line is byte for byte
//!   the writer's current line.
//! - **Parsed fields** are written only when present. `facility` and
//!   `severity` are names (`auth`, `err`); a facility above 23 (PRI > 191)
//!   is its decimal number, as a string. `timestamp` is as sent (RFC 3339
//!   for RFC 5424, `Oct 11 22:14:15` for BSD). `seq` is a Cisco sequence
//!   number. `message` is always there: the frame when unparsed.
//! - **`sd`** is an object per SD-ID holding its params, values unescaped.
//!   Elements with the same SD-ID are merged, and a PARAM-NAME that occurs
//!   more than once becomes an array of every value in order, so nothing
//!   sent is lost (syslog-ng keeps the last).
//! - **`parse_error`** is the [`ParseError::label`](super::ParseError) of a
//!   frame kept whole; **`raw`** the frame, with `include_raw`.
//! - **Escaping is lossless.** Valid UTF-8 is written as text with JSON's
//!   escapes (`\"`, `\\`, `\n`, `\r`, `\t`, `\u00XX` for other controls and
//!   DEL). A byte that is not part of valid UTF-8 is written as the lone
//!   surrogate `\udcXX` (Python's "surrogateescape"), the writer's
//!   existing rule: valid UTF-8 can never produce a surrogate, so every
//!   original byte can be recovered (`json.loads(line)[k].encode("utf-8",
//!   "surrogateescape")`). `\u00XX` would not do: it is the escape of the
//!   character U+00XX, whose UTF-8 is two other bytes. A consumer whose
//!   JSON parser refuses lone surrogates needs `include_raw` instead.

use super::pri::Pri;
use super::sd::{SdValue, StructuredData, SD_ELEMENTS_MAX, SD_PARAMS_MAX};
use super::Message;

/// What the writer's per-run prefix ends with, after the connection fields.
const RUN_PREFIX_TAIL: &[u8] = b",\"message\":\"";

/// Options of one JSON destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JsonOptions {
    /// Add the whole frame as `raw`.
    pub include_raw: bool,
}

/// The connection fields of a prefix built by `writer::json::run_prefix`:
/// it without its trailing `,"message":"`. A prefix without that tail is
/// returned unchanged.
pub fn meta_from_run_prefix(prefix: &[u8]) -> &[u8] {
    prefix.strip_suffix(RUN_PREFIX_TAIL).unwrap_or(prefix)
}

/// Appends one JSON line (with its `\n`) for `msg` to `out`. `meta` is the
/// object so far: `{` and the connection fields, without a trailing comma
/// (`{` alone is fine). Allocates nothing once `out` has grown.
pub fn render_json(out: &mut Vec<u8>, meta: &[u8], msg: &Message<'_>, opts: JsonOptions) {
    debug_assert!(meta.first() == Some(&b'{'), "meta must open the object");
    out.extend_from_slice(meta);
    // A comma before every field except right after the opening brace.
    let mut first = meta == b"{";
    if let Some(pri) = msg.pri {
        push_key(out, &mut first, b"facility");
        push_facility(out, pri);
        push_key(out, &mut first, b"severity");
        out.push(b'"');
        out.extend_from_slice(pri.severity().name().as_bytes());
        out.push(b'"');
    }
    let fields = [
        (&b"timestamp"[..], msg.timestamp.map(|t| t.raw)),
        (b"host", msg.host),
        (b"app", msg.app),
        (b"procid", msg.procid),
        (b"msgid", msg.msgid),
        (b"seq", msg.seq),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            push_key(out, &mut first, key);
            push_string(out, value);
        }
    }
    if !msg.sd.is_empty() {
        push_key(out, &mut first, b"sd");
        push_sd(out, msg.sd);
    }
    push_key(out, &mut first, b"message");
    push_string(out, msg.message);
    if let Some(e) = msg.error {
        push_key(out, &mut first, b"parse_error");
        push_string(out, e.label().as_bytes());
    }
    if opts.include_raw {
        push_key(out, &mut first, b"raw");
        push_string(out, msg.raw);
    }
    out.extend_from_slice(b"}\n");
}

fn push_key(out: &mut Vec<u8>, first: &mut bool, key: &[u8]) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key);
    out.extend_from_slice(b"\":");
}

fn push_facility(out: &mut Vec<u8>, pri: Pri) {
    out.push(b'"');
    match pri.facility_name() {
        Some(name) => out.extend_from_slice(name.as_bytes()),
        None => push_decimal(out, u32::from(pri.facility())),
    }
    out.push(b'"');
}

/// Appends `n` in decimal without allocating.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u32) {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `bytes` as a quoted JSON string.
pub fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    escape_bytes(out, bytes);
    out.push(b'"');
}

/// One SD param for grouping: its SD-ID's index among the distinct SD-IDs.
#[derive(Clone, Copy)]
struct SdEntry<'a> {
    id: usize,
    name: &'a [u8],
    value: Option<SdValue<'a>>,
}

impl SdEntry<'_> {
    fn same_key(&self, other: &SdEntry<'_>) -> bool {
        self.id == other.id && self.name == other.name
    }
}

/// Tables on the stack for an SD this small; larger ones (up to the parse
/// limits) get tables of the limits' size. Both are zeroed per message.
const SD_SMALL_ELEMENTS: usize = 8;
const SD_SMALL_PARAMS: usize = 16;

/// The SD object. Element and param order is kept; repeats are grouped (see
/// the module doc). Quadratic in the params, which the parser bounds.
fn push_sd(out: &mut Vec<u8>, sd: StructuredData<'_>) {
    let elements = sd.elements().count();
    let params: usize = sd.elements().map(|e| e.params().count()).sum();
    if elements <= SD_SMALL_ELEMENTS && params <= SD_SMALL_PARAMS {
        push_sd_with::<SD_SMALL_ELEMENTS, SD_SMALL_PARAMS>(out, sd);
    } else {
        push_sd_with::<SD_ELEMENTS_MAX, SD_PARAMS_MAX>(out, sd);
    }
}

fn push_sd_with<const E: usize, const P: usize>(out: &mut Vec<u8>, sd: StructuredData<'_>) {
    let mut ids: [&[u8]; E] = [&[]; E];
    let empty = SdEntry {
        id: 0,
        name: &[],
        value: None,
    };
    let mut entries = [empty; P];
    let (mut n_ids, mut n_entries) = (0usize, 0usize);
    for element in sd.elements().take(E) {
        // An SD-ID seen before merges into its first element.
        let id = match ids[..n_ids].iter().position(|&seen| seen == element.id) {
            Some(i) => i,
            None => {
                ids[n_ids] = element.id;
                n_ids += 1;
                n_ids - 1
            }
        };
        for param in element.params().take(P - n_entries) {
            entries[n_entries] = SdEntry {
                id,
                name: param.name,
                value: Some(param.value),
            };
            n_entries += 1;
        }
    }
    let entries = &entries[..n_entries];
    out.push(b'{');
    for (id_index, id) in ids[..n_ids].iter().enumerate() {
        if id_index > 0 {
            out.push(b',');
        }
        push_string(out, id);
        out.extend_from_slice(b":{");
        let mut first_param = true;
        for (i, entry) in entries.iter().enumerate() {
            // Each name once per SD-ID, at its first occurrence.
            if entry.id != id_index || entries[..i].iter().any(|e| e.same_key(entry)) {
                continue;
            }
            if !std::mem::take(&mut first_param) {
                out.push(b',');
            }
            push_string(out, entry.name);
            out.push(b':');
            let repeated = entries[i + 1..].iter().any(|e| e.same_key(entry));
            if repeated {
                out.push(b'[');
            }
            for (n, same) in entries[i..]
                .iter()
                .filter(|e| e.same_key(entry))
                .enumerate()
            {
                if n > 0 {
                    out.push(b',');
                }
                out.push(b'"');
                for chunk in same.value.iter().flat_map(|v| v.chunks()) {
                    escape_bytes(out, chunk);
                }
                out.push(b'"');
            }
            if repeated {
                out.push(b']');
            }
        }
        out.push(b'}');
    }
    out.push(b'}');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` as the body of a JSON string (no quotes), losslessly:
/// see the module doc. Same output as `writer::json::escape_bytes`, without
/// allocating.
pub fn escape_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        escape_valid(out, chunk.valid().as_bytes());
        for &b in chunk.invalid() {
            out.extend_from_slice(b"\\udc");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        }
    }
}

/// Escapes valid UTF-8: only ASCII bytes ever need it.
fn escape_valid(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&s[start..]);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::batch::{ConnMeta, Run};
    use crate::parse::{parse, ParseMode};

    fn line(frame: &[u8], opts: JsonOptions) -> String {
        let mut out = Vec::new();
        render_json(&mut out, b"{", &parse(frame, ParseMode::Auto), opts);
        String::from_utf8(out).expect("JSON output is UTF-8")
    }

    #[test]
    fn escape_matches_the_writers_escape() {
        let mut x: u32 = 12345;
        let mut input = Vec::new();
        for _ in 0..2_000 {
            input.clear();
            for _ in 0..(x % 24) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                // Bias towards the bytes that need care.
                let pool = b"\"\\\n\r\t\x00\x1f\x7f a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff\xc3\xed\xa0\x80";
                input.push(pool[(x >> 16) as usize % pool.len()]);
            }
            let (mut ours, mut writers) = (Vec::new(), Vec::new());
            escape_bytes(&mut ours, &input);
            crate::writer::json::escape_bytes(&mut writers, &input);
            assert_eq!(ours, writers, "input {input:?}");
        }
    }

    #[test]
    fn invalid_utf8_becomes_lone_surrogates_that_round_trip() {
        let mut out = Vec::new();
        escape_bytes(&mut out, b"ok \xc3\xa9 \xff\xfe \xed\xa0\x80 \xc3");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ok \u{e9} \\udcff\\udcfe \\udced\\udca0\\udc80 \\udcc3"
        );
    }

    #[test]
    fn none_mode_line_is_byte_identical_to_the_writers_line() {
        let conn = Arc::new(ConnMeta {
            source: 0,
            peer: "192.0.2.7:514".parse().unwrap(),
            identity: None,
        });
        let run = Run {
            first: 0,
            conn,
            received_unix_ns: 1_795_651_200_123_456_789,
            received: std::time::Instant::now(),
        };
        let mut prefix = Vec::new();
        crate::writer::json::run_prefix(&mut prefix, &run, "tls");
        let frame = b"<13>1 - h a - - - caf\xe9 \"q\"";
        let mut writer_line = prefix.clone();
        crate::writer::json::escape_bytes(&mut writer_line, frame);
        writer_line.extend_from_slice(b"\"}\n");

        let mut ours = Vec::new();
        let meta = meta_from_run_prefix(&prefix);
        render_json(
            &mut ours,
            meta,
            &parse(frame, ParseMode::None),
            JsonOptions::default(),
        );
        assert_eq!(ours, writer_line);

        ours.clear();
        render_json(
            &mut ours,
            meta,
            &parse(frame, ParseMode::Auto),
            JsonOptions::default(),
        );
        let text = String::from_utf8(ours).unwrap();
        assert!(text.starts_with(r#"{"received":"2026-11-26T00:00:00.123456789Z","source":"tls","peer":"192.0.2.7:514","facility":"user","severity":"notice","host":"h","app":"a","message":"caf\udce9 \"q\""}"#), "{text}");
    }

    #[test]
    fn rfc5424_fields_in_order() {
        let l = line(
            br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 12 ID47 [exampleSDID@32473 iut="3" eventSource="Application"][examplePriority@32473 class="high"] An application event"#,
            JsonOptions::default(),
        );
        assert_eq!(
            l,
            concat!(
                r#"{"facility":"local4","severity":"notice","timestamp":"2003-10-11T22:14:15.003Z","#,
                r#""host":"mymachine.example.com","app":"evntslog","procid":"12","msgid":"ID47","#,
                r#""sd":{"exampleSDID@32473":{"iut":"3","eventSource":"Application"},"examplePriority@32473":{"class":"high"}},"#,
                r#""message":"An application event"}"#,
                "\n"
            )
        );
    }

    #[test]
    fn sd_repeated_param_becomes_an_array_and_repeated_id_merges() {
        let l = line(
            br#"<13>1 - - - - - [a@1 x="1" y="2" x="3"][b@1 z="\"\\\]"][a@1 x="4" w="5"][e] m"#,
            JsonOptions::default(),
        );
        assert!(
            l.contains(
                r#""sd":{"a@1":{"x":["1","3","4"],"y":"2","w":"5"},"b@1":{"z":"\"\\]"},"e":{}}"#
            ),
            "{l}"
        );
    }

    #[test]
    fn sd_larger_than_the_small_tables_groups_the_same_way() {
        let params: String = (0..40).map(|i| format!(" p{}=\"{i}\"", i % 20)).collect();
        let elements: String = (0..10).map(|i| format!("[e{i}]")).collect();
        let l = line(
            format!("<13>1 - - - - - [big{params}]{elements} m").as_bytes(),
            JsonOptions::default(),
        );
        assert!(
            l.contains(r#""big":{"p0":["0","20"],"p1":["1","21"],"#),
            "{l}"
        );
        assert!(l.contains(r#""p19":["19","39"]},"e0":{},"#), "{l}");
        assert!(l.contains(r#""e9":{}}"#), "{l}");
    }

    #[test]
    fn sd_keys_and_values_are_escaped() {
        let l = line(
            b"<13>1 - - - - - [a\\b q=\"\xff\n\"] m",
            JsonOptions::default(),
        );
        assert!(l.contains(r#""sd":{"a\\b":{"q":"\udcff\n"}}"#), "{l}");
    }

    #[test]
    fn out_of_range_pri_has_a_numeric_facility() {
        let l = line(b"<999>Oct 11 22:14:15 h a: x", JsonOptions::default());
        assert!(
            l.starts_with(r#"{"facility":"124","severity":"debug","#),
            "{l}"
        );
    }

    #[test]
    fn parse_error_keeps_the_frame_as_message_and_names_the_reason() {
        let l = line(b"<13>1 - h a p m [bad", JsonOptions { include_raw: true });
        assert_eq!(
            l,
            "{\"message\":\"<13>1 - h a p m [bad\",\"parse_error\":\"bad_sd\",\"raw\":\"<13>1 - h a p m [bad\"}\n"
        );
    }

    #[test]
    fn bsd_timestamp_cisco_seq_and_raw() {
        let l = line(
            b"<189>123: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured",
            JsonOptions { include_raw: true },
        );
        assert_eq!(
            l,
            concat!(
                r#"{"facility":"local7","severity":"notice","timestamp":"Mar  1 18:46:11.123","#,
                r#""app":"%SYS-5-CONFIG_I","seq":"123","message":"Configured","#,
                r#""raw":"<189>123: *Mar  1 18:46:11.123: %SYS-5-CONFIG_I: Configured"}"#,
                "\n"
            )
        );
    }

    #[test]
    fn decimal_without_allocating() {
        let mut out = Vec::new();
        for n in [0, 7, 24, 124, u32::MAX] {
            out.clear();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
