//! Starts the real `ringest` binary with a config in a temporary folder and
//! talks to it the way an operator would: files, signals, /metrics.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The workspace's built binary (the README's test command builds it first).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// A loopback port nothing listens on now, and never handed out before in
/// this test process: the kernel may give a just-released port again, and a
/// test that asks for several (one per source) must get distinct ones (a
/// config with one port twice is refused at load).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
    panic!("no loopback port not handed out before in 1000 tries");
}

/// A fresh folder under the target dir, removed on success only (kept for a failed test's post-mortem).
pub fn temp_dir(name: &str) -> PathBuf {
    let base = bin_dir()
        .join("e2e-tmp")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("temp dir");
    base
}

fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// How to start the binary besides its config.
#[derive(Default)]
pub struct Launch {
    pub env: Vec<(String, String)>,
    /// Soft and hard RLIMIT_NOFILE for the server (as `ulimit -n`).
    pub nofile: Option<u64>,
}

pub struct Server {
    pub child: Child,
    pub dir: PathBuf,
    pub stats: SocketAddr,
    pub stderr_path: PathBuf,
}

impl Server {
    /// Writes `config` to DIR/ringest.toml, starts `ringest serve`, waits for "ringest: ready".
    pub fn start(dir: &Path, config: &str) -> Server {
        Self::try_start(dir, config).unwrap_or_else(|e| panic!("ringest did not start: {e}"))
    }

    pub fn try_start(dir: &Path, config: &str) -> Result<Server, String> {
        Self::try_start_with(dir, config, &Launch::default())
    }

    /// Like [`Server::start`], with extra environment or a lower open-file limit.
    pub fn start_with(dir: &Path, config: &str, launch: &Launch) -> Server {
        Self::try_start_with(dir, config, launch)
            .unwrap_or_else(|e| panic!("ringest did not start: {e}"))
    }

    pub fn try_start_with(dir: &Path, config: &str, launch: &Launch) -> Result<Server, String> {
        let cfg = dir.join("ringest.toml");
        std::fs::write(&cfg, config).map_err(|e| e.to_string())?;
        let stderr_path = dir.join("ringest.stderr");
        let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
        let stats = config
            .lines()
            .skip_while(|l| l.trim() != "[stats]")
            .find_map(|l| {
                l.trim()
                    .strip_prefix("listen = \"")
                    .and_then(|r| r.strip_suffix('"'))
                    .map(String::from)
            })
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr"));
        let mut cmd = Command::new(bin("ringest"));
        cmd.args(["serve", "--config"])
            .arg(&cfg)
            .env("RINGEST_LOG", "debug")
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(nofile) = launch.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: nofile,
                        rlim_max: nofile,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                match line {
                    Ok(l) if l.contains("ringest: ready") => {
                        let _ = tx.send(true);
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        let ready = rx.recv_timeout(Duration::from_secs(20)).unwrap_or(false);
        if !ready {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            return Err(format!("not ready; stderr:\n{err}"));
        }
        Ok(Server {
            child,
            dir: dir.to_path_buf(),
            stats,
            stderr_path,
        })
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        let mut s =
            TcpStream::connect_timeout(&self.stats, Duration::from_secs(2)).expect("stats connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
            .expect("stats write");
        let mut body = String::new();
        s.read_to_string(&mut body).expect("stats read");
        body
    }

    /// The value of the sample whose name and labels start with `prefix` (e.g.
    /// `ringest_messages_written_total{source="tls"`), summed over matches.
    pub fn metric(&self, prefix: &str) -> u64 {
        metric_in(&self.metrics(), prefix)
    }

    /// Polls `metric(prefix)` until it reaches `want` or `timeout` passes; returns the last value.
    pub fn wait_metric(&self, prefix: &str, want: u64, timeout: Duration) -> u64 {
        let start = Instant::now();
        loop {
            let v = self.metric(prefix);
            if v >= want || start.elapsed() >= timeout {
                return v;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's CPU time so far (user + system), from /proc.
    pub fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        // utime and stime are fields 14 and 15 of the line (11, 12 after the name).
        let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
        // SAFETY: sysconf with a valid name.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        ticks as f64 / hz
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, then wait (bounded) for exit.
    pub fn stop(mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!("ringest did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn metric_in(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Lines in a file (0 if missing).
pub fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0)
}
