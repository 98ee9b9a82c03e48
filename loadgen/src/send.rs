//! `loadgen send`: plans the run, runs one event loop per worker thread over
//! its share of the connections, and reports.
//!
//! Each worker owns its connections outright (no locks on the data path). Its
//! loop: start connects (paced by --connect-rate, at most --max-pending in
//! flight), give every writable sending connection a turn of at most
//! `TURN_BYTES`, then wait in epoll for sockets (edge-triggered), the rate
//! timer, or a deadline sweep. Counters go to the reporting thread once per
//! batch.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use serde_json::json;

use crate::cli::{SendArgs, DURATION_DEFAULT};
use crate::conn::{ClientConn, ConnError, Ctx, Mode, Phase, Progress};
use crate::message::{
    self, ConnEncoder, LineTemplate, MessageSpec, SEQ_DIGITS_MAX, SIZE_MAX_BYTES,
    TLS_PLAINTEXT_MAX_BYTES,
};
use crate::schedule::Schedule;
use crate::stats::{self, Counters, ProgressView};
use crate::sys::{self, Epoll, Timer};
use crate::tls;

/// Bytes a connection writes per turn before the next connection's turn.
const TURN_BYTES: usize = 1 << 20;
/// Deadline sweep period.
const SWEEP_NS: u64 = 20_000_000;
/// Longest epoll wait, so stop requests are seen promptly.
const WAIT_MS_MAX: i32 = 100;
/// Bound for a --count run without --duration.
const COUNT_ONLY_DURATION: Duration = Duration::from_secs(3600);
const TIMER_TOKEN: u64 = u64::MAX;
const CONNECTIONS_MAX: u32 = 1_000_000;

/// Everything fixed for the run, shared read-only by the workers.
struct Plan {
    target: SocketAddr,
    server_name: ServerName<'static>,
    tls: Option<Arc<ClientConfig>>,
    mode: Mode,
    spec: MessageSpec,
    lines: Option<Arc<Vec<LineTemplate>>>,
    slots: u32,
    threads: u32,
    count: Option<u64>,
    rate: Option<f64>,
    start_ns: u64,
    end_ns: u64,
    records_per_write: u64,
    write_bytes: usize,
    connect_rate: Option<f64>,
    max_pending: u32,
    timeout_ns: u64,
    close_timeout_ns: u64,
    confirm_ns: u64,
    nodelay: bool,
    tick_ns: u64,
    direct: bool,
    rekey_after: Option<u64>,
}

impl Plan {
    /// Share of `total` for slot `i` of `slots`: `send --count` semantics.
    fn quota(&self, i: u32) -> u64 {
        match self.count {
            Some(n) => share(n, self.slots, i),
            None => u64::MAX,
        }
    }

    /// Wall-clock bound after which a worker abandons what is left.
    fn hard_end_ns(&self) -> u64 {
        self.end_ns + self.timeout_ns + self.close_timeout_ns + 1_000_000_000
    }
}

/// `n` spread over `parts`: the first `n % parts` get one more.
pub fn share(n: u64, parts: u32, i: u32) -> u64 {
    let parts = u64::from(parts.max(1));
    n / parts + u64::from(u64::from(i) < n % parts)
}

#[derive(Default)]
struct WorkerResult {
    sent_per_conn: Vec<(u32, u64)>,
    sent_bytes: u64,
    wire_bytes: u64,
    errors: BTreeMap<String, u64>,
    hist: Option<Histogram<u64>>,
    /// Slots that completed at least one handshake.
    established: u64,
    /// Handshake-only cycles completed.
    cycles: u64,
    /// Of those, completed before the stop (the rate counts only these).
    cycles_in_time: u64,
    /// When sending stopped (stop or all quotas reached).
    send_end_ns: u64,
    /// When the last slot got established.
    last_established_ns: u64,
    negotiated: Option<(String, String)>,
}

