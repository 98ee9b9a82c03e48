//! The kTLS phases of a connection, without IO of their own.
//!
//! A TLS connection that may be offloaded goes through three steps, each a
//! piece here that [`super::Conn`] drives and the shard feeds:
//!
//! 1. [`ExactReads`]: the handshake is read record by record, with exact
//!    lengths (5 bytes of header, then the body), so that when rustls says
//!    the handshake is over not one byte past it has left the socket. The
//!    kernel can take over only at a record boundary, and bytes already in
//!    userspace are lost to it (tests/ktls-vm/NOTES.md §1 A).
//! 2. [`Pending`]: the keys, extracted from rustls, wait until the shard has
//!    sent the last handshake flight. Once `TLS_TX` is set, anything still
//!    queued for the socket would be encrypted a second time.
//! 3. [`Offloaded`]: the kernel decrypts; plaintext arrives through the
//!    shard's buffer ring. A record that is not application data makes the
//!    receive fail with EIO; [`Offloaded::on_control`] reads it with
//!    `recvmsg` and acts on it.
//!
//! The syscalls go through the [`KtlsSocket`] trait, so tests drive every
//! phase from memory with a fake socket; the shard passes [`FdSocket`].

use std::fmt;
use std::io;
use std::os::fd::RawFd;

use rustls::kernel::KernelConnection;
use rustls::server::ServerConnectionData;
use rustls::{AlertDescription, ProtocolVersion};

use crate::record::{ControlBudget, ReaderLimits, RecordError, HEADER_LEN, RECORD_LEN_MAX};

use crate::ktls::{
    self, ControlAction, ControlError, ControlRecord, CryptoInfo, Decision, KtlsVersion,
    UserspaceReason,
};

/// The buffer for one handshake record: header plus the largest payload.
pub const EXACT_READ_BYTES_MAX: usize = RECORD_LEN_MAX;

/// Room for a control record's decrypted payload (any record fits).
const CONTROL_BUF_BYTES: usize = ktls::CONTROL_RECORD_BYTES_MIN + 256;

/// TLS alert level fatal, description unexpected_message.
const ALERT_FATAL: u8 = 2;
const ALERT_UNEXPECTED_MESSAGE: u8 = 10;

/// The syscalls of the kTLS path, one socket.
pub trait KtlsSocket {
    /// `TCP_ULP "tls"`, then `TLS_TX`, then `TLS_RX`.
    fn enable(&mut self, tx: &CryptoInfo, rx: &CryptoInfo) -> io::Result<()>;
    /// `recvmsg` with a control buffer: (content type, bytes).
    fn recv_record(&mut self, buf: &mut [u8]) -> io::Result<(u8, usize)>;
    /// A new receive key after a TLS 1.3 KeyUpdate (Linux ≥ 6.14).
    fn set_rx(&mut self, rx: &CryptoInfo) -> io::Result<()>;
    fn send_close_notify(&mut self) -> io::Result<()>;
    fn send_alert(&mut self, level: u8, description: u8) -> io::Result<()>;
}

/// The real socket: [`crate::ktls`]'s syscalls on a file descriptor.
pub struct FdSocket(pub RawFd);

impl KtlsSocket for FdSocket {
    fn enable(&mut self, tx: &CryptoInfo, rx: &CryptoInfo) -> io::Result<()> {
        ktls::enable(self.0, tx, rx)
    }
    fn recv_record(&mut self, buf: &mut [u8]) -> io::Result<(u8, usize)> {
        ktls::recv_record(self.0, buf)
    }
    fn set_rx(&mut self, rx: &CryptoInfo) -> io::Result<()> {
        ktls::set_rx(self.0, rx)
    }
    fn send_close_notify(&mut self) -> io::Result<()> {
        ktls::send_close_notify(self.0)
    }
    fn send_alert(&mut self, level: u8, description: u8) -> io::Result<()> {
        ktls::send_alert(self.0, level, description)
    }
}

/// The `path` label of `ringest_tls_connections_total`: `ktls`, or
/// `userspace_<reason>`. Static strings, because stats labels are.
pub fn path_label(decision: Decision) -> &'static str {
    match decision {
        Decision::Offload => "ktls",
        Decision::Userspace(r) => match r {
            UserspaceReason::ModeOff => "userspace_mode_off",
            UserspaceReason::KernelLacksKtls => "userspace_kernel_lacks_ktls",
            UserspaceReason::VersionUnsupported => "userspace_version_unsupported",
            UserspaceReason::CipherUnsupported => "userspace_cipher_unsupported",
            UserspaceReason::Tls13RekeyUnsupported => "userspace_tls13_rekey_unsupported",
            UserspaceReason::HandshakeNotAligned => "userspace_handshake_not_aligned",
        },
    }
}

