//! `loadgen sink`: a minimal rustls (or TCP) server that counts syslog
//! frames and discards them (or appends them to `--output`).
//!
//! It uses rustls's unbuffered server API so that one `read()` takes up to
//! `INBUF_BYTES` from the socket and rustls decrypts the records straight
//! out of that buffer (the buffered API reads 4 KiB per call). Each worker
//! thread runs its own epoll loop; the listener is shared with
//! EPOLLEXCLUSIVE so one worker wakes per new connection.
//!
//! It prints `{"event":"listening","addr":...}` on stdout once bound and a
//! `{"event":"summary",...}` line at exit (SIGINT/SIGTERM, --exit-after-idle-ms,
//! or --duration).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::server::UnbufferedServerConnection;
use rustls::ServerConfig;
use serde_json::json;

use crate::cli::{SinkArgs, SinkFraming};
use crate::framing::{FrameDecoder, FramingMode};
use crate::message::Framing;
use crate::sys::{self, Epoll};

mod conn;

use conn::{close_conn, flush_out, service, SinkConn};

/// Receive buffer per connection: many records per read().
const INBUF_BYTES: usize = 256 * 1024;
/// A turn that read less than this leaves the connection without a buffer.
const IDLE_TURN_BYTES: usize = 16 * 1024;
/// Reads per readiness event before other connections get a turn.
const READS_PER_TURN_MAX: usize = 16;
/// New connections accepted per wakeup per worker.
const ACCEPTS_PER_TURN_MAX: usize = 256;
/// Output buffered per worker before it is appended to the file.
const OUTBUF_FLUSH_BYTES: usize = 1 << 20;
const LISTENER_TOKEN: u64 = u64::MAX;

/// Counters shared by the workers and the main thread.
#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    accepted: AtomicU64,
    open: AtomicI64,
    messages: AtomicU64,
    last_activity_ns: AtomicU64,
}

#[derive(Default)]
struct SinkStats {
    accepted: u64,
    handshakes: u64,
    messages: u64,
    bytes: u64,
    wire_bytes: u64,
    close_notify: u64,
    clean_eof: u64,
    leading_zero_frames: u64,
    truncated_frames: u64,
    errors: BTreeMap<String, u64>,
}

