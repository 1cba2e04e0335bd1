//! StatefulSets, DaemonSets and standalone ReplicaSets: replica counts against what is wanted.

use super::{
    PodEvidence, WorkloadVerdict, below_strength, daemonset_observed, fresh, generation_observed,
    generation_pending, last_progress, no_replicas, replica_failure, stalled, workload_observed,
};
use crate::health::context::{Ctx, anchor};
use crate::health::objects::{Condition, DaemonSet, ObjectMeta, ReplicaSet, StatefulSet};
use crate::health::verdict::{Finding, FindingCode, Health, Persistence, Phase, Severity};

/// Replica counts of a StatefulSet, DaemonSet or standalone ReplicaSet.
struct Replicas {
    desired: i32,
    existing: i32,
    ready: i32,
    available: i32,
    /// Pods still to be replaced by the rollout, as far as the strategy wants them replaced.
    update_pending: bool,
}

/// Shared rules of controllers without a progress deadline of their own: they get the
/// synthetic `rollout_deadline`, anchored on the last sign of progress (their conditions,
/// their creation, the newest pod they created or that became Ready, a caller's hint).
#[allow(clippy::too_many_arguments)] // the shared rule needs each of these facts
fn assess_replicated(
    kind: &str,
    meta: &ObjectMeta,
    conditions: &[Condition],
    observed_generation: Option<i64>,
    r: &Replicas,
    evidence: PodEvidence,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) -> WorkloadVerdict {
    let mut v = WorkloadVerdict::new(
        Phase::Stable,
        Some(format!("{}/{} ready", r.ready, r.desired)),
    );
    v.shields = r.available > 0 || r.desired == 0;
    if !generation_observed(meta, observed_generation) {
        generation_pending(kind, meta, ctx, out);
        v.health = Health::Unknown;
        v.phase = Phase::Progressing;
        return v;
    }
    if let Some(severity) = replica_failure(kind, meta, conditions, ctx, out) {
        v.worsen(severity);
    }
    if r.desired == 0 {
        v.phase = if r.existing > 0 {
            Phase::Progressing
        } else {
            Phase::Stable
        };
        v.supersedes_failed = true;
        return v;
    }
    let progress = last_progress(meta, conditions).max(evidence.progress);
    let stalled = stalled(progress, ctx);
    let progress = anchor("last progress (conditions, status writes, pods)", progress);
    // A rollout or scale is in flight: pods still to replace or to create, or a first
    // rollout within the deadline. Waiting on an OnDelete strategy or a partition is not
    // (see `update_pending`).
    let rolling =
        r.update_pending || r.existing != r.desired || fresh(meta, ctx) || evidence.arriving;
    let in_flight = rolling || r.available < r.desired;
    if in_flight {
        v.phase = Phase::Progressing;
    }
    if r.available == 0 && r.ready == 0 && stalled {
        // Rule (missing pods): replicas wanted, none available, no progress.
        no_replicas(kind, meta, r.desired, ctx, out);
        v.health = Health::Failing;
        v.shields = false;
    } else if rolling && stalled {
        // Rule: the idea of a Deployment's progress deadline, with the synthetic
        // rollout_deadline: no progress for that long and the rollout is stuck.
        let message = format!(
            "no progress for {} minutes: {}/{} ready, {} existing",
            ctx.policy.rollout_deadline.num_minutes(),
            r.ready,
            r.desired,
            r.existing
        );
        out.push(
            ctx.finding(
                FindingCode::RolloutStuck,
                Severity::Failing,
                Persistence::Transient,
                kind,
                meta,
                "RolloutStuck".to_owned(),
                Some(&message),
            )
            .rule("workload.rollout_stuck")
            .anchored(progress),
        );
        v.health = Health::Failing;
        v.shields = false;
    } else if r.available < r.desired && !rolling {
        // Rule: nothing to roll out, yet replicas are unavailable: running below
        // strength, degraded at once (no timestamp needed; only stalls need one).
        below_strength(kind, meta, r.available, r.desired, ctx, out);
        v.worsen(Severity::Degraded);
    }
    v.supersedes_failed = v.shields && !in_flight && v.health == Health::Healthy;
    v
}

