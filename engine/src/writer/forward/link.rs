//! The thin blocking driver of one upstream connection, run on the writer
//! thread (never in a shard): connect, handshake, put chunks on the wire,
//! and look for what the server sends (a session ticket, an alert, a
//! close). Every decision about which bytes are delivered is `session.rs`'s.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, ProtocolVersion};

use super::addr::ServerAddr;
use super::failure::UpstreamFailure;

/// Longest a blocked write waits before the caller looks at the clock
/// again (shutdown give-up); not a limit on the upstream.
const WRITE_SLICE: Duration = Duration::from_millis(200);

/// What one look at the socket found.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    Nothing,
    /// At least one record (or, for TCP, a byte) from the server.
    Something,
}

pub struct Link {
    stream: TcpStream,
    tls: Option<ClientConnection>,
    /// Bytes of the current chunk as they go on the wire, and how many are sent.
    wire: Vec<u8>,
    sent: usize,
}

/// How to reach one server: TLS config and the name its certificate must carry.
pub struct TlsTarget<'a> {
    pub config: &'a Arc<ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl Link {
    /// Resolves, connects and (for TLS) handshakes within `timeout`.
    pub fn connect(
        addr: &ServerAddr,
        tls: Option<TlsTarget<'_>>,
        timeout: Duration,
    ) -> Result<Link, UpstreamFailure> {
        let deadline = Instant::now() + timeout;
        let addrs: Vec<_> = (addr.host.as_str(), addr.port)
            .to_socket_addrs()
            .map_err(|e| UpstreamFailure::Resolve(e.to_string()))?
            .collect();
        let mut last = UpstreamFailure::Resolve("no address".into());
        let mut stream = None;
        for a in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                last = UpstreamFailure::Timeout;
                break;
            }
            match TcpStream::connect_timeout(&a, left) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = UpstreamFailure::from_connect(&e),
            }
        }
        let stream = stream.ok_or(last)?;
        let io_err = |e: io::Error| UpstreamFailure::from_io(&e);
        stream.set_nodelay(true).map_err(io_err)?;
        let mut link = Link {
            stream,
            tls: None,
            wire: Vec::with_capacity(64 * 1024),
            sent: 0,
        };
        if let Some(t) = tls {
            let conn = ClientConnection::new(Arc::clone(t.config), t.server_name)
                .map_err(|e| UpstreamFailure::Tls(e.to_string()))?;
            link.tls = Some(conn);
            link.handshake(deadline)?;
        }
        link.stream
            .set_write_timeout(Some(WRITE_SLICE))
            .map_err(io_err)?;
        Ok(link)
    }

    fn handshake(&mut self, deadline: Instant) -> Result<(), UpstreamFailure> {
        let io_err = |e: io::Error| UpstreamFailure::from_io(&e);
        loop {
            let Some(conn) = self.tls.as_mut() else {
                return Ok(());
            };
            while conn.wants_write() {
                conn.write_tls(&mut self.stream).map_err(io_err)?;
            }
            if !conn.is_handshaking() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(UpstreamFailure::Timeout);
            }
            self.stream.set_read_timeout(Some(left)).map_err(io_err)?;
            match conn.read_tls(&mut self.stream) {
                Ok(0) => return Err(UpstreamFailure::Closed),
                Ok(_) => {}
                Err(e) => return Err(io_err(e)),
            }
            if let Err(e) = conn.process_new_packets() {
                // Tell the server why (best effort), then report it.
                let _ = conn.write_tls(&mut self.stream);
                return Err(UpstreamFailure::from_tls(&e));
            }
        }
    }

    /// TLS 1.3: the server checks our certificate after our handshake ended.
    pub fn needs_confirm(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|c| c.protocol_version() == Some(ProtocolVersion::TLSv1_3))
    }

    /// Starts putting `chunk` on the wire.
    pub fn start(&mut self, chunk: &[u8]) -> Result<(), UpstreamFailure> {
        self.wire.clear();
        self.sent = 0;
        match self.tls.as_mut() {
            Some(conn) => {
                conn.writer()
                    .write_all(chunk)
                    .map_err(|e| UpstreamFailure::Tls(e.to_string()))?;
                while conn.wants_write() {
                    conn.write_tls(&mut self.wire)
                        .map_err(|e| UpstreamFailure::Tls(e.to_string()))?;
                }
            }
            None => self.wire.extend_from_slice(chunk),
        }
        Ok(())
    }

    /// Sends more of the chunk; true once the kernel took all of it, false
    /// when the server is not reading (back-pressure: call again).
    pub fn flush(&mut self) -> Result<bool, UpstreamFailure> {
        while self.sent < self.wire.len() {
            match self.stream.write(&self.wire[self.sent..]) {
                Ok(0) => return Err(UpstreamFailure::Reset),
                Ok(n) => self.sent += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(false)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(UpstreamFailure::from_io(&e)),
            }
        }
        Ok(true)
    }

    /// Waits up to `wait` for something from the server and reads it. An
    /// alert, a close_notify or EOF is the failure it means.
    pub fn listen(&mut self, wait: Duration) -> Result<Heard, UpstreamFailure> {
        let mut pfd = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `pfd` is one valid pollfd that lives across the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready <= 0 || pfd.revents == 0 {
            return Ok(Heard::Nothing);
        }
        let io_err = |e: io::Error| UpstreamFailure::from_io(&e);
        self.stream
            .set_read_timeout(Some(Duration::from_millis(1)))
            .map_err(io_err)?;
        match self.tls.as_mut() {
            Some(conn) => {
                match conn.read_tls(&mut self.stream) {
                    Ok(0) => return Err(UpstreamFailure::Closed),
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        return Ok(Heard::Nothing)
                    }
                    Err(e) => return Err(io_err(e)),
                }
                let state = conn
                    .process_new_packets()
                    .map_err(|e| UpstreamFailure::from_tls(&e))?;
                if state.peer_has_closed() {
                    return Err(UpstreamFailure::Closed);
                }
                // A syslog server sends no data; drop any it does.
                let mut sink = [0u8; 4096];
                let mut r = conn.reader();
                while matches!(r.read(&mut sink), Ok(n) if n > 0) {}
                Ok(Heard::Something)
            }
            None => {
                let mut sink = [0u8; 4096];
                match self.stream.read(&mut sink) {
                    Ok(0) => Err(UpstreamFailure::Closed),
                    Ok(_) => Ok(Heard::Something),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        Ok(Heard::Nothing)
                    }
                    Err(e) => Err(io_err(e)),
                }
            }
        }
    }

    /// After a failed send: the server's alert, if it sent one, names the
    /// reason better than the broken pipe that followed it.
    pub fn explain(&mut self, failure: UpstreamFailure) -> UpstreamFailure {
        match self.listen(Duration::ZERO) {
            Err(f @ UpstreamFailure::Alert(_)) => f,
            _ => failure,
        }
    }

    /// Ends the connection politely (close_notify) once all is sent.
    pub fn close(mut self) {
        if let Some(conn) = self.tls.as_mut() {
            conn.send_close_notify();
            let _ = conn.write_tls(&mut self.stream);
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}
