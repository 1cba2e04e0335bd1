//! Controllers: Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::meta::{Condition, ObjectMeta};
use super::{lenient_bool, lenient_opt_bool, lenient_opt_int, lenient_time, nullable};

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
