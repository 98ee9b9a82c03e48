//! One accepted connection of the sink: its buffers, reading it, running
//! rustls over what arrived (through the engine's handshake driver),
//! counting frames, and writing what TLS wants sent.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

use ringest::tls::driver::{self, DriveError, Progress};
use rustls::server::UnbufferedServerConnection;

use super::{Shared, SinkStats, IDLE_TURN_BYTES, INBUF_BYTES, READS_PER_TURN_MAX};
use crate::framing::FrameDecoder;
use crate::sys::Epoll;

/// One accepted connection.
pub(super) struct SinkConn {
    pub(super) stream: TcpStream,
    pub(super) tls: Option<UnbufferedServerConnection>,
    pub(super) inbuf: Vec<u8>,
    pub(super) in_start: usize,
    pub(super) in_end: usize,
    /// TLS bytes to send (handshake, tickets, alerts, close_notify).
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    pub(super) dec: FrameDecoder,
    pub(super) handshake_done: bool,
    pub(super) peer_closed: bool,
    pub(super) sent_close: bool,
    /// Close once `out` is flushed.
    pub(super) closing: bool,
    pub(super) shut_wr: bool,
}

pub(super) fn close_conn(c: SinkConn, epoll: &Epoll, shared: &Shared, stats: &mut SinkStats) {
    let _ = epoll.delete(c.stream.as_raw_fd());
    shared.open.fetch_sub(1, Ordering::Relaxed);
    stats.leading_zero_frames += c.dec.leading_zero_frames;
    if !c.dec.at_frame_boundary() {
        stats.truncated_frames += 1;
    }
}

/// Writes pending TLS output; false on a fatal write error.
pub(super) fn flush_out(c: &mut SinkConn) -> bool {
    while c.out_pos < c.out.len() {
        match c.stream.write(&c.out[c.out_pos..]) {
            Ok(n) => c.out_pos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    c.out.clear();
    c.out_pos = 0;
    true
}

/// Reads and processes what the connection has. Returns true when the
/// connection is finished and must be dropped. Sets `more` if input may be
/// left (the turn ended early).
pub(super) fn service(
    c: &mut SinkConn,
    stats: &mut SinkStats,
    outbuf: &mut Vec<u8>,
    more: &mut bool,
) -> bool {
    if c.inbuf.is_empty() {
        c.inbuf = vec![0u8; INBUF_BYTES];
    }
    let mut turn_bytes = 0usize;
    for _ in 0..READS_PER_TURN_MAX {
        if c.in_start == c.in_end {
            c.in_start = 0;
            c.in_end = 0;
        } else if c.in_end == c.inbuf.len() {
            c.inbuf.copy_within(c.in_start..c.in_end, 0);
            c.in_end -= c.in_start;
            c.in_start = 0;
        }
        let n = match c.stream.read(&mut c.inbuf[c.in_end..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if c.in_start == c.in_end && turn_bytes < IDLE_TURN_BYTES {
                    // A quiet connection gives its buffer back (memory per
                    // idle connection); a busy one keeps it.
                    c.inbuf = Vec::new();
                    c.in_start = 0;
                    c.in_end = 0;
                }
                return false;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                stats.error(match e.kind() {
                    io::ErrorKind::ConnectionReset => "reset".to_string(),
                    k => format!("read: {k}"),
                });
                return true;
            }
        };
        if n == 0 {
            // EOF. With TLS, clean only after close_notify.
            if c.tls.is_none() || c.peer_closed {
                stats.clean_eof += 1;
            } else {
                stats.error("eof_without_close_notify");
            }
            return true;
        }
        stats.wire_bytes += n as u64;
        turn_bytes += n;
        c.in_end += n;
        let finished = if c.tls.is_some() {
            process_tls(c, stats, outbuf)
        } else {
            let data = &c.inbuf[c.in_start..c.in_end];
            let r = feed(&mut c.dec, data, stats, outbuf);
            c.in_start = c.in_end;
            !r
        };
        if finished {
            return true;
        }
        if c.out_pos < c.out.len() && !flush_out(c) {
            stats.error("write_failed");
            return true;
        }
        if c.closing && !c.shut_wr && c.out_pos >= c.out.len() {
            c.shut_wr = true;
            let _ = c.stream.shutdown(Shutdown::Write);
            // Keep reading until the client's EOF, so neither side resets.
        }
    }
    *more = true;
    false
}

/// Counts frames in decrypted (or plain) data. False on a framing error.
pub(super) fn feed(
    dec: &mut FrameDecoder,
    data: &[u8],
    stats: &mut SinkStats,
    outbuf: &mut Vec<u8>,
) -> bool {
    let emit = |f: &[u8]| {
        // A sender that puts the LF inside the frame (syslog-ng) would make
        // blank lines: drop one trailing LF, then write our own.
        let f = f.strip_suffix(b"\n").unwrap_or(f);
        outbuf.extend_from_slice(f);
        outbuf.push(b'\n');
    };
    let mut emit = emit;
    match dec.feed(data, &mut emit) {
        Ok(n) => {
            stats.messages += n;
            stats.bytes += data.len() as u64;
            true
        }
        Err(e) => {
            stats.error(e.as_str());
            false
        }
    }
}

/// Runs rustls over the buffered input through the engine's handshake
/// driver. Returns true when the connection is done.
pub(super) fn process_tls(c: &mut SinkConn, stats: &mut SinkStats, outbuf: &mut Vec<u8>) -> bool {
    let Some(tls) = c.tls.as_mut() else {
        return true;
    };
    // The driver hands control back at the peer's close_notify; the next
    // call answers it (or reports the connection closed).
    for _ in 0..3 {
        let dec = &mut c.dec;
        let d = driver::drive(
            tls,
            &mut c.inbuf[c.in_start..c.in_end],
            &mut c.out,
            &mut |p: &[u8]| {
                // A framing error is counted by `feed`.
                if feed(dec, p, stats, outbuf) {
                    Ok(())
                } else {
                    Err(())
                }
            },
        );
        c.in_start += d.consumed;
        match d.result {
            Ok(Progress::NeedMore) => return false,
            Ok(Progress::Traffic) => {
                if !c.handshake_done {
                    c.handshake_done = true;
                    stats.handshakes += 1;
                }
                if c.peer_closed && !c.sent_close {
                    c.sent_close = true;
                    c.closing = true;
                    let (n, _) = driver::queue_close_notify(
                        tls,
                        &mut c.inbuf[c.in_start..c.in_end],
                        &mut c.out,
                    );
                    c.in_start += n;
                }
                return false;
            }
            Ok(Progress::PeerClosed) => {
                c.peer_closed = true;
                stats.close_notify += 1;
            }
            Ok(Progress::Closed) => {
                c.closing = true;
                return false;
            }
            Err(DriveError::Plain(())) => return true,
            Err(DriveError::Record(e)) => {
                stats.error(format!("tls: {e}"));
                return true;
            }
            Err(DriveError::Encode(e)) => {
                stats.error(format!("tls: encode: {e}"));
                return true;
            }
            Err(DriveError::Tls(e)) => {
                stats.error(if c.handshake_done {
                    format!("tls: {e}")
                } else {
                    format!("handshake: {e}")
                });
                driver::pending_alert(tls, &mut c.out);
                let _ = flush_once(&mut c.stream, &c.out[c.out_pos..]);
                return true;
            }
        }
    }
    false
}

/// One best-effort write (used right before dropping a connection).
pub(super) fn flush_once(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    if data.is_empty() {
        return Ok(0);
    }
    stream.write(data)
}
