//! Everything bench learns from the kernel (`/proc`) and every process it
//! starts. All of bench's `unsafe` is here: signal handlers, `prctl`, `kill`.
//!
//! Every child is started in its own process group (so a terminal's Ctrl-C
//! reaches bench only, and bench stops the engines itself, in order), is
//! registered by PID until it is reaped, and gets PDEATHSIG so that it does
//! not outlive a bench that was killed outright.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

// ---------------------------------------------------------------- signals

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// SIGINT and SIGTERM set a flag that every wait loop polls; SIGPIPE is ignored.
pub fn install_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only stores an
        // atomic; sigemptyset initialises the mask before use.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_stop_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = 0;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

pub fn interrupted() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// The error every wait loop returns once Ctrl-C (or SIGTERM) arrived.
pub fn check_interrupted() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `d` in small steps, returning early (with an error) on Ctrl-C.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_interrupted()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

// ---------------------------------------------------------------- children

/// PIDs of children started and not yet reaped, with a name for messages.
static CHILDREN: Mutex<Vec<(i32, String)>> = Mutex::new(Vec::new());

fn register(pid: i32, name: &str) {
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((pid, name.to_string()));
}

fn unregister(pid: i32) {
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p != pid);
}

fn send_signal(pid: i32, sig: libc::c_int) {
    assert!(pid > 0, "never signal a process group or every process");
    // SAFETY: kill(2) on one positive PID, a child of ours not yet reaped
    // (callers only hold PIDs of registered, unreaped children).
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Ctrl-C backstop: SIGTERM every registered child, wait up to `grace`, then
/// SIGKILL what is left. Children are still reaped by their `Proc`'s drop.
pub fn stop_all_children(grace: Duration) {
    let list: Vec<(i32, String)> = CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if list.is_empty() {
        return;
    }
    for (pid, name) in &list {
        eprintln!("bench: stopping {name} (pid {pid})");
        send_signal(*pid, libc::SIGTERM);
    }
    let end = Instant::now() + grace;
    while Instant::now() < end {
        if list.iter().all(|(pid, _)| !alive(*pid)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for (pid, name) in &list {
        if alive(*pid) {
            eprintln!("bench: {name} (pid {pid}) ignored SIGTERM for {grace:?}: SIGKILL");
            send_signal(*pid, libc::SIGKILL);
        }
    }
}

/// True while the process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => stat_fields(&s).and_then(|f| f.first().copied()) != Some("Z"),
        Err(_) => false,
    }
}

/// A started child process: registered by PID until reaped, stopped on drop.
pub struct Proc {
    pub name: String,
    pub pid: i32,
    child: Child,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(mut cmd: Command, name: &str) -> Result<Proc> {
        cmd.process_group(0);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches
        // only the calling (child) process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        let pid = child.id() as i32;
        register(pid, name);
        Ok(Proc {
            name: name.to_string(),
            pid,
            child,
            status: None,
        })
    }

    /// The exit status if it has exited (reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.status = Some(st);
                unregister(self.pid);
            }
        }
        self.status
    }

    /// Waits up to `limit` for it to exit by itself.
    pub fn wait_for(&mut self, limit: Duration) -> Result<Option<ExitStatus>> {
        let end = Instant::now() + limit;
        loop {
            if let Some(st) = self.try_wait() {
                return Ok(Some(st));
            }
            if Instant::now() >= end {
                return Ok(None);
            }
            check_interrupted()?;
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns how it ended.
    /// Not interruptible: this is what an interrupt runs.
    pub fn stop(&mut self, grace: Duration) -> Stopped {
        let started = Instant::now();
        if let Some(st) = self.try_wait() {
            return Stopped {
                status: Some(st),
                killed: false,
                already_exited: true,
                secs: 0.0,
            };
        }
        send_signal(self.pid, libc::SIGTERM);
        let end = started + grace;
        while Instant::now() < end {
            if let Some(st) = self.try_wait() {
                return Stopped {
                    status: Some(st),
                    killed: false,
                    already_exited: false,
                    secs: started.elapsed().as_secs_f64(),
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        send_signal(self.pid, libc::SIGKILL);
        let st = self.child.wait().ok();
        self.status = st;
        unregister(self.pid);
        Stopped {
            status: st,
            killed: true,
            already_exited: false,
            secs: started.elapsed().as_secs_f64(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let s = self.stop(Duration::from_secs(10));
            if s.killed {
                eprintln!("bench: {} (pid {}) {}", self.name, self.pid, s.describe());
            }
        }
    }
}

pub struct Stopped {
    pub status: Option<ExitStatus>,
    /// Needed SIGKILL after the grace period.
    pub killed: bool,
    /// It had exited before we asked.
    pub already_exited: bool,
    pub secs: f64,
}

impl Stopped {
    pub fn describe(&self) -> String {
        let st = self
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| "unknown".into());
        if self.killed {
            format!(
                "did not exit {:.0} s after SIGTERM; SIGKILL ({st})",
                self.secs
            )
        } else if self.already_exited {
            format!("had already exited ({st})")
        } else {
            format!("{st} {:.1} s after SIGTERM", self.secs)
        }
    }

    pub fn clean(&self) -> bool {
        !self.killed && !self.already_exited && self.status.map(|s| s.success()).unwrap_or(false)
    }
}

// ---------------------------------------------------------------- /proc

/// The fields of /proc/PID/stat after "(comm)", starting with the state
/// (field 3 in proc(5) numbering is index 0 here).
fn stat_fields(s: &str) -> Option<Vec<&str>> {
    let close = s.rfind(')')?;
    Some(s[close + 1..].split_whitespace().collect())
}

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn utime_stime_s(stat: &str) -> Option<f64> {
    let f = stat_fields(stat)?;
    // proc(5): utime is field 14, stime 15; index 0 here is field 3.
    let ut: f64 = f.get(11)?.parse().ok()?;
    let st: f64 = f.get(12)?.parse().ok()?;
    Some((ut + st) / clock_ticks_per_s())
}

/// User + system CPU-seconds of the whole process (every thread, living or
/// exited), from /proc/PID/stat.
pub fn process_cpu_s(pid: i32) -> Option<f64> {
    utime_stime_s(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU-seconds per thread name (threads with the same name are summed).
pub fn threads_cpu_s(pid: i32) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        let base = e.path();
        let comm = fs::read_to_string(base.join("comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        if let Some(s) = fs::read_to_string(base.join("stat"))
            .ok()
            .and_then(|s| utime_stime_s(&s))
        {
            *out.entry(comm).or_insert(0.0) += s;
        }
    }
    out
}

/// A `VmXXX:` figure of /proc/PID/status, in KiB.
pub fn status_kib(pid: i32, key: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Fraction (0..1) of all CPUs busy over the next `over`.
pub fn machine_busy(over: Duration) -> Result<f64> {
    let a = CpuSample::now()?;
    sleep(over)?;
    let b = CpuSample::now()?;
    Ok(cpu_window(&a, &b).busy_pct / 100.0)
}

/// The machine-wide counters of /proc/stat's first line, in clock ticks
/// summed over all CPUs (guest time is inside user), and how many CPUs
/// the file lists (the online ones).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTicks {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub cpus: u32,
}

impl CpuTicks {
    fn parse(stat: &str) -> Result<CpuTicks> {
        let line = stat.lines().next().context("empty /proc/stat")?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if !line.starts_with("cpu ") || v.len() < 8 {
            bail!("unexpected /proc/stat line: {line}");
        }
        let cpus = stat
            .lines()
            .filter(|l| {
                l.strip_prefix("cpu")
                    .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count();
        Ok(CpuTicks {
            user: v[0],
            nice: v[1],
            system: v[2],
            idle: v[3],
            iowait: v[4],
            irq: v[5],
            softirq: v[6],
            steal: v[7],
            cpus: u32::try_from(cpus).unwrap_or(u32::MAX),
        })
    }

    /// Ticks charged to something of this guest's: on a tick-accounted
    /// kernel, samples (see CpuWindow).
    fn sampled_busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq
    }

    /// Ticks the CPUs were idle, waiting for IO, or stolen by the host:
    /// measured by clocks, not sampled (see CpuWindow).
    fn not_busy(&self) -> u64 {
        self.idle + self.iowait + self.steal
    }

    fn total(&self) -> u64 {
        self.sampled_busy() + self.not_busy()
    }
}

/// One read of /proc/stat and the moment of it: a window's CPU time is
/// its CPUs × the wall time between two samples.
#[derive(Debug, Clone)]
pub struct CpuSample {
    pub ticks: CpuTicks,
    /// The first line as read, for the record.
    pub line: String,
    at: Instant,
}

impl CpuSample {
    pub fn now() -> Result<CpuSample> {
        let s = fs::read_to_string("/proc/stat").context("read /proc/stat")?;
        let at = Instant::now();
        Ok(CpuSample {
            ticks: CpuTicks::parse(&s)?,
            line: s.lines().next().unwrap_or_default().to_string(),
            at,
        })
    }

    /// Wall seconds from `earlier` to this sample.
    pub fn secs_since(&self, earlier: &CpuSample) -> f64 {
        self.at.saturating_duration_since(earlier.at).as_secs_f64()
    }
}

/// What the machine did between two /proc/stat samples.
///
/// Busy time is the CPU time that passed (CPUs × wall) minus idle, iowait
/// and steal, not the sum of the busy counters. On a tick-accounted kernel
/// (CONFIG_TICK_CPU_ACCOUNTING, the default, and this VM's: HZ 250) user,
/// nice, system, irq and softirq are samples: each timer tick charges a
/// whole tick to whatever the CPU runs at that instant. With NO_HZ (also the
/// default) idle and iowait come from the idle clock and steal from the
/// host's, both exact. A load that wakes on a fixed grid can run mostly
/// between ticks and escape the samples: `loadgen send --rate` with
/// `--tick-us 1000` read 4.5, 6.6 and 17.6% busy in the 20, 40 and 80%
/// points of a 30-s latency curve where ringest and loadgen alone used 20,
/// 29 and 46% of the two CPUs (2026-11-30-s9/latency-30s-final), and a task
/// spinning 300 µs of every 1 ms (1.6 CPU-s in 5 s) got 4 busy ticks of
/// 160. The counters' sum then falls short of CPUs × wall by what the
/// samples missed; `counted_pct` shows that gap, `sampled_busy_pct` the
/// samples' own figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuWindow {
    /// Busy CPU-seconds, machine-wide: CPUs × wall − idle − iowait − steal.
    pub busy_cpu_s: f64,
    /// Busy, % of all CPU time.
    pub busy_pct: f64,
    /// Stolen by the host, % of all CPU time.
    pub steal_pct: f64,
    /// The busy counters' own sum (user, nice, system, irq, softirq), % of
    /// all CPU time: the tick samples.
    pub sampled_busy_pct: f64,
    /// Every counter's sum, % of CPUs × wall: about 100 when the samples
    /// saw every busy tick, less by what they missed, more by whole ticks
    /// charged to short bursts the idle clock also counted.
    pub counted_pct: f64,
}

impl CpuWindow {
    /// The window from `a` to `b`, `wall_s` apart; `ticks_per_s` is
    /// USER_HZ, the counters' unit.
    pub fn between(a: &CpuTicks, b: &CpuTicks, wall_s: f64, ticks_per_s: f64) -> CpuWindow {
        let d = |x: u64, y: u64| y.saturating_sub(x) as f64;
        let counted = d(a.total(), b.total());
        // A CPU brought up or down inside the window leaves the CPU time
        // that passed unknown: the counters' sum is the best there is.
        let elapsed = if a.cpus == b.cpus && b.cpus > 0 && wall_s > 0.0 {
            f64::from(b.cpus) * wall_s * ticks_per_s
        } else {
            counted
        };
        let busy = (elapsed - d(a.not_busy(), b.not_busy())).clamp(0.0, elapsed);
        let pct = |x: f64| x * 100.0 / elapsed.max(1.0);
        CpuWindow {
            busy_cpu_s: busy / ticks_per_s,
            busy_pct: pct(busy),
            steal_pct: pct(d(a.steal, b.steal)),
            sampled_busy_pct: pct(d(a.sampled_busy(), b.sampled_busy())),
            counted_pct: pct(counted),
        }
    }
}

pub fn cpu_window(a: &CpuSample, b: &CpuSample) -> CpuWindow {
    CpuWindow::between(&a.ticks, &b.ticks, b.secs_since(a), clock_ticks_per_s())
}

/// AES-128-GCM speed of this CPU in bytes per second: `openssl speed -evp
/// aes-128-gcm -bytes 16384 -seconds N` (one block size, N seconds).
pub fn aes_gcm_bytes_per_s(openssl: &Path, seconds: u32) -> Result<f64> {
    let o = Command::new(openssl)
        .args([
            "speed",
            "-evp",
            "aes-128-gcm",
            "-bytes",
            "16384",
            "-seconds",
        ])
        .arg(seconds.to_string())
        .output()
        .context("run openssl speed")?;
    let text = String::from_utf8_lossy(&o.stdout);
    parse_openssl_speed(&text)
        .with_context(|| format!("unexpected `openssl speed` output: {text:.300}"))
}

/// The last line `AES-128-GCM  5369473.71k` (1000s of bytes per second).
fn parse_openssl_speed(text: &str) -> Option<f64> {
    let l = text
        .lines()
        .rev()
        .find(|l| l.to_ascii_uppercase().starts_with("AES-128-GCM"))?;
    let v = l.split_whitespace().last()?.strip_suffix('k')?;
    v.parse::<f64>().ok().map(|k| k * 1000.0)
}

/// A small, seedable shuffle (xorshift64*): the engines' order per repeat,
/// reproducible from the seed printed in results.md.
pub struct Shuffler(u64);

impl Shuffler {
    pub fn new(seed: u64) -> Shuffler {
        Shuffler(seed.max(1))
    }

    /// A seed from the clock and the PID.
    pub fn clock_seed() -> u64 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        (t ^ (u64::from(std::process::id()) << 32)) % 1_000_000_000
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// How the wait for a quiet machine went.
#[derive(Debug, Clone, Copy)]
pub struct Quiet {
    /// Busy fraction of the last 1-s window measured (the one the run starts after).
    pub busy: f64,
    pub waited_s: f64,
    pub gave_up: bool,
}

/// Measures 1-s windows until one is at most `threshold` busy or `limit` passed.
pub fn wait_quiet(threshold: f64, limit: Duration) -> Result<Quiet> {
    let start = Instant::now();
    loop {
        let busy = machine_busy(Duration::from_secs(1))?;
        let waited_s = start.elapsed().as_secs_f64();
        if busy <= threshold {
            return Ok(Quiet {
                busy,
                waited_s,
                gave_up: false,
            });
        }
        if start.elapsed() >= limit {
            return Ok(Quiet {
                busy,
                waited_s,
                gave_up: true,
            });
        }
    }
}

/// TCP sockets on a local port, from /proc/net/tcp and tcp6: (listening, established).
pub fn tcp_sockets(port: u16) -> (usize, usize) {
    let mut listening = 0;
    let mut established = 0;
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(s) = fs::read_to_string(f) else {
            continue;
        };
        for l in s.lines().skip(1) {
            let mut it = l.split_whitespace();
            let (Some(_), Some(local), Some(_remote), Some(st)) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                continue;
            };
            let Some(p) = local
                .rsplit(':')
                .next()
                .and_then(|h| u16::from_str_radix(h, 16).ok())
            else {
                continue;
            };
            if p != port {
                continue;
            }
            match st {
                "0A" => listening += 1,
                "01" => established += 1,
                _ => {}
            }
        }
    }
    (listening, established)
}

/// A port that was free a moment ago (bind to 0, read it, close).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

pub fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The last `max_lines` lines of a (log) file, for error messages.
pub fn tail(p: &Path, max_lines: usize) -> String {
    let s = fs::read(p).unwrap_or_default();
    let start = s.len().saturating_sub(16 * 1024);
    let text = String::from_utf8_lossy(&s[start..]);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(max_lines)..].join(" | ")
}

/// Keeps at most the first and last 8 KiB of a log file.
pub fn trim_log(p: &Path) {
    const KEEP: usize = 8 * 1024;
    let Ok(s) = fs::read(p) else { return };
    if s.len() <= 2 * KEEP {
        return;
    }
    let mut out = s[..KEEP].to_vec();
    out.extend_from_slice(
        format!("\n[... {} bytes cut by bench ...]\n", s.len() - 2 * KEEP).as_bytes(),
    );
    out.extend_from_slice(&s[s.len() - KEEP..]);
    let _ = fs::write(p, out);
}

/// "ext4 on /dev/vda" for the mount holding `p` (longest mount-point prefix).
pub fn filesystem_of(p: &Path) -> String {
    let p = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for l in mounts.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 || !p.starts_with(f[1]) {
            continue;
        }
        if best.as_ref().map(|(n, _)| f[1].len() >= *n).unwrap_or(true) {
            best = Some((f[1].len(), format!("{} on {}", f[2], f[0])));
        }
    }
    best.map(|(_, s)| s)
        .unwrap_or_else(|| "unknown filesystem".into())
}

// ---------------------------------------------------------------- machine

pub struct Machine {
    pub host: String,
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
    pub mem_gib: f64,
    pub fd_limit: u64,
    /// `net.ipv4.tcp_congestion_control`: what a scenario's client gets
    /// with `client_congestion = "system"`.
    pub tcp_congestion: String,
}

pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    let mem_kib: f64 = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    Machine {
        host,
        cpu,
        cpus,
        kernel,
        mem_gib: mem_kib / 1024.0 / 1024.0,
        fd_limit: ringest::fd_limit::current().map_or(0, |l| l.soft),
        tcp_congestion: fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
    }
}

/// `net.ipv4.ip_local_port_range` as (first, last), if readable.
pub fn local_port_range() -> Option<(u16, u16)> {
    let s = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<u16>().ok());
    let (Some(Some(lo)), Some(Some(hi))) = (it.next(), it.next()) else {
        return None;
    };
    (lo <= hi).then_some((lo, hi))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// CPU time of the calling thread, in seconds.
pub fn thread_cpu_s() -> f64 {
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    }
}

/// Today's date (UTC) as YYYY-MM-DD, and the time as HH:MM:SSZ.
pub fn utc_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_spaces_and_parens_in_comm() {
        let s = "1234 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 150 50 0 0";
        let f = stat_fields(s).unwrap();
        assert_eq!(f[0], "S");
        assert_eq!(f[11], "150");
        assert_eq!(f[12], "50");
    }

    #[test]
    fn own_process_has_cpu_and_rss() {
        let pid = std::process::id() as i32;
        assert!(process_cpu_s(pid).is_some());
        assert!(status_kib(pid, "VmHWM").unwrap() > 0);
        assert!(!threads_cpu_s(pid).is_empty());
    }

    #[test]
    fn listening_socket_is_seen() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(tcp_sockets(port).0, 1);
        drop(l);
        assert_eq!(tcp_sockets(port).0, 0);
    }

    /// Two CPUs; `cpu` is the first line's counters, the rest as /proc/stat has them.
    fn stat(cpu: &str) -> String {
        format!("cpu  {cpu} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\ncpu1 1 2 3 4 5 6 7 8 0 0\nintr 1 2\n")
    }

    #[test]
    fn cpu_window_from_proc_stat() {
        let a = CpuTicks::parse(&stat("100 0 50 800 10 0 5 0")).unwrap();
        let b = CpuTicks::parse(&stat("200 0 100 1000 10 0 15 40")).unwrap();
        assert_eq!(a.cpus, 2);
        // The counters saw every tick: 400 of 2 CPUs × 2 s at 100 per s;
        // busy 160 of them, steal 40.
        let w = CpuWindow::between(&a, &b, 2.0, 100.0);
        assert!((w.busy_pct - 40.0).abs() < 1e-9, "{w:?}");
        assert!((w.steal_pct - 10.0).abs() < 1e-9, "{w:?}");
        assert!((w.busy_cpu_s - 1.6).abs() < 1e-9, "{w:?}");
        assert!((w.sampled_busy_pct - 40.0).abs() < 1e-9, "{w:?}");
        assert!((w.counted_pct - 100.0).abs() < 1e-9, "{w:?}");
        assert!(CpuTicks::parse("intr 1 2 3").is_err());
        assert!(CpuTicks::parse("cpu  1 2 3\n").is_err());
        let now = CpuSample::now().unwrap();
        assert!(
            now.ticks.cpus >= 1 && now.line.starts_with("cpu "),
            "{now:?}"
        );
    }

    /// bench/results/2026-11-30-s9/latency-30s-final, the 20% point
    /// (loadgen --rate 1222407 --tick-us 1000, 30 s): its run.json has
    /// machine_busy_pct 4.4829, steal_pct 0.2949 and machine_cpu_s 0 over a
    /// window of 31.875 s, although ringest used 8.9 CPU-s and loadgen
    /// 3.677. Those figures solve to these counters: busy ticks 228, idle +
    /// iowait 4843, steal 15, summing to 5086 of the 6375 that 2 CPUs ×
    /// 31.875 s hold: the tick samples missed 1289 ticks of busy time.
    #[test]
    fn busy_time_the_tick_samples_missed_is_counted() {
        let a = CpuTicks::parse(&stat("1000 0 1000 50000 1000 0 100 10")).unwrap();
        let b = CpuTicks::parse(&stat("1150 0 1060 54800 1043 0 118 25")).unwrap();
        let w = CpuWindow::between(&a, &b, 31.875475777, 100.0);
        // The fixture is that run: its figure was the samples over the sum.
        let recorded = w.sampled_busy_pct / w.counted_pct * 100.0;
        assert!((recorded - 4.482894219425875).abs() < 1e-9, "{w:?}");
        assert!((w.counted_pct - 79.78).abs() < 0.01, "{w:?}");
        // ringest's and loadgen's own CPU fit inside the machine's.
        assert!(w.busy_cpu_s >= 8.9 + 3.677, "{w:?}");
        // 2 × 31.875 × 100 − 4843 − 15 = 1517.1 busy ticks.
        assert!((w.busy_cpu_s - 15.171).abs() < 0.001, "{w:?}");
        assert!((w.busy_pct - 23.797).abs() < 0.001, "{w:?}");
        assert!((w.steal_pct - 0.2353).abs() < 0.0001, "{w:?}");
    }

    /// Read on the bench VM (6.18, HZ 250, tick-accounted, NO_HZ idle)
    /// with nothing else running, 5.0004 s apart: a task pinned to cpu1
    /// woke every 1 ms (absolute CLOCK_MONOTONIC deadlines) and spun 300 µs,
    /// 1.5944 CPU-s by its own clock. cpu1's busy counters grew by 4 ticks
    /// and its idle by 336; the machine's busy by 8, its idle by 832.
    #[test]
    fn busy_time_of_a_load_on_a_1_ms_grid() {
        let a = CpuTicks::parse(
            "cpu  5578285 23431 2518846 6451221 2095604 0 236406 13136 0 0\n\
             cpu0 2550365 12204 881861 3979726 915218 0 109750 6458 0 0\n\
             cpu1 3027920 11226 1636985 2471494 1180386 0 126655 6678 0 0\n",
        )
        .unwrap();
        let b = CpuTicks::parse(
            "cpu  5578286 23431 2518852 6452053 2095605 0 236407 13136 0 0\n\
             cpu0 2550365 12204 881864 3980223 915218 0 109751 6458 0 0\n\
             cpu1 3027921 11226 1636988 2471830 1180386 0 126655 6678 0 0\n",
        )
        .unwrap();
        let w = CpuWindow::between(&a, &b, 5.0004, 100.0);
        assert!(w.sampled_busy_pct < 1.0, "{w:?}");
        assert!((w.counted_pct - 84.1).abs() < 0.01, "{w:?}");
        // 2 × 5.0004 × 100 − 833 = 167.08 ticks: the task's 1.59 s and 0.08 s
        // of the rest.
        assert!(w.busy_cpu_s >= 1.5944, "{w:?}");
        assert!((w.busy_cpu_s - 1.6708).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn busy_time_when_the_samples_charge_too_much() {
        // Ticks that land in short bursts charge whole ticks the idle clock
        // also counted: the counters sum past CPUs × wall.
        let a = CpuTicks::parse(&stat("0 0 0 0 0 0 0 0")).unwrap();
        let b = CpuTicks::parse(&stat("300 0 100 300 0 0 0 0")).unwrap();
        let w = CpuWindow::between(&a, &b, 3.0, 100.0);
        assert!((w.counted_pct - 700.0 / 6.0).abs() < 1e-9, "{w:?}");
        assert!((w.busy_cpu_s - 3.0).abs() < 1e-9, "{w:?}");
        assert!((w.busy_pct - 50.0).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn a_cpu_set_that_changed_falls_back_to_the_counters() {
        let a = CpuTicks::parse(&stat("100 0 50 800 10 0 5 0")).unwrap();
        let b = CpuTicks::parse("cpu  200 0 100 1000 10 0 15 40 0 0\ncpu0 1\n").unwrap();
        assert_eq!(b.cpus, 1);
        let w = CpuWindow::between(&a, &b, 2.0, 100.0);
        assert!((w.busy_pct - 40.0).abs() < 1e-9, "{w:?}");
        assert!((w.counted_pct - 100.0).abs() < 1e-9, "{w:?}");
        // No wall time at all: the same.
        let w = CpuWindow::between(&a, &a, 0.0, 100.0);
        assert_eq!(w.busy_pct, 0.0);
    }

    #[test]
    fn openssl_speed_line() {
        let t = "The 'numbers' are in 1000s of bytes per second processed.\ntype          16384 bytes\nAES-128-GCM    5369473.71k\n";
        assert_eq!(parse_openssl_speed(t), Some(5_369_473_710.0));
        assert_eq!(parse_openssl_speed("nothing"), None);
    }

    #[test]
    fn shuffle_is_a_reproducible_permutation() {
        let mut a = [1, 2, 3, 4, 5];
        let mut b = a;
        Shuffler::new(42).shuffle(&mut a);
        Shuffler::new(42).shuffle(&mut b);
        assert_eq!(a, b);
        let mut s = a;
        s.sort();
        assert_eq!(s, [1, 2, 3, 4, 5]);
        // Every order of three engines shows up.
        let mut seen = std::collections::BTreeSet::new();
        let mut r = Shuffler::new(7);
        for _ in 0..200 {
            let mut v = [0, 1, 2];
            r.shuffle(&mut v);
            seen.insert(v);
        }
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn date_is_plausible() {
        let (d, t) = utc_now();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"));
        assert!(t.ends_with('Z'));
    }
}
