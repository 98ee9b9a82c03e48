//! `tuning check` against the real host, through the binary.

use std::os::unix::process::CommandExt;
use std::process::Command;

fn tuning() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tuning"))
}

/// A config whose max_connections exceeds the open-files limit makes
/// `check` exit non-zero and say how to fix it.
#[test]
fn max_connections_over_the_open_file_limit_fails_with_the_fix() {
    let dir = std::env::temp_dir().join(format!("tuning-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("ringest.toml");
    std::fs::write(
        &cfg,
        "[[source]]\nname = \"tcp\"\nlisten = \"127.0.0.1:6514\"\ntransport = \"tcp\"\n\
         max_connections = 50000\n[[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x.log\"\n",
    )
    .expect("config");
    let mut cmd = tuning();
    cmd.args(["check", "--config"]).arg(&cfg);
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run tuning");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL open files"), "{text}");
    assert!(text.contains("LimitNOFILE="), "{text}");

    // The same host with a config inside the limit passes that check.
    let mut cmd = tuning();
    cmd.args(["check", "--json", "--config"]).arg(&cfg);
    let out = cmd.output().expect("run tuning");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let open = json
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == "open files (RLIMIT_NOFILE)"))
        .expect("the open-files check");
    assert!(open["status"].is_string());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_config_is_a_clear_error_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("tuning-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("ringest.toml");
    std::fs::write(
        &cfg,
        "[[source]]\nname = \"tcp\"\nlisten = \"127.0.0.1:6514\"\ntransport = \"tcp\"\n\
         max_connections = 0\n[[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"x.log\"\n",
    )
    .expect("config");
    let out = tuning()
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("max_connections"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
