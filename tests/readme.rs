//! The README's first commands, run the way a new user runs them (issue 18):
//! `ringest serve` with no config in an empty folder, the `openssl s_client`
//! command it prints, and the message found in `ringest-data/messages.log`;
//! then the same on a second start that reuses the dev PKI.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::server::{bin, free_port, temp_dir};

/// The repository root (this file's crate is `tests/`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// A running `ringest` with its stderr collected by a thread.
struct Running {
    child: Child,
    stderr: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl Running {
    fn start(cwd: &Path, args: &[String]) -> Running {
        let mut child = Command::new(bin("ringest"))
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringest");
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let stdout = child.stdout.take().expect("stdout");
        for pipe in [Box::new(stderr) as Box<dyn Read + Send>, Box::new(stdout)] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    match line {
                        Ok(l) => {
                            let _ = tx.send(l);
                        }
                        Err(_) => break,
                    }
                }
            });
        }
        Running {
            child,
            stderr: rx,
            seen: String::new(),
        }
    }

    /// Waits (bounded) for "ringest: ready"; returns everything printed so far.
    fn wait_ready(&mut self) -> &str {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.drain();
                panic!("ringest exited with {st} before ready:\n{}", self.seen);
            }
            match self.stderr.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => {
                    self.seen.push_str(&l);
                    self.seen.push('\n');
                    if l.contains("ringest: ready") {
                        std::thread::sleep(Duration::from_millis(100));
                        self.drain();
                        return &self.seen;
                    }
                }
                Err(_) => continue,
            }
        }
        panic!("ringest not ready within 30 s:\n{}", self.seen);
    }

    fn drain(&mut self) {
        while let Ok(l) = self.stderr.try_recv() {
            self.seen.push_str(&l);
            self.seen.push('\n');
        }
    }

    fn stop(mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                assert!(st.success(), "ringest exit status {st}");
                return;
            }
            assert!(Instant::now() < deadline, "ringest did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shell command the engine printed after "send a test message:": a
/// line starting with `echo`, and its `\`-continued lines.
fn printed_command(output: &str) -> String {
    let mut lines = output
        .lines()
        .skip_while(|l| !l.contains("send a test message"))
        .skip(1);
    let mut cmd = String::new();
    for l in lines.by_ref() {
        let l = l.trim();
        match l.strip_suffix('\\') {
            Some(part) => {
                cmd.push_str(part);
                cmd.push(' ');
            }
            None => {
                cmd.push_str(l);
                break;
            }
        }
    }
    assert!(
        cmd.starts_with("echo ") && cmd.contains("openssl s_client"),
        "no send command printed:\n{output}"
    );
    cmd
}

fn run_shell(cwd: &Path, cmd: &str) {
    let out = Command::new("timeout")
        .args(["20", "sh", "-c", cmd])
        .current_dir(cwd)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_for_line(file: &Path, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::fs::read_to_string(file).is_ok_and(|t| t.contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The README's first code block, as lines of commands (comments removed).
fn readme_commands() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let block: Vec<&str> = text
        .split("```")
        .nth(1)
        .expect("a code block")
        .lines()
        .skip(1)
        .collect();
    block
        .iter()
        .map(|l| l.split(" #").next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Serves, sends the printed command's message, and finds it in the file.
fn serve_and_send(cwd: &Path, args: &[String], tag: &str) {
    let mut server = Running::start(cwd, args);
    let output = server.wait_ready().to_string();
    let cmd = printed_command(&output).replace("hello from openssl", tag);
    run_shell(cwd, &cmd);
    let log = cwd.join("ringest-data/messages.log");
    assert!(
        wait_for_line(&log, tag),
        "{tag:?} not in {}; ringest said:\n{output}",
        log.display()
    );
    server.stop();
}

/// The README's first command is `cargo run --release -p ringest -- serve`.
/// The test runs the binary that command runs, with the same arguments, in
/// an empty folder: building a second, release copy of the workspace inside
/// the test would double CI's build time and prove nothing more about the
/// engine. The cargo prefix is checked so that the README cannot drift to
/// another package or binary unnoticed. The second line (`sudo
/// tests/install-deps.sh && tests/run-all.sh`) is what CI runs to get here,
/// so it is not run from inside itself.
#[test]
fn readme_first_command_serves_and_the_printed_openssl_command_is_written_twice() {
    let cmds = readme_commands();
    let first = cmds.first().expect("a first command");
    let args = first
        .strip_prefix("cargo run --release -p ringest -- ")
        .unwrap_or_else(|| panic!("README's first command changed: {first}"));
    let args: Vec<String> = args.split_whitespace().map(String::from).collect();
    assert_eq!(args, ["serve"], "README's first command: {first}");
    assert!(
        cmds.get(1)
            .is_some_and(|c| c.contains("tests/install-deps.sh") && c.contains("tests/run-all.sh")),
        "README's second command: {:?}",
        cmds.get(1)
    );
    let dir = temp_dir("readme-first");
    // The embedded default listens on the fixed ports 6514 and 9514.
    serve_and_send(&dir, &args, "first start of the README command");
    assert!(dir.join("ringest-data/pki/ca.pem").exists());
    let ca_before = std::fs::read(dir.join("ringest-data/pki/ca.pem")).expect("ca");
    serve_and_send(&dir, &args, "second start reusing the dev PKI");
    let ca_after = std::fs::read(dir.join("ringest-data/pki/ca.pem")).expect("ca");
    assert_eq!(ca_before, ca_after, "the dev PKI was reused");
    // An incomplete dev PKI (a file lost) is regenerated, not half-used.
    std::fs::remove_file(dir.join("ringest-data/pki/client-key.pem")).expect("rm");
    serve_and_send(&dir, &args, "third start after a PKI file was lost");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--config` given as a relative path from another working directory:
/// relative `cert_file`, `ca_file` and output `path` resolve against the
/// config file's folder, as the README says.
#[test]
fn relative_config_path_resolves_files_against_the_config_folder() {
    let dir = temp_dir("readme-relative");
    let conf_dir = dir.join("etc/ringest");
    let elsewhere = dir.join("somewhere/else");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let pki = e2e::pki::Pki::generate(&conf_dir.join("pki"));
    let (port, stats) = (free_port(), free_port());
    let config = format!(
        r#"[[source]]
name = "tls"
listen = "127.0.0.1:{port}"
transport = "tls"
[source.tls]
cert_file = "pki/{}"
key_file = "pki/{}"
ca_file = "pki/{}"
peer_verify = "required-trusted"

[[destination]]
name = "messages"
type = "file"
path = "out/messages.log"

[stats]
listen = "127.0.0.1:{stats}"
"#,
        file_name(&pki.server_cert),
        file_name(&pki.server_key),
        file_name(&pki.ca),
    );
    std::fs::write(conf_dir.join("ringest.toml"), config).expect("config");
    let rel = "../../etc/ringest/ringest.toml".to_string();
    let check = Command::new(bin("ringest"))
        .args(["check-config", "--config", &rel])
        .current_dir(&elsewhere)
        .output()
        .expect("check-config");
    assert!(
        check.status.success(),
        "check-config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut server = Running::start(&elsewhere, &["serve".into(), "--config".into(), rel]);
    server.wait_ready();
    let cmd = format!(
        "echo '<14>1 - h a - - - relative config' | openssl s_client -quiet -no_ign_eof \
         -connect 127.0.0.1:{port} -CAfile {} -cert {} -key {}",
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    run_shell(&elsewhere, &cmd);
    assert!(wait_for_line(
        &conf_dir.join("out/messages.log"),
        "relative config"
    ));
    assert!(
        !elsewhere.join("out").exists(),
        "nothing written beside the cwd"
    );
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}
