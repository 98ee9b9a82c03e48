//! Real syslog peers (syslog-ng, rsyslog) run as child processes by the
//! interop tests: found on the PATH or unpacked by tests/interop/setup-peers.sh,
//! bounded in time, killed when dropped. A missing peer fails with a hint.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SETUP_HINT: &str = "run tests/interop/setup-peers.sh (as root) first";

/// A peer process, killed (SIGTERM, then SIGKILL) when dropped.
pub struct Peer {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Peer {
    pub fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Peer {
        let out = std::fs::File::create(&log).expect("peer log");
        let err = out.try_clone().expect("peer log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}; {SETUP_HINT}"));
        Peer { name, child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM, then up to `grace` for a clean exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        if self.exited().is_some() {
            return;
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < grace {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{}: no exit {grace:?} after SIGTERM; killing", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

pub fn peers_dir() -> PathBuf {
    std::env::var_os("RINGEST_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers"))
}

pub fn require(path: &Path, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} not found at {}: {SETUP_HINT}",
        path.display()
    );
    path.to_path_buf()
}

pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Depth-first search for a file name under `dir`.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        let ft = entry.file_type().ok()?;
        if ft.is_dir() {
            if let Some(found) = find_file(&p, name) {
                return Some(found);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

/// The syslog-ng binary; a missing one fails with the setup hint.
pub fn syslog_ng_bin() -> PathBuf {
    find_in_path("syslog-ng")
        .unwrap_or_else(|| panic!("syslog-ng not found in PATH or /usr/sbin: {SETUP_HINT}"))
}

/// syslog-ng in the foreground with `conf`, its state files and log in `work`.
pub fn spawn_syslog_ng(conf: &Path, work: &Path) -> Peer {
    Peer::spawn(
        "syslog-ng",
        Command::new(syslog_ng_bin())
            .args(["-F", "-e", "--no-caps", "-f"])
            .arg(conf)
            .arg("-R")
            .arg(work.join("syslog-ng.persist"))
            .arg("-p")
            .arg(work.join("syslog-ng.pid"))
            .arg("-c")
            .arg(work.join("syslog-ng.ctl")),
        work.join("syslog-ng.log"),
    )
}

/// The unpacked rsyslogd and its module folder (with gtls and imtcp).
pub struct Rsyslog {
    pub rsyslogd: PathBuf,
    pub moddir: PathBuf,
}

impl Rsyslog {
    pub fn find() -> Rsyslog {
        let root = peers_dir().join("rsyslog");
        let rsyslogd = require(
            &root.join("usr/sbin/rsyslogd"),
            "rsyslogd (unpacked rsyslog)",
        );
        let gtls = find_file(&root, "lmnsd_gtls.so").unwrap_or_else(|| {
            panic!(
                "lmnsd_gtls.so not found under {}: {SETUP_HINT}",
                root.display()
            )
        });
        let moddir = gtls.parent().expect("module dir").to_path_buf();
        require(&moddir.join("imtcp.so"), "rsyslog imtcp.so");
        Rsyslog { rsyslogd, moddir }
    }

    /// rsyslogd in the foreground with `conf`, its pid file and log in `work`.
    pub fn spawn(&self, conf: &Path, work: &Path) -> Peer {
        Peer::spawn(
            "rsyslog",
            Command::new(&self.rsyslogd)
                .arg("-n")
                .arg("-M")
                .arg(&self.moddir)
                .arg("-f")
                .arg(conf)
                .arg("-i")
                .arg(work.join("rsyslogd.pid")),
            work.join("rsyslogd.log"),
        )
    }
}

/// syslog-ng as a TLS client: it reads `lines` from a file (no parsing)
/// and sends them with the `syslog()` driver to 127.0.0.1:`port`;
/// `tls` holds the `tls(...)` options (keys, CA, peer-verify).
pub fn spawn_syslog_ng_client(work: &Path, lines: &str, port: u16, tls: &str) -> Peer {
    std::fs::create_dir_all(work).expect("work dir");
    let input = work.join("input.log");
    std::fs::write(&input, lines).expect("input");
    let conf = work.join("syslog-ng.conf");
    std::fs::write(
        &conf,
        format!(
            r#"@version: 3.38
options {{ time-reopen(1); stats-freq(0); use-dns(no); log-fifo-size(20000); }};
source s_in {{ file("{input}" follow-freq(1) flags(no-parse) log-fetch-limit(1000) log-iw-size(10000)); }};
destination d_out {{
  syslog("127.0.0.1" transport("tls") port({port}) tls({tls}));
}};
log {{ source(s_in); destination(d_out); flags(flow-control); }};
"#,
            input = input.display(),
        ),
    )
    .expect("conf");
    spawn_syslog_ng(&conf, work)
}