pub fn run(args: SendArgs) -> i32 {
    sys::install_stop_signals();
    let plan = match plan(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("loadgen send: {e}");
            return 2;
        }
    };
    let plan = Arc::new(plan);
    let what = match plan.mode {
        Mode::Stream => "sent",
        Mode::HandshakeOnly => "handshakes",
        Mode::HoldIdle => "established",
    };
    let cpu0 = sys::cpu_seconds();
    let counters: Vec<Arc<Counters>> = (0..plan.threads).map(|_| Arc::default()).collect();
    let mut handles = Vec::new();
    for t in 0..plan.threads {
        let plan = plan.clone();
        let c = counters[t as usize].clone();
        let h = std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || run_worker(&plan, t, &c));
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("loadgen send: cannot start thread: {e}");
                return 2;
            }
        }
    }
    let total_s = (plan.end_ns - plan.start_ns) as f64 / 1e9;
    let mut view = ProgressView::new(args.quiet, total_s);
    // Poll the workers until all are done; they end by themselves before
    // hard_end_ns, so this loop is bounded too.
    let hard_end = plan.hard_end_ns() + 1_000_000_000;
    while !handles.iter().all(|h| h.is_finished()) && sys::mono_ns() < hard_end {
        std::thread::sleep(Duration::from_millis(100));
        let sum = |f: fn(&Counters) -> u64| counters.iter().map(|c| f(c)).sum::<u64>();
        let done = match plan.mode {
            Mode::Stream => sum(|c| Counters::get(&c.sent)),
            Mode::HandshakeOnly => sum(|c| Counters::get(&c.handshakes)),
            Mode::HoldIdle => sum(|c| Counters::get(&c.established)),
        };
        let elapsed = (sys::mono_ns().saturating_sub(plan.start_ns)) as f64 / 1e9;
        view.update(
            elapsed,
            done,
            what,
            sum(|c| Counters::get(&c.established)),
            sum(|c| Counters::get(&c.errors)),
        );
    }
    view.finish();
    let mut results = Vec::new();
    for h in handles {
        match h.join() {
            Ok(r) => results.push(r),
            Err(_) => {
                eprintln!("loadgen send: a worker thread panicked");
                return 2;
            }
        }
    }
    let end_ns = sys::mono_ns();
    let cpu_s = sys::cpu_seconds() - cpu0;
    report(&args, &plan, results, cpu_s, end_ns)
}

