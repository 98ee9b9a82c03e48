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
#[command(name = "ringest", version, about, after_long_help = FILES_AND_SIGNALS)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The man page's closing section (and `--help`'s), about the packaged install.
const FILES_AND_SIGNALS: &str = "\
Files (Debian package): /etc/ringest/ringest.toml (the config; `ringest options` lists every key), \
/etc/ringest/pki/ (server certificate, key and client CA), /var/log/ringest/ (output), \
ringest.service (systemd unit), /etc/logrotate.d/ringest.

Signals: SIGHUP reloads the TLS files for new handshakes and reopens the output files \
(`ringest reload`, `systemctl reload ringest`); SIGTERM or SIGINT stops accepting, drains \
open connections for up to drain_timeout_ms, writes and syncs everything, and exits.

Exit status: 0 when everything read was written; 2 on a config or start-up error, or when \
something read could not be written (the last line on stderr says what).";

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
        #[arg(long, conflicts_with = "config")]
        pid: Option<i32>,
        /// Only the `ringest serve` processes started with this --config
        /// (as logrotate's snippet does, so other instances are left alone).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Succeed when no matching server runs (a rotation while the service is stopped).
        #[arg(long)]
        if_running: bool,
    },
    /// Print every config option as a Markdown table.
    Options,
    /// Write the man pages (ringest.1 and one per subcommand) into DIR.
    #[command(hide = true)]
    Man {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    ringest::logger::init();
    let cli = Cli::parse();
    let result =
        match cli.command {
            Command::Serve { config: Some(f) } => Config::load(&f)
                .map_err(|e| e.to_string())
                .and_then(|config| {
                    ringest::logger::set_format(config.log_format);
                    ringest::runtime::serve(config)
                }),
            Command::Serve { config: None } => ringest::default_config::load(std::path::Path::new(
                ringest::default_config::DATA_DIR,
            ))
            .and_then(|(config, pki)| {
                eprintln!(
                    "ringest: no --config; serving the embedded dev default \
                         (mutual TLS on 127.0.0.1:6514)"
                );
                eprintln!("{}", ringest::default_config::hint(&pki));
                ringest::runtime::serve(config)
            }),
            // The same plan `serve` builds: every TLS file is read and checked.
            Command::CheckConfig { config } => Config::load(&config)
                .map_err(|e| e.to_string())
                .and_then(Plan::build)
                .map(|plan| {
                    let c = &plan.config;
                    println!(
                        "{}: ok ({} shards, {} writers, max_queue_delay_ms {})",
                        config.display(),
                        c.shard_count(),
                        c.writer_count(),
                        c.max_queue_delay_ms
                    )
                }),
            Command::Options => {
                print!("{}", ringest::config::options::markdown_table());
                Ok(())
            }
            Command::Reload {
                pid,
                config,
                if_running,
            } => reload(pid, config.as_deref(), if_running),
            Command::Man { dir } => man_pages(&dir),
        };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringest: {e}");
            ExitCode::from(2)
        }
    }
}

/// `ringest man --dir DIR`: the man pages, generated from the CLI definitions above.
fn man_pages(dir: &std::path::Path) -> Result<(), String> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Whether a process's NUL-separated command line is `ringest serve`, and
/// when `config` is given, `--config CONFIG` (or `--config=CONFIG`) too.
fn is_ringest_serve(cmdline: &[u8], config: Option<&std::path::Path>) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let parts: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    let exe = parts.first().copied().unwrap_or_default();
    if !exe.ends_with(b"ringest") || parts.get(1).copied() != Some(b"serve".as_slice()) {
        return false;
    }
    let Some(config) = config else { return true };
    let want = config.as_os_str().as_bytes();
    parts
        .windows(2)
        .any(|w| w[0] == b"--config" && w[1] == want)
        || parts
            .iter()
            .any(|p| p.strip_prefix(b"--config=".as_slice()) == Some(want))
}

/// `ringest reload`: SIGHUP to the given pid, or to every `ringest serve`
/// found in /proc (only those with `--config FILE` when given).
fn reload(
    pid: Option<i32>,
    config: Option<&std::path::Path>,
    if_running: bool,
) -> Result<(), String> {
    let pids: Vec<i32> = match pid {
        Some(p) => vec![p],
        None => std::fs::read_dir("/proc")
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                is_ringest_serve(&cmd, config)
            })
            .collect(),
    };
    if pids.is_empty() {
        if if_running {
            return Ok(());
        }
        return Err(match config {
            Some(c) => format!("no running `ringest serve --config {}` found", c.display()),
            None => "no running `ringest serve` found; pass --pid".into(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_matches_serve_and_its_config() {
        let c = Some(std::path::Path::new("/etc/ringest/ringest.toml"));
        let serve = b"/usr/bin/ringest\0serve\0--config\0/etc/ringest/ringest.toml\0";
        assert!(is_ringest_serve(serve, None));
        assert!(is_ringest_serve(serve, c));
        let eq = b"ringest\0serve\0--config=/etc/ringest/ringest.toml\0";
        assert!(is_ringest_serve(eq, c));
        let other = b"/usr/bin/ringest\0serve\0--config\0/tmp/other.toml\0";
        assert!(is_ringest_serve(other, None));
        assert!(!is_ringest_serve(other, c));
        assert!(!is_ringest_serve(b"/usr/bin/ringest\0reload\0", None));
        assert!(!is_ringest_serve(b"/usr/bin/vim\0serve\0", None));
    }

    #[test]
    fn man_pages_cover_every_visible_subcommand() {
        let dir = std::env::temp_dir().join(format!("ringest-man-{}", std::process::id()));
        man_pages(&dir).expect("man pages");
        for page in [
            "ringest.1",
            "ringest-serve.1",
            "ringest-check-config.1",
            "ringest-reload.1",
            "ringest-options.1",
        ] {
            let text = std::fs::read_to_string(dir.join(page)).expect(page);
            assert!(text.starts_with(".ie"), "{page} is roff");
        }
        assert!(
            !dir.join("ringest-man.1").exists(),
            "the man subcommand is hidden"
        );
        let main = std::fs::read_to_string(dir.join("ringest.1")).expect("ringest.1");
        assert!(main.contains("/etc/ringest/ringest.toml"), "{main}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
