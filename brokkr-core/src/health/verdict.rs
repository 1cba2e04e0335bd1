//! The vocabulary of a health verdict: health, phase, findings and the assessment.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How well something works. Ordered from best to worst, so aggregation is `max`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Health {
    /// Works as intended (possibly still on its way: see [`Phase::Progressing`]).
    #[default]
    Healthy,
    /// Cannot be told (lost node, stale report, generation not yet observed).
    Unknown,
    /// Works partially or is at risk.
    Degraded,
    /// Does not work and needs attention.
    Failing,
}

impl Health {
    /// Lower-case name as used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Unknown => "unknown",
            Self::Degraded => "degraded",
            Self::Failing => "failing",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Health {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "healthy" => Ok(Self::Healthy),
            "unknown" => Ok(Self::Unknown),
            "degraded" => Ok(Self::Degraded),
            "failing" => Ok(Self::Failing),
            other => Err(format!(
                "unknown health {other:?} (expected healthy, unknown, degraded or failing)"
            )),
        }
    }
}

/// Where something is in its life cycle (independent of how well it works).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// On its way to the desired state.
    Progressing,
    /// At the desired state.
    Stable,
    /// Ran to completion (Jobs, Succeeded pods).
    Completed,
    /// Deliberately paused or suspended.
    Suspended,
    /// Being deleted.
    Terminating,
    /// Nothing found.
    Absent,
}

impl Phase {
    /// Precedence when several resources make one deployment object: the phase a user
    /// most needs to know about wins (a terminating part beats a progressing one, which
    /// beats a suspended one, which beats stable; completed only when everything is).
    pub(crate) fn precedence(self) -> u8 {
        match self {
            Self::Completed => 0,
            Self::Stable => 1,
            Self::Suspended => 2,
            Self::Progressing => 3,
            Self::Terminating => 4,
            Self::Absent => 5,
        }
    }
}

/// How much a finding weighs: the health it imposes on its resource, or `info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; does not affect health.
    Info,
    /// Makes the resource's health unknown.
    Unknown,
    /// Makes the resource degraded.
    Degraded,
    /// Makes the resource failing.
    Failing,
}

impl Severity {
    /// The health this severity imposes.
    pub fn health(self) -> Health {
        match self {
            Self::Info => Health::Healthy,
            Self::Unknown => Health::Unknown,
            Self::Degraded => Health::Degraded,
            Self::Failing => Health::Failing,
        }
    }
}

/// Whether a problem may clear by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// May resolve without intervention (back-off, scheduling, a late Secret).
    Transient,
    /// Will not resolve until someone changes something (bad image name, deadline exceeded).
    Terminal,
}

/// What a finding is about, as a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FindingCode {
    /// The image reference cannot be parsed.
    InvalidImageName,
    /// `imagePullPolicy: Never` and the image is not on the node.
    ErrImageNeverPull,
    /// A referenced ConfigMap/Secret (key) is missing.
    CreateContainerConfigError,
    /// The runtime could not create the container.
    CreateContainerError,
    /// The runtime could not start the container.
    RunContainerError,
    /// Pulling the image failed.
    ErrImagePull,
    /// Pulling the image failed repeatedly; the kubelet backs off.
    ImagePullBackOff,
    /// The container keeps crashing; the kubelet backs off.
    CrashLoopBackOff,
    /// The container has been being created for too long.
    ContainerCreating,
    /// The container has been waiting on initialization for too long.
    PodInitializing,
    /// The container has been waiting for too long for another reason.
    ContainerWaiting,
    /// The container was killed for exceeding its memory limit.
    #[serde(rename = "OOMKilled")]
    OomKilled,
    /// The container exited with an error and will not be restarted.
    ContainerError,
    /// The container restarted often recently.
    RestartingFrequently,
    /// No node can take the pod.
    Unschedulable,
    /// The pod runs but does not pass readiness.
    NotReady,
    /// The pod failed (evicted, deadline exceeded, containers failed).
    PodFailed,
    /// Deletion has taken longer than its grace period.
    StuckTerminating,
    /// The pod's node stopped reporting; its status is stale.
    NodeLost,
    /// The pod has not started for too long.
    PodPending,
    /// The controller has not yet observed the latest spec.
    GenerationNotObserved,
    /// The Deployment controller gave up waiting for progress.
    ProgressDeadlineExceeded,
    /// A StatefulSet/DaemonSet rollout made no progress for `rollout_deadline`.
    RolloutStuck,
    /// Fewer replicas are available than required.
    ReplicasUnavailable,
    /// Replicas are wanted but none is available past `rollout_deadline`.
    NoReplicasAvailable,
    /// The controller cannot create pods (quota, admission).
    ReplicaFailure,
    /// The Job failed.
    JobFailed,
    /// The CronJob's last finished run failed.
    CronJobLastRunFailed,
    /// The claim is not bound yet.
    VolumeClaimPending,
    /// The claim lost its volume.
    VolumeClaimLost,
    /// The load balancer has no ingress yet.
    LoadBalancerPending,
    /// The deployment object was applied but none of its resources exists.
    Absent,
    /// A custom resource's controller reports `Stalled=True`: it gave up.
    Stalled,
    /// The object has no status yet: its controller has not observed it.
    NotObserved,
    /// A HorizontalPodAutoscaler cannot read its metrics or cannot scale its target.
    AutoscalerFailed,
    /// A HorizontalPodAutoscaler is switched off on purpose (target scaled to zero).
    ScalingDisabled,
    /// A HorizontalPodAutoscaler wants more or fewer replicas than its bounds allow.
    ScalingLimited,
    /// An Ingress has no address yet.
    IngressPending,
    /// A CronJob's last scheduled run is older than its schedule says it should be.
    MissedSchedule,
    /// A certificate's validity ended (`notAfter` is past).
    CertificateExpired,
    /// A custom resource's controller reports a terminal failure (a reason such as
    /// `InstallFailed`, `RetriesExceeded`, `...CheckFailed`, or `status.phase: Failed`).
    ReconcileFailed,
    /// A custom resource reports itself degraded (`status.phase: Degraded`).
    ResourceDegraded,
    /// A progressive rollout (Argo Rollouts) was aborted and went back to stable.
    RolloutAborted,
    /// An autoscaler (KEDA) serves its fallback replica count: its scaler is failing.
    ScalerFallback,
}