fn plan(args: &SendArgs) -> Result<Plan, String> {
    if args.connections == 0 || args.connections > CONNECTIONS_MAX {
        return Err(format!("--connections must be 1..={CONNECTIONS_MAX}"));
    }
    if args.records_per_write == 0 {
        return Err("--records-per-write must be at least 1".into());
    }
    if args.write_bytes == 0 {
        return Err("--write-bytes must be at least 1".into());
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            return Err("--rate must be a positive number of messages per second".into());
        }
    }
    if let Some(r) = args.connect_rate {
        if !(r.is_finite() && r > 0.0) {
            return Err("--connect-rate must be positive".into());
        }
    }
    if args.count == Some(0) {
        return Err("--count must be at least 1".into());
    }
    if args.handshake_only && args.hold_idle.is_some() {
        return Err("--handshake-only and --hold-idle exclude each other".into());
    }
    if args.handshake_only && args.tcp {
        eprintln!("loadgen send: note: --handshake-only with --tcp measures TCP connects only");
    }
    if args.size > SIZE_MAX_BYTES {
        return Err(format!("--size must be at most {SIZE_MAX_BYTES}"));
    }
    if args.max_pending == 0 {
        return Err("--max-pending must be at least 1".into());
    }
    let target = crate::addr::resolve(&args.target, args.allow_remote)?;
    let host = crate::addr::host_part(&args.target).to_string();
    let nofile = sys::raise_nofile_limit();
    let (mode, slots) = match (args.handshake_only, args.hold_idle) {
        (true, _) => (Mode::HandshakeOnly, args.connections),
        (false, Some(n)) => (Mode::HoldIdle, n),
        (false, None) => (Mode::Stream, args.connections),
    };
    if slots == 0 || slots > CONNECTIONS_MAX {
        return Err(format!("--hold-idle must be 1..={CONNECTIONS_MAX}"));
    }
    if u64::from(slots) + 64 > nofile {
        return Err(format!(
            "{slots} connections need more open files than the limit of {nofile} allows"
        ));
    }
    let tls = if args.tcp {
        None
    } else {
        tls::warm_up_rng();
        Some(tls::client_config(&tls::ClientOptions {
            crypto: tls::CryptoOptions {
                version: args.tls_version,
                cipher: args.cipher.clone(),
                kx: args.kx.clone(),
            },
            ca: args.ca.as_deref(),
            cert: args.cert.as_deref(),
            key: args.key.as_deref(),
            resume: args.resume,
        })?)
    };
    let server_name = tls::server_name(args.sni.as_deref(), &host)?;
    let run = match &args.run_id {
        Some(s) => message::parse_run_id(s)?,
        None => tls::random_u32(),
    };
    let hostname = message::sanitize_hostname(
        &args
            .hostname
            .clone()
            .or_else(sys::hostname)
            .unwrap_or_else(|| "localhost".into()),
    );
    let spec = MessageSpec {
        format: args.format,
        framing: args.framing,
        size: args.size,
        sd: args.sd,
        run,
        hostname,
        pid: std::process::id(),
    };
    let lines = match &args.read_file {
        Some(path) => {
            let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if meta.len() > message::READ_FILE_MAX_BYTES as u64 {
                return Err(format!(
                    "{}: larger than {} bytes",
                    path.display(),
                    message::READ_FILE_MAX_BYTES
                ));
            }
            let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let (lines, skipped) = message::templates_from_file(&data);
            if skipped > 0 {
                eprintln!(
                    "loadgen send: {}: skipped {skipped} lines longer than {} bytes",
                    path.display(),
                    message::READ_FILE_LINE_MAX_BYTES
                );
            }
            if lines.is_empty() {
                return Err(format!("{}: no usable lines", path.display()));
            }
            Some(Arc::new(lines))
        }
        None => {
            // The largest connection index has the longest marker.
            let seq_digits = match (mode, args.count) {
                (Mode::Stream, Some(n)) => message::decimal_len(share(n, slots, 0)),
                _ => SEQ_DIGITS_MAX,
            };
            let need = message::min_size(&spec, slots - 1, seq_digits);
            if args.size < need && mode == Mode::Stream {
                return Err(format!(
                    "--size {} leaves no room for the header and marker: at least {need} is needed here",
                    args.size
                ));
            }
            None
        }
    };
    let duration = match (args.duration, args.count) {
        (Some(d), _) => d,
        (None, Some(_)) => COUNT_ONLY_DURATION,
        (None, None) => DURATION_DEFAULT,
    };
    // Messages per record: never more than 16 KiB of plaintext per record.
    let records_per_write = match &lines {
        None => {
            let framed = ConnEncoder::new(&spec, 0, None).framed_len(0).max(1);
            args.records_per_write
                .min((TLS_PLAINTEXT_MAX_BYTES / framed).max(1) as u64)
        }
        Some(_) => args.records_per_write,
    };
    if records_per_write < args.records_per_write {
        eprintln!(
            "loadgen send: --records-per-write capped at {records_per_write} (16 KiB of plaintext per TLS record)"
        );
    }
    let threads = args
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1)
        })
        .clamp(1, slots);
    let confirm_ns = if args.tcp {
        0
    } else {
        args.confirm_timeout.as_nanos() as u64
    };
    let start_ns = sys::mono_ns();
    Ok(Plan {
        target,
        server_name,
        tls,
        mode,
        spec,
        lines,
        slots,
        threads,
        count: args.count,
        rate: args.rate,
        start_ns,
        end_ns: start_ns + duration.as_nanos() as u64,
        records_per_write,
        write_bytes: args.write_bytes,
        connect_rate: args.connect_rate,
        max_pending: args.max_pending,
        timeout_ns: args.timeout.as_nanos() as u64,
        close_timeout_ns: args.close_timeout.as_nanos() as u64,
        confirm_ns,
        nodelay: !args.nagle,
        tick_ns: args.tick_us.saturating_mul(1000),
        direct: args.record_layer == crate::cli::RecordLayer::Loadgen,
        rekey_after: args.rekey_after,
    })
}

/// One worker's state; `step` functions borrow its fields separately.
struct Worker<'p> {
    plan: &'p Plan,
    counters: &'p Counters,
    epoll: Epoll,
    timer: Option<Timer>,
    timer_armed_ns: u64,
    conns: Vec<ClientConn>,
    hist: Option<Histogram<u64>>,
    to_connect: VecDeque<usize>,
    sending: Vec<usize>,
    in_flight: u32,
    live: usize,
    /// Connections that sent their quota or ended (for the end-of-sending time).
    finished_sending: usize,
    stopping: bool,
    res: WorkerResult,
}

