//! The run's report: counts, rates, latency, and the JSON form.

use super::*;

pub(super) fn report(
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
        "source_addrs": plan.source_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
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
        "tcp_congestion": plan.congestion.map(|c| c.as_str().to_string()).unwrap_or_else(crate::congestion::system_default),
        "tcp_congestion_given": plan.congestion.is_some(),
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
