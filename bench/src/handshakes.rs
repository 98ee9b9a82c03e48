//! `bench handshakes`: full mutual-TLS 1.3 handshakes per second per core,
//! against ringest (ECDSA P-256 and RSA-2048 server certificates) and, in
//! the same run, an in-process rustls baseline: a rustls server and client
//! handshaking in memory with the same certificates, suite and group, with
//! only the server side's CPU time counted.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Serialize;

use crate::compare;
use crate::engines::{self, Tools};
use crate::pki::{self, Pki, ServerKey};
use crate::scenario::{self, Engine};
use crate::sys::{self, Proc};

#[derive(Debug, Serialize)]
pub struct HandshakeFigures {
    pub server_key: &'static str,
    /// 1-based; ringest and the baseline alternate, one pair per repeat.
    pub repeat: u32,
    /// ringest, driven by `loadgen send --handshake-only`.
    pub ringest_handshakes: Option<u64>,
    pub ringest_handshakes_per_s: Option<f64>,
    pub ringest_cpu_s: Option<f64>,
    /// Handshakes per ringest CPU-second: per core.
    pub ringest_per_core: Option<f64>,
    pub ringest_threads_cpu_s: std::collections::BTreeMap<String, f64>,
    pub client_cpu_s: Option<f64>,
    pub loadgen_errors: serde_json::Value,
    pub busy_before: Option<f64>,
    pub quiet_gave_up: bool,
    /// In-process rustls: handshakes, and CPU-seconds of the server side.
    pub baseline_handshakes: u64,
    pub baseline_server_cpu_s: f64,
    pub baseline_client_cpu_s: f64,
    pub baseline_per_core: f64,
    /// ringest_per_core / baseline_per_core.
    pub ringest_vs_baseline: Option<f64>,
    pub error: Option<String>,
}

fn load(pki: &Pki, server: bool) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let (c, k) = if server {
        (&pki.server_cert, &pki.server_key)
    } else {
        (&pki.client_cert, &pki.client_key)
    };
    let chain = CertificateDer::pem_file_iter(c)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(k)?;
    Ok((chain, key))
}

/// Full handshakes (mutual TLS 1.3, X25519, AES-128-GCM, no tickets, no
/// resumption) between an in-memory rustls client and server for `dur`,
/// on this thread. Returns (handshakes, server CPU-s, client CPU-s).
pub fn rustls_baseline(pki: &Pki, dur: Duration) -> Result<(u64, f64, f64)> {
    use rustls::crypto::aws_lc_rs as p;
    let mut prov = p::default_provider();
    prov.kx_groups = vec![p::kx_group::X25519];
    prov.cipher_suites = vec![p::cipher_suite::TLS13_AES_128_GCM_SHA256];
    let prov = Arc::new(prov);
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki.ca)? {
        roots.add(c?)?;
    }
    let roots = Arc::new(roots);
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), prov.clone())
            .build()?;
    let (schain, skey) = load(pki, true)?;
    let mut scfg = rustls::ServerConfig::builder_with_provider(prov.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(schain, skey)?;
    scfg.send_tls13_tickets = 0;
    scfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    let scfg = Arc::new(scfg);
    let (cchain, ckey) = load(pki, false)?;
    let mut ccfg = rustls::ClientConfig::builder_with_provider(prov)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(cchain, ckey)?;
    ccfg.resumption = rustls::client::Resumption::disabled();
    let ccfg = Arc::new(ccfg);
    let name = ServerName::try_from("localhost")?.to_owned();

    let mut to_server = Vec::with_capacity(16 * 1024);
    let mut to_client = Vec::with_capacity(16 * 1024);
    let (mut n, mut server_s, mut client_s) = (0u64, 0.0f64, 0.0f64);
    let start = Instant::now();
    while start.elapsed() < dur {
        sys::check_interrupted()?;
        let t0 = sys::thread_cpu_s();
        let mut c = rustls::ClientConnection::new(ccfg.clone(), name.clone())?;
        let t1 = sys::thread_cpu_s();
        let mut s = rustls::ServerConnection::new(scfg.clone())?;
        let t2 = sys::thread_cpu_s();
        client_s += t1 - t0;
        server_s += t2 - t1;
        let mut flights = 0;
        loop {
            flights += 1;
            if flights > 16 {
                return Err(anyhow!("in-memory handshake did not finish in 16 flights"));
            }
            let a = sys::thread_cpu_s();
            to_server.clear();
            while c.wants_write() {
                c.write_tls(&mut to_server)?;
            }
            let b = sys::thread_cpu_s();
            let mut rd = &to_server[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd)?;
                s.process_new_packets()
                    .map_err(|e| anyhow!("server: {e}"))?;
            }
            to_client.clear();
            while s.wants_write() {
                s.write_tls(&mut to_client)?;
            }
            let d = sys::thread_cpu_s();
            let mut rd = &to_client[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd)?;
                c.process_new_packets()
                    .map_err(|e| anyhow!("client: {e}"))?;
            }
            let e = sys::thread_cpu_s();
            client_s += (b - a) + (e - d);
            server_s += d - b;
            if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
                break;
            }
        }
        n += 1;
    }
    Ok((n, server_s, client_s))
}

