//! Target and listen addresses: resolved once, and refused unless loopback
//! (127.0.0.0/8, ::1) when the user did not allow remote addresses.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// True for 127.0.0.0/8, ::1 and IPv4-mapped loopback.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Splits `host:port` / `[v6]:port` and returns the host part.
pub fn host_part(s: &str) -> &str {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return &rest[..end];
        }
    }
    match s.rfind(':') {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Resolves `s` to one address; every address it resolves to must be
/// loopback unless `allow_remote`.
pub fn resolve(s: &str, allow_remote: bool) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("address {s:?}: {e}"))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| format!("address {s:?} resolves to nothing"))?;
    if !allow_remote {
        if let Some(bad) = addrs.iter().find(|a| !is_loopback(a.ip())) {
            return Err(format!(
                "address {s:?} resolves to {bad}, which is not loopback; pass --allow-remote to use it"
            ));
        }
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_by_default() {
        assert!(resolve("127.0.0.1:6514", false).is_ok());
        assert!(resolve("127.1.2.3:6514", false).is_ok());
        assert!(resolve("[::1]:6514", false).is_ok());
        assert!(resolve("10.0.0.1:6514", false).is_err());
        assert!(resolve("192.168.1.1:6514", false).is_err());
        assert!(resolve("10.0.0.1:6514", true).is_ok());
        assert!(resolve("nonsense", false).is_err());
    }

    #[test]
    fn host_parts() {
        assert_eq!(host_part("127.0.0.1:6514"), "127.0.0.1");
        assert_eq!(host_part("[::1]:6514"), "::1");
        assert_eq!(host_part("localhost:1"), "localhost");
    }
}
