//! Failed-authentication limits: too many bad keys from one address (per presented key,
//! and in total) answer 429 for the rest of the window, before any store lookup.

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

/// Counts failures in fixed windows. Bounded: old windows are dropped when the table grows.
#[derive(Debug, Default)]
pub struct AuthLimiter {
    limits: AuthLimits,
    windows: Mutex<HashMap<Slot, Window>>,
}

const MAX_ENTRIES: usize = 100_000;

impl AuthLimiter {
    /// A limiter with `limits`.
    pub fn new(limits: AuthLimits) -> Self {
        Self {
            limits,
            windows: Mutex::default(),
        }
    }

    /// `Some(retry_after)` when `address` (with key id `key`) is over a limit now.
    pub fn blocked(&self, address: Option<IpAddr>, key: u64) -> Option<Duration> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        [
            ((address, Some(key)), self.limits.per_key),
            ((address, None), self.limits.per_address),
        ]
        .into_iter()
        .filter_map(|(slot, limit)| {
            let w = windows.get(&slot)?;
            let elapsed = now.duration_since(w.started);
            (elapsed < self.limits.window && w.failures >= limit)
                .then(|| self.limits.window.saturating_sub(elapsed))
        })
        .max()
    }

    /// Records one failed authentication.
    pub fn failed(&self, address: Option<IpAddr>, key: u64) {
        let now = Instant::now();
        let window = self.limits.window;
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() > MAX_ENTRIES {
            windows.retain(|_, w| now.duration_since(w.started) < window);
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
