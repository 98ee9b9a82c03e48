//! `bench idle`: memory per idle mutual-TLS connection. The engine's RSS is
//! read once it listens and again once `loadgen send --hold-idle N` has
//! every connection established and the engine's CPU has gone still; the
//! difference over N is user-space memory per connection (kernel socket
//! buffers are not in RSS).
//!
//! One source address has one ephemeral port range (`ip_local_port_range`,
//! ~28k ports) towards the engine's one port, so past
//! [`ONE_SOURCE_CONNECTIONS_MAX`] loadgen binds its connections to several
//! loopback addresses (127.0.0.2, 127.0.0.3, ...; all of 127.0.0.0/8 reaches
//! `lo`) instead of the range being widened.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::compare;
use crate::engines::{self, Tools};
use crate::pki::Pki;
use crate::scenario::{self, Engine};
use crate::sys::{self, Proc};

#[derive(Debug, Serialize)]
pub struct IdleFigures {
    pub engine: Engine,
    pub asked: u32,
    /// Loopback source addresses loadgen spread them over (0: one, unbound).
    pub source_addrs: usize,
    pub established: Option<usize>,
    /// loadgen's count of connections it held.
    pub held: Option<u64>,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
    pub kib_per_connection: Option<f64>,
    pub connect_s: Option<f64>,
    pub error: Option<String>,
}

/// Most connections bench idle makes from one source address: below the
/// default range's 28,232 ports, leaving room for sockets other programs
/// hold.
pub const ONE_SOURCE_CONNECTIONS_MAX: u32 = 25_000;
/// Most connections `bench idle` opens: each end needs a file descriptor per
/// connection, and 100,000 is the project's target.
pub const CONNECTIONS_MAX: u32 = 200_000;
/// The default `ip_local_port_range` (32768–60999), when it cannot be read.
const DEFAULT_LOCAL_PORTS: u32 = 28_232;

/// The loopback source addresses for `n` connections when the local port
/// range has `ports` ports: none (loadgen's connections stay unbound) when
/// one address suffices, else as many as keep each under nine tenths of the
/// range and under [`ONE_SOURCE_CONNECTIONS_MAX`]: 127.0.0.2, 127.0.0.3, ...
pub fn source_addrs(n: u32, ports: u32) -> Vec<Ipv4Addr> {
    let per_addr = (ports / 10 * 9).clamp(1, ONE_SOURCE_CONNECTIONS_MAX);
    if n <= per_addr {
        return Vec::new();
    }
    loopback_sources(n.div_ceil(per_addr))
}

/// `count` loopback addresses from 127.0.0.2 on.
pub fn loopback_sources(count: u32) -> Vec<Ipv4Addr> {
    (0..count)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)) + i))
        .collect()
}

/// The source addresses for `n` connections: `forced` of them when given
/// (`bench idle --source-addrs`, to exercise spreading below the
/// threshold), else what the local port range requires.
fn sources_for(n: u32, forced: Option<u32>) -> Vec<Ipv4Addr> {
    let ports = sys::local_port_range()
        .map(|(lo, hi)| u32::from(hi - lo) + 1)
        .unwrap_or(DEFAULT_LOCAL_PORTS);
    let sources = match forced {
        Some(k) => loopback_sources(k),
        None => source_addrs(n, ports),
    };
    if let (Some(first), Some(last)) = (sources.first(), sources.last()) {
        eprintln!(
            "bench idle: {n} connections from {} loopback source addresses {first}–{last} \
             (ip_local_port_range has {ports} ports per address)",
            sources.len()
        );
    }
    sources
}

fn idle_scenario(n: u32) -> scenario::Scenario {
    let text = "[[scenario]]\nname = \"idle\"\ntitle = \"idle mutual TLS connections\"\ntransport = \"tls\"\n\
         framing = \"octet-counted\"\nconnections = 1\nidle_connections = 1\nrecords_per_write = 1\n";
    let mut sc = scenario::parse(text, "idle")
        .expect("built-in scenario")
        .remove(0);
    // Set after parsing: scenario files stop at 15,000 idle connections
    // (`bench compare` keeps the default open-file limit), bench idle
    // raises the limit for up to CONNECTIONS_MAX.
    sc.idle_connections = n;
    sc
}

