//! `tuning measure`: a bounded set of measurements against a ringest that
//! bench starts, written as a [`Profile`]. It drives the engine through
//! bench's own subcommands (`bench compare --only ringest`, `bench
//! handshakes`, `bench idle`, `bench latency`), so there is one owner of
//! how an engine is started, loaded and counted; this module only chooses
//! the points, reads bench's JSON and keeps each figure's spread.
//!
//! A figure whose spread over repeats exceeds [`SPREAD_MAX_PCT`] is refused:
//! it is written as `null` (unmeasured) and the refusal is printed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::profile::{CpuPoint, CurvePoint, Figure, KafkaPoint, Machine, Profile};
use crate::write_probe;

/// The widest spread (max − min over the median, %) a figure may have.
pub const SPREAD_MAX_PCT: f64 = 25.0;
pub const SIZES_BYTES: [u32; 4] = [128, 300, 1024, 4096];
pub const RECORDS_PER_WRITE: [u32; 2] = [1, 50];
/// The size of the rate search and the latency curve.
pub const RATE_BYTES: u32 = 300;
pub const SLO_P99_MS: f64 = 5.0;

pub struct Options {
    pub out: PathBuf,
    pub bin_dir: PathBuf,
    pub shards: u32,
    pub quick: bool,
    /// Also measure ringest into Kafka (bench starts its own broker).
    pub kafka: bool,
}

impl Options {
    fn duration_s(&self) -> u32 {
        if self.quick {
            1
        } else {
            5
        }
    }
    fn repeat(&self) -> u32 {
        if self.quick {
            2
        } else {
            3
        }
    }
    /// bench's `--kafka-warm-up`: the broker's JIT compiles its produce
    /// path in this many seconds of bench's own load before the first run.
    fn kafka_warm_up_s(&self) -> u32 {
        if self.quick {
            5
        } else {
            20
        }
    }
    fn idle_connections(&self) -> u32 {
        if self.quick {
            500
        } else {
            10_000
        }
    }
}

/// Prints progress: a bar on a terminal, plain lines otherwise.
struct Progress {
    step: usize,
    steps: usize,
    tty: bool,
}

impl Progress {
    fn next(&mut self, what: &str) {
        self.step += 1;
        if self.tty {
            let done = "#".repeat(self.step - 1);
            let left = "-".repeat(self.steps - self.step + 1);
            eprintln!("[{done}{left}] {}/{} {what}", self.step, self.steps);
        } else {
            eprintln!("tuning measure: step {}/{}: {what}", self.step, self.steps);
        }
    }
}

