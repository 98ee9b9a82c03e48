//! `bench compare`: every scenario × engine × repeat, one run at a time.
//!
//! One run, in order (each step bounded in time):
//! 0. bring the memory to the run's state: steady, top the page cache up to
//!    the target (steady.rs); fresh, wait so freed memory sits free. Then
//!    measure the page-cache write cost (a fixed 256 KiB-write probe). Then
//!    make room on the disk for a paced run's estimated output
//!    (disk_budget.rs): trim the pool's oldest files if they make the disk
//!    short, or refuse the run (failed, with the figures) if even that is
//!    not enough (an unpaced run, whose figure is only a bound, is neither
//!    trimmed for nor refused: it goes on with a warning);
//! 1. generate the engine's config into its own run folder;
//! 2. start the engine in the foreground, bound to loopback; wait until its
//!    port listens (ringest: also its "ringest: ready" line);
//! 3. open the idle connections, if the scenario has any (second loadgen);
//! 4. wait until the machine is quiet (1-s windows of /proc/stat), or give
//!    up after --quiet-timeout and record that;
//! 5. sample the engine's CPU (/proc/PID/stat) and the machine's
//!    (/proc/stat), and drive loadgen for the duration;
//! 6. wait until the output file stops growing; sample the engine's CPU and
//!    VmHWM; fdatasync the output, so its writeback is in the window for
//!    every engine; sample the machine's CPU and steal;
//! 7. stop the idle loadgen, stop the engine by PID (SIGTERM, then SIGKILL
//!    after a grace period), and run `loadgen verify` on the output;
//! 8. steady state: move the output into the page-cache pool (deleting it
//!    would free its pages); fresh: delete it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::disk_budget;
use crate::engines::{self, KafkaTarget, Tools, Wiring};
use crate::kafka::{self, broker::Broker, client, delivery};
use crate::pki::{self, Pki, ServerKey};
use crate::record::{MemState, ProcStatWindow, Quantiles, Run, Status};
use crate::scenario::{Engine, Scenario, Work};
use crate::steady;
use crate::sys::{self, Proc};
use crate::{metrics, pin};

pub struct Settings {
    pub duration_s: u32,
    /// The option that set `duration_s`, for the disk refusal's hint.
    pub duration_flag: &'static str,
    pub keep: bool,
    /// At most this busy fraction (0..1) of all CPUs counts as quiet.
    pub quiet_busy: f64,
    pub quiet_timeout: Duration,
    /// Bytes of the page-cache write probe before every run.
    pub probe_bytes: u64,
    /// Fresh state: how long freed memory sits free before a run.
    pub fresh_wait: Duration,
}

/// The memory state the next runs are measured in, and what keeps it.
pub enum Memory {
    /// The pool keeps the page cache full; dropping it removes its files.
    Steady(steady::Pool),
    Fresh,
}

impl Memory {
    pub fn state(&self) -> MemState {
        match self {
            Memory::Steady(_) => MemState::Steady,
            Memory::Fresh => MemState::Fresh,
        }
    }
}

/// Where a run sits in the plan.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub repeat: u32,
    pub attempt: u32,
    /// 1-based position in the repeat's engine order.
    pub order: u32,
}

/// Bounds of the steps of one run.
const START_LIMIT: Duration = Duration::from_secs(20);
const ENGINE_STOP_GRACE: Duration = Duration::from_secs(30);
const SETTLE_STABLE: Duration = Duration::from_millis(1000);
const SETTLE_LIMIT: Duration = Duration::from_secs(120);
const VERIFY_LIMIT: Duration = Duration::from_secs(300);
/// loadgen's wait for the engine's EOF after its clean close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Kafka rows: how long a topic short of loadgen's count may stay
/// unchanged (librdkafka retries within seconds), and the longest wait for
/// it after loadgen ended.
const KAFKA_STALL: Duration = Duration::from_secs(30);
const KAFKA_LIMIT: Duration = Duration::from_secs(300);
/// Kafka rows: the one read of the topic after the run, for `loadgen verify`.
const KAFKA_READ_LIMIT: Duration = Duration::from_secs(600);

pub struct Ctx<'a> {
    pub tools: &'a Tools,
    pub settings: &'a Settings,
    pub pki: Pki,
    /// Small per-run files: OUT/runs/<scenario>/<engine>-<repeat>/.
    pub runs_dir: PathBuf,
    /// Big output files, deleted after each run unless --keep.
    pub work_dir: PathBuf,
    /// The kafka rows' one broker ([`Ctx::start_kafka`]); stopped on drop.
    pub kafka: Option<Broker>,
}

impl<'a> Ctx<'a> {
    pub fn new(tools: &'a Tools, settings: &'a Settings, out: &Path) -> Result<Ctx<'a>> {
        let runs_dir = out.join("runs");
        let work_dir = out.join("work");
        std::fs::create_dir_all(&runs_dir)?;
        std::fs::create_dir_all(&work_dir)?;
        let openssl = tools
            .openssl
            .clone()
            .context("openssl not found (apt-get install openssl)")?;
        let pki = pki::generate(&work_dir.join("pki"), ServerKey::EcdsaP256, &openssl)?;
        Ok(Ctx {
            tools,
            settings,
            pki,
            runs_dir,
            work_dir,
            kafka: None,
        })
    }

    /// Starts the one broker every kafka run of this bench uses, and warms
    /// it up for `warm_up` (see [`warm_up_broker`]).
    pub fn start_kafka(&mut self, warm_up: Duration) -> Result<()> {
        if self.kafka.is_none() {
            // Not under work/, which the steady pool's cleanup removes
            // while the broker still runs; the broker removes it when stopped.
            let dir = self.work_dir.with_file_name("kafka-broker");
            let mut broker = Broker::start(&dir)?;
            if !warm_up.is_zero() {
                let done = warm_up_broker(&broker, warm_up)?;
                broker.describe += &format!("; {done}");
            }
            self.kafka = Some(broker);
        }
        Ok(())
    }
}

