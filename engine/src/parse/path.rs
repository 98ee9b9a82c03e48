//! Path-template safety: any field value (host, app, ...) as exactly one
//! file-name component that cannot leave the destination's root.
//!
//! The rule, the same every time:
//! - ASCII letters, digits, `-`, `_` and `.` are kept, except a `.` in the
//!   first place. Every other byte (`/`, `\`, NUL, controls, space, `%`,
//!   non-ASCII, a leading `.`) becomes `%XX`, uppercase hex. So `.` and `..`
//!   become `%2E` and `%2E.`, `../../etc/passwd` becomes
//!   `%2E.%2F..%2Fetc%2Fpasswd`, and no component is hidden.
//! - An empty value becomes `@empty`.
//! - A result longer than [`COMPONENT_BYTES_MAX`] (a 5,000-byte name) is
//!   cut at an escape boundary and ends with `~` and the 16 hex digits of the
//!   value's FNV-1a 64 hash, so long names that share a prefix still differ.
//!   128 bytes leave room for the rest of a template component
//!   (`{host}-{year}.log`) under the usual 255-byte NAME_MAX.
//!
//! `@` and `~` are never kept as themselves, so the three forms cannot
//! collide: distinct values give distinct names (for long ones, up to a
//! 64-bit hash collision), and the short form decodes back to the value.
//! The caller counts a value whose name differs from it (`changed`).

/// Longest component written, in bytes.
pub const COMPONENT_BYTES_MAX: usize = 128;

/// The component for an empty value.
pub const EMPTY_COMPONENT: &[u8] = b"@empty";

/// `~` and 16 hex digits.
const HASH_SUFFIX_BYTES: usize = 17;

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// What [`push_component`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sanitized {
    /// The component differs from the value (escaped, empty or cut).
    pub changed: bool,
}

fn kept(b: u8, first: bool) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && !first)
}

/// Appends `value` to `out` as one safe file-name component (see the module
/// doc). Allocates nothing once `out` has room.
pub fn push_component(out: &mut Vec<u8>, value: &[u8]) -> Sanitized {
    let start = out.len();
    if value.is_empty() {
        out.extend_from_slice(EMPTY_COMPONENT);
        return Sanitized { changed: true };
    }
    let encoded_len: usize = value
        .iter()
        .enumerate()
        .map(|(i, &b)| if kept(b, i == 0) { 1 } else { 3 })
        .sum();
    let budget = if encoded_len > COMPONENT_BYTES_MAX {
        COMPONENT_BYTES_MAX - HASH_SUFFIX_BYTES
    } else {
        COMPONENT_BYTES_MAX
    };
    for (i, &b) in value.iter().enumerate() {
        let width = if kept(b, i == 0) { 1 } else { 3 };
        if out.len() - start + width > budget {
            break;
        }
        if width == 1 {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'%',
                HEX_UPPER[usize::from(b >> 4)],
                HEX_UPPER[usize::from(b & 0xf)],
            ]);
        }
    }
    if encoded_len > COMPONENT_BYTES_MAX {
        out.push(b'~');
        let hash = fnv1a64(value);
        for shift in (0..16).rev() {
            out.push(HEX_UPPER[((hash >> (shift * 4)) & 0xf) as usize].to_ascii_lowercase());
        }
    }
    debug_assert!(is_safe_component(&out[start..]));
    Sanitized {
        changed: encoded_len != value.len() || encoded_len > COMPONENT_BYTES_MAX,
    }
}

/// The invariant every component written satisfies: 1 to
/// [`COMPONENT_BYTES_MAX`] bytes, not `.` or `..`, no leading `.`, and
/// only bytes from `[A-Za-z0-9._%@~-]` (so no `/` and no NUL).
pub fn is_safe_component(c: &[u8]) -> bool {
    !c.is_empty()
        && c.len() <= COMPONENT_BYTES_MAX
        && c[0] != b'.'
        && c.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'%' | b'@' | b'~')
        })
}

