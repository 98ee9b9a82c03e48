//! End-to-end TLS trust policy (issue 3): the real `ringest` binary, a PKI
//! generated with rcgen, real sockets, the real config keys, the JSON
//! output, the refusal log lines and the metrics.
//!
//! The in-memory unit matrix (engine/src/tls/tests/matrix.rs) proves the
//! verdicts of `build_server_config`; this file proves the wiring around
//! it: `[source.tls]` keys reach the verifier, each source keeps its own
//! policy, a refusal is counted under the right label and logged once with
//! the peer address, nothing of a refused client is written, and every
//! message of an accepted client carries its identity. It also proves
//! SIGHUP reload of the CA and server certificate without dropping
//! established connections.
//!
//! One ringest process serves every mode of the matrix, one source (one
//! port) per mode. Cells run one at a time, so each metric change belongs
//! to exactly one cell; refused cells are paced under the engine's log rate
//! limit (20 lines per second per shard) so every refusal is logged.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::version::{TLS12, TLS13};
use rustls::SupportedProtocolVersion;

use e2e::client::{close, octet_frame};
use e2e::jsonl::{self, Object};
use e2e::loopback;
use e2e::probe;
use e2e::server::{bin, free_port, metric_in, temp_dir, Server};
use e2e::trust_pki::{openssl_fingerprint, openssl_rehash, self_signed, Ca, Leaf, LeafSpec};

/// Messages per accepted connection, in 4 records: frames 0+1 together,
/// frame 2 alone, frame 3 split across two records.
const PER_CONN: usize = 4;
/// Refused cells start at least this far apart: the engine logs at most 20
/// refusals per second per shard and would suppress the rest.
const REFUSAL_SPACING: Duration = Duration::from_millis(70);

// ---------------------------------------------------------------- matrix

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Client {
    /// Signed by the trusted CA, CN/SAN client.example.com, O=Ringest Test, C=HU.
    Valid,
    NoCert,
    /// Same names, signed by a CA the server does not know.
    OtherCa,
    Expired,
    NotYetValid,
    /// Valid, but its serial is in the CA's CRL.
    Revoked,
    SelfSigned,
    /// Signed by the trusted CA, but CN=intruder.evil.test, O=Evil Corp, C=XX.
    WrongDn,
    /// Signed by the trusted CA, right DN pattern and name, not pinned.
    WrongFingerprint,
}

const CLIENTS: [Client; 9] = [
    Client::Valid,
    Client::NoCert,
    Client::OtherCa,
    Client::Expired,
    Client::NotYetValid,
    Client::Revoked,
    Client::SelfSigned,
    Client::WrongDn,
    Client::WrongFingerprint,
];

/// The columns: one source each. The first six are the peer_verify modes
/// and their aliases; the rest are required-trusted plus extra checks.
const MODES: [&str; 13] = [
    "optional_untrusted",
    "optional_trusted",
    "required_untrusted",
    "required_trusted",
    "alias_yes",
    "alias_no",
    "trusted_dn",
    "trusted_keys_sha256",
    "trusted_keys_sha1",
    "permitted_peer",
    "crl_file",
    "ca_dir_crl_dir",
    "keys_then_dn",
];

/// None = accepted; Some(label) = refused, counted under exactly that label.
type Expect = Option<&'static str>;
const OK: Expect = None;
const UCA: Expect = Some("unknown_ca");
const EXP: Expect = Some("expired");
const NYV: Expect = Some("not_yet_valid");
const REV: Expect = Some("revoked");
const NOC: Expect = Some("no_client_cert");
const DN: Expect = Some("dn_not_trusted");
const FPR: Expect = Some("fingerprint_not_trusted");
const PEER: Expect = Some("peer_not_permitted");

