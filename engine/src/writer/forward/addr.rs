//! One `servers` entry: a host (name, IPv4, or `[IPv6]`) and a port. The
//! name is kept as written and resolved at each connect, so a DNS change
//! is followed without a restart.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// As written, without IPv6 brackets: what the certificate is checked
    /// against when `server_name` is not set.
    pub host: String,
    pub port: u16,
}

impl ServerAddr {
    /// `host:port`, `1.2.3.4:port` or `[::1]:port`; the error is the reason.
    pub fn parse(text: &str) -> Result<ServerAddr, String> {
        let bad = |why: &str| format!("{text:?}: {why}; expected \"host:port\" or \"[v6]:port\"");
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| bad("no closing ]"))?;
            let port = after.strip_prefix(':').ok_or_else(|| bad("no port"))?;
            (host, port)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            if host.contains(':') {
                return Err(bad("an IPv6 address needs brackets"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number 1..65535"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(ServerAddr {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_v4_and_bracketed_v6_parse_and_print_back() {
        for text in ["backup.example:6514", "127.0.0.1:1", "[::1]:6514"] {
            assert_eq!(ServerAddr::parse(text).expect(text).to_string(), text);
        }
        assert_eq!(ServerAddr::parse("[::1]:6514").expect("v6").host, "::1");
    }

    #[test]
    fn missing_port_bare_v6_and_port_zero_are_refused() {
        for text in ["host", "::1:6514", "host:0", "host:x", ":6514", "[::1]6514"] {
            assert!(ServerAddr::parse(text).is_err(), "{text}");
        }
    }
}