impl SinkStats {
    fn error(&mut self, key: impl Into<String>) {
        *self.errors.entry(key.into()).or_default() += 1;
    }
    fn merge(&mut self, o: SinkStats) {
        self.accepted += o.accepted;
        self.handshakes += o.handshakes;
        self.messages += o.messages;
        self.bytes += o.bytes;
        self.wire_bytes += o.wire_bytes;
        self.close_notify += o.close_notify;
        self.clean_eof += o.clean_eof;
        self.leading_zero_frames += o.leading_zero_frames;
        self.truncated_frames += o.truncated_frames;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

struct Plan {
    tls: Option<Arc<ServerConfig>>,
    framing: FramingMode,
    frame_bytes_max: usize,
    output: Option<Mutex<std::fs::File>>,
}

pub fn run(args: SinkArgs) -> i32 {
    sys::install_stop_signals();
    match run_inner(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen sink: {e}");
            2
        }
    }
}

fn run_inner(args: &SinkArgs) -> Result<i32, String> {
    let addr = crate::addr::resolve(&args.listen, args.allow_remote)?;
    // As many connections as the hard limit allows; a limit that cannot
    // be read or raised leaves the sink with what it has.
    let _ = ringest::fd_limit::raise();
    let tls = if args.tcp {
        None
    } else {
        let (Some(cert), Some(key)) = (&args.cert, &args.key) else {
            return Err("--cert and --key are required for TLS (or pass --tcp)".into());
        };
        tls_warm();
        Some(crate::tls::server_config(&crate::tls::ServerOptions {
            crypto: crate::tls::CryptoOptions {
                version: args.tls_version,
                cipher: args.cipher.clone(),
                kx: None,
            },
            cert,
            key,
            ca: args.ca.as_deref(),
            tickets: args.tickets,
        })?)
    };
    let output = match &args.output {
        Some(p) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("{}: {e}", p.display()))?,
        )),
        None => None,
    };
    let framing = match args.framing {
        SinkFraming::Auto => FramingMode::Auto,
        SinkFraming::OctetCounted => FramingMode::Fixed(Framing::OctetCounted),
        SinkFraming::Newline => FramingMode::Fixed(Framing::Newline),
    };
    let listener = listen(addr, args.backlog)?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    println!(
        "{}",
        json!({"event": "listening", "addr": bound.to_string()})
    );
    let _ = io::stdout().flush();
    eprintln!(
        "loadgen sink: listening on {bound} ({}{})",
        if tls.is_some() { "TLS" } else { "TCP" },
        if args.ca.is_some() {
            ", client certificates required"
        } else {
            ""
        }
    );
    let plan = Arc::new(Plan {
        tls,
        framing,
        frame_bytes_max: args.max_frame.max(1),
        output,
    });
    let shared = Arc::new(Shared::default());
    let listener = Arc::new(listener);
    let start_ns = sys::mono_ns();
    let cpu0 = sys::cpu_seconds();
    let mut handles = Vec::new();
    for t in 0..args.threads.max(1) {
        let (plan, shared, listener) = (plan.clone(), shared.clone(), listener.clone());
        let h = std::thread::Builder::new()
            .name(format!("sink-{t}"))
            .spawn(move || worker(&plan, &shared, &listener))
            .map_err(|e| format!("cannot start thread: {e}"))?;
        handles.push(h);
    }
    let end_ns = start_ns + args.duration.as_nanos() as u64;
    let idle_ns = args.exit_after_idle_ms.map(|ms| ms * 1_000_000);
    let mut last_print_ns = start_ns;
    let mut last_msgs = 0u64;
    let mut reason = "duration";
    // Bounded by --duration.
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = sys::mono_ns();
        if sys::stop_signalled() {
            reason = "signal";
            break;
        }
        if now >= end_ns {
            break;
        }
        if let Some(idle) = idle_ns {
            let accepted = shared.accepted.load(Ordering::Relaxed);
            let open = shared.open.load(Ordering::Relaxed);
            let last = shared.last_activity_ns.load(Ordering::Relaxed);
            if accepted > 0 && open == 0 && now.saturating_sub(last) >= idle {
                reason = "idle";
                break;
            }
        }
        if args.progress && now - last_print_ns >= 1_000_000_000 {
            let msgs = shared.messages.load(Ordering::Relaxed);
            if msgs != last_msgs {
                let dt = (now - last_print_ns) as f64 / 1e9;
                eprintln!(
                    "loadgen sink: messages={msgs} rate={}/s open={}",
                    crate::stats::human((msgs - last_msgs) as f64 / dt),
                    shared.open.load(Ordering::Relaxed)
                );
            }
            last_msgs = msgs;
            last_print_ns = now;
        }
    }
    shared.stop.store(true, Ordering::SeqCst);
    let mut total = SinkStats::default();
    for h in handles {
        match h.join() {
            Ok(s) => total.merge(s),
            Err(_) => total.error("worker_panicked"),
        }
    }
    let elapsed_s = (sys::mono_ns() - start_ns) as f64 / 1e9;
    let cpu_s = sys::cpu_seconds() - cpu0;
    let last = shared.last_activity_ns.load(Ordering::Relaxed);
    let active_s = if last > start_ns {
        (last - start_ns) as f64 / 1e9
    } else {
        0.0
    };
    let summary = json!({
        "event": "summary",
        "reason": reason,
        "connections": total.accepted,
        "handshakes": total.handshakes,
        "messages": total.messages,
        "bytes": total.bytes,
        "wire_bytes": total.wire_bytes,
        "close_notify_received": total.close_notify,
        "clean_eof": total.clean_eof,
        "leading_zero_frames": total.leading_zero_frames,
        "truncated_frames": total.truncated_frames,
        "errors": total.errors,
        "elapsed_s": (elapsed_s * 1000.0).round() / 1000.0,
        "active_s": (active_s * 1000.0).round() / 1000.0,
        "cpu_s": (cpu_s * 1000.0).round() / 1000.0,
        "cpu_us_per_msg": if total.messages > 0 { json!(cpu_s * 1e6 / total.messages as f64) } else { serde_json::Value::Null },
    });
    println!("{summary}");
    let _ = io::stdout().flush();
    eprintln!(
        "loadgen sink: {} messages ({} bytes) on {} connections, {} handshakes, cpu {:.2}s, errors: {}",
        total.messages,
        total.bytes,
        total.accepted,
        total.handshakes,
        cpu_s,
        if total.errors.is_empty() {
            "none".to_string()
        } else {
            format!("{:?}", total.errors)
        }
    );
    Ok(0)
}

fn tls_warm() {
    crate::tls::warm_up_rng();
}

fn listen(addr: SocketAddr, backlog: u32) -> Result<TcpListener, String> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM.nonblocking().cloexec(),
        Some(socket2::Protocol::TCP),
    )
    .map_err(|e| format!("socket: {e}"))?;
    let _ = sock.set_reuse_address(true);
    sock.bind(&addr.into())
        .map_err(|e| format!("bind {addr}: {e}"))?;
    sock.listen(backlog.min(i32::MAX as u32) as i32)
        .map_err(|e| format!("listen {addr}: {e}"))?;
    Ok(sock.into())
}

