//! Finding the binaries, and turning one scenario into each engine's config
//! and command line. The peer configs follow ../shared/notes/peers.md (the
//! setups known to work on this machine) with their documented throughput
//! settings and flow control on; every engine writes each message as one
//! line of a plain file, without fsync.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::kafka;
use crate::pki::Pki;
use crate::scenario::{
    Durability, Engine, Framing, Scenario, Transport, Work, DURABILITY_INTERVAL_MS,
};

pub struct Tools {
    pub bench: PathBuf,
    pub ringest: PathBuf,
    pub loadgen: PathBuf,
    pub openssl: Option<PathBuf>,
    pub syslog_ng: Option<PathBuf>,
    pub rsyslogd: Option<PathBuf>,
    pub rsyslog_moddir: Option<PathBuf>,
    /// Where `bench setup` unpacks rsyslog (PEERS/rsyslog).
    pub peers_dir: PathBuf,
}

pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The default peers folder: $RINGEST_PEERS_DIR, else `target/peers` of the
/// workspace bench was built from (where tests/interop/setup-peers.sh puts it
/// too), else `peers` in the target folder bench runs from.
pub fn default_peers_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RINGEST_PEERS_DIR") {
        return PathBuf::from(d);
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/peers");
    let ws = ws.canonicalize().unwrap_or(ws);
    match exe_target_dir().map(|t| t.join("peers")) {
        Some(t) if !ws.join("rsyslog").is_dir() && t.join("rsyslog").is_dir() => t,
        _ => ws,
    }
}

fn exe_target_dir() -> Option<PathBuf> {
    // target/<profile>/bench -> target
    std::env::current_exe()
        .ok()?
        .parent()?
        .parent()
        .map(Path::to_path_buf)
}

pub fn find_rsyslog(peers: &Path) -> (Option<PathBuf>, Option<PathBuf>) {
    let root = peers.join("rsyslog");
    let bin = root.join("usr/sbin/rsyslogd");
    let moddir = [
        "usr/lib/x86_64-linux-gnu/rsyslog",
        "usr/lib/aarch64-linux-gnu/rsyslog",
        "usr/lib/rsyslog",
    ]
    .iter()
    .map(|d| root.join(d))
    .find(|d| d.join("imtcp.so").is_file() && d.join("lmnsd_gtls.so").is_file());
    (bin.is_file().then_some(bin), moddir)
}

impl Tools {
    pub fn find(bin_dir: Option<&Path>, peers_dir: Option<&Path>) -> Result<Tools> {
        let bench = std::env::current_exe().context("current exe")?;
        let dir = match bin_dir {
            Some(d) => d.to_path_buf(),
            None => bench.parent().context("bench has no folder")?.to_path_buf(),
        };
        let ringest = dir.join("ringest");
        let loadgen = dir.join("loadgen");
        for (p, pkg) in [(&ringest, "ringest"), (&loadgen, "loadgen")] {
            if !p.is_file() {
                bail!(
                    "{} not found. Build it next to bench (`cargo build --release -p {pkg} -p bench`, \
                     or `cargo build --release --workspace --bins`), or pass --bin-dir DIR",
                    p.display()
                );
            }
        }
        let peers_dir = peers_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(default_peers_dir);
        let (rsyslogd, rsyslog_moddir) = find_rsyslog(&peers_dir);
        Ok(Tools {
            bench,
            ringest,
            loadgen,
            openssl: which("openssl"),
            syslog_ng: which("syslog-ng"),
            rsyslogd,
            rsyslog_moddir,
            peers_dir,
        })
    }

    /// Fails with the exact commands to run when something `engines` need is missing.
    pub fn require(&self, engines: &[Engine]) -> Result<()> {
        let mut missing = Vec::new();
        let setup = format!(
            "{} setup --peers-dir {}",
            self.bench.display(),
            self.peers_dir.display()
        );
        if self.openssl.is_none() {
            missing.push("openssl (for `openssl rehash`): apt-get install -y openssl".to_string());
        }
        if engines.contains(&Engine::SyslogNg) && self.syslog_ng.is_none() {
            missing.push(
                "syslog-ng: apt-get install -y --no-install-recommends syslog-ng-core".to_string(),
            );
        }
        if engines.contains(&Engine::Rsyslog)
            && (self.rsyslogd.is_none() || self.rsyslog_moddir.is_none())
        {
            let r = self.peers_dir.join("rsyslog");
            missing.push(format!(
                "rsyslog, unpacked in {r} (it conflicts with syslog-ng-core, so it is not installed):\n      \
                 mkdir -p {d}/debs && chmod 777 {d}/debs && cd {d}/debs && \
                 apt-get download rsyslog rsyslog-gnutls rsyslog-openssl && \
                 for f in *.deb; do dpkg -x \"$f\" {r}; done",
                r = r.display(),
                d = self.peers_dir.display()
            ));
        }
        if missing.is_empty() {
            return Ok(());
        }
        bail!(
            "missing peers:\n  - {}\nRun, as root on Debian:\n    {setup}\n(or leave them out with --only ringest)",
            missing.join("\n  - ")
        )
    }

