//! Failed-authentication limits. A key id that failed too often from one address is
//! refused (429) before any store lookup; an address that failed too often in total gets
//! 429 instead of 401 for further failures, while its good keys keep working (many
//! clients may share one address behind a proxy or NAT). IPv6 addresses count per /64.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Limits per window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthLimits {
    /// Length of a window.
    pub window: Duration,
    /// Failures allowed per address and key id in a window.
    pub per_key: u32,
    /// Failures allowed per address in a window, whatever the key.
    pub per_address: u32,
}

impl Default for AuthLimits {
    fn default() -> Self {
        Self {
            window: Duration::from_mins(1),
            per_key: 10,
            per_address: 100,
        }
    }
}

/// An address, with a key id or for all keys.
type Slot = (Option<IpAddr>, Option<u64>);

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// The id the limiter counts a key by: a prefix of its hash, so the key itself is
/// never held.
pub fn key_id(key: &str) -> u64 {
    let hash = brokkr_core::auth::hash_pak(key);
    u64::from_be_bytes([
        hash[0], hash[1], hash[2], hash[3], hash[4], hash[5], hash[6], hash[7],
    ])
}

/// Counts failures in fixed windows. Bounded: old windows are dropped when the table grows.
#[derive(Debug, Default)]
pub struct AuthLimiter {
    limits: AuthLimits,
    windows: Mutex<HashMap<Slot, Window>>,
    /// When a blocked address last got a store lookup.
    blocked_lookups: Mutex<HashMap<Option<IpAddr>, Instant>>,
}

const MAX_ENTRIES: usize = 100_000;

impl AuthLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: AuthLimits) -> Self {
        Self {
            limits,
            windows: Mutex::default(),
            blocked_lookups: Mutex::default(),
        }
    }

    /// `Some(retry_after)` when this key id from this address failed too often.
    pub fn key_blocked(&self, address: Option<IpAddr>, key: u64) -> Option<Duration> {
        self.over((network(address), Some(key)), self.limits.per_key)
    }

    /// `Some(retry_after)` when this address failed too often, whatever the key.
    pub fn address_blocked(&self, address: Option<IpAddr>) -> Option<Duration> {
        self.over((network(address), None), self.limits.per_address)
    }

    fn over(&self, slot: Slot, limit: u32) -> Option<Duration> {
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let w = windows.get(&slot)?;
        let elapsed = Instant::now().duration_since(w.started);
        (elapsed < self.limits.window && w.failures >= limit)
            .then(|| self.limits.window.saturating_sub(elapsed))
    }

    /// Whether a blocked address may have one store lookup now: at most one a second,
    /// so a guesser costs almost nothing while an agent behind the same address whose
    /// key is no longer cached still gets through within a retry or two.
    pub fn lookup_while_blocked(&self, address: Option<IpAddr>) -> bool {
        let now = Instant::now();
        let mut last = self
            .blocked_lookups
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.len() >= MAX_ENTRIES {
            last.clear();
        }
        match last.get_mut(&network(address)) {
            Some(at) if now.duration_since(*at) < Duration::from_secs(1) => false,
            Some(at) => {
                *at = now;
                true
            }
            None => {
                last.insert(network(address), now);
                true
            }
        }
    }

    /// Records one failed authentication.
    pub fn failed(&self, address: Option<IpAddr>, key: u64) {
        let now = Instant::now();
        let window = self.limits.window;
        let address = network(address);
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= MAX_ENTRIES {
            // Bounded memory under a flood from many addresses: drop what has expired,
            // and if that is not enough, start over (everyone gets a fresh budget).
            windows.retain(|_, w| now.duration_since(w.started) < window);
            if windows.len() >= MAX_ENTRIES / 2 {
                windows.clear();
            }
        }
        for slot in [(address, Some(key)), (address, None)] {
            let w = windows.entry(slot).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.duration_since(w.started) >= window {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }
}

/// The unit an address counts in: IPv4 addresses (also IPv4-mapped IPv6) as they are,
/// IPv6 addresses by their /64, which one client can fill with addresses.
fn network(address: Option<IpAddr>) -> Option<IpAddr> {
    address.map(|ip| match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or_else(
            || {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            },
            IpAddr::V4,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ipv6_network_is_one_address_and_keys_fail_separately() {
        let limiter = AuthLimiter::new(AuthLimits {
            window: Duration::from_mins(1),
            per_key: 2,
            per_address: 3,
        });
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let elsewhere: IpAddr = "2001:db8:9:9::1".parse().unwrap();
        limiter.failed(Some(a), 1);
        assert!(limiter.key_blocked(Some(b), 1).is_none());
        limiter.failed(Some(b), 1);
        assert!(
            limiter.key_blocked(Some(a), 1).is_some(),
            "same /64, same key id"
        );
        assert!(
            limiter.key_blocked(Some(a), 2).is_none(),
            "other keys are not blocked"
        );
        limiter.failed(Some(a), 3);
        assert!(limiter.address_blocked(Some(b)).is_some());
        assert!(limiter.address_blocked(Some(elsewhere)).is_none());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(network(Some(mapped)), network(Some(v4)));
    }
}
