//! Pods and their containers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::meta::{Condition, ObjectMeta};
use super::{lenient_bool, lenient_int, lenient_opt_int, lenient_time, nullable};

/// A Pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pod {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Desired state (only what classification needs).
    #[serde(default, deserialize_with = "nullable")]
    pub spec: PodSpec,
    /// Observed state.
    #[serde(default, deserialize_with = "nullable")]
    pub status: PodStatus,
}

/// The parts of a pod spec that matter for health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Node the pod is bound to.
    #[serde(default)]
    pub node_name: Option<String>,
    /// `Always` (the default), `OnFailure` or `Never`.
    #[serde(default)]
    pub restart_policy: Option<String>,
    /// Init containers, in order; native sidecars have `restartPolicy: Always`.
    #[serde(default, deserialize_with = "nullable")]
    pub init_containers: Vec<ContainerSpec>,
    /// Regular containers.
    #[serde(default, deserialize_with = "nullable")]
    pub containers: Vec<ContainerSpec>,
    /// Extra conditions the pod's Ready condition waits for (set by other controllers).
    #[serde(default, deserialize_with = "nullable")]
    pub readiness_gates: Vec<Value>,
}

impl PodSpec {
    /// Whether the kubelet restarts failed containers of this pod.
    pub fn restarts_containers(&self) -> bool {
        self.restart_policy.as_deref() != Some("Never")
    }

    /// Whether the kubelet restarts containers of this pod that exited successfully
    /// (`restartPolicy: Always`, the default).
    pub fn restarts_finished_containers(&self) -> bool {
        self.restart_policy.as_deref().is_none_or(|p| p == "Always")
    }

    /// Whether the init container `name` is a native sidecar (`restartPolicy: Always`).
    pub fn is_sidecar(&self, name: &str) -> bool {
        self.init_containers
            .iter()
            .any(|c| c.name == name && c.restart_policy.as_deref() == Some("Always"))
    }
}

/// A container in a pod spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Container name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Per-container restart policy (only `Always`, on init containers, which makes them sidecars).
    #[serde(default)]
    pub restart_policy: Option<String>,
}

/// Pod lifecycle phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    /// Accepted, not all containers started.
    #[default]
    Pending,
    /// Bound to a node, containers started.
    Running,
    /// All containers terminated successfully and will not restart.
    Succeeded,
    /// All containers terminated, at least one in failure.
    Failed,
    /// The state could not be obtained (also any unrecognised value).
    #[serde(other)]
    Unknown,
}

/// Observed pod state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// Phase; `None` when the status is empty (pod just created).
    #[serde(default)]
    pub phase: Option<PodPhase>,
    /// Reason for the phase, e.g. `Evicted`, `NodeLost`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Message for the phase.
    #[serde(default)]
    pub message: Option<String>,
    /// Conditions: PodScheduled, Initialized, ContainersReady, Ready, ...
    #[serde(default, deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
    /// When the kubelet acknowledged the pod.
    #[serde(default, deserialize_with = "lenient_time")]
    pub start_time: Option<DateTime<Utc>>,
    /// Statuses of init containers (sidecars included).
    #[serde(default, deserialize_with = "nullable")]
    pub init_container_statuses: Vec<ContainerStatus>,
    /// Statuses of regular containers.
    #[serde(default, deserialize_with = "nullable")]
    pub container_statuses: Vec<ContainerStatus>,
}

/// Observed state of one container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// Container name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Whether the container passes its readiness probe.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub ready: bool,
    /// Restarts so far.
    #[serde(default, deserialize_with = "lenient_int")]
    pub restart_count: i32,
    /// Current state.
    #[serde(default, deserialize_with = "nullable")]
    pub state: ContainerState,
    /// Previous state (the last termination, when it restarted).
    #[serde(default, deserialize_with = "nullable")]
    pub last_state: ContainerState,
}

/// One of waiting / running / terminated (all empty when unknown).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerState {
    /// Not running yet (or backing off).
    #[serde(default)]
    pub waiting: Option<StateWaiting>,
    /// Running.
    #[serde(default)]
    pub running: Option<StateRunning>,
    /// Terminated.
    #[serde(default)]
    pub terminated: Option<StateTerminated>,
}

/// A waiting container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateWaiting {
    /// Why it waits, e.g. `ImagePullBackOff`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Details.
    #[serde(default)]
    pub message: Option<String>,
}

/// A running container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateRunning {
    /// When it (re)started.
    #[serde(default, deserialize_with = "lenient_time")]
    pub started_at: Option<DateTime<Utc>>,
}

/// A terminated container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateTerminated {
    /// Exit code.
    #[serde(default, deserialize_with = "lenient_int")]
    pub exit_code: i32,
    /// Signal, when killed by one.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub signal: Option<i32>,
    /// Reason, e.g. `OOMKilled`, `Error`, `Completed`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Termination message.
    #[serde(default)]
    pub message: Option<String>,
    /// When it started.
    #[serde(default, deserialize_with = "lenient_time")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(default, deserialize_with = "lenient_time")]
    pub finished_at: Option<DateTime<Utc>>,
}