/// syslog-ng's semantics (tls/mod.rs): *-untrusted modes check nothing but
/// the pins; required modes refuse a missing cert; trusted modes validate
/// chain and dates; CRLs revoke; keys are checked before the DN
/// (`keys_then_dn` pins Valid and WrongDn and also sets the DN pattern:
/// WrongDn passes the pin and fails the DN, WrongFingerprint fails the pin
/// although its DN matches).
#[rustfmt::skip]
const TABLE: [(Client, [Expect; 13]); 9] = [
    //                     opt-untr opt-tr req-untr req-tr yes  no   dn   keys256 keys1 peer crl  cadir keys+dn
    (Client::Valid,            [OK, OK,  OK, OK,  OK,  OK, OK,  OK,  OK,  OK,   OK,  OK,  OK]),
    (Client::NoCert,           [OK, OK,  NOC, NOC, NOC, OK, NOC, NOC, NOC, NOC,  NOC, NOC, NOC]),
    (Client::OtherCa,          [OK, UCA, OK, UCA, UCA, OK, UCA, UCA, UCA, UCA,  UCA, UCA, UCA]),
    (Client::Expired,          [OK, EXP, OK, EXP, EXP, OK, EXP, EXP, EXP, EXP,  EXP, EXP, EXP]),
    (Client::NotYetValid,      [OK, NYV, OK, NYV, NYV, OK, NYV, NYV, NYV, NYV,  NYV, NYV, NYV]),
    (Client::Revoked,          [OK, OK,  OK, OK,  OK,  OK, OK,  FPR, FPR, OK,   REV, REV, FPR]),
    (Client::SelfSigned,       [OK, UCA, OK, UCA, UCA, OK, UCA, UCA, UCA, UCA,  UCA, UCA, UCA]),
    (Client::WrongDn,          [OK, OK,  OK, OK,  OK,  OK, DN,  FPR, FPR, PEER, OK,  OK,  DN]),
    (Client::WrongFingerprint, [OK, OK,  OK, OK,  OK,  OK, OK,  FPR, FPR, OK,   OK,  OK,  FPR]),
];

const REVOKED_SERIAL: u64 = 666;

/// The engine's short text for each reason label (`HandshakeFailure`'s
/// Display), which the refusal log line carries.
fn reason_text(label: &str) -> &'static str {
    match label {
        "unknown_ca" => "client certificate signed by an unknown CA",
        "expired" => "client certificate expired",
        "not_yet_valid" => "client certificate not yet valid",
        "revoked" => "client certificate revoked",
        "no_client_cert" => "no client certificate",
        "dn_not_trusted" => "client certificate DN not trusted",
        "fingerprint_not_trusted" => "client certificate fingerprint not trusted",
        "peer_not_permitted" => "client certificate name not permitted",
        other => panic!("no text for {other}"),
    }
}

/// A client's certificate as files, with what the server should report.
struct Creds {
    leaf: Leaf,
    sha256: String,
    sha1: String,
}

struct Fixture {
    dir: PathBuf,
    ca: Ca,
    server_cert: PathBuf,
    server_key: PathBuf,
    ca_file: PathBuf,
    ca_dir: PathBuf,
    crl_file: PathBuf,
    crl_dir: PathBuf,
    clients: BTreeMap<Client, Option<Creds>>,
}

