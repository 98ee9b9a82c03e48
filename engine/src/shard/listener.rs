//! Socket set-up: one SO_REUSEPORT listener per source per shard, and the
//! options every accepted connection gets.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

/// Binds a listener that other shards can bind too (the kernel spreads
/// connections between them by hash).
pub fn bind_reuseport(addr: SocketAddr, backlog: u32) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    Ok(socket)
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: fd is a socket we own; value points to a live c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// TCP_NODELAY (handshake flights otherwise stall ~40 ms on Nagle + delayed
/// ACK) and keepalive (so half-open connections are found and closed).
/// TCP_USER_TIMEOUT bounds how long data we sent may stay unacknowledged
/// (a peer that stopped reading and acking) before the kernel drops the
/// connection.
pub fn tune_accepted(
    fd: RawFd,
    keepalive_idle_ms: u64,
    tcp_user_timeout_ms: u64,
) -> io::Result<()> {
    setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    if tcp_user_timeout_ms > 0 {
        let ms = i32::try_from(tcp_user_timeout_ms).unwrap_or(i32::MAX);
        setsockopt_int(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms)?;
    }
    if keepalive_idle_ms > 0 {
        let idle = std::time::Duration::from_millis(keepalive_idle_ms);
        let ka = TcpKeepalive::new()
            .with_time(idle)
            .with_interval(std::time::Duration::from_secs(10))
            .with_retries(6);
        let sock = std::mem::ManuallyDrop::new(
            // SAFETY: fd is a live socket owned by the shard; ManuallyDrop keeps
            // this temporary Socket from closing it.
            unsafe { <Socket as std::os::fd::FromRawFd>::from_raw_fd(fd) },
        );
        sock.set_tcp_keepalive(&ka)?;
    }
    Ok(())
}

/// The peer's address, asked once per connection (multishot accept gives none).
pub fn peer_addr(fd: RawFd) -> io::Result<SocketAddr> {
    // SAFETY: storage is large enough for any socket address and len says so.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: fd is a socket; storage/len are valid for writing.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getpeername filled `len` bytes of a sockaddr of family ss_family.
    let addr = unsafe { socket2::SockAddr::new(storage, len) };
    addr.as_socket()
        .ok_or_else(|| io::Error::other("peer is not an IP socket"))
}