// ------------------------------------------------------------ exact reads

/// Record-exact reading of the handshake.
///
/// The shard asks [`ExactReads::want`] how many bytes to read, receives
/// exactly that many (or fewer: a short read just asks again) into
/// [`ExactReads::spare_mut`], and reports them with [`ExactReads::filled`].
/// Once [`ExactReads::whole_record`] returns a record, it goes to rustls and
/// the buffer starts over.
///
/// The buffer is allocated once, at its full size, and never grows: the
/// kernel writes into it while a receive is in flight, so it must not move.
pub struct ExactReads {
    buf: Box<[u8]>,
    filled: usize,
}

impl Default for ExactReads {
    fn default() -> Self {
        ExactReads::new()
    }
}

impl ExactReads {
    pub fn new() -> ExactReads {
        ExactReads {
            buf: vec![0u8; EXACT_READ_BYTES_MAX].into_boxed_slice(),
            filled: 0,
        }
    }

    /// Bytes the next read must ask for: never more than the rest of the
    /// current record, so nothing past it is read. `Err` when the header is
    /// not a TLS record's: its length came from the peer and is not to be
    /// read.
    pub fn want(&self) -> Result<usize, RecordError> {
        let b = ktls::record_boundary(&self.buf[..self.filled])?;
        debug_assert!(b.records <= 1, "the buffer holds at most one record");
        if b.records == 1 {
            return Ok(0);
        }
        // Nothing yet: a header. A header: the body. `record_boundary`
        // bounds the record by RECORD_LEN_MAX, which the buffer holds.
        Ok(if self.filled == 0 {
            HEADER_LEN
        } else {
            b.missing_bytes
        })
    }

    /// Where the next read goes: exactly `want()` bytes (empty on a bad header).
    pub fn spare_mut(&mut self) -> &mut [u8] {
        let want = self.want().unwrap_or(0);
        let end = (self.filled + want).min(self.buf.len());
        &mut self.buf[self.filled..end]
    }

