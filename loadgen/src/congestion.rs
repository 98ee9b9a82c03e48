//! `--tcp-congestion`: the TCP congestion control of loadgen's sending
//! connections (TCP_CONGESTION), so a benchmark does not depend on the
//! machine's `net.ipv4.tcp_congestion_control`.
//!
//! Why it matters on loopback: a pacing congestion control (BBR, and any
//! socket the kernel paces without the fq qdisc) arms an hrtimer per
//! socket, and the paced transmit — the client's TCP send path and the
//! loopback delivery into the server's socket — runs in the timer's
//! softirq, charged to whatever task it interrupts, often the server.
//! Without pacing (cubic, Linux's default) the client's `sendmsg` does
//! that work itself, as on a network where the sender's CPU sends.

use std::io;

/// TCP_CA_NAME_MAX in the kernel, with its NUL.
const NAME_MAX_BYTES: usize = 16;

/// A congestion control's name, kept inline so a connection's dial stays
/// `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Congestion {
    name: [u8; NAME_MAX_BYTES],
    len: u8,
}

impl std::fmt::Debug for Congestion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Congestion {
    /// A name the kernel could know: 1 to 15 of `[A-Za-z0-9_-]`.
    pub fn parse(name: &str) -> Result<Congestion, String> {
        let ok = !name.is_empty()
            && name.len() < NAME_MAX_BYTES
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(format!(
                "--tcp-congestion {name:?}: a congestion control name is 1 to {} letters, digits, '_' or '-'",
                NAME_MAX_BYTES - 1
            ));
        }
        let mut buf = [0u8; NAME_MAX_BYTES];
        buf[..name.len()].copy_from_slice(name.as_bytes());
        Ok(Congestion {
            name: buf,
            len: name.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (parse).
        std::str::from_utf8(&self.name[..usize::from(self.len)]).unwrap_or("")
    }

    /// Sets it on `sock`.
    pub fn apply(&self, sock: &socket2::Socket) -> io::Result<()> {
        sock.set_tcp_congestion(&self.name[..usize::from(self.len)])
    }

    /// Fails at start when the kernel does not have it (or does not let
    /// this process use it), rather than on every connection.
    pub fn check(&self) -> Result<(), String> {
        let sock = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM.cloexec(),
            Some(socket2::Protocol::TCP),
        )
        .map_err(|e| format!("socket: {e}"))?;
        self.apply(&sock).map_err(|e| {
            format!(
                "--tcp-congestion {}: {e} (this kernel allows: {})",
                self.as_str(),
                read_proc("tcp_allowed_congestion_control")
            )
        })
    }
}

/// The congestion control new sockets get here
/// (`net.ipv4.tcp_congestion_control`), or "unknown".
pub fn system_default() -> String {
    read_proc("tcp_congestion_control")
}

fn read_proc(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_names_and_refuses_others() {
        assert_eq!(Congestion::parse("cubic").unwrap().as_str(), "cubic");
        assert_eq!(
            Congestion::parse("dctcp_x-1").unwrap().as_str(),
            "dctcp_x-1"
        );
        assert!(Congestion::parse("").is_err());
        assert!(Congestion::parse("sixteen_letters_").is_err());
        assert!(Congestion::parse("a b").is_err());
        assert!(Congestion::parse("cubic\0").is_err());
    }

    #[test]
    fn sets_a_socket_and_reads_it_back() {
        // reno is built into every kernel with TCP; any process may use it.
        let cc = Congestion::parse("reno").unwrap();
        cc.check().unwrap();
        let sock = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        cc.apply(&sock).unwrap();
        let got = sock.tcp_congestion().unwrap();
        let got: Vec<u8> = got.into_iter().take_while(|b| *b != 0).collect();
        assert_eq!(got, b"reno");
    }

    #[test]
    fn an_unknown_name_fails_the_check_with_what_is_allowed() {
        let err = Congestion::parse("no_such_cc")
            .unwrap()
            .check()
            .unwrap_err();
        assert!(
            err.contains("no_such_cc") && err.contains("allows"),
            "{err}"
        );
    }
}
