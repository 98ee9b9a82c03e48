//! The stats endpoint: GET /metrics in Prometheus text format. Control plane:
//! a plain blocking thread, one request at a time, so every step is bounded
//! or one client could stall it for everyone:
//! - the whole request must arrive within [`REQUEST_TIMEOUT_MS`]. A deadline,
//!   not a per-read timeout: with a 2-s timeout per read, a client sending
//!   one byte every second would hold the thread for hours;
//! - the whole response must be written within [`RESPONSE_TIMEOUT_MS`], for
//!   the same reason on the way out;
//! - a failing `accept` (EMFILE when the process is out of descriptors: the
//!   pending connection stays queued, so an immediate retry fails again)
//!   backs off from [`ACCEPT_BACKOFF_MS_MIN`] doubling to
//!   [`ACCEPT_BACKOFF_MS_MAX`] instead of spinning on a core, and is logged
//!   at most once per [`ACCEPT_ERROR_LOG_INTERVAL_MS`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::Stats;

/// Longest request read; a GET with its headers fits many times over.
const REQUEST_BYTES_MAX: usize = 8192;
/// The whole request, first byte to blank line, must arrive within this.
const REQUEST_TIMEOUT_MS: u64 = 2_000;
/// The whole response must be taken by the client within this.
const RESPONSE_TIMEOUT_MS: u64 = 2_000;
/// First pause after a failed accept.
const ACCEPT_BACKOFF_MS_MIN: u64 = 10;
/// Longest pause between accepts while they keep failing.
const ACCEPT_BACKOFF_MS_MAX: u64 = 1_000;
/// At most one log line about failing accepts per this interval.
const ACCEPT_ERROR_LOG_INTERVAL_MS: u64 = 10_000;

pub fn spawn(addr: SocketAddr, stats: Arc<Stats>) -> io::Result<()> {
    spawn_on(TcpListener::bind(addr)?, stats)
}

fn spawn_on(listener: TcpListener, stats: Arc<Stats>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("ringest-stats".into())
        .spawn(move || {
            let mut backoff = AcceptBackoff::default();
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        backoff.succeeded();
                        serve(stream, &stats);
                    }
                    Err(e) => std::thread::sleep(backoff.failed(&e, Instant::now())),
                }
            }
        })?;
    Ok(())
}

/// Answers one request; a client that is too slow or sends garbage gets
/// nothing more and is closed.
fn serve(mut stream: TcpStream, stats: &Stats) {
    let deadline = Instant::now() + Duration::from_millis(REQUEST_TIMEOUT_MS);
    let req = match read_request(&mut stream, deadline) {
        Ok(req) => req,
        Err(e) => {
            log::debug!("stats endpoint: request not read: {e}");
            return;
        }
    };
    let (status, body) = if req.starts_with(b"GET /metrics ") || req.starts_with(b"GET / ") {
        ("200 OK", stats.render_prometheus())
    } else {
        ("404 Not Found", "try GET /metrics\n".to_string())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let deadline = Instant::now() + Duration::from_millis(RESPONSE_TIMEOUT_MS);
    if let Err(e) = write_before(&mut stream, response.as_bytes(), deadline) {
        log::debug!("stats endpoint: response not sent: {e}");
    }
}

/// Time left until `deadline`, or TimedOut once it has passed.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "deadline passed before the exchange finished",
        )),
    }
}

/// Reads until the blank line that ends the headers, EOF, or
/// [`REQUEST_BYTES_MAX`]; each read may wait only for what is left of the
/// deadline.
fn read_request(stream: &mut TcpStream, deadline: Instant) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; REQUEST_BYTES_MAX];
    let mut got = 0;
    while got < buf.len() {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// `write_all` where the whole write, not each call, has a deadline.
fn write_before(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        stream.set_write_timeout(Some(remaining(deadline)?))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How long to pause after each failed accept, and when to say so.
#[derive(Debug, Default)]
struct AcceptBackoff {
    /// The current pause; zero while accepts succeed.
    pause_ms: u64,
    /// Failures not yet reported in a log line.
    unreported: u64,
    last_log: Option<Instant>,
}

impl AcceptBackoff {
    fn succeeded(&mut self) {
        self.pause_ms = 0;
    }

    /// Logs (rate-limited) and returns how long to sleep before accepting again.
    fn failed(&mut self, err: &io::Error, now: Instant) -> Duration {
        self.pause_ms = (self.pause_ms * 2).clamp(ACCEPT_BACKOFF_MS_MIN, ACCEPT_BACKOFF_MS_MAX);
        self.unreported += 1;
        let interval = Duration::from_millis(ACCEPT_ERROR_LOG_INTERVAL_MS);
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= interval)
        {
            log::warn!(
                "stats endpoint: accept failed {} time(s) since the last report, latest: {err}; \
                 retrying in up to {ACCEPT_BACKOFF_MS_MAX} ms",
                self.unreported
            );
            self.unreported = 0;
            self.last_log = Some(now);
        }
        Duration::from_millis(self.pause_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        spawn_on(listener, Arc::new(Stats::new(vec!["s".into()]))).unwrap();
        addr
    }

    /// A client that sends one byte every 500 ms never trips a per-read
    /// timeout; the request deadline must cut it off all the same, and the
    /// endpoint must then answer the next client.
    #[test]
    fn trickling_client_is_cut_off_at_the_request_deadline() {
        let addr = endpoint();
        let mut slow = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        // Bounded: the old per-read timeout would have let this run for
        // over an hour (8192 bytes at 2 per second).
        let give_up = Duration::from_millis(REQUEST_TIMEOUT_MS * 3);
        slow.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let cut_after = loop {
            assert!(
                started.elapsed() < give_up,
                "still connected after {:?}",
                started.elapsed()
            );
            if slow.write_all(b"G").is_err() {
                break started.elapsed();
            }
            // Waits up to 500 ms for the server to close: that is the trickle pace.
            match slow.read(&mut [0u8; 64]) {
                Ok(0) => break started.elapsed(),
                Ok(_) => panic!("no answer is owed to an unfinished request"),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
                Err(_) => break started.elapsed(),
            }
        };
        let deadline = Duration::from_millis(REQUEST_TIMEOUT_MS);
        assert!(cut_after >= deadline, "cut off early: {cut_after:?}");
        assert!(
            cut_after < deadline + Duration::from_millis(1_000),
            "{cut_after:?}"
        );

        let mut next = TcpStream::connect(addr).unwrap();
        next.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        next.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    }

    /// EMFILE from accept: back off (growing, capped) instead of spinning,
    /// log once per interval, and start over once an accept succeeds.
    #[test]
    fn failing_accept_backs_off_and_logs_rarely() {
        let emfile = io::Error::from_raw_os_error(libc::EMFILE);
        let t0 = Instant::now();
        let mut b = AcceptBackoff::default();
        let pauses: Vec<u64> = (0..10)
            .map(|_| b.failed(&emfile, t0).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(b.last_log, Some(t0));
        assert_eq!(b.unreported, 9, "one line for ten failures");
        let later = t0 + Duration::from_millis(ACCEPT_ERROR_LOG_INTERVAL_MS);
        b.failed(&emfile, later);
        assert_eq!((b.unreported, b.last_log), (0, Some(later)));
        b.succeeded();
        assert_eq!(b.failed(&emfile, later).as_millis(), 10);
    }
}