/// Message bound of the warm-up: 3 GB of 300-byte values at most on the
/// broker's disk until the topic is deleted.
const WARM_UP_MAX_MESSAGES: u64 = 10_000_000;

/// The broker is a JVM: its first seconds under load run in the
/// interpreter while the JIT compiles the produce path (the C2 compiler
/// thread took 8% of the machine in the first kafka run of session 9), so
/// whichever engine ran first paid for it. bench's own producer loads it
/// first, with every engine's producer settings and the scenarios'
/// message size, into a topic deleted afterwards. Returns the line for
/// the tables.
fn warm_up_broker(broker: &Broker, duration: Duration) -> Result<String> {
    let topic = "bench-warm-up";
    broker.create_topic(topic, kafka::PARTITIONS)?;
    eprintln!("bench: warming the kafka broker up for {duration:?}");
    let started = Instant::now();
    let sent = client::warm_up(
        &broker.bootstrap(),
        topic,
        crate::scenario::DEFAULT_SIZE as usize,
        duration,
        WARM_UP_MAX_MESSAGES,
    )?;
    let took = started.elapsed().as_secs_f64();
    client::delete_topic(&broker.bootstrap(), topic)?;
    Ok(format!(
        "warmed up before the first run by bench's own producer (the same settings): {sent} messages of {} B in {took:.0} s, topic deleted",
        crate::scenario::DEFAULT_SIZE
    ))
}

/// How idle connections are opened, the same for every engine: at most 64
/// handshakes in flight, each given 30 s (a slow handshaker is then slow,
/// not refused).
pub const IDLE_OPEN_ARGS: [&str; 4] = ["--max-pending", "64", "--timeout", "30s"];

/// loadgen's `--tcp-congestion` for a scenario: none when it keeps the
/// machine's default.
pub fn loadgen_congestion_args(sc: &Scenario) -> Vec<String> {
    if sc.client_congestion == crate::scenario::CLIENT_CONGESTION_SYSTEM {
        return Vec::new();
    }
    vec!["--tcp-congestion".into(), sc.client_congestion.clone()]
}

/// loadgen's transport arguments for a scenario.
pub fn loadgen_transport_args(sc: &Scenario, pki: &Pki) -> Vec<String> {
    let mut a = Vec::new();
    if sc.tls() {
        a.extend(["--ca".into(), pki.ca.display().to_string()]);
        if sc.mutual {
            a.extend(["--cert".into(), pki.client_cert.display().to_string()]);
            a.extend(["--key".into(), pki.client_key.display().to_string()]);
        }
        a.extend([
            "--tls-version".into(),
            "1.3".into(),
            "--cipher".into(),
            sc.cipher.clone(),
        ]);
        // No engine's handshake is in doubt here (valid certificates), and
        // ringest sends no session tickets: do not wait for one.
        a.extend(["--confirm-timeout".into(), "0".into()]);
    } else {
        a.push("--tcp".into());
    }
    a
}

fn loadgen_cmd(tools: &Tools, args: &[String], dir: &Path, name: &str) -> Result<Command> {
    loadgen_cmd_on(tools, args, dir, name, None)
}

/// loadgen send, pinned to `cpus` if given.
fn loadgen_cmd_on(
    tools: &Tools,
    args: &[String],
    dir: &Path,
    name: &str,
    cpus: Option<&str>,
) -> Result<Command> {
    let mut c = Command::new(&tools.loadgen);
    c.arg("send").args(args);
    let mut c = engines::pinned(c, cpus);
    c.stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join(format!("{name}.json")))?)
        .stderr(std::fs::File::create(dir.join(format!("{name}.stderr")))?);
    Ok(c)
}

fn read_json(p: &Path) -> Result<Value> {
    let s = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
    serde_json::from_str(s.trim())
        .with_context(|| format!("{}: not one JSON object: {:.200}", p.display(), s))
}

fn f64_of(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}
fn u64_of(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(Value::as_u64)
}

