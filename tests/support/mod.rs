//! Shared helpers for the end-to-end tests.
pub mod client;
pub mod cmd;
pub mod json;
pub mod jsonl;
pub mod kafka;
pub mod loadgen;
pub mod peer;
pub mod pki;
pub mod probe;
pub mod server;
pub mod trust_pki;

use std::net::SocketAddr;

use pki::Pki;

/// A config with one TLS source, one plain TCP source and a raw file destination.
pub fn basic_config(
    pki: &Pki,
    tls: SocketAddr,
    tcp: SocketAddr,
    stats: SocketAddr,
    extra_source: &str,
) -> String {
    format!(
        r#"shards = 2
drain_timeout_ms = 3000

[[source]]
name = "tls"
listen = "{tls}"
transport = "tls"
framing = "auto"
handshake_timeout_ms = 1500
{extra_source}
{}
[[source]]
name = "tcp"
listen = "{tcp}"
transport = "tcp"
framing = "auto"
max_message_bytes = 1024

[[destination]]
name = "messages"
type = "file"
path = "data/messages.log"
fsync = "never"

[stats]
listen = "{stats}"
"#,
        source_tls(pki)
    )
}

/// A `[[destination]]` writing `format = "json"` lines to the file `path`
/// (no fsync: the tests read it while the server runs).
pub fn json_file_destination(name: &str, path: &str) -> String {
    format!(
        "[[destination]]\nname = \"{name}\"\ntype = \"file\"\npath = \"{path}\"\nformat = \"json\"\nfsync = \"never\"\n"
    )
}

/// The `[source.tls]` table of a mutual-TLS source with the test PKI
/// (`required-trusted`: the client certificate must chain to its CA).
pub fn source_tls(pki: &Pki) -> String {
    format!(
        "[source.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nca_file = \"{}\"\npeer_verify = \"required-trusted\"\n",
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca.display()
    )
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A relay: plain TCP in, forward over TLS with the test client certificate out.
pub fn relay_config(pki: &Pki, port: u16, stats: u16, upstream: &[String], extra: &str) -> String {
    let servers: Vec<String> = upstream.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        r#"shards = 2
drain_timeout_ms = 2000
[[source]]
name = "in"
listen = "127.0.0.1:{port}"
transport = "tcp"

[[destination]]
name = "upstream"
type = "forward"
servers = [{}]
reconnect_min_ms = 50
reconnect_max_ms = 1000
{extra}
[destination.tls]
ca_file = "{}"
cert_file = "{}"
key_file = "{}"
server_name = "localhost"

[stats]
listen = "127.0.0.1:{stats}"
"#,
        servers.join(", "),
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    )
}

/// Whether this kernel has kTLS (`TCP_ULP "tls"` works), asked the way
/// ringest's probe asks: the host tests of kTLS are about a kernel without it.
pub fn host_has_ktls() -> bool {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let c = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
    let ulp = b"tls";
    // SAFETY: setsockopt on a connected socket we own, with a live 3-byte
    // buffer and its length.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&c),
            libc::SOL_TCP,
            libc::TCP_ULP,
            ulp.as_ptr().cast(),
            ulp.len() as libc::socklen_t,
        )
    };
    rc == 0
}
