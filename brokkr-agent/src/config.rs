//! How often the agent does what, and how much it collects.

use chrono::Duration;

use brokkr_core::error::{Result, Violations};
use brokkr_core::health::HealthPolicy;

/// Intervals and limits of the agent's loops. The defaults follow the design: heartbeat
/// every 30 s, health every 60 s, diagnostics polled every 10 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Between heartbeats.
    pub heartbeat_interval: Duration,
    /// Between health check cycles.
    pub check_interval: Duration,
    /// Between polls for diagnostics requests.
    pub diagnostics_poll: Duration,
    /// Between fetches of the target state (and apply attempts).
    pub reconcile_interval: Duration,
    /// An improvement is reported once it has held this long; must exceed
    /// `check_interval` so a single good cycle cannot hide a flapping workload.
    pub recover_after: Duration,
    /// An unchanged verdict is sent again after this long, so the broker knows it is
    /// current (keep it at or below the broker's `refresh_interval`).
    pub refresh_interval: Duration,
    /// Events older than this are left out of diagnostics bundles.
    pub event_lookback: Duration,
    /// Log lines per container (current and previous instance) in a bundle.
    pub log_tail_lines: u32,
    /// Bytes asked for per log tail (the API server cuts there).
    pub log_tail_bytes: usize,
    /// A whole bundle, serialized, is cut to this many bytes (log lines go first).
    pub max_bundle_bytes: usize,
    /// First retry delay of a failed apply; doubles per retry, with jitter.
    pub apply_backoff: Duration,
    /// Longest retry delay of a failed apply.
    pub apply_backoff_max: Duration,
    /// Each call to the cluster (one object's observation, the cluster state, events,
    /// one log tail) gives up after this long, so a hung API server cannot stop the
    /// heartbeat.
    pub probe_timeout: Duration,
    /// On shutdown, a cycle in progress gets this long to finish.
    pub shutdown_grace: Duration,
    /// The classifier's thresholds.
    pub health_policy: HealthPolicy,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::seconds(30),
            check_interval: Duration::seconds(60),
            diagnostics_poll: Duration::seconds(10),
            reconcile_interval: Duration::seconds(30),
            recover_after: Duration::seconds(90),
            refresh_interval: Duration::minutes(5),
            event_lookback: Duration::minutes(30),
            log_tail_lines: 50,
            log_tail_bytes: 64 * 1024,
            max_bundle_bytes: 8 * 1024 * 1024,
            apply_backoff: Duration::seconds(10),
            apply_backoff_max: Duration::minutes(10),
            probe_timeout: Duration::seconds(30),
            shutdown_grace: Duration::seconds(5),
            health_policy: HealthPolicy::default(),
        }
    }
}

impl AgentConfig {
    /// Rejects non-positive intervals and a `recover_after` that does not exceed
    /// `check_interval`.
    pub fn validate(&self) -> Result<()> {
        let mut v = Violations::new();
        for (field, value) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("check_interval", self.check_interval),
            ("diagnostics_poll", self.diagnostics_poll),
            ("reconcile_interval", self.reconcile_interval),
            ("refresh_interval", self.refresh_interval),
            ("event_lookback", self.event_lookback),
            ("apply_backoff", self.apply_backoff),
            ("probe_timeout", self.probe_timeout),
            ("shutdown_grace", self.shutdown_grace),
        ] {
            v.check(value <= Duration::zero(), field, "must be positive");
        }
        v.check(
            self.recover_after <= self.check_interval,
            "recover_after",
            "must exceed check_interval",
        );
        v.check(
            self.apply_backoff_max < self.apply_backoff,
            "apply_backoff_max",
            "must not be below apply_backoff",
        );
        v.check(
            self.log_tail_lines == 0,
            "log_tail_lines",
            "must be positive",
        );
        v.check(
            self.max_bundle_bytes < 64 * 1024,
            "max_bundle_bytes",
            "must be at least 64 KiB",
        );
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_follow_the_design() {
        let c = AgentConfig::default();
        c.validate().unwrap();
        assert_eq!(c.heartbeat_interval, Duration::seconds(30));
        assert_eq!(c.check_interval, Duration::seconds(60));
        assert_eq!(c.diagnostics_poll, Duration::seconds(10));
        assert_eq!(c.log_tail_lines, 50);
    }

    #[test]
    fn recovery_must_take_longer_than_one_check() {
        let c = AgentConfig {
            recover_after: Duration::seconds(60),
            ..AgentConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("recover_after"), "{err}");
    }
}
