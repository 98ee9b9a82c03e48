//! The thin blocking driver of one upstream connection, run on the writer
//! thread (never in a shard): connect, handshake, hand the keys to the
//! kernel where `ktls` says so, put chunks on the wire, and look for what
//! the server sends (a session ticket, an alert, a close). Every decision
//! about which bytes are delivered is `session.rs`'s; what a record from
//! the server means under kTLS is `offload.rs`'s.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConfig, ClientConnection, ProtocolVersion};

use super::addr::ServerAddr;
use super::failure::UpstreamFailure;
use super::offload::{choose_path, crypto_pair, on_server_record};
use crate::conn::{ExactReads, KtlsPlan};
use crate::ktls::{self, Decision, KtlsVersion, UserspaceReason};
use crate::record::{ControlBudget, ReaderLimits};

/// Records read from a kTLS socket per look, so a chatty server cannot
/// keep the writer in `listen`.
const KERNEL_RECORDS_PER_LISTEN_MAX: usize = 64;

/// Longest a blocked write waits before the caller looks at the clock
/// again (shutdown give-up); not a limit on the upstream.
const WRITE_SLICE: Duration = Duration::from_millis(200);

/// What one look at the socket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    Nothing,
    /// At least one record (or, for TCP, a byte) from the server.
    Something,
}

/// Who encrypts what this connection sends.
enum Tls {
    Rustls(Box<ClientConnection>),
    /// The kernel has the keys (TLS_TX and TLS_RX): the socket takes and
    /// gives plaintext; records of other types come with their type.
    Kernel {
        version: KtlsVersion,
        budget: ControlBudget,
        /// One decrypted record (`CONTROL_RECORD_BYTES_MIN`).
        record: Box<[u8]>,
    },
}

pub struct Link {
    stream: TcpStream,
    tls: Option<Tls>,
    /// The negotiated TLS version (TLS only).
    version: Option<ProtocolVersion>,
    /// The path taken after the handshake (TLS only).
    path: Option<Decision>,
    /// Bytes of the current chunk as they go on the wire, and how many are sent.
    wire: Vec<u8>,
    sent: usize,
}