pub fn run(o: &Options) -> Result<Profile, String> {
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let mut progress = Progress {
        step: 0,
        steps: if o.kafka { 6 } else { 5 },
        tty: std::io::stderr().is_terminal(),
    };
    let keep = |name: String, f: Figure| within_spread("measure", &name, f);

    progress.next("server CPU per message by size and records per write (bench compare)");
    let states = if o.quick { "fresh" } else { "steady" };
    let scenarios = o.out.join("scenarios.toml");
    let results = compare_ringest(
        o,
        &scenarios,
        &scenarios_toml(o.shards),
        "compare",
        states,
        &[],
    )?;
    let mut cpu = Vec::new();
    for bytes in SIZES_BYTES {
        for rpw in RECORDS_PER_WRITE {
            let name = scenario_name(bytes, rpw);
            let s = summary(&results, &name)?;
            if s.get("lost").and_then(Value::as_u64) != Some(0) {
                return Err(format!("{name}: messages were lost; no figure is kept"));
            }
            let f = figure(s.get("server_cpu_us_per_msg"))
                .ok_or_else(|| format!("{name}: no server_cpu_us_per_msg in results.json"))?;
            if let Some(f) = keep(format!("cpu {name}"), f) {
                cpu.push(CpuPoint {
                    bytes,
                    records_per_write: rpw,
                    cpu_us_per_msg: f,
                    client_cpu_us_per_msg: figure(s.get("client_cpu_us_per_msg")),
                    machine_cpu_us_per_msg: figure(s.get("machine_cpu_us_per_msg"))
                        .and_then(|f| keep(format!("machine cpu {name}"), f)),
                });
            }
        }
    }
    let machine = machine(&results);

    progress.next("maximum rate at the p99 SLO and the latency curve (bench latency)");
    let latency_dir = o.out.join("latency");
    bench(
        o,
        &[
            "latency",
            "--scenarios",
            &path_str(&scenarios)?,
            "--scenario",
            &scenario_name(RATE_BYTES, 1),
            "--only",
            "ringest",
            "--duration",
            &(o.duration_s() * 2).to_string(),
            "--search-duration",
            &o.duration_s().to_string(),
            "--goal-p99-ms",
            &SLO_P99_MS.to_string(),
            "--states",
            states,
            "--out",
            &path_str(&latency_dir)?,
        ],
    )?;
    let lat = read_json(&latency_dir.join("latency.json"))?;
    let curve = latency_curve(&lat)?;
    let max_rate = max_within_slo(&curve);
    let zero_loss_max = zero_loss_max(&lat);

    progress.next("full mutual-TLS handshakes per CPU-second (bench handshakes)");
    let hs_dir = o.out.join("handshakes");
    bench(
        o,
        &[
            "handshakes",
            "--duration",
            &o.duration_s().to_string(),
            "--repeat",
            &o.repeat().to_string(),
            "--out",
            &path_str(&hs_dir)?,
        ],
    )?;
    let hs = read_json(&hs_dir.join("handshakes.json"))?;
    // bench handshakes measures an ECDSA P-256 and an RSA-2048 server key:
    // the profile is for the ECDSA one (the dev default's key type).
    let per_core: Vec<f64> = figures(&hs)
        .iter()
        .filter(|f| f.get("error").is_none_or(Value::is_null))
        .filter(|f| {
            f.get("server_key")
                .and_then(Value::as_str)
                .is_some_and(|k| k.starts_with("ECDSA"))
        })
        .filter_map(|f| f.get("ringest_per_core")?.as_f64())
        .collect();
    let handshakes = spread_of(&per_core).and_then(|f| keep("handshakes".into(), f));

    progress.next("memory per idle connection (bench idle)");
    let idle_dir = o.out.join("idle");
    bench(
        o,
        &[
            "idle",
            "--only",
            "ringest",
            "--connections",
            &o.idle_connections().to_string(),
            "--out",
            &path_str(&idle_dir)?,
        ],
    )?;
    let idle = read_json(&idle_dir.join("idle.json"))?;
    let kib: Vec<f64> = figures(&idle)
        .iter()
        .filter(|f| f.get("engine").and_then(Value::as_str) == Some("ringest"))
        .filter_map(|f| f.get("kib_per_connection")?.as_f64())
        .map(|k| k * 1024.0)
        .collect();
    let idle_rss = spread_of(&kib);

    progress.next("the writer's cost per GB, buffered and direct (write probe)");
    let probe_mib = if o.quick { 64 } else { 512 };
    let buffered = write_probe::cpu_s_per_gb(&o.out, probe_mib, false, o.repeat())
        .map_err(|e| format!("buffered write probe: {e}"))?;
    let direct = match write_probe::cpu_s_per_gb(&o.out, probe_mib, true, o.repeat()) {
        Ok(v) => spread_of(&v).and_then(|f| keep("direct write".into(), f)),
        Err(e) => {
            eprintln!("tuning measure: direct write probe unmeasured: {e}");
            None
        }
    };

    let kafka = if o.kafka {
        progress.next("server CPU per message into Kafka (bench compare, one local broker)");
        measure_kafka(o, states)?
    } else {
        Vec::new()
    };

    Ok(Profile {
        machine,
        measured_at: utc_now(),
        shards: o.shards,
        loadgen_shares_cores: true,
        cpu,
        max_rate_msgs_per_s: max_rate,
        zero_loss_max_msgs_per_s: zero_loss_max,
        max_rate_bytes: RATE_BYTES,
        slo_p99_ms: SLO_P99_MS,
        handshakes_per_cpu_s: handshakes,
        idle_rss_bytes_per_conn: idle_rss,
        writer_cpu_s_per_gb_buffered: spread_of(&buffered)
            .and_then(|f| keep("buffered write".into(), f)),
        writer_cpu_s_per_gb_direct: direct,
        curve,
        kafka,
    })
}

