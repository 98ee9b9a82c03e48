//! Start-up, the control plane and shutdown: builds the shared state, binds
//! the listeners, starts shards, the writer pool and the stats endpoint, then
//! waits for signals (SIGTERM/SIGINT: drain and exit; SIGHUP: reload TLS
//! settings and reopen files).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch::{Ring, WriterWaker};
use crate::config::groups::group_of_sources;
use crate::config::Config;
use crate::plan::{Plan, Shared};
use crate::shard::{listener, Shard};
use crate::stats::Stats;
use crate::writer::pool::{GroupRings, WriterPool};
use crate::writer::WriterControl;

fn block_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a zeroed local set; pthread_sigmask on the
    // calling thread. Threads spawned afterwards inherit the mask, so only the
    // main thread receives these signals (through sigtimedwait).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: set is a valid, initialised sigset; info may be null.
    let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// Raises the open-file limit and warns when it is still below what the
/// config may need.
fn check_fd_limit(config: &Config, shards: usize) {
    let (max_connections_total, listeners) = crate::fd_limit::config_needs(config, shards);
    match crate::fd_limit::raise() {
        Ok(limit) => {
            if limit.soft != limit.soft_before {
                log::info!(
                    "open file limit raised from {} to {}",
                    limit.soft_before,
                    limit.soft
                );
            }
            let needed = crate::fd_limit::needed(max_connections_total, listeners);
            if let Some(w) = crate::fd_limit::shortfall(limit, needed, max_connections_total) {
                log::warn!("{w}");
            }
        }
        Err(e) => log::warn!("cannot read the open file limit: {e}"),
    }
}

/// Sets the shard's rings (one per destination group) closed however its
/// thread ends, so no writer waits for a shard that is gone; an end other
/// than by shutdown (a panic) marks the engine failed.
struct ShardExit {
    id: usize,
    to_writers: Vec<(Arc<Ring>, Arc<WriterWaker>)>,
    shared: Arc<Shared>,
}

impl Drop for ShardExit {
    fn drop(&mut self) {
        for (ring, waker) in &self.to_writers {
            ring.closed.store(true, Ordering::Release);
            waker.wake();
        }
        if std::thread::panicking() {
            log::error!(
                "shard {} stopped by a panic (a bug; please report it): stopping the engine",
                self.id
            );
            self.shared.shard_failed.store(true, Ordering::Release);
        }
    }
}