fn handshake_scenario() -> scenario::Scenario {
    let text = "[[scenario]]\nname = \"handshakes\"\ntitle = \"full mutual TLS 1.3 handshakes\"\n\
                transport = \"tls\"\nframing = \"octet-counted\"\nconnections = 8\nrecords_per_write = 1\n";
    scenario::parse(text, "handshakes")
        .expect("built-in scenario")
        .remove(0)
}

fn ringest_run(
    tools: &Tools,
    pki: &Pki,
    dir: &Path,
    dur_s: u32,
    conns: u32,
    quiet: (f64, Duration),
    fig: &mut HandshakeFigures,
) -> Result<()> {
    let sc = handshake_scenario();
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let port = sys::free_port()?;
    let (mut engine, _launch) = compare::start_engine(
        tools,
        Engine::Ringest,
        &sc,
        pki,
        dir,
        &data,
        engines::Wiring::file(port),
    )?;
    let q = sys::wait_quiet(quiet.0, quiet.1)?;
    fig.busy_before = Some(q.busy);
    fig.quiet_gave_up = q.gave_up;
    let mut c = std::process::Command::new(&tools.loadgen);
    c.arg("send")
        .arg("--target")
        .arg(format!("127.0.0.1:{port}"))
        .args(compare::loadgen_transport_args(&sc, pki))
        .args([
            "--kx",
            "x25519",
            "--handshake-only",
            "--threads",
            "1",
            "--json",
            "--quiet",
        ])
        .arg("--connections")
        .arg(conns.to_string())
        .arg("--duration")
        .arg(format!("{dur_s}s"))
        .args(compare::loadgen_congestion_args(&sc))
        .stdout(std::fs::File::create(dir.join("loadgen.json"))?)
        .stderr(std::fs::File::create(dir.join("loadgen.stderr"))?);
    let cpu0 = sys::process_cpu_s(engine.pid).context("ringest vanished")?;
    let th0 = sys::threads_cpu_s(engine.pid);
    let mut lg = Proc::spawn(c, "loadgen")?;
    let limit = Duration::from_secs(u64::from(dur_s) + 60);
    if lg.wait_for(limit)?.is_none() {
        lg.stop(Duration::from_secs(5));
        anyhow::bail!("loadgen did not finish within {limit:?}");
    }
    sys::sleep(Duration::from_millis(300))?;
    let cpu1 = sys::process_cpu_s(engine.pid).context("ringest exited during the run")?;
    for (k, v) in sys::threads_cpu_s(engine.pid) {
        let d = v - th0.get(&k).copied().unwrap_or(0.0);
        if d > 0.0 {
            fig.ringest_threads_cpu_s
                .insert(k, (d * 1000.0).round() / 1000.0);
        }
    }
    let stopped = engine.stop(Duration::from_secs(20));
    let j: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(dir.join("loadgen.json"))?.trim())
            .with_context(|| format!("loadgen: {}", sys::tail(&dir.join("loadgen.stderr"), 3)))?;
    let hs = j.get("handshakes").and_then(|v| v.as_u64());
    fig.ringest_handshakes = hs;
    fig.ringest_handshakes_per_s = j.get("handshakes_per_s").and_then(|v| v.as_f64());
    fig.client_cpu_s = j.get("client_cpu_s").and_then(|v| v.as_f64());
    fig.loadgen_errors = j.get("errors").cloned().unwrap_or_default();
    fig.ringest_cpu_s = Some(cpu1 - cpu0);
    if let Some(h) = hs {
        if cpu1 > cpu0 {
            fig.ringest_per_core = Some(h as f64 / (cpu1 - cpu0));
        }
    }
    if !stopped.clean() {
        fig.error = Some(format!("ringest {}", stopped.describe()));
    }
    if fig
        .loadgen_errors
        .as_object()
        .map(|o| !o.is_empty())
        .unwrap_or(false)
    {
        fig.error = Some(format!("loadgen errors: {}", fig.loadgen_errors));
    }
    Ok(())
}

