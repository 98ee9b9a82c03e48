//! The kTLS syscalls: attach the `tls` ULP, install keys, read a record with
//! its content type, send an alert under the kernel's TX key.
//!
//! Constants are from `include/uapi/linux/tls.h` and `linux/tcp.h`.

use std::io;
use std::mem::{size_of, size_of_val};
use std::os::fd::RawFd;

use libc::{c_int, c_void, socklen_t};

use super::control::{CONTENT_TYPE_ALERT, CONTENT_TYPE_APPLICATION_DATA};
use super::crypto_info::CryptoInfo;

const SOL_TCP: c_int = 6;
const TCP_ULP: c_int = 31;
const SOL_TLS: c_int = 282;
const TLS_TX: c_int = 1;
const TLS_RX: c_int = 2;
/// cmsg type on `sendmsg`: the content type of the record to send.
const TLS_SET_RECORD_TYPE: c_int = 1;
/// cmsg type on `recvmsg`: the content type of the record received.
const TLS_GET_RECORD_TYPE: c_int = 2;

const ALERT_LEVEL_WARNING: u8 = 1;
const ALERT_CLOSE_NOTIFY: u8 = 0;

/// A buffer this big holds any decrypted record (2^14 bytes of plaintext).
/// Read control records into at least this much: the kernel hands a record
/// that does not fit over in pieces, and a piece does not parse.
pub const CONTROL_RECORD_BYTES_MIN: usize = 16384;

/// Room for one cmsg with a 1-byte payload: CMSG_SPACE(1) is 24 on 64-bit
/// Linux. u64 elements keep it aligned for `cmsghdr`.
type CmsgBuf = [u64; 4];

fn setsockopt_bytes(fd: RawFd, level: c_int, name: c_int, value: &[u8]) -> io::Result<()> {
    let len = socklen_t::try_from(value.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "setsockopt value too long"))?;
    // SAFETY: `value` is a live slice of `len` readable bytes for the whole
    // call; the kernel copies it and keeps no pointer. A bad `fd` is an
    // error return, not UB.
    let rc = unsafe { libc::setsockopt(fd, level, name, value.as_ptr().cast::<c_void>(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `setsockopt(SOL_TCP, TCP_ULP, "tls")`. The socket must be connected.
/// Without keys the ULP passes bytes through unchanged. ENOENT: the kernel
/// has no `tls` (CONFIG_TLS unset or the module cannot load).
pub fn set_ulp(fd: RawFd) -> io::Result<()> {
    setsockopt_bytes(fd, SOL_TCP, TCP_ULP, b"tls")
}

/// Installs the send key. After this, `write`/`send` on the socket produce
/// application-data records, and `send_alert` alert records.
pub fn set_tx(fd: RawFd, tx: &CryptoInfo) -> io::Result<()> {
    setsockopt_bytes(fd, SOL_TLS, TLS_TX, tx.as_bytes())
}

/// Installs the receive key. The first time, this starts kernel decryption
/// of whatever is already queued on the socket. Again after a TLS 1.3
/// KeyUpdate (Linux ≥ 6.14 only; older kernels answer EBUSY), it installs
/// the next key and lets the reads that were failing with EKEYEXPIRED go on.
pub fn set_rx(fd: RawFd, rx: &CryptoInfo) -> io::Result<()> {
    setsockopt_bytes(fd, SOL_TLS, TLS_RX, rx.as_bytes())
}

/// Hands the socket to the kernel: the `tls` ULP, then the TX key, then the
/// RX key. Call it only at a record boundary (see `record_boundary`) with
/// the sequence numbers rustls reported. Once it has started there is no way
/// back to userspace TLS: on error, close the connection.
pub fn enable(fd: RawFd, tx: &CryptoInfo, rx: &CryptoInfo) -> io::Result<()> {
    set_ulp(fd)?;
    set_tx(fd, tx)?;
    set_rx(fd, rx)
}

/// Reads from a kTLS socket with a control buffer, so that a record that is
/// not application data is returned (a plain `recv` fails with EIO on one)
/// together with its content type. One call never mixes record types.
/// Returns `(content_type, bytes)`; `bytes == 0` is end of stream. On a
/// socket without kTLS RX no type comes back, and the bytes are reported as
/// application data.
pub fn recv_record(fd: RawFd, buf: &mut [u8]) -> io::Result<(u8, usize)> {
    let mut cmsg_buf: CmsgBuf = [0; 4];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast::<c_void>(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is a plain C struct; all-zero is its "nothing" value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.as_mut_ptr().cast::<c_void>();
    msg.msg_controllen = size_of_val(&cmsg_buf) as _;
    // SAFETY: `msg` points at `iov` (which points at `buf`) and at
    // `cmsg_buf`, all live and writable for their stated lengths until the
    // call returns; the kernel writes only within them.
    // MSG_DONTWAIT: the shard thread must never block on a socket (the
    // socket itself is blocking); a record not there yet is EAGAIN.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::other("recvmsg: TLS record type cmsg truncated"));
    }
    let mut content_type = CONTENT_TYPE_APPLICATION_DATA;
    // SAFETY: `msg` was filled by a successful recvmsg, so msg_control and
    // msg_controllen describe initialised cmsgs inside `cmsg_buf`; the CMSG_*
    // helpers stay within msg_controllen, and a TLS_GET_RECORD_TYPE cmsg
    // carries one byte of data (checked through cmsg_len before reading).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            if c.cmsg_level == SOL_TLS
                && c.cmsg_type == TLS_GET_RECORD_TYPE
                && c.cmsg_len as usize >= libc::CMSG_LEN(1) as usize
            {
                content_type = *libc::CMSG_DATA(cmsg);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((content_type, n))
}

/// Sends one record of `content_type` through the kernel's TX key (TLS_TX
/// must be set). The probe uses it to send a KeyUpdate to itself.
pub fn send_record(fd: RawFd, content_type: u8, payload: &[u8]) -> io::Result<()> {
    let mut cmsg_buf: CmsgBuf = [0; 4];
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr().cast_mut().cast::<c_void>(),
        iov_len: payload.len(),
    };
    // SAFETY: as in `recv_record`: an all-zero msghdr is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg_buf.as_mut_ptr().cast::<c_void>();
    // SAFETY: CMSG_SPACE is pure arithmetic.
    let space = unsafe { libc::CMSG_SPACE(size_of::<u8>() as u32) } as usize;
    debug_assert!(space <= size_of_val(&cmsg_buf));
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `cmsg_buf`, aligned for cmsghdr and at
    // least CMSG_SPACE(1) bytes long (asserted above), so the first header
    // and its one data byte are inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        debug_assert!(!cmsg.is_null());
        (*cmsg).cmsg_level = SOL_TLS;
        (*cmsg).cmsg_type = TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u8>() as u32) as _;
        *libc::CMSG_DATA(cmsg) = content_type;
    }
    // SAFETY: `msg` describes `payload` (read only: sendmsg does not write
    // through iov_base) and `cmsg_buf`, both live until the call returns.
    // MSG_NOSIGNAL: a peer that has gone away is an EPIPE, not a SIGPIPE.
    // MSG_DONTWAIT: never block the shard; a full send buffer is EAGAIN (an
    // alert that cannot be sent now is not sent: the connection is closing).
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != payload.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short send of a TLS control record",
        ));
    }
    Ok(())
}