    /// The kafka rows also need each peer's Kafka module: syslog-ng's
    /// kafka-c (syslog-ng-mod-rdkafka) and rsyslog's omkafka.so
    /// (rsyslog-kafka, unpacked with the other rsyslog packages).
    pub fn require_kafka(&self, engines: &[Engine]) -> Result<()> {
        let mut missing = Vec::new();
        if engines.contains(&Engine::SyslogNg) && syslog_ng_kafka_module().is_none() {
            missing.push(
                "syslog-ng's kafka-c: apt-get install -y --no-install-recommends syslog-ng-mod-rdkafka"
                    .to_string(),
            );
        }
        if engines.contains(&Engine::Rsyslog)
            && !self
                .rsyslog_moddir
                .as_ref()
                .is_some_and(|m| m.join("omkafka.so").is_file())
        {
            missing.push(format!(
                "rsyslog's omkafka.so (rsyslog-kafka, unpacked into {}): bash tests/interop/setup-peers.sh",
                self.peers_dir.join("rsyslog").display()
            ));
        }
        if missing.is_empty() {
            return Ok(());
        }
        bail!(
            "the kafka rows need:\n  - {}\n(`{} setup --peers-dir {}` as root installs both; or leave peers out with --only)",
            missing.join("\n  - "),
            self.bench.display(),
            self.peers_dir.display()
        )
    }

    pub fn version(&self, e: Engine) -> String {
        let first_line = |mut c: Command| -> String {
            c.output()
                .ok()
                .map(|o| {
                    let s = if o.stdout.is_empty() {
                        o.stderr
                    } else {
                        o.stdout
                    };
                    String::from_utf8_lossy(&s)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default()
        };
        match e {
            Engine::Ringest => {
                let v = git_describe().unwrap_or_else(|| "unknown commit".into());
                format!("ringest ({v})")
            }
            Engine::SyslogNg => match &self.syslog_ng {
                Some(p) => {
                    let mut c = Command::new(p);
                    c.arg("--version");
                    first_line(c)
                }
                None => "syslog-ng (not installed)".into(),
            },
            Engine::Rsyslog => match &self.rsyslogd {
                Some(p) => {
                    let mut c = Command::new(p);
                    c.arg("-v");
                    let l = first_line(c);
                    l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
                }
                None => "rsyslog (not unpacked)".into(),
            },
        }
    }
}

/// syslog-ng's kafka-c module (Debian: /usr/lib/syslog-ng/<version>/libkafka.so).
fn syslog_ng_kafka_module() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/syslog-ng")
        .ok()?
        .flatten()
        .map(|d| d.path().join("libkafka.so"))
        .find(|p| p.is_file())
}

/// The commit ringest was built from, read-only (`git describe`), if bench
/// runs inside the repository.
fn git_describe() -> Option<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=10"])
        .current_dir(dir)
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// What the runner needs to start one engine for one scenario.
pub struct Launch {
    pub cmd: Command,
    /// The file the engine writes the messages to.
    pub output: PathBuf,
    /// ringest prints this on stdout once every listener is bound.
    pub ready_line: Option<&'static str>,
    /// ringest's /metrics address.
    pub stats_port: Option<u16>,
    /// Run before starting; a non-zero exit is a failed run (rsyslog keeps
    /// running on many config errors, so its config is validated first).
    pub precheck: Option<Command>,
}

/// Where one engine listens, where its messages go and which CPUs it runs on.
#[derive(Debug, Clone, Copy)]
pub struct Wiring<'a> {
    /// Its source's port on 127.0.0.1.
    pub port: u16,
    /// Relay: the final receiver's port on 127.0.0.1 (mutual TLS, the
    /// bench CA); the engine forwards there instead of writing a file.
    pub upstream: Option<u16>,
    /// Kafka: the broker and the run's topic; the engine produces there
    /// instead of writing a file.
    pub kafka: Option<KafkaTarget<'a>>,
    /// `taskset -c` CPU list for the engine, if pinned.
    pub cpus: Option<&'a str>,
}

impl Wiring<'_> {
    /// Listens on `port` and writes its own file, on any CPU.
    pub fn file(port: u16) -> Wiring<'static> {
        Wiring {
            port,
            upstream: None,
            kafka: None,
            cpus: None,
        }
    }
}

/// `cmd` run under `taskset -c cpus` (taskset execs it: same PID), or as is.
pub fn pinned(cmd: Command, cpus: Option<&str>) -> Command {
    let Some(cpus) = cpus else {
        return cmd;
    };
    let mut t = Command::new("taskset");
    t.arg("-c")
        .arg(cpus)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    if let Some(d) = cmd.get_current_dir() {
        t.current_dir(d);
    }
    t
}

/// The file every engine writes the messages to, in its run's data folder.
pub fn output_path(data_dir: &Path) -> PathBuf {
    data_dir.join("out.log")
}

/// Connections an engine must accept in this scenario, with headroom.
fn max_connections(sc: &Scenario) -> u32 {
    sc.total_connections() + 64
}