/// ringest into one broker that bench starts (tests/kafka/broker.sh), at
/// [`RATE_BYTES`] and each of [`RECORDS_PER_WRITE`]: `bench compare`'s
/// kafka rows with only ringest, every message counted in the topic.
fn measure_kafka(o: &Options, states: &str) -> Result<Vec<KafkaPoint>, String> {
    let warm_up = o.kafka_warm_up_s().to_string();
    let results = compare_ringest(
        o,
        &o.out.join("kafka-scenarios.toml"),
        &kafka_scenarios_toml(o.shards),
        "kafka",
        states,
        &["--kafka-warm-up", &warm_up],
    )?;
    let mut points = Vec::new();
    for rpw in RECORDS_PER_WRITE {
        let name = kafka_scenario_name(RATE_BYTES, rpw);
        let s = summary(&results, &name)?;
        if s.get("lost").and_then(Value::as_u64) != Some(0)
            || s.get("duplicated").and_then(Value::as_u64) != Some(0)
        {
            return Err(format!(
                "{name}: messages were lost or duplicated; no figure is kept"
            ));
        }
        let cpu = figure(s.get("server_cpu_us_per_msg"))
            .ok_or_else(|| format!("{name}: no server_cpu_us_per_msg in results.json"))?;
        // The broker's figure is per run in bench's JSON, not summarised.
        let broker: Vec<f64> = results
            .get("runs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| r.get("scenario").and_then(Value::as_str) == Some(name.as_str()))
            .filter(|r| r.get("engine").and_then(Value::as_str) == Some("ringest"))
            .filter(|r| r.get("status").and_then(Value::as_str) == Some("ok"))
            .filter(|r| r.get("superseded").and_then(Value::as_bool) != Some(true))
            .filter_map(|r| r.get("broker_cpu_us_per_msg")?.as_f64())
            .collect();
        if let Some(cpu) = within_spread("measure", &format!("kafka cpu {name}"), cpu) {
            points.push(KafkaPoint {
                bytes: RATE_BYTES,
                records_per_write: rpw,
                cpu_us_per_msg: cpu,
                broker_cpu_us_per_msg: spread_of(&broker)
                    .and_then(|f| within_spread("measure", &format!("kafka broker {name}"), f)),
            });
        }
    }
    Ok(points)
}

/// Writes `toml` to `scenarios`, runs `bench compare --only ringest` on it
/// (with `extra` arguments) into `o.out/dir`, and returns its results.json.
fn compare_ringest(
    o: &Options,
    scenarios: &Path,
    toml: &str,
    dir: &str,
    states: &str,
    extra: &[&str],
) -> Result<Value, String> {
    std::fs::write(scenarios, toml).map_err(|e| format!("{}: {e}", scenarios.display()))?;
    let out = o.out.join(dir);
    let (duration, repeat) = (o.duration_s().to_string(), o.repeat().to_string());
    let (scenarios, out_str) = (path_str(scenarios)?, path_str(&out)?);
    let mut args = vec![
        "compare",
        "--only",
        "ringest",
        "--scenarios",
        &scenarios,
        "--duration",
        &duration,
        "--repeat",
        &repeat,
        "--states",
        states,
        "--out",
        &out_str,
    ];
    args.extend_from_slice(extra);
    bench(o, &args)?;
    read_json(&out.join("results.json"))
}

pub fn kafka_scenario_name(bytes: u32, rpw: u32) -> String {
    format!("t-kafka-{bytes}b-{rpw}rpw")
}

/// The kafka scenarios: as [`scenarios_toml`]'s at [`RATE_BYTES`], into a
/// 4-partition topic of bench's broker (bench's kafka settings: acks=all,
/// no compression, the raw frame as the value).
pub fn kafka_scenarios_toml(shards: u32) -> String {
    let mut s = String::from("# Written by tuning measure --kafka.\n");
    for rpw in RECORDS_PER_WRITE {
        s.push_str(&format!(
            "\n[[scenario]]\nname = \"{}\"\ntitle = \"tuning: {RATE_BYTES} B, {rpw} per record, 8 mTLS conns, into Kafka\"\ntransport = \"tls\"\nframing = \"octet-counted\"\nconnections = 8\nsize = {RATE_BYTES}\nrecords_per_write = {rpw}\nkafka = true\nengines = [\"ringest\"]\nextra_global = {{ ringest = \"shards = {shards}\" }}\n",
            kafka_scenario_name(RATE_BYTES, rpw)
        ));
    }
    s
}

pub fn scenario_name(bytes: u32, rpw: u32) -> String {
    format!("t-{bytes}b-{rpw}rpw")
}

/// One bench scenario per size and records per write: 8 mutual-TLS
/// connections, octet-counted, raw output (what `plan` sizes from).
pub fn scenarios_toml(shards: u32) -> String {
    let mut s = String::from("# Written by tuning measure.\n");
    for bytes in SIZES_BYTES {
        for rpw in RECORDS_PER_WRITE {
            s.push_str(&format!(
                "\n[[scenario]]\nname = \"{}\"\ntitle = \"tuning: {bytes} B, {rpw} per record, 8 mTLS conns\"\ntransport = \"tls\"\nframing = \"octet-counted\"\nconnections = 8\nsize = {bytes}\nrecords_per_write = {rpw}\nengines = [\"ringest\"]\nextra_global = {{ ringest = \"shards = {shards}\" }}\n",
                scenario_name(bytes, rpw)
            ));
        }
    }
    s
}

/// (max − min) / median of the values, as a figure; `None` when empty.
pub fn spread_of(values: &[f64]) -> Option<Figure> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Figure {
        value: median,
        spread_pct: spread_pct(v[0], v[n - 1], median),
        repeats: n as u32,
    })
}

