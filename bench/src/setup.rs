//! `bench setup`: installs the peers on Debian, as root.
//! - syslog-ng from Debian's syslog-ng-core (with openssl, for `rehash`),
//!   and syslog-ng-mod-rdkafka (`kafka-c`, for the kafka rows);
//! - rsyslog, rsyslog-gnutls, rsyslog-openssl and rsyslog-kafka (`omkafka`,
//!   for the kafka rows; it links the installed librdkafka1) fetched with
//!   `apt-get download` and unpacked with `dpkg -x` into PEERS/rsyslog,
//!   because rsyslog conflicts with syslog-ng-core as a package; plus the
//!   shared libraries rsyslogd links against.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("bench setup: {cmd:?}");
    let st = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed ({st})");
    }
    Ok(())
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

pub fn setup(peers_dir: &Path) -> Result<()> {
    if !Path::new("/etc/debian_version").exists() || !Path::new("/usr/bin/apt-get").exists() {
        bail!("bench setup works on Debian (apt-get). Elsewhere install syslog-ng 3.38+ and rsyslog 8.2302+ by hand");
    }
    if !crate::sys::is_root() {
        bail!("bench setup needs root (apt-get install): run it with sudo");
    }
    // Runtime libraries of rsyslogd and its TLS drivers, since the rsyslog
    // package itself (which would pull them in) is not installed.
    let want = [
        "syslog-ng-core",
        "syslog-ng-mod-rdkafka",
        "librdkafka1",
        "openssl",
        "libestr0",
        "libfastjson4",
        "liblognorm5",
        "libsystemd0",
        "libuuid1",
        "libzstd1",
        "zlib1g",
        "libgnutls30",
        "libssl3",
    ];
    let need: Vec<&str> = want.iter().copied().filter(|p| !installed(p)).collect();
    let mut updated = false;
    if !need.is_empty() {
        run(Command::new("apt-get")
            .args(["update", "-qq"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
        updated = true;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&need)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    } else {
        eprintln!("bench setup: syslog-ng-core, openssl and rsyslog's libraries already installed");
    }

    let root = peers_dir.join("rsyslog");
    let debs = peers_dir.join("debs");
    let have = root.join("usr/sbin/rsyslogd").is_file()
        && crate::engines::find_rsyslog(peers_dir)
            .1
            .is_some_and(|m| m.join("omkafka.so").is_file());
    if have {
        eprintln!(
            "bench setup: rsyslog already unpacked in {}",
            root.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&debs);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&debs)?;
        std::fs::create_dir_all(&root)?;
        // apt-get download runs as the _apt user for the fetch: it must be
        // able to write into the folder.
        run(Command::new("chmod").arg("0777").arg(&debs))?;
        let download = |updated: &mut bool| -> Result<()> {
            let r = run(Command::new("apt-get")
                .args([
                    "download",
                    "-qq",
                    "rsyslog",
                    "rsyslog-gnutls",
                    "rsyslog-openssl",
                    "rsyslog-kafka",
                ])
                .current_dir(&debs));
            if r.is_err() && !*updated {
                run(Command::new("apt-get").args(["update", "-qq"]))?;
                *updated = true;
                return run(Command::new("apt-get")
                    .args([
                        "download",
                        "-qq",
                        "rsyslog",
                        "rsyslog-gnutls",
                        "rsyslog-openssl",
                    ])
                    .current_dir(&debs));
            }
            r
        };
        download(&mut updated)?;
        for e in std::fs::read_dir(&debs)?.flatten() {
            if e.path().extension().map(|x| x == "deb").unwrap_or(false) {
                run(Command::new("dpkg").arg("-x").arg(e.path()).arg(&root))?;
            }
        }
    }
    let (_, moddir) = crate::engines::find_rsyslog(peers_dir);
    let Some(moddir) = moddir else {
        bail!(
            "rsyslog's modules (imtcp.so, lmnsd_gtls.so) not found under {}",
            root.display()
        );
    };
    let out = Command::new("ldd")
        .arg(root.join("usr/sbin/rsyslogd"))
        .arg(moddir.join("lmnsd_gtls.so"))
        .arg(moddir.join("imtcp.so"))
        .arg(moddir.join("imptcp.so"))
        .arg(moddir.join("omkafka.so"))
        .output()?;
    let missing: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("not found"))
        .map(|l| l.trim().to_string())
        .collect();
    if !missing.is_empty() {
        bail!(
            "rsyslog needs libraries that are not installed: {}",
            missing.join(", ")
        );
    }
    eprintln!(
        "bench setup: syslog-ng at {}; rsyslogd at {}, modules {}",
        crate::engines::which("syslog-ng")
            .map(|p| p.display().to_string())
            .unwrap_or("?".into()),
        root.join("usr/sbin/rsyslogd").display(),
        moddir.display()
    );
    Ok(())
}