/// Starts the engine and waits until it listens. On failure the engine is
/// stopped (by drop) and the error says why, with its log's last lines.
pub fn start_engine(
    tools: &Tools,
    e: Engine,
    sc: &Scenario,
    pki: &Pki,
    run_dir: &Path,
    data_dir: &Path,
    w: Wiring,
) -> Result<(Proc, engines::Launch)> {
    let port = w.port;
    let mut launch = engines::launch(tools, e, sc, pki, run_dir, data_dir, w)?;
    let stdout_p = run_dir.join(format!("{}.stdout", e.name()));
    let stderr_p = run_dir.join(format!("{}.stderr", e.name()));
    if let Some(mut pre) = launch.precheck.take() {
        let o = pre.output().context("cannot run the config check")?;
        std::fs::write(
            run_dir.join(format!("{}.config-check", e.name())),
            [&o.stdout[..], &o.stderr[..]].concat(),
        )?;
        let text =
            String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
        if !o.status.success() || text.to_ascii_lowercase().contains("error") {
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| l.to_ascii_lowercase().contains("error"))
                .take(3)
                .collect();
            bail!("config rejected ({}): {}", o.status, lines.join(" | "));
        }
    }
    launch
        .cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_p)?)
        .stderr(std::fs::File::create(&stderr_p)?);
    let cmd = std::mem::replace(&mut launch.cmd, Command::new("true"));
    let mut p = Proc::spawn(cmd, e.name())?;
    let start = Instant::now();
    loop {
        if let Some(st) = p.try_wait() {
            bail!(
                "{e} exited at start-up ({st}): {}",
                [sys::tail(&stderr_p, 4), sys::tail(&stdout_p, 2)].join(" | ")
            );
        }
        let listening = sys::tcp_sockets(port).0 > 0;
        let ready = match launch.ready_line {
            Some(l) => std::fs::read_to_string(&stdout_p)
                .unwrap_or_default()
                .lines()
                .any(|x| x.trim() == l),
            None => true,
        };
        if listening && ready {
            break;
        }
        if start.elapsed() > START_LIMIT {
            bail!(
                "{e} did not listen on 127.0.0.1:{port} within {START_LIMIT:?}: {}",
                sys::tail(&stderr_p, 4)
            );
        }
        sys::sleep(Duration::from_millis(50))?;
    }
    // Listening is not quite serving for every engine (rsyslog starts its
    // queue workers around then); a short grace, included in no figure.
    sys::sleep(Duration::from_millis(300))?;
    if let Some(st) = p.try_wait() {
        bail!(
            "{e} exited right after listening ({st}): {}",
            sys::tail(&stderr_p, 4)
        );
    }
    Ok((p, launch))
}

/// The last `conns=N` of loadgen's plain progress lines (one a second on
/// stderr without --quiet): connections whose TLS handshake completed.
fn loadgen_established(stderr: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(stderr).ok()?;
    text.lines().rev().find_map(|l| {
        l.split_whitespace()
            .find_map(|w| w.strip_prefix("conns="))
            .and_then(|n| n.parse().ok())
    })
}

/// Waits until `n` connections to `port` are established, both as TCP
/// connections on the server side and as TLS handshakes by loadgen's count
/// (`client_stderr`), or until their number stops growing for 15 s, or
/// `limit` passes; then until the engine's CPU has stopped moving. Returns
/// how many are established (the smaller of the two counts).
pub fn wait_connections(
    engine: &mut Proc,
    port: u16,
    n: u32,
    limit: Duration,
    client_stderr: &Path,
) -> Result<usize> {
    const STALL: Duration = Duration::from_secs(15);
    let start = Instant::now();
    let count = || {
        let tcp = sys::tcp_sockets(port).1;
        loadgen_established(client_stderr).unwrap_or(0).min(tcp)
    };
    let mut best = 0;
    let mut progressed = Instant::now();
    loop {
        sys::check_interrupted()?;
        let est = count();
        if est >= n as usize {
            break;
        }
        if est > best {
            best = est;
            progressed = Instant::now();
        }
        if let Some(st) = engine.try_wait() {
            bail!("engine exited while connections were opened ({st})");
        }
        if start.elapsed() > limit || progressed.elapsed() > STALL {
            break;
        }
        sys::sleep(Duration::from_millis(200))?;
    }
    let mut last = sys::process_cpu_s(engine.pid).unwrap_or(0.0);
    loop {
        sys::sleep(Duration::from_millis(500))?;
        let now = sys::process_cpu_s(engine.pid).unwrap_or(0.0);
        if now - last <= 0.02 || start.elapsed() > limit {
            break;
        }
        last = now;
    }
    // Let loadgen print one more progress line, then count again.
    sys::sleep(Duration::from_millis(1100))?;
    Ok(count())
}

/// Waits until `p` has not grown for SETTLE_STABLE; returns when it last grew.
fn wait_output_settled(p: &Path, engine: &mut Proc) -> Result<(Instant, bool)> {
    let start = Instant::now();
    let mut len = sys::file_len(p);
    let mut last_growth = start;
    loop {
        sys::sleep(Duration::from_millis(100))?;
        let now_len = sys::file_len(p);
        if now_len != len {
            len = now_len;
            last_growth = Instant::now();
        } else if last_growth.elapsed() >= SETTLE_STABLE {
            return Ok((last_growth, true));
        }
        if engine.try_wait().is_some() || start.elapsed() > SETTLE_LIMIT {
            return Ok((last_growth, false));
        }
    }
}

fn run_verify(
    tools: &Tools,
    work: Work,
    output: &Path,
    send_json: &Path,
    dir: &Path,
) -> Result<Value> {
    let vjson = dir.join("verify.json");
    let format = match work {
        Work::Raw => "raw",
        Work::Parsed => "json",
    };
    let mut c = Command::new(&tools.loadgen);
    c.args(["verify", "--format", format, "--json", "--expect-json"])
        .arg(send_json)
        .arg(output)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&vjson)?)
        .stderr(std::fs::File::create(dir.join("verify.stderr"))?);
    let mut p = Proc::spawn(c, "loadgen verify")?;
    if p.wait_for(VERIFY_LIMIT)?.is_none() {
        p.stop(Duration::from_secs(2));
        bail!("loadgen verify did not finish within {VERIFY_LIMIT:?}");
    }
    read_json(&vjson)
        .with_context(|| format!("verify: {}", sys::tail(&dir.join("verify.stderr"), 3)))
}

