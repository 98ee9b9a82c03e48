//! End-to-end checks of the hardening items of issue #9, through the real
//! binary: `check-config` refusing trust settings that authenticate nobody,
//! and CRLs as `openssl ca -gencrl` writes them. (The stats endpoint's
//! EMFILE backoff is a unit test in stats_http.rs: an e2e version could not
//! make the process run out of descriptors deterministically.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rustls::version::TLS13;

use e2e::client::octet_frame;
use e2e::loopback;
use e2e::probe;
use e2e::server::{bin, free_port, temp_dir, Server};
use e2e::trust_pki::{Ca, LeafSpec};

/// Runs `openssl` in `dir`; returns stdout, panics with stderr on failure.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (install openssl: tests/install-deps.sh)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An `openssl ca` set up the way its man page starts one: no `crlnumber`
/// file, no `crl_extensions`.
struct OpensslCa {
    dir: PathBuf,
}

const OPENSSL_CA_CNF: &str = "\
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = .
database = index.txt
new_certs_dir = .
certificate = ca.pem
private_key = ca.key
serial = serial
default_md = sha256
default_days = 365
default_crl_days = 30
policy = policy_any
copy_extensions = none
[ policy_any ]
commonName = supplied
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = OpenSSL Test CA
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ client ]
basicConstraints = CA:false
keyUsage = digitalSignature
extendedKeyUsage = clientAuth
";

impl OpensslCa {
    fn new(dir: PathBuf) -> OpensslCa {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.cnf"), OPENSSL_CA_CNF).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-config",
                "ca.cnf",
                "-extensions",
                "v3_ca",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3650",
            ],
        );
        OpensslCa { dir }
    }

    /// A client certificate for `cn` signed by `openssl ca`: (cert, key) PEM.
    fn issue(&self, cn: &str) -> (String, String) {
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{cn}.key"),
                "-out",
                &format!("{cn}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-extensions",
                "client",
                "-in",
                &format!("{cn}.csr"),
                "-out",
                &format!("{cn}.pem"),
            ],
        );
        let read = |ext: &str| std::fs::read_to_string(self.dir.join(format!("{cn}.{ext}")));
        (read("pem").unwrap(), read("key").unwrap())
    }

    fn revoke(&self, cn: &str, reason: Option<&str>) {
        let cert = format!("{cn}.pem");
        let mut args = vec!["ca", "-config", "ca.cnf", "-revoke", cert.as_str()];
        if let Some(r) = reason {
            args.extend(["-crl_reason", r]);
        }
        openssl(&self.dir, &args);
    }

    /// `openssl ca -gencrl`; returns the CRL's path and its `openssl crl -text`.
    fn gencrl(&self) -> (PathBuf, String) {
        openssl(
            &self.dir,
            &["ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem"],
        );
        let text = openssl(&self.dir, &["crl", "-in", "crl.pem", "-noout", "-text"]);
        (self.dir.join("crl.pem"), text)
    }
}

