//! The `ringest` command line: parse arguments, load the config, serve.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringest::config::Config;
use ringest::plan::Plan;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Syslog over TLS for central log servers.
#[derive(Parser, Debug)]
#[command(name = "ringest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve: receive syslog over TLS/TCP and write it to the destinations.
    /// Without --config: the embedded dev default under ./ringest-data
    /// (mutual TLS on 127.0.0.1:6514, a generated dev PKI).
    Serve {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate a config (every check `serve` makes before listening); print "FILE: ok".
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Send SIGHUP to a running `ringest serve`: reload TLS files for new
    /// handshakes and reopen output files (logrotate).
    Reload {
        /// The server's pid; default: every `ringest serve` found in /proc.
        #[arg(long)]
        pid: Option<i32>,
    },
    /// Print every config option as a Markdown table.
    Options,
}

fn main() -> ExitCode {
    ringest::logger::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config: Some(f) } => Config::load(&f)
            .map_err(|e| e.to_string())
            .and_then(ringest::runtime::serve),
        Command::Serve { config: None } => {
            ringest::default_config::load(std::path::Path::new(ringest::default_config::DATA_DIR))
                .and_then(|(config, pki)| {
                    eprintln!(
                        "ringest: no --config; serving the embedded dev default \
                         (mutual TLS on 127.0.0.1:6514)"
                    );
                    eprintln!("{}", ringest::default_config::hint(&pki));
                    ringest::runtime::serve(config)
                })
        }
        // The same plan `serve` builds: every TLS file is read and checked.
        Command::CheckConfig { config } => Config::load(&config)
            .map_err(|e| e.to_string())
            .and_then(Plan::build)
            .map(|_| println!("{}: ok", config.display())),
        Command::Options => {
            print!("{}", ringest::config::options::markdown_table());
            Ok(())
        }
        Command::Reload { pid } => reload(pid),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringest: {e}");
            ExitCode::from(2)
        }
    }
}

/// `ringest reload`: SIGHUP to the given pid, or to every `ringest serve` found in /proc.
fn reload(pid: Option<i32>) -> Result<(), String> {
    let pids: Vec<i32> = match pid {
        Some(p) => vec![p],
        None => std::fs::read_dir("/proc")
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                let mut parts = cmd.split(|&b| b == 0);
                let exe = parts.next().unwrap_or_default();
                exe.ends_with(b"ringest") && parts.next() == Some(b"serve".as_slice())
            })
            .collect(),
    };
    if pids.is_empty() {
        return Err("no running `ringest serve` found; pass --pid".into());
    }
    for p in pids {
        // SAFETY: kill(2) with a plain pid and signal number.
        if unsafe { libc::kill(p, libc::SIGHUP) } != 0 {
            return Err(format!(
                "SIGHUP to {p}: {}",
                std::io::Error::last_os_error()
            ));
        }
        println!("sent SIGHUP to {p}");
    }
    Ok(())
}