pub fn launch(
    tools: &Tools,
    e: Engine,
    sc: &Scenario,
    pki: &Pki,
    run_dir: &Path,
    data_dir: &Path,
    w: Wiring,
) -> Result<Launch> {
    let output = output_path(data_dir);
    let port = w.port;
    let dest = match (w.upstream, w.kafka) {
        (Some(port), _) => Dest::Forward { port },
        (None, Some(k)) => Dest::Kafka(k),
        (None, None) => Dest::File(&output),
    };
    let mut l = match e {
        Engine::Ringest => {
            let stats_port = crate::sys::free_port()?;
            let conf = run_dir.join("ringest.toml");
            std::fs::write(&conf, ringest_config(sc, pki, dest, port, stats_port))?;
            let mut cmd = Command::new(&tools.ringest);
            cmd.arg("serve")
                .arg("--config")
                .arg(&conf)
                .current_dir(run_dir);
            Launch {
                cmd,
                output,
                ready_line: Some("ringest: ready"),
                stats_port: Some(stats_port),
                precheck: None,
            }
        }
        Engine::SyslogNg => {
            let bin = tools
                .syslog_ng
                .as_ref()
                .context("syslog-ng not installed")?;
            let conf = run_dir.join("syslog-ng.conf");
            std::fs::write(&conf, syslog_ng_config(sc, pki, dest, port))?;
            let mut cmd = Command::new(bin);
            cmd.arg("-F")
                .arg("-e")
                .arg("-f")
                .arg(&conf)
                .arg("-R")
                .arg(data_dir.join("syslog-ng.persist"))
                .arg("-p")
                .arg(data_dir.join("syslog-ng.pid"))
                .arg("-c")
                .arg(data_dir.join("syslog-ng.ctl"))
                .current_dir(run_dir);
            Launch {
                cmd,
                output,
                ready_line: None,
                stats_port: None,
                precheck: None,
            }
        }
        Engine::Rsyslog => {
            let bin = tools.rsyslogd.as_ref().context("rsyslog not unpacked")?;
            let moddir = tools
                .rsyslog_moddir
                .as_ref()
                .context("rsyslog modules not found")?;
            let work = data_dir.join("rsyslog-work");
            std::fs::create_dir_all(&work)?;
            let conf = run_dir.join("rsyslog.conf");
            std::fs::write(
                &conf,
                rsyslog_config(
                    sc,
                    pki,
                    dest,
                    port,
                    &work,
                    &run_dir.join("rsyslog-internal.log"),
                ),
            )?;
            let mut pre = Command::new(bin);
            pre.arg("-N1")
                .arg("-M")
                .arg(moddir)
                .arg("-f")
                .arg(&conf)
                .current_dir(run_dir);
            let mut cmd = Command::new(bin);
            cmd.arg("-n")
                .arg("-M")
                .arg(moddir)
                .arg("-f")
                .arg(&conf)
                .arg("-i")
                .arg(data_dir.join("rsyslogd.pid"))
                .current_dir(run_dir);
            Launch {
                cmd,
                output,
                ready_line: None,
                stats_port: None,
                precheck: Some(pre),
            }
        }
    };
    l.cmd = pinned(l.cmd, w.cpus);
    Ok(l)
}

/// Where an engine puts the messages it receives.
#[derive(Debug, Clone, Copy)]
pub enum Dest<'a> {
    /// One line per message in this file.
    File(&'a Path),
    /// Relay: forwarded over mutual TLS (the bench client certificate) to
    /// 127.0.0.1:port, octet-counted, each message as received.
    Forward { port: u16 },
    /// Kafka: produced to the topic, one record per message, the message
    /// as received as its value (no key, no newline).
    Kafka(KafkaTarget<'a>),
}

/// One run's Kafka broker and topic.
#[derive(Debug, Clone, Copy)]
pub struct KafkaTarget<'a> {
    /// "127.0.0.1:PORT" (PLAINTEXT on loopback).
    pub bootstrap: &'a str,
    pub topic: &'a str,
}

fn q(p: &Path) -> String {
    // Paths are generated by bench (no quotes inside); keep them literal.
    p.display().to_string()
}

