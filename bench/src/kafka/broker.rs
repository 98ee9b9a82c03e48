//! The one Kafka broker of a `bench compare` run: tests/kafka/broker.sh
//! (Apache Kafka 4.x, KRaft, one node on loopback, the heap that script
//! sets), started once before the first kafka run and stopped by PID when
//! this value is dropped (the end, an error, Ctrl-C). A broker left by a
//! bench killed with SIGKILL runs under setsid: stop it with
//! `tests/kafka/broker.sh stop OUT/kafka-broker`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// tests/kafka/broker.sh of the workspace bench was built from.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/kafka/broker.sh")
}

/// The jar folder broker.sh uses ($KAFKA_LIBS, else target/kafka/libs).
fn libs_dir() -> PathBuf {
    std::env::var_os("KAFKA_LIBS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kafka/libs"))
}

/// "Apache Kafka 4.1.1", from the kafka_2.13-<version>.jar broker.sh runs.
fn version(libs: &Path) -> Option<String> {
    std::fs::read_dir(libs)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .find_map(|n| {
            let v = n.strip_prefix("kafka_2.13-")?.strip_suffix(".jar")?;
            (!v.contains('-')).then(|| format!("Apache Kafka {v}"))
        })
}

/// A free port below the kernel's ephemeral range (tests/kafka/README.md:
/// a client reconnecting to a broker port in that range can connect to
/// itself).
fn listener_port(salt: u32) -> Result<u16> {
    let seed = std::process::id().wrapping_mul(7919).wrapping_add(salt);
    for n in 0..1_000u32 {
        let port = 20_000 + (seed.wrapping_add(n.wrapping_mul(97)) % 12_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port in 20000..32000 for the kafka broker")
}

fn run(args: &[&str]) -> Result<String> {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", script().display()))?;
    if !out.status.success() {
        bail!(
            "tests/kafka/broker.sh {} failed (the jars: `bash tests/kafka/broker.sh fetch`, which tests/install-deps.sh runs):\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub struct Broker {
    dir: PathBuf,
    pub port: u16,
    pub pid: i32,
    /// "Apache Kafka 4.1.1, -Xmx512m" for the tables.
    pub describe: String,
}

impl Broker {
    /// Starts a broker with a fresh data folder `dir`, topic auto-creation
    /// off (every topic is made before its run, with the same partitions).
    pub fn start(dir: &Path) -> Result<Broker> {
        if !script().is_file() {
            bail!(
                "{} not found: bench runs the kafka rows from its workspace",
                script().display()
            );
        }
        let libs = libs_dir();
        let version = version(&libs).with_context(|| {
            format!(
                "no Kafka jars in {}: run `bash tests/kafka/broker.sh fetch` (tests/install-deps.sh does)",
                libs.display()
            )
        })?;
        if dir.join("pid").exists() {
            // A broker left by a bench killed with SIGKILL.
            let _ = run(&["stop", &dir.display().to_string()]);
        }
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir)?;
        let port = listener_port(1)?;
        let cport = listener_port(7)?;
        if cport == port {
            bail!("no second free port for the kafka controller");
        }
        eprintln!(
            "bench: starting the kafka broker ({version}) in {}",
            dir.display()
        );
        run(&[
            "start",
            &dir.display().to_string(),
            &port.to_string(),
            &cport.to_string(),
            "false",
        ])?;
        let pid: i32 = std::fs::read_to_string(dir.join("pid"))
            .context("broker.sh wrote no pid file")?
            .trim()
            .parse()
            .context("broker.sh's pid file")?;
        let heap = std::env::var("KAFKA_HEAP").unwrap_or_else(|_| "-Xmx512m".into());
        Ok(Broker {
            dir: dir.to_path_buf(),
            port,
            pid,
            describe: format!("{version}, KRaft single node, {heap}"),
        })
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates `topic` (Kafka's own TopicCommand: a JVM, before the run,
    /// outside every measured window).
    pub fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        run(&[
            "topic",
            &self.port.to_string(),
            topic,
            &partitions.to_string(),
        ])
        .map(|_| ())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        match run(&["stop", &self.dir.display().to_string()]) {
            // Its data too: every topic of the bench run.
            Ok(_) => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
            Err(e) => eprintln!("bench: {e:#}"),
        }
    }
}
