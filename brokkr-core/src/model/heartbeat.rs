//! Heartbeats: an agent's liveness signal, optionally carrying a snapshot of its
//! cluster's capacity and API health.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Limits, check_client_time};
use crate::error::{Result, Violations};

/// The latest operational numbers of one cluster, as measured by its agent.
///
/// Every field is optional: an agent reports what it could measure, and an agent that
/// cannot list nodes (RBAC) still reports its uptime. Counts are signed so that a
/// negative value from a buggy agent is rejected by [`ClusterSnapshot::validate`] with a
/// clear message instead of failing to parse.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClusterSnapshot {
    /// Allocatable CPU of all nodes, in millicores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_cpu_capacity: Option<i64>,
    /// CPU not yet requested by pods, in millicores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_cpu_available: Option<i64>,
    /// Allocatable memory of all nodes, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_memory_capacity: Option<i64>,
    /// Memory not yet requested by pods, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_memory_available: Option<i64>,
    /// Number of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_count: Option<i64>,
    /// Number of nodes whose Ready condition is True.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ready_count: Option<i64>,
    /// Whether the Kubernetes API answered the agent's last probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_api_healthy: Option<bool>,
    /// Round-trip time of the agent's last API probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s_api_latency_ms: Option<i64>,
    /// Seconds since the agent process started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_uptime_seconds: Option<i64>,
    /// Failed reconcile attempts since the agent started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciliation_errors_total: Option<i64>,
    /// When the agent last reconciled successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_reconcile: Option<DateTime<Utc>>,
}

impl ClusterSnapshot {
    /// True when the agent measured nothing (a bare liveness heartbeat).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Rejects negative numbers, more available than capacity, more ready nodes than
    /// nodes, and a `last_successful_reconcile` beyond the clock skew.
    pub fn validate(&self, now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        let mut v = Violations::new();
        for (field, value) in [
            ("cluster_cpu_capacity", self.cluster_cpu_capacity),
            ("cluster_cpu_available", self.cluster_cpu_available),
            ("cluster_memory_capacity", self.cluster_memory_capacity),
            ("cluster_memory_available", self.cluster_memory_available),
            ("node_count", self.node_count),
            ("node_ready_count", self.node_ready_count),
            ("k8s_api_latency_ms", self.k8s_api_latency_ms),
            ("agent_uptime_seconds", self.agent_uptime_seconds),
            (
                "reconciliation_errors_total",
                self.reconciliation_errors_total,
            ),
        ] {
            v.check(value.is_some_and(|n| n < 0), field, "must not be negative");
        }
        // Cross-field rules only apply when both sides were measured.
        for (part, whole, field, reason) in [
            (
                self.cluster_cpu_available,
                self.cluster_cpu_capacity,
                "cluster_cpu_available",
                "must not exceed cluster_cpu_capacity",
            ),
            (
                self.cluster_memory_available,
                self.cluster_memory_capacity,
                "cluster_memory_available",
                "must not exceed cluster_memory_capacity",
            ),
            (
                self.node_ready_count,
                self.node_count,
                "node_ready_count",
                "must not exceed node_count",
            ),
        ] {
            if let (Some(part), Some(whole)) = (part, whole) {
                v.check(part > whole, field, reason);
            }
        }
        check_client_time(
            &mut v,
            "last_successful_reconcile",
            self.last_successful_reconcile,
            now,
            limits,
        );
        v.finish()
    }
}

/// The body of `POST /agents/{id}/heartbeat`: snapshot fields at the top level plus the
/// end of the agent's last complete health cycle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Heartbeat {
    /// The cluster snapshot; its fields sit at the top level of the JSON object.
    #[serde(flatten)]
    pub snapshot: ClusterSnapshot,
    /// When the agent last finished checking the health of all its objects. Lets the
    /// broker tell an agent that is alive but no longer checking from one that is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_checked_at: Option<DateTime<Utc>>,
}