pub fn ringest_config(sc: &Scenario, pki: &Pki, dest: Dest, port: u16, stats_port: u16) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Generated by `bench compare` for scenario {:?}: {}",
        sc.name,
        sc.describe_load()
    );
    if let Some(k) = sc.shards {
        let _ = writeln!(s, "shards = {k}");
    }
    let g = sc.extra_global(Engine::Ringest);
    if !g.is_empty() {
        let _ = writeln!(s, "{g}");
    }
    let transport = if sc.tls() { "tls" } else { "tcp" };
    let _ = writeln!(s, "\n[[source]]");
    let _ = writeln!(s, "name = \"bench\"");
    let _ = writeln!(s, "listen = \"127.0.0.1:{port}\"");
    let _ = writeln!(s, "transport = \"{transport}\"");
    let _ = writeln!(s, "framing = \"{}\"", sc.framing.name());
    let _ = writeln!(s, "max_message_bytes = 65536");
    let _ = writeln!(s, "max_connections = {}", max_connections(sc).max(10_000));
    if sc.work == Work::Parsed {
        // Issue 14's option; today's ringest refuses it (unknown key).
        let _ = writeln!(s, "parse = \"auto\"");
    }
    let x = sc.extra_source(Engine::Ringest);
    if !x.is_empty() {
        let _ = writeln!(s, "{x}");
    }
    if sc.tls() {
        let _ = writeln!(s, "[source.tls]");
        let _ = writeln!(s, "cert_file = \"{}\"", q(&pki.server_cert));
        let _ = writeln!(s, "key_file = \"{}\"", q(&pki.server_key));
        let _ = writeln!(s, "ca_file = \"{}\"", q(&pki.ca));
        let verify = if sc.mutual {
            "required-trusted"
        } else {
            "optional-untrusted"
        };
        let _ = writeln!(s, "peer_verify = \"{verify}\"");
    }
    match dest {
        Dest::File(output) => {
            let _ = writeln!(s, "\n[[destination]]");
            let _ = writeln!(s, "name = \"out\"");
            let _ = writeln!(s, "type = \"file\"");
            let _ = writeln!(s, "path = \"{}\"", q(output));
            let format = match sc.work {
                Work::Raw => "raw",
                Work::Parsed => "json",
            };
            let _ = writeln!(s, "format = \"{format}\"");
            // The durability levels: ringest's own three.
            let _ = writeln!(s, "fsync = \"{}\"", sc.durability.name());
            if sc.durability == Durability::Interval {
                let _ = writeln!(s, "fsync_interval_ms = {DURABILITY_INTERVAL_MS}");
            }
            let x = sc.extra_destination(Engine::Ringest);
            if !x.is_empty() {
                let _ = writeln!(s, "{x}");
            }
        }
        Dest::Forward { port } => {
            // Issue 13's forward destination, with its fixed key names.
            let _ = writeln!(s, "\n[[destination]]");
            let _ = writeln!(s, "name = \"upstream\"");
            let _ = writeln!(s, "type = \"forward\"");
            let _ = writeln!(s, "servers = [\"127.0.0.1:{port}\"]");
            let _ = writeln!(s, "transport = \"tls\"");
            let _ = writeln!(s, "framing = \"octet-counted\"");
            let _ = writeln!(s, "connections = 1");
            let _ = writeln!(s, "[destination.tls]");
            let _ = writeln!(s, "ca_file = \"{}\"", q(&pki.ca));
            let _ = writeln!(s, "cert_file = \"{}\"", q(&pki.client_cert));
            let _ = writeln!(s, "key_file = \"{}\"", q(&pki.client_key));
            let _ = writeln!(s, "server_name = \"localhost\"");
            let _ = writeln!(s, "peer_verify = \"required-trusted\"");
        }
        Dest::Kafka(k) => {
            // Issue 15's kafka destination: the value is the frame as
            // received; settings matched with the peers (kafka/settings.rs).
            let _ = writeln!(s, "\n[[destination]]");
            let _ = writeln!(s, "name = \"kafka\"");
            let _ = writeln!(s, "type = \"kafka\"");
            let _ = writeln!(s, "brokers = [\"{}\"]", k.bootstrap);
            let _ = writeln!(s, "topic = \"{}\"", k.topic);
            let _ = writeln!(s, "key = \"none\"");
            for (key, value) in kafka::settings::ringest_keys() {
                let _ = writeln!(s, "{key} = {value}");
            }
            let _ = writeln!(s, "[destination.properties]");
            for (key, value) in kafka::settings::ringest_properties() {
                let _ = writeln!(s, "\"{key}\" = \"{value}\"");
            }
        }
    }
    let _ = writeln!(s, "\n[stats]");
    let _ = writeln!(s, "listen = \"127.0.0.1:{stats_port}\"");
    s
}

pub fn syslog_ng_config(sc: &Scenario, pki: &Pki, dest: Dest, port: u16) -> String {
    // peers.md: max-connections(64) log-iw-size(640000) log-fetch-limit(1000)
    // and flow-control. syslog-ng divides log-iw-size by max-connections, so
    // when a scenario needs more connections the window grows with them and
    // every connection keeps its 10,000-message window.
    let maxc = max_connections(sc).max(64);
    let iw = u64::from(maxc) * 10_000;
    let driver = match sc.framing {
        Framing::OctetCounted => "syslog",
        // newline framing: network(), one message per line.
        Framing::Newline => "network",
    };
    let mut opts = format!("ip(\"127.0.0.1\") port({port})");
    match sc.transport {
        Transport::Tls => {
            let verify = if sc.mutual {
                "required-trusted"
            } else {
                "optional-untrusted"
            };
            let _ = write!(
                opts,
                " transport(\"tls\")\n    tls(key-file(\"{}\") cert-file(\"{}\") ca-dir(\"{}\") peer-verify({verify}))",
                q(&pki.server_key),
                q(&pki.server_cert),
                q(&pki.ca_dir)
            );
        }
        Transport::Tcp => opts.push_str(" transport(\"tcp\")"),
    }
    // Raw: no-parse, so ${MSG} is the whole frame as received and syslog-ng
    // writes the same bytes as ringest. Parsed: RFC 5424 (network() needs
    // syslog-protocol for that; syslog() parses it by default).
    match (sc.work, sc.framing) {
        (Work::Raw, _) => opts.push_str(" flags(no-parse)"),
        (Work::Parsed, Framing::Newline) => opts.push_str(" flags(syslog-protocol)"),
        (Work::Parsed, Framing::OctetCounted) => {}
    }
    let _ = write!(
        opts,
        "\n    max-connections({maxc}) log-iw-size({iw}) log-fetch-limit(1000)"
    );
    let x = sc.extra_source(Engine::SyslogNg);
    if !x.is_empty() {
        let _ = write!(opts, "\n    {x}");
    }
    let destination = match dest {
        Dest::File(output) => format!(
            "# {template_note}\n{durability}\
             destination d_bench {{ file(\"{out}\" template(\"{template}\\n\"){fsync}); }};",
            out = q(output),
            template = syslog_ng_template(sc.work),
            template_note = match sc.work {
                Work::Raw => "raw: with flags(no-parse), ${MSG} is the whole frame as received.",
                Work::Parsed => "parsed: RFC 5424 fields as JSON; `message` (the MSG part, which starts with loadgen's marker) for loadgen verify.",
            },
            durability = syslog_ng_durability_note(sc.durability),
            fsync = match sc.durability {
                Durability::Never => "",
                Durability::Batch | Durability::Interval => " fsync(yes)",
            },
        ),
        // Not syslog(): in its syslog-protocol mode the template is only the
        // MSG part, and syslog-ng renders a new RFC 5424 header in front of
        // it (a smoke run wrote 351 bytes per 301-byte message). network()
        // with TLS and the same tls() options sends the template as is;
        // "$(length ${MSG}) ${MSG}" is RFC 5425's octet-counted frame of the
        // message as received (no-parse: ${MSG} is the whole message), so
        // the wire carries what ringest's forward destination and rsyslog's
        // omfwd send: the same frames, the same bytes.
        Dest::Forward { port } => format!(
            "# relay: each message forwarded as received, octet-counted (RFC 5425), mutual TLS with the bench client certificate.\n\
             destination d_bench {{\n  network(\"localhost\" port({port}) ip-protocol(4) transport(\"tls\") template(\"$(length ${{MSG}}) ${{MSG}}\")\n    \
             tls(key-file(\"{}\") cert-file(\"{}\") ca-dir(\"{}\") peer-verify(required-trusted)));\n}};",
            q(&pki.client_key),
            q(&pki.client_cert),
            q(&pki.ca_dir)
        ),
        // kafka-c (syslog-ng-mod-rdkafka): with flags(no-parse) ${MSG} is
        // the whole frame as received, the value ringest and rsyslog send.
        Dest::Kafka(k) => {
            let props: Vec<String> = kafka::settings::peer_properties()
                .into_iter()
                .map(|(key, value)| format!("\"{key}\" => \"{value}\""))
                .collect();
            format!(
                "# kafka: each message as received is one record's value, no key; producer settings matched with ringest and rsyslog.\n\
                 destination d_bench {{\n  kafka-c(bootstrap-servers(\"{}\") topic(\"{}\") message(\"${{MSG}}\")\n    \
                 config({}));\n}};",
                k.bootstrap,
                k.topic,
                props.join(" ")
            )
        }
    };
    format!(
        "@version: 3.38\n\
         # Generated by `bench compare` for scenario {name:?}: {load}\n\
         options {{\n    threaded(yes); keep-hostname(yes); chain-hostnames(no); use-dns(no);\n    \
         use-fqdn(no); dns-cache(no); stats-freq(0); mark-freq(0);\n    {global}\n}};\n\
         source s_bench {{\n  {driver}({opts});\n}};\n\
         {destination}\n\
         log {{ source(s_bench); destination(d_bench); flags(flow-control); }};\n",
        name = sc.name,
        load = sc.describe_load(),
        global = sc.extra_global(Engine::SyslogNg),
    )
}