fn run_worker(plan: &Plan, t: u32, counters: &Counters) -> WorkerResult {
    let mut w = match Worker::new(plan, t, counters) {
        Ok(w) => w,
        Err(e) => {
            let mut res = WorkerResult::default();
            *res.errors.entry(format!("io: {e}")).or_default() += 1;
            Counters::add(&counters.errors, 1);
            return res;
        }
    };
    w.run();
    w.finish()
}

impl<'p> Worker<'p> {
    fn new(plan: &'p Plan, t: u32, counters: &'p Counters) -> std::io::Result<Self> {
        let slots: Vec<u32> = (t..plan.slots).step_by(plan.threads as usize).collect();
        let rate_per_conn = plan.rate.map(|r| r / f64::from(plan.slots));
        let conns: Vec<ClientConn> = slots
            .iter()
            .map(|&i| {
                let enc = ConnEncoder::new(&plan.spec, i, plan.lines.clone());
                // Stagger the connections' schedules evenly over one period.
                let stagger = rate_per_conn
                    .map(|r| (1e9 / r * f64::from(i) / f64::from(plan.slots)) as u64)
                    .unwrap_or(0);
                ClientConn::new(i, enc, plan.quota(i), rate_per_conn, stagger)
            })
            .collect();
        let epoll = Epoll::new(1024)?;
        let timer = match plan.rate {
            Some(_) => {
                let timer = Timer::new()?;
                epoll.add(timer.raw_fd(), TIMER_TOKEN, sys::EPOLLIN)?;
                Some(timer)
            }
            None => None,
        };
        let n = conns.len();
        Ok(Worker {
            plan,
            counters,
            epoll,
            timer,
            timer_armed_ns: 0,
            conns,
            hist: plan.rate.map(|_| stats::new_latency_histogram()),
            to_connect: (0..n).collect(),
            sending: Vec::new(),
            in_flight: 0,
            live: n,
            finished_sending: 0,
            stopping: false,
            res: WorkerResult::default(),
        })
    }

    fn ctx<'a>(plan: &'a Plan, hist: &'a mut Option<Histogram<u64>>, now_ns: u64) -> Ctx<'a> {
        Ctx {
            now_ns,
            mode: plan.mode,
            tls: plan.tls.as_ref(),
            server_name: &plan.server_name,
            confirm_ns: plan.confirm_ns,
            timeout_ns: plan.timeout_ns,
            close_timeout_ns: plan.close_timeout_ns,
            records_per_write: plan.records_per_write,
            write_bytes: plan.write_bytes,
            turn_bytes: TURN_BYTES,
            direct: plan.direct,
            rekey_after: plan.rekey_after,
            latency: hist.as_mut(),
        }
    }

    fn step(&mut self, i: usize, now_ns: u64) {
        let old = self.conns[i].phase;
        let mut ctx = Self::ctx(self.plan, &mut self.hist, now_ns);
        let p = self.conns[i].step(&mut ctx);
        self.account(i, old, p, now_ns);
    }

    /// Books a step's progress and keeps the worker's lists in line with
    /// the connection's new phase.
    fn account(&mut self, i: usize, old: Phase, p: Progress, now_ns: u64) {
        let c = &self.conns[i];
        if p.sent > 0 && c.sent >= c.quota && c.sent - p.sent < c.quota {
            self.finished_sending += 1;
        }
        self.res.sent_bytes += p.sent_bytes;
        self.res.wire_bytes += p.wire_bytes;
        Counters::add(&self.counters.sent, p.sent);
        if p.cycle_done {
            self.res.cycles += 1;
            if !self.stopping {
                self.res.cycles_in_time += 1;
            }
            Counters::add(&self.counters.handshakes, 1);
        }
        if p.established && self.conns[i].handshakes == 1 {
            self.res.established += 1;
            self.res.last_established_ns = now_ns;
            Counters::add(&self.counters.established, 1);
        }
        if self.res.negotiated.is_none() && self.conns[i].negotiated.is_some() {
            self.res.negotiated = self.conns[i].negotiated.clone();
        }
        if !p.phase_changed {
            return;
        }
        let new = self.conns[i].phase;
        let pending = |ph: Phase| matches!(ph, Phase::Connecting | Phase::Handshaking);
        if pending(old) && !pending(new) {
            self.in_flight -= 1;
        }
        if new == Phase::Sending && old != Phase::Sending {
            self.sending.push(i);
        }
        if new.is_terminal() && !old.is_terminal() {
            self.live -= 1;
            if self.conns[i].sent < self.conns[i].quota {
                self.finished_sending += 1;
            }
            if let Some(e) = &self.conns[i].error {
                *self.res.errors.entry(e.key()).or_default() += 1;
                Counters::add(&self.counters.errors, 1);
            }
        }
        if new == Phase::Idle && old != Phase::Idle {
            // A handshake-only cycle ended: go again.
            if self.stopping {
                self.conns[i].phase = Phase::Done;
                self.live -= 1;
            } else {
                self.to_connect.push_back(i);
            }
        }
    }

