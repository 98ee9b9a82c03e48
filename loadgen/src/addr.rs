//! Target and listen addresses: resolved once, and refused unless loopback
//! (127.0.0.0/8, ::1) when the user did not allow remote addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

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

/// Most `--source-addrs` entries (each gives the target one more range of
/// ephemeral ports).
pub const SOURCE_ADDRS_MAX: usize = 256;

/// Parses `--source-addrs`: comma-separated IPv4 loopback addresses
/// (127.0.0.0/8; every one of them reaches `lo` without configuration),
/// each at most once. Connection `i` binds to entry `i % len` before it
/// connects, so one server port can take more connections than one source
/// address has ephemeral ports (`ip_local_port_range`, ~28k by default).
pub fn parse_source_addrs(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut addrs: Vec<IpAddr> = Vec::new();
    for part in s.split(',').map(str::trim) {
        let ip: Ipv4Addr = part
            .parse()
            .map_err(|_| format!("--source-addrs: {part:?} is not an IPv4 address"))?;
        if !ip.is_loopback() {
            return Err(format!(
                "--source-addrs: {ip} is not in 127.0.0.0/8 (only loopback sources are supported)"
            ));
        }
        if addrs.contains(&IpAddr::V4(ip)) {
            return Err(format!("--source-addrs: {ip} is given twice"));
        }
        addrs.push(IpAddr::V4(ip));
    }
    if addrs.len() > SOURCE_ADDRS_MAX {
        return Err(format!(
            "--source-addrs: at most {SOURCE_ADDRS_MAX} addresses"
        ));
    }
    Ok(addrs)
}

/// The address connection `idx` binds to before connecting (port 0: the
/// kernel picks one at connect), or `None` to let the kernel choose both.
pub fn source_for(addrs: &[IpAddr], idx: u32) -> Option<SocketAddr> {
    if addrs.is_empty() {
        return None;
    }
    Some(SocketAddr::new(addrs[idx as usize % addrs.len()], 0))
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
    fn source_addrs_are_distinct_ipv4_loopback() {
        let a = parse_source_addrs("127.0.0.2, 127.0.0.3,127.1.0.1").unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(source_for(&a, 0), Some("127.0.0.2:0".parse().unwrap()));
        assert_eq!(source_for(&a, 4), Some("127.0.0.3:0".parse().unwrap()));
        assert_eq!(source_for(&[], 4), None);
        for bad in [
            "10.0.0.1",
            "::1",
            "127.0.0.2,127.0.0.2",
            "",
            "127.0.0.2,",
            "host",
        ] {
            assert!(parse_source_addrs(bad).is_err(), "{bad:?} accepted");
        }
        let many: Vec<String> = (0..=SOURCE_ADDRS_MAX)
            .map(|i| format!("127.0.{}.{}", i / 250, i % 250 + 1))
            .collect();
        assert!(parse_source_addrs(&many.join(",")).is_err());
    }

    #[test]
    fn host_parts() {
        assert_eq!(host_part("127.0.0.1:6514"), "127.0.0.1");
        assert_eq!(host_part("[::1]:6514"), "::1");
        assert_eq!(host_part("localhost:1"), "localhost");
    }
}
