//! Rules for what exposes and stores a workload's work: Services, Ingresses and
//! PersistentVolumeClaims.

use super::context::{Ctx, anchor};
use super::objects::{Ingress, LoadBalancerStatus, ObjectMeta, PersistentVolumeClaim, Service};
use super::verdict::{Finding, FindingCode, Health, Persistence, Phase, Severity};
use super::workload::WorkloadVerdict;

/// Service rules: only a LoadBalancer waiting for its address is noteworthy.
pub(crate) fn assess_service(svc: &Service, ctx: &Ctx, out: &mut Vec<Finding>) -> WorkloadVerdict {
    let mut v = WorkloadVerdict::new(Phase::Stable, svc.spec.type_.clone());
    if svc.spec.type_.as_deref() == Some("LoadBalancer") {
        address_pending(
            "Service",
            &svc.metadata,
            &svc.status.load_balancer,
            FindingCode::LoadBalancerPending,
            "service.load_balancer_pending",
            ctx,
            &mut v,
            out,
        );
    }
    v
}

/// Ingress rules: an Ingress without an address is not reachable through it yet.
pub(crate) fn assess_ingress(ing: &Ingress, ctx: &Ctx, out: &mut Vec<Finding>) -> WorkloadVerdict {
    let mut v = WorkloadVerdict::new(Phase::Stable, None);
    address_pending(
        "Ingress",
        &ing.metadata,
        &ing.status.load_balancer,
        FindingCode::IngressPending,
        "ingress.address_pending",
        ctx,
        &mut v,
        out,
    );
    v
}

/// Rule: no address assigned. Provisioning a load balancer takes a minute or two, so
/// within `address_grace` of creation it is progress (an info finding); after it, the
/// object is degraded: nothing outside the cluster reaches it (no controller serves its
/// class, quota, a cloud error).
#[allow(clippy::too_many_arguments)] // each argument is one fact of the shared rule
fn address_pending(
    kind: &str,
    meta: &ObjectMeta,
    status: &LoadBalancerStatus,
    code: FindingCode,
    rule: &'static str,
    ctx: &Ctx,
    v: &mut WorkloadVerdict,
    out: &mut Vec<Finding>,
) {
    if !status.ingress.is_empty() {
        return;
    }
    let created = anchor("metadata.creationTimestamp", meta.creation_timestamp);
    let severity = if ctx.past_anchor(created, ctx.policy.address_grace) {
        Severity::Degraded
    } else {
        Severity::Info
    };
    out.push(
        ctx.finding(
            code,
            severity,
            Persistence::Transient,
            kind,
            meta,
            format!("{code:?}"),
            Some("no address assigned yet"),
        )
        .rule(rule)
        .anchored(created),
    );
    v.worsen(severity);
    v.phase = Phase::Progressing;
}

/// PersistentVolumeClaim rules.
pub(crate) fn assess_pvc(
    pvc: &PersistentVolumeClaim,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) -> WorkloadVerdict {
    const KIND: &str = "PersistentVolumeClaim";
    let meta = &pvc.metadata;
    let Some(phase) = pvc.status.phase.as_deref() else {
        return WorkloadVerdict::not_observed(KIND, meta, ctx, out);
    };
    let mut v = WorkloadVerdict::new(Phase::Stable, Some(phase.to_owned()));
    match phase {
        "Bound" => {}
        // Rule: the bound volume is gone; data is unreachable.
        "Lost" => {
            out.push(
                ctx.finding(
                    FindingCode::VolumeClaimLost,
                    Severity::Failing,
                    Persistence::Terminal,
                    KIND,
                    meta,
                    "Lost".to_owned(),
                    Some("the claim's volume no longer exists"),
                )
                .rule("pvc.lost"),
            );
            v.health = Health::Failing;
        }
        // Rule: provisioning takes a moment; degraded after start_grace.
        _ => {
            v.phase = Phase::Progressing;
            let created = anchor("metadata.creationTimestamp", meta.creation_timestamp);
            if ctx.past_anchor(created, ctx.policy.start_grace) {
                out.push(
                    ctx.finding(
                        FindingCode::VolumeClaimPending,
                        Severity::Degraded,
                        Persistence::Transient,
                        KIND,
                        meta,
                        "Pending".to_owned(),
                        Some("the claim is not bound to a volume"),
                    )
                    .rule("pvc.pending")
                    .anchored(created),
                );
                v.health = Health::Degraded;
            }
        }
    }
    v
}
