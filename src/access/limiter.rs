//! The failed sign-in limit: at most `max_failed_logins` failures per client per minute,
//! then sign-ins from that client are refused (429 with `Retry-After`) until the minute
//! that began with its first failure is over. Successes do not count.
//!
//! A client is its IPv4 address, or its IPv6 /64 (one host can take many addresses of its
//! prefix). At most [`MAX_TRACKED`] clients are tracked; when full, expired windows are
//! dropped first, then the oldest.

use super::net::normalize_ip;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Clients tracked at once.
pub const MAX_TRACKED: usize = 10_000;
/// The window failures are counted over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Counts failed sign-ins per client.
#[derive(Debug)]
pub struct LoginLimiter {
    max: u32,
    capacity: usize,
    clients: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
}

impl LoginLimiter {
    /// At most `max` failures per client per minute; 0: no limit.
    pub fn new(max: u32) -> LoginLimiter {
        LoginLimiter::with_capacity(max, MAX_TRACKED)
    }

    /// As [`LoginLimiter::new`], tracking at most `capacity` clients.
    pub fn with_capacity(max: u32, capacity: usize) -> LoginLimiter {
        LoginLimiter {
            max,
            capacity: capacity.max(1),
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` when `ip` may try to sign in now, else how long until it may (for
    /// `Retry-After`, at least one second).
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(ip, Instant::now())
    }

    /// As [`LoginLimiter::check`] at `now`.
    pub fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.max == 0 {
            return Ok(());
        }
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        match clients.get(&client_key(ip)) {
            Some(w) if w.failures >= self.max => {
                let left = (w.start + WINDOW).saturating_duration_since(now);
                if left.is_zero() {
                    Ok(())
                } else {
                    Err(left.max(Duration::from_secs(1)))
                }
            }
            _ => Ok(()),
        }
    }

    /// Count a failed sign-in from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        self.record_failure_at(ip, Instant::now());
    }

    /// As [`LoginLimiter::record_failure`] at `now`.
    pub fn record_failure_at(&self, ip: IpAddr, now: Instant) {
        if self.max == 0 {
            return;
        }
        let key = client_key(ip);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if !clients.contains_key(&key) && clients.len() >= self.capacity {
            clients.retain(|_, w| now.saturating_duration_since(w.start) < WINDOW);
            if clients.len() >= self.capacity {
                let oldest = clients.iter().min_by_key(|(_, w)| w.start).map(|(k, _)| *k);
                if let Some(k) = oldest {
                    clients.remove(&k);
                }
            }
        }
        let w = clients.entry(key).or_insert(Window {
            start: now,
            failures: 0,
        });
        if now.saturating_duration_since(w.start) >= WINDOW {
            *w = Window {
                start: now,
                failures: 0,
            };
        }
        w.failures = w.failures.saturating_add(1);
    }

    /// Clients currently tracked.
    pub fn tracked(&self) -> usize {
        self.clients.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// IPv4 addresses as they are; IPv6 addresses by their /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match normalize_ip(ip) {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_after_max_failures_until_the_minute_is_over() {
        let l = LoginLimiter::new(3);
        let t0 = Instant::now();
        let a = ip("203.0.113.5");
        for i in 0..3 {
            assert!(l.check_at(a, t0).is_ok(), "failure {i}");
            l.record_failure_at(a, t0 + Duration::from_secs(i));
        }
        let wait = l.check_at(a, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // Another client is not affected.
        assert!(l.check_at(ip("203.0.113.6"), t0).is_ok());
        // Near the end the wait is at least a second.
        let wait = l
            .check_at(a, t0 + Duration::from_millis(59_900))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert!(l.check_at(a, t0 + WINDOW).is_ok());
        // A failure after the window starts a new count.
        l.record_failure_at(a, t0 + WINDOW);
        assert!(l.check_at(a, t0 + WINDOW).is_ok());
    }

    #[test]
    fn mapped_and_same_prefix_ipv6_addresses_count_together() {
        let l = LoginLimiter::new(2);
        let t0 = Instant::now();
        l.record_failure_at(ip("10.0.0.1"), t0);
        l.record_failure_at(ip("::ffff:10.0.0.1"), t0);
        assert!(l.check_at(ip("10.0.0.1"), t0).is_err());
        l.record_failure_at(ip("2001:db8:1:2::1"), t0);
        l.record_failure_at(ip("2001:db8:1:2::ffff"), t0);
        assert!(l.check_at(ip("2001:db8:1:2::7"), t0).is_err());
        assert!(l.check_at(ip("2001:db8:1:3::1"), t0).is_ok());
    }

    #[test]
    fn zero_means_no_limit() {
        let l = LoginLimiter::new(0);
        let t0 = Instant::now();
        for _ in 0..100 {
            l.record_failure_at(ip("10.0.0.1"), t0);
        }
        assert!(l.check_at(ip("10.0.0.1"), t0).is_ok());
        assert_eq!(l.tracked(), 0);
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_go_first() {
        let l = LoginLimiter::with_capacity(1, 3);
        let t0 = Instant::now();
        for i in 0..3u8 {
            l.record_failure_at(
                ip(&format!("10.0.0.{i}")),
                t0 + Duration::from_secs(i.into()),
            );
        }
        l.record_failure_at(ip("10.0.0.9"), t0 + Duration::from_secs(5));
        assert_eq!(l.tracked(), 3);
        // 10.0.0.0 was the oldest: forgotten; the others are still refused.
        assert!(l
            .check_at(ip("10.0.0.0"), t0 + Duration::from_secs(6))
            .is_ok());
        assert!(l
            .check_at(ip("10.0.0.1"), t0 + Duration::from_secs(6))
            .is_err());
        assert!(l
            .check_at(ip("10.0.0.9"), t0 + Duration::from_secs(6))
            .is_err());
        // Expired windows are dropped before anything else.
        l.record_failure_at(ip("10.0.1.1"), t0 + Duration::from_secs(100));
        assert_eq!(l.tracked(), 1);
    }
}
