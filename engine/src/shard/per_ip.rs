//! Open connections per peer IP address on one source, over all shards, for
//! `max_connections_per_ip`. Taken once per accept and once per close (the
//! control plane), so a mutex is enough; with no limit nothing is locked.
//! Memory is bounded by `max_connections`: an address is in the map only
//! while it has an open connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

pub struct PerIpCounts {
    max_connections_per_ip: usize,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl PerIpCounts {
    /// `max_connections_per_ip` = 0: no limit, nothing counted.
    pub fn new(max_connections_per_ip: usize) -> PerIpCounts {
        PerIpCounts {
            max_connections_per_ip,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        // A panic while holding this lock leaves a consistent map (each
        // operation is one insert or update), so a poisoned lock is used as is.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection from `ip`; false when `ip` is at its limit
    /// (nothing counted, the caller refuses the connection).
    pub fn try_open(&self, ip: IpAddr) -> bool {
        if self.max_connections_per_ip == 0 {
            return true;
        }
        let mut open = self.lock();
        let n = open.entry(ip).or_insert(0);
        if *n as usize >= self.max_connections_per_ip {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection counted by `try_open` closed.
    pub fn close(&self, ip: IpAddr) {
        if self.max_connections_per_ip == 0 {
            return;
        }
        let mut open = self.lock();
        match open.get_mut(&ip) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                open.remove(&ip);
            }
            None => debug_assert!(false, "close without open for {ip}"),
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_per_address_and_freed_on_close() {
        let c = PerIpCounts::new(2);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        assert!(c.try_open(a));
        assert!(c.try_open(a));
        assert!(!c.try_open(a), "third from the same address");
        assert!(c.try_open(b), "another address is not affected");
        c.close(a);
        assert!(c.try_open(a));
        c.close(a);
        c.close(a);
        c.close(b);
        assert_eq!(c.tracked(), 0, "no entry kept for closed addresses");
    }

    #[test]
    fn zero_means_no_limit_and_no_tracking() {
        let c = PerIpCounts::new(0);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..10_000 {
            assert!(c.try_open(a));
        }
        assert_eq!(c.tracked(), 0);
    }
}
