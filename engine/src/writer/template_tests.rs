//! Writer-level tests of templated file destinations: rounds go through a
//! disk in memory that fails on demand, and the tests check which file
//! each message lands in, how often, in what order, and the counters.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fake::{FakeFs, WriteFault};
use super::report::WriterReport;
use super::tests::{self, Rig};
use crate::batch::{Batch, ConnMeta};
use crate::config::Config;
use crate::stats::Stats;

fn rig(dest: &str) -> Rig {
    rig_on(FakeFs::default(), dest)
}

fn rig_on(fs: FakeFs, dest: &str) -> Rig {
    let text = format!(
        "drain_timeout_ms = 0\n[[source]]\nname = \"in\"\nlisten = \"127.0.0.1:1\"\n\
         transport = \"tcp\"\nparse = \"auto\"\n{dest}"
    );
    let cfg = Config::from_toml(&text, Path::new("/fake/ringest.toml"), Path::new("/fake"))
        .expect("config");
    tests::rig_on(fs, &cfg)
}

const PER_HOST: &str = "[[destination]]\nname = \"hosts\"\ntype = \"file\"\n\
                        path = \"/fake/hosts/{host}/{app}.log\"\nmax_open_files = 2\n";

/// RFC 5424 frames from `(host, app, n)`: `<13>1 - host app - - - host-app-n`.
fn frames(msgs: &[(&str, &str, usize)]) -> Vec<String> {
    msgs.iter()
        .map(|(h, a, n)| format!("<13>1 - {h} {a} - - - {h}-{a}-{n}"))
        .collect()
}

fn batch(frames: &[String]) -> Batch {
    let meta = Arc::new(ConnMeta {
        source: 0,
        peer: "10.1.2.3:5000".parse().expect("addr"),
        identity: None,
    });
    let mut b = Batch::with_capacity(1 << 16);
    b.begin_run(&meta, 1_795_977_000_000_000_000);
    for f in frames {
        b.push(f.as_bytes());
    }
    b
}

impl Rig {
    fn push_frames(&self, frames: &[String]) {
        self.ring.full.push(batch(frames)).expect("ring has room");
    }

    fn file(&self, path: &str) -> String {
        String::from_utf8_lossy(&self.fs.content(Path::new(path))).into_owned()
    }

    fn run_to_end(self) -> (WriterReport, FakeFs, Arc<Stats>) {
        let (fs, stats) = (self.fs.clone(), Arc::clone(&self.stats));
        let (report, _) = tests::run_within(self, Duration::from_secs(10));
        (report, fs, stats)
    }
}

/// What file `host`/`app` should hold: its messages `0..n` in order.
fn expected(host: &str, app: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("<13>1 - {host} {app} - - - {host}-{app}-{i}\n"))
        .collect()
}

#[test]
fn more_hosts_than_open_files_still_puts_every_message_once_in_order() {
    let mut r = rig(PER_HOST);
    let hosts = ["web1", "web2", "db1", "db2", "mail"];
    // Three rounds, hosts interleaved message by message.
    let mut sent = vec![0usize; hosts.len()];
    for _ in 0..3 {
        let mut msgs = Vec::new();
        for _ in 0..4 {
            for (h, host) in hosts.iter().enumerate() {
                msgs.push((*host, "sshd", sent[h]));
                sent[h] += 1;
            }
        }
        r.push_frames(&frames(&msgs));
        assert!(r.writer.step());
    }
    let (report, fs, stats) = r.run_to_end();
    assert!(report.is_clean(), "{report}");
    for host in hosts {
        let got = String::from_utf8_lossy(
            &fs.content(Path::new(&format!("/fake/hosts/{host}/sshd.log"))),
        )
        .into_owned();
        assert_eq!(got, expected(host, "sshd", 12), "{host}");
    }
    assert_eq!(stats.sources[0].messages_written.load(Relaxed), 60);
    let d = &stats.destinations[0];
    // 5 files, 2 open at once: every round reopens all five; all closed at the end.
    assert_eq!(fs.disk().opens, 15);
    assert_eq!(d.files_closed.load(Relaxed), 15);
    assert_eq!(d.path_values_missing.load(Relaxed), 0);
}