/// StatefulSet rules.
pub(crate) fn assess_statefulset(
    s: &StatefulSet,
    evidence: PodEvidence,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) -> WorkloadVerdict {
    let st = &s.status;
    if !workload_observed(st) {
        return WorkloadVerdict::not_observed("StatefulSet", &s.metadata, ctx, out);
    }
    let desired = s.spec.replicas.unwrap_or(1).max(0);
    let ready = st.ready_replicas.unwrap_or(0);
    let strategy = &s.spec.update_strategy;
    let partition = strategy
        .rolling_update
        .partition
        .unwrap_or(0)
        .clamp(0, desired);
    // Ordinals below the partition keep the old revision on purpose, and OnDelete waits
    // for someone to delete pods: neither is an unfinished rollout.
    // The API omits zero counts; once the controller has written a status, a missing
    // count is a zero, not an unknown.
    let written = st.observed_generation.is_some();
    // The controller moves `currentRevision` to `updateRevision` only once every pod is
    // updated and ready, so differing revisions mean the last updated pods are still
    // coming up.
    let revisions_differ = partition == 0
        && st.current_revision.is_some()
        && st.update_revision.is_some()
        && st.current_revision != st.update_revision;
    let update_pending = !strategy.is_on_delete()
        && match st.updated_replicas.or(written.then_some(0)) {
            Some(updated) => updated < desired - partition || (revisions_differ && ready < desired),
            None => partition == 0 && st.current_revision != st.update_revision,
        };
    let replicas = Replicas {
        desired,
        existing: st.replicas.unwrap_or(0),
        ready,
        available: st.available_replicas.unwrap_or(ready),
        update_pending,
    };
    assess_replicated(
        "StatefulSet",
        &s.metadata,
        &st.conditions,
        st.observed_generation,
        &replicas,
        evidence,
        ctx,
        out,
    )
}

/// DaemonSet rules.
pub(crate) fn assess_daemonset(
    d: &DaemonSet,
    evidence: PodEvidence,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) -> WorkloadVerdict {
    let st = &d.status;
    if !daemonset_observed(st) {
        return WorkloadVerdict::not_observed("DaemonSet", &d.metadata, ctx, out);
    }
    let desired = st.desired_number_scheduled.unwrap_or(0).max(0);
    let ready = st.number_ready.unwrap_or(0);
    // The API omits zero counts; once the controller has written a status, a missing
    // count is a zero, not an unknown.
    let written = st.observed_generation.is_some();
    let update_pending = !d.spec.update_strategy.is_on_delete()
        && st
            .updated_number_scheduled
            .or(written.then_some(0))
            .is_some_and(|u| u < desired);
    let replicas = Replicas {
        desired,
        existing: st.current_number_scheduled.unwrap_or(desired),
        ready,
        available: st
            .number_available
            .or(written.then_some(0))
            .unwrap_or(ready),
        update_pending,
    };
    assess_replicated(
        "DaemonSet",
        &d.metadata,
        &st.conditions,
        st.observed_generation,
        &replicas,
        evidence,
        ctx,
        out,
    )
}

/// ReplicaSet rules. Under a Deployment that is present, the Deployment decides; the
/// ReplicaSet only reports what the Deployment status hides (ReplicaFailure).
pub(crate) fn assess_replicaset(
    rs: &ReplicaSet,
    managed: bool,
    evidence: PodEvidence,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) -> WorkloadVerdict {
    let st = &rs.status;
    if !workload_observed(st) {
        return WorkloadVerdict::not_observed("ReplicaSet", &rs.metadata, ctx, out);
    }
    let desired = rs.spec.replicas.unwrap_or(1).max(0);
    let ready = st.ready_replicas.unwrap_or(0);
    let replicas = Replicas {
        desired,
        existing: st.replicas.unwrap_or(0),
        ready,
        available: st.available_replicas.unwrap_or(ready),
        update_pending: false,
    };
    if managed {
        let mut v = WorkloadVerdict::new(
            if replicas.available < desired || replicas.existing != desired {
                Phase::Progressing
            } else {
                Phase::Stable
            },
            Some(format!("{ready}/{desired} ready")),
        );
        if let Some(severity) =
            replica_failure("ReplicaSet", &rs.metadata, &st.conditions, ctx, out)
        {
            v.worsen(severity);
        }
        return v;
    }
    assess_replicated(
        "ReplicaSet",
        &rs.metadata,
        &st.conditions,
        st.observed_generation,
        &replicas,
        evidence,
        ctx,
        out,
    )
}