impl Fixture {
    fn new(dir: &Path) -> Fixture {
        let pki = dir.join("pki");
        let ca = Ca::new("Ringest Matrix CA");
        let other_ca = Ca::new("Some Other CA");
        let (server_cert, server_key) = ca.issue(&LeafSpec::server(1)).write(&pki, "server");
        let ca_file = ca.write(&pki.join("ca.pem"));
        // syslog-ng style hashed folders: the CA in one, the CRL in another.
        let ca_dir = pki.join("ca.d");
        ca.write(&ca_dir.join("matrix-ca.pem"));
        openssl_rehash(&ca_dir);
        let crl = ca.crl_pem(&[REVOKED_SERIAL], (2090, 1, 1));
        let crl_file = pki.join("ca.crl.pem");
        std::fs::write(&crl_file, &crl).expect("crl");
        let crl_dir = pki.join("crl.d");
        std::fs::create_dir_all(&crl_dir).expect("crl dir");
        std::fs::write(crl_dir.join("matrix-ca.crl.pem"), &crl).expect("crl");
        openssl_rehash(&crl_dir);

        let valid = LeafSpec::client("client.example.com", 10);
        let leaves: Vec<(Client, Option<Leaf>)> = vec![
            (Client::Valid, Some(ca.issue(&valid))),
            (Client::NoCert, None),
            (Client::OtherCa, Some(other_ca.issue(&valid))),
            (
                Client::Expired,
                Some(ca.issue(&LeafSpec {
                    not_before: (2000, 1, 1),
                    not_after: (2001, 1, 1),
                    ..LeafSpec::client("expired.example.com", 11)
                })),
            ),
            (
                Client::NotYetValid,
                Some(ca.issue(&LeafSpec {
                    not_before: (2090, 1, 1),
                    not_after: (2091, 1, 1),
                    ..LeafSpec::client("future.example.com", 12)
                })),
            ),
            (
                Client::Revoked,
                Some(ca.issue(&LeafSpec::client("revoked.example.com", REVOKED_SERIAL))),
            ),
            (Client::SelfSigned, Some(self_signed(&valid))),
            (
                Client::WrongDn,
                Some(ca.issue(&LeafSpec {
                    org: "Evil Corp".into(),
                    country: "XX".into(),
                    ..LeafSpec::client("intruder.evil.test", 13)
                })),
            ),
            (
                Client::WrongFingerprint,
                Some(ca.issue(&LeafSpec::client("other.example.com", 14))),
            ),
        ];
        let clients = leaves
            .into_iter()
            .map(|(c, leaf)| {
                let creds = leaf.map(|leaf| {
                    let (cert, _) = leaf.write(&pki, &format!("{c:?}").to_lowercase());
                    Creds {
                        sha256: openssl_fingerprint(&cert, "sha256"),
                        sha1: openssl_fingerprint(&cert, "sha1"),
                        leaf,
                    }
                });
                (c, creds)
            })
            .collect();
        Fixture {
            dir: dir.to_path_buf(),
            ca,
            server_cert,
            server_key,
            ca_file,
            ca_dir,
            crl_file,
            crl_dir,
            clients,
        }
    }

    fn creds(&self, c: Client) -> Option<&Creds> {
        self.clients[&c].as_ref()
    }

    /// The `[source.tls]` lines of a mode, after cert_file/key_file.
    fn mode_tls(&self, mode: &str) -> String {
        let ca_file = format!("ca_file = {:?}\n", self.ca_file);
        let trusted = format!("{ca_file}peer_verify = \"required-trusted\"\n");
        let valid = self.creds(Client::Valid).expect("valid");
        let wrong_dn = self.creds(Client::WrongDn).expect("wrong dn");
        match mode {
            "optional_untrusted" | "optional_trusted" | "required_untrusted"
            | "required_trusted" => {
                format!("{ca_file}peer_verify = {:?}\n", mode.replace('_', "-"))
            }
            "alias_yes" => format!("{ca_file}peer_verify = \"yes\"\n"),
            "alias_no" => format!("{ca_file}peer_verify = \"no\"\n"),
            "trusted_dn" => format!("{trusted}trusted_dn = [\"*, O=Ringest Test, C=HU\"]\n"),
            "trusted_keys_sha256" => format!("{trusted}trusted_keys = [{:?}]\n", valid.sha256),
            // syslog-ng's `SHA1:` form, lower-cased: any case is accepted.
            "trusted_keys_sha1" => format!(
                "{trusted}trusted_keys = [{:?}]\n",
                format!("SHA1:{}", valid.sha1.to_lowercase())
            ),
            "permitted_peer" => format!("{trusted}permitted_peer = [\"*.example.com\"]\n"),
            "crl_file" => format!("{trusted}crl_file = {:?}\n", self.crl_file),
            "ca_dir_crl_dir" => format!(
                "ca_dir = {:?}\ncrl_dir = {:?}\npeer_verify = \"required-trusted\"\n",
                self.ca_dir, self.crl_dir
            ),
            "keys_then_dn" => format!(
                "{trusted}trusted_keys = [{:?}, {:?}]\ntrusted_dn = [\"*, O=Ringest Test, C=HU\"]\n",
                valid.sha256, wrong_dn.sha256
            ),
            other => panic!("unknown mode {other}"),
        }
    }

    fn config(&self, ports: &[u16], stats: u16) -> String {
        let mut cfg = String::from("shards = 1\ndrain_timeout_ms = 3000\n\n");
        for (mode, port) in MODES.iter().zip(ports) {
            cfg += &format!(
                "[[source]]\nname = \"{mode}\"\nlisten = \"127.0.0.1:{port}\"\ntransport = \"tls\"\n\
                 framing = \"octet-counted\"\nhandshake_timeout_ms = 5000\n\
                 [source.tls]\ncert_file = {:?}\nkey_file = {:?}\n{}\n",
                self.server_cert,
                self.server_key,
                self.mode_tls(mode)
            );
        }
        cfg += &format!(
            "[[destination]]\nname = \"json\"\ntype = \"file\"\nformat = \"json\"\n\
             path = \"data/matrix.jsonl\"\nfsync = \"never\"\n\n[stats]\nlisten = \"127.0.0.1:{stats}\"\n"
        );
        cfg
    }
}

