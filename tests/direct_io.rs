//! End-to-end: `io = "direct"` with the real binary.
//!
//! The direct case writes onto a small ext4 image mounted on a loop device
//! (root only; the test fails when it cannot mount), so it runs on a file
//! system that takes `O_DIRECT` wherever the target folder lives. It
//! appends numbered lines of odd sizes, crossing 4 KiB blocks, rotates the
//! file with a rename and SIGHUP in the middle, and sends the last part
//! just before SIGTERM; after every step the file must hold exactly the
//! bytes written (size included, so no block padding), and a `tail -F`
//! reader running all along must have seen every line, in order, once.
//!
//! The full-disk case fills that image (a file whose last line a crash
//! tore is there first): the writes cut short by ENOSPC must resume at the
//! byte where they stopped once space returns, with no line torn, glued or
//! written twice, and the torn line ended by one newline first.
//!
//! The pool case runs two shards with a writer each on one direct file:
//! the writers must share it (one pair of descriptors, one offset), and
//! the lines of 16 concurrent connections must each land whole, once and
//! in their connection's order, with the size exact.
//!
//! The fallback case mounts a ramfs, which refuses `O_DIRECT` (EINVAL at
//! open). tmpfs is not used: since Linux 6.6 it accepts `O_DIRECT` opens.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::loopback;
use e2e::server::{free_port, metric_in, temp_dir, Server};

/// Lines per part: before the rotation, after it, and before SIGTERM.
const PART_MESSAGES: usize = 150;
const IMAGE_BYTES: u64 = 32 << 20;
const DEST: &str = "destination=\"out\"";

/// What the filler leaves free on the image in the full-disk case: less
/// than the messages need.
const FREE_BYTES: u64 = 256 << 10;

fn config(tcp: u16, stats: u16) -> String {
    config_with(tcp, stats, 1)
}

/// `shards` shards, each with a writer of its own.
fn config_with(tcp: u16, stats: u16, shards: usize) -> String {
    format!(
        r#"shards = {shards}
writers = {shards}
drain_timeout_ms = 3000

[[source]]
name = "tcp"
listen = "127.0.0.1:{tcp}"
transport = "tcp"
framing = "newline"

[[destination]]
name = "out"
type = "file"
path = "data/out.log"
fsync = "batch"
io = "direct"

[stats]
listen = "127.0.0.1:{stats}"
"#
    )
}

/// Line `seq`, newline included: sizes around and across 4 KiB blocks.
fn message(seq: usize) -> Vec<u8> {
    const SIZES: [usize; 10] = [1, 4095, 4096, 4097, 8191, 17, 300, 1234, 9000, 2];
    let len = (SIZES[seq % SIZES.len()] + seq % 13).max(12);
    let mut m = format!("seq={seq:06} ").into_bytes();
    m.extend((m.len()..len).map(|i| b'a' + (i % 26) as u8));
    m.push(b'\n');
    m
}

fn messages(range: std::ops::Range<usize>) -> Vec<u8> {
    range.flat_map(message).collect()
}

/// A file system mounted on a folder, unmounted on drop (declare it before
/// the server, so the server is gone first).
struct Mount(PathBuf);

impl Mount {
    /// Fails the test when it cannot mount: it needs root, as CI and the
    /// README's test command have. A direct I/O test must not pass unrun.
    fn run(what: &str, cmd: &mut Command) {
        match cmd.status() {
            Ok(s) if s.success() => {}
            other => panic!("{what} failed ({other:?}): this test needs root and mkfs.ext4"),
        }
    }