impl Heartbeat {
    /// Validates the snapshot (fields reported as `snapshot.<name>`) and rejects a
    /// `health_checked_at` beyond the clock skew.
    pub fn validate(&self, now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        let mut v = Violations::new();
        v.nest("snapshot", self.snapshot.validate(now, limits));
        check_client_time(
            &mut v,
            "health_checked_at",
            self.health_checked_at,
            now,
            limits,
        );
        v.finish()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;
    use crate::Error;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn times_before_1970_are_refused() {
        let beat = |at: &str| Heartbeat {
            snapshot: ClusterSnapshot::default(),
            health_checked_at: Some(
                DateTime::parse_from_rfc3339(at)
                    .unwrap()
                    .with_timezone(&Utc),
            ),
        };
        let limits = Limits::default();
        assert!(
            beat("1970-01-01T00:00:00Z")
                .validate(now(), &limits)
                .is_ok()
        );
        let Err(Error::Invalid(errors)) = beat("1969-12-31T23:59:59Z").validate(now(), &limits)
        else {
            panic!("a time before 1970 was accepted");
        };
        assert_eq!(errors[0].field, "health_checked_at");
        assert!(
            beat("0001-01-01T00:00:00Z")
                .validate(now(), &limits)
                .is_err()
        );
    }

    fn invalid(result: Result<()>) -> Vec<(String, String)> {
        match result {
            Err(Error::Invalid(errors)) => {
                errors.into_iter().map(|e| (e.field, e.reason)).collect()
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn heartbeat_reads_flat_snapshot_fields() {
        let hb: Heartbeat = serde_json::from_value(json!({
            "cluster_cpu_capacity": 8000,
            "cluster_cpu_available": 2500,
            "node_count": 3,
            "node_ready_count": 3,
            "k8s_api_healthy": true,
            "last_successful_reconcile": "2026-03-01T11:59:30Z",
            "health_checked_at": "2026-03-01T11:59:45Z",
            "unknown_new_field": "ignored"
        }))
        .unwrap();
        assert_eq!(hb.snapshot.cluster_cpu_capacity, Some(8000));
        assert_eq!(hb.snapshot.cluster_cpu_available, Some(2500));
        assert_eq!(hb.snapshot.k8s_api_healthy, Some(true));
        assert_eq!(hb.snapshot.cluster_memory_capacity, None);
        assert_eq!(hb.health_checked_at, Some(now() - Duration::seconds(15)));
        assert!(hb.validate(now(), &Limits::default()).is_ok());
    }

    #[test]
    fn heartbeat_writes_flat_json_without_absent_fields() {
        let hb = Heartbeat {
            snapshot: ClusterSnapshot {
                node_count: Some(2),
                ..ClusterSnapshot::default()
            },
            health_checked_at: None,
        };
        assert_eq!(serde_json::to_value(&hb).unwrap(), json!({"node_count": 2}));
    }

    #[test]
    fn empty_body_is_a_bare_liveness_heartbeat() {
        let hb: Heartbeat = serde_json::from_str("{}").unwrap();
        assert!(hb.snapshot.is_empty());
        assert!(hb.validate(now(), &Limits::default()).is_ok());
        let measured = ClusterSnapshot {
            k8s_api_healthy: Some(false),
            ..ClusterSnapshot::default()
        };
        assert!(!measured.is_empty());
    }

    #[test]
    fn negative_values_are_rejected_per_field() {
        let hb = Heartbeat {
            snapshot: ClusterSnapshot {
                cluster_memory_capacity: Some(-1),
                k8s_api_latency_ms: Some(-5),
                agent_uptime_seconds: Some(-10),
                ..ClusterSnapshot::default()
            },
            health_checked_at: None,
        };
        let errors = invalid(hb.validate(now(), &Limits::default()));
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "snapshot.cluster_memory_capacity",
                "snapshot.k8s_api_latency_ms",
                "snapshot.agent_uptime_seconds"
            ]
        );
        assert!(errors.iter().all(|(_, r)| r == "must not be negative"));
    }

    #[test]
    fn available_above_capacity_and_too_many_ready_nodes_are_rejected() {
        let snapshot = ClusterSnapshot {
            cluster_cpu_capacity: Some(4000),
            cluster_cpu_available: Some(4001),
            cluster_memory_capacity: Some(1 << 30),
            cluster_memory_available: Some((1 << 30) + 1),
            node_count: Some(2),
            node_ready_count: Some(3),
            ..ClusterSnapshot::default()
        };
        let errors = invalid(snapshot.validate(now(), &Limits::default()));
        assert_eq!(
            errors,
            [
                (
                    "cluster_cpu_available".to_owned(),
                    "must not exceed cluster_cpu_capacity".to_owned()
                ),
                (
                    "cluster_memory_available".to_owned(),
                    "must not exceed cluster_memory_capacity".to_owned()
                ),
                (
                    "node_ready_count".to_owned(),
                    "must not exceed node_count".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn available_equal_to_capacity_or_without_capacity_is_fine() {
        let snapshot = ClusterSnapshot {
            cluster_cpu_capacity: Some(4000),
            cluster_cpu_available: Some(4000),
            cluster_memory_available: Some(1 << 40),
            node_ready_count: Some(7),
            ..ClusterSnapshot::default()
        };
        assert!(snapshot.validate(now(), &Limits::default()).is_ok());
    }

    #[test]
    fn timestamps_beyond_skew_are_rejected() {
        let hb = Heartbeat {
            snapshot: ClusterSnapshot {
                last_successful_reconcile: Some(now() + Duration::seconds(61)),
                ..ClusterSnapshot::default()
            },
            health_checked_at: Some(now() + Duration::hours(1)),
        };
        let errors = invalid(hb.validate(now(), &Limits::default()));
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["snapshot.last_successful_reconcile", "health_checked_at"]
        );
    }
}