/// FNV-1a, 64 bits: stable across runs and builds, unlike `DefaultHasher`.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::{Component, Path};

    use super::*;

    fn comp(value: &[u8]) -> (String, bool) {
        let mut out = Vec::new();
        let s = push_component(&mut out, value);
        (String::from_utf8(out).expect("ASCII"), s.changed)
    }

    /// Joined under a root and normalised lexically, the path stays there.
    fn stays_under_root(component: &str) -> bool {
        let path = Path::new("/srv/logs").join(component).join("x.log");
        let mut depth = 0i32;
        for c in path.components() {
            match c {
                Component::RootDir => {}
                Component::ParentDir => depth -= 1,
                Component::CurDir => {}
                Component::Normal(_) => depth += 1,
                Component::Prefix(_) => return false,
            }
        }
        // /srv/logs/<component>/x.log: exactly four normal components.
        depth == 4
    }

    #[test]
    fn hostile_names_from_the_issue() {
        assert_eq!(
            comp(b"../../etc/passwd"),
            ("%2E.%2F..%2Fetc%2Fpasswd".into(), true)
        );
        assert_eq!(comp(b"."), ("%2E".into(), true));
        assert_eq!(comp(b".."), ("%2E.".into(), true));
        assert_eq!(comp(b""), ("@empty".into(), true));
        assert_eq!(comp(b"a\0b"), ("a%00b".into(), true));
        assert_eq!(comp(b"a/b"), ("a%2Fb".into(), true));
        assert_eq!(comp(b"/"), ("%2F".into(), true));
        for hostile in [
            "../../etc/passwd",
            ".",
            "..",
            "",
            "a\0b",
            "a/b",
            "/",
            "..\\..",
            ".hidden",
        ] {
            let (c, _) = comp(hostile.as_bytes());
            assert!(stays_under_root(&c), "{hostile:?} -> {c:?}");
        }
    }

    #[test]
    fn five_thousand_bytes_are_cut_with_a_hash() {
        let long = vec![b'h'; 5_000];
        let (c, changed) = comp(&long);
        assert!(changed);
        assert_eq!(c.len(), COMPONENT_BYTES_MAX);
        assert!(c.starts_with(&"h".repeat(COMPONENT_BYTES_MAX - 17)));
        assert_eq!(c.as_bytes()[COMPONENT_BYTES_MAX - 17], b'~');
        let mut other = long.clone();
        other[4_999] = b'i';
        assert_ne!(comp(&other).0, c, "same prefix, different names");
        // Escapes are never split by the cut.
        let (c, _) = comp(&[b'/'; 200]);
        assert!(c.len() <= COMPONENT_BYTES_MAX);
        assert!(
            c.trim_end_matches(|ch: char| ch != '~')
                .trim_end_matches('~')
                .len()
                % 3
                == 0
        );
    }

    #[test]
    fn ordinary_names_are_unchanged() {
        for name in [
            "web-01.example.com",
            "sshd",
            "CRON",
            "10.0.0.7",
            "fe80__1",
            "a.b",
        ] {
            assert_eq!(comp(name.as_bytes()), (name.into(), false));
        }
        assert_eq!(comp(b"fe80::1"), ("fe80%3A%3A1".into(), true));
        assert_eq!(comp("h\u{e9}".as_bytes()), ("h%C3%A9".into(), true));
    }

    #[test]
    fn forms_never_collide() {
        let values: [&[u8]; 12] = [
            b"",
            b"@empty",
            b"%40empty",
            b".",
            b"%2E",
            b"_",
            b"~",
            b"%",
            b"%25",
            b"a b",
            b"a%20b",
            b"..",
        ];
        let names: HashSet<String> = values.iter().map(|v| comp(v).0).collect();
        assert_eq!(names.len(), values.len());
    }

    #[test]
    fn random_bytes_always_give_a_safe_component() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut value = Vec::new();
        let mut seen = HashSet::new();
        for _ in 0..20_000 {
            value.clear();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 300) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Mostly the dangerous bytes.
                let pool = b"./\\\0\n %~@a";
                value.push(pool[(x % pool.len() as u64) as usize]);
            }
            let (c, _) = comp(&value);
            assert!(is_safe_component(c.as_bytes()), "{value:?} -> {c:?}");
            assert!(stays_under_root(&c), "{value:?} -> {c:?}");
            seen.insert((value.clone(), c));
        }
        let names: HashSet<&String> = seen.iter().map(|(_, c)| c).collect();
        let values: HashSet<&Vec<u8>> = seen.iter().map(|(v, _)| v).collect();
        assert_eq!(names.len(), values.len(), "distinct values, distinct names");
    }
}
