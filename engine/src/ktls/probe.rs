//! What this kernel can offload, found once at start-up by trying it.
//!
//! Everything is probed on loopback TCP pairs the probe makes itself, with
//! dummy keys; no data is ever decrypted with them:
//! 1. `TCP_ULP "tls"`: without it nothing else is tried.
//! 2. For each version × cipher, on a fresh pair: `TLS_TX` then `TLS_RX`.
//!    A cipher counts only if both are accepted, because `enable` sets both.
//!    This also catches a kernel whose crypto module for the AEAD is missing.
//! 3. TLS 1.3 rekey, behaviourally: one end sends a KeyUpdate through its
//!    kernel TX key, the other end's kernel decrypts it, and then `TLS_RX` is
//!    set a second time. Linux ≥ 6.14 accepts that (it is how a new key is
//!    installed after a KeyUpdate); older kernels answer EBUSY. Only if the
//!    exchange itself fails is the kernel version (≥ 6.14) used instead;
//!    `RekeyEvidence` says which it was.

use std::fmt;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::control::CONTENT_TYPE_HANDSHAKE;
use super::crypto_info::{CryptoInfo, KtlsCipher, KtlsVersion};
use super::sockopt::{recv_record, send_record, set_rx, set_tx, set_ulp};

/// The first kernel whose kTLS can install a new TLS 1.3 RX key.
const REKEY_KERNEL_MIN: (u32, u32) = (6, 14);
/// Bounds the rekey probe's one read, so a surprising kernel cannot hang
/// start-up.
const PROBE_READ_TIMEOUT_MS: u64 = 1000;

/// The AEADs the kernel accepted for one TLS version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CipherSet {
    pub aes128gcm: bool,
    pub aes256gcm: bool,
    pub chacha20: bool,
}

impl CipherSet {
    pub const NONE: CipherSet = CipherSet {
        aes128gcm: false,
        aes256gcm: false,
        chacha20: false,
    };
    pub const ALL: CipherSet = CipherSet {
        aes128gcm: true,
        aes256gcm: true,
        chacha20: true,
    };

    pub fn has(&self, cipher: KtlsCipher) -> bool {
        match cipher {
            KtlsCipher::Aes128Gcm => self.aes128gcm,
            KtlsCipher::Aes256Gcm => self.aes256gcm,
            KtlsCipher::Chacha20Poly1305 => self.chacha20,
        }
    }

    pub fn insert(&mut self, cipher: KtlsCipher) {
        match cipher {
            KtlsCipher::Aes128Gcm => self.aes128gcm = true,
            KtlsCipher::Aes256Gcm => self.aes256gcm = true,
            KtlsCipher::Chacha20Poly1305 => self.chacha20 = true,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == CipherSet::NONE
    }

    /// Any cipher in the set, AES-GCM first.
    pub fn first(&self) -> Option<KtlsCipher> {
        KtlsCipher::ALL.into_iter().find(|c| self.has(*c))
    }
}

impl fmt::Display for CipherSet {
    /// `[aes128gcm aes256gcm chacha20]`, `[]` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        let mut sep = "";
        for c in KtlsCipher::ALL.into_iter().filter(|c| self.has(*c)) {
            write!(f, "{sep}{}", c.label())?;
            sep = " ";
        }
        f.write_str("]")
    }
}

/// How `tls13_rekey` was decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RekeyEvidence {
    /// No kTLS, or no TLS 1.3 cipher: nothing to probe; `tls13_rekey` is false.
    NotProbed,
    /// After a KeyUpdate the kernel accepted a second TLS_RX (Linux ≥ 6.14).
    SecondRxAccepted,
    /// After a KeyUpdate the kernel refused a second TLS_RX with EBUSY.
    SecondRxRefused,
    /// The exchange failed with this errno; the kernel version decided.
    KernelVersion { errno: i32 },
}

impl fmt::Display for RekeyEvidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RekeyEvidence::NotProbed => f.write_str("not probed"),
            RekeyEvidence::SecondRxAccepted => f.write_str("TLS_RX after KeyUpdate accepted"),
            RekeyEvidence::SecondRxRefused => f.write_str("TLS_RX after KeyUpdate: EBUSY"),
            RekeyEvidence::KernelVersion { errno } => {
                write!(
                    f,
                    "probe failed ({}), by kernel version",
                    errno_name(*errno)
                )
            }
        }
    }
}

/// The probe's result; logged once at start-up through `Display`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KtlsSupport {
    /// `TCP_ULP "tls"` works.
    pub ulp: bool,
    /// AEADs for which both TLS_TX and TLS_RX were accepted, per version.
    pub tls12: CipherSet,
    pub tls13: CipherSet,
    /// The kernel can install a new TLS 1.3 RX key after a KeyUpdate.
    pub tls13_rekey: bool,
    pub rekey_evidence: RekeyEvidence,
    /// `uname -r`.
    pub kernel: String,
    /// Why kTLS is unavailable, for the log line, when `ulp` is false.
    pub unavailable: Option<String>,
}