pub fn rsyslog_config(
    sc: &Scenario,
    pki: &Pki,
    dest: Dest,
    port: u16,
    work: &Path,
    internal_log: &Path,
) -> String {
    let maxc = max_connections(sc).max(200);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Generated by `bench compare` for scenario {:?}: {}",
        sc.name,
        sc.describe_load()
    );
    let _ = write!(
        s,
        "global(workDirectory=\"{}\" processInternalMessages=\"on\" maxMessageSize=\"64k\"",
        q(work)
    );
    if sc.tls() {
        let _ = write!(
            s,
            "\n  defaultNetstreamDriverCAFile=\"{}\"\n  defaultNetstreamDriverCertFile=\"{}\"\n  defaultNetstreamDriverKeyFile=\"{}\"",
            q(&pki.ca),
            q(&pki.server_cert),
            q(&pki.server_key)
        );
    }
    let _ = writeln!(s, ")");
    let g = sc.extra_global(Engine::Rsyslog);
    if !g.is_empty() {
        let _ = writeln!(s, "{g}");
    }
    let input_type = match sc.transport {
        Transport::Tls => {
            // peers.md: gtls, and gnutlsPriorityString="NORMAL" (TLS 1.3).
            let auth = if sc.mutual { "x509/certvalid" } else { "anon" };
            let _ = writeln!(
                s,
                "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" \
                 streamDriver.authMode=\"{auth}\"\n  gnutlsPriorityString=\"NORMAL\" maxSessions=\"{maxc}\")"
            );
            "imtcp"
        }
        Transport::Tcp => {
            // imptcp is rsyslog's documented fast plain-TCP input.
            let _ = writeln!(s, "module(load=\"imptcp\")");
            "imptcp"
        }
    };
    let x = sc.extra_source(Engine::Rsyslog);
    let _ = writeln!(
        s,
        "input(type=\"{input_type}\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"bench\" {x})"
    );
    let action = match dest {
        Dest::File(output) => {
            let _ = writeln!(s, "{}", rsyslog_template(sc.work));
            format!(
                "action(type=\"omfile\" file=\"{}\" template=\"bench_out\" ioBufferSize=\"256k\" {})",
                q(output),
                rsyslog_durability(sc.durability)
            )
        }
        Dest::Forward { port } => {
            // The message as received, no LF: octet-counted framing delimits it.
            let _ = writeln!(
                s,
                r#"template(name="bench_fwd" type="string" string="%rawmsg%")"#
            );
            // gtls with the bench client certificate; the final receiver's
            // certificate must be signed by the bench CA and name localhost.
            format!(
                "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"tcp\" \
                 template=\"bench_fwd\" TCP_Framing=\"octet-counted\"\n    \
                 StreamDriver=\"gtls\" StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" \
                 StreamDriverPermittedPeers=\"localhost\"\n    \
                 streamDriver.CAFile=\"{}\" streamDriver.CertFile=\"{}\" streamDriver.KeyFile=\"{}\")",
                q(&pki.ca),
                q(&pki.client_cert),
                q(&pki.client_key)
            )
        }
        Dest::Kafka(k) => {
            // omkafka (rsyslog-kafka, unpacked next to rsyslogd): the
            // message as received, no LF; librdkafka's own partitioner
            // (partitions.auto), as in ringest and syslog-ng.
            // resubmitOnFailure: without it omkafka drops the message whose
            // produce failed with "Queue full" (the action is suspended and
            // resumed, that message is gone): the first kafka run lost 1 in
            // 2 of 3 large-record repeats that way (rsyslog 8.2302). With it,
            // rsyslog retries it, as ringest and syslog-ng do.
            let _ = writeln!(s, "module(load=\"omkafka\")");
            let _ = writeln!(
                s,
                r#"template(name="bench_kafka" type="string" string="%rawmsg%")"#
            );
            let props: Vec<String> = kafka::settings::peer_properties()
                .into_iter()
                .map(|(key, value)| format!("\"{key}={value}\""))
                .collect();
            format!(
                "action(type=\"omkafka\" broker=[\"{}\"] topic=\"{}\" template=\"bench_kafka\" partitions.auto=\"on\"\n    \
                 resubmitOnFailure=\"on\"\n    \
                 confParam=[{}])",
                k.bootstrap,
                k.topic,
                props.join(", ")
            )
        }
    };
    // A large array queue handing batches to one output action. imtcp blocks
    // (flow control) while the queue is full; timeoutEnqueue is raised from
    // its 2 s default, after which rsyslog would discard, to 5 minutes.
    let _ = writeln!(
        s,
        "ruleset(name=\"bench\" queue.type=\"FixedArray\" queue.size=\"200000\" \
         queue.dequeueBatchSize=\"4096\" queue.timeoutEnqueue=\"300000\") {{\n  {action}\n}}"
    );
    // rsyslog's own messages, apart from the data.
    let _ = writeln!(s, "action(type=\"omfile\" file=\"{}\")", q(internal_log));
    s
}

