//! Workload rules: the controller's own status decides; its pods only explain.

use chrono::{DateTime, Utc};

use super::context::{Ctx, anchor};
use super::objects::{
    Condition, ConditionStatus, DaemonSetStatus, Deployment, ObjectMeta, WorkloadStatus,
    find_condition,
};
use super::pod::not_observed;
use super::verdict::{Finding, FindingCode, Health, Persistence, Phase, Severity};

mod replicated;

pub(crate) use replicated::{assess_daemonset, assess_replicaset, assess_statefulset};

/// The verdict on one workload (or other non-pod resource), plus what it means for the
/// resources it controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkloadVerdict {
    pub health: Health,
    pub phase: Phase,
    pub message: Option<String>,
    /// The controller is within its deadline and keeps minimum availability, so problems
    /// of its pods (a crash-looping new replica in a rollout) cap at degraded.
    pub shields: bool,
    /// The controller is healthy and settled, so a Failed pod (or Job) it owns has been
    /// replaced and is only worth an info finding.
    pub supersedes_failed: bool,
    /// The resource itself ended in failure (a failed Job).
    pub failed: bool,
}

impl WorkloadVerdict {
    pub(crate) fn new(phase: Phase, message: Option<String>) -> Self {
        Self {
            health: Health::Healthy,
            phase,
            message,
            shields: false,
            supersedes_failed: false,
            failed: false,
        }
    }

    pub(crate) fn worsen(&mut self, severity: Severity) {
        self.health = self.health.max(severity.health());
    }

    /// Rule for every kind: nobody has written the object's status yet, so nothing it
    /// says can be trusted: unknown, progressing, one `NotObserved` finding.
    pub(crate) fn not_observed(
        kind: &str,
        meta: &ObjectMeta,
        ctx: &Ctx,
        out: &mut Vec<Finding>,
    ) -> Self {
        out.push(not_observed(kind, meta, ctx));
        let mut v = Self::new(Phase::Progressing, Some("not observed yet".to_owned()));
        v.health = Health::Unknown;
        v
    }
}

/// What a controller's pods (among the given objects) say about it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PodEvidence {
    /// The last sign of progress: a healthy pod created or turned Ready.
    pub progress: Option<DateTime<Utc>>,
    /// A healthy pod created within `start_grace` is not Ready yet: a replica on its
    /// way, so a shortfall is progress rather than a missing replica.
    pub arriving: bool,
}

/// Whether a workload controller has written any status: an observed generation, a
/// condition, a revision or a non-zero count (the API omits zeros, so a status holding
/// only zeros is what the API server stores before any controller acts).
fn workload_observed(st: &WorkloadStatus) -> bool {
    let counts = [
        st.replicas,
        st.updated_replicas,
        st.ready_replicas,
        st.available_replicas,
    ];
    st.observed_generation.is_some()
        || !st.conditions.is_empty()
        || st.current_revision.is_some()
        || st.update_revision.is_some()
        || counts.iter().any(|c| c.is_some_and(|n| n != 0))
}

fn daemonset_observed(st: &DaemonSetStatus) -> bool {
    let counts = [
        st.desired_number_scheduled,
        st.current_number_scheduled,
        st.number_ready,
        st.number_available,
        st.updated_number_scheduled,
    ];
    st.observed_generation.is_some()
        || !st.conditions.is_empty()
        || counts.iter().any(|c| c.is_some_and(|n| n != 0))
}

/// A first rollout still inside the rollout deadline: the object is at its first
/// generation and younger than `rollout_deadline`. Missing replicas are its progress,
/// not a fault.
fn fresh(meta: &ObjectMeta, ctx: &Ctx) -> bool {
    meta.generation.is_none_or(|g| g <= 1)
        && ctx.recent(meta.creation_timestamp, ctx.policy.rollout_deadline)
}

/// The last sign of progress the object itself carries: its conditions' times, the
/// controller's last status write (`managedFields`), and its creation, but creation only
/// for the first generation: once the spec changed, creation says nothing about when the
/// current rollout began.
fn last_progress(meta: &ObjectMeta, conditions: &[Condition]) -> Option<DateTime<Utc>> {
    let created = meta
        .creation_timestamp
        .filter(|_| meta.generation.is_none_or(|g| g <= 1));
    conditions
        .iter()
        .filter_map(Condition::latest_time)
        .chain(meta.status_updated_at())
        .chain(created)
        .max()
}

/// Whether no progress was seen for `rollout_deadline`. Unlike grace periods, a stall is
/// only claimed from a known anchor: without one the rollout's age cannot be told.
fn stalled(anchor: Option<DateTime<Utc>>, ctx: &Ctx) -> bool {
    anchor.is_some() && ctx.past(anchor, ctx.policy.rollout_deadline)
}