/// Brings the memory to its state before a run, then measures the
/// page-cache write cost. Problems become notes (and `steady_reached =
/// false`), not failures; only Ctrl-C is an error.
fn prepare_memory(ctx: &Ctx, mem: &mut Memory, run: &mut Run) -> Result<()> {
    let probe = ctx.work_dir.join("write-probe.bin");
    let _ = std::fs::remove_file(&probe);
    match mem {
        Memory::Steady(pool) => {
            match pool.top_up(&sys::interrupted) {
                Ok(t) => {
                    run.top_up = Some(t.describe(&pool.target));
                    run.steady_reached = Some(t.reached);
                }
                Err(_) if sys::interrupted() => sys::check_interrupted()?,
                Err(e) => {
                    run.steady_reached = Some(false);
                    run.notes.push(format!("page-cache top-up failed: {e}"));
                }
            }
            match steady::write_cost_cpu_s_per_gb(&probe, ctx.settings.probe_bytes) {
                Ok(c) => run.write_cost_cpu_s_per_gb = Some(c),
                Err(e) => run.notes.push(format!("write probe failed: {e}")),
            }
            if probe.exists() {
                if let Err(e) = pool.adopt(&probe, "probe") {
                    run.notes.push(format!("write probe not kept: {e}"));
                    let _ = std::fs::remove_file(&probe);
                }
            }
        }
        Memory::Fresh => {
            match steady::write_cost_cpu_s_per_gb(&probe, ctx.settings.probe_bytes) {
                Ok(c) => run.write_cost_cpu_s_per_gb = Some(c),
                Err(e) => run.notes.push(format!("write probe failed: {e}")),
            }
            let _ = std::fs::remove_file(&probe);
            // The probe's and the previous run's pages were just freed: let
            // them sit free, as memory does on a machine that just booted.
            sys::sleep(ctx.settings.fresh_wait)?;
        }
    }
    Ok(())
}

/// Makes room on the output's file system for the run's estimated output
/// (disk_budget.rs); false when the run is refused (failed, with the
/// figures). An unpaced run is never refused on its upper bound.
fn make_disk_room(ctx: &Ctx, sc: &Scenario, mem: &mut Memory, run: &mut Run) -> Result<bool> {
    let output = disk_budget::output_bytes(sc, sc.rate_msg_per_s, ctx.settings.duration_s);
    let pool = match mem {
        Memory::Steady(p) => Some(p),
        Memory::Fresh => None,
    };
    let estimate = match sc.rate_msg_per_s {
        Some(_) => disk_budget::Estimate::Paced,
        None => disk_budget::Estimate::UpperBound,
    };
    let verdict = disk_budget::make_room(
        disk_budget::need_bytes(output),
        estimate,
        &|| steady::disk_available_bytes(&ctx.work_dir),
        pool,
        ctx.settings.duration_flag,
        run,
    )
    .with_context(|| format!("make room on the disk of {}", ctx.work_dir.display()))?;
    Ok(match verdict {
        disk_budget::Verdict::Go => true,
        disk_budget::Verdict::AtRisk(line) => {
            eprintln!("bench: {} {}: {line}", sc.name, run.engine);
            true
        }
        disk_budget::Verdict::Refused => false,
    })
}