fn message(mode: &str, client: Client, seq: usize) -> String {
    format!("<14>1 2026-11-26T00:00:00Z matrix-host policy - - - cell={mode}/{client:?} seq={seq}")
}

/// The 4 records of one session (see PER_CONN).
fn records(mode: &str, client: Client) -> Vec<Vec<u8>> {
    let frames: Vec<Vec<u8>> = (0..PER_CONN)
        .map(|i| {
            let mut f = Vec::new();
            octet_frame(&mut f, message(mode, client, i).as_bytes());
            f
        })
        .collect();
    vec![
        [frames[0].as_slice(), frames[1].as_slice()].concat(),
        frames[2].clone(),
        frames[3][..10].to_vec(),
        frames[3][10..].to_vec(),
    ]
}

/// `ringest_handshake_failures_total` samples of one source, by reason.
fn failures_by_reason(metrics: &str, source: &str) -> BTreeMap<String, u64> {
    let prefix = format!("ringest_handshake_failures_total{{source=\"{source}\",reason=\"");
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (reason, value) = rest.split_once("\"} ")?;
            Some((reason.to_string(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

fn written(metrics: &str, source: &str) -> u64 {
    metric_in(
        metrics,
        &format!("ringest_messages_written_total{{source=\"{source}\"}}"),
    )
}

struct Cell {
    mode: &'static str,
    client: Client,
    expect: Expect,
    session: probe::Session,
}

fn run_matrix(tag: &str, versions: &[&'static SupportedProtocolVersion], version_name: &str) {
    let dir = temp_dir(tag);
    let fx = Fixture::new(&dir);
    let ports: Vec<u16> = MODES.iter().map(|_| free_port()).collect();
    let stats = free_port();
    let server = Server::start(&dir, &fx.config(&ports, stats));
    let ca_pem = fx.ca.pem();

    let mut mismatches = Vec::new();
    let mut cells = Vec::new();
    let started = Instant::now();
    for (col, mode) in MODES.iter().enumerate() {
        let addr = loopback(ports[col]);
        for (client, expects) in TABLE.iter() {
            let expect = expects[col];
            let cell_start = Instant::now();
            let creds = fx.creds(*client);
            let cfg = probe::config(
                &ca_pem,
                creds.map(|c| (c.leaf.cert_pem.as_str(), c.leaf.key_pem.as_str())),
                versions,
            );
            let before = server.metrics();
            let (w0, f0) = (written(&before, mode), failures_by_reason(&before, mode));
            let session = probe::session(addr, cfg, &records(mode, *client));
            // Wait for the verdict: PER_CONN messages written, or a failure counted.
            let deadline = Instant::now() + Duration::from_secs(10);
            let (w1, f1) = loop {
                let m = server.metrics();
                let (w, f) = (written(&m, mode), failures_by_reason(&m, mode));
                let settled = if expect.is_some() {
                    f != f0
                } else {
                    w >= w0 + PER_CONN as u64 || f != f0
                };
                if settled || Instant::now() >= deadline {
                    break (w, f);
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            let delta: BTreeMap<String, u64> = f1
                .iter()
                .map(|(r, v)| (r.clone(), v - f0.get(r).copied().unwrap_or(0)))
                .filter(|(_, d)| *d > 0)
                .collect();
            let got = format!(
                "written +{}, failures {delta:?}, client {:?}",
                w1 - w0,
                session
            );
            let ok = match expect {
                None => delta.is_empty() && w1 - w0 == PER_CONN as u64 && session.clean(),
                Some(label) => w1 == w0 && delta.len() == 1 && delta.get(label) == Some(&1),
            };
            if !ok {
                mismatches.push(format!(
                    "{mode:>20} x {client:<16?}: want {}, got {got}",
                    expect.unwrap_or("accept")
                ));
            }
            cells.push(Cell {
                mode,
                client: *client,
                expect,
                session,
            });
            if expect.is_some() {
                if let Some(rest) = REFUSAL_SPACING.checked_sub(cell_start.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
        }
    }
    let matrix_time = started.elapsed();
    assert_eq!(cells.len(), MODES.len() * CLIENTS.len());

    let stderr_path = server.stderr_path.clone();
    assert!(server.stop().success(), "ringest exits cleanly");
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let lines = jsonl::read_file(&dir.join("data/matrix.jsonl"));

    // Every output line belongs to one cell; group them by the cell tag.
    let mut by_cell: HashMap<String, Vec<&Object>> = HashMap::new();
    for l in &lines {
        let msg = l.req("message");
        let cell = msg
            .split(' ')
            .find_map(|w| w.strip_prefix("cell="))
            .unwrap_or_else(|| panic!("untagged output line {l:?}"));
        by_cell.entry(cell.to_string()).or_default().push(l);
    }
    let accepted = cells.iter().filter(|c| c.expect.is_none()).count();
    for cell in &cells {
        let key = format!("{}/{:?}", cell.mode, cell.client);
        let got = by_cell.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        let peer = cell.session.local.to_string();
        let refusal_lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(&format!("{peer} source {}: ", cell.mode)))
            .collect();
        match cell.expect {
            Some(label) => {
                if !got.is_empty() {
                    mismatches.push(format!("{key}: refused, yet {} lines written", got.len()));
                }
                // The reason, then either the hint or the policy's own detail
                // (the DN or fingerprint that did not match) before the hint.
                let want = format!(
                    "{peer} source {}: TLS handshake refused: {}",
                    cell.mode,
                    reason_text(label)
                );
                let line_ok = refusal_lines.len() == 1
                    && [" (hint: ", ": "]
                        .iter()
                        .any(|next| refusal_lines[0].contains(&format!("{want}{next}")))
                    && refusal_lines[0].contains(" (hint: ");
                if !line_ok {
                    mismatches.push(format!(
                        "{key}: want one log line containing {want:?}, got {refusal_lines:?}"
                    ));
                }
            }
            None => {
                if !refusal_lines.is_empty() {
                    mismatches.push(format!("{key}: accepted but logged {refusal_lines:?}"));
                }
                if let Err(e) = check_identity(&fx, cell, got, version_name) {
                    mismatches.push(format!("{key}: {e}"));
                }
            }
        }
    }
    assert!(
        !stderr.contains("suppressed"),
        "refusal log lines were rate-limited; the test paces too fast"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} cells wrong ({version_name}):\n{}\n(ringest log: {}; output: {})",
        mismatches.len(),
        cells.len(),
        mismatches.join("\n"),
        stderr_path.display(),
        dir.join("data/matrix.jsonl").display()
    );
    assert_eq!(
        lines.len(),
        accepted * PER_CONN,
        "only accepted cells write, each all of its messages"
    );
    eprintln!(
        "{tag}: {} cells ({accepted} accepted, {} refused) in {:.1?}",
        cells.len(),
        cells.len() - accepted,
        matrix_time
    );
    let _ = std::fs::remove_dir_all(&fx.dir);
}

/// Every line of an accepted cell: in order, complete, with the
/// connection's identity (or none without a client certificate).
fn check_identity(
    fx: &Fixture,
    cell: &Cell,
    got: &[&Object],
    version_name: &str,
) -> Result<(), String> {
    if got.len() != PER_CONN {
        return Err(format!("want {PER_CONN} lines, got {}", got.len()));
    }
    let mut wrong = Vec::new();
    for (seq, line) in got.iter().enumerate() {
        if let Err(e) = check_line(fx, cell, seq, line, version_name) {
            wrong.push(e);
        }
    }
    match wrong.first() {
        None => Ok(()),
        Some(first) => Err(format!(
            "{} of {PER_CONN} lines wrong; first: {first}",
            wrong.len()
        )),
    }
}

fn check_line(
    fx: &Fixture,
    cell: &Cell,
    seq: usize,
    line: &Object,
    version_name: &str,
) -> Result<(), String> {
    let want_msg = message(cell.mode, cell.client, seq);
    let checks: Vec<(&str, Option<String>, Option<String>)> = {
        let creds = fx.creds(cell.client);
        vec![
            (
                "message",
                line.str("message").map(String::from),
                Some(want_msg),
            ),
            (
                "source",
                line.str("source").map(String::from),
                Some(cell.mode.to_string()),
            ),
            (
                "peer",
                line.str("peer").map(String::from),
                Some(cell.session.local.to_string()),
            ),
            (
                "tls_version",
                line.str("tls_version").map(String::from),
                Some(version_name.to_string()),
            ),
            (
                "client_cn",
                line.str("client_cn").map(String::from),
                creds.map(|c| c.leaf.spec.cn.clone()),
            ),
            (
                "client_sha256",
                line.str("client_sha256").map(String::from),
                creds.map(|c| c.sha256.clone()),
            ),
            (
                "client_issuer",
                line.str("client_issuer").map(String::from),
                creds.map(|c| c.leaf.issuer_dn.clone()),
            ),
            (
                "client_sans",
                line.has("client_sans")
                    .then(|| line.strs("client_sans").join(",")),
                creds.map(|c| c.leaf.spec.dns_sans.join(",")),
            ),
        ]
    };
    for (field, have, want) in checks {
        if have != want {
            return Err(format!("line {seq}: {field}: want {want:?}, got {have:?}"));
        }
    }
    let cipher = line.str("cipher").unwrap_or("");
    if !cipher.starts_with("TLS_") {
        return Err(format!("line {seq}: cipher {cipher:?} is not an IANA name"));
    }
    let received = line.str("received").unwrap_or("");
    if received.len() != 30 || !received.ends_with('Z') || &received[10..11] != "T" {
        return Err(format!(
            "line {seq}: received {received:?} is not RFC 3339 UTC ns"
        ));
    }
    Ok(())
}

#[test]
fn trust_matrix_tls13_through_the_binary() {
    run_matrix("policy-matrix13", &[&TLS13], "TLSv1.3");
}

/// Under TLS 1.2 the server refuses before the client's Finished (the
/// client sees the alert during its handshake): another path through the
/// engine's handshake code, with the same verdicts, labels and log lines.
#[test]
fn trust_matrix_tls12_through_the_binary() {
    run_matrix("policy-matrix12", &[&TLS12], "TLSv1.2");
}

// ---------------------------------------------------------------- reload

/// The TLS files of the reload test's source, replaced atomically
/// (write + rename), as a deployment tool would.
struct ServerFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).expect("write new file");
    std::fs::rename(&tmp, path).expect("rename new file");
}

impl ServerFiles {
    fn install(&self, ca: &Ca, server: &Leaf) {
        replace(&self.ca, &ca.pem());
        replace(&self.cert, &server.cert_pem);
        replace(&self.key, &server.key_pem);
    }
}

fn reload_via_cli(server: &Server) {
    let pid = server.child.id().to_string();
    let out = Command::new(bin("ringest"))
        .args(["reload", "--pid", &pid])
        .output()
        .expect("run ringest reload");
    assert!(
        out.status.success(),
        "ringest reload failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("sent SIGHUP to {pid}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Waits until the stderr log has `n` lines containing `needle`.
fn wait_log(server: &Server, needle: &str, n: usize, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = server.stderr();
        if text.lines().filter(|l| l.contains(needle)).count() >= n {
            return text;
        }
        assert!(
            start.elapsed() < timeout,
            "no {n}x {needle:?} in the log within {timeout:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client that sends one numbered message per write on one connection
/// until told to stop, then closes cleanly. Returns how many it sent.
fn steady_sender(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<(SocketAddr, u64)> {
    std::thread::spawn(move || {
        let (local, s) = probe::open(addr, cfg);
        let mut s = s.expect("steady sender: handshake");
        let mut seq = 0u64;
        while !stop.load(Ordering::Acquire) {
            let mut frame = Vec::new();
            octet_frame(
                &mut frame,
                format!("<14>1 2026-11-26T00:00:00Z host steady - - - steady seq={seq}").as_bytes(),
            );
            s.write_all(&frame).expect("steady sender: write");
            seq += 1;
            sent.store(seq, Ordering::Release);
            if seq.is_multiple_of(20) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        close(s).expect("steady sender: clean close");
        (local, seq)
    })
}

fn one_shot(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    tag: &str,
    n: usize,
) -> probe::Session {
    let recs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut f = Vec::new();
            octet_frame(
                &mut f,
                format!("<14>1 2026-11-26T00:00:00Z host {tag} - - - {tag} seq={i}").as_bytes(),
            );
            f
        })
        .collect();
    probe::session(addr, cfg, &recs)
}

/// Issue 3's reload test, through `ringest reload --pid`:
/// - a connection established before the reload keeps sending through two
///   reloads and loses nothing (every sequence number once, in order, with
///   its original identity on every line);
/// - after CA + server cert + key are replaced, a client that trusts only
///   the new CA connects and delivers (so new handshakes use the new server
///   cert), a client still trusting only the old CA cannot verify the
///   server, and the old client cert is refused as `unknown_ca`;
/// - a garbage cert_file on the next reload keeps the new settings in
///   force, is logged, and counts in ringest_reload_errors_total.
#[test]
fn sighup_reload_swaps_ca_and_server_cert_without_dropping_connections() {
    let dir = temp_dir("policy-reload");
    let ca_a = Ca::new("Reload CA A");
    let ca_b = Ca::new("Reload CA B");
    let server_a = ca_a.issue(&LeafSpec::server(1));
    let server_b = ca_b.issue(&LeafSpec::server(2));
    let old_client = ca_a.issue(&LeafSpec::client("old-client.example.com", 10));
    let new_client = ca_b.issue(&LeafSpec::client("new-client.example.com", 11));
    let tls_dir = dir.join("tls");
    std::fs::create_dir_all(&tls_dir).expect("tls dir");
    let files = ServerFiles {
        ca: tls_dir.join("ca.pem"),
        cert: tls_dir.join("server.pem"),
        key: tls_dir.join("server.key"),
    };
    files.install(&ca_a, &server_a);

    let (port, stats) = (free_port(), free_port());
    let cfg = format!(
        "shards = 2\ndrain_timeout_ms = 3000\n\n[[source]]\nname = \"tls\"\n\
         listen = \"127.0.0.1:{port}\"\ntransport = \"tls\"\nframing = \"octet-counted\"\n\
         [source.tls]\ncert_file = \"tls/server.pem\"\nkey_file = \"tls/server.key\"\n\
         ca_file = \"tls/ca.pem\"\npeer_verify = \"required-trusted\"\n\n\
         [[destination]]\nname = \"json\"\ntype = \"file\"\nformat = \"json\"\n\
         path = \"data/out.jsonl\"\nfsync = \"never\"\n\n[stats]\nlisten = \"127.0.0.1:{stats}\"\n"
    );
    let server = Server::start(&dir, &cfg);
    let addr = loopback(port);
    let versions: &[&'static SupportedProtocolVersion] = &[&TLS13];
    let cfg_old = probe::config(
        &ca_a.pem(),
        Some((&old_client.cert_pem, &old_client.key_pem)),
        versions,
    );
    let cfg_new = probe::config(
        &ca_b.pem(),
        Some((&new_client.cert_pem, &new_client.key_pem)),
        versions,
    );
    // The old client cert, but trusting the new server cert: it gets as far
    // as the server's verdict on its certificate.
    let cfg_old_cert_new_ca = probe::config(
        &ca_b.pem(),
        Some((&old_client.cert_pem, &old_client.key_pem)),
        versions,
    );
    let written = || server.metric("ringest_messages_written_total{source=\"tls\"}");
    let unknown_ca = "ringest_handshake_failures_total{source=\"tls\",reason=\"unknown_ca\"}";

    // Before any reload: the new client is refused (unknown CA both ways).
    assert!(!one_shot(addr, cfg_new.clone(), "pre", 1).clean());

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let steady = steady_sender(addr, cfg_old.clone(), Arc::clone(&stop), Arc::clone(&sent));
    let t0 = Instant::now();
    while written() < 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "steady sender not flowing"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Reload 1: CA, server cert and key all replaced by CA B's.
    files.install(&ca_b, &server_b);
    reload_via_cli(&server);
    wait_log(
        &server,
        "source tls: TLS settings reloaded",
        1,
        Duration::from_secs(10),
    );
    let sent_at_reload = sent.load(Ordering::Acquire);
    assert_eq!(server.metric("ringest_reload_errors_total"), 0);

    let fresh = one_shot(addr, cfg_new.clone(), "fresh", 50);
    assert!(fresh.clean(), "client trusting only the new CA: {fresh:?}");
    let stale_trust = probe::open(addr, cfg_old.clone()).1;
    assert!(
        stale_trust.is_err(),
        "a client trusting only the old CA must not verify the new server cert"
    );
    let uca0 = server.metric(unknown_ca);
    let old = one_shot(addr, cfg_old_cert_new_ca.clone(), "oldcert", 3);
    assert_eq!(
        server.wait_metric(unknown_ca, uca0 + 1, Duration::from_secs(10)),
        uca0 + 1,
        "old client cert refused as unknown_ca: {old:?}"
    );
    let old_peer = old.local.to_string();
    let text = wait_log(
        &server,
        &format!("{old_peer} source tls: TLS handshake refused"),
        1,
        Duration::from_secs(5),
    );
    assert!(
        text.lines()
            .any(|l| l.contains(&old_peer)
                && l.contains("client certificate signed by an unknown CA")),
        "{text}"
    );

    // Reload 2: a garbage server cert. The CA-B settings stay in force.
    std::thread::sleep(Duration::from_millis(100));
    replace(&files.cert, "this is not a certificate\n");
    reload_via_cli(&server);
    let text = wait_log(
        &server,
        "reload failed, old TLS settings stay in force",
        1,
        Duration::from_secs(10),
    );
    assert!(
        text.lines()
            .any(|l| l.contains("source tls: reload failed") && l.contains("server.pem")),
        "the reload error names the source and the file:\n{text}"
    );
    assert_eq!(server.metric("ringest_reload_errors_total"), 1);
    let after_bad = one_shot(addr, cfg_new.clone(), "afterbad", 50);
    assert!(
        after_bad.clean(),
        "old (CA B) settings still serve: {after_bad:?}"
    );
    let uca1 = server.metric(unknown_ca);
    let _ = one_shot(addr, cfg_old_cert_new_ca.clone(), "oldcert2", 3);
    assert_eq!(
        server.wait_metric(unknown_ca, uca1 + 1, Duration::from_secs(10)),
        uca1 + 1,
        "old client cert still refused after the failed reload"
    );

    // The established connection kept going through both reloads.
    let t1 = Instant::now();
    while sent.load(Ordering::Acquire) < sent_at_reload + 500 {
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "steady sender stalled after reload"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Release);
    let (steady_peer, total) = steady.join().expect("steady sender");
    let want = total + 100;
    assert_eq!(
        server.wait_metric(
            "ringest_messages_written_total{source=\"tls\"}",
            want,
            Duration::from_secs(15)
        ),
        want
    );
    let stderr_path = server.stderr_path.clone();
    assert!(server.stop().success());
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();

    let lines = jsonl::read_file(&dir.join("data/out.jsonl"));
    assert_eq!(
        lines.len() as u64,
        want,
        "steady {total} + fresh 50 + afterbad 50"
    );
    let mut next_seq = 0u64;
    let mut new_lines = 0;
    for l in &lines {
        let msg = l.req("message");
        let seq: u64 = msg
            .rsplit_once("seq=")
            .and_then(|(_, s)| s.parse().ok())
            .unwrap_or_else(|| panic!("no seq in {msg}"));
        if msg.contains(" steady seq=") {
            assert_eq!(seq, next_seq, "steady connection: lost or reordered");
            next_seq += 1;
            assert_eq!(l.req("peer"), steady_peer.to_string());
            assert_eq!(l.req("client_cn"), "old-client.example.com");
            assert_eq!(l.req("client_issuer"), ca_a.dn());
        } else {
            assert!(
                msg.contains(" fresh seq=") || msg.contains(" afterbad seq="),
                "{msg}"
            );
            assert_eq!(l.req("client_cn"), "new-client.example.com");
            assert_eq!(l.req("client_issuer"), ca_b.dn());
            new_lines += 1;
        }
    }
    assert_eq!(next_seq, total);
    assert_eq!(new_lines, 100);
    assert!(
        total > sent_at_reload,
        "the old connection sent after the reload"
    );
    eprintln!(
        "reload: steady connection sent {total} ({} after the first reload), 0 lost; stderr {} lines",
        total - sent_at_reload,
        stderr.lines().count()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