    fn all_quotas_done(&self) -> bool {
        self.plan.count.is_some() && self.plan.mode != Mode::HoldIdle && self.live == 0
    }

    fn begin_stop(&mut self, now_ns: u64) {
        self.stopping = true;
        if self.res.send_end_ns == 0 {
            self.res.send_end_ns = now_ns;
        }
        self.to_connect.clear();
        for i in 0..self.conns.len() {
            let old = self.conns[i].phase;
            let mut p = Progress::default();
            {
                let ctx = Self::ctx(self.plan, &mut self.hist, now_ns);
                if old == Phase::Idle
                    && self.conns[i].handshakes == 0
                    && self.plan.mode != Mode::HandshakeOnly
                {
                    // Never got a connection at all: that is a failure.
                    self.conns[i].error = Some(ConnError::NotEstablished);
                    self.conns[i].phase = Phase::Failed;
                    p.phase_changed = true;
                } else {
                    self.conns[i].begin_stop(&ctx, &mut p);
                }
            }
            self.account(i, old, p, now_ns);
        }
        // Give the closing connections a first push right away.
        for i in 0..self.conns.len() {
            if self.conns[i].phase == Phase::Closing {
                self.step(i, now_ns);
            }
        }
    }

    fn start_connects(&mut self, now_ns: u64, connects_started: &mut u64) -> Option<u64> {
        let pacing = self
            .plan
            .connect_rate
            .map(|r| Schedule::new(self.plan.start_ns, r / f64::from(self.plan.threads)));
        while let Some(&i) = self.to_connect.front() {
            if self.in_flight >= self.plan.max_pending {
                return None;
            }
            if let Some(s) = &pacing {
                if s.due_count(now_ns) <= *connects_started {
                    return Some(s.intended_ns(*connects_started));
                }
            }
            self.to_connect.pop_front();
            *connects_started += 1;
            let old = self.conns[i].phase;
            match self.conns[i].start_connect(
                self.plan.target,
                &self.epoll,
                i as u64,
                now_ns,
                self.plan.timeout_ns,
                self.plan.nodelay,
            ) {
                Ok(()) => self.in_flight += 1,
                Err(e) => {
                    self.conns[i].error = Some(e);
                    self.conns[i].phase = Phase::Failed;
                    let p = Progress {
                        phase_changed: true,
                        ..Progress::default()
                    };
                    self.account(i, old, p, now_ns);
                }
            }
        }
        None
    }

