//! The `ringest` command line: parse arguments, load the config, serve.

use std::path::PathBuf;
use std::process::ExitCode;

use ringest::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage:
  ringest serve [--config FILE]     serve (no --config: embedded dev default under ./ringest-data)
  ringest check-config --config FILE
  ringest reload [--pid PID]        send SIGHUP: reload TLS files, reopen outputs
  ringest options                   print every config option as a Markdown table";

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> ExitCode {
    ringest::logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("");
    let config_file = arg_value(&args, "--config").map(PathBuf::from);
    let result = match cmd {
        "serve" => match config_file {
            Some(f) => Config::load(&f).map_err(|e| e.to_string()).and_then(ringest::runtime::serve),
            None => ringest::default_config::load(std::path::Path::new(ringest::default_config::DATA_DIR)).and_then(
                |(config, pki)| {
                    eprintln!("ringest: no --config; serving the embedded dev default (mutual TLS on 127.0.0.1:6514)");
                    eprintln!("{}", ringest::default_config::hint(&pki));
                    ringest::runtime::serve(config)
                },
            ),
        },
        "check-config" => match config_file {
            Some(f) => Config::load(&f).map(|_| println!("{}: ok", f.display())).map_err(|e| e.to_string()),
            None => Err(format!("check-config needs --config FILE\n{USAGE}")),
        },
        "options" => {
            print!("{}", ringest::config::options::markdown_table());
            Ok(())
        }
        "reload" => reload(arg_value(&args, "--pid")),
        _ => Err(USAGE.to_string()),
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
fn reload(pid: Option<String>) -> Result<(), String> {
    let pids: Vec<i32> = match pid {
        Some(p) => vec![p
            .parse()
            .map_err(|_| format!("--pid: {p:?} is not a process id"))?],
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