/// Runs the engine until SIGTERM/SIGINT; returns once everything read is
/// written and synced, or an error that says what was not (the process then
/// exits non-zero).
pub fn serve(config: Config) -> Result<(), String> {
    let sigset = block_signals();
    let shards = config.shard_count();
    check_fd_limit(&config, shards);
    let plan = Plan::build(config)?;
    crate::process_metrics::set_ktls_available(plan.ktls.ulp);
    let config = &plan.config;
    let stats = Arc::new(
        Stats::new(config.sources.iter().map(|s| s.name.clone()).collect())
            .with_destinations(config.destinations.iter().map(|d| d.name.clone()).collect()),
    );
    // Bind every listener before starting anything, so a busy port fails start-up cleanly.
    let mut per_shard: Vec<Vec<(u16, socket2::Socket)>> = (0..shards).map(|_| Vec::new()).collect();
    for (si, s) in config.sources.iter().enumerate() {
        for list in per_shard.iter_mut() {
            let sock = listener::bind_reuseport(s.listen, s.listen_backlog)
                .map_err(|e| format!("source {}: cannot listen on {}: {e}", s.name, s.listen))?;
            list.push((si as u16, sock));
        }
    }
    let control = Arc::new(WriterControl::default());
    let groups = GroupRings::of_config(config, shards);
    let lane_of_source = group_of_sources(groups.iter().map(|g| &g.group), config.sources.len());
    let writer_pool = WriterPool::start(config, &plan.forwards, &groups, &stats, &control)?;
    let _ = stats.writers.set(writer_pool.loads());
    log_writers(config, &groups, &writer_pool, shards);
    let stats_listen = config.stats.listen;
    let shared = Arc::new(Shared::new(plan, Arc::clone(&stats)));

    if let Some(addr) = stats_listen {
        crate::stats_http::spawn(addr, Arc::clone(&stats))
            .map_err(|e| format!("stats: cannot listen on {addr}: {e}"))?;
    }

    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let mut shard_handles = Vec::new();
    for (id, listeners) in per_shard.into_iter().enumerate() {
        let shared = Arc::clone(&shared);
        let to_writers: Vec<(Arc<Ring>, Arc<WriterWaker>)> = groups
            .iter()
            .enumerate()
            .map(|(g, group)| (Arc::clone(&group.rings[id]), writer_pool.waker_of(g, id)))
            .collect();
        let lane_of_source = lane_of_source.clone();
        let ready = ready_tx.clone();
        let h = std::thread::Builder::new()
            .name(format!("ringest-shard-{id}"))
            .spawn(move || {
                let exit = ShardExit {
                    id,
                    to_writers: to_writers.clone(),
                    shared: Arc::clone(&shared),
                };
                match Shard::new(id, shared, listeners, to_writers, lane_of_source) {
                    Ok(shard) => {
                        let _ = ready.send(Ok(()));
                        // Start-up waits for every shard's word: a sender
                        // kept alive would hide a shard that died first.
                        drop(ready);
                        shard.run();
                    }
                    Err(e) => {
                        let _ = ready.send(Err(format!("shard {id}: cannot set up io_uring: {e}")));
                    }
                }
                drop(exit);
            })
            .map_err(|e| e.to_string())?;
        shard_handles.push(h);
    }
    drop(ready_tx);
    let mut startup_error = None;
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => startup_error = Some(e),
            Err(_) => startup_error = Some("a shard exited during start-up".into()),
        }
    }
    if let Some(e) = startup_error {
        shared.shutdown.store(true, Ordering::Release);
        for h in shard_handles {
            let _ = h.join();
        }
        writer_pool.wake_all();
        let _ = writer_pool.join();
        return Err(e);
    }
    for s in &shared.config.sources {
        log::info!(
            "listening on {} ({:?}, {} shards), source {}",
            s.listen,
            s.transport,
            shards,
            s.name
        );
    }
    println!("ringest: ready");
    crate::process_metrics::reload_succeeded();
    crate::notify::ready(&format!(
        "ready: {} sources on {shards} shards",
        shared.config.sources.len()
    ));

    loop {
        match wait_signal(&sigset, Duration::from_millis(500)) {
            Some(libc::SIGHUP) => {
                let reload_errors_before = stats.reload_errors.load(Ordering::Relaxed);
                control.request_reopen();
                writer_pool.wake_all();
                for src in &shared.sources {
                    if let Some(tls) = &src.tls {
                        match tls.reload() {
                            Ok(()) => {
                                log::info!("source {}: TLS settings reloaded", src.config.name)
                            }
                            Err(e) => {
                                stats.reload_errors.fetch_add(1, Ordering::Relaxed);
                                log::error!(
                                    "source {}: reload failed, old TLS settings stay in force: {e}",
                                    src.config.name
                                );
                            }
                        }
                    }
                }
                if stats.reload_errors.load(Ordering::Relaxed) == reload_errors_before {
                    crate::process_metrics::reload_succeeded();
                }
            }
            Some(sig) => {
                log::info!("signal {sig}: draining connections, then flushing");
                crate::notify::stopping();
                break;
            }
            None => {}
        }
        crate::notify::tick(&stats);
        if shared.shard_failed.load(Ordering::Acquire) {
            break;
        }
    }
    shared.shutdown.store(true, Ordering::Release);
    control.begin_shutdown(Instant::now());
    writer_pool.wake_all();
    // A writer returns once every shard it drains has closed its ring, or,
    // when its destinations keep failing, a bounded time after shutdown
    // began (see writer::GIVE_UP_AFTER_DRAIN_MS): join them first, then the
    // shards.
    let report = writer_pool.join()?;
    // The writers are gone: a shard still waiting for room in its ring stops
    // waiting (and counts what it dropped) instead of spinning.
    for r in groups.iter().flat_map(|g| &g.rings) {
        r.abandoned.store(true, Ordering::Release);
    }
    let panicked = join_shards(shard_handles);
    let (received, written) = (stats.total_received(), stats.total_written());
    log::info!("stopped: {received} messages received, {written} written");
    let mut errors = Vec::new();
    if !panicked.is_empty() {
        errors.push(format!(
            "a shard panicked ({}); messages a dead shard had decoded but not handed to the \
             writer are lost",
            panicked.join("; ")
        ));
    }
    if !report.is_clean() {
        errors.push(format!("not everything is safely written: {report}"));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Says how many writers drain which shards: the one line of a config of
/// one destination group (every source feeds every destination), else a
/// line per group naming its sources, destinations and writers.
fn log_writers(config: &Config, groups: &[GroupRings], pool: &WriterPool, shards: usize) {
    let delay = config.max_queue_delay_ms;
    if groups.len() < 2 {
        let w = pool.writers();
        log::info!(
            "{w} writers for {shards} shards (shard i to writer i % {w}), max_queue_delay_ms {delay}"
        );
        return;
    }
    log::info!(
        "{} writers in {} destination groups for {shards} shards, max_queue_delay_ms {delay}",
        pool.writers(),
        groups.len()
    );
    // The names at `indexes` in `all`, comma-separated.
    fn names<T>(indexes: &[usize], all: &[T], name: impl Fn(&T) -> &str) -> String {
        let found: Vec<&str> = indexes
            .iter()
            .filter_map(|&i| all.get(i))
            .map(name)
            .collect();
        found.join(", ")
    }
    let mut first = 0;
    for (g, group) in groups.iter().enumerate() {
        let sources = names(&group.group.sources, &config.sources, |s| &s.name);
        let dests = names(&group.group.destinations, &config.destinations, |d| &d.name);
        let writers = pool.writers_of(g);
        log::info!(
            "destination group {g}: sources [{}] to destinations [{}]: writers {first} to {} \
             (shard i to writer {first} + i % {writers}); a stuck destination pauses only these sources",
            sources,
            dests,
            first + writers - 1
        );
        first += writers;
    }
}

/// How long shards may take to exit once the writer is done: they close
/// their rings just before they return.
const SHARD_JOIN_WAIT_MS: u64 = 2_000;

/// Joins the shards, leaving behind (and logging) any that do not exit in
/// time: the process is about to exit and must not hang on one. Returns
/// what each shard that panicked said.
fn join_shards(handles: Vec<std::thread::JoinHandle<()>>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_millis(SHARD_JOIN_WAIT_MS);
    let mut panicked = Vec::new();
    for h in handles {
        while !h.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if h.is_finished() {
            let name = h.thread().name().unwrap_or("a shard").to_string();
            if let Err(panic) = h.join() {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                panicked.push(format!("{name}: {msg}"));
            }
        } else {
            log::error!(
                "{} did not stop; exiting without it",
                h.thread().name().unwrap_or("a shard")
            );
        }
    }
    panicked
}
