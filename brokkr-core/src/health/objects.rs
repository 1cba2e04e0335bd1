//! Observation types: the subset of Kubernetes objects the classifier reads.
//!
//! They deserialize directly from the JSON the API server returns (camelCase, unknown
//! fields ignored), so `kubectl get pods -o json` output can be fed in as it is. Every
//! field is optional or defaulted, and `null` is accepted wherever a value may be missing:
//! objects recorded from real clusters and test suites are often partial, and a missing
//! field must mean "not known", never a parse failure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// Deserializes `null` (or a missing field, together with `#[serde(default)]`) as the
/// type's default value.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// Deserializes an RFC 3339 timestamp; `null`, an empty string or an unparsable value
/// become `None` (an unknown time), because one odd timestamp must not make a whole
/// object unreadable.
fn lenient_time<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = Option::<Value>::deserialize(deserializer)?;
    Ok(raw.as_ref().and_then(Value::as_str).and_then(|s| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }))
}

/// Reads an integer leniently: integral floats (`2.0`) and numeric strings (`"3"`) are
/// accepted, because YAML tooling and hand-written recordings produce them; anything
/// else non-null is an error.
fn lenient_opt_int<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let raw = Option::<Value>::deserialize(deserializer)?;
    let number = match &raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    number
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected an integer, found {}",
                raw.unwrap_or_default()
            ))
        })
}

fn lenient_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    lenient_opt_int(deserializer).map(Option::unwrap_or_default)
}

/// Reads a boolean leniently: `true`/`false` and the strings `"true"`/`"false"`.
fn lenient_opt_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a boolean, found {other}"
        ))),
    }
}

fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    lenient_opt_bool(deserializer).map(Option::unwrap_or_default)
}

/// Reads labels leniently: unquoted YAML scalars (`hash: 2279996225`, `enabled: true`)
/// become their text; nulls are dropped.
fn lenient_labels<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, Value>>::deserialize(deserializer)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Null => None,
            other => Some((k, other.to_string())),
        })
        .collect())
}

/// The metadata every object carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Namespace; `None` for cluster-scoped objects (and for partial recordings).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Unique id assigned by the API server.
    #[serde(default)]
    pub uid: Option<String>,
    /// Generation of the desired state (bumped on every spec change).
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub generation: Option<i64>,
    /// When the object was created.
    #[serde(default, deserialize_with = "lenient_time")]
    pub creation_timestamp: Option<DateTime<Utc>>,
    /// When deletion was requested; already includes the grace period.
    #[serde(default, deserialize_with = "lenient_time")]
    pub deletion_timestamp: Option<DateTime<Utc>>,
    /// Labels.
    #[serde(default, deserialize_with = "lenient_labels")]
    pub labels: BTreeMap<String, String>,
    /// Owners; the one with `controller: true` manages this object.
    #[serde(default, deserialize_with = "nullable")]
    pub owner_references: Vec<OwnerReference>,
    /// Who last wrote which part, and when (server-side apply bookkeeping). Often left
    /// out of recordings (`kubectl get` hides it).
    #[serde(default, deserialize_with = "lenient_managed_fields")]
    pub managed_fields: Vec<ManagedFieldsEntry>,
}

/// One writer's entry in `metadata.managedFields`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagedFieldsEntry {
    /// The writer, e.g. `kube-controller-manager`.
    #[serde(default)]
    pub manager: Option<String>,
    /// `status` when the entry is about the status subresource.
    #[serde(default)]
    pub subresource: Option<String>,
    /// When the writer last changed its fields.
    #[serde(default, deserialize_with = "lenient_time")]
    pub time: Option<DateTime<Utc>>,
}

