//! Retry delays, shared by everything that retries (the agent's applies, its HTTP
//! client, webhook deliveries): exponential, capped, and jittered so that clients
//! failing together do not retry together.

use std::time::Duration;

/// A random factor in `[0, 1]` (0.5 when the OS generator is unavailable).
pub fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

/// The delay after `retries` earlier retries: `base × 2^retries`, at most `max`, scaled
/// by `0.5 + 0.5 × jitter` (`jitter` in `[0, 1]`).
pub fn exponential(base: Duration, max: Duration, retries: u32, jitter: f64) -> Duration {
    let full = base
        .checked_mul(2_u32.saturating_pow(retries.min(20)))
        .map_or(max, |d| d.min(max));
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_jittered_within_half_to_full() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for attempt in 1..10 {
            let full = (base * 2_u32.pow(attempt - 1)).min(max);
            let d = exponential(base, max, attempt - 1, jitter());
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert_eq!(exponential(base, max, u32::MAX, 1.0), max);
        assert_eq!(exponential(base, max, 0, 0.0), base / 2);
    }
}