/// Whether the controller has acted on the latest spec. A recording without a
/// generation cannot tell, and counts as observed.
pub(crate) fn generation_observed(meta: &ObjectMeta, observed: Option<i64>) -> bool {
    match meta.generation {
        Some(generation) => observed.is_some_and(|o| o >= generation),
        None => true,
    }
}

pub(crate) fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find_condition(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

/// Rule: a controller that has not observed the latest generation reports the previous
/// spec's status, so nothing it says applies yet: unknown, progressing.
pub(crate) fn generation_pending(kind: &str, meta: &ObjectMeta, ctx: &Ctx, out: &mut Vec<Finding>) {
    out.push(
        ctx.finding(
            FindingCode::GenerationNotObserved,
            Severity::Unknown,
            Persistence::Transient,
            kind,
            meta,
            "GenerationNotObserved".to_owned(),
            Some("the controller has not yet observed the latest spec"),
        )
        .rule("workload.generation_not_observed"),
    );
}

/// Rule: ReplicaFailure=True means the controller cannot create pods (quota, admission).
fn replica_failure(
    kind: &str,
    meta: &ObjectMeta,
    conditions: &[Condition],
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) -> Option<Severity> {
    let cond = find_condition(conditions, "ReplicaFailure")
        .filter(|c| c.status == ConditionStatus::True)?;
    out.push(
        ctx.finding(
            FindingCode::ReplicaFailure,
            Severity::Degraded,
            Persistence::Transient,
            kind,
            meta,
            cond.reason
                .clone()
                .unwrap_or_else(|| "ReplicaFailure".into()),
            cond.message.as_deref(),
        )
        .rule("workload.replica_failure")
        .anchored(anchor(
            "ReplicaFailure.lastTransitionTime",
            cond.last_transition_time,
        )),
    );
    Some(Severity::Degraded)
}

/// Deployment rules.
pub(crate) fn assess_deployment(
    d: &Deployment,
    arriving: bool,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) -> WorkloadVerdict {
    const KIND: &str = "Deployment";
    let (meta, st) = (&d.metadata, &d.status);
    if !workload_observed(st) {
        return WorkloadVerdict::not_observed(KIND, meta, ctx, out);
    }
    let desired = d.spec.replicas.unwrap_or(1).max(0);
    let existing = st.replicas.unwrap_or(0);
    let updated = st.updated_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let available_cond = find_condition(&st.conditions, "Available");
    let progressing_cond = find_condition(&st.conditions, "Progressing");
    let min_available =
        available_cond.map_or(available >= desired, |c| c.status == ConditionStatus::True);
    let deadline_exceeded = progressing_cond.filter(|c| {
        c.status == ConditionStatus::False
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    // The controller marks a finished rollout with Progressing reason
    // NewReplicaSetAvailable and leaves it so while the replica counts match; pods lost
    // afterwards are an availability matter, not a rollout. Recordings without the
    // condition fall back to the counts: a new template not yet everywhere, old pods
    // still there, or a first rollout within the deadline.
    let rollout_incomplete = match progressing_cond {
        Some(c) if c.status == ConditionStatus::True => {
            c.reason.as_deref() != Some("NewReplicaSetAvailable")
        }
        _ => updated < desired || existing > updated || (available < desired && fresh(meta, ctx)),
    };

    let mut v = WorkloadVerdict::new(
        Phase::Stable,
        Some(format!(
            "{available}/{desired} replicas available, {updated} updated"
        )),
    );
    v.shields = min_available && deadline_exceeded.is_none();

    if !generation_observed(meta, st.observed_generation) {
        generation_pending(KIND, meta, ctx, out);
        v.health = Health::Unknown;
        v.phase = Phase::Progressing;
        return v;
    }
    // Rule: the controller itself gave up waiting for the rollout to progress.
    if let Some(cond) = deadline_exceeded {
        out.push(
            ctx.finding(
                FindingCode::ProgressDeadlineExceeded,
                Severity::Failing,
                Persistence::Terminal,
                KIND,
                meta,
                "ProgressDeadlineExceeded".to_owned(),
                cond.message.as_deref(),
            )
            .rule("deployment.progress_deadline")
            .anchored(anchor(
                "Progressing.lastTransitionTime",
                cond.last_transition_time,
            )),
        );
        v.health = Health::Failing;
        v.phase = Phase::Progressing;
        return v;
    }
    if let Some(severity) = replica_failure(KIND, meta, &st.conditions, ctx, out) {
        v.worsen(severity);
    }
    let unavailable = available_cond.is_some_and(|c| c.status == ConditionStatus::False);
    // Rule: a paused rollout is suspended on purpose; it still must keep availability.
    if d.spec.paused {
        v.phase = Phase::Suspended;
        if unavailable {
            replicas_unavailable(KIND, meta, available_cond, ctx, out);
            v.worsen(Severity::Degraded);
        }
        return v;
    }
    // Rule: scaled to zero is a valid, settled state.
    if desired == 0 {
        v.phase = if existing > 0 {
            Phase::Progressing
        } else {
            Phase::Stable
        };
        v.supersedes_failed = true;
        return v;
    }
    // Rule (missing pods): wanted replicas but none available, and no progress for the
    // rollout deadline. Judged from the workload status, not from the pods given.
    if available == 0 && stalled(last_progress(meta, &st.conditions), ctx) {
        no_replicas(KIND, meta, desired, ctx, out);
        v.health = Health::Failing;
        v.phase = if rollout_incomplete {
            Phase::Progressing
        } else {
            Phase::Stable
        };
        return v;
    }
    if rollout_incomplete {
        // Rule: a rollout in flight is progress, as long as the controller's own
        // progress deadline has not fired (handled above).
        v.phase = Phase::Progressing;
    } else if (unavailable || available < desired) && arriving {
        // Rule: a replacement or scaled-up replica is coming up (a healthy pod created
        // within start_grace): progress, not a missing replica. A scale-up keeps the
        // Progressing reason NewReplicaSetAvailable and may even turn Available False.
        v.phase = Phase::Progressing;
    } else if unavailable {
        // Rule: rolled out, yet below minimum availability.
        replicas_unavailable(KIND, meta, available_cond, ctx, out);
        v.worsen(Severity::Degraded);
    } else if available < desired {
        // Rule: below strength with no rollout in flight is degraded at once, even while
        // minimum availability (maxUnavailable) still holds: a replica is missing.
        below_strength(KIND, meta, available, desired, ctx, out);
        v.worsen(Severity::Degraded);
    }
    v.supersedes_failed = v.shields && !rollout_incomplete && v.health == Health::Healthy;
    v
}

fn replicas_unavailable(
    kind: &str,
    meta: &ObjectMeta,
    cond: Option<&Condition>,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) {
    out.push(
        ctx.finding(
            FindingCode::ReplicasUnavailable,
            Severity::Degraded,
            Persistence::Transient,
            kind,
            meta,
            cond.and_then(|c| c.reason.clone())
                .unwrap_or_else(|| "ReplicasUnavailable".into()),
            cond.and_then(|c| c.message.as_deref()),
        )
        .rule("workload.available_false")
        .anchored(anchor(
            "Available.lastTransitionTime",
            cond.and_then(|c| c.last_transition_time),
        )),
    );
}

/// Fewer replicas available than wanted, with nothing rolling out.
fn below_strength(
    kind: &str,
    meta: &ObjectMeta,
    available: i32,
    desired: i32,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) {
    let message = format!("{available}/{desired} replicas available and no rollout in progress");
    out.push(
        ctx.finding(
            FindingCode::ReplicasUnavailable,
            Severity::Degraded,
            Persistence::Transient,
            kind,
            meta,
            "ReplicasUnavailable".to_owned(),
            Some(&message),
        )
        .rule("workload.below_strength"),
    );
}

fn no_replicas(kind: &str, meta: &ObjectMeta, desired: i32, ctx: &Ctx, out: &mut Vec<Finding>) {
    let message = format!(
        "0/{desired} replicas available and no progress for {} minutes",
        ctx.policy.rollout_deadline.num_minutes()
    );
    out.push(
        ctx.finding(
            FindingCode::NoReplicasAvailable,
            Severity::Failing,
            Persistence::Transient,
            kind,
            meta,
            "NoReplicasAvailable".to_owned(),
            Some(&message),
        )
        .rule("workload.no_replicas"),
    );
}

/// Rule for every kind: a deletion that has not finished within `rollout_deadline` is
/// stuck (finalizers waiting on something). Pods have their own, shorter rule.
pub(crate) fn apply_deletion(
    kind: &str,
    meta: &ObjectMeta,
    v: &mut WorkloadVerdict,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) {
    let Some(deleted_at) = meta.deletion_timestamp else {
        return;
    };
    v.phase = Phase::Terminating;
    if ctx.past(Some(deleted_at), ctx.policy.rollout_deadline) {
        out.push(
            ctx.finding(
                FindingCode::StuckTerminating,
                Severity::Degraded,
                Persistence::Transient,
                kind,
                meta,
                "Terminating".to_owned(),
                Some("deletion has not finished; finalizers may be waiting"),
            )
            .rule("any.stuck_terminating")
            .anchored(anchor("metadata.deletionTimestamp", Some(deleted_at))),
        );
        v.worsen(Severity::Degraded);
    }
}