impl KtlsSupport {
    /// Probes this kernel (see the module docs). Never panics; any failure
    /// means "not supported" and is recorded.
    pub fn probe() -> Self {
        let kernel = kernel_release();
        let mut support = KtlsSupport {
            ulp: false,
            tls12: CipherSet::NONE,
            tls13: CipherSet::NONE,
            tls13_rekey: false,
            rekey_evidence: RekeyEvidence::NotProbed,
            kernel,
            unavailable: None,
        };
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => {
                support.unavailable = Some(format!("probe socket: {e}"));
                return support;
            }
        };
        match probe_ulp(&listener) {
            Ok(()) => support.ulp = true,
            Err(e) => {
                support.unavailable = Some(e);
                return support;
            }
        }
        for version in KtlsVersion::ALL {
            for cipher in KtlsCipher::ALL {
                if probe_cipher(&listener, version, cipher).is_ok() {
                    support.ciphers_mut(version).insert(cipher);
                }
            }
        }
        if let Some(cipher) = support.tls13.first() {
            support.rekey_evidence = match probe_rekey(&listener, cipher) {
                Ok(true) => RekeyEvidence::SecondRxAccepted,
                Ok(false) => RekeyEvidence::SecondRxRefused,
                Err(e) => RekeyEvidence::KernelVersion {
                    errno: e.raw_os_error().unwrap_or(0),
                },
            };
            support.tls13_rekey = match support.rekey_evidence {
                RekeyEvidence::SecondRxAccepted => true,
                RekeyEvidence::KernelVersion { .. } => {
                    kernel_version(&support.kernel).is_some_and(|v| v >= REKEY_KERNEL_MIN)
                }
                _ => false,
            };
        }
        support
    }

    /// The probe's result for this process: probed on first use, then
    /// shared, so sources and forward destinations (built on other
    /// threads) judge by one answer and it is logged once.
    pub fn shared() -> Arc<KtlsSupport> {
        static SHARED: OnceLock<Arc<KtlsSupport>> = OnceLock::new();
        Arc::clone(SHARED.get_or_init(|| Arc::new(KtlsSupport::probe())))
    }

    /// A support record for a kernel described by hand: for tests, and for
    /// reasoning about kernels other than this one.
    pub fn simulated(ulp: bool, tls12: CipherSet, tls13: CipherSet, tls13_rekey: bool) -> Self {
        KtlsSupport {
            ulp,
            tls12,
            tls13,
            tls13_rekey,
            rekey_evidence: RekeyEvidence::NotProbed,
            kernel: "simulated".to_string(),
            unavailable: (!ulp).then(|| "simulated".to_string()),
        }
    }

    pub fn ciphers(&self, version: KtlsVersion) -> CipherSet {
        match version {
            KtlsVersion::Tls12 => self.tls12,
            KtlsVersion::Tls13 => self.tls13,
        }
    }

    fn ciphers_mut(&mut self, version: KtlsVersion) -> &mut CipherSet {
        match version {
            KtlsVersion::Tls12 => &mut self.tls12,
            KtlsVersion::Tls13 => &mut self.tls13,
        }
    }

    /// Why kTLS cannot be used here ("" when it can).
    pub fn unavailable_reason(&self) -> &str {
        self.unavailable.as_deref().unwrap_or("")
    }
}

impl fmt::Display for KtlsSupport {
    /// The start-up log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.ulp {
            return write!(
                f,
                "kTLS: unavailable ({}); all connections stay in userspace rustls (kernel {})",
                self.unavailable_reason(),
                self.kernel
            );
        }
        write!(
            f,
            "kTLS: tls1.2 {}, tls1.3 {}, rekey: {} (kernel {}, {})",
            self.tls12,
            self.tls13,
            if self.tls13_rekey { "yes" } else { "no" },
            self.kernel,
            self.rekey_evidence
        )
    }
}

/// A connected loopback pair: (client end, server end).
fn pair(listener: &TcpListener) -> io::Result<(TcpStream, TcpStream)> {
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}

fn probe_ulp(listener: &TcpListener) -> Result<(), String> {
    let (client, _server) = pair(listener).map_err(|e| format!("probe socket: {e}"))?;
    set_ulp(client.as_raw_fd()).map_err(|e| format!("TCP_ULP tls: {}", io_errno_name(&e)))
}

/// Deterministic dummy key material; never used for real traffic.
fn dummy(version: KtlsVersion, cipher: KtlsCipher, generation: u8) -> CryptoInfo {
    let key_len = match cipher {
        KtlsCipher::Aes128Gcm => 16,
        KtlsCipher::Aes256Gcm | KtlsCipher::Chacha20Poly1305 => 32,
    };
    let key = [0x5a ^ generation; 32];
    let iv = [0xa5 ^ generation; 12];
    CryptoInfo::from_parts(version, cipher, 0, &key[..key_len], &iv)
        .expect("dummy key lengths match the cipher")
}

fn probe_cipher(
    listener: &TcpListener,
    version: KtlsVersion,
    cipher: KtlsCipher,
) -> io::Result<()> {
    let (client, _server) = pair(listener)?;
    let fd = client.as_raw_fd();
    let info = dummy(version, cipher, 0);
    set_ulp(fd)?;
    set_tx(fd, &info)?;
    set_rx(fd, &info)
}