pub struct Args {
    pub duration_s: u32,
    pub connections: u32,
    pub repeat: u32,
    pub quiet_busy: f64,
    pub quiet_timeout: Duration,
}

pub fn run(tools: &Tools, out: &Path, a: &Args) -> Result<Vec<HandshakeFigures>> {
    let openssl = tools
        .openssl
        .clone()
        .context("openssl not found (apt-get install openssl)")?;
    let mut figs = Vec::new();
    for kind in [ServerKey::EcdsaP256, ServerKey::Rsa2048] {
        let tag = match kind {
            ServerKey::EcdsaP256 => "ecdsa-p256",
            ServerKey::Rsa2048 => "rsa-2048",
        };
        let pki = pki::generate(&out.join("work").join(format!("pki-{tag}")), kind, &openssl)?;
        for repeat in 1..=a.repeat {
            let dir = out.join("runs").join(format!("handshakes-{tag}-{repeat}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let mut fig = HandshakeFigures {
                server_key: kind.name(),
                repeat,
                ringest_handshakes: None,
                ringest_handshakes_per_s: None,
                ringest_cpu_s: None,
                ringest_per_core: None,
                ringest_threads_cpu_s: Default::default(),
                client_cpu_s: None,
                loadgen_errors: serde_json::Value::Null,
                busy_before: None,
                quiet_gave_up: false,
                baseline_handshakes: 0,
                baseline_server_cpu_s: 0.0,
                baseline_client_cpu_s: 0.0,
                baseline_per_core: 0.0,
                ringest_vs_baseline: None,
                error: None,
            };
            if let Err(e) = ringest_run(
                tools,
                &pki,
                &dir,
                a.duration_s,
                a.connections,
                (a.quiet_busy, a.quiet_timeout),
                &mut fig,
            ) {
                if sys::interrupted() {
                    return Err(e);
                }
                fig.error = Some(format!("{e:#}"));
            }
            let (n, s, c) = rustls_baseline(&pki, Duration::from_secs(u64::from(a.duration_s)))?;
            fig.baseline_handshakes = n;
            fig.baseline_server_cpu_s = s;
            fig.baseline_client_cpu_s = c;
            fig.baseline_per_core = if s > 0.0 { n as f64 / s } else { 0.0 };
            fig.ringest_vs_baseline = fig.ringest_per_core.map(|r| r / fig.baseline_per_core);
            eprintln!(
            "bench handshakes: {} run {repeat}/{}: ringest {} handshakes/s ({} per ringest CPU-s), rustls in memory {:.0} per server CPU-s{}",
            kind.name(),
            a.repeat,
            fig.ringest_handshakes_per_s.map(|v| format!("{v:.0}")).unwrap_or("—".into()),
            fig.ringest_per_core.map(|v| format!("{v:.0}")).unwrap_or("—".into()),
            fig.baseline_per_core,
            fig.error.as_ref().map(|e| format!(" (error: {e})")).unwrap_or_default()
        );
            figs.push(fig);
        }
    }
    Ok(figs)
}

fn med(v: Vec<f64>) -> String {
    match crate::report::Stat::of(v) {
        Some(st) if st.n > 1 => format!("{:.0} ({:.0}–{:.0})", st.median, st.min, st.max),
        Some(st) => format!("{:.0}", st.median),
        None => "—".into(),
    }
}

pub fn markdown(figs: &[HandshakeFigures], meta: &str, dur_s: u32, conns: u32) -> String {
    let mut s = format!("# Full mutual-TLS handshakes per second per core\n\n{meta}\n\n");
    let cc = handshake_scenario().client_congestion;
    s += &format!(
        "TLS 1.3, X25519, AES-128-GCM, client certificate ECDSA P-256 verified against the CA, no tickets, no resumption. \
         ringest: `loadgen send --handshake-only --connections {conns} --threads 1 --duration {dur_s}s` \
         (connect, full handshake, clean close, repeat), its sockets on the TCP congestion control {cc}; per core = handshakes / ringest's CPU-seconds \
         (utime+stime, all threads). Baseline: a rustls server and client in one thread, in memory, same \
         certificates, for {dur_s} s, right after each ringest run; per core = handshakes / CPU-seconds of the \
         server side only (no sockets, no accept, no certificate identity extraction). Median of the repeats, min–max in brackets.\n\n"
    );
    s += "| server key | ringest handshakes/s | ringest handshakes per CPU-s | rustls in-memory handshakes per server CPU-s | ringest / baseline |\n|---|---|---|---|---|\n";
    let mut kinds: Vec<&str> = figs.iter().map(|f| f.server_key).collect();
    kinds.dedup();
    for k in kinds {
        let f: Vec<&HandshakeFigures> = figs.iter().filter(|f| f.server_key == k).collect();
        let ratio =
            crate::report::Stat::of(f.iter().filter_map(|x| x.ringest_vs_baseline).collect());
        s += &format!(
            "| {k} | {} | {} | {} | {} |\n",
            med(f
                .iter()
                .filter_map(|x| x.ringest_handshakes_per_s)
                .collect()),
            med(f.iter().filter_map(|x| x.ringest_per_core).collect()),
            med(f.iter().map(|x| x.baseline_per_core).collect()),
            ratio
                .map(|r| format!(
                    "{:.0}% ({:.0}–{:.0}%)",
                    r.median * 100.0,
                    r.min * 100.0,
                    r.max * 100.0
                ))
                .unwrap_or("—".into()),
        );
    }
    s += "\nEvery run:\n\n| server key | run | ringest handshakes/s | ringest CPU-s | ringest handshakes per CPU-s | baseline per server CPU-s | ringest / baseline | busy before % | note |\n|---|---|---|---|---|---|---|---|---|\n";
    for f in figs {
        s += &format!(
            "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} |\n",
            f.server_key,
            f.repeat,
            f.ringest_handshakes_per_s
                .map(|v| format!("{v:.0}"))
                .unwrap_or("—".into()),
            f.ringest_cpu_s
                .map(|v| format!("{v:.2}"))
                .unwrap_or("—".into()),
            f.ringest_per_core
                .map(|v| format!("{v:.0}"))
                .unwrap_or("—".into()),
            f.baseline_per_core,
            f.ringest_vs_baseline
                .map(|v| format!("{:.0}%", v * 100.0))
                .unwrap_or("—".into()),
            f.busy_before
                .map(|b| format!(
                    "{:.0}{}",
                    b * 100.0,
                    if f.quiet_gave_up { " (not quiet)" } else { "" }
                ))
                .unwrap_or("—".into()),
            f.error.clone().unwrap_or_default().replace('|', "\\|"),
        );
    }
    s
}
