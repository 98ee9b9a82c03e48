//! A forward destination as the writer drives it.
//!
//! [`deliver`](ForwardDestination::deliver) frames the round's messages,
//! spreads them over `connections` upstream connections (a source
//! connection always maps to the same one, so its order is kept), and
//! blocks the writer until every one of them is written and, on a new TLS
//! 1.3 connection, confirmed (session.rs). A server that is down, refuses
//! us or closes is retried over `servers` in order, then after a backoff
//! with jitter capped at `reconnect_max_ms`; meanwhile the rings fill and
//! the sources stop reading (back-pressure). Each failure is counted
//! (`ringest_upstream_errors_total{reason}`) and logged with the server,
//! the reason and a hint, rate-limited. Only after shutdown, past
//! [`GiveUp::at`], does it stop and count what it could not deliver.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use super::backoff::Reconnect;
use super::disk_buffer::DiskBuffer;
use super::failure::UpstreamFailure;
use super::frame::push_frame;
use super::link::{Heard, Link, TlsTarget};
use super::plan::ForwardPlan;
use super::session::Session;
use crate::ratelog::RateLog;
use crate::stats::DestinationStats;
use crate::writer::destination::GiveUp;
use crate::writer::encode::Out;
use crate::writer::report::DestinationLoss;

/// Failure log lines per second per destination; the rest are counted.
const FAILURE_LOG_PER_SECOND: u32 = 5;

/// Longest single wait for the server's confirmation, so the give-up
/// instant is looked at in time.
const LISTEN_SLICE: Duration = Duration::from_millis(100);

pub(super) struct Upstream {
    pub(super) session: Session,
    pub(super) link: Option<Link>,
    backoff: Reconnect,
    /// When the next connect may be tried.
    pub(super) retry_at: Option<Instant>,
    /// First failure of the current outage, and how many since.
    outage: Option<(Instant, u64)>,
    /// Index in `servers` of the connected server.
    server: usize,
}

pub struct ForwardDestination {
    pub(super) plan: ForwardPlan,
    /// For each source, whether it feeds this destination.
    pub feeds: Vec<bool>,
    pub(super) upstreams: Vec<Upstream>,
    pub(super) gave_up: bool,
    pub(super) loss: DestinationLoss,
    pub(super) log: RateLog,
    pub(super) chunk: Vec<u8>,
    /// With `[destination.disk_buffer]`.
    pub(super) disk: Option<DiskBuffer>,
    /// What this writer last added to the destination's disk-buffer gauges
    /// (bytes, messages, oldest unix ms): every writer of the destination
    /// adds its own.
    pub(super) disk_published: (u64, u64, u64),
    /// This round's frames, before they go to a session or the disk.
    pub(super) incoming: Vec<(usize, Vec<u8>)>,
    /// `WriterControl::sighups` when `[destination.tls]` was last loaded.
    sighups_seen: u64,
    /// `ktls = "auto"` fell back to userspace and said so (once).
    ktls_fallback_logged: bool,
    /// This writer's share of the destination's failing gauge, as last
    /// published: 1 from a failure until every upstream delivers again.
    failing_published: u64,
}

