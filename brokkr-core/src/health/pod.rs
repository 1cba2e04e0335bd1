//! Pod and container rules.
//!
//! Each rule reads one observation a kubelet reports and turns it into a health and,
//! when something is wrong or late, a finding. Within a grace period a pod is healthy
//! and progressing: nothing is wrong yet, it is on its way.

use super::container::{ContainerCtx, assess_container, containers};
use super::context::{Ctx, anchor};
use super::objects::{ConditionStatus, ObjectMeta, Pod, PodPhase, PodStatus, find_condition};
use super::verdict::{
    Anchor, ContainerRole, Finding, FindingCode, Health, Persistence, Phase, Severity,
};

/// The verdict on one pod.
pub(crate) struct PodVerdict {
    pub health: Health,
    pub phase: Phase,
    /// The pod's Ready condition holds.
    pub ready: bool,
    /// The pod ended in phase Failed (a controller may have replaced it).
    pub failed: bool,
    /// The pod counts towards `pods_total` (Succeeded pods do not).
    pub counted: bool,
}

/// Whether the pod is Ready: its Ready condition, or, for recordings without
/// conditions, every container running and ready.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    match find_condition(&pod.status.conditions, "Ready") {
        Some(c) => c.status == ConditionStatus::True,
        None => {
            pod.status.phase == Some(PodPhase::Running)
                && !pod.status.container_statuses.is_empty()
                && pod
                    .status
                    .container_statuses
                    .iter()
                    .all(|c| c.ready && c.state.running.is_some())
        }
    }
}

/// Whether the pod itself says its node stopped reporting, even without the Node object:
/// - `status.reason: NodeLost` (set when the node controller deletes such a pod);
/// - a Ready condition `Unknown` (the kubelet cannot be asked);
/// - Ready `False` while the kubelet's last word was that every container is ready
///   (`ContainersReady` True): the node controller marks pods of a lost node not ready
///   and leaves the kubelet's own conditions as they were. Readiness gates are the one
///   other way to get there, so pods with gates are not read this way.
pub(crate) fn reports_node_lost(pod: &Pod, ctx: &Ctx) -> bool {
    let status = &pod.status;
    if status.reason.as_deref() == Some("NodeLost") {
        return true;
    }
    // One pass over the conditions: this runs for every pod, healthy ones included.
    let (mut ready, mut containers_ready) = (None, false);
    let (mut seen_ready, mut seen_containers) = (false, false);
    for c in &status.conditions {
        // The first condition of a type counts (as in `find_condition`): duplicates in
        // hostile input must not make the answer depend on their order.
        match c.type_.as_str() {
            "Ready" if !seen_ready => {
                ready = Some(c.status);
                seen_ready = true;
            }
            "ContainersReady" if !seen_containers => {
                containers_ready = c.status == ConditionStatus::True;
                seen_containers = true;
            }
            _ => {}
        }
    }
    match ready {
        Some(ConditionStatus::Unknown) => true,
        // While a deletion is within its grace the kubelet itself may have marked the
        // pod not ready before its containers stopped: only a deletion that outlived
        // its grace with the kubelet silent reads as a lost node.
        Some(ConditionStatus::False) => {
            pod.metadata
                .deletion_timestamp
                .is_none_or(|at| ctx.past(Some(at), ctx.policy.terminating_grace))
                && status.phase == Some(PodPhase::Running)
                && containers_ready
                && pod.spec.readiness_gates.is_empty()
                && !status.container_statuses.is_empty()
                && status.container_statuses.iter().all(|c| c.ready)
        }
        _ => false,
    }
}

/// Why a Failed pod failed, as the cluster names it: the pod's own reason (`Evicted`,
/// `DeadlineExceeded`, `Shutdown`), else the reason of a `DisruptionTarget` condition
/// (`TerminationByKubelet`, `PreemptionByScheduler`, `DeletionByTaintManager`), else
/// `None` (the containers tell).
fn disruption_reason(pod: &Pod) -> Option<&str> {
    pod.status.reason.as_deref().or_else(|| {
        find_condition(&pod.status.conditions, "DisruptionTarget")
            .filter(|c| c.status == ConditionStatus::True)
            .and_then(|c| c.reason.as_deref())
    })
}