fn one(
    tools: &Tools,
    pki: &Pki,
    e: Engine,
    n: u32,
    sources: &[Ipv4Addr],
    dir: &Path,
    fig: &mut IdleFigures,
) -> Result<()> {
    let sc = idle_scenario(n);
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let port = sys::free_port()?;
    let (mut engine, _launch) =
        compare::start_engine(tools, e, &sc, pki, dir, &data, engines::Wiring::file(port))?;
    sys::sleep(Duration::from_secs(1))?;
    fig.rss_before_kib = sys::status_kib(engine.pid, "VmRSS");
    // Bounds the wait for the connections; loadgen holds them past it.
    let limit = Duration::from_secs(60 + u64::from(n) / 50);
    let mut c = std::process::Command::new(&tools.loadgen);
    c.arg("send")
        .arg("--target")
        .arg(format!("127.0.0.1:{port}"))
        .args(compare::loadgen_transport_args(&sc, pki))
        // No --quiet: its progress lines count the TLS-established connections.
        .args(["--threads", "1", "--json", "--duration"])
        .arg(format!("{}s", limit.as_secs() + 120))
        .args(compare::IDLE_OPEN_ARGS)
        .arg("--hold-idle")
        .arg(n.to_string())
        .args(if sources.is_empty() {
            Vec::new()
        } else {
            let list: Vec<String> = sources.iter().map(Ipv4Addr::to_string).collect();
            vec!["--source-addrs".to_string(), list.join(",")]
        })
        .stdout(std::fs::File::create(dir.join("loadgen.json"))?)
        .stderr(std::fs::File::create(dir.join("loadgen.stderr"))?);
    let mut lg = Proc::spawn(c, "loadgen (idle)")?;
    let res = compare::wait_connections(&mut engine, port, n, limit, &dir.join("loadgen.stderr"));
    if let Ok(est) = &res {
        fig.established = Some(*est);
        sys::sleep(Duration::from_secs(1))?;
        fig.rss_after_kib = sys::status_kib(engine.pid, "VmRSS");
        fig.peak_rss_kib = sys::status_kib(engine.pid, "VmHWM");
    }
    let _ = lg.stop(Duration::from_secs(60));
    let stopped = engine.stop(Duration::from_secs(30));
    if let Ok(text) = std::fs::read_to_string(dir.join("loadgen.json")) {
        if let Ok(j) = serde_json::from_str::<serde_json::Value>(text.trim()) {
            fig.held = j.get("idle_connections").and_then(|v| v.as_u64());
            fig.connect_s = j.get("connect_s").and_then(|v| v.as_f64());
        }
    }
    let est = res?;
    if est < n as usize {
        fig.error = Some(format!(
            "only {est} of {n} connections established (KiB per established connection); loadgen: {}",
            sys::tail(&dir.join("loadgen.stderr"), 3)
        ));
    }
    if let (Some(a), Some(b)) = (fig.rss_before_kib, fig.rss_after_kib) {
        if est > 0 {
            fig.kib_per_connection = Some((b as f64 - a as f64) / est as f64);
        }
    }
    if stopped.killed || stopped.already_exited {
        fig.error = Some(format!(
            "{}{e} {}",
            fig.error.take().map(|x| x + "; ").unwrap_or_default(),
            stopped.describe()
        ));
    }
    Ok(())
}