#[test]
fn a_failed_open_is_retried_and_nothing_is_lost() {
    let mut r = rig(PER_HOST);
    r.push_frames(&frames(&[("a", "x", 0), ("b", "x", 0), ("a", "x", 1)]));
    r.fs.disk().open_faults.extend([libc::EACCES, libc::ENOSPC]);
    assert!(r.writer.step());
    assert_eq!(r.file("/fake/hosts/a/x.log"), expected("a", "x", 2));
    assert_eq!(r.file("/fake/hosts/b/x.log"), expected("b", "x", 1));
    let d = &r.stats.destinations[0];
    assert_eq!(d.write_errors.get("permission_denied"), 1);
    assert_eq!(d.write_errors.get("no_space"), 1);
    assert_eq!(d.failing.load(Relaxed), 0, "resumed");
    assert_eq!(r.stats.sources[0].messages_written.load(Relaxed), 3);
}

#[test]
fn a_short_write_then_enospc_in_the_second_file_resumes_there() {
    let mut r = rig(PER_HOST);
    r.push_frames(&frames(&[("a", "x", 0), ("b", "x", 0), ("b", "x", 1)]));
    // a's write goes through; b's is cut after 7 bytes, then the disk is full.
    r.fs.disk().write_faults.extend([
        WriteFault::Short(1 << 20),
        WriteFault::Short(7),
        WriteFault::Fail(libc::ENOSPC),
    ]);
    assert!(r.writer.step());
    assert_eq!(r.file("/fake/hosts/a/x.log"), expected("a", "x", 1));
    assert_eq!(r.file("/fake/hosts/b/x.log"), expected("b", "x", 2));
    assert_eq!(r.stats.destinations[0].write_errors.get("no_space"), 1);
}

#[test]
fn a_templated_file_with_a_torn_line_is_repaired_when_opened() {
    let fs = FakeFs::default();
    fs.put(Path::new("/fake/hosts/a/x.log"), b"crash");
    let mut r = rig_on(fs, PER_HOST);
    r.push_frames(&frames(&[("a", "x", 0)]));
    assert!(r.writer.step());
    assert_eq!(
        r.file("/fake/hosts/a/x.log"),
        format!("crash\n{}", expected("a", "x", 1))
    );
    assert_eq!(r.stats.destinations[0].torn_lines_repaired.load(Relaxed), 1);
}

#[test]
fn sighup_closes_the_files_and_the_next_message_opens_the_new_one() {
    let mut r = rig(PER_HOST);
    r.push_frames(&frames(&[("a", "x", 0)]));
    assert!(r.writer.step());
    r.fs.rename(
        Path::new("/fake/hosts/a/x.log"),
        Path::new("/fake/hosts/a/x.log.1"),
    );
    r.control.request_reopen();
    r.push_frames(&frames(&[("a", "x", 1)]));
    assert!(r.writer.step());
    assert_eq!(r.file("/fake/hosts/a/x.log.1"), expected("a", "x", 1));
    assert_eq!(r.file("/fake/hosts/a/x.log"), "<13>1 - a x - - - a-x-1\n");
    assert_eq!(r.stats.destinations[0].files_closed.load(Relaxed), 1);
}

