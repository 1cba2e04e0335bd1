//! Thresholds of the health rules.

use chrono::Duration;

use super::custom::CustomKindRule;

/// Grace periods and windows of the classification rules. The defaults follow the
/// design's rule table; each field says which rule reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPolicy {
    /// ErrImagePull/ImagePullBackOff episode: degraded within, failing after.
    pub pull_grace: Duration,
    /// CreateContainerConfigError: degraded within (a Secret may still appear), failing after.
    pub config_grace: Duration,
    /// ContainerCreating/PodInitializing/Pending pods, Pending PVCs: progressing within, degraded after.
    pub start_grace: Duration,
    /// Running but not Ready: progressing within, degraded after.
    pub ready_grace: Duration,
    /// A LoadBalancer Service or an Ingress without an address: progressing within
    /// (from creation), degraded after.
    pub address_grace: Duration,
    /// Unschedulable: degraded within, failing after.
    pub unschedulable_grace: Duration,
    /// OOMKilled and restarts count as recent within this window.
    pub recent_window: Duration,
    /// Restarts within `recent_window` from which a running container is degraded.
    pub restart_threshold: i32,
    /// No progress for this long: a rollout is stuck (synthetic deadline for kinds
    /// without `progressDeadlineSeconds`).
    pub rollout_deadline: Duration,
    /// Deletion taking longer than `deletionTimestamp` plus this is stuck.
    pub terminating_grace: Duration,
    /// Finding messages are cut to this many bytes.
    pub message_limit: usize,
    /// A host's rules for its own custom kinds (checked before the built-in ones).
    pub custom_kinds: Vec<CustomKindRule>,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            pull_grace: Duration::minutes(2),
            config_grace: Duration::minutes(2),
            start_grace: Duration::minutes(5),
            ready_grace: Duration::minutes(5),
            address_grace: Duration::minutes(10),
            unschedulable_grace: Duration::minutes(5),
            recent_window: Duration::minutes(10),
            restart_threshold: 3,
            rollout_deadline: Duration::minutes(10),
            terminating_grace: Duration::seconds(60),
            message_limit: 512,
            custom_kinds: Vec::new(),
        }
    }
}
