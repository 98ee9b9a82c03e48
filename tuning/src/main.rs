//! `tuning`: capacity planning for ringest.
//!
//! `tuning check` audits this host against a config: every kernel and
//! process setting that bites a central log server first, current against
//! recommended, with the command that changes it. It exits 1 when the host
//! would fail at this config (see [`check::Status::Fail`]).
//!
//! `tuning plan` turns a measured profile and a workload into cores, nodes,
//! RAM, disk, network, the reconnect storm and the config to set, each
//! number with the measurement it came from ([`plan`]).

mod check;
mod facts;
mod measure;
mod plan;
mod plan_render;
mod profile;
mod validate;
mod workload;
mod write_probe;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "tuning", version, about = "Capacity planning for ringest")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Audit this host: current against recommended values, with the
    /// command to change each. Exit 1 when the host would fail at the
    /// config (open files below max_connections, io_uring disabled, kTLS
    /// required but absent).
    Check {
        /// The ringest config to check against (default: the embedded
        /// default's limits).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure this host with a ringest that bench starts (loopback only),
    /// and write DIR/profile.json: CPU per message by size, the rate at the
    /// p99 SLO and the latency curve, handshakes, idle memory, write cost.
    Measure {
        #[arg(long, value_name = "DIR", default_value = "tuning-profile")]
        out: PathBuf,
        /// The ringest `shards` to measure with.
        #[arg(long, default_value_t = 1)]
        shards: u32,
        /// Short runs and fewer repeats (about a minute; for CI).
        #[arg(long)]
        quick: bool,
        /// Where bench, ringest and loadgen are (default: next to tuning).
        #[arg(long, value_name = "DIR")]
        bin_dir: Option<PathBuf>,
        /// Also measure ringest into Kafka: bench starts one Apache Kafka
        /// broker on loopback (tests/kafka/broker.sh; the jars and Java
        /// 17) and needs ringest and bench built with their `kafka`
        /// features.
        #[arg(long)]
        kafka: bool,
    },
    /// Re-read a finished `tuning measure` folder (its profile.json and
    /// bench's outputs beside it) and print the profile with the figures
    /// recorded since it was written (machine CPU per message, the
    /// zero-loss maximum). Nothing is measured again.
    Reread {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// The model's prediction for the target profile's shards, made from
    /// the base profile, against what the target measured (Markdown).
    Validate {
        #[arg(long, value_name = "FILE")]
        base: PathBuf,
        #[arg(long, value_name = "FILE")]
        target: PathBuf,
    },
    /// A capacity plan for a workload from a measured profile: Markdown on
    /// stdout, or plan.md, plan.json and curve.svg in --out.
    Plan {
        /// The profile `tuning measure` wrote (JSON).
        #[arg(long, value_name = "FILE")]
        profile: PathBuf,
        /// The workload (TOML; see tuning/examples/workload-2m.toml).
        #[arg(long, value_name = "FILE")]
        workload: PathBuf,
        /// Write plan.md, plan.json and curve.svg here.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Measure {
            out,
            shards,
            quick,
            bin_dir,
            kafka,
        } => {
            let bin_dir = bin_dir.unwrap_or_else(|| {
                std::env::current_exe()
                    .ok()
                    .and_then(|e| e.parent().map(PathBuf::from))
                    .unwrap_or_default()
            });
            let o = measure::Options {
                out,
                bin_dir,
                shards,
                quick,
                kafka,
            };
            match measure::run(&o).and_then(|p| {
                let f = o.out.join("profile.json");
                let json = serde_json::to_string_pretty(&p).map_err(|e| e.to_string())?;
                std::fs::write(&f, json).map_err(|e| format!("{}: {e}", f.display()))?;
                Ok(f)
            }) {
                Ok(f) => {
                    println!("wrote {}", f.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tuning measure: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Reread { dir } => {
            match read_profile(&dir.join("profile.json"))
                .and_then(|p| measure::reread(&dir, p))
                .and_then(|p| serde_json::to_string_pretty(&p).map_err(|e| e.to_string()))
            {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tuning reread: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Validate { base, target } => match (read_profile(&base), read_profile(&target)) {
            (Ok(b), Ok(t)) => {
                print!("{}", validate::markdown(&b, &t, &validate::compare(&b, &t)));
                ExitCode::SUCCESS
            }
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("tuning validate: {e}");
                ExitCode::from(2)
            }
        },
        Command::Plan {
            profile,
            workload,
            out,
        } => match run_plan(&profile, &workload, out.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tuning: {e}");
                ExitCode::from(2)
            }
        },
        Command::Check { config, json } => {
            let config = match config {
                Some(f) => match ringest::config::Config::load(&f) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        eprintln!("tuning: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => None,
            };
            let wants = check::Wants::from_config(config.as_ref());
            let facts = facts::HostFacts::read();
            let report = check::run(&facts, &wants);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", check::render_text(&report));
            }
            if report.iter().any(|c| c.status == check::Status::Fail) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

fn run_plan(
    profile: &std::path::Path,
    workload: &std::path::Path,
    out: Option<&std::path::Path>,
) -> Result<(), String> {
    let text = std::fs::read_to_string(profile)
        .map_err(|e| format!("cannot read {}: {e}", profile.display()))?;
    let prof: profile::Profile =
        serde_json::from_str(&text).map_err(|e| format!("profile {}: {e}", profile.display()))?;
    let w =
        workload::Workload::load(workload).map_err(|e| format!("{}: {e}", workload.display()))?;
    let p = plan::plan(&prof, &w, &plan::EngineSizes::from_engine_defaults());
    let md = plan_render::markdown(&p, &prof, &w);
    let Some(dir) = out else {
        print!("{md}");
        return Ok(());
    };
    let write = |name: &str, body: &str| {
        let f = dir.join(name);
        std::fs::write(&f, body).map_err(|e| format!("cannot write {}: {e}", f.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write("plan.md", &md)?;
    let json = serde_json::to_string_pretty(&p).map_err(|e| e.to_string())?;
    write("plan.json", &json)?;
    write(
        "curve.svg",
        &plan_render::svg(&prof, p.operating_rate_per_shard),
    )?;
    println!(
        "wrote plan.md, plan.json and curve.svg to {}",
        dir.display()
    );
    Ok(())
}

fn read_profile(p: &std::path::Path) -> Result<profile::Profile, String> {
    let text =
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("profile {}: {e}", p.display()))
}