/// Ok(true): a second TLS_RX after a KeyUpdate works. Ok(false): EBUSY.
fn probe_rekey(listener: &TcpListener, cipher: KtlsCipher) -> io::Result<bool> {
    let (sender, receiver) = pair(listener)?;
    receiver.set_read_timeout(Some(Duration::from_millis(PROBE_READ_TIMEOUT_MS)))?;
    let key0 = dummy(KtlsVersion::Tls13, cipher, 0);
    set_ulp(sender.as_raw_fd())?;
    set_tx(sender.as_raw_fd(), &key0)?;
    set_ulp(receiver.as_raw_fd())?;
    set_rx(receiver.as_raw_fd(), &key0)?;
    // KeyUpdate(update_not_requested), as its own handshake record.
    send_record(
        sender.as_raw_fd(),
        CONTENT_TYPE_HANDSHAKE,
        &[24, 0, 0, 1, 0],
    )?;
    let mut buf = [0u8; 64];
    let (content_type, n) = recv_record(receiver.as_raw_fd(), &mut buf)?;
    if content_type != CONTENT_TYPE_HANDSHAKE || n != 5 {
        return Err(io::Error::from_raw_os_error(libc::EPROTO));
    }
    match set_rx(receiver.as_raw_fd(), &dummy(KtlsVersion::Tls13, cipher, 1)) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(false),
        Err(e) => Err(e),
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// "6.1.0-56-amd64" → (6, 1).
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn io_errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(errno) => errno_name(errno),
        None => e.to_string(),
    }
}

/// The symbolic name of the errnos the probe can meet.
fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ENOENT => "ENOENT",
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::EBUSY => "EBUSY",
        libc::ENOMEM => "ENOMEM",
        libc::ENOTCONN => "ENOTCONN",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOSYS => "ENOSYS",
        libc::EAGAIN => "EAGAIN",
        libc::EPROTO => "EPROTO",
        libc::EIO => "EIO",
        libc::EKEYEXPIRED => "EKEYEXPIRED",
        libc::EBADMSG => "EBADMSG",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_never_panics_and_agrees_with_itself() {
        let s = KtlsSupport::probe();
        let line = s.to_string();
        assert!(line.starts_with("kTLS: "), "{line}");
        if s.ulp {
            assert!(s.unavailable.is_none());
        } else {
            // This host (CONFIG_TLS unset): nothing offloads, one clear line.
            assert!(s.tls12.is_empty() && s.tls13.is_empty() && !s.tls13_rekey);
            assert_eq!(s.rekey_evidence, RekeyEvidence::NotProbed);
            assert!(
                line.contains("unavailable (") && line.contains("stay in userspace rustls"),
                "{line}"
            );
        }
        println!("{line}");
    }

    #[test]
    fn this_host_has_no_ktls() {
        // The development hosts and CI run a kernel with `# CONFIG_TLS is
        // not set`; the guest-kernel test covers the other side. Skip rather
        // than fail on a host that does have kTLS.
        let s = KtlsSupport::probe();
        if s.ulp {
            eprintln!("skipped: this kernel has kTLS ({s})");
            return;
        }
        assert_eq!(s.unavailable.as_deref(), Some("TCP_ULP tls: ENOENT"), "{s}");
    }

    #[test]
    fn display_lines() {
        let none = KtlsSupport {
            kernel: "6.18.44".into(),
            unavailable: Some("TCP_ULP tls: ENOENT".into()),
            ..KtlsSupport::simulated(false, CipherSet::NONE, CipherSet::NONE, false)
        };
        assert_eq!(
            none.to_string(),
            "kTLS: unavailable (TCP_ULP tls: ENOENT); all connections stay in userspace \
             rustls (kernel 6.18.44)"
        );
        let mut no_chacha = CipherSet::ALL;
        no_chacha.chacha20 = false;
        let k61 = KtlsSupport {
            kernel: "6.1.0-56-amd64".into(),
            rekey_evidence: RekeyEvidence::SecondRxRefused,
            ..KtlsSupport::simulated(true, CipherSet::ALL, no_chacha, false)
        };
        assert_eq!(
            k61.to_string(),
            "kTLS: tls1.2 [aes128gcm aes256gcm chacha20], tls1.3 [aes128gcm aes256gcm], \
             rekey: no (kernel 6.1.0-56-amd64, TLS_RX after KeyUpdate: EBUSY)"
        );
        assert_eq!(CipherSet::NONE.to_string(), "[]");
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(kernel_version("6.1.0-56-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(kernel_version("6.14"), Some((6, 14)));
        assert!(kernel_version("6.14") >= Some(REKEY_KERNEL_MIN));
        assert!(kernel_version("6.9.1") < Some(REKEY_KERNEL_MIN));
        assert_eq!(kernel_version("unknown"), None);
        assert_eq!(kernel_version(""), None);
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::ENOENT), "ENOENT");
        assert_eq!(errno_name(9999), "errno 9999");
    }
}
