//! The `ringest` command line: parse arguments, load the config, serve.

use std::path::PathBuf;
use std::process::ExitCode;

use ringest::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage:
  ringest serve [--config FILE]     serve (no --config: embedded dev default under ./ringest-data)
  ringest check-config --config FILE
  ringest reload [--pid PID]        send SIGHUP: reload TLS files, reopen outputs";

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() -> ExitCode {
    ringest::logger::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("");
    let config_file = arg_value(&args, "--config").map(PathBuf::from);
    let result = match cmd {
        "serve" => match config_file {
            Some(f) => Config::load(&f).map_err(|e| e.to_string()).and_then(ringest::runtime::serve),
            None => Err("serve without --config: not yet available".into()),
        },
        "check-config" => match config_file {
            Some(f) => Config::load(&f).map(|_| println!("{}: ok", f.display())).map_err(|e| e.to_string()),
            None => Err(format!("check-config needs --config FILE\n{USAGE}")),
        },
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