/// `forced_sources`: spread over this many loopback source addresses
/// whatever `n` is (see [`sources_for`]).
pub fn run(
    tools: &Tools,
    out: &Path,
    engines: &[Engine],
    n: u32,
    forced_sources: Option<u32>,
) -> Result<Vec<IdleFigures>> {
    let openssl = tools
        .openssl
        .clone()
        .context("openssl not found (apt-get install openssl)")?;
    let pki = crate::pki::generate(
        &out.join("work").join("pki-idle"),
        crate::pki::ServerKey::EcdsaP256,
        &openssl,
    )?;
    let sources = sources_for(n, forced_sources);
    let mut figs = Vec::new();
    for &e in engines {
        let dir = out.join("runs").join(format!("idle-{}", e.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let mut fig = IdleFigures {
            engine: e,
            asked: n,
            source_addrs: sources.len(),
            established: None,
            held: None,
            rss_before_kib: None,
            rss_after_kib: None,
            peak_rss_kib: None,
            kib_per_connection: None,
            connect_s: None,
            error: None,
        };
        if let Err(err) = one(tools, &pki, e, n, &sources, &dir, &mut fig) {
            if sys::interrupted() {
                return Err(err);
            }
            fig.error = Some(format!("{err:#}"));
        }
        let _ = std::fs::remove_dir_all(dir.join("data"));
        for f in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            sys::trim_log(&f.path());
        }
        eprintln!(
            "bench idle: {e}: {} connections, RSS {} → {} MiB: {} KiB per connection{}",
            fig.established.map(|v| v.to_string()).unwrap_or("—".into()),
            fig.rss_before_kib
                .map(|v| format!("{:.1}", v as f64 / 1024.0))
                .unwrap_or("—".into()),
            fig.rss_after_kib
                .map(|v| format!("{:.1}", v as f64 / 1024.0))
                .unwrap_or("—".into()),
            fig.kib_per_connection
                .map(|v| format!("{v:.1}"))
                .unwrap_or("—".into()),
            fig.error
                .as_ref()
                .map(|e| format!(" (error: {e})"))
                .unwrap_or_default()
        );
        figs.push(fig);
    }
    Ok(figs)
}

pub fn markdown(figs: &[IdleFigures], meta: &str) -> String {
    let mut s = format!("# Memory per idle mutual-TLS connection\n\n{meta}\n\n");
    s += "`loadgen send --hold-idle N` (TLS 1.3, client certificate) against each engine; RSS (VmRSS) read after the \
          engine listened and again once all N connections were established and its CPU was still. \
          Kernel socket memory is not included. Above 25,000 connections (or with `--source-addrs`) loadgen \
          binds them to several loopback source addresses (column `sources`).\n\n";
    s += "| engine | connections | sources | RSS before MiB | RSS with connections MiB | KiB per connection | connect time s | note |\n|---|---|---|---|---|---|---|---|\n";
    for f in figs {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            f.engine,
            f.established.map(|v| v.to_string()).unwrap_or("—".into()),
            f.source_addrs.max(1),
            f.rss_before_kib
                .map(|v| format!("{:.1}", v as f64 / 1024.0))
                .unwrap_or("—".into()),
            f.rss_after_kib
                .map(|v| format!("{:.1}", v as f64 / 1024.0))
                .unwrap_or("—".into()),
            f.kib_per_connection
                .map(|v| format!("{v:.1}"))
                .unwrap_or("—".into()),
            f.connect_s.map(|v| format!("{v:.1}")).unwrap_or("—".into()),
            f.error.clone().unwrap_or_default().replace('|', "\\|"),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_takes_more_than_scenario_files_may() {
        let sc = idle_scenario(100_000);
        assert_eq!(sc.idle_connections, 100_000);
        // The engines' max_connections is sized from this.
        assert_eq!(sc.total_connections(), 100_001);
    }

    #[test]
    fn one_source_until_the_port_range_runs_short() {
        assert!(source_addrs(10_000, DEFAULT_LOCAL_PORTS).is_empty());
        assert!(source_addrs(ONE_SOURCE_CONNECTIONS_MAX, DEFAULT_LOCAL_PORTS).is_empty());
        let a = source_addrs(100_000, DEFAULT_LOCAL_PORTS);
        assert_eq!(a.len(), 4);
        assert_eq!(a[0], Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(a[3], Ipv4Addr::new(127, 0, 0, 5));
        // A narrow range: nine tenths of 1,000 ports per address.
        assert_eq!(source_addrs(10_000, 1_000).len(), 12);
        assert_eq!(source_addrs(900, 1_000).len(), 0);
        let wide = source_addrs(CONNECTIONS_MAX, 10);
        assert!(wide.iter().all(|a| a.is_loopback()), "stays in 127.0.0.0/8");
    }
}