/// CRLs exactly as `openssl ca -gencrl` writes them without a `crlnumber`
/// file: v1 when no entry has a reason, v2 without any CRL extension (no
/// CRL Number) when one has. OpenSSL and syslog-ng use both; the engine
/// refused both at start-up ("invalid CRL"). Both must load, keep a valid
/// client in, and refuse the revoked one as `revoked`.
#[test]
fn openssl_gencrl_without_crlnumber_v1_and_v2_revoke() {
    let dir = temp_dir("openssl-crl");
    let pki = e2e::pki::Pki::generate(&dir.join("server-pki"));
    let cases = [
        ("v1", None, "Version 1 (0x0)"),
        ("v2", Some("keyCompromise"), "Version 2 (0x1)"),
    ];
    let mut sources = String::new();
    let mut setups = Vec::new();
    for (name, reason, version) in cases {
        let ca = OpensslCa::new(dir.join(name));
        let good = ca.issue("good.example.com");
        let revoked = ca.issue("revoked.example.com");
        ca.revoke("revoked.example.com", reason);
        let (crl, text) = ca.gencrl();
        assert!(text.contains(version), "{name}: {text}");
        assert!(!text.contains("CRL Number"), "{name}: {text}");
        let port = free_port();
        sources += &format!(
            "[[source]]\nname = \"{name}\"\nlisten = \"127.0.0.1:{port}\"\ntransport = \"tls\"\n\
             [source.tls]\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\ncrl_file = {crl:?}\n\
             peer_verify = \"required-trusted\"\n",
            pki.server_cert,
            pki.server_key,
            ca.dir.join("ca.pem"),
        );
        setups.push((name, port, good, revoked));
    }
    let stats = free_port();
    let config = format!(
        "shards = 1\n{sources}[[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"out.log\"\n\
         fsync = \"never\"\n[stats]\nlisten = \"127.0.0.1:{stats}\"\n"
    );
    let server = Server::start(&dir, &config);
    let server_ca = std::fs::read_to_string(&pki.ca).unwrap();
    let mut frame = Vec::new();
    octet_frame(&mut frame, b"<14>1 - host app - - - hello");
    for (name, port, good, revoked) in &setups {
        let session = |(cert, key): &(String, String)| {
            let cfg = probe::config(&server_ca, Some((cert.as_str(), key.as_str())), &[&TLS13]);
            probe::session(loopback(*port), cfg, std::slice::from_ref(&frame))
        };
        let s = session(good);
        assert!(s.clean(), "{name}: valid client refused: {s:?}");
        session(revoked);
        let label =
            format!("ringest_handshake_failures_total{{source=\"{name}\",reason=\"revoked\"");
        assert_eq!(
            server.wait_metric(&label, 1, Duration::from_secs(5)),
            1,
            "{name}: revoked client not refused as revoked:\n{}",
            server.metrics()
        );
    }
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGHUP while `crl_dir` is empty (a CRL publisher caught mid-update):
/// the reload is refused and counted in `ringest_reload_errors_total`, and
/// the CRL loaded before still refuses the revoked client.
#[test]
fn sighup_with_emptied_crl_dir_keeps_old_crls() {
    let dir = temp_dir("crl-dir-emptied");
    let pki = e2e::pki::Pki::generate(&dir.join("server-pki"));
    let ca = Ca::new("Reload CRL CA");
    let ca_file = ca.write(&dir.join("client-ca.pem"));
    let revoked = ca.issue(&LeafSpec::client("revoked.example.com", 77));
    let crl_dir = dir.join("crl.d");
    std::fs::create_dir_all(&crl_dir).unwrap();
    std::fs::write(crl_dir.join("ca.r0"), ca.crl_pem(&[77], (2090, 1, 1))).unwrap();
    let (port, stats) = (free_port(), free_port());
    let config = format!(
        "shards = 1\n[[source]]\nname = \"tls\"\nlisten = \"127.0.0.1:{port}\"\ntransport = \"tls\"\n\
         [source.tls]\ncert_file = {:?}\nkey_file = {:?}\nca_file = {ca_file:?}\n\
         crl_dir = {crl_dir:?}\npeer_verify = \"required-trusted\"\n\
         [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"out.log\"\nfsync = \"never\"\n\
         [stats]\nlisten = \"127.0.0.1:{stats}\"\n",
        pki.server_cert, pki.server_key,
    );
    let server = Server::start(&dir, &config);
    let server_ca = std::fs::read_to_string(&pki.ca).unwrap();
    let cfg = probe::config(
        &server_ca,
        Some((revoked.cert_pem.as_str(), revoked.key_pem.as_str())),
        &[&TLS13],
    );
    let label = "ringest_handshake_failures_total{source=\"tls\",reason=\"revoked\"";
    probe::session(loopback(port), cfg.clone(), &[]);
    assert_eq!(server.wait_metric(label, 1, Duration::from_secs(5)), 1);

    std::fs::remove_file(crl_dir.join("ca.r0")).unwrap();
    server.signal(libc::SIGHUP);
    assert_eq!(
        server.wait_metric("ringest_reload_errors_total", 1, Duration::from_secs(5)),
        1,
        "{}",
        server.stderr()
    );
    probe::session(loopback(port), cfg, &[]);
    assert_eq!(server.wait_metric(label, 2, Duration::from_secs(5)), 2);
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `ringest check-config` refuses `required-untrusted` + `trusted_dn`
/// without `trusted_keys` (anyone could claim the name with a self-signed
/// certificate), says why, and accepts it with `allow_unverified_names`.
#[test]
fn check_config_refuses_names_that_nothing_vouches_for() {
    let dir = temp_dir("check-config-names");
    // check-config reads the TLS files as serve does: real ones.
    let pki = e2e::pki::Pki::generate(&dir.join("pki"));
    let (cert, key) = (pki.server_cert.display(), pki.server_key.display());
    let check = |extra: &str| {
        let cfg = dir.join("ringest.toml");
        std::fs::write(
            &cfg,
            format!(
                "[[source]]\nname = \"s\"\nlisten = \"127.0.0.1:6514\"\ntransport = \"tls\"\n\
                 [source.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
                 peer_verify = \"required-untrusted\"\ntrusted_dn = [\"CN=*.example.com\"]\n{extra}\
                 [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"out.log\"\n"
            ),
        )
        .unwrap();
        let out = Command::new(bin("ringest"))
            .args(["check-config", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = check("");
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("source[0].tls: trusted_dn: authenticates nobody"),
        "{stderr}"
    );
    assert!(stderr.contains("self-signed"), "{stderr}");
    let (code, stderr) = check("allow_unverified_names = true\n");
    assert_eq!(code, Some(0), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