/// How to reach one server: TLS config, the name its certificate must
/// carry, and whether to hand the connection to the kernel.
pub struct TlsTarget<'a> {
    pub config: &'a Arc<ClientConfig>,
    pub server_name: rustls::pki_types::ServerName<'static>,
    pub ktls: &'a KtlsPlan,
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
            version: None,
            path: None,
            wire: Vec::with_capacity(64 * 1024),
            sent: 0,
        };
        if let Some(t) = tls {
            let conn = ClientConnection::new(Arc::clone(t.config), t.server_name)
                .map_err(|e| UpstreamFailure::Tls(e.to_string()))?;
            link.tls = Some(Tls::Rustls(Box::new(conn)));
            link.handshake(deadline)?;
            link.hand_off(t.ktls)?;
        }
        link.stream
            .set_write_timeout(Some(WRITE_SLICE))
            .map_err(io_err)?;
        Ok(link)
    }

    /// Runs the handshake, reading the server's records one whole record
    /// at a time (`ExactReads`): when it ends, not one byte past it has
    /// left the socket, so the kernel can take over at a record boundary.
    fn handshake(&mut self, deadline: Instant) -> Result<(), UpstreamFailure> {
        let io_err = |e: io::Error| UpstreamFailure::from_io(&e);
        let mut reads = ExactReads::new();
        loop {
            let Some(Tls::Rustls(conn)) = self.tls.as_mut() else {
                return Ok(());
            };
            while conn.wants_write() {
                conn.write_tls(&mut self.stream).map_err(io_err)?;
            }
            if !conn.is_handshaking() {
                self.version = conn.protocol_version();
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(UpstreamFailure::Timeout);
            }
            self.stream.set_read_timeout(Some(left)).map_err(io_err)?;
            // A header that is not TLS: the server speaks something else.
            let want = reads
                .want()
                .map_err(|e| UpstreamFailure::Tls(format!("the server's reply: {e}")))?;
            if want > 0 {
                match self.stream.read(reads.spare_mut()) {
                    Ok(0) => return Err(UpstreamFailure::Closed),
                    Ok(n) => reads.filled(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err(e)),
                }
            }
            let Some(record) = reads.whole_record() else {
                continue;
            };
            let mut rest: &[u8] = record;
            while !rest.is_empty() {
                conn.read_tls(&mut rest).map_err(io_err)?;
            }
            reads.clear();
            if let Err(e) = conn.process_new_packets() {
                // Tell the server why (best effort), then report it.
                let _ = conn.write_tls(&mut self.stream);
                return Err(UpstreamFailure::from_tls(&e));
            }
        }
    }

    /// After the handshake: the keys go to the kernel (TX and RX) when
    /// the policy says so, else rustls goes on. A failure half way leaves
    /// the socket unusable: the connection fails and is retried.
    fn hand_off(&mut self, plan: &KtlsPlan) -> Result<(), UpstreamFailure> {
        let Some(Tls::Rustls(conn)) = self.tls.take() else {
            return Ok(());
        };
        // `ExactReads` fed rustls whole records only, and the handshake
        // ended on one, so nothing past it is in userspace.
        let decision = choose_path(
            plan,
            conn.protocol_version(),
            conn.negotiated_cipher_suite(),
        );
        let (Decision::Offload, Some(version)) = (decision, self.version) else {
            self.path = Some(decision);
            self.tls = Some(Tls::Rustls(conn));
            return Ok(());
        };
        let setup = |e: String| UpstreamFailure::KtlsSetup(e);
        let secrets = conn
            .dangerous_extract_secrets()
            .map_err(|e| setup(format!("secret extraction: {e}")))?;
        let Ok((tx, rx)) = crypto_pair(version, &secrets) else {
            // The policy offloads only ciphers the kernel has; should a
            // suite still not map, the keys are gone with `conn`: retry.
            return Err(setup("no kernel layout for the negotiated cipher".into()));
        };
        ktls::enable(self.stream.as_raw_fd(), &tx, &rx).map_err(|e| setup(e.to_string()))?;
        self.path = Some(Decision::Offload);
        self.tls = Some(Tls::Kernel {
            version: tx.version(),
            budget: ControlBudget::new(&ReaderLimits::default()),
            record: vec![0u8; ktls::CONTROL_RECORD_BYTES_MIN].into_boxed_slice(),
        });
        Ok(())
    }

    /// TLS only: kTLS or userspace, and why.
    pub fn path(&self) -> Option<Decision> {
        self.path
    }

    /// Why `ktls = "auto"` left this connection in userspace, when that
    /// is worth a log line (not `off`, not an offload).
    pub fn fallback(&self) -> Option<UserspaceReason> {
        match self.path {
            Some(Decision::Userspace(UserspaceReason::ModeOff)) | Some(Decision::Offload) => None,
            Some(Decision::Userspace(r)) => Some(r),
            None => None,
        }
    }

    /// TLS 1.3: the server checks our certificate after our handshake ended.
    pub fn needs_confirm(&self) -> bool {
        self.version == Some(ProtocolVersion::TLSv1_3)
    }

    /// Starts putting `chunk` on the wire.
    pub fn start(&mut self, chunk: &[u8]) -> Result<(), UpstreamFailure> {
        self.wire.clear();
        self.sent = 0;
        match self.tls.as_mut() {
            Some(Tls::Rustls(conn)) => {
                conn.writer()
                    .write_all(chunk)
                    .map_err(|e| UpstreamFailure::Tls(e.to_string()))?;
                while conn.wants_write() {
                    conn.write_tls(&mut self.wire)
                        .map_err(|e| UpstreamFailure::Tls(e.to_string()))?;
                }
            }
            // The kernel makes the records: plaintext goes to the socket.
            // A chunk it took only in part may have reached the server in
            // whole records; resending it after a failure can duplicate
            // those frames, never lose them.
            Some(Tls::Kernel { .. }) | None => self.wire.extend_from_slice(chunk),
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
            Some(Tls::Kernel {
                version,
                budget,
                record,
            }) => {
                let fd = self.stream.as_raw_fd();
                let mut heard = Heard::Nothing;
                for _ in 0..KERNEL_RECORDS_PER_LISTEN_MAX {
                    match ktls::recv_record(fd, record) {
                        Ok((_, 0)) => return Err(UpstreamFailure::Closed),
                        Ok((content_type, n)) => {
                            let payload = record.get(..n).unwrap_or_default();
                            if on_server_record(content_type, payload, *version, budget)?
                                == Heard::Something
                            {
                                heard = Heard::Something;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(io_err(e)),
                    }
                }
                Ok(heard)
            }
            Some(Tls::Rustls(conn)) => {
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
        match self.tls.as_mut() {
            Some(Tls::Rustls(conn)) => {
                conn.send_close_notify();
                let _ = conn.write_tls(&mut self.stream);
            }
            Some(Tls::Kernel { .. }) => {
                let _ = ktls::send_close_notify(self.stream.as_raw_fd());
            }
            None => {}
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}
