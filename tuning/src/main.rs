//! `tuning`: capacity planning for ringest.
//!
//! `tuning check` audits this host against a config: every kernel and
//! process setting that bites a central log server first, current against
//! recommended, with the command that changes it. It exits 1 when the host
//! would fail at this config (see [`check::Status::Fail`]).

mod check;
mod facts;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