/// (max − min) / median, percent; 0 for a median of 0.
fn spread_pct(min: f64, max: f64, median: f64) -> f64 {
    if median > 0.0 {
        (max - min) / median * 100.0
    } else {
        0.0
    }
}

/// bench's `{median, min, max, n}` as a figure.
fn figure(v: Option<&Value>) -> Option<Figure> {
    let v = v?;
    let median = v.get("median")?.as_f64()?;
    let (min, max) = (v.get("min")?.as_f64()?, v.get("max")?.as_f64()?);
    Some(Figure {
        value: median,
        spread_pct: spread_pct(min, max, median),
        repeats: v.get("n")?.as_u64()? as u32,
    })
}

fn summary<'a>(results: &'a Value, scenario: &str) -> Result<&'a Value, String> {
    results
        .get("summary")
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter().find(|s| {
                s.get("scenario").and_then(Value::as_str) == Some(scenario)
                    && s.get("engine").and_then(Value::as_str) == Some("ringest")
            })
        })
        .ok_or_else(|| format!("results.json has no ringest summary for {scenario}"))
}

fn figures(v: &Value) -> Vec<Value> {
    v.get("figures")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn machine(results: &Value) -> Machine {
    let m = results.get("machine");
    let s = |k: &str| {
        m.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string()
    };
    Machine {
        cpu_model: s("cpu"),
        cores: m
            .and_then(|m| m.get("cpus"))
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32,
        kernel: s("kernel"),
    }
}

/// From `bench latency`'s JSON: ringest's points that lost nothing, with
/// loadgen's end-to-end quantiles (µs there, ms here).
fn latency_curve(v: &Value) -> Result<Vec<CurvePoint>, String> {
    let points = v
        .get("points")
        .and_then(Value::as_array)
        .ok_or("latency.json has no points")?;
    let mut curve: Vec<CurvePoint> = points
        .iter()
        .filter(|p| p.get("engine").and_then(Value::as_str) == Some("ringest"))
        .filter(|p| p.get("lost").and_then(Value::as_u64) == Some(0))
        .filter_map(|p| {
            let q = p.get("client_us")?;
            let ms = |k: &str| Some(q.get(k)?.as_f64()? / 1000.0);
            Some(CurvePoint {
                rate_msgs_per_s: p.get("rate_msg_per_s")?.as_f64()?,
                p50_ms: ms("p50")?,
                p99_ms: ms("p99")?,
                p999_ms: ms("p999")?,
            })
        })
        .collect();
    curve.sort_by(|a, b| a.rate_msgs_per_s.total_cmp(&b.rate_msgs_per_s));
    if curve.is_empty() {
        return Err("bench latency gave no point with 0 lost".into());
    }
    Ok(curve)
}

/// `f`, unless its spread is wider than [`SPREAD_MAX_PCT`]: then it is
/// refused, with one line on stderr from `tuning <tool>` naming it.
fn within_spread(tool: &str, name: &str, f: Figure) -> Option<Figure> {
    if f.spread_pct > SPREAD_MAX_PCT {
        eprintln!(
            "tuning {tool}: refused {name}: spread {:.0}% over {} repeats is wider than {SPREAD_MAX_PCT}%",
            f.spread_pct, f.repeats
        );
        return None;
    }
    Some(f)
}

/// ringest's highest rate written with zero loss in `bench latency`'s JSON
/// (its search for the maximum, before the curve; one search, so no spread).
pub fn zero_loss_max(latency: &Value) -> Option<Figure> {
    latency
        .get("searches")?
        .as_array()?
        .iter()
        .find(|s| {
            s.get("engine").and_then(Value::as_str) == Some("ringest")
                && s.get("error").is_none_or(Value::is_null)
        })
        .and_then(|s| s.get("max_msg_per_s")?.as_f64())
        .map(|value| Figure {
            value,
            spread_pct: 0.0,
            repeats: 1,
        })
}

/// Re-reads a finished measurement: `dir` as [`run`] left it (bench's
/// outputs under compare/ and latency/) into `profile`, the profile that
/// run wrote, filling the figures recorded since that profile's format
/// (each point's machine CPU per message, the zero-loss maximum). Nothing
/// is run again and every other figure stays as measured; the same spread
/// rule applies.
pub fn reread(dir: &Path, mut profile: Profile) -> Result<Profile, String> {
    let results = read_json(&dir.join("compare").join("results.json"))?;
    for p in &mut profile.cpu {
        let name = scenario_name(p.bytes, p.records_per_write);
        let s = summary(&results, &name)?;
        p.machine_cpu_us_per_msg = figure(s.get("machine_cpu_us_per_msg"))
            .and_then(|f| within_spread("reread", &format!("machine cpu {name}"), f));
    }
    let latency = read_json(&dir.join("latency").join("latency.json"))?;
    profile.zero_loss_max_msgs_per_s = zero_loss_max(&latency);
    Ok(profile)
}

/// The highest point of the curve whose p99 is within the SLO: a lower
/// bound of the true maximum, at the curve's resolution (one run each,
/// so no spread: repeats = 1).
pub fn max_within_slo(curve: &[CurvePoint]) -> Option<Figure> {
    curve
        .iter()
        .filter(|p| p.p99_ms <= SLO_P99_MS)
        .map(|p| p.rate_msgs_per_s)
        .max_by(f64::total_cmp)
        .map(|r| Figure {
            value: r,
            spread_pct: 0.0,
            repeats: 1,
        })
}

fn bench(o: &Options, args: &[&str]) -> Result<(), String> {
    let bin = o.bin_dir.join("bench");
    let status = Command::new(&bin)
        .args(args)
        .arg("--bin-dir")
        .arg(&o.bin_dir)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !status.success() {
        return Err(format!("bench {} failed: {status}", args.join(" ")));
    }
    Ok(())
}

fn read_json(p: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
}

fn path_str(p: &Path) -> Result<String, String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

fn utc_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_range_over_the_median() {
        let f = spread_of(&[1.0, 1.2, 0.9]).unwrap();
        assert_eq!(f.value, 1.0);
        assert!((f.spread_pct - 30.0).abs() < 1e-9);
        assert_eq!(f.repeats, 3);
        assert_eq!(spread_of(&[]), None);
    }

    /// The search's maximum is ringest's, and only a search that ended
    /// without an error counts.
    #[test]
    fn the_zero_loss_maximum_is_ringests_search_result() {
        let lat: Value = serde_json::from_str(
            r#"{"searches": [
                {"engine": "syslog-ng", "error": null, "max_msg_per_s": 9.0},
                {"engine": "ringest", "error": null, "max_msg_per_s": 3167192.0}
            ]}"#,
        )
        .unwrap();
        let f = zero_loss_max(&lat).expect("found");
        assert_eq!((f.value, f.repeats), (3_167_192.0, 1));
        let failed: Value = serde_json::from_str(
            r#"{"searches": [{"engine": "ringest", "error": "lost 3", "max_msg_per_s": 1.0}]}"#,
        )
        .unwrap();
        assert_eq!(zero_loss_max(&failed), None);
        assert_eq!(zero_loss_max(&Value::Null), None);
    }

    #[test]
    fn the_scenarios_cover_every_point() {
        let t = scenarios_toml(1);
        for b in SIZES_BYTES {
            for r in RECORDS_PER_WRITE {
                assert!(t.contains(&format!("name = \"{}\"", scenario_name(b, r))));
            }
        }
        assert!(t.contains("ringest = \"shards = 1\""));
    }
}
