//! Writes the seed corpora in `fuzz/corpus/<target>/` from valid inputs:
//! framed messages, real TLS records from the fixed-key handshake (see
//! `src/det_tls.rs`), and configs shaped like the README's.
//!
//!     cd fuzz && cargo run --example gen_corpus
//!
//! Deterministic: rerunning it rewrites the same files. It also checks that
//! every record seed decrypts, so a change in the handshake (a rustls
//! update) that changes the fixed keys is noticed here.

use std::fs;
use std::path::Path;

use ringest_fuzz::det_tls::{handshake, is_tls13, SUITES};
use ringest_fuzz::record_run::feed;
use rustls::ContentType;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn octet(msg: &[u8]) -> Vec<u8> {
    [format!("{} ", msg.len()).as_bytes(), msg].concat()
}

fn framing() {
    // [flags: mode 0 octet / 1 newline / 2 auto, +4 drop][max][n][n sizes][stream]
    let msg = b"<165>1 2026-11-29T10:00:00Z host app 1 - - hello";
    let octets = [
        octet(msg),
        octet(b"<13>1 - - - - - - with LF\n"),
        octet(b"x"),
    ]
    .concat();
    // (name, [flags, max], piece sizes, stream)
    type Seed = (&'static str, [u8; 2], Vec<u8>, Vec<u8>);
    let seeds: Vec<Seed> = vec![
        ("octet", [0, 255], vec![], octets.clone()),
        ("octet_split", [0, 64], vec![3, 1, 17], octets.clone()),
        ("octet_drop_small_max", [4, 8], vec![5], octets.clone()),
        ("auto_octet", [2, 128], vec![2], octets),
        (
            "leading_zeros",
            [0, 32],
            vec![1],
            b"000005 hello00 3 abc".to_vec(),
        ),
        (
            "huge_length",
            [0, 16],
            vec![7],
            b"9999999999 xxxxxxxxxxxxxxxxxxxx".to_vec(),
        ),
        (
            "eleven_digits",
            [0, 16],
            vec![],
            b"00000000003 abc".to_vec(),
        ),
        (
            "crlf_between",
            [0, 16],
            vec![4],
            b"5 hello\r\n5 world\n\n3 abc".to_vec(),
        ),
        ("missing_space", [0, 16], vec![], b"12\nabc".to_vec()),
        (
            "ends_mid_frame",
            [0, 16],
            vec![2],
            b"3 abc25 <1>short".to_vec(),
        ),
        (
            "newline",
            [1, 64],
            vec![],
            b"<13>a\n\n<14>b\r\nunterminated".to_vec(),
        ),
        (
            "newline_oversize",
            [1, 5],
            vec![2, 9],
            b"abc\n0123456789\nxy\n".to_vec(),
        ),
        (
            "newline_drop",
            [5, 5],
            vec![1],
            b"abc\n0123456789\nxy\n".to_vec(),
        ),
        (
            "auto_newline",
            [2, 12],
            vec![6],
            b"<13>a\n<14>an oversize line\r\n1234".to_vec(),
        ),
        (
            "non_utf8",
            [2, 64],
            vec![],
            [b"9 <1>\xff\xfe\x00\xc3(\n".as_slice()].concat(),
        ),
    ];
    for (name, [flags, max], sizes, stream) in seeds {
        let mut seed = vec![flags, max, sizes.len() as u8];
        seed.extend_from_slice(&sizes);
        seed.extend_from_slice(&stream);
        write("framing", name, &seed);
    }
}

fn config_toml() {
    let readme = r#"[[source]]
name = "tls"
listen = "127.0.0.1:6514"
transport = "tls"            # tls | tcp
framing = "auto"             # octet-counted | newline | auto
max_message_bytes = 65536
[source.tls]
cert_file = "pki/server.pem"
key_file = "pki/server.key"
ca_file = "pki/ca.pem"
peer_verify = "required-trusted"

[[destination]]
name = "messages"
type = "file"
path = "data/messages.log"
format = "raw"               # raw | json
fsync = "batch"

[stats]
listen = "127.0.0.1:9514"    # GET /metrics, Prometheus text format
"#;
    write("config_toml", "readme_minimal", readme.as_bytes());
    let every_key = r#"shards = 2
ring_capacity_batches = 64
batch_max_bytes = 262144
recv_buffer_bytes = 32768
recv_buffers_per_shard = 512
uring_entries = 1024
drain_timeout_ms = 5000

[[source]]
name = "tls"
listen = "[::1]:6514"
transport = "tls"
framing = "octet-counted"
max_message_bytes = 16
oversize = "drop"
max_connections = 10000
handshake_timeout_ms = 10000
listen_backlog = 1024
keepalive_idle_ms = 0
ktls = "off"
destinations = ["json", "raw"]
[source.tls]
cert_file = "/etc/ringest/server.pem"
key_file = "server.key"
pkcs12_file = "bundle.p12"
ca_dir = "ca.d"
crl_file = "crl.pem"
crl_dir = "crl.d"
peer_verify = "optional-untrusted"
trusted_dn = ["*, O=Example, C=??"]
trusted_keys = ["SHA256:AA:BB"]
permitted_peer = ["*.example.org"]
tls_version_min = "1.3"
tls_version_max = "1.3"
cipher_suites = ["TLS13_AES_256_GCM_SHA384"]
kx_groups = ["X25519"]

[[source]]
name = "plain"
listen = "0.0.0.0:514"
transport = "tcp"
framing = "newline"

[[destination]]
name = "json"
type = "file"
path = "json.log"
format = "json"
fsync = "interval"
fsync_interval_ms = 1000

[[destination]]
name = "raw"
type = "file"
path = "/var/log/raw.log"
fsync = "never"
"#;
    write("config_toml", "every_key", every_key.as_bytes());
    let broken: [(&str, &str); 6] = [
        ("no_source", "[[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x\"\n"),
        ("tls_without_table", "[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tls\"\n[[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x\"\n"),
        ("unknown_destination", "[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\ndestinations = [\"nope\"]\n[[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x\"\n"),
        ("out_of_range", "recv_buffers_per_shard = 1000\n[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\nmax_message_bytes = 99999999999\n"),
        ("unknown_key", "colour = \"blue\"\n"),
        ("bad_enum", "[[source]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\ntransport = \"tcp\"\nframing = \"lines\"\n"),
    ];
    for (name, text) in broken {
        write("config_toml", name, text.as_bytes());
    }
}

/// Records a client could send, per suite: data, empties, a warning
/// alert, a KeyUpdate (TLS 1.3) and data after it, then close_notify.
fn record_stream(suite: usize) -> Vec<u8> {
    let mut f = handshake(suite).forger;
    let mut wire = Vec::new();
    wire.extend(f.app_data(&octet(b"<165>1 2026-11-29T10:00:00Z host app 1 - - hello")));
    wire.extend(f.app_data(b""));
    wire.extend(f.record(ContentType::Alert, &[1, 90]));
    if is_tls13(SUITES[suite]) {
        wire.extend(f.key_update(true));
    }
    wire.extend(f.app_data(b"<13>after\n"));
    wire.extend(f.record(ContentType::Alert, &[1, 0]));
    wire
}

fn record_bytes() {
    for (suite, name) in [
        "tls13_aes128",
        "tls13_aes256",
        "tls13_chacha",
        "tls12_rsa_aes128",
        "tls12_ecdsa_aes256",
        "tls12_ecdsa_chacha",
    ]
    .iter()
    .enumerate()
    {
        let wire = record_stream(suite);
        // Sanity: the seed decrypts under a fresh handshake's keys.
        let fed = feed(&mut handshake(suite).reader, &[&wire]);
        assert_eq!(fed.error, None, "{name}");
        assert!(
            fed.event.is_some() && fed.plaintext.ends_with(b"<13>after\n"),
            "{name}"
        );

        let mut seed = vec![suite as u8, 0];
        seed.extend_from_slice(&wire);
        write("record_bytes", &format!("{name}_whole"), &seed);
        let mut seed = vec![suite as u8, 2, 7, 0, 100, 0];
        seed.extend_from_slice(&wire);
        write("record_bytes", &format!("{name}_pieces"), &seed);
        let mut f = handshake(suite).forger;
        let mut seed = vec![suite as u8, 0];
        seed.extend(f.app_data(&[b'a'; 1000]));
        seed.extend(f.record(ContentType::Alert, &[2, 40]));
        write("record_bytes", &format!("{name}_fatal_alert"), &seed);
    }
    write(
        "record_bytes",
        "garbage_header",
        b"\x00\x00GET / HTTP/1.1\r\n",
    );
    write(
        "record_bytes",
        "oversize_header",
        &[2, 0, 23, 3, 3, 0x48, 0x01],
    );
}

fn record_mutate() {
    // [suite][script_len u16][script][mutation count][mutations][n][sizes u16]
    let scripts: [(&str, Vec<u8>, Vec<u8>); 7] = [
        (
            "data",
            vec![0, 5, b'h', b'e', b'l', b'l', b'o', 1, 3, b'a', b'b', b'c'],
            vec![0, 0],
        ),
        (
            "empties_then_data",
            vec![5, 33, 0, 2, b'h', b'i'],
            vec![0, 0],
        ),
        ("alerts", vec![6, 90, 0, 1, b'x', 6, 0, 6, 6, 0], vec![0, 0]),
        (
            "key_updates",
            vec![8, 0, 1, b'a', 136, 11, 31, 0, 1, b'b'],
            vec![0, 1, 3, 0],
        ),
        ("oversize", vec![4, 9, 0, 1, b'z'], vec![0, 0]),
        (
            "raw_types",
            vec![10, 23, 2, b'o', b'k', 10, 0, 3, 1, 0, 0, 9, 3, 22, 4, 0],
            vec![0, 0],
        ),
        (
            "bit_flip",
            vec![0, 4, b'a', b'b', b'c', b'd', 0, 2, b'e', b'f'],
            vec![1, 0, 30, 0, 0],
        ),
    ];
    for suite in [0u8, 2, 3, 5] {
        for (name, script, tail) in &scripts {
            let mut seed = vec![suite];
            seed.extend_from_slice(&(script.len() as u16).to_le_bytes());
            seed.extend_from_slice(script);
            seed.extend_from_slice(tail);
            write("record_mutate", &format!("{name}_{suite}"), &seed);
        }
    }
}

fn main() {
    // A fixed-key handshake must give the same keys twice in a row.
    let a = handshake(1).forger.app_data(b"same keys?");
    assert_eq!(
        a,
        handshake(1).forger.app_data(b"same keys?"),
        "keys differ between handshakes"
    );
    framing();
    config_toml();
    record_bytes();
    record_mutate();
    println!(
        "corpora written under {}/corpus",
        env!("CARGO_MANIFEST_DIR")
    );
}
