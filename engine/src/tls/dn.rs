//! Distinguished names printed the way syslog-ng prints them for
//! `trusted-dn()`, so that patterns copied from a syslog-ng config match
//! the same certificates here.
//!
//! syslog-ng formats the subject with OpenSSL's
//! `X509_NAME_print_ex(.., ASN1_STRFLGS_ESC_2253 | ASN1_STRFLGS_UTF8_CONVERT
//! | XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_DN_REV)`, which means:
//! - RDNs in *reverse* encoding order: a certificate encoded C, O, CN prints
//!   as `CN=host, O=Example Inc, C=HU` (the order of RFC 4514 and of
//!   syslog-ng's documented example `*, O=Example Inc, ST=Some-State, C=*`);
//! - `, ` between RDNs and ` + ` between the values of a multi-valued RDN;
//! - OpenSSL short names (`CN`, `O`, `OU`, `C`, `ST`, `L`, `emailAddress`,
//!   `DC`, ...), the dotted OID for attributes OpenSSL has no name for;
//! - `key=value` with no spaces around `=`;
//! - values as UTF-8, with RFC 2253 escapes: a backslash before any of
//!   `,+"\<>;`, before a leading `#` or space, and before a trailing space.
//!
//! Values whose ASN.1 type is not a string are printed as `#` and the hex of
//! their DER encoding (RFC 4514's form); OpenSSL differs slightly here, but
//! such values do not occur in the subjects of real client certificates.

use x509_parser::asn1_rs::Tag;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

/// The subject or issuer as syslog-ng prints it.
pub(crate) fn format_dn(name: &X509Name<'_>) -> String {
    let mut out = String::new();
    for rdn in name.iter().collect::<Vec<_>>().into_iter().rev() {
        if !out.is_empty() {
            out.push_str(", ");
        }
        // With XN_FLAG_DN_REV OpenSSL walks the flat list of attributes
        // backwards, so the values inside one RDN come out reversed too.
        for (i, attr) in rdn.iter().collect::<Vec<_>>().into_iter().rev().enumerate() {
            if i > 0 {
                out.push_str(" + ");
            }
            out.push_str(&short_name(attr));
            out.push('=');
            escape_2253(&attr_text(attr), &mut out);
        }
    }
    out
}

/// OpenSSL's short name for the attribute type, else its dotted OID.
fn short_name(attr: &AttributeTypeAndValue<'_>) -> String {
    let oid = attr.attr_type().to_id_string();
    let name = match oid.as_str() {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.13" => "description",
        "2.5.4.15" => "businessCategory",
        "2.5.4.17" => "postalCode",
        "2.5.4.41" => "name",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.3.6.1.4.1.311.60.2.1.1" => "jurisdictionL",
        "1.3.6.1.4.1.311.60.2.1.2" => "jurisdictionST",
        "1.3.6.1.4.1.311.60.2.1.3" => "jurisdictionC",
        _ => return oid,
    };
    name.to_string()
}

/// The attribute value as text, converting the legacy string types the way
/// OpenSSL's UTF8_CONVERT does.
pub(crate) fn attr_text(attr: &AttributeTypeAndValue<'_>) -> String {
    if let Ok(s) = attr.as_str() {
        return s.to_string();
    }
    let value = attr.attr_value();
    let data = value.data;
    match value.tag() {
        // UCS-2 big-endian; lone surrogates become U+FFFD.
        Tag::BmpString => char::decode_utf16(
            data.chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]])),
        )
        .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect(),
        // UCS-4 big-endian.
        Tag::UniversalString => data
            .chunks_exact(4)
            .map(|c| {
                char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .unwrap_or(char::REPLACEMENT_CHARACTER)
            })
            .collect(),
        // OpenSSL treats T61String as Latin-1.
        Tag::TeletexString => data.iter().map(|&b| char::from(b)).collect(),
        Tag::VisibleString | Tag::GeneralString | Tag::GraphicString => {
            String::from_utf8_lossy(data).into_owned()
        }
        _ => {
            let mut hex = String::from("#");
            for b in attr.as_slice() {
                hex.push_str(&format!("{b:02X}"));
            }
            hex
        }
    }
}

/// Appends `value` with RFC 2253 escaping, as ASN1_STRFLGS_ESC_2253 does.
fn escape_2253(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
    use x509_parser::prelude::FromDer;

    fn subject_of(dn: DistinguishedName) -> String {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn;
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.der()).unwrap();
        format_dn(parsed.subject())
    }

    #[test]
    fn dn_is_reversed_with_short_names_like_syslog_ng() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "HU");
        dn.push(DnType::LocalityName, "Budapest");
        dn.push(DnType::OrganizationName, "Example Inc");
        dn.push(DnType::OrganizationalUnitName, "IT");
        dn.push(DnType::CommonName, "host.example.com");
        assert_eq!(
            subject_of(dn),
            "CN=host.example.com, OU=IT, O=Example Inc, L=Budapest, C=HU"
        );
    }

    #[test]
    fn dn_values_are_rfc2253_escaped() {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Foo, Bar + \"Baz\" ");
        dn.push(DnType::CommonName, "#hash");
        dn.push(DnType::CustomDnType(vec![1, 2, 3, 4]), "x");
        assert_eq!(
            subject_of(dn),
            r#"1.2.3.4=x, CN=\#hash, O=Foo\, Bar \+ \"Baz\"\ "#
        );
    }
}