/// Classifies one pod, appending its findings to `out`.
pub(crate) fn assess_pod(
    pod: &Pod,
    node_lost: bool,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) -> PodVerdict {
    let meta = &pod.metadata;
    let status = &pod.status;
    let ready = is_ready(pod);
    let settled = |health, phase| PodVerdict {
        health,
        phase,
        ready,
        failed: false,
        counted: true,
    };
    let node_lost = node_lost || reports_node_lost(pod, ctx);
    let finished = matches!(status.phase, Some(PodPhase::Succeeded | PodPhase::Failed));

    // Rule: on a lost node the kubelet no longer reports, so every status we hold is
    // stale; the node controller even forces Ready=False and, minutes later, deletes the
    // pod, which cannot finish either. Unknown is the honest verdict. A pod that had
    // already finished is over whatever its node does.
    if node_lost && !finished {
        let message = pod
            .spec
            .node_name
            .as_deref()
            .map(|node| format!("node {node} stopped reporting; the pod's status is stale"));
        out.push(
            ctx.finding(
                FindingCode::NodeLost,
                Severity::Unknown,
                Persistence::Transient,
                "Pod",
                meta,
                "NodeLost".to_owned(),
                message.as_deref(),
            )
            .rule("pod.node_lost"),
        );
        let phase = if meta.deletion_timestamp.is_some() {
            Phase::Terminating
        } else {
            Phase::Stable
        };
        return settled(Health::Unknown, phase);
    }

    // Rule: deletion first. deletionTimestamp already includes the grace period; a pod
    // still present a minute after it is stuck (finalizers, an unreachable kubelet, a
    // hung preStop), whatever phase it is in: a Succeeded pod held by a finalizer too.
    if let Some(deleted_at) = meta.deletion_timestamp {
        let verdict = PodVerdict {
            counted: !finished,
            failed: status.phase == Some(PodPhase::Failed),
            ..settled(Health::Healthy, Phase::Terminating)
        };
        let since = anchor("metadata.deletionTimestamp", Some(deleted_at));
        if ctx.past_anchor(since, ctx.policy.terminating_grace) {
            out.push(
                ctx.finding(
                    FindingCode::StuckTerminating,
                    Severity::Degraded,
                    Persistence::Transient,
                    "Pod",
                    meta,
                    "Terminating".to_owned(),
                    Some("pod is still present after its deletion grace period"),
                )
                .rule("pod.stuck_terminating")
                .anchored(since),
            );
            return PodVerdict {
                health: Health::Degraded,
                ..verdict
            };
        }
        return verdict;
    }

    // Rule: a Succeeded pod ran to completion; nothing about it can be wrong any more.
    if status.phase == Some(PodPhase::Succeeded) {
        return PodVerdict {
            counted: false,
            ..settled(Health::Healthy, Phase::Completed)
        };
    }

    // Rule: a Failed pod (evicted, deadline exceeded, containers failed under
    // restartPolicy Never) is failing. Whether a controller has replaced it, which
    // turns this into an info finding, is decided by the caller, who knows the owner.
    if status.phase == Some(PodPhase::Failed) {
        let failed_container = status
            .container_statuses
            .iter()
            .chain(&status.init_container_statuses)
            .filter_map(|c| c.state.terminated.as_ref())
            .find(|t| t.exit_code != 0 || t.reason.as_deref() == Some("OOMKilled"));
        let disruption = disruption_reason(pod);
        let display = disruption
            .or_else(|| failed_container.and_then(|t| t.reason.as_deref()))
            .unwrap_or("Failed")
            .to_owned();
        let message = status
            .message
            .as_deref()
            .or_else(|| {
                find_condition(&status.conditions, "DisruptionTarget")
                    .and_then(|c| c.message.as_deref())
                    .filter(|_| disruption.is_some())
            })
            .or_else(|| failed_container.and_then(|t| t.message.as_deref()));
        let disrupted_at = find_condition(&status.conditions, "DisruptionTarget")
            .filter(|_| disruption.is_some())
            .and_then(|c| c.last_transition_time);
        let since = match disrupted_at {
            Some(at) => anchor("DisruptionTarget.lastTransitionTime", Some(at)),
            None => anchor(
                "containerStatuses[].state.terminated.finishedAt",
                failed_container.and_then(|t| t.finished_at),
            ),
        };
        out.push(
            ctx.finding(
                FindingCode::PodFailed,
                Severity::Failing,
                Persistence::Terminal,
                "Pod",
                meta,
                display,
                message,
            )
            .rule("pod.failed")
            .anchored(since),
        );
        // Failed through its containers (not evicted or timed out): say which one.
        if disruption.is_none() {
            for (cs, role) in containers(pod) {
                if cs.state.terminated.is_some() {
                    let pod_ctx = ContainerCtx {
                        pod,
                        role,
                        started: anchor("status.startTime", status.start_time),
                        restarts: false,
                        restarts_finished: false,
                        quiet_start: true,
                    };
                    assess_container(cs, &pod_ctx, ctx, out);
                }
            }
        }
        return PodVerdict {
            failed: true,
            ..settled(Health::Failing, Phase::Completed)
        };
    }

    // Rule: no status at all: the API server stored the pod, nothing has looked at it
    // since (not even the defaulting of its phase is there). Unknown, on its way.
    if status == &PodStatus::default() {
        out.push(not_observed("Pod", meta, ctx));
        return settled(Health::Unknown, Phase::Progressing);
    }

    // Rule: phase Unknown means the pod's state could not be obtained from its node.
    if status.phase == Some(PodPhase::Unknown) {
        out.push(
            ctx.finding(
                FindingCode::NodeLost,
                Severity::Unknown,
                Persistence::Transient,
                "Pod",
                meta,
                "Unknown".to_owned(),
                status.message.as_deref(),
            )
            .rule("pod.phase_unknown"),
        );
        return settled(Health::Unknown, Phase::Stable);
    }

    let started = if status.start_time.is_some() {
        anchor("status.startTime", status.start_time)
    } else {
        anchor("metadata.creationTimestamp", meta.creation_timestamp)
    };
    let restarts = pod.spec.restarts_containers();
    let restarts_finished = pod.spec.restarts_finished_containers();
    let mut health = Health::Healthy;
    let mut progressing = !ready;
    let mut init_troubled = false;

    // Rule: init containers follow the container rules with an `Init:` display prefix;
    // native sidecars (restartPolicy Always) behave like regular containers. Init
    // containers come first, so their trouble is known when the others are judged.
    for (cs, role) in containers(pod) {
        let sidecar = role == ContainerRole::Sidecar;
        let pod_ctx = ContainerCtx {
            pod,
            role,
            started,
            restarts: restarts || sidecar,
            restarts_finished: sidecar || (role == ContainerRole::Main && restarts_finished),
            // When an init container is in trouble, everything after it waits on it;
            // its own finding explains the delay.
            quiet_start: init_troubled,
        };
        let verdict = assess_container(cs, &pod_ctx, ctx, out);
        health = health.max(verdict.health);
        progressing |= verdict.progressing;
        init_troubled |= role == ContainerRole::Init && verdict.health > Health::Healthy;
    }

    let scheduled = find_condition(&status.conditions, "PodScheduled");
    if let Some(cond) = scheduled.filter(|c| c.status == ConditionStatus::False) {
        match cond.reason.as_deref() {
            // Rule: no node fits the pod. Autoscalers often add one within minutes, so
            // degraded first; failing once `unschedulable_grace` has passed.
            Some("Unschedulable") => {
                let since = if cond.last_transition_time.is_some() {
                    anchor("PodScheduled.lastTransitionTime", cond.last_transition_time)
                } else {
                    anchor("metadata.creationTimestamp", meta.creation_timestamp)
                };
                let severity = if ctx.past_anchor(since, ctx.policy.unschedulable_grace) {
                    Severity::Failing
                } else {
                    Severity::Degraded
                };
                out.push(
                    ctx.finding(
                        FindingCode::Unschedulable,
                        severity,
                        Persistence::Transient,
                        "Pod",
                        meta,
                        "Unschedulable".to_owned(),
                        cond.message.as_deref(),
                    )
                    .rule("pod.unschedulable")
                    .anchored(since),
                );
                health = health.max(severity.health());
            }
            // Rule: scheduling gates hold the pod back on purpose.
            Some("SchedulingGated") => {}
            _ => health = health.max(pending_too_long(pod, started, ctx, out)),
        }
        progressing = true;
    } else if status.container_statuses.is_empty()
        && status.init_container_statuses.is_empty()
        && status.phase != Some(PodPhase::Running)
    {
        // Rule: accepted but nothing started yet: progressing, degraded after start_grace.
        health = health.max(pending_too_long(pod, started, ctx, out));
        progressing = true;
    }

    // Rule: running but not Ready is progressing within ready_grace of the last Ready
    // transition, then degraded. Only when no container finding already explains it.
    if !ready && health == Health::Healthy && status.phase == Some(PodPhase::Running) {
        let ready_cond = find_condition(&status.conditions, "Ready");
        let since = match ready_cond.and_then(|c| c.last_transition_time) {
            Some(at) => anchor("Ready.lastTransitionTime", Some(at)),
            None => started,
        };
        if ctx.past_anchor(since, ctx.policy.ready_grace) {
            out.push(
                ctx.finding(
                    FindingCode::NotReady,
                    Severity::Degraded,
                    Persistence::Transient,
                    "Pod",
                    meta,
                    "NotReady".to_owned(),
                    ready_cond.and_then(|c| c.message.as_deref()),
                )
                .rule("pod.not_ready")
                .anchored(since),
            );
            health = Health::Degraded;
        }
    }

    let phase = if progressing {
        Phase::Progressing
    } else {
        Phase::Stable
    };
    settled(health, phase)
}

/// The finding of an object whose status nobody has written yet.
pub(crate) fn not_observed(kind: &str, meta: &ObjectMeta, ctx: &Ctx) -> Finding {
    ctx.finding(
        FindingCode::NotObserved,
        Severity::Unknown,
        Persistence::Transient,
        kind,
        meta,
        "NotObserved".to_owned(),
        Some("the object has no status yet: its controller has not observed it"),
    )
    .rule("any.not_observed")
}

fn pending_too_long(pod: &Pod, since: Anchor, ctx: &Ctx, out: &mut Vec<Finding>) -> Health {
    if !ctx.past_anchor(since, ctx.policy.start_grace) {
        return Health::Healthy;
    }
    out.push(
        ctx.finding(
            FindingCode::PodPending,
            Severity::Degraded,
            Persistence::Transient,
            "Pod",
            &pod.metadata,
            "Pending".to_owned(),
            pod.status.message.as_deref(),
        )
        .rule("pod.pending")
        .anchored(since),
    );
    Health::Degraded
}
