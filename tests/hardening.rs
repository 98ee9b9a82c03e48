//! End-to-end checks of the hardening items of issue #9, through the real
//! binary: `check-config` refusing trust settings that authenticate nobody,
//! CRLs as `openssl ca -gencrl` writes them, and the stats endpoint when the
//! process is out of file descriptors.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::loopback;
use e2e::server::{bin, free_port, temp_dir};

/// Starts `ringest serve` with at most `fds_max` open descriptors and waits
/// for "ringest: ready".
fn serve_with_fd_limit(dir: &Path, config: &str, fds_max: u64) -> Child {
    let cfg = dir.join("ringest.toml");
    std::fs::write(&cfg, config).unwrap();
    let stderr = std::fs::File::create(dir.join("ringest.stderr")).unwrap();
    let mut cmd = Command::new(bin("ringest"));
    cmd.args(["serve", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(stderr);
    // SAFETY: setrlimit is async-signal-safe, and the closure touches
    // nothing but its own copy of the limit.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: fds_max,
                rlim_max: fds_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("ringest: ready"));
    assert!(ready, "ringest did not start");
    child
}

/// CPU time (user + system, in clock ticks) of the thread named `name`.
fn thread_cpu_ticks(pid: u32, name: &str) -> u64 {
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        // Fields after the ")" that closes the command name: state is the
        // 3rd field overall, utime the 14th and stime the 15th.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        return fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    panic!("no thread {name} in process {pid}");
}

/// Out of descriptors, `accept` on the stats port fails with EMFILE and the
/// connection stays queued, so retrying at once fails again: the endpoint
/// must back off, not burn a core.
#[test]
fn stats_endpoint_does_not_spin_on_emfile() {
    let dir = temp_dir("emfile");
    let (tcp, stats) = (free_port(), free_port());
    let config = format!(
        "shards = 1\n[[source]]\nname = \"tcp\"\nlisten = \"127.0.0.1:{tcp}\"\ntransport = \"tcp\"\n\
         [[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"out.log\"\nfsync = \"never\"\n\
         [stats]\nlisten = \"127.0.0.1:{stats}\"\n"
    );
    let mut child = serve_with_fd_limit(&dir, &config, 64);
    // Use up the engine's descriptors with connections it accepts.
    let hogs: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect(loopback(tcp)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // The shard, retrying its accept of the queued connections, takes every
    // descriptor that comes free. Each stats request frees one for a moment
    // and the stats thread usually takes it back at once; repeat until the
    // shard wins and a request finds the stats thread without a descriptor.
    let mut stuck = None;
    for _ in 0..200 {
        let mut c = TcpStream::connect(loopback(stats)).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let _ = c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
        let mut answer = Vec::new();
        if c.read_to_end(&mut answer).is_err() || answer.is_empty() {
            stuck = Some(c);
            break;
        }
    }
    assert!(
        stuck.is_some(),
        "the stats endpoint never ran out of descriptors"
    );
    let before = thread_cpu_ticks(child.id(), "ringest-stats");
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = thread_cpu_ticks(child.id(), "ringest-stats") - before;
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let elapsed = window.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    drop(hogs);
    let stderr = std::fs::read_to_string(dir.join("ringest.stderr")).unwrap();
    let accept_lines = stderr
        .lines()
        .filter(|l| l.contains("stats endpoint: accept failed"))
        .count();
    // A spinning thread uses ~all of the window; a backing-off one ~none.
    assert!(
        used * 10 < ticks_per_s * elapsed.as_secs(),
        "stats thread used {used} ticks in {elapsed:?} ({ticks_per_s}/s)"
    );
    assert_eq!(accept_lines, 1, "EMFILE must be hit, and logged once");
    let _ = std::fs::remove_dir_all(&dir);
}
