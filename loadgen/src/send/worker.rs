//! One worker thread: its share of the connections and its event loop.

use super::*;

#[derive(Default)]
pub(super) struct WorkerResult {
    pub(super) sent_per_conn: Vec<(u32, u64)>,
    pub(super) sent_bytes: u64,
    pub(super) wire_bytes: u64,
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) hist: Option<Histogram<u64>>,
    /// Slots that completed at least one handshake.
    pub(super) established: u64,
    /// Handshake-only cycles completed.
    pub(super) cycles: u64,
    /// Of those, completed before the stop (the rate counts only these).
    pub(super) cycles_in_time: u64,
    /// When sending stopped (stop or all quotas reached).
    pub(super) send_end_ns: u64,
    /// When the last slot got established.
    pub(super) last_established_ns: u64,
    pub(super) negotiated: Option<(String, String)>,
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

pub(super) fn run_worker(plan: &Plan, t: u32, counters: &Counters) -> WorkerResult {
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
            tick: plan.tick,
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
            let dial = Dial {
                target: self.plan.target,
                source: crate::addr::source_for(&self.plan.source_addrs, self.conns[i].idx),
                nodelay: self.plan.nodelay,
                congestion: self.plan.congestion,
            };
            match self.conns[i].start_connect(
                dial,
                &self.epoll,
                i as u64,
                now_ns,
                self.plan.timeout_ns,
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
                    let due = self.plan.tick.ceil(due);
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
