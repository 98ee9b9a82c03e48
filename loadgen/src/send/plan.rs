//! Everything fixed for the run, planned once from the arguments and
//! shared read-only by the workers.

use super::*;

/// Everything fixed for the run, shared read-only by the workers.
pub(super) struct Plan {
    pub(super) target: SocketAddr,
    /// `--source-addrs`: connection `i` binds to entry `i % len`; empty: unbound.
    pub(super) source_addrs: Vec<IpAddr>,
    pub(super) server_name: ServerName<'static>,
    pub(super) tls: Option<Arc<ClientConfig>>,
    pub(super) mode: Mode,
    pub(super) spec: MessageSpec,
    pub(super) lines: Option<Arc<Vec<LineTemplate>>>,
    pub(super) slots: u32,
    pub(super) threads: u32,
    pub(super) count: Option<u64>,
    pub(super) rate: Option<f64>,
    pub(super) start_ns: u64,
    pub(super) end_ns: u64,
    pub(super) records_per_write: u64,
    pub(super) write_bytes: usize,
    pub(super) connect_rate: Option<f64>,
    pub(super) max_pending: u32,
    pub(super) timeout_ns: u64,
    pub(super) close_timeout_ns: u64,
    pub(super) confirm_ns: u64,
    pub(super) nodelay: bool,
    /// `--tcp-congestion`, checked against the kernel at start.
    pub(super) congestion: Option<Congestion>,
    /// `--tick-us`'s grid, from the run's start.
    pub(super) tick: Tick,
    pub(super) direct: bool,
    pub(super) rekey_after: Option<u64>,
}

/// Descriptors besides the connections: epoll, timers, std streams, files.
const NOFILE_MARGIN: u64 = 64;

impl Plan {
    /// Share of `total` for slot `i` of `slots`: `send --count` semantics.
    pub(super) fn quota(&self, i: u32) -> u64 {
        match self.count {
            Some(n) => share(n, self.slots, i),
            None => u64::MAX,
        }
    }

    /// Wall-clock bound after which a worker abandons what is left.
    pub(super) fn hard_end_ns(&self) -> u64 {
        self.end_ns + self.timeout_ns + self.close_timeout_ns + 1_000_000_000
    }
}

pub(super) fn plan(args: &SendArgs) -> Result<Plan, String> {
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
    let source_addrs = match &args.source_addrs {
        Some(list) => crate::addr::parse_source_addrs(list)?,
        None => Vec::new(),
    };
    if !source_addrs.is_empty() && !target.is_ipv4() {
        return Err(format!(
            "--source-addrs are IPv4; the target {target} is not"
        ));
    }
    let (mode, slots) = match (args.handshake_only, args.hold_idle) {
        (true, _) => (Mode::HandshakeOnly, args.connections),
        (false, Some(n)) => (Mode::HoldIdle, n),
        (false, None) => (Mode::Stream, args.connections),
    };
    if slots == 0 || slots > CONNECTIONS_MAX {
        return Err(format!("--hold-idle must be 1..={CONNECTIONS_MAX}"));
    }
    // Past the hard limit when privileged, so --hold-idle 100000 runs
    // without a shell `ulimit`.
    let need = u64::from(slots) + NOFILE_MARGIN;
    let nofile = ringest::fd_limit::raise_to(need)
        .map_err(|e| format!("cannot read the open-file limit: {e}"))?
        .soft;
    if need > nofile {
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
    let congestion = match &args.tcp_congestion {
        Some(name) => {
            let cc = Congestion::parse(name)?;
            cc.check()?;
            Some(cc)
        }
        None => None,
    };
    let start_ns = sys::mono_ns();
    Ok(Plan {
        target,
        source_addrs,
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
        congestion,
        tick: Tick::new(start_ns, args.tick_us.saturating_mul(1000)),
        direct: args.record_layer == crate::cli::RecordLayer::Loadgen,
        rekey_after: args.rekey_after,
    })
}