/// Sends an alert record encrypted by the kernel (TLS_TX must be set).
pub fn send_alert(fd: RawFd, level: u8, description: u8) -> io::Result<()> {
    send_record(fd, CONTENT_TYPE_ALERT, &[level, description])
}

/// Sends close_notify through the kernel, before we close the socket.
pub fn send_close_notify(fd: RawFd) -> io::Result<()> {
    send_alert(fd, ALERT_LEVEL_WARNING, ALERT_CLOSE_NOTIFY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (c, s)
    }

    /// The shard calls this on its own thread: with nothing to read it
    /// must return at once, not wait (the socket is a blocking one).
    #[test]
    fn recv_record_never_blocks_the_shard() {
        let (_c, s) = pair();
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let start = std::time::Instant::now();
        let mut buf = [0u8; 64];
        let err = recv_record(s.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(start.elapsed() < std::time::Duration::from_millis(500));
    }

    #[test]
    fn recv_record_on_a_plain_socket_reports_application_data() {
        let (mut c, s) = pair();
        c.write_all(b"hello").unwrap();
        let mut buf = [0u8; 64];
        let (ct, n) = recv_record(s.as_raw_fd(), &mut buf).unwrap();
        assert_eq!(
            (ct, &buf[..n]),
            (CONTENT_TYPE_APPLICATION_DATA, &b"hello"[..])
        );
        drop(c);
        assert_eq!(recv_record(s.as_raw_fd(), &mut buf).unwrap().1, 0);
    }

    #[test]
    fn bad_fd_is_an_error_not_a_crash() {
        let mut buf = [0u8; 8];
        assert!(recv_record(-1, &mut buf).is_err());
        assert!(send_close_notify(-1).is_err());
        assert!(set_ulp(-1).is_err());
    }
}
