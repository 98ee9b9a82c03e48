//! Shell-style wildcard matching with GLib's `g_pattern_match_simple`
//! semantics, which syslog-ng uses for `trusted-dn()`:
//! `*` matches any run of characters (also empty, also across `,` and `=`),
//! `?` matches exactly one character, everything else matches itself,
//! case-sensitively. The pattern must cover the whole text. There is no
//! escape character, as in GLib.

/// Does `pattern` match all of `text`?
///
/// Iterative with a single backtrack point (the last `*`), so the cost is
/// O(len(pattern) * len(text)) at worst and never recursive: patterns come
/// from the config but the text comes from a client certificate.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the most recent `*`: (pattern index after the
    // star, text index the star currently extends to).
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some('?') => {
                p += 1;
                t += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last star swallow one more character and retry.
                Some((sp, st)) => {
                    star = Some((sp, st + 1));
                    p = sp;
                    t = st + 1;
                }
                None => return false,
            },
        }
    }
    // Text consumed: the rest of the pattern may only be stars.
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_semantics_follow_glib() {
        let cases = [
            ("*", "", true),
            ("*", "anything, at=all", true),
            ("", "", true),
            ("", "x", false),
            ("CN=a", "CN=a", true),
            ("CN=a", "CN=A", false), // case-sensitive, as GLib
            ("CN=?", "CN=é", true),  // ? is one character, not one byte
            ("CN=?", "CN=ab", false),
            (
                "*, O=Example Inc, C=*",
                "CN=host, OU=IT, O=Example Inc, C=HU",
                true,
            ),
            (
                "*, O=Example Inc, C=*",
                "CN=host, O=Example Inc Evil, C=HU",
                false,
            ),
            ("CN=*.example.com*", "CN=a.b.example.com, O=X", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbYcZ", false),
            ("**x", "yyx", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob_match(pattern, text), want, "{pattern:?} vs {text:?}");
        }
    }
}