/// Identifies a Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceRef {
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (`None` for cluster-scoped objects).
    pub namespace: Option<String>,
}

/// Which role a container plays in its pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ContainerRole {
    /// A regular container.
    Main,
    /// An init container that runs to completion before the others start.
    Init,
    /// A native sidecar: an init container with `restartPolicy: Always`.
    Sidecar,
}

/// The container a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerRef {
    /// Container name.
    pub name: String,
    /// Its role.
    pub role: ContainerRole,
}

/// How many of a controller's pods share a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Affected {
    /// Pods with the finding.
    pub n: u32,
    /// Pods of the controller.
    pub of: u32,
}

/// One typed reason behind a verdict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    /// What it is.
    pub code: FindingCode,
    /// How much it weighs.
    pub severity: Severity,
    /// Whether it may clear by itself.
    pub persistence: Persistence,
    /// The object it was found on (for pods sharing a finding: the first by name).
    pub resource: ResourceRef,
    /// The container, for container-level findings.
    #[serde(default)]
    pub container: Option<ContainerRef>,
    /// What `kubectl get` would show, e.g. `Init:CrashLoopBackOff`.
    pub display: String,
    /// Details from Kubernetes, truncated.
    #[serde(default)]
    pub message: Option<String>,
    /// When the problem started, when known.
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
    /// Restarts (container findings) or occurrences, when known.
    #[serde(default)]
    pub count: Option<u32>,
    /// For pod findings under a controller: how many of its pods share it.
    #[serde(default)]
    pub affected: Option<Affected>,
    /// The rule that fired, e.g. `pod.container.pull`: for explanations (`classify
    /// --explain`), not part of the wire format.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub rule: &'static str,
    /// The time the rule measured its grace or window from: for explanations, not part
    /// of the wire format.
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub anchor: Option<Anchor>,
}

/// The time a rule measured from, and which field of the object it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Anchor {
    /// The field, e.g. `status.startTime` or `Ready.lastTransitionTime`.
    pub field: &'static str,
    /// Its value; `None` when the object does not carry it (a missing anchor counts as
    /// long past for grace periods, and never proves a stall).
    pub at: Option<DateTime<Utc>>,
}

/// The verdict on one resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceStatus {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: Option<String>,
    /// Health of this resource alone.
    pub health: Health,
    /// Phase of this resource.
    pub phase: Phase,
    /// Healthy and settled (stable, completed or suspended).
    pub ready: bool,
    /// Short explanation, e.g. `2/3 replicas available`.
    #[serde(default)]
    pub message: Option<String>,
}

/// The verdict on one deployment object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assessment {
    /// Worst health of any resource.
    pub health: Health,
    /// Aggregated phase (see [`Phase`] precedence).
    pub phase: Phase,
    /// Pods that are Ready.
    pub pods_ready: u32,
    /// Pods that count: all but Succeeded ones and Failed ones a healthy controller replaced.
    pub pods_total: u32,
    /// Distinct `display` strings of the findings that affect health, sorted.
    pub conditions: Vec<String>,
    /// Top-level resources, plus any owned resource that is not healthy and ready.
    pub resources: Vec<ResourceStatus>,
    /// Typed findings, worst first.
    pub findings: Vec<Finding>,
}
