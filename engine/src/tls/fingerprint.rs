//! Certificate fingerprints for `trusted_keys` and the identity record.

use aws_lc_rs::digest;

/// A pinned fingerprint from `trusted_keys`. The algorithm is told by the
/// length (20 bytes SHA-1, 32 bytes SHA-256), or by syslog-ng's `SHA1:`
/// prefix when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fingerprint {
    Sha1([u8; 20]),
    Sha256([u8; 32]),
}

impl Fingerprint {
    /// Parses `AA:BB:..` (any case), bare hex, and syslog-ng's
    /// `SHA1:AA:BB:..` / `SHA256:..` forms. The error is a short reason.
    pub(crate) fn parse(text: &str) -> Result<Fingerprint, &'static str> {
        let text = text.trim();
        let (declared, hex_part) = match text.split_once(':') {
            Some((prefix, rest)) => match prefix.to_ascii_uppercase().as_str() {
                "SHA1" | "SHA-1" => (Some(20), rest),
                "SHA256" | "SHA-256" => (Some(32), rest),
                _ => (None, text),
            },
            None => (None, text),
        };
        let bytes = decode_hex(hex_part)?;
        if declared.is_some_and(|len| len != bytes.len()) {
            return Err("length does not match the SHA1:/SHA256: prefix");
        }
        if let Ok(b) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(Fingerprint::Sha256(b));
        }
        if let Ok(b) = <[u8; 20]>::try_from(bytes.as_slice()) {
            return Ok(Fingerprint::Sha1(b));
        }
        Err("expected a SHA-256 (32 bytes) or SHA-1 (20 bytes) fingerprint")
    }

    /// Does this pin match the certificate whose digests are given?
    pub(crate) fn matches(&self, sha1: &[u8; 20], sha256: &[u8; 32]) -> bool {
        match self {
            Fingerprint::Sha1(b) => b == sha1,
            Fingerprint::Sha256(b) => b == sha256,
        }
    }
}

/// Parses a `trusted_keys` list; the error names the entry at fault.
pub(crate) fn parse_pins(
    list: &[String],
) -> Result<Vec<Fingerprint>, super::error::TlsConfigError> {
    list.iter()
        .enumerate()
        .map(|(index, value)| {
            Fingerprint::parse(value).map_err(|reason| {
                super::error::TlsConfigError::InvalidFingerprint {
                    index,
                    value: value.clone(),
                    reason,
                }
            })
        })
        .collect()
}

/// Hex with optional `:` separators; when separators are used, every group
/// must be exactly two digits, so a dropped digit is caught, not shifted.
fn decode_hex(text: &str) -> Result<Vec<u8>, &'static str> {
    let groups: Vec<&str> = if text.contains(':') {
        let groups: Vec<&str> = text.split(':').collect();
        if groups.iter().any(|g| g.len() != 2) {
            return Err("every ':'-separated group must be two hex digits");
        }
        groups
    } else {
        if !text.len().is_multiple_of(2) {
            return Err("odd number of hex digits");
        }
        (0..text.len())
            .step_by(2)
            .map(|i| text.get(i..i + 2).unwrap_or(""))
            .collect()
    };
    groups
        .iter()
        .map(|g| u8::from_str_radix(g, 16).map_err(|_| "not a hex digit"))
        .collect()
}

pub(crate) fn sha256(der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, der).as_ref());
    out
}

pub(crate) fn sha1(der: &[u8]) -> [u8; 20] {
    let mut out = [0u8; 20];
    // SHA-1 only because syslog-ng's trusted-keys() pins are SHA-1; it is
    // compared against a configured pin, never used to sign anything.
    out.copy_from_slice(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref());
    out
}

/// `AA:BB:CC`, the form OpenSSL's `x509 -fingerprint` prints.
pub(crate) fn colon_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_colon_bare_and_prefixed_forms() {
        let sha256 = sha256(b"x");
        let sha1 = sha1(b"x");
        let colon = colon_hex(&sha256);
        for text in [
            colon.clone(),
            colon.to_lowercase(),
            colon.replace(':', ""),
            format!("SHA256:{colon}"),
            format!("sha-256:{}", colon.to_lowercase()),
        ] {
            assert_eq!(
                Fingerprint::parse(&text),
                Ok(Fingerprint::Sha256(sha256)),
                "{text}"
            );
        }
        let sha1_text = format!("SHA1:{}", colon_hex(&sha1));
        assert_eq!(Fingerprint::parse(&sha1_text), Ok(Fingerprint::Sha1(sha1)));
    }

    #[test]
    fn rejects_malformed_fingerprints() {
        let sha1 = colon_hex(&sha1(b"x"));
        assert!(Fingerprint::parse(&format!("SHA256:{sha1}")).is_err());
        assert!(Fingerprint::parse("AA:BB").is_err());
        assert!(Fingerprint::parse("AA:B:CC").is_err());
        assert!(Fingerprint::parse("ZZ").is_err());
        assert!(Fingerprint::parse("").is_err());
    }

    #[test]
    fn known_digest_values() {
        // sha256("abc") and sha1("abc") from FIPS 180-2.
        assert!(colon_hex(&sha256(b"abc")).starts_with("BA:78:16:BF"));
        assert!(colon_hex(&sha1(b"abc")).starts_with("A9:99:3E:36"));
    }
}
