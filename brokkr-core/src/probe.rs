//! The cluster side of an agent: what it can observe ([`ClusterProbe`]) and how it
//! changes the cluster ([`Applier`]).
//!
//! Both are traits so the agent runtime runs the same against a real cluster
//! (`brokkr-k8s`), a simulated one (`brokkr_agent::SimulatedCluster`) or a test fake.

use std::collections::{BTreeSet, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::health::Observations;
use crate::model::{DeploymentObject, FailureReason};

/// Why the cluster could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The agent's service account may not read this (RBAC).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The thing asked for does not exist (any more).
    #[error("not found: {0}")]
    NotFound(String),
    /// The API server did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The API server could not be reached or failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The API server answered with something that cannot be used.
    #[error("invalid answer: {0}")]
    Invalid(String),
}

/// Nodes and capacity of the cluster, as far as the probe could tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// Nodes in the cluster.
    pub node_count: Option<i64>,
    /// Nodes whose Ready condition is True.
    pub node_ready_count: Option<i64>,
    /// Allocatable CPU of all nodes, in millicores.
    pub cpu_capacity_millis: Option<i64>,
    /// Allocatable CPU minus the sum of pod requests, in millicores.
    pub cpu_available_millis: Option<i64>,
    /// Allocatable memory of all nodes, in bytes.
    pub memory_capacity_bytes: Option<i64>,
    /// Allocatable memory minus the sum of pod requests, in bytes.
    pub memory_available_bytes: Option<i64>,
    /// Latency of a cheap API call made while gathering this, in milliseconds.
    pub api_latency_ms: Option<i64>,
}

impl ClusterState {
    /// The figures in the ranges a heartbeat must keep to: pod requests beyond what the
    /// nodes allocate (pods still counted on a node that went away) would give negative
    /// headroom, which the broker refuses, and one refused figure would cost the whole
    /// heartbeat. Headroom is kept within `[0, capacity]` (only at least 0 when the
    /// capacity is unknown), ready nodes within the node count; a negative count,
    /// capacity or latency is dropped as not measured.
    #[must_use]
    pub fn clamped(self) -> Self {
        let count = |n: Option<i64>| n.filter(|n| *n >= 0);
        let within = |part: Option<i64>, whole: Option<i64>| {
            part.map(|p| p.clamp(0, whole.unwrap_or(i64::MAX).max(0)))
        };
        let (cpu, memory, nodes) = (
            count(self.cpu_capacity_millis),
            count(self.memory_capacity_bytes),
            count(self.node_count),
        );
        Self {
            node_count: nodes,
            node_ready_count: within(count(self.node_ready_count), nodes),
            cpu_capacity_millis: cpu,
            cpu_available_millis: within(self.cpu_available_millis, cpu),
            memory_capacity_bytes: memory,
            memory_available_bytes: within(self.memory_available_bytes, memory),
            api_latency_ms: count(self.api_latency_ms),
        }
    }
}

/// Which events a diagnostics bundle wants: those about the given objects, recently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventScope {
    /// Namespaces the objects live in (events are namespaced).
    pub namespaces: BTreeSet<String>,
    /// UIDs of the objects (involved object / regarding).
    pub uids: HashSet<String>,
    /// Only events last seen at or after this.
    pub since: DateTime<Utc>,
}

/// One Kubernetes event as the probe read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedEvent {
    /// UID of the object the event is about.
    pub involved_uid: Option<String>,
    /// `Kind/name` of the object the event is about.
    pub involved_object: Option<String>,
    /// `Normal` or `Warning`.
    pub event_type: String,
    /// Machine-readable reason, e.g. `BackOff`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// First occurrence, when known.
    pub first_seen: Option<DateTime<Utc>>,
    /// Last occurrence, when known.
    pub last_seen: Option<DateTime<Utc>>,
    /// Occurrences, when known.
    pub count: Option<u32>,
}