#[test]
fn hostile_and_missing_fields_stay_under_the_root_and_are_counted() {
    let mut r = rig(PER_HOST);
    r.push_frames(&[
        "<13>1 - ../../etc passwd - - - climb".to_string(),
        "<13>1 - - - - - - no host, no app".to_string(),
        "no pri at all".to_string(),
    ]);
    assert!(r.writer.step());
    assert_eq!(
        r.file("/fake/hosts/%2E.%2F..%2Fetc/passwd.log"),
        "<13>1 - ../../etc passwd - - - climb\n"
    );
    assert_eq!(
        r.file("/fake/hosts/@unknown/@unknown.log"),
        "<13>1 - - - - - - no host, no app\nno pri at all\n"
    );
    let d = &r.stats.destinations[0];
    assert_eq!(d.path_values_sanitized.load(Relaxed), 1);
    assert_eq!(d.path_values_missing.load(Relaxed), 4);
    assert_eq!(r.stats.sources[0].messages_written.load(Relaxed), 3);
}

#[test]
fn giving_up_counts_exactly_the_messages_of_the_files_not_written() {
    let r = rig(PER_HOST);
    // a (2 messages) lands; b and c never do.
    r.push_frames(&frames(&[
        ("a", "x", 0),
        ("b", "x", 0),
        ("a", "x", 1),
        ("c", "x", 0),
    ]));
    {
        let mut d = r.fs.disk();
        d.write_faults.push_back(WriteFault::Short(1 << 20));
        d.write_fails_forever = Some(libc::EIO);
    }
    r.control.begin_shutdown(Instant::now());
    let (report, fs, stats) = r.run_to_end();
    let d = &report.destinations[0];
    assert_eq!(d.not_written_messages, 2, "{report}");
    let b_and_c = expected("b", "x", 1).len() + expected("c", "x", 1).len();
    assert_eq!(d.not_written_bytes, b_and_c as u64);
    assert_eq!(
        String::from_utf8_lossy(&fs.content(Path::new("/fake/hosts/a/x.log"))),
        expected("a", "x", 2)
    );
    // Only the prefix before b's message counts as written.
    assert_eq!(stats.sources[0].messages_written.load(Relaxed), 1);
}

#[test]
fn routed_messages_go_to_the_templated_destination_that_takes_them() {
    let mut r = rig(
        "[[destination]]\nname = \"auth\"\ntype = \"file\"\npath = \"/fake/auth/{host}.log\"\n\
         filter = { facility = \"auth\" }\nfinal = true\n\
         [[destination]]\nname = \"rest\"\ntype = \"file\"\npath = \"/fake/rest/{facility}.log\"\n",
    );
    r.push_frames(&[
        "<38>1 - web1 sshd - - - auth one".to_string(),
        "<78>1 - web1 cron - - - cron one".to_string(),
        "<38>1 - db1 sshd - - - auth two".to_string(),
    ]);
    assert!(r.writer.step());
    assert_eq!(
        r.file("/fake/auth/web1.log"),
        "<38>1 - web1 sshd - - - auth one\n"
    );
    assert_eq!(
        r.file("/fake/auth/db1.log"),
        "<38>1 - db1 sshd - - - auth two\n"
    );
    assert_eq!(
        r.file("/fake/rest/cron.log"),
        "<78>1 - web1 cron - - - cron one\n"
    );
    assert_eq!(r.file("/fake/rest/auth.log"), "", "final kept auth out");
}

#[test]
fn interval_fsync_reaches_every_dirty_file_on_idle_ticks() {
    let mut r = rig(
        "[[destination]]\nname = \"d\"\ntype = \"file\"\npath = \"/fake/{host}.log\"\n\
         fsync = \"interval\"\nfsync_interval_ms = 1\n",
    );
    r.push_frames(&frames(&[("a", "x", 0), ("b", "x", 0)]));
    assert!(r.writer.step());
    std::thread::sleep(Duration::from_millis(5));
    let start = Instant::now();
    while r.fs.disk().syncs < 2 && start.elapsed() < Duration::from_secs(5) {
        assert!(r.writer.step());
    }
    assert_eq!(r.fs.disk().syncs, 2, "one fsync per dirty file");
    // Nothing dirty: idle ticks sync nothing more.
    for _ in 0..3 {
        assert!(r.writer.step());
    }
    assert_eq!(r.fs.disk().syncs, 2);
}