    fn run(&mut self) {
        let mut events = Vec::with_capacity(1024);
        let mut connects_started = 0u64;
        let mut last_sweep_ns = 0u64;
        let hard_end = self.plan.hard_end_ns();
        loop {
            let now = sys::mono_ns();
            if !self.stopping
                && (now >= self.plan.end_ns || sys::stop_signalled() || self.all_quotas_done())
            {
                self.begin_stop(now);
            }
            if now >= hard_end {
                self.abandon(now);
                break;
            }
            if self.live == 0 && (self.stopping || self.to_connect.is_empty()) {
                break;
            }
            let next_connect = if self.stopping {
                None
            } else {
                self.start_connects(now, &mut connects_started)
            };
            // Turns for connections that can make progress without an event.
            self.sending
                .retain(|&i| self.conns[i].phase == Phase::Sending);
            let mut busy = false;
            for k in 0..self.sending.len() {
                let i = self.sending[k];
                if self.conns[i].wants_turn(now) {
                    self.step(i, now);
                    busy |= self.conns[i].wants_turn(now);
                }
            }
            if self.res.send_end_ns == 0
                && self.plan.count.is_some()
                && self.plan.mode == Mode::Stream
                && self.finished_sending == self.conns.len()
            {
                self.res.send_end_ns = sys::mono_ns();
            }
            if now.saturating_sub(last_sweep_ns) >= SWEEP_NS {
                last_sweep_ns = now;
                self.sweep(now);
            }
            // Wait for events, the next paced send or connect, or a sweep.
            let mut wake = now + SWEEP_NS;
            if !self.stopping {
                wake = wake.min(self.plan.end_ns);
            }
            if let Some(t) = next_connect {
                wake = wake.min(t);
            }
            if let Some(timer) = &self.timer {
                let due = self
                    .sending
                    .iter()
                    .map(|&i| &self.conns[i])
                    .filter(|c| c.phase == Phase::Sending && c.writable)
                    .map(|c| c.next_due_ns)
                    .min();
                if let Some(due) = due {
                    // With --tick-us, wake on a grid so one wakeup sends every
                    // message due in a tick (their latency still counts from
                    // their own intended times).
                    let tick = self.plan.tick_ns;
                    let due = if tick > 0 {
                        let since = due.saturating_sub(self.plan.start_ns);
                        self.plan.start_ns + since.div_ceil(tick) * tick
                    } else {
                        due
                    };
                    if due > now && due < wake && due != self.timer_armed_ns {
                        let _ = timer.arm_at(due);
                        self.timer_armed_ns = due;
                    }
                }
            }
            let timeout_ms = if busy {
                0
            } else {
                (wake.saturating_sub(now).div_ceil(1_000_000) as i32).clamp(0, WAIT_MS_MAX)
            };
            events.clear();
            if let Err(e) = self.epoll.wait(timeout_ms, &mut events) {
                *self
                    .res
                    .errors
                    .entry(format!("io: epoll: {e}"))
                    .or_default() += 1;
                self.abandon(now);
                break;
            }
            let now = sys::mono_ns();
            for ev in &events {
                if ev.token == TIMER_TOKEN {
                    if let Some(t) = &self.timer {
                        t.drain();
                    }
                    self.timer_armed_ns = 0;
                    continue;
                }
                let i = ev.token as usize;
                if i < self.conns.len() {
                    self.conns[i].on_ready(ev.events);
                    self.step(i, now);
                }
            }
        }
        if self.res.send_end_ns == 0 {
            self.res.send_end_ns = sys::mono_ns();
        }
    }

    /// Times out connections past their phase deadline; moves confirming
    /// connections on when the server stayed silent.
    fn sweep(&mut self, now: u64) {
        for i in 0..self.conns.len() {
            let phase = self.conns[i].phase;
            match phase {
                Phase::Connecting | Phase::Handshaking | Phase::Closing => {
                    let mut p = Progress::default();
                    if self.conns[i].check_deadline(now, &mut p) {
                        self.account(i, phase, p, now);
                    }
                }
                Phase::Confirming if now >= self.conns[i].deadline_ns() => self.step(i, now),
                _ => {}
            }
        }
    }

    /// Past the hard deadline: whatever is still open failed.
    fn abandon(&mut self, now: u64) {
        for i in 0..self.conns.len() {
            let old = self.conns[i].phase;
            if old.is_terminal() {
                continue;
            }
            let err = match old {
                Phase::Closing => ConnError::CloseTimeout,
                Phase::Idle if self.plan.mode == Mode::HandshakeOnly => {
                    self.conns[i].phase = Phase::Done;
                    self.live -= 1;
                    continue;
                }
                _ => ConnError::NotEstablished,
            };
            self.conns[i].error = Some(err);
            self.conns[i].phase = Phase::Failed;
            let p = Progress {
                phase_changed: true,
                ..Progress::default()
            };
            self.account(i, old, p, now);
        }
    }

    fn finish(mut self) -> WorkerResult {
        self.res.sent_per_conn = self.conns.iter().map(|c| (c.idx, c.sent)).collect();
        self.res.hist = self.hist.take();
        self.res
    }
}