/// Which syslog-ng file() setting matches each durability level, and why,
/// as a comment in its generated config.
fn syslog_ng_durability_note(d: Durability) -> &'static str {
    match d {
        Durability::Never => "# durability never: file()'s default, fsync(no).\n",
        Durability::Batch => {
            "# durability batch: fsync(yes), an fsync() after each write of a batch of lines.\n"
        }
        // syslog-ng has no timed fsync: fsync(yes) is the nearest setting
        // that bounds what a crash loses; it does more work than ringest's
        // once-a-second fsync, so this row flatters ringest, and says so.
        Durability::Interval => {
            "# durability interval: syslog-ng has no timed fsync; fsync(yes), the nearest setting that bounds the loss (stricter than once a second).\n"
        }
    }
}

/// rsyslog omfile's parameters for each durability level:
/// - never: its defaults (no sync; the buffer written at the end of each
///   batch, flushOnTXEnd="on");
/// - batch: `sync="on"`, which syncs the file after each written buffer, with
///   asyncWriting off and flushOnTXEnd on, so that is once per batch (a batch
///   larger than ioBufferSize syncs more than once);
/// - interval: rsyslog has no timed fsync either; `asyncWriting="on"` with
///   `flushInterval` (seconds) moves the writes to a background thread that
///   writes the buffer when it is full or the interval passed, and
///   `sync="on"` syncs after each of those writes: at least once per
///   interval, and once per full 256 KiB buffer under load.
fn rsyslog_durability(d: Durability) -> String {
    match d {
        Durability::Never => r#"asyncWriting="off" flushOnTXEnd="on" sync="off""#.into(),
        Durability::Batch => r#"asyncWriting="off" flushOnTXEnd="on" sync="on""#.into(),
        Durability::Interval => format!(
            r#"asyncWriting="on" flushOnTXEnd="off" flushInterval="{}" sync="on""#,
            DURABILITY_INTERVAL_MS.div_ceil(1000)
        ),
    }
}

/// syslog-ng's output template, without the final LF.
fn syslog_ng_template(work: Work) -> &'static str {
    match work {
        Work::Raw => "${MSG}",
        // `message=` adds the key loadgen verify (and ringest's JSON) use;
        // MESSAGE would be the same bytes again.
        Work::Parsed => {
            "$(format-json --scope rfc5424 --scope nv-pairs --exclude MESSAGE message=${MSG})"
        }
    }
}