pub(super) enum Step {
    Done,
    /// Impatient drive only: the connection failed; frames not delivered
    /// are back in the session's queue.
    Failed,
    GaveUp,
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ForwardDestination {
    pub fn open(plan: ForwardPlan, feeds: Vec<bool>) -> io::Result<ForwardDestination> {
        let disk = match &plan.disk_buffer {
            Some(cfg) => {
                let (disk, rec) = DiskBuffer::open(&cfg.dir, cfg.max_bytes)?;
                if rec.messages > 0 {
                    log::warn!(
                        "destination {}: disk buffer {} holds {} messages from before; they are sent first",
                        plan.name,
                        cfg.dir.display(),
                        rec.messages
                    );
                }
                if rec.torn_bytes > 0 {
                    log::warn!(
                        "destination {}: disk buffer {}: a record torn by a crash ({} bytes) was cut off",
                        plan.name,
                        cfg.dir.display(),
                        rec.torn_bytes
                    );
                }
                Some(disk)
            }
            None => None,
        };
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        let upstreams = (0..plan.connections)
            .map(|i| Upstream {
                session: Session::new(plan.confirm_window),
                link: None,
                backoff: Reconnect::new(
                    plan.reconnect_min,
                    plan.reconnect_max,
                    seed.wrapping_add(i as u64 * 0x9e37_79b9),
                ),
                retry_at: None,
                outage: None,
                server: 0,
            })
            .collect();
        Ok(ForwardDestination {
            disk,
            disk_published: (0, 0, 0),
            incoming: Vec::new(),
            sighups_seen: 0,
            ktls_fallback_logged: false,
            failing_published: 0,
            loss: DestinationLoss {
                name: plan.name.clone(),
                ..Default::default()
            },
            plan,
            feeds,
            upstreams,
            gave_up: false,
            log: RateLog::new(FAILURE_LOG_PER_SECOND),
            chunk: Vec::with_capacity(super::session::CHUNK_BYTES_MAX * 2),
        })
    }

    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// Sends `out` (each message with the connection it came from: the
    /// writer records origins for forward destinations), retrying until all of
    /// it is delivered. Returns how many of its messages were delivered: all
    /// of them unless this destination gave up, when the rest are counted
    /// in the loss.
    pub fn deliver(
        &mut self,
        out: &Out<'_, '_>,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
    ) -> u64 {
        let messages = out.messages();
        if self.gave_up {
            self.loss.not_written(messages, out.len_bytes());
            return 0;
        }
        self.reload_after_sighup(give_up.control.sighups(), stats);
        let n = self.upstreams.len() as u64;
        out.for_each_message(|m| {
            let (msg, conn) = (m.value, m.from.map(|s| s.conn));
            let identity = conn
                .filter(|_| self.plan.forward_identity)
                .and_then(|c| c.identity.as_ref());
            // Framing and identity add a few dozen bytes at most.
            let mut frame = Vec::with_capacity(msg.len() + 128);
            push_frame(&mut frame, self.plan.framing, msg, identity);
            let up = match conn {
                Some(c) if n > 1 => {
                    let mut h = DefaultHasher::new();
                    (c.source, c.peer).hash(&mut h);
                    (h.finish() % n) as usize
                }
                _ => 0,
            };
            self.incoming.push((up, frame));
            std::ops::ControlFlow::Continue(())
        });
        if self.disk.is_some() {
            return self.deliver_buffered(messages, stats, give_up);
        }
        for (up, frame) in self.incoming.drain(..) {
            self.upstreams[up].session.push(frame);
        }
        for u in 0..self.upstreams.len() {
            if let Step::GaveUp = self.drive(u, stats, give_up, true) {
                let mut lost = 0;
                for up in &mut self.upstreams {
                    let (m, b) = up.session.abandon();
                    lost += m;
                    self.loss.not_written_messages += m;
                    self.loss.not_written_bytes += b;
                }
                self.gave_up = true;
                log::error!(
                    "destination {}: upstream still failing after shutdown and the drain timeout; giving up: {lost} messages not delivered, later ones are counted too",
                    self.plan.name
                );
                return messages.saturating_sub(lost);
            }
        }
        messages
    }

    /// Runs upstream `u` until its session is done, or gives up; an
    /// impatient drive (`patient = false`) stops at the first failure.
    pub(super) fn drive(
        &mut self,
        u: usize,
        stats: &DestinationStats,
        give_up: GiveUp<'_>,
        patient: bool,
    ) -> Step {
        loop {
            let now = Instant::now();
            let up = &mut self.upstreams[u];
            if up.session.is_done() {
                return Step::Done;
            }
            if give_up.at().is_some_and(|t| now >= t) {
                return Step::GaveUp;
            }
            let Some(link) = up.link.as_mut() else {
                if !patient {
                    return Step::Failed;
                }
                if let Some(t) = up.retry_at.filter(|t| *t > now) {
                    let wait = give_up
                        .at()
                        .map_or(t - now, |g| (t - now).min(g.saturating_duration_since(now)));
                    std::thread::sleep(wait.max(Duration::from_millis(1)));
                    continue;
                }
                self.reload_after_sighup(give_up.control.sighups(), stats);
                self.connect(u, stats);
                continue;
            };
            let was_confirmed = up.session.is_confirmed();
            // Look before writing: a server that closed or refused us is
            // found before more bytes go into a dead socket.
            let step = match link.listen(Duration::ZERO) {
                Err(f) => Err(f),
                Ok(Heard::Something) => {
                    up.session.server_spoke();
                    Ok(())
                }
                Ok(Heard::Nothing) => Ok(()),
            }
            .and_then(|()| {
                if up.session.next_chunk(&mut self.chunk) {
                    link.start(&self.chunk)?;
                    loop {
                        match link.flush() {
                            Ok(true) => break,
                            Ok(false) if give_up.at().is_some_and(|t| Instant::now() >= t) => {
                                return Err(UpstreamFailure::Timeout)
                            }
                            Ok(false) => {}
                            Err(f) => return Err(link.explain(f)),
                        }
                    }
                    up.session.written();
                } else if let Some(deadline) = up.session.confirm_deadline() {
                    // Everything is written; wait for the server's word.
                    let wait = deadline.saturating_duration_since(now).min(LISTEN_SLICE);
                    if link.listen(wait)? == Heard::Something {
                        up.session.server_spoke();
                    }
                }
                Ok(())
            });
            let by_window = up.session.tick(Instant::now()) > 0;
            match step {
                Ok(()) => {
                    if up.session.is_confirmed() && !was_confirmed {
                        log::debug!(
                            "destination {}: {} accepted the connection ({})",
                            self.plan.name,
                            self.plan.servers[up.server],
                            if by_window {
                                "confirm_ms passed without an alert"
                            } else {
                                "it sent a record after the handshake"
                            }
                        );
                    }
                    if up.session.is_confirmed() {
                        self.recovered(u, stats);
                    }
                }
                Err(f) => {
                    self.failed(u, f, stats);
                    if !patient {
                        return Step::Failed;
                    }
                }
            }
        }
    }

    /// Tries every server in order; on success the session starts on it.
    pub(super) fn connect(&mut self, u: usize, stats: &DestinationStats) {
        for i in 0..self.plan.servers.len() {
            let server = &self.plan.servers[i];
            let tls = self.plan.tls.as_ref().and_then(|t| {
                Some(TlsTarget {
                    config: &t.config,
                    server_name: t.names.get(i)?.clone(),
                    ktls: &t.ktls,
                })
            });
            match Link::connect(server, tls, self.plan.connect_timeout) {
                Ok(link) => {
                    note_tls_path(
                        &self.plan.name,
                        &mut self.ktls_fallback_logged,
                        &link,
                        stats,
                    );
                    let up = &mut self.upstreams[u];
                    up.session.connected(Instant::now(), link.needs_confirm());
                    up.link = Some(link);
                    up.server = i;
                    up.retry_at = None;
                    log::info!(
                        "destination {}: connected to {server}{}",
                        self.plan.name,
                        if up.session.is_confirmed() {
                            ""
                        } else {
                            " (messages kept until the server confirms)"
                        }
                    );
                    return;
                }
                Err(f) => {
                    let server = server.to_string();
                    self.note_failure(u, &server, &f, 0, stats)
                }
            }
        }
        let up = &mut self.upstreams[u];
        let wait = up.backoff.failed();
        up.retry_at = Some(Instant::now() + wait);
        self.mark_failing(true, stats);
    }

    /// The connection to the current server failed.
    fn failed(&mut self, u: usize, f: UpstreamFailure, stats: &DestinationStats) {
        let up = &mut self.upstreams[u];
        up.link = None;
        let requeued = up.session.failed();
        stats.requeued_messages.fetch_add(requeued, Relaxed);
        let wait = up.backoff.failed();
        up.retry_at = Some(Instant::now() + wait);
        let server = self.plan.servers[up.server].to_string();
        self.mark_failing(true, stats);
        self.note_failure(u, &server, &f, requeued, stats);
    }

    fn note_failure(
        &mut self,
        u: usize,
        server: &str,
        f: &UpstreamFailure,
        requeued: u64,
        stats: &DestinationStats,
    ) {
        stats.upstream_errors.inc(f.label());
        let now = Instant::now();
        let up = &mut self.upstreams[u];
        let o = up.outage.get_or_insert((now, 0));
        o.1 += 1;
        if self.log.allow(now) {
            let kept = if requeued > 0 {
                format!("; {requeued} messages sent on it put back to resend")
            } else {
                String::new()
            };
            log::error!(
                "destination {}: upstream {server}: {f}{kept}; retrying ({})",
                self.plan.name,
                f.hint()
            );
        }
    }

    /// This writer's share of the destination's failing gauge: 1 whatever
    /// the number of upstreams failing.
    fn mark_failing(&mut self, failing: bool, stats: &DestinationStats) {
        stats.publish_failing(&mut self.failing_published, failing);
    }

    fn recovered(&mut self, u: usize, stats: &DestinationStats) {
        let up = &mut self.upstreams[u];
        up.backoff.succeeded();
        if let Some((since, failures)) = up.outage.take() {
            if self.upstreams.iter().all(|x| x.outage.is_none()) {
                self.mark_failing(false, stats);
            }
            log::warn!(
                "destination {}: delivering to {} again after {:.1} s and {failures} failures",
                self.plan.name,
                self.plan.servers[self.upstreams[u].server],
                since.elapsed().as_secs_f64()
            );
        }
    }

    /// After a SIGHUP (`sighups` grew): builds the TLS client config again
    /// from its files (a renewed client certificate, a new CA). Connections
    /// up keep theirs; the next connect uses the new one, at once for an
    /// upstream that is down. A failure is logged and counted
    /// (`ringest_upstream_errors_total{reason="tls_reload"}`).
    pub(super) fn reload_after_sighup(&mut self, sighups: u64, stats: &DestinationStats) {
        if sighups == self.sighups_seen {
            return;
        }
        self.sighups_seen = sighups;
        let Some(tls) = self.plan.tls.as_mut() else {
            return;
        };
        match tls.reload() {
            Ok(()) => {
                log::info!("destination {}: TLS settings reloaded", self.plan.name);
                for up in self.upstreams.iter_mut().filter(|u| u.link.is_none()) {
                    up.retry_at = None;
                }
            }
            Err(e) => {
                stats.upstream_errors.inc("tls_reload");
                log::error!(
                    "destination {}: reload failed, old TLS settings stay in force: {e}",
                    self.plan.name
                );
            }
        }
    }

    /// Closes the connections (close_notify) and says what was not delivered.
    pub fn finish(mut self) -> DestinationLoss {
        if let Some(disk) = self.disk.as_mut() {
            if let Err(e) = disk.sync() {
                log::error!(
                    "destination {}: disk buffer fsync failed: {e}",
                    self.plan.name
                );
            }
            if !disk.is_empty() {
                log::info!(
                    "destination {}: {} messages kept in the disk buffer for the next start",
                    self.plan.name,
                    disk.messages()
                );
            }
        }
        for up in &mut self.upstreams {
            if let Some(link) = up.link.take() {
                link.close();
            }
        }
        self.loss
    }
}

/// Counts the connection's data path; the first fallback of `ktls = "auto"`
/// to userspace gets one log line (the counter has the rest).
fn note_tls_path(name: &str, logged: &mut bool, link: &Link, stats: &DestinationStats) {
    let Some(path) = link.path() else {
        return;
    };
    stats.upstream_tls_path.inc(crate::conn::path_label(path));
    if let Some(reason) = link.fallback() {
        if !*logged {
            *logged = true;
            log::warn!(
                "destination {name}: kTLS not used for the upstream connection ({reason}); \
                 sending through userspace rustls (counted in \
                 ringest_upstream_tls_connections_total)"
            );
        }
    }
}