/// `managedFields` entries that cannot be read are dropped: they are bookkeeping, never
/// a reason to reject an object.
fn lenient_managed_fields<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ManagedFieldsEntry>, D::Error> {
    let raw = Option::<Value>::deserialize(deserializer)?;
    Ok(match raw {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

impl ObjectMeta {
    /// When a controller last changed the status: the newest `managedFields` entry for
    /// the status subresource. A controller writes status when its counts move, so this
    /// is evidence of progress that kinds without conditions otherwise lack.
    pub fn status_updated_at(&self) -> Option<DateTime<Utc>> {
        self.managed_fields
            .iter()
            .filter(|m| m.subresource.as_deref() == Some("status"))
            .filter_map(|m| m.time)
            .max()
    }

    /// The managing owner: the reference marked `controller: true`, else the first one.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.owner_references
            .iter()
            .find(|o| o.controller == Some(true))
            .or_else(|| self.owner_references.first())
    }
}

/// A reference from an object to its owner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    /// Owner kind, e.g. `ReplicaSet`.
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    /// Owner name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Owner uid.
    #[serde(default)]
    pub uid: Option<String>,
    /// Whether this owner is the managing controller.
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub controller: Option<bool>,
}

/// Status of a condition: `True`, `False` or `Unknown` (anything else reads as `Unknown`;
/// YAML booleans, from an unquoted `status: True`, read as what they say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known (also any unrecognised value).
    #[default]
    Unknown,
}

impl<'de> Deserialize<'de> for ConditionStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Bool(true) => Self::True,
            Value::Bool(false) => Self::False,
            Value::String(s) if s.eq_ignore_ascii_case("true") => Self::True,
            Value::String(s) if s.eq_ignore_ascii_case("false") => Self::False,
            _ => Self::Unknown,
        })
    }
}

/// A status condition, as every built-in kind reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`, `Available`, `Progressing`.
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub type_: String,
    /// Whether it holds.
    #[serde(default)]
    pub status: ConditionStatus,
    /// Machine-readable reason, e.g. `Unschedulable`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// When the status last changed.
    #[serde(default, deserialize_with = "lenient_time")]
    pub last_transition_time: Option<DateTime<Utc>>,
    /// When the condition was last updated (Deployments bump this on progress).
    #[serde(default, deserialize_with = "lenient_time")]
    pub last_update_time: Option<DateTime<Utc>>,
}

impl Condition {
    /// The newest of the condition's timestamps.
    pub fn latest_time(&self) -> Option<DateTime<Utc>> {
        self.last_transition_time.max(self.last_update_time)
    }
}

/// Finds the condition of `type_` in `conditions`.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

// ---------------------------------------------------------------- Pod

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

// ---------------------------------------------------------------- workloads

/// A Deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: DeploymentSpec,
    /// Observed state.
    #[serde(default, deserialize_with = "nullable")]
    pub status: WorkloadStatus,
}

/// Desired state of a Deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// Desired replicas (API default 1).
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub replicas: Option<i32>,
    /// Whether the rollout is paused.
    #[serde(default, deserialize_with = "lenient_bool")]
    pub paused: bool,
    /// Seconds without progress before the controller reports ProgressDeadlineExceeded.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub progress_deadline_seconds: Option<i32>,
}

/// Replica counts and conditions shared by Deployments, ReplicaSets and StatefulSets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatus {
    /// Generation the controller last acted on.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub observed_generation: Option<i64>,
    /// Pods that exist (old and new).
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub replicas: Option<i32>,
    /// Pods of the current template.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub updated_replicas: Option<i32>,
    /// Ready pods.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub ready_replicas: Option<i32>,
    /// Pods ready for at least minReadySeconds.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub available_replicas: Option<i32>,
    /// StatefulSet: revision serving the current pods.
    #[serde(default)]
    pub current_revision: Option<String>,
    /// StatefulSet: revision being rolled out.
    #[serde(default)]
    pub update_revision: Option<String>,
    /// Conditions (Available, Progressing, ReplicaFailure, ...).
    #[serde(default, deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
}

/// A StatefulSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatefulSet {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: StatefulSetSpec,
    /// Observed state.
    #[serde(default, deserialize_with = "nullable")]
    pub status: WorkloadStatus,
}

/// Desired state of a StatefulSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetSpec {
    /// Desired replicas (API default 1).
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub replicas: Option<i32>,
    /// How pods are replaced on a template change.
    #[serde(default, deserialize_with = "nullable")]
    pub update_strategy: UpdateStrategy,
}