    /// `n` bytes were read into `spare_mut()`.
    pub fn filled(&mut self, n: usize) {
        debug_assert!(self.filled + n <= self.buf.len());
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// The bytes read so far (the first bytes decide "TLS or not").
    pub fn read_so_far(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    /// The record, once it is whole; call [`ExactReads::clear`] after use.
    pub fn whole_record(&mut self) -> Option<&mut [u8]> {
        match self.want() {
            Ok(0) if self.filled > 0 => Some(&mut self.buf[..self.filled]),
            _ => None,
        }
    }

    pub fn clear(&mut self) {
        self.filled = 0;
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

// ------------------------------------------------------------ pending

/// Keys taken from rustls, waiting for the last handshake flight to be sent.
pub struct Pending {
    tx: CryptoInfo,
    rx: CryptoInfo,
    offloaded: Offloaded,
}

impl Pending {
    /// `kconn` is kept only where the kernel can follow a TLS 1.3 KeyUpdate:
    /// it holds the traffic secrets and is needed only for `update_rx_secret`.
    pub fn new(
        tx: CryptoInfo,
        rx: CryptoInfo,
        kconn: KernelConnection<ServerConnectionData>,
        can_rekey: bool,
    ) -> Pending {
        let version = tx.version();
        let keep = version == KtlsVersion::Tls13 && can_rekey;
        Pending {
            tx,
            rx,
            offloaded: Offloaded {
                version,
                budget: ControlBudget::new(&ReaderLimits::default()),
                kconn: keep.then_some(kconn),
                can_rekey,
                rekeys: 0,
            },
        }
    }

    pub fn tx_seq(&self) -> u64 {
        self.tx.seq()
    }

    pub fn rx_seq(&self) -> u64 {
        self.rx.seq()
    }

    /// Hands the socket to the kernel. On error the rustls state is gone
    /// already: the connection must close. The keys are wiped either way
    /// (`CryptoInfo` zeroes itself on drop).
    pub fn enable(self, sock: &mut impl KtlsSocket) -> Result<Offloaded, KtlsClose> {
        sock.enable(&self.tx, &self.rx)
            .map_err(|e| KtlsClose::EnableFailed(errno_of(&e)))?;
        Ok(self.offloaded)
    }
}

// ------------------------------------------------------------ offloaded

/// An offloaded connection: what is left of TLS in userspace.
pub struct Offloaded {
    version: KtlsVersion,
    /// The userspace record layer's limits on control records without data.
    budget: ControlBudget,
    /// Only for TLS 1.3 on a kernel that can rekey.
    kconn: Option<KernelConnection<ServerConnectionData>>,
    can_rekey: bool,
    rekeys: u64,
}

/// What a control record asks of the connection.
#[derive(Debug)]
pub enum ControlOutcome {
    /// Application data after all (a race, nothing wrong): frame these bytes.
    Data(Vec<u8>),
    /// Keep receiving (ignored record, or rekeyed).
    Continue,
    /// close_notify, answered: flush the framer, close.
    Finished,
    /// End of stream without close_notify.
    Eof,
    /// Close for this reason (an alert we had to send is sent).
    Close(KtlsClose),
}

impl Offloaded {
    pub fn version(&self) -> KtlsVersion {
        self.version
    }

    pub fn rekeys(&self) -> u64 {
        self.rekeys
    }

    /// Application data arrived: the control-record budget starts over.
    pub fn on_data(&mut self) {
        self.budget.on_data();
    }

    /// After a receive failed with EIO: reads the record at the head of the
    /// socket with its type, and acts on it. `counted` gets the record's
    /// type label (for `ringest_ktls_control_records_total`) when it is a
    /// control record.
    pub fn on_control(
        &mut self,
        sock: &mut impl KtlsSocket,
        counted: &mut Option<&'static str>,
    ) -> ControlOutcome {
        // Rare (alerts, KeyUpdate): a fresh buffer costs nothing here, and
        // an idle connection holds none.
        let mut buf = vec![0u8; CONTROL_BUF_BYTES];
        let (content_type, n) = match sock.recv_record(&mut buf) {
            Ok(r) => r,
            // The record is not there yet (reads never block the shard):
            // the next receive reports it again.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ControlOutcome::Continue,
            Err(e) => return ControlOutcome::Close(KtlsClose::from_recv_errno(errno_of(&e))),
        };
        if n == 0 {
            return ControlOutcome::Eof;
        }
        let payload = &buf[..n.min(buf.len())];
        if content_type == ktls::CONTENT_TYPE_APPLICATION_DATA {
            return ControlOutcome::Data(payload.to_vec());
        }
        let record = match ktls::parse_control_record(content_type, payload) {
            Ok(r) => r,
            Err(e) => {
                *counted = Some("malformed");
                let _ = sock.send_alert(ALERT_FATAL, ALERT_UNEXPECTED_MESSAGE);
                return ControlOutcome::Close(KtlsClose::BadControlRecord(e));
            }
        };
        *counted = Some(record.label());
        match ktls::action_for(&record, self.version, self.can_rekey, &mut self.budget) {
            ControlAction::Ignore => ControlOutcome::Continue,
            ControlAction::Finish => {
                // Every byte before close_notify has been received: answer,
                // under the kernel's TX key, then close.
                let _ = sock.send_close_notify();
                ControlOutcome::Finished
            }
            ControlAction::Rekey { .. } => match self.rekey(sock) {
                Ok(()) => ControlOutcome::Continue,
                Err(close) => ControlOutcome::Close(close),
            },
            ControlAction::CloseRekeyUnsupported => {
                // At once: the kernel has not touched the next record (under
                // the peer's new key) yet, so the socket is still sound and
                // close_notify goes out. Every record before the KeyUpdate
                // has been received.
                let _ = sock.send_close_notify();
                ControlOutcome::Close(KtlsClose::KeyUpdateUnfollowable)
            }
            ControlAction::CloseAlert { level, description } => {
                ControlOutcome::Close(KtlsClose::PeerAlert { level, description })
            }
            ControlAction::CloseProtocolError(why) => {
                let _ = sock.send_alert(ALERT_FATAL, ALERT_UNEXPECTED_MESSAGE);
                ControlOutcome::Close(KtlsClose::ProtocolError(record, why))
            }
        }
    }

    /// Installs the peer's next key (TLS 1.3 KeyUpdate, Linux ≥ 6.14).
    fn rekey(&mut self, sock: &mut impl KtlsSocket) -> Result<(), KtlsClose> {
        let Some(kconn) = self.kconn.as_mut() else {
            return Err(KtlsClose::RekeyFailed("no key schedule kept".into()));
        };
        let (seq, secrets) = kconn
            .update_rx_secret()
            .map_err(|e| KtlsClose::RekeyFailed(e.to_string()))?;
        let rx = CryptoInfo::new(ProtocolVersion::TLSv1_3, seq, &secrets)
            .map_err(|e| KtlsClose::RekeyFailed(e.to_string()))?;
        sock.set_rx(&rx)
            .map_err(|e| KtlsClose::RekeyFailed(format!("TLS_RX: {e}")))?;
        self.rekeys += 1;
        Ok(())
    }
}

// ------------------------------------------------------------ close reasons

/// Why an offloaded connection (or one on its way there) was closed.
#[derive(Debug, Clone, PartialEq)]
pub enum KtlsClose {
    /// `enable` failed (errno). After a successful probe this should not happen.
    EnableFailed(i32),
    /// TLS 1.3 KeyUpdate on a kernel that cannot install a new RX key
    /// (only with `ktls = "on"`).
    KeyUpdateUnfollowable,
    /// The peer sent a fatal alert.
    PeerAlert { level: u8, description: u8 },
    /// A control record that breaks the protocol after the handshake.
    ProtocolError(ControlRecord, &'static str),
    /// A control record that does not parse.
    BadControlRecord(ControlError),
    /// The kernel refused a record: EBADMSG (authentication failed),
    /// EMSGSIZE / EINVAL (not a TLS record: garbage on the stream).
    BadRecord(i32),
    /// Any other receive error on the kTLS socket.
    RecvError(i32),
    /// Installing the key after a KeyUpdate failed.
    RekeyFailed(String),
}

impl KtlsClose {
    /// An errno from a receive on a kTLS socket, as a close reason.
    pub fn from_recv_errno(errno: i32) -> KtlsClose {
        match errno {
            libc::EBADMSG | libc::EMSGSIZE | libc::EINVAL => KtlsClose::BadRecord(errno),
            _ => KtlsClose::RecvError(errno),
        }
    }

    /// Whether a receive error on a kTLS socket is the kernel refusing what
    /// the peer sent (a close reason of ours), rather than the peer going
    /// away (reset, EOF), which closes as on any socket.
    pub fn is_kernel_refusal(errno: i32) -> bool {
        matches!(
            errno,
            libc::EBADMSG | libc::EMSGSIZE | libc::EINVAL | libc::EKEYEXPIRED | libc::EIO
        )
    }

    pub fn label(&self) -> &'static str {
        match self {
            KtlsClose::EnableFailed(_) => "ktls_enable_failed",
            KtlsClose::KeyUpdateUnfollowable => "ktls_key_update_unfollowable",
            KtlsClose::PeerAlert { .. } => "peer_alert",
            KtlsClose::ProtocolError(..) => "ktls_protocol_error",
            KtlsClose::BadControlRecord(_) => "ktls_bad_control_record",
            KtlsClose::BadRecord(libc::EBADMSG) => "ktls_record_auth_failed",
            KtlsClose::BadRecord(_) => "ktls_not_a_record",
            KtlsClose::RecvError(_) => "recv_error",
            KtlsClose::RekeyFailed(_) => "ktls_rekey_failed",
        }
    }
}

impl fmt::Display for KtlsClose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KtlsClose::EnableFailed(e) => {
                write!(f, "kTLS: enabling offload failed ({})", errno_text(*e))
            }
            KtlsClose::KeyUpdateUnfollowable => f.write_str(
                "kTLS: peer sent a TLS 1.3 KeyUpdate; this kernel cannot follow it \
                 (needs Linux 6.14), so the connection is closed after every message \
                 before it (set ktls = \"auto\" to keep TLS 1.3 in userspace here)",
            ),
            KtlsClose::PeerAlert { level, description } => write!(
                f,
                "kTLS: peer sent alert {:?} (level {level})",
                AlertDescription::from(*description)
            ),
            KtlsClose::ProtocolError(rec, why) => write!(f, "kTLS: {why} ({rec})"),
            KtlsClose::BadControlRecord(e) => write!(f, "kTLS: malformed control record: {e}"),
            KtlsClose::BadRecord(e) if *e == libc::EBADMSG => write!(
                f,
                "kTLS: a record failed authentication ({})",
                errno_text(*e)
            ),
            KtlsClose::BadRecord(e) => write!(
                f,
                "kTLS: the peer sent bytes that are not a TLS record ({})",
                errno_text(*e)
            ),
            KtlsClose::RecvError(e) => write!(f, "kTLS: receive failed ({})", errno_text(*e)),
            KtlsClose::RekeyFailed(e) => write!(f, "kTLS: installing the new key failed: {e}"),
        }
    }
}

fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn errno_text(errno: i32) -> String {
    let name = match errno {
        libc::EBADMSG => "EBADMSG",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::EINVAL => "EINVAL",
        libc::EIO => "EIO",
        libc::EKEYEXPIRED => "EKEYEXPIRED",
        libc::ENOENT => "ENOENT",
        libc::EBUSY => "EBUSY",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOTCONN => "ENOTCONN",
        _ => return io::Error::from_raw_os_error(errno).to_string(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content_type: u8, len: usize) -> Vec<u8> {
        let mut r = vec![content_type, 3, 3];
        r.extend_from_slice(&(len as u16).to_be_bytes());
        r.resize(HEADER_LEN + len, 0xEE);
        r
    }

    /// Feeds `bytes` through ExactReads as a socket would, `chunk` bytes at
    /// most per read; returns the whole records and the read lengths asked.
    fn drive(bytes: &[u8], chunk: usize) -> (Vec<Vec<u8>>, Vec<usize>) {
        let mut ex = ExactReads::new();
        let mut records = Vec::new();
        let mut asked = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let want = ex.want().unwrap();
            assert!(want > 0);
            asked.push(want);
            let n = want.min(chunk).min(bytes.len() - at);
            ex.spare_mut()[..n].copy_from_slice(&bytes[at..at + n]);
            ex.filled(n);
            at += n;
            if let Some(r) = ex.whole_record() {
                records.push(r.to_vec());
                ex.clear();
            }
        }
        (records, asked)
    }

    #[test]
    fn exact_reads_never_ask_past_a_record() {
        let mut stream = record(22, 300);
        stream.extend(record(20, 1));
        stream.extend(record(23, 16_000));
        let (records, asked) = drive(&stream, usize::MAX);
        assert_eq!(records.len(), 3);
        assert_eq!(records.concat(), stream);
        assert_eq!(asked, vec![5, 300, 5, 1, 5, 16_000]);
    }

    #[test]
    fn exact_reads_survive_short_reads() {
        // A header split over reads asks only for its missing bytes, a body
        // only for its rest.
        let mut stream = record(22, 40);
        stream.extend(record(22, 7));
        let (records, asked) = drive(&stream, 3);
        assert_eq!(records, vec![record(22, 40), record(22, 7)]);
        assert_eq!(asked[..4], [5, 2, 40, 37]);
        assert!(asked.iter().all(|&n| n > 0));
    }

    #[test]
    fn exact_reads_take_the_largest_record_and_refuse_garbage() {
        let (records, _) = drive(
            &record(23, crate::record::TLS12_CIPHERTEXT_LEN_MAX),
            usize::MAX,
        );
        assert_eq!(records.len(), 1);
        let mut ex = ExactReads::new();
        ex.spare_mut().copy_from_slice(b"<13>1");
        ex.filled(5);
        assert!(ex.want().is_err());
        assert!(ex.spare_mut().is_empty());
        assert!(ex.whole_record().is_none());
    }

    #[test]
    fn path_labels() {
        assert_eq!(path_label(Decision::Offload), "ktls");
        for r in UserspaceReason::ALL {
            let l = path_label(Decision::Userspace(r));
            assert_eq!(l, format!("userspace_{}", r.label()));
        }
    }

    #[test]
    fn close_reasons_say_why() {
        let garbage = KtlsClose::from_recv_errno(libc::EMSGSIZE);
        assert_eq!(garbage.label(), "ktls_not_a_record");
        assert!(garbage.to_string().contains("not a TLS record (EMSGSIZE)"));
        assert_eq!(
            KtlsClose::from_recv_errno(libc::EBADMSG).label(),
            "ktls_record_auth_failed"
        );
        let alert = KtlsClose::PeerAlert {
            level: 2,
            description: 40,
        };
        assert!(alert.to_string().contains("HandshakeFailure"), "{alert}");
        assert!(KtlsClose::KeyUpdateUnfollowable
            .to_string()
            .contains("KeyUpdate"));
    }
}