/// One scenario × engine × repeat in the memory state `mem`. Never returns
/// Err except on Ctrl-C: a run that goes wrong is a failed run, with the
/// reason.
pub fn run_one(ctx: &Ctx, sc: &Scenario, e: Engine, slot: Slot, mem: &mut Memory) -> Result<Run> {
    let state = mem.state();
    let repeat = slot.repeat;
    let mut leaf = format!("{}-{repeat}", e.name());
    if slot.attempt > 1 {
        leaf += &format!("-attempt{}", slot.attempt);
    }
    let run_dir = ctx.runs_dir.join(state.name()).join(&sc.name).join(leaf);
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let mut run = Run::new(&sc.name, e, repeat, state, run_dir.display().to_string());
    run.attempt = slot.attempt;
    run.order = slot.order;
    if let Some(reason) = sc.unsupported_reason(e) {
        run.status = Status::NotApplicable;
        run.reason = Some(reason.to_string());
        return Ok(run);
    }
    let data_dir = ctx.work_dir.join(format!(
        "{}-{}-{}-{repeat}-{}",
        state.name(),
        sc.name,
        e.name(),
        slot.attempt
    ));
    let _ = std::fs::remove_dir_all(&data_dir);
    std::fs::create_dir_all(&data_dir)?;
    let res = prepare_memory(ctx, mem, &mut run)
        .and_then(|()| make_disk_room(ctx, sc, mem, &mut run))
        .and_then(|room| {
            if room {
                measure(ctx, sc, e, &run_dir, &data_dir, &mut run)
            } else {
                Ok(())
            }
        });
    if !ctx.settings.keep {
        if let Memory::Steady(pool) = mem {
            // The engine's output, or the relay's final receiver's.
            for out in [
                engines::output_path(&data_dir),
                engines::output_path(&data_dir.join("final")),
            ] {
                if out.exists() {
                    if let Err(err) = pool.adopt(&out, "out") {
                        run.notes
                            .push(format!("output not kept in the pool: {err}"));
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    for f in std::fs::read_dir(&run_dir).into_iter().flatten().flatten() {
        sys::trim_log(&f.path());
    }
    match res {
        Ok(()) => {}
        Err(err) if sys::interrupted() => return Err(err),
        Err(err) => run.fail(format!("{err:#}")),
    }
    if run.status != Status::Failed && run.status != Status::NotApplicable {
        let bad = run.lost.unwrap_or(0) + run.duplicated.unwrap_or(0) + run.corrupted.unwrap_or(0);
        run.status = if bad > 0 { Status::Lost } else { Status::Ok };
        if bad > 0 {
            run.reason = Some(format!(
                "lost {}, duplicated {}, corrupted {}",
                run.lost.unwrap_or(0),
                run.duplicated.unwrap_or(0),
                run.corrupted.unwrap_or(0)
            ));
        }
    }
    std::fs::write(
        run_dir.join("run.json"),
        serde_json::to_string_pretty(&run)?,
    )?;
    Ok(run)
}

/// CPUs a pinned server asks for: ringest's shards when set, else every
/// CPU but the one loadgen keeps.
fn server_cpus(sc: &Scenario, e: Engine, cpus: usize) -> usize {
    match (e, sc.shards) {
        (Engine::Ringest, Some(k)) => k as usize,
        _ => cpus.saturating_sub(1).max(1),
    }
}

/// A kafka run's topic after the engine stopped: its high watermarks, what
/// they say against `sent`, and its values read back into `output` (one
/// per line) for `loadgen verify`.
fn read_topic(
    bootstrap: &str,
    topic: &str,
    sent: u64,
    output: &Path,
    run: &mut Run,
) -> Result<(delivery::Tally, client::Consumed)> {
    let marks = client::watermarks(bootstrap, topic, kafka::PARTITIONS)?;
    let tally = delivery::tally(sent, delivery::count(&marks)?);
    run.kafka_high_watermarks = marks;
    let read = client::consume(
        bootstrap,
        topic,
        kafka::PARTITIONS,
        tally.delivered,
        KAFKA_READ_LIMIT,
        output,
    )?;
    if let Err(e) = client::delete_topic(bootstrap, topic) {
        run.notes.push(format!("topic not deleted: {e:#}"));
    }
    Ok((tally, read))
}

/// The relay scenarios' final receiver, the same for every relay: a ringest
/// with one mutual-TLS octet-counted source (the bench CA, so the relay's
/// client certificate is required and verified) writing each message raw,
/// plus LF, to a file without fsync. It is the fastest writer of the three
/// engines, so it is not what limits a relay; its CPU is in the
/// machine-wide figure only, not in the server (relay) figure.
pub struct FinalReceiver {
    pub proc: Proc,
    pub port: u16,
    pub output: PathBuf,
}

fn start_final_receiver(
    ctx: &Ctx,
    sc: &Scenario,
    run_dir: &Path,
    data_dir: &Path,
) -> Result<FinalReceiver> {
    let mut fsc = sc.clone();
    fsc.name = format!("{}-final", sc.name);
    fsc.relay = false;
    fsc.shards = None;
    fsc.pin = false;
    fsc.rate_msg_per_s = None;
    fsc.durability = crate::scenario::Durability::Never;
    fsc.extra_global.clear();
    fsc.extra_source.clear();
    let dir = run_dir.join("final");
    let data = data_dir.join("final");
    std::fs::create_dir_all(&dir)?;
    std::fs::create_dir_all(&data)?;
    let port = sys::free_port()?;
    let w = Wiring::file(port);
    let (proc, launch) = start_engine(ctx.tools, Engine::Ringest, &fsc, &ctx.pki, &dir, &data, w)
        .context("the relay's final receiver (ringest) did not start")?;
    Ok(FinalReceiver {
        proc,
        port,
        output: launch.output,
    })
}

fn measure(
    ctx: &Ctx,
    sc: &Scenario,
    e: Engine,
    run_dir: &Path,
    data_dir: &Path,
    run: &mut Run,
) -> Result<()> {
    let tools = ctx.tools;
    run.rate_msg_per_s = sc.rate_msg_per_s;
    let plan = if sc.pin {
        let cpus = sys::machine().cpus;
        let p = pin::plan(cpus, server_cpus(sc, e, cpus));
        run.pinning = Some(match &p {
            Some(p) => p.describe(),
            None => "not pinned: a single CPU".into(),
        });
        p
    } else {
        None
    };
    // Relay: the final receiver first, the same for every engine.
    let final_rx = if sc.relay {
        Some(start_final_receiver(ctx, sc, run_dir, data_dir)?)
    } else {
        None
    };
    // Kafka: a fresh topic on the one broker, made before the engine starts.
    let broker = match (sc.kafka, &ctx.kafka) {
        (false, _) => None,
        (true, Some(b)) => Some(b),
        (true, None) => bail!("a kafka scenario, but bench started no broker"),
    };
    let bootstrap = broker.map(Broker::bootstrap).unwrap_or_default();
    let topic = kafka::topic_name(
        run.state.name(),
        &sc.name,
        e.name(),
        run.repeat,
        run.attempt,
    );
    if let Some(b) = broker {
        b.create_topic(&topic, kafka::PARTITIONS)?;
        run.kafka_broker = Some(b.describe.clone());
        run.kafka_topic = Some(topic.clone());
    }
    let port = sys::free_port()?;
    run.port = port;
    let wiring = Wiring {
        port,
        upstream: final_rx.as_ref().map(|f| f.port),
        kafka: broker.map(|_| KafkaTarget {
            bootstrap: &bootstrap,
            topic: &topic,
        }),
        cpus: plan.as_ref().map(|p| p.server.as_str()),
    };
    let (mut engine, launch) = start_engine(tools, e, sc, &ctx.pki, run_dir, data_dir, wiring)
        .with_context(|| match (sc.relay, e) {
            (true, Engine::Ringest) => {
                "ringest as a relay, with issue 13's forward destination (a build without it \
                 refuses `type = \"forward\"`)"
            }
            _ => "start",
        })?;
    // What the messages end up in: the relay's final receiver's file, or
    // the engine's own.
    let output = match &final_rx {
        Some(f) => f.output.clone(),
        None => launch.output.clone(),
    };
    let transport = loadgen_transport_args(sc, &ctx.pki);
    let dur = ctx.settings.duration_s;

    // Idle connections first: their handshakes are not part of the figures.
    let mut idle: Option<Proc> = None;
    if sc.idle_connections > 0 {
        let mut a = vec!["--target".to_string(), format!("127.0.0.1:{port}")];
        a.extend(transport.iter().cloned());
        let hold_s = dur + 200;
        a.extend([
            "--hold-idle".into(),
            sc.idle_connections.to_string(),
            "--threads".into(),
            "1".into(),
            "--duration".into(),
            format!("{hold_s}s"),
            // No --quiet: its progress lines count the TLS-established connections.
            "--json".into(),
        ]);
        a.extend(IDLE_OPEN_ARGS.map(String::from));
        idle = Some(Proc::spawn(
            loadgen_cmd(tools, &a, run_dir, "loadgen-idle")?,
            "loadgen (idle)",
        )?);
        let limit = Duration::from_secs(60 + u64::from(sc.idle_connections) / 50);
        let est = wait_connections(
            &mut engine,
            port,
            sc.idle_connections,
            limit,
            &run_dir.join("loadgen-idle.stderr"),
        )?;
        run.notes
            .push(format!("{est} connections established before the load"));
    }

    let q = sys::wait_quiet(ctx.settings.quiet_busy, ctx.settings.quiet_timeout)?;
    run.busy_before = Some(q.busy);
    run.quiet_waited_s = Some(q.waited_s);
    run.quiet_gave_up = q.gave_up;

    let mut a = vec!["--target".to_string(), format!("127.0.0.1:{port}")];
    a.extend(transport);
    a.extend([
        "--connections".into(),
        sc.connections.to_string(),
        "--threads".into(),
        sc.loadgen_threads.to_string(),
        "--size".into(),
        sc.size.to_string(),
        "--duration".into(),
        format!("{dur}s"),
        "--framing".into(),
        sc.framing.name().into(),
        "--records-per-write".into(),
        sc.records_per_write.to_string(),
        "--json".into(),
        "--quiet".into(),
        // An engine that fsyncs (durability batch) may take seconds to read
        // the last of its window and close; loadgen's 2 s default would
        // count that as an error although nothing is lost. The wait is not
        // in the sending time.
        "--close-timeout".into(),
        format!("{}s", CLOSE_TIMEOUT.as_secs()),
    ]);
    if let Some(w) = sc.write_bytes {
        a.extend(["--write-bytes".into(), w.to_string()]);
    }
    a.extend(loadgen_congestion_args(sc));
    if let Some(r) = sc.rate_msg_per_s {
        a.extend(["--rate".into(), format!("{r:.0}")]);
        if let Some(t) = sc.tick_us.filter(|t| *t > 0) {
            a.extend(["--tick-us".into(), t.to_string()]);
        }
    }
    std::fs::write(run_dir.join("loadgen.args"), a.join(" "))?;

    run.rss_before_kib = sys::status_kib(engine.pid, "VmRSS");
    run.mem_free_mib_before = steady::meminfo()
        .ok()
        .map(|m| m.free as f64 / (1u64 << 20) as f64);
    let idle_cpu0 = idle.as_ref().and_then(|p| sys::process_cpu_s(p.pid));
    let poller = match broker {
        Some(_) => Some(client::Poller::spawn(
            &bootstrap,
            &topic,
            kafka::PARTITIONS,
            Instant::now(),
            KAFKA_STALL,
            KAFKA_LIMIT,
        )?),
        None => None,
    };
    let broker_cpu0 = broker.and_then(|b| sys::process_cpu_s(b.pid));
    let cpu0 = sys::process_cpu_s(engine.pid).context("engine vanished before the load")?;
    let threads0 = sys::threads_cpu_s(engine.pid);
    let machine0 = sys::CpuSample::now()?;
    let t0 = Instant::now();
    let mut lg = Proc::spawn(
        loadgen_cmd_on(
            tools,
            &a,
            run_dir,
            "loadgen",
            plan.as_ref().map(|p| p.loadgen.as_str()),
        )?,
        "loadgen",
    )?;
    let lg_limit = Duration::from_secs(u64::from(dur) + 60) + CLOSE_TIMEOUT;
    let lg_status = lg.wait_for(lg_limit)?;
    let t_lg_exit = Instant::now();
    if lg_status.is_none() {
        let s = lg.stop(Duration::from_secs(10));
        run.fail(format!(
            "loadgen did not end within {lg_limit:?} ({})",
            s.describe()
        ));
    }
    let send = read_json(&run_dir.join("loadgen.json"))
        .with_context(|| format!("loadgen: {}", sys::tail(&run_dir.join("loadgen.stderr"), 3)))?;
    let sent = u64_of(&send, "sent").unwrap_or(0);
    let elapsed = f64_of(&send, "elapsed_s").unwrap_or(0.0);
    let total_s = f64_of(&send, "total_s").unwrap_or(elapsed);
    run.sent = Some(sent);
    run.send_elapsed_s = Some(elapsed);
    run.offered_msg_per_s = f64_of(&send, "msg_per_s");
    run.client_cpu_s = f64_of(&send, "client_cpu_s");
    run.tls_version = send
        .get("tls_version")
        .and_then(Value::as_str)
        .map(String::from);
    run.cipher = send.get("cipher").and_then(Value::as_str).map(String::from);
    run.client_tcp_congestion = send
        .get("tcp_congestion")
        .and_then(Value::as_str)
        .map(String::from);
    run.client_latency_us = send.get("latency_us").and_then(|l| {
        Some(Quantiles {
            p50: f64_of(l, "p50")?,
            p99: f64_of(l, "p99")?,
            p999: f64_of(l, "p999")?,
        })
    });
    run.per_connection_sent = send
        .get("per_connection_sent")
        .and_then(Value::as_array)
        .map(|v| v.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if let Some(errs) = send.get("errors").and_then(Value::as_object) {
        for (k, v) in errs {
            run.loadgen_errors
                .insert(k.clone(), v.as_u64().unwrap_or(0));
        }
    }
    if !run.loadgen_errors.is_empty() {
        run.fail(format!("loadgen errors: {:?}", run.loadgen_errors));
    } else if send.get("ok").and_then(Value::as_bool) == Some(false) {
        run.fail(format!(
            "loadgen did not do what was asked: {}",
            sys::tail(&run_dir.join("loadgen.stderr"), 2)
        ));
    }

    let (last_growth, settled) = match poller {
        Some(p) => match p.finish(sent)? {
            delivery::State::Complete { at, .. } => (at, true),
            delivery::State::Stalled { at, count } => {
                run.notes.push(format!(
                    "the topic held {count} of {sent} and stopped growing ({KAFKA_STALL:?} unchanged or {KAFKA_LIMIT:?} in all)"
                ));
                (at, true)
            }
            delivery::State::Waiting => (Instant::now(), false),
        },
        None => wait_output_settled(&output, &mut engine)?,
    };
    if !settled {
        run.notes.push(format!(
            "output still growing after {SETTLE_LIMIT:?}, or engine exited"
        ));
    }
    let broker_cpu1 = broker.and_then(|b| sys::process_cpu_s(b.pid));
    let cpu1 = sys::process_cpu_s(engine.pid);
    let threads1 = sys::threads_cpu_s(engine.pid);
    run.peak_rss_kib = sys::status_kib(engine.pid, "VmHWM");
    if let Some(sp) = launch.stats_port {
        let body = metrics::fetch(sp);
        run.engine_metrics = metrics::counters(&body);
        run.engine_latency_us = metrics::latencies_us(&body);
    }
    for (name, c1) in &threads1 {
        let d = c1 - threads0.get(name).copied().unwrap_or(0.0);
        if d > 0.0 {
            run.threads_cpu_s
                .insert(name.clone(), (d * 1000.0).round() / 1000.0);
        }
    }

    // Writeback of every byte inside the window, for every engine alike
    // (kafka: the broker's, which writes without fsync, as configured).
    let t_sync = Instant::now();
    if !sc.kafka {
        match std::fs::File::open(&output).and_then(|f| f.sync_data()) {
            Ok(()) => run.output_sync_s = Some(t_sync.elapsed().as_secs_f64()),
            Err(err) => run.notes.push(format!("fdatasync of the output: {err}")),
        }
    }
    let idle_cpu1 = idle.as_ref().and_then(|p| sys::process_cpu_s(p.pid));
    let machine1 = sys::CpuSample::now()?;
    run.window_s = Some(machine1.secs_since(&machine0));
    let w = sys::cpu_window(&machine0, &machine1);
    run.steal_pct = Some(w.steal_pct);
    run.machine_busy_pct = Some(w.busy_pct);
    run.machine_busy_sampled_pct = Some(w.sampled_busy_pct);
    run.proc_stat_counted_pct = Some(w.counted_pct);
    run.proc_stat_cpu = Some(ProcStatWindow {
        before: machine0.line.clone(),
        after: machine1.line.clone(),
        cpus: machine1.ticks.cpus,
    });
    let idle_cpu = match (idle_cpu0, idle_cpu1) {
        (Some(a), Some(b)) => Some(b - a),
        _ if idle.is_none() => Some(0.0),
        _ => None,
    };
    run.machine_cpu_s = match (run.client_cpu_s, idle_cpu) {
        (Some(c), Some(i)) => Some((w.busy_cpu_s - c - i).max(0.0)),
        _ => {
            run.notes
                .push("loadgen's CPU unknown: no machine-wide CPU figure".into());
            None
        }
    };

    // Sending ended about (total_s - elapsed_s) before loadgen exited (the
    // clean close); the output kept growing until last_growth.
    let send_end = t_lg_exit
        .checked_sub(Duration::from_secs_f64((total_s - elapsed).max(0.0)))
        .unwrap_or(t0);
    let drain = if last_growth > send_end {
        (last_growth - send_end).as_secs_f64()
    } else {
        0.0
    };
    run.drain_s = Some(drain);
    run.written_window_s = Some(elapsed + drain);

    if let Some(mut p) = idle.take() {
        let s = p.stop(Duration::from_secs(30));
        let j = read_json(&run_dir.join("loadgen-idle.json")).ok();
        if let Some(j) = &j {
            run.idle_connections_held = u64_of(j, "idle_connections");
            run.idle_client_cpu_s = f64_of(j, "client_cpu_s");
            if let Some(errs) = j.get("errors").and_then(Value::as_object) {
                for (k, v) in errs {
                    *run.loadgen_errors.entry(format!("idle: {k}")).or_insert(0) +=
                        v.as_u64().unwrap_or(0);
                }
            }
        }
        if j.is_none() {
            run.notes
                .push(format!("idle loadgen left no JSON ({})", s.describe()));
        }
    }

    let stopped = engine.stop(ENGINE_STOP_GRACE);
    run.engine_exit = Some(stopped.describe());
    if stopped.already_exited {
        run.fail(format!(
            "{e} exited during the run: {}",
            sys::tail(&run_dir.join(format!("{}.stderr", e.name())), 3)
        ));
    } else if stopped.killed {
        run.fail(format!("{e} {}", stopped.describe()));
    } else if !stopped.clean() {
        run.notes.push(format!("{e} exit: {}", stopped.describe()));
    }

    if let Some(mut f) = final_rx {
        // After the relay: everything it forwarded is in before this stop.
        let stopped = f.proc.stop(ENGINE_STOP_GRACE);
        if !stopped.clean() {
            run.fail(format!(
                "the final receiver {}: {}",
                stopped.describe(),
                sys::tail(&run_dir.join("final/ringest.stderr"), 3)
            ));
        }
    }

    match cpu1 {
        Some(c1) => run.server_cpu_s = Some(c1 - cpu0),
        None => run.fail("engine vanished before its CPU could be read"),
    }
    if let (Some(a), Some(b)) = (broker_cpu0, broker_cpu1) {
        run.broker_cpu_s = Some(b - a);
    }

    // Kafka: count the topic once the engine has stopped (nothing more
    // can arrive), then read it back into the output file for verify.
    let topic_tally = match broker {
        Some(_) => Some(read_topic(&bootstrap, &topic, sent, &output, run)?),
        None => None,
    };

    run.bytes_written = Some(sys::file_len(&output));
    let v = run_verify(
        tools,
        sc.work,
        &output,
        &run_dir.join("loadgen.json"),
        run_dir,
    )?;
    let received = u64_of(&v, "received").unwrap_or(0);
    let lines = u64_of(&v, "lines").unwrap_or(received);
    if let Some(b) = run.bytes_written.filter(|_| lines > 0) {
        run.bytes_per_msg = Some(b as f64 / lines as f64);
    }
    if let Some((_, c)) = topic_tally {
        // The table's bytes: the values in the topic, not the file's LFs.
        run.bytes_written = Some(c.value_bytes);
        run.bytes_per_msg = (c.records > 0).then(|| c.value_bytes as f64 / c.records as f64);
    }
    if u64_of(&v, "unmarked").unwrap_or(0) > 0 {
        run.fail(format!(
            "{} lines of the output carry no loadgen marker (an empty or rewritten message)",
            u64_of(&v, "unmarked").unwrap_or(0)
        ));
    }
    run.written = Some(received);
    run.lost = u64_of(&v, "missing");
    run.duplicated = u64_of(&v, "duplicated");
    run.corrupted = u64_of(&v, "corrupted");
    if let Some((t, _)) = topic_tally {
        // The topic's own count decides too: fewer than sent is loss, more
        // is duplication, whatever the read back found.
        run.lost = Some(run.lost.unwrap_or(0).max(t.lost));
        run.duplicated = Some(run.duplicated.unwrap_or(0).max(t.duplicated));
    }
    run.beyond_expected = v.get("runs").and_then(Value::as_array).map(|runs| {
        runs.iter()
            .flat_map(|r| {
                r.get("connections")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|c| u64_of(&c, "beyond_expected"))
            .sum()
    });
    let unique = received.saturating_sub(run.duplicated.unwrap_or(0));
    if let Some(w) = run.written_window_s.filter(|w| *w > 0.0) {
        run.written_msg_per_s = Some(unique as f64 / w);
    }
    if unique > 0 {
        run.server_cpu_us_per_msg = run.server_cpu_s.map(|c| c * 1e6 / unique as f64);
        run.broker_cpu_us_per_msg = run.broker_cpu_s.map(|c| c * 1e6 / unique as f64);
        run.machine_cpu_us_per_msg = run.machine_cpu_s.map(|c| c * 1e6 / unique as f64);
        run.client_cpu_us_per_msg = run.client_cpu_s.map(|c| c * 1e6 / unique as f64);
    } else if run.status != Status::Failed {
        run.fail("no message arrived");
    }
    Ok(())
}
