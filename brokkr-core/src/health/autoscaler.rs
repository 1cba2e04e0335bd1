//! HorizontalPodAutoscaler rules: an autoscaler is healthy when it can see its metrics
//! and act on its target; its conditions say which.

use super::context::{Ctx, anchor};
use super::objects::{Condition, ConditionStatus, HorizontalPodAutoscaler, find_condition};
use super::verdict::{Finding, FindingCode, Persistence, Phase, Severity};
use super::workload::WorkloadVerdict;

const KIND: &str = "HorizontalPodAutoscaler";

/// HorizontalPodAutoscaler rules (the same for v1, whose conditions live in an
/// annotation, and v2).
pub(crate) fn assess_autoscaler(
    hpa: &HorizontalPodAutoscaler,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) -> WorkloadVerdict {
    let (meta, st) = (&hpa.metadata, &hpa.status);
    // Rule: without conditions the controller has not evaluated it yet (or cannot reach
    // it): nothing is known about whether it works.
    if st.conditions.is_empty() {
        return WorkloadVerdict::not_observed(KIND, meta, ctx, out);
    }
    let message = match (st.current_replicas, st.desired_replicas) {
        (Some(current), Some(desired)) => Some(format!("{current} replicas, wants {desired}")),
        _ => None,
    };
    let mut v = WorkloadVerdict::new(Phase::Stable, message);
    let mut finding = |cond: &Condition, code, severity: Severity, rule: &'static str| {
        let display = cond.reason.clone().unwrap_or_else(|| format!("{code:?}"));
        out.push(
            ctx.finding(
                code,
                severity,
                Persistence::Transient,
                KIND,
                meta,
                display,
                cond.message.as_deref(),
            )
            .rule(rule)
            .anchored(anchor(
                "condition.lastTransitionTime",
                cond.last_transition_time,
            )),
        );
        severity
    };
    let failed = |c: &&Condition| {
        c.status == ConditionStatus::False
            && c.reason.as_deref().is_some_and(|r| r.starts_with("Failed"))
    };
    // Rule: AbleToScale False with a Failed* reason: it cannot read or update the
    // target's scale (target missing, RBAC, a broken scale subresource).
    if let Some(cond) = find_condition(&st.conditions, "AbleToScale").filter(failed) {
        let severity = finding(
            cond,
            FindingCode::AutoscalerFailed,
            Severity::Degraded,
            "hpa.cannot_scale",
        );
        v.worsen(severity);
    }
    if let Some(cond) = find_condition(&st.conditions, "ScalingActive") {
        let disabled = cond.reason.as_deref() == Some("ScalingDisabled");
        if cond.status == ConditionStatus::False && !disabled {
            // Rule: ScalingActive False for any reason but ScalingDisabled: it is blind
            // (a metric cannot be fetched or computed: `FailedGetResourceMetric`, ...)
            // or cannot tell its pods (`InvalidSelector`, `AmbiguousSelector`); the
            // message names the metric or selector.
            let severity = finding(
                cond,
                FindingCode::AutoscalerFailed,
                Severity::Degraded,
                "hpa.blind",
            );
            v.worsen(severity);
        } else if cond.status == ConditionStatus::False {
            // Rule: the target is scaled to zero on purpose; autoscaling waits.
            finding(
                cond,
                FindingCode::ScalingDisabled,
                Severity::Info,
                "hpa.scaling_disabled",
            );
            v.phase = Phase::Suspended;
        }
    }
    // Rule: ScalingLimited True: the bounds stop it from scaling further; worth
    // knowing (capacity planning), not a fault.
    if let Some(cond) = find_condition(&st.conditions, "ScalingLimited")
        .filter(|c| c.status == ConditionStatus::True)
    {
        finding(
            cond,
            FindingCode::ScalingLimited,
            Severity::Info,
            "hpa.scaling_limited",
        );
    }
    v
}