/// rsyslog's output template `bench_out`.
fn rsyslog_template(work: Work) -> &'static str {
    match work {
        // %rawmsg% is the message exactly as received (without framing).
        Work::Raw => r#"template(name="bench_out" type="string" string="%rawmsg%\n")"#,
        // The parsed RFC 5424 fields as one JSON object per line, with the
        // key names of ringest's JSON (issue 14).
        Work::Parsed => concat!(
            r#"template(name="bench_out" type="string" string="{"#,
            r#"\"facility\":\"%syslogfacility-text%\",\"severity\":\"%syslogseverity-text%\","#,
            r#"\"timestamp\":\"%timereported:::date-rfc3339%\",\"host\":\"%hostname:::json%\","#,
            r#"\"app\":\"%app-name:::json%\",\"procid\":\"%procid:::json%\",\"msgid\":\"%msgid:::json%\","#,
            r#"\"sd\":\"%structured-data:::json%\",\"message\":\"%msg:::json%\"}\n")"#
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario;

    fn pki() -> Pki {
        let p = PathBuf::from("/p");
        Pki {
            ca: p.join("ca.pem"),
            ca_dir: p.join("ca.d"),
            server_cert: p.join("s.pem"),
            server_key: p.join("s.key"),
            client_cert: p.join("c.pem"),
            client_key: p.join("c.key"),
        }
    }

    fn one(work: &str, framing: &str) -> Scenario {
        let t = format!(
            "[[scenario]]\nname='a'\ntitle='t'\nwork='{work}'\ntransport='tls'\nframing='{framing}'\nconnections=1\nrecords_per_write=1\n"
        );
        scenario::parse(&t, "t").unwrap().remove(0)
    }

    #[test]
    fn raw_work_writes_the_whole_message_in_every_engine() {
        for framing in ["octet-counted", "newline"] {
            let sc = one("raw", framing);
            let out = Dest::File(Path::new("/o/out.log"));
            let r = ringest_config(&sc, &pki(), out, 1, 2);
            assert!(
                r.contains("format = \"raw\"") && !r.contains("parse ="),
                "{r}"
            );
            let n = syslog_ng_config(&sc, &pki(), out, 1);
            assert!(n.contains("flags(no-parse)"), "{n}");
            assert!(!n.contains("syslog-protocol"), "{n}");
            assert!(n.contains("template(\"${MSG}\\n\")"), "{n}");
            assert!(n.contains("use-dns(no)"), "{n}");
            let y = rsyslog_config(&sc, &pki(), out, 1, Path::new("/w"), Path::new("/i"));
            assert!(y.contains("string=\"%rawmsg%\\n\""), "{y}");
            assert!(y.contains("template=\"bench_out\""), "{y}");
        }
    }

    fn with(extra: &str) -> Scenario {
        let t = format!(
            "[[scenario]]\nname='a'\ntitle='t'\ntransport='tls'\nframing='octet-counted'\nconnections=1\nrecords_per_write=1\n{extra}\n"
        );
        scenario::parse(&t, "t").unwrap().remove(0)
    }

    fn configs(sc: &Scenario, dest: Dest) -> (String, String, String) {
        (
            ringest_config(sc, &pki(), dest, 1, 2),
            syslog_ng_config(sc, &pki(), dest, 1),
            rsyslog_config(sc, &pki(), dest, 1, Path::new("/w"), Path::new("/i")),
        )
    }

    #[test]
    fn durability_levels_set_each_engines_nearest_setting() {
        let out = Dest::File(Path::new("/o/out.log"));
        let (r, n, y) = configs(&with("durability='never'"), out);
        assert!(
            r.contains("fsync = \"never\"") && !r.contains("fsync_interval_ms"),
            "{r}"
        );
        assert!(!n.contains("fsync(yes)"), "{n}");
        assert!(
            y.contains(r#"sync="off""#) && y.contains(r#"asyncWriting="off""#),
            "{y}"
        );
        let (r, n, y) = configs(&with("durability='batch'"), out);
        assert!(r.contains("fsync = \"batch\""), "{r}");
        assert!(n.contains("fsync(yes)"), "{n}");
        assert!(
            y.contains(r#"sync="on""#)
                && y.contains(r#"flushOnTXEnd="on""#)
                && y.contains(r#"asyncWriting="off""#),
            "{y}"
        );
        let (r, n, y) = configs(&with("durability='interval'"), out);
        assert!(
            r.contains("fsync = \"interval\"") && r.contains("fsync_interval_ms = 1000"),
            "{r}"
        );
        assert!(
            n.contains("fsync(yes)") && n.contains("no timed fsync"),
            "{n}"
        );
        assert!(
            y.contains(r#"asyncWriting="on""#)
                && y.contains(r#"flushInterval="1""#)
                && y.contains(r#"sync="on""#),
            "{y}"
        );
    }

    #[test]
    fn shards_go_to_ringest_only() {
        let out = Dest::File(Path::new("/o/out.log"));
        let (r, n, _) = configs(&with("shards=2"), out);
        assert!(r.contains("\nshards = 2\n"), "{r}");
        assert!(
            r.find("shards").unwrap() < r.find("[[source]]").unwrap(),
            "{r}"
        );
        assert!(
            !n.lines()
                .any(|l| !l.starts_with('#') && l.contains("shards")),
            "{n}"
        );
        let (r, _, _) = configs(&with(""), out);
        assert!(!r.contains("shards"), "{r}");
    }

    fn assert_has(config: &str, wants: &[&str]) {
        for want in wants {
            assert!(config.contains(want), "{want} in {config}");
        }
    }

    #[test]
    fn relay_forwards_over_mutual_tls_with_the_client_certificate() {
        let (r, n, y) = configs(&with("relay=true"), Dest::Forward { port: 7777 });
        // ringest: issue 13's forward destination with its fixed key names.
        assert_has(
            &r,
            &[
                "type = \"forward\"",
                "servers = [\"127.0.0.1:7777\"]",
                "transport = \"tls\"",
                "framing = \"octet-counted\"",
                "[destination.tls]",
                "cert_file = \"/p/c.pem\"",
                "key_file = \"/p/c.key\"",
                "ca_file = \"/p/ca.pem\"",
                "peer_verify = \"required-trusted\"",
            ],
        );
        assert!(!r.contains("type = \"file\""), "{r}");
        // syslog-ng: network() destination with an octet-counted template, TLS, client key and certificate.
        assert_has(
            &n,
            &[
            "network(\"localhost\" port(7777)",
            "transport(\"tls\")",
            "template(\"$(length ${MSG}) ${MSG}\")",
            "key-file(\"/p/c.key\") cert-file(\"/p/c.pem\") ca-dir(\"/p/ca.d\") peer-verify(required-trusted)",
            "flags(no-parse)",
            ],
        );
        assert!(!n.contains("{ file(\""), "{n}");
        // rsyslog: omfwd with gtls, x509/name, the client certificate.
        assert_has(
            &y,
            &[
                r#"type="omfwd" target="127.0.0.1" port="7777""#,
                r#"TCP_Framing="octet-counted""#,
                r#"StreamDriver="gtls""#,
                r#"StreamDriverAuthMode="x509/name""#,
                r#"StreamDriverPermittedPeers="localhost""#,
                r#"streamDriver.CertFile="/p/c.pem""#,
                r#"streamDriver.KeyFile="/p/c.key""#,
                r#"string="%rawmsg%""#,
            ],
        );
        assert!(!y.contains(r#"type="omfile" file="/o"#), "{y}");
    }

    #[test]
    fn kafka_produces_the_frame_as_received_with_the_same_settings_everywhere() {
        let k = KafkaTarget {
            bootstrap: "127.0.0.1:21000",
            topic: "bench.t",
        };
        let (r, n, y) = configs(&with("kafka=true"), Dest::Kafka(k));
        // ringest: the kafka destination with its own keys, no file.
        assert_has(
            &r,
            &[
                "type = \"kafka\"",
                "brokers = [\"127.0.0.1:21000\"]",
                "topic = \"bench.t\"",
                "key = \"none\"",
                "acks = \"all\"",
                "compression = \"none\"",
                "linger_ms = 5\n",
                "batch_bytes = 1000000\n",
                "producer_queue_max_bytes = 16777216\n",
                "peer_verify = \"required-trusted\"",
            ],
        );
        assert!(!r.contains("type = \"file\""), "{r}");
        // Only what ringest has no key for goes through its properties.
        assert_has(
            &r,
            &["[destination.properties]\n\"max.in.flight.requests.per.connection\" = \"2\"\n"],
        );
        // syslog-ng: kafka-c, the whole frame (no-parse) as the value.
        assert_has(
            &n,
            &[
                "kafka-c(bootstrap-servers(\"127.0.0.1:21000\") topic(\"bench.t\") message(\"${MSG}\")",
                "flags(no-parse)",
                "flags(flow-control)",
            ],
        );
        assert!(!n.contains("{ file(\""), "{n}");
        // rsyslog: omkafka, %rawmsg% without LF, librdkafka's partitioner.
        assert_has(
            &y,
            &[
                "module(load=\"omkafka\")",
                r#"string="%rawmsg%")"#,
                r#"type="omkafka" broker=["127.0.0.1:21000"] topic="bench.t" template="bench_kafka" partitions.auto="on""#,
                r#"resubmitOnFailure="on""#,
            ],
        );
        assert!(!y.contains(r#"type="omfile" file="/o"#), "{y}");
        // The same librdkafka settings in both peers, the values ringest's keys set.
        for (key, value) in kafka::settings::peer_properties() {
            assert!(
                n.contains(&format!("\"{key}\" => \"{value}\"")),
                "{key} in {n}"
            );
            assert!(y.contains(&format!("\"{key}={value}\"")), "{key} in {y}");
        }
        assert_has(
            &n,
            &[
                "\"acks\" => \"all\"",
                "\"enable.idempotence\" => \"true\"",
                "\"compression.type\" => \"none\"",
            ],
        );
        assert_has(
            &y,
            &[
                "\"linger.ms=5\"",
                "\"batch.size=1000000\"",
                "\"queue.buffering.max.kbytes=65536\"",
                "\"message.timeout.ms=0\"",
            ],
        );
    }

    #[test]
    fn pinned_commands_run_under_taskset() {
        let mut c = Command::new("/bin/x");
        c.arg("-a").current_dir("/d");
        let p = pinned(c, Some("1"));
        assert_eq!(p.get_program(), "taskset");
        let args: Vec<_> = p
            .get_args()
            .map(|a| a.to_string_lossy().to_string())
            .collect();
        assert_eq!(args, ["-c", "1", "/bin/x", "-a"]);
        assert_eq!(p.get_current_dir(), Some(Path::new("/d")));
        assert_eq!(pinned(Command::new("/bin/x"), None).get_program(), "/bin/x");
    }

    #[test]
    fn parsed_work_writes_json_in_every_engine() {
        let sc = one("parsed", "octet-counted");
        let out = Dest::File(Path::new("/o/out.log"));
        let r = ringest_config(&sc, &pki(), out, 1, 2);
        assert!(
            r.contains("format = \"json\"") && r.contains("parse = \"auto\""),
            "{r}"
        );
        let n = syslog_ng_config(&sc, &pki(), out, 1);
        assert!(!n.contains("no-parse"), "{n}");
        assert!(
            n.contains("format-json --scope rfc5424 --scope nv-pairs"),
            "{n}"
        );
        let y = rsyslog_config(&sc, &pki(), out, 1, Path::new("/w"), Path::new("/i"));
        assert!(y.contains("\\\"message\\\":\\\"%msg:::json%"), "{y}");
        let nl = syslog_ng_config(&one("parsed", "newline"), &pki(), out, 1);
        assert!(nl.contains("flags(syslog-protocol)"), "{nl}");
    }
}