/// The tail of one container's log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogQuery {
    /// Namespace of the pod.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// The previous (crashed) instance of the container instead of the current one.
    pub previous: bool,
    /// At most this many lines from the end.
    pub lines: u32,
    /// At most this many bytes (the API server cuts, so one line may end early).
    pub limit_bytes: usize,
}

/// Read access to one cluster.
#[async_trait]
pub trait ClusterProbe: Send + Sync {
    /// Everything that belongs to a deployment object: its resources (found by the
    /// deployment-object label), what they own (ReplicaSets, Jobs, Pods) and the nodes
    /// those pods run on. An object that was never applied yields empty observations.
    async fn observe(&self, object: &DeploymentObject) -> Result<Observations, ProbeError>;

    /// Nodes, capacity and API latency.
    async fn cluster_state(&self) -> Result<ClusterState, ProbeError>;

    /// Events in scope, newest last (the agent filters and deduplicates them again).
    async fn events(&self, scope: &EventScope) -> Result<Vec<ObservedEvent>, ProbeError>;

    /// The last lines of a container's log, oldest first.
    async fn log_tail(&self, query: &LogQuery) -> Result<Vec<String>, ProbeError>;
}

/// Why applying a deployment object failed, in categories an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason:?}: {message}")]
pub struct ApplyError {
    /// The category reported as the delivery's `failure_reason`.
    pub reason: FailureReason,
    /// Details reported as the delivery's `failure_message`.
    pub message: String,
}

impl ApplyError {
    /// An error of `reason` with `message`.
    pub fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Write access to one cluster: makes it match a deployment object.
#[async_trait]
pub trait Applier: Send + Sync {
    /// Applies the object's manifests, or deletes what an earlier object of the stack
    /// created when the object is a deletion marker. Must be idempotent: the agent
    /// retries failures with backoff.
    async fn apply(&self, object: &DeploymentObject) -> Result<(), ApplyError>;
}

/// One probe shared by several users (an agent and the host that also applies, say).
#[async_trait]
impl<P: ClusterProbe + ?Sized> ClusterProbe for std::sync::Arc<P> {
    async fn observe(&self, object: &DeploymentObject) -> Result<Observations, ProbeError> {
        (**self).observe(object).await
    }
    async fn cluster_state(&self) -> Result<ClusterState, ProbeError> {
        (**self).cluster_state().await
    }
    async fn events(&self, scope: &EventScope) -> Result<Vec<ObservedEvent>, ProbeError> {
        (**self).events(scope).await
    }
    async fn log_tail(&self, query: &LogQuery) -> Result<Vec<String>, ProbeError> {
        (**self).log_tail(query).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamped_figures_stay_in_the_ranges_a_heartbeat_accepts() {
        let overcommitted = ClusterState {
            node_count: Some(2),
            node_ready_count: Some(3),
            cpu_capacity_millis: Some(8_000),
            cpu_available_millis: Some(-1_500),
            memory_capacity_bytes: Some(100),
            memory_available_bytes: Some(150),
            api_latency_ms: Some(-1),
        };
        let c = overcommitted.clamped();
        assert_eq!((c.node_count, c.node_ready_count), (Some(2), Some(2)));
        assert_eq!(
            (c.cpu_capacity_millis, c.cpu_available_millis),
            (Some(8_000), Some(0))
        );
        assert_eq!(c.memory_available_bytes, Some(100));
        assert_eq!(c.api_latency_ms, None);
        // Without a capacity only the lower bound applies; plausible figures pass as is.
        let partial = ClusterState {
            cpu_available_millis: Some(-3),
            memory_available_bytes: Some(7),
            ..ClusterState::default()
        }
        .clamped();
        assert_eq!(
            (partial.cpu_available_millis, partial.memory_available_bytes),
            (Some(0), Some(7))
        );
        let fine = ClusterState {
            node_count: Some(3),
            node_ready_count: Some(3),
            cpu_capacity_millis: Some(4_000),
            cpu_available_millis: Some(1_000),
            memory_capacity_bytes: Some(10),
            memory_available_bytes: Some(0),
            api_latency_ms: Some(4),
        };
        assert_eq!(fine.clone().clamped(), fine);
    }
}