/// `RollingUpdate` (default) or `OnDelete`, with an optional partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateStrategy {
    /// Strategy type.
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    /// Rolling update parameters.
    #[serde(default, deserialize_with = "nullable")]
    pub rolling_update: RollingUpdate,
}

impl UpdateStrategy {
    /// Whether pods are only replaced when someone deletes them.
    pub fn is_on_delete(&self) -> bool {
        self.type_.as_deref() == Some("OnDelete")
    }
}

/// Rolling update parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdate {
    /// StatefulSet: ordinals below the partition keep the old revision.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub partition: Option<i32>,
}

/// A DaemonSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonSet {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: DaemonSetSpec,
    /// Observed state.
    #[serde(default, deserialize_with = "nullable")]
    pub status: DaemonSetStatus,
}

/// Desired state of a DaemonSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetSpec {
    /// How pods are replaced on a template change.
    #[serde(default, deserialize_with = "nullable")]
    pub update_strategy: UpdateStrategy,
}

/// Observed state of a DaemonSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetStatus {
    /// Generation the controller last acted on.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub observed_generation: Option<i64>,
    /// Nodes that should run the daemon pod.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub desired_number_scheduled: Option<i32>,
    /// Nodes running at least one daemon pod.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub current_number_scheduled: Option<i32>,
    /// Nodes with a ready daemon pod.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub number_ready: Option<i32>,
    /// Nodes with an available daemon pod.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub number_available: Option<i32>,
    /// Nodes running the current template.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub updated_number_scheduled: Option<i32>,
    /// Conditions (rarely set).
    #[serde(default, deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
}

/// A ReplicaSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReplicaSet {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: ReplicaSetSpec,
    /// Observed state.
    #[serde(default, deserialize_with = "nullable")]
    pub status: WorkloadStatus,
}

/// Desired state of a ReplicaSet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetSpec {
    /// Desired replicas (API default 1).
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub replicas: Option<i32>,
}

/// A Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: JobSpec,
    /// Observed state.
    #[serde(default, deserialize_with = "nullable")]
    pub status: JobStatus,
}

/// Desired state of a Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSpec {
    /// Whether the Job is suspended.
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub suspend: Option<bool>,
    /// Successful pods needed (default 1).
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub completions: Option<i32>,
}

/// Observed state of a Job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Complete, Failed, FailureTarget, SuccessCriteriaMet, Suspended.
    #[serde(default, deserialize_with = "nullable")]
    pub conditions: Vec<Condition>,
    /// Running pods.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub active: Option<i32>,
    /// Succeeded pods.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub succeeded: Option<i32>,
    /// Failed pods.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub failed: Option<i32>,
    /// When the Job started.
    #[serde(default, deserialize_with = "lenient_time")]
    pub start_time: Option<DateTime<Utc>>,
    /// When the Job completed.
    #[serde(default, deserialize_with = "lenient_time")]
    pub completion_time: Option<DateTime<Utc>>,
}

/// A CronJob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CronJob {
    /// Metadata.
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default, deserialize_with = "nullable")]
    pub spec: CronJobSpec,
    /// Observed state.
    #[serde(default, deserialize_with = "nullable")]
    pub status: CronJobStatus,
}

/// Desired state of a CronJob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobSpec {
    /// Whether scheduling is suspended.
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub suspend: Option<bool>,
    /// The cron schedule, e.g. `*/15 * * * *`.
    #[serde(default)]
    pub schedule: Option<String>,
    /// Time zone of the schedule (`None`: the controller's, normally UTC).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// How late a missed run may still start.
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub starting_deadline_seconds: Option<i64>,
}

/// Observed state of a CronJob.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobStatus {
    /// Running Jobs.
    #[serde(default, deserialize_with = "nullable")]
    pub active: Vec<Value>,
    /// When a Job was last scheduled.
    #[serde(default, deserialize_with = "lenient_time")]
    pub last_schedule_time: Option<DateTime<Utc>>,
    /// When a Job last completed successfully.
    #[serde(default, deserialize_with = "lenient_time")]
    pub last_successful_time: Option<DateTime<Utc>>,
}

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

