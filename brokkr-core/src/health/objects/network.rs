//! Claims, Services, Nodes, Ingresses and autoscalers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::meta::{Condition, ConditionStatus, ObjectMeta, find_condition};
use super::{lenient_opt_int, nullable};

/// A PersistentVolumeClaim.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersistentVolumeClaim {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Observed state.
    #[serde(default, deserialize_with = "nullable")]
    pub status: PhaseStatus,
}

/// A status that is only a phase string.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseStatus {
    /// Phase, e.g. `Bound`.
    #[serde(default)]
    pub phase: Option<String>,
}

/// A Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: ServiceSpec,
    /// Observed state.
    #[serde(default, deserialize_with = "nullable")]
    pub status: ServiceStatus,
}

/// Desired state of a Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
}

/// Observed state of a Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Load balancer status.
    #[serde(default, deserialize_with = "nullable")]
    pub load_balancer: LoadBalancerStatus,
}

/// Load balancer status of a Service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancerStatus {
    /// Assigned ingress points; empty while provisioning.
    #[serde(default, deserialize_with = "nullable")]
    pub ingress: Vec<Value>,
}

/// A Node (never a resource of a deployment object; it explains pods on it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: NodeSpec,
    /// Observed state.
    #[serde(default, deserialize_with = "nullable")]
    pub status: NodeStatus,
}

/// Desired state of a Node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Taints, e.g. `node.kubernetes.io/unreachable`.
    #[serde(default, deserialize_with = "nullable")]
    pub taints: Vec<Taint>,
}

/// A node taint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Taint {
    /// Taint key.
    #[serde(default, deserialize_with = "nullable")]
    pub key: String,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    #[serde(default)]
    pub effect: Option<String>,
}

/// Observed state of a Node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Conditions (Ready, MemoryPressure, ...).
    #[serde(default, deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
}

impl Node {
    /// Whether the node controller has lost contact with the node: Ready is `Unknown`
    /// (the kubelet stopped posting status) or the `unreachable` taint is set. Pod
    /// statuses on such a node are stale, so its pods' health is unknown.
    pub fn is_lost(&self) -> bool {
        let ready_unknown = find_condition(&self.status.conditions, "Ready")
            .is_some_and(|c| c.status == ConditionStatus::Unknown);
        let unreachable = self
            .spec
            .taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/unreachable");
        ready_unknown || unreachable
    }
}

/// An Ingress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ingress {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Observed state: the addresses it is reachable at.
    #[serde(default, deserialize_with = "nullable")]
    pub status: ServiceStatus,
}

/// A HorizontalPodAutoscaler (`autoscaling/v1` or `v2`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HorizontalPodAutoscaler {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Observed state. For `autoscaling/v1` objects the conditions come from the
    /// `autoscaling.alpha.kubernetes.io/conditions` annotation, where v1 keeps them.
    #[serde(default, deserialize_with = "nullable")]
    pub status: AutoscalerStatus,
}

/// Observed state of a HorizontalPodAutoscaler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerStatus {
    /// AbleToScale, ScalingActive, ScalingLimited.
    #[serde(default, deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
    /// Replicas of the target now.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub current_replicas: Option<i32>,
    /// Replicas the autoscaler last asked for.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub desired_replicas: Option<i32>,
}
