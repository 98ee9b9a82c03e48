//! TLS trust policy: builds the rustls `ServerConfig` for a `[source.tls]`
//! table, decides which client certificates are accepted, names the reason
//! when a handshake is refused, and extracts the client identity.
//!
//! This module is sans-IO: it reads config files at build time and
//! otherwise only makes decisions. The io_uring shard moves the bytes
//! through `rustls::server::UnbufferedServerConnection::new(config)`.
//!
//! # `[source.tls]` options
//!
//! | key               | default                     | meaning |
//! |-------------------|-----------------------------|---------|
//! | `cert_file`       | none, required              | PEM server certificate chain, leaf first |
//! | `key_file`        | none, required              | PEM private key of `cert_file`: PKCS#8, SEC1 (EC) or PKCS#1 (RSA); not encrypted |
//! | `pkcs12_file`     | none                        | not supported: the error gives the `openssl pkcs12` commands to convert it to PEM |
//! | `ca_file`         | none                        | PEM file of CAs trusted to sign client certificates |
//! | `ca_dir`          | none                        | folder of CA files (OpenSSL hashed `c_rehash` layout works; hash names not required) |
//! | `crl_file`        | none                        | one CRL file, PEM (one or more CRLs) or DER |
//! | `crl_dir`         | none                        | folder of PEM CRL files (`<hash>.r0` layout works; names not required) |
//! | `peer_verify`     | `"required-trusted"`        | `optional-untrusted`, `optional-trusted`, `required-untrusted`, `required-trusted`; aliases `yes` (= required-trusted), `no` (= optional-untrusted), TOML `true`/`false`; `_` or `-`, any case |
//! | `trusted_dn`      | `[]`                        | subject DN patterns, `*` and `?` wildcards, DN format below |
//! | `trusted_keys`    | `[]`                        | certificate fingerprints: SHA-256 or SHA-1, `AA:BB:..` any case, optional `SHA256:`/`SHA1:` prefix (syslog-ng prints `SHA1:..`) |
//! | `permitted_peer`  | `[]`                        | rsyslog `x509/name`: matched against every DNS SAN and the CN; `*` matches inside one label |
//! | `allow_unverified_names` | `false`              | lets a `*-untrusted` mode use `trusted_dn`/`permitted_peer` without `trusted_keys` (see below) |
//! | `tls_version_min` | `"1.2"`                     | lowest version offered: `"1.2"` or `"1.3"` (also `"TLSv1.2"`, bare `1.2`) |
//! | `tls_version_max` | `"1.3"`                     | highest version offered |
//! | `cipher_suites`   | `[]` = RFC 9662 list below  | suites in server preference order; IANA or OpenSSL names, an entry may be an OpenSSL `a:b:c` list |
//! | `kx_groups`       | `[]` = X25519, secp256r1, secp384r1, X25519MLKEM768 | key-exchange groups (syslog-ng `ecdh-curve-list`): `X25519`, `secp256r1`/`P-256`/`prime256v1`, `secp384r1`/`P-384`, `X25519MLKEM768`, `SecP256r1MLKEM768`, `MLKEM768`, `MLKEM1024` |
//!
//! Relative paths resolve against the folder of the config file
//! (`TlsSettings::resolve_paths`). The same table is in
//! `settings::OPTIONS`, checked against the struct by a test.
//!
//! Default suites, in this server preference order (`ignore_client_order`):
//! TLS 1.3 `TLS_AES_128_GCM_SHA256`, `TLS_AES_256_GCM_SHA384`,
//! `TLS_CHACHA20_POLY1305_SHA256`; TLS 1.2 `ECDHE-ECDSA-AES128-GCM-SHA256`,
//! `ECDHE-RSA-AES128-GCM-SHA256` (RFC 9662's mandatory suite),
//! `ECDHE-ECDSA-AES256-GCM-SHA384`, `ECDHE-RSA-AES256-GCM-SHA384`, then the
//! two ChaCha20 ones. AES-GCM comes first because it is about twice as fast
//! as ChaCha20 on AES-NI hardware. No CBC, no RSA key exchange, no TLS
//! below 1.2: rustls implements none of them.
//!
//! # `peer_verify` modes (syslog-ng semantics)
//!
//! | mode               | cert required | chain, dates, CRL checked | signature (key possession) checked |
//! |--------------------|---------------|---------------------------|------------------------------------|
//! | optional-untrusted | no            | no                        | yes, if a cert is sent             |
//! | optional-trusted   | no            | yes, if a cert is sent    | yes, if a cert is sent             |
//! | required-untrusted | yes           | no                        | yes                                |
//! | required-trusted   | yes           | yes                       | yes                                |
//!
//! A certificate is requested in every mode (syslog-ng sends no request in
//! optional-untrusted; we do, so the identity of clients that have a
//! certificate is logged). The request carries no CA names, so clients send
//! their certificate whatever CA issued it and a wrong CA is reported as
//! `unknown_ca`, not as a missing certificate. The `*-trusted` modes need
//! `ca_file` or `ca_dir`. In the `*-untrusted` modes CA and CRL files are
//! still loaded (typos are reported) but not used.
//!
//! # Trust-check order
//!
//! 1. certificate present (if required): else `no_client_cert`;
//! 2. in `*-trusted` modes, webpki chain validation against the CAs:
//!    `unknown_ca`, `expired`, `not_yet_valid`, `revoked`, `crl_expired`,
//!    `wrong_purpose` (extendedKeyUsage present without clientAuth);
//! 3. `trusted_keys`: `fingerprint_not_trusted`;
//! 4. `trusted_dn`: `dn_not_trusted`;
//! 5. `permitted_peer`: `peer_not_permitted`;
//! 6. the CertificateVerify signature: `bad_certificate`.
//!
//! The first failing check is the reported reason, and every configured
//! check must pass. Steps 2-4 are syslog-ng's order (fingerprint before DN,
//! both after the chain). Unlike syslog-ng, which skips trusted-keys and
//! trusted-dn in the `*-untrusted` modes, steps 3-5 apply to every presented
//! certificate in every mode: a configured pin is never silently ignored.
//! `required-untrusted` + `trusted_keys` is thus rsyslog's
//! `x509/fingerprint` mode (pinned self-signed certificates, no CA).
//!
//! Names without a voucher are refused: a `*-untrusted` mode with
//! `trusted_dn` or `permitted_peer` but no `trusted_keys` is a config error
//! (`check-config` and start-up), because no CA checks the certificate and
//! anyone can make a self-signed one that claims a matching name, be
//! accepted, and be logged under it. `allow_unverified_names = true` says
//! that this is wanted (e.g. names used only to route, not to trust).
//! Deliberate difference: syslog-ng accepts a client certificate whose
//! extendedKeyUsage lacks clientAuth (it only warns); we refuse it
//! (`wrong_purpose`), as webpki does.
//!
//! # DN format for `trusted_dn`
//!
//! Exactly syslog-ng's (OpenSSL `X509_NAME_print_ex` with
//! `XN_FLAG_SEP_CPLUS_SPC | XN_FLAG_DN_REV | ASN1_STRFLGS_ESC_2253 |
//! ASN1_STRFLGS_UTF8_CONVERT`): RDNs in reverse encoding order, so the usual
//! certificate prints as `CN=host.example.com, OU=IT, O=Example Inc,
//! L=Budapest, C=HU`; `, ` between RDNs, ` + ` inside a multi-valued RDN;
//! OpenSSL short names (`CN`, `O`, `OU`, `L`, `ST`, `C`, `emailAddress`,
//! `DC`, `UID`, ...), dotted OIDs otherwise; no spaces around `=`; UTF-8
//! values with RFC 2253 backslash escapes for `,+"\<>;`, a leading `#` or
//! space and a trailing space. Patterns use GLib `g_pattern_match_simple`
//! rules: `*` any run of characters (crossing `, `), `?` one character,
//! case-sensitive, whole string. syslog-ng's own example
//! `"*, O=Example Inc, ST=Some-State, C=*"` works unchanged. The identity's
//! `client_issuer` uses the same format.
//!
//! # CRLs
//!
//! `crl_file` and every PEM CRL in `crl_dir` are loaded together; a CRL that
//! does not parse fails the config (a silently dropped CRL would let revoked
//! clients in) with the field at fault and how to regenerate it; an empty
//! `crl_dir` only logs a warning at start-up (as syslog-ng). CRLs as
//! `openssl ca -gencrl` writes them without a `crlnumber` file (v1, or v2
//! without CRL extensions), which webpki refuses, are checked by `crl.rs`
//! (see its module doc); the rest by webpki. The
//! whole chain is checked (syslog-ng sets `CRL_CHECK | CRL_CHECK_ALL`):
//! - a certificate listed in a CRL of its issuer is refused: `revoked`;
//! - a certificate whose issuer has no CRL loaded is accepted (syslog-ng
//!   ignores OpenSSL's "unable to get CRL" the same way);
//! - a CRL past its nextUpdate refuses the certificates it covers:
//!   `crl_expired` (fail closed, as OpenSSL; the hint says to publish a
//!   fresh CRL and reload). CRLs are read at start and on reload only.
//!
//! # `ca_dir`
//!
//! Every regular file in the folder (symlinks followed, sorted by name,
//! at most 10,000 entries, 16 MiB each) that parses as PEM certificates is
//! loaded; other files (CRLs, READMEs, keys) are skipped; duplicates through
//! `c_rehash` symlinks count once. A folder without a usable certificate is
//! an error. Unlike OpenSSL's lazy hash lookup, the hash names are not
//! needed, and changes are seen on reload, not live.
//!
//! # Sessions, tickets and 0-RTT
//!
//! - No TLS 1.3 session tickets (`send_tls13_tickets = 0`): loggen never
//!   reads from its socket, so tickets would sit unread in its receive
//!   buffer; closing a socket with unread data makes Linux send RST instead
//!   of FIN and drop what loggen had not sent yet, so its last messages
//!   would look lost. Syslog connections are long-lived, so resumption
//!   would save next to nothing.
//! - No TLS 1.2 session-ID resumption either: a resumed session skips
//!   client-certificate checks, so after a reload with a new CA or CRL an
//!   old session could bypass the new policy. Every handshake is full.
//! - No 0-RTT (`max_early_data_size = 0`): early data is replayable, and a
//!   replayed log line is a forged log line.
//! - `enable_secret_extraction = true`, for kTLS offload.
//! - The aws-lc-rs RNG is warmed up in `build_server_config`, so the first
//!   handshake does not pay its 30-50 ms seeding.
//!
//! # `pkcs12_file`
//!
//! Refused with a clear error. The only maintained pure-Rust PKCS#12
//! reader (p12-keystore 0.4) depends on pre-release RustCrypto crates and
//! would add a second crypto stack beside aws-lc-rs for a one-off file
//! conversion; `openssl pkcs12 -in f.p12 -nodes` does that conversion.
//!
//! # Handshake failures
//!
//! `HandshakeFailure::classify(&rustls::Error)` gives the reason; `label()`
//! is the stable counter label, `hint()` what the admin should do, and
//! `Display` the short reason. Policy refusals travel through rustls as
//! `CertificateError::Other(OtherError(Arc<PolicyRefusal>))`; the
//! `PolicyRefusal` Display (e.g. the DN that did not match) is the detail
//! for the log line; the certificate's names in it are quoted with control
//! and bidi characters escaped (`\u{1b}`), so a name cannot forge a log line. `looks_like_tls` sniffs the first bytes to report
//! `not_tls` for plaintext on a TLS port.
//!
//! # Client identity
//!
//! `PeerIdentity::from_parts` runs once per connection after the handshake:
//! TLS version, IANA cipher name, and for a client certificate its first CN,
//! its SANs (DNS, IP, e-mail, URI values), its SHA-256 fingerprint
//! (`AA:BB:..`, pasteable into `trusted_keys`) and its issuer DN (format
//! above). Escaping those strings into JSON output is the writer's job.
//!
//! # Reload
//!
//! `build_server_config` is a pure function of the settings and the files;
//! `ServerConfigCell` (reload.rs) calls it again on SIGHUP and swaps the
//! `Arc` only on success. Connections keep the config they started with.
//! One reload rule needs the config in force: a `crl_dir` emptied since the
//! last load is refused (`CrlDirEmptied`), and the old CRLs stay.

mod chain;
mod client_config;
mod client_settings;
mod crl;
mod dev_pki;
mod dn;
pub mod driver;
mod error;
mod failure;
mod fingerprint;
mod glob;
mod identity;
mod load;
mod peer_name;
mod policy;
mod reload;
mod server_config;
mod settings;
mod suites;
mod verifier;

#[cfg(test)]
mod tests;

pub use client_config::{build_client_config, server_name_for};
pub use client_settings::{ClientTlsConfig, CLIENT_OPTIONS};
pub use dev_pki::{ensure_dev_pki, DevPki, DevPkiError, DEV_CLIENT_CN};
pub use error::TlsConfigError;
pub use failure::{looks_like_tls, refusal_detail, HandshakeFailure};
pub use identity::PeerIdentity;
pub use policy::PolicyRefusal;
pub use reload::ServerConfigCell;
pub use server_config::build_server_config;
pub use settings::{PeerVerify, TlsSettings, TlsVersion, OPTIONS};
pub use suites::{iana_name, valid_group_names, valid_suite_names};
pub use verifier::PolicyVerifier;