/// Any other kind: its identity, plus the status conventions most controllers follow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "RawOther")]
pub struct OtherObject {
    /// API version, e.g. `v1`.
    pub api_version: String,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The switches of the spec that mean "paused on purpose" (`suspend`, `paused`).
    #[serde(skip_serializing_if = "OtherSpec::is_empty")]
    pub spec: OtherSpec,
    /// The status as the object carries it.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub status: Value,
    /// What the classifier reads of `status`.
    #[serde(skip)]
    pub view: OtherStatus,
}

impl OtherObject {
    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }
}

/// The spec switches of a custom kind that pause it on purpose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OtherSpec {
    /// Flux, CronJob-like kinds: `spec.suspend`.
    #[serde(
        default,
        deserialize_with = "lenient_opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub suspend: Option<bool>,
    /// Argo Rollouts and Cluster API: `spec.paused`.
    #[serde(
        default,
        deserialize_with = "lenient_opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub paused: Option<bool>,
}

impl OtherSpec {
    fn is_empty(&self) -> bool {
        self.suspend.is_none() && self.paused.is_none()
    }

    /// Whether the spec pauses the object on purpose.
    pub fn suspended(&self) -> bool {
        self.suspend == Some(true) || self.paused == Some(true)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOther {
    #[serde(default, deserialize_with = "nullable")]
    api_version: String,
    #[serde(default, deserialize_with = "nullable")]
    kind: String,
    #[serde(default, deserialize_with = "nullable")]
    metadata: ObjectMeta,
    #[serde(default, deserialize_with = "lenient_other_spec")]
    spec: OtherSpec,
    #[serde(default)]
    status: Value,
}

impl From<RawOther> for OtherObject {
    fn from(raw: RawOther) -> Self {
        let view = OtherStatus::read(&raw.status);
        Self {
            api_version: raw.api_version,
            kind: raw.kind,
            metadata: raw.metadata,
            spec: raw.spec,
            status: raw.status,
            view,
        }
    }
}

/// A spec whose switches cannot be read pauses nothing.
fn lenient_other_spec<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OtherSpec, D::Error> {
    let raw = Option::<Value>::deserialize(deserializer)?;
    Ok(raw
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// The status conventions most controllers follow, read from any kind's status: each
/// field on its own, so one odd field (Argo Rollouts once wrote `observedGeneration` as
/// a hash) never hides the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtherStatus {
    /// The status carries at least one non-empty field: some controller wrote it.
    pub present: bool,
    /// Generation the controller last acted on.
    pub observed_generation: Option<i64>,
    /// Conditions.
    pub conditions: Vec<Condition>,
    /// `status.phase`, e.g. `Running`, `Failed`, `Degraded`, `Paused`.
    pub phase: Option<String>,
    /// `status.message`.
    pub message: Option<String>,
    /// cert-manager Certificate: end of validity.
    pub not_after: Option<DateTime<Utc>>,
    /// Argo Rollouts: the rollout was aborted.
    pub abort: bool,
}

impl OtherStatus {
    /// Reads the conventional fields of `status`.
    pub fn read(status: &Value) -> Self {
        let Value::Object(map) = status else {
            return Self::default();
        };
        let text = |name: &str| map.get(name).and_then(Value::as_str).map(str::to_owned);
        let conditions = match map.get("conditions") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|c| Condition::deserialize(c).ok())
                .collect(),
            _ => Vec::new(),
        };
        Self {
            present: map.values().any(|v| !is_empty_value(v)),
            observed_generation: map
                .get("observedGeneration")
                .and_then(|v| lenient_opt_int::<_, i64>(v).ok().flatten()),
            conditions,
            phase: text("phase").filter(|p| !p.is_empty()),
            message: text("message").filter(|m| !m.is_empty()),
            not_after: map
                .get("notAfter")
                .and_then(|v| lenient_time(v).ok().flatten()),
            abort: map.get("abort").and_then(Value::as_bool).unwrap_or(false),
        }
    }
}

fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty_value),
        Value::Bool(_) | Value::Number(_) => false,
    }
}