fn report(
    args: &SendArgs,
    plan: &Plan,
    results: Vec<WorkerResult>,
    cpu_s: f64,
    end_ns: u64,
) -> i32 {
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_conn = vec![0u64; plan.slots as usize];
    let mut hist: Option<Histogram<u64>> = None;
    let (mut sent_bytes, mut wire_bytes, mut established, mut cycles) = (0u64, 0u64, 0u64, 0u64);
    let mut cycles_in_time = 0u64;
    let mut send_end_ns = plan.start_ns;
    let mut last_established_ns = 0;
    let mut negotiated = None;
    for r in results {
        for (k, v) in r.errors {
            *errors.entry(k).or_default() += v;
        }
        for (i, s) in r.sent_per_conn {
            per_conn[i as usize] = s;
        }
        if let Some(h) = r.hist {
            match &mut hist {
                Some(all) => {
                    let _ = all.add(&h);
                }
                None => hist = Some(h),
            }
        }
        sent_bytes += r.sent_bytes;
        wire_bytes += r.wire_bytes;
        established += r.established;
        cycles += r.cycles;
        cycles_in_time += r.cycles_in_time;
        send_end_ns = send_end_ns.max(r.send_end_ns);
        last_established_ns = last_established_ns.max(r.last_established_ns);
        if negotiated.is_none() {
            negotiated = r.negotiated;
        }
    }
    let sent: u64 = per_conn.iter().sum();
    let elapsed_s = (send_end_ns.saturating_sub(plan.start_ns)) as f64 / 1e9;
    let total_s = (end_ns.saturating_sub(plan.start_ns)) as f64 / 1e9;
    let per_s = |x: f64| if elapsed_s > 0.0 { x / elapsed_s } else { 0.0 };
    let msg_per_s = per_s(sent as f64);
    let mb_per_s = per_s(sent_bytes as f64) / 1e6;
    let error_total: u64 = errors.values().sum();
    let run_id = message::run_id_hex(plan.spec.run);
    let latency = hist.as_ref().map(stats::latency_us);

    let mut ok = error_total == 0 && established >= u64::from(plan.slots);
    let mut shortfall = None;
    if let Some(n) = plan.count {
        let done = if plan.mode == Mode::HandshakeOnly {
            cycles
        } else {
            sent
        };
        if plan.mode != Mode::HoldIdle && done < n {
            ok = false;
            shortfall = Some(format!("asked for {n}, did {done}"));
        }
    }
    if plan.mode == Mode::HandshakeOnly {
        // Slots reconnect; what counts is that handshakes happened without errors.
        ok = error_total == 0 && cycles > 0 && shortfall.is_none();
    }

    let mut out = json!({
        "run_id": run_id,
        "mode": match plan.mode { Mode::Stream => "stream", Mode::HandshakeOnly => "handshake-only", Mode::HoldIdle => "hold-idle" },
        "target": plan.target.to_string(),
        "transport": if plan.tls.is_some() { "tls" } else { "tcp" },
        "tls_version": negotiated.as_ref().map(|n| n.0.clone()),
        "cipher": negotiated.as_ref().map(|n| n.1.clone()),
        "connections": plan.slots,
        "connections_established": established,
        "threads": plan.threads,
        "format": format!("{:?}", plan.spec.format).to_lowercase(),
        "framing": plan.spec.framing.as_str(),
        "size": if plan.lines.is_some() { serde_json::Value::Null } else { json!(plan.spec.size) },
        // Whether messages end in verifiable padding (not with --read-file).
        "padding": plan.lines.is_none(),
        "records_per_write": plan.records_per_write,
        "write_bytes": plan.write_bytes,
        "sent": sent,
        "count": plan.count,
        "sent_bytes": sent_bytes,
        "wire_bytes": wire_bytes,
        "elapsed_s": round3(elapsed_s),
        "total_s": round3(total_s),
        "msg_per_s": msg_per_s.round(),
        "mb_per_s": round3(mb_per_s),
        "client_cpu_s": round3(cpu_s),
        "cpu_us_per_msg": if sent > 0 { json!(round3(cpu_s * 1e6 / sent as f64)) } else { serde_json::Value::Null },
        "msg_per_cpu_s": if cpu_s > 0.0 { json!((sent as f64 / cpu_s).round()) } else { serde_json::Value::Null },
        "errors": errors,
        "ok": ok,
    });
    if let Some(l) = latency {
        out["rate"] = json!(plan.rate);
        out["latency_us"] = json!({
            "p50": l.p50, "p90": l.p90, "p99": l.p99, "p999": l.p999, "max": l.max, "count": l.count,
        });
    }
    if plan.mode == Mode::HandshakeOnly {
        out["handshakes"] = json!(cycles);
        // Cycles that finished after the stop are counted but not in the rate.
        out["handshakes_per_s"] = json!(per_s(cycles_in_time as f64).round());
    }
    if plan.mode == Mode::HoldIdle {
        let held_s = if established > 0 {
            (send_end_ns.saturating_sub(last_established_ns)) as f64 / 1e9
        } else {
            0.0
        };
        out["idle_connections"] = json!(established);
        out["idle_held_s"] = json!(round3(held_s));
        out["connect_s"] = json!(round3(
            (last_established_ns.saturating_sub(plan.start_ns)) as f64 / 1e9
        ));
    }
    if plan.mode == Mode::Stream {
        out["per_connection_sent"] = json!(per_conn);
    }

    // Human summary on stderr.
    let mut s = String::new();
    use std::fmt::Write as _;
    let _ = write!(
        s,
        "loadgen send: run {run_id} to {} ({}{}), {} connections over {} threads",
        plan.target,
        if plan.tls.is_some() { "TLS" } else { "TCP" },
        negotiated
            .as_ref()
            .map(|n| format!(" {} {}", n.0, n.1))
            .unwrap_or_default(),
        plan.slots,
        plan.threads
    );
    match plan.mode {
        Mode::Stream => {
            let _ = write!(
                s,
                "\n  sent {sent} messages in {elapsed_s:.2}s: {}/s, {mb_per_s:.1} MB/s ({} per record, {})",
                stats::human(msg_per_s),
                plan.records_per_write,
                plan.spec.framing.as_str()
            );
        }
        Mode::HandshakeOnly => {
            let _ = write!(
                s,
                "\n  {cycles} {} ({cycles_in_time} in {elapsed_s:.2}s: {}/s)",
                if plan.tls.is_some() {
                    "full TLS handshakes"
                } else {
                    "TCP connects"
                },
                stats::human(per_s(cycles_in_time as f64))
            );
        }
        Mode::HoldIdle => {
            let _ = write!(
                s,
                "\n  held {established} idle connections for {:.2}s",
                out["idle_held_s"].as_f64().unwrap_or(0.0)
            );
        }
    }
    let _ = write!(
        s,
        "\n  client CPU {cpu_s:.2}s{}",
        if sent > 0 {
            format!(
                " ({:.3} us/msg, {}/CPU-s)",
                cpu_s * 1e6 / sent as f64,
                stats::human(sent as f64 / cpu_s.max(1e-9))
            )
        } else {
            String::new()
        }
    );
    if let Some(l) = latency {
        let _ = write!(
            s,
            "\n  latency (from intended send time) us: p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max
        );
    }
    if errors.is_empty() {
        let _ = write!(s, "\n  errors: none");
    } else {
        let _ = write!(s, "\n  errors:");
        for (k, v) in &errors {
            let _ = write!(s, "\n    {v} x {k}");
        }
    }
    if let Some(sf) = &shortfall {
        let _ = write!(s, "\n  INCOMPLETE: {sf}");
    }
    if established < u64::from(plan.slots) && plan.mode != Mode::HandshakeOnly {
        let _ = write!(
            s,
            "\n  INCOMPLETE: {established} of {} connections established",
            plan.slots
        );
    }
    eprintln!("{s}");
    if args.json {
        println!("{out}");
    }
    if ok {
        0
    } else {
        1
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn count_is_spread_like_verify_expects() {
        let parts: Vec<u64> = (0..8).map(|i| share(100, 8, i)).collect();
        assert_eq!(parts, vec![13, 13, 13, 13, 12, 12, 12, 12]);
        assert_eq!((0..3).map(|i| share(2, 3, i)).sum::<u64>(), 2);
    }
}