    fn ext4_loop(dir: &Path, image: &Path) -> Mount {
        std::fs::create_dir_all(dir).expect("mount point");
        let img = std::fs::File::create(image).expect("image");
        img.set_len(IMAGE_BYTES).expect("image size");
        Mount::run(
            "mkfs.ext4",
            Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image),
        );
        Mount::run(
            "mount -o loop",
            Command::new("mount")
                .args(["-t", "ext4", "-o", "loop"])
                .arg(image)
                .arg(dir),
        );
        Mount(dir.to_path_buf())
    }

    fn ramfs(dir: &Path) -> Mount {
        std::fs::create_dir_all(dir).expect("mount point");
        Mount::run(
            "mount -t ramfs",
            Command::new("mount")
                .args(["-t", "ramfs", "ramfs"])
                .arg(dir),
        );
        Mount(dir.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// `tail -F` on a path, its output collected by a thread; killed on drop.
struct TailReader {
    child: Child,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl TailReader {
    fn start(path: &Path) -> TailReader {
        let mut child = Command::new("tail")
            .args(["-F", "-n", "+1", "-s", "0.05"])
            .arg(path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("tail -F (coreutils) must be installed");
        let mut out = child.stdout.take().expect("tail stdout");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("tail buffer")
                    .extend_from_slice(&buf[..n]);
            }
        });
        TailReader { child, seen }
    }

    /// Waits (bounded) until the reader has seen `want.len()` bytes, then
    /// checks they are exactly `want`.
    fn assert_saw(&self, want: &[u8], when: &str) {
        let start = Instant::now();
        loop {
            let seen = self.seen.lock().expect("tail buffer").clone();
            if seen.len() >= want.len() || start.elapsed() > Duration::from_secs(15) {
                let diff = seen.iter().zip(want).position(|(a, b)| a != b);
                let around = |b: &[u8], at: usize| {
                    let from = at.saturating_sub(40).min(b.len());
                    String::from_utf8_lossy(&b[from..(at + 40).min(b.len())]).into_owned()
                };
                assert!(
                    seen == want,
                    "{when}: tail -F saw {} bytes, want {}; first difference at byte {diff:?}:\nsaw  {:?}\nwant {:?}",
                    seen.len(),
                    want.len(),
                    diff.map(|d| around(&seen, d)),
                    diff.map(|d| around(want, d)),
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TailReader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends the lines on one connection and closes it.
fn send(tcp: u16, range: std::ops::Range<usize>) {
    let mut s = TcpStream::connect(loopback(tcp)).expect("connect");
    s.write_all(&messages(range)).expect("send");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
}

fn wait_written(server: &Server, total: usize) {
    let w = server.wait_metric(
        "ringest_messages_written_total{source=\"tcp\"",
        total as u64,
        Duration::from_secs(20),
    );
    assert_eq!(w, total as u64, "messages written");
}

/// The file holds exactly `want`: its size first (no padding to a block).
fn assert_file(path: &Path, want: &[u8], when: &str) {
    let got = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(got.len(), want.len(), "{when}: size of {}", path.display());
    assert!(got == want, "{when}: {} differs", path.display());
}

/// How many of the server's descriptors on `path` are open with O_DIRECT,
/// and how many in all (from /proc/PID/fd and fdinfo).
fn direct_fds(pid: u32, path: &Path) -> (usize, usize) {
    let want = std::fs::canonicalize(path).expect("canonical path");
    let (mut direct, mut all) = (0, 0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc fd");
    for fd in fds.flatten() {
        if std::fs::read_link(fd.path()).ok().as_deref() != Some(want.as_path()) {
            continue;
        }
        all += 1;
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .expect("fdinfo");
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| i64::from_str_radix(f.trim(), 8).ok())
            .expect("flags in fdinfo");
        if flags & i64::from(libc::O_DIRECT) != 0 {
            direct += 1;
        }
    }
    (direct, all)
}

/// Waits (bounded) until the server holds `want` = (O_DIRECT, all)
/// descriptors on `path`: a reopen opens them one after the other.
fn wait_fds(server: &Server, path: &Path, want: (usize, usize), what: &str) {
    let start = Instant::now();
    let mut got = (0, 0);
    while start.elapsed() < Duration::from_secs(10) {
        if path.exists() {
            got = direct_fds(server.child.id(), path);
            if got == want {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{what}: (O_DIRECT, all) descriptors on {} are {got:?}, want {want:?}",
        path.display()
    );
}

#[test]
fn direct_io_keeps_exact_bytes_through_rotation_and_sigterm_and_tail_sees_every_line() {
    let dir = temp_dir("direct_io_exact");
    let _mount = Mount::ext4_loop(&dir.join("data"), &dir.join("ext4.img"));
    let (tcp, stats) = (free_port(), free_port());
    let mut server = Server::start(&dir, &config(tcp, stats));
    let out = dir.join("data/out.log");
    let rotated = dir.join("data/out.log.1");
    wait_fds(
        &server,
        &out,
        (1, 2),
        "one O_DIRECT and one buffered descriptor",
    );
    let tail = TailReader::start(&out);
    let (a, b, c) = (
        0..PART_MESSAGES,
        PART_MESSAGES..2 * PART_MESSAGES,
        2 * PART_MESSAGES..3 * PART_MESSAGES,
    );

    send(tcp, a.clone());
    wait_written(&server, a.end);
    assert_file(&out, &messages(a.clone()), "before the rotation");
    tail.assert_saw(&messages(a.clone()), "before the rotation");

    std::fs::rename(&out, &rotated).expect("rotate");
    server.signal(libc::SIGHUP);
    wait_fds(
        &server,
        &out,
        (1, 2),
        "reopened for direct I/O after SIGHUP",
    );
    send(tcp, b.clone());
    wait_written(&server, b.end);
    assert_file(&rotated, &messages(a.clone()), "the rotated file");
    assert_file(&out, &messages(b.clone()), "after the rotation");

    // The last part goes out just before SIGTERM: the drain writes it all.
    send(tcp, c.clone());
    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("ringest did not exit within 30 s of SIGTERM");
    assert!(status.success(), "{status:?}\n{}", server.stderr());
    assert_file(&rotated, &messages(a.clone()), "the rotated file at exit");
    assert_file(&out, &messages(b.start..c.end), "at exit");
    tail.assert_saw(&messages(a.start..c.end), "at exit");
    let stderr = server.stderr();
    assert!(!stderr.contains("refuses O_DIRECT"), "{stderr}");
}

/// Fills the file system under `dir` with a file, then frees FREE_BYTES of it.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0u64;
    // Bounded: the image is IMAGE_BYTES.
    for _ in 0..=(IMAGE_BYTES >> 20) {
        match f.write(&chunk) {
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    f.sync_all().expect("filler sync");
    assert!(written > FREE_BYTES, "filled only {written} bytes");
    f.set_len(written - FREE_BYTES).expect("free some");
    f.sync_all().expect("filler sync");
    filler
}

#[test]
fn direct_io_on_a_full_disk_resumes_without_tearing_and_ends_a_torn_line_first() {
    let dir = temp_dir("direct_io_full");
    let _mount = Mount::ext4_loop(&dir.join("data"), &dir.join("ext4.img"));
    let out = dir.join("data/out.log");
    // A crash left 5000 bytes: one block and a bit, the last line torn.
    let mut seed = messages(0..3);
    assert!(seed.len() > 5000);
    seed.truncate(5000);
    std::fs::write(&out, &seed).expect("seed");
    let filler = fill(&dir.join("data"));
    let (tcp, stats) = (free_port(), free_port());
    let server = Server::start(&dir, &config(tcp, stats));
    let total = 2 * PART_MESSAGES;
    let sender = std::thread::spawn(move || send(tcp, 0..total));
    let errors = server.wait_metric("ringest_write_errors_total", 1, Duration::from_secs(20));
    assert!(errors >= 1, "the disk filled up");
    std::fs::remove_file(&filler).expect("free the space");
    wait_written(&server, total);
    sender.join().expect("sender");
    let metrics = server.metrics();
    assert!(server.stop().success(), "a recovered disk exits 0");
    let want = [seed, b"\n".to_vec(), messages(0..total)].concat();
    assert_file(&out, &want, "after the disk came back");
    let no_space = format!("ringest_write_errors_total{{{DEST},reason=\"no_space\"");
    assert!(metric_in(&metrics, &no_space) >= 1, "{metrics}");
    let torn = format!("ringest_torn_lines_repaired_total{{{DEST}}}");
    assert_eq!(metric_in(&metrics, &torn), 1);
}

/// Lines of connection `conn`: the same odd sizes, tagged with it.
fn conn_message(conn: usize, seq: usize) -> Vec<u8> {
    let mut m = message(seq);
    m[..4].copy_from_slice(format!("c{conn:02}=").as_bytes());
    m
}

#[test]
fn two_writers_share_one_direct_file_and_every_connection_keeps_its_lines_whole_and_in_order() {
    const CONNS: usize = 16;
    const LINES: usize = 60;
    let dir = temp_dir("direct_io_writers");
    let _mount = Mount::ext4_loop(&dir.join("data"), &dir.join("ext4.img"));
    let (tcp, stats) = (free_port(), free_port());
    let server = Server::start(&dir, &config_with(tcp, stats, 2));
    let out = dir.join("data/out.log");
    // One shared direct file: one O_DIRECT and one buffered descriptor in
    // all, not a pair per writer.
    wait_fds(
        &server,
        &out,
        (1, 2),
        "both writers on one shared direct file",
    );
    let tail = TailReader::start(&out);
    let senders: Vec<_> = (0..CONNS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(loopback(tcp)).expect("connect");
                let all: Vec<u8> = (0..LINES).flat_map(|i| conn_message(c, i)).collect();
                s.write_all(&all).expect("send");
                s.shutdown(std::net::Shutdown::Write).expect("shutdown");
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    wait_written(&server, CONNS * LINES);
    let metrics = server.metrics();
    assert!(server.stop().success());
    for w in 0..2 {
        let drained = metric_in(
            &metrics,
            &format!("ringest_writer_drained_bytes_total{{writer=\"{w}\"}}"),
        );
        assert!(
            drained > 0,
            "writer {w} wrote nothing: the connections all went to one shard\n{metrics}"
        );
    }
    let text = std::fs::read(&out).expect("output");
    let want_len: usize = (0..CONNS)
        .map(|c| (0..LINES).map(|i| conn_message(c, i).len()).sum::<usize>())
        .sum();
    assert_eq!(
        text.len(),
        want_len,
        "the file size is exactly the bytes written"
    );
    let mut next = [0usize; CONNS];
    for line in text.split_inclusive(|b| *b == b'\n') {
        let c: usize = std::str::from_utf8(&line[1..3])
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "not a line of ours: {:?}",
                    String::from_utf8_lossy(&line[..line.len().min(40)])
                )
            });
        assert!(
            line == conn_message(c, next[c]).as_slice(),
            "connection {c}: line {} torn, glued, duplicated or out of order",
            next[c]
        );
        next[c] += 1;
    }
    assert_eq!(next, [LINES; CONNS]);
    tail.assert_saw(&text, "at exit");
}

#[test]
fn a_file_system_refusing_o_direct_falls_back_to_buffered_with_one_log_line() {
    let dir = temp_dir("direct_io_fallback");
    let _mount = Mount::ramfs(&dir.join("data"));
    let (tcp, stats) = (free_port(), free_port());
    let server = Server::start(&dir, &config(tcp, stats));
    let out = dir.join("data/out.log");
    wait_fds(&server, &out, (0, 1), "buffered only");
    send(tcp, 0..50);
    wait_written(&server, 50);
    server.signal(libc::SIGHUP);
    let fallbacks = format!("ringest_direct_io_fallbacks_total{{{DEST}}}");
    let start = Instant::now();
    while server.metric(&fallbacks) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the reopen after SIGHUP was not counted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    send(tcp, 50..100);
    wait_written(&server, 100);
    let metrics = server.metrics();
    let stderr_path = server.stderr_path.clone();
    assert!(server.stop().success());
    assert_file(&out, &messages(0..100), "at exit");
    assert_eq!(
        metric_in(&metrics, &fallbacks),
        2,
        "the open and the reopen"
    );
    let stderr = std::fs::read_to_string(stderr_path).expect("stderr");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("refuses O_DIRECT"))
        .collect();
    assert_eq!(lines.len(), 1, "one log line, not one per open:\n{stderr}");
    assert!(
        lines[0].contains("falls back to buffered") && lines[0].contains("destination out"),
        "{}",
        lines[0]
    );
}