fn worker(plan: &Plan, shared: &Shared, listener: &TcpListener) -> SinkStats {
    let mut stats = SinkStats::default();
    let mut epoll = match Epoll::new(1024) {
        Ok(e) => e,
        Err(e) => {
            stats.error(format!("epoll: {e}"));
            return stats;
        }
    };
    if let Err(e) = epoll.add(
        listener.as_raw_fd(),
        LISTENER_TOKEN,
        sys::EPOLLIN | sys::EPOLLEXCLUSIVE,
    ) {
        stats.error(format!("epoll: {e}"));
        return stats;
    }
    let mut conns: HashMap<u64, SinkConn> = HashMap::new();
    let mut next_token: u64 = 0;
    let mut events = Vec::with_capacity(1024);
    let mut outbuf: Vec<u8> = Vec::new();
    // Connections with unread input left after their turn.
    let mut again: Vec<u64> = Vec::new();
    let mut published = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        events.clear();
        let timeout = if again.is_empty() { 50 } else { 0 };
        if let Err(e) = epoll.wait(timeout, &mut events) {
            stats.error(format!("epoll: {e}"));
            break;
        }
        let mut todo: Vec<(u64, u32)> = again.drain(..).map(|t| (t, sys::EPOLLIN)).collect();
        todo.extend(events.iter().map(|e| (e.token, e.events)));
        for (token, ev) in todo {
            if token == LISTENER_TOKEN {
                accept_some(
                    plan,
                    shared,
                    listener,
                    &epoll,
                    &mut conns,
                    &mut next_token,
                    &mut stats,
                );
                continue;
            }
            let Some(c) = conns.get_mut(&token) else {
                continue;
            };
            let mut more = false;
            let done = if ev & sys::EPOLLOUT != 0 && c.out_pos < c.out.len() && !flush_out(c) {
                true
            } else {
                // A bug on one connection must not take the sink down.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    service(c, &mut stats, &mut outbuf, &mut more)
                }));
                r.unwrap_or_else(|_| {
                    stats.error("connection_panicked");
                    true
                })
            };
            if done {
                if let Some(c) = conns.remove(&token) {
                    close_conn(c, &epoll, shared, &mut stats);
                }
            } else if more {
                again.push(token);
            }
            shared
                .last_activity_ns
                .store(sys::mono_ns(), Ordering::Relaxed);
        }
        if stats.messages != published {
            shared
                .messages
                .fetch_add(stats.messages - published, Ordering::Relaxed);
            published = stats.messages;
        }
        if outbuf.len() >= OUTBUF_FLUSH_BYTES {
            write_output(plan, &mut outbuf, &mut stats);
        }
    }
    for (_, c) in conns.drain() {
        close_conn(c, &epoll, shared, &mut stats);
    }
    write_output(plan, &mut outbuf, &mut stats);
    stats
}

fn accept_some(
    plan: &Plan,
    shared: &Shared,
    listener: &TcpListener,
    epoll: &Epoll,
    conns: &mut HashMap<u64, SinkConn>,
    next_token: &mut u64,
    stats: &mut SinkStats,
) {
    for _ in 0..ACCEPTS_PER_TURN_MAX {
        let (stream, _peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                stats.error(format!("accept: {}", e.kind()));
                return;
            }
        };
        let _ = stream.set_nonblocking(true);
        let _ = stream.set_nodelay(true);
        let tls = match &plan.tls {
            Some(cfg) => match UnbufferedServerConnection::new(cfg.clone()) {
                Ok(t) => Some(t),
                Err(e) => {
                    stats.error(format!("tls: {e}"));
                    continue;
                }
            },
            None => None,
        };
        let token = *next_token;
        *next_token += 1;
        if let Err(e) = epoll.add(
            stream.as_raw_fd(),
            token,
            sys::EPOLLIN | sys::EPOLLOUT | sys::EPOLLRDHUP | sys::EPOLLET,
        ) {
            stats.error(format!("epoll: {e}"));
            continue;
        }
        stats.accepted += 1;
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        shared.open.fetch_add(1, Ordering::Relaxed);
        let handshake_done = tls.is_none();
        conns.insert(
            token,
            SinkConn {
                stream,
                tls,
                inbuf: Vec::new(),
                in_start: 0,
                in_end: 0,
                out: Vec::new(),
                out_pos: 0,
                dec: FrameDecoder::new(plan.framing, plan.output.is_some(), plan.frame_bytes_max),
                handshake_done,
                peer_closed: false,
                sent_close: false,
                closing: false,
                shut_wr: false,
            },
        );
    }
}

fn write_output(plan: &Plan, outbuf: &mut Vec<u8>, stats: &mut SinkStats) {
    if outbuf.is_empty() {
        return;
    }
    if let Some(f) = &plan.output {
        match f.lock() {
            Ok(mut f) => {
                if let Err(e) = f.write_all(outbuf) {
                    stats.error(format!("output: {e}"));
                }
            }
            Err(_) => stats.error("output: lock poisoned"),
        }
    }
    outbuf.clear();
}
