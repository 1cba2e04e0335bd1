//! Kinds without a rule module of their own: custom resources and the rarer built-in
//! kinds. Three layers, first match wins:
//!
//! 1. a host's own [`CustomKindRule`]s (from [`HealthPolicy::custom_kinds`](super::HealthPolicy));
//! 2. well-known kinds read the way their projects document them (cert-manager
//!    Certificates, Argo Rollouts, KEDA ScaledObjects), on top of
//! 3. the conventions most controllers follow (kstatus, Flux, Crossplane, Knative):
//!    `observedGeneration`, `Ready` / `Stalled` / `Reconciling` conditions, reasons that
//!    mean a terminal failure, and `status.phase`.
//!
//! A custom resource without a status has not been observed by its controller (unknown),
//! unless its kind is configuration only and never carries one (ServiceMonitor, Istio and
//! Traefik routing objects, or a host's kinds declared `status_less`). Built-in kinds
//! without rules (ConfigMap, Secret, RBAC, ...) are healthy when present.

use serde::{Deserialize, Serialize};

use super::context::{Ctx, anchor};
use super::objects::{Condition, ConditionStatus, OtherObject, find_condition};
use super::verdict::{Finding, FindingCode, Health, Persistence, Phase, Severity};
use super::workload::{WorkloadVerdict, generation_observed, generation_pending, is_true};

/// A host's declarative rule for one custom kind: what its `status.phase` values and
/// conditions mean. Serde-friendly, so it can live in the agent's configuration:
///
/// ```
/// use brokkr_core::health::{CustomKindRule, HealthPolicy};
///
/// let rule: CustomKindRule = serde_json::from_value(serde_json::json!({
///     "group": "db.acme.example", "kind": "Database",
///     "phases": [
///         {"value": "Provisioning", "health": "healthy", "phase": "progressing"},
///         {"value": "Broken", "health": "failing", "phase": "stable"}
///     ],
///     "conditions": [
///         {"type": "BackupsHealthy", "status": "False", "health": "degraded",
///          "phase": "stable", "grace_seconds": 600}
///     ]
/// })).unwrap();
/// let policy = HealthPolicy { custom_kinds: vec![rule], ..HealthPolicy::default() };
/// # assert_eq!(policy.custom_kinds.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomKindRule {
    /// API group, e.g. `db.acme.example` (`""` for the core group).
    pub group: String,
    /// Kind, e.g. `Database`.
    pub kind: String,
    /// The kind never carries a status: present means healthy.
    #[serde(default)]
    pub status_less: bool,
    /// What values of `status.phase` mean.
    #[serde(default)]
    pub phases: Vec<PhaseRule>,
    /// What conditions mean.
    #[serde(default)]
    pub conditions: Vec<ConditionRule>,
}

/// One `status.phase` value and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseRule {
    /// The value, compared exactly.
    pub value: String,
    /// Health it means.
    pub health: Health,
    /// Phase it means.
    pub phase: Phase,
}

/// One condition state and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionRule {
    /// Condition type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Only with this reason, when given.
    #[serde(default)]
    pub reason: Option<String>,
    /// Health it means (after the grace).
    pub health: Health,
    /// Phase it means.
    pub phase: Phase,
    /// Seconds from the condition's `lastTransitionTime` before `health` applies; within
    /// it the object is healthy and progressing.
    #[serde(default)]
    pub grace_seconds: u32,
}

/// Groups of the Kubernetes API itself: their kinds without rules are healthy when
/// present, status or not.
const BUILTIN_GROUPS: &[&str] = &[
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "extensions",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "events.k8s.io",
    "resource.k8s.io",
];

/// Custom kinds that are configuration only: no controller writes their status.
fn status_less(group: &str, kind: &str) -> bool {
    match group {
        "monitoring.coreos.com" => {
            matches!(
                kind,
                "ServiceMonitor" | "PodMonitor" | "PrometheusRule" | "Probe"
            )
        }
        "keda.sh" => matches!(
            kind,
            "TriggerAuthentication" | "ClusterTriggerAuthentication"
        ),
        "traefik.io" | "traefik.containo.us" => true,
        _ => group.ends_with(".istio.io"),
    }
}

/// Reasons by which controllers say they gave up until someone changes something.
fn terminal_reason(reason: &str) -> bool {
    matches!(
        reason,
        "RetriesExceeded"
            | "InstallFailed"
            | "UpgradeFailed"
            | "RollbackFailed"
            | "UninstallFailed"
            | "Expired"
            | "HealthCheckFailed"
    ) || reason.ends_with("CheckFailed")
}

/// Condition types for which `True` is the bad state.
fn negative_polarity(type_: &str) -> bool {
    matches!(
        type_,
        "Stalled" | "Reconciling" | "Degraded" | "Failed" | "Error"
    )
}

/// Kinds without rules of their own.
pub(crate) fn assess_other(o: &OtherObject, ctx: &Ctx, out: &mut Vec<Finding>) -> WorkloadVerdict {
    let (meta, st) = (&o.metadata, &o.view);
    let group = o.group();
    let mut v = WorkloadVerdict::new(Phase::Stable, st.message.clone());
    v.shields = true;
    v.supersedes_failed = true;
    let host_rule = ctx
        .policy
        .custom_kinds
        .iter()
        .find(|r| r.group == group && r.kind == o.kind);
    let builtin = BUILTIN_GROUPS.contains(&group);
    if !st.present {
        // Rule: no status. Built-in kinds without rules and configuration-only kinds
        // are healthy when present; a custom resource has not been observed yet.
        if builtin || status_less(group, &o.kind) || host_rule.is_some_and(|r| r.status_less) {
            return v;
        }
        return WorkloadVerdict::not_observed(&o.kind, meta, ctx, out);
    }
    if st.observed_generation.is_some() && !generation_observed(meta, st.observed_generation) {
        generation_pending(&o.kind, meta, ctx, out);
        v.health = Health::Unknown;
        v.phase = Phase::Progressing;
        return v;
    }
    if let Some(rule) = host_rule {
        apply_host_rule(o, rule, ctx, &mut v, out);
    } else {
        // A well-known kind's own rule, when it fires, says all there is to say (an
        // expired Certificate is also Ready=False/Expired; an aborted Rollout also
        // `phase: Degraded`).
        if !well_known(o, ctx, &mut v, out) {
            conventions(o, ctx, &mut v, out);
        }
    }
    // Rule: `spec.suspend` / `spec.paused`: suspended on purpose, not a fault.
    if o.spec.suspended() && v.phase != Phase::Terminating {
        v.phase = Phase::Suspended;
    }
    v
}

#[allow(clippy::too_many_arguments)] // each argument is one field of the finding
fn push(
    o: &OtherObject,
    code: FindingCode,
    severity: Severity,
    persistence: Persistence,
    display: String,
    message: Option<&str>,
    rule: &'static str,
    since: Option<&Condition>,
    ctx: &Ctx,
    out: &mut Vec<Finding>,
) {
    out.push(
        ctx.finding(
            code,
            severity,
            persistence,
            &o.kind,
            &o.metadata,
            display,
            message,
        )
        .rule(rule)
        .anchored(anchor(
            "condition.lastTransitionTime",
            since.and_then(|c| c.last_transition_time),
        )),
    );
}

/// A host's rule: phases and conditions exactly as declared.
fn apply_host_rule(
    o: &OtherObject,
    rule: &CustomKindRule,
    ctx: &Ctx,
    v: &mut WorkloadVerdict,
    out: &mut Vec<Finding>,
) {
    let st = &o.view;
    if let Some(p) = st
        .phase
        .as_deref()
        .and_then(|phase| rule.phases.iter().find(|p| p.value == phase))
    {
        v.phase = p.phase;
        if p.health > Health::Healthy {
            push(
                o,
                code_for(p.health),
                severity_for(p.health),
                Persistence::Transient,
                p.value.clone(),
                st.message.as_deref(),
                "custom.host_phase",
                None,
                ctx,
                out,
            );
            v.health = v.health.max(p.health);
        }
    }
    for c in &rule.conditions {
        let Some(cond) = find_condition(&st.conditions, &c.type_) else {
            continue;
        };
        if cond.status != c.status
            || c.reason
                .as_ref()
                .is_some_and(|r| cond.reason.as_ref() != Some(r))
        {
            continue;
        }
        let since = anchor("condition.lastTransitionTime", cond.last_transition_time);
        if !ctx.past_anchor(since, chrono::Duration::seconds(i64::from(c.grace_seconds))) {
            v.phase = Phase::Progressing;
            continue;
        }
        v.phase = c.phase;
        if c.health > Health::Healthy {
            push(
                o,
                code_for(c.health),
                severity_for(c.health),
                Persistence::Transient,
                cond.reason.clone().unwrap_or_else(|| c.type_.clone()),
                cond.message.as_deref(),
                "custom.host_condition",
                Some(cond),
                ctx,
                out,
            );
            v.health = v.health.max(c.health);
        }
    }
}

fn code_for(health: Health) -> FindingCode {
    match health {
        Health::Failing => FindingCode::ReconcileFailed,
        Health::Unknown => FindingCode::NotObserved,
        Health::Degraded | Health::Healthy => FindingCode::ResourceDegraded,
    }
}

fn severity_for(health: Health) -> Severity {
    match health {
        Health::Healthy => Severity::Info,
        Health::Unknown => Severity::Unknown,
        Health::Degraded => Severity::Degraded,
        Health::Failing => Severity::Failing,
    }
}

/// Kinds whose projects document more than the conventions say. Returns whether one of
/// its rules fired (the conventions would only repeat it).
fn well_known(o: &OtherObject, ctx: &Ctx, v: &mut WorkloadVerdict, out: &mut Vec<Finding>) -> bool {
    let st = &o.view;
    match (o.group(), o.kind.as_str()) {
        // cert-manager: a certificate past `notAfter` breaks every TLS handshake.
        ("cert-manager.io", "Certificate") => {
            if let Some(end) = st.not_after.filter(|end| *end <= ctx.now) {
                out.push(
                    ctx.finding(
                        FindingCode::CertificateExpired,
                        Severity::Failing,
                        Persistence::Terminal,
                        &o.kind,
                        &o.metadata,
                        "Expired".to_owned(),
                        Some("the certificate's validity has ended (status.notAfter)"),
                    )
                    .rule("certificate.expired")
                    .anchored(anchor("status.notAfter", Some(end))),
                );
                v.worsen(Severity::Failing);
                return true;
            }
        }
        // Argo Rollouts: an aborted rollout went back to the stable version: the new one
        // is not serving, someone must retry or fix it.
        ("argoproj.io", "Rollout") => {
            let progressing = find_condition(&st.conditions, "Progressing");
            let aborted = progressing.filter(|c| {
                c.status == ConditionStatus::False && c.reason.as_deref() == Some("RolloutAborted")
            });
            if st.abort || aborted.is_some() {
                push(
                    o,
                    FindingCode::RolloutAborted,
                    Severity::Degraded,
                    Persistence::Terminal,
                    "RolloutAborted".to_owned(),
                    aborted
                        .and_then(|c| c.message.as_deref())
                        .or(st.message.as_deref()),
                    "rollout.aborted",
                    aborted,
                    ctx,
                    out,
                );
                v.worsen(Severity::Degraded);
                return true;
            } else if let Some(c) = progressing.filter(|c| {
                c.status == ConditionStatus::False
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            }) {
                push(
                    o,
                    FindingCode::ProgressDeadlineExceeded,
                    Severity::Failing,
                    Persistence::Terminal,
                    "ProgressDeadlineExceeded".to_owned(),
                    c.message.as_deref(),
                    "rollout.progress_deadline",
                    Some(c),
                    ctx,
                    out,
                );
                v.worsen(Severity::Failing);
                return true;
            }
        }
        // KEDA: `Active=False` only means no events to scale on (not a fault); serving
        // the fallback replica count means the scaler cannot read its source.
        ("keda.sh", "ScaledObject" | "ScaledJob") => {
            if let Some(c) = find_condition(&st.conditions, "Fallback")
                .filter(|c| c.status == ConditionStatus::True)
            {
                push(
                    o,
                    FindingCode::ScalerFallback,
                    Severity::Degraded,
                    Persistence::Transient,
                    c.reason.clone().unwrap_or_else(|| "FallbackExists".into()),
                    c.message.as_deref(),
                    "keda.fallback",
                    Some(c),
                    ctx,
                    out,
                );
                v.worsen(Severity::Degraded);
                return true;
            }
        }
        _ => {}
    }
    false
}

/// The conventions most controllers follow.
fn conventions(o: &OtherObject, ctx: &Ctx, v: &mut WorkloadVerdict, out: &mut Vec<Finding>) {
    let st = &o.view;
    let conditions = &st.conditions;
    // Rule: Stalled=True: the controller gave up (kstatus).
    if let Some(c) =
        find_condition(conditions, "Stalled").filter(|c| c.status == ConditionStatus::True)
    {
        push(
            o,
            FindingCode::Stalled,
            Severity::Failing,
            Persistence::Terminal,
            c.reason.clone().unwrap_or_else(|| "Stalled".into()),
            c.message.as_deref(),
            "custom.stalled",
            Some(c),
            ctx,
            out,
        );
        v.worsen(Severity::Failing);
        v.message.clone_from(&c.message);
        return;
    }
    // Rule: a condition in its bad state with a reason that means "gave up"
    // (`InstallFailed`, `RetriesExceeded`, `...CheckFailed`): failing, terminal.
    let gave_up = conditions.iter().find(|c| {
        let bad = if negative_polarity(&c.type_) {
            c.status == ConditionStatus::True
        } else {
            c.status == ConditionStatus::False
        };
        bad && c.reason.as_deref().is_some_and(terminal_reason)
    });
    if let Some(c) = gave_up {
        push(
            o,
            FindingCode::ReconcileFailed,
            Severity::Failing,
            Persistence::Terminal,
            c.reason.clone().unwrap_or_default(),
            c.message.as_deref(),
            "custom.terminal_reason",
            Some(c),
            ctx,
            out,
        );
        v.worsen(Severity::Failing);
        v.message.clone_from(&c.message);
    }
    // Rule: `status.phase` by convention.
    if let Some(phase) = st.phase.as_deref() {
        phase_convention(o, phase, ctx, v, out);
    }
    // Rule: Degraded=True says so itself.
    if let Some(c) =
        find_condition(conditions, "Degraded").filter(|c| c.status == ConditionStatus::True)
    {
        push(
            o,
            FindingCode::ResourceDegraded,
            Severity::Degraded,
            Persistence::Transient,
            c.reason.clone().unwrap_or_else(|| "Degraded".into()),
            c.message.as_deref(),
            "custom.degraded_condition",
            Some(c),
            ctx,
            out,
        );
        v.worsen(Severity::Degraded);
    }
    if is_true(conditions, "Reconciling") {
        v.phase = Phase::Progressing;
    }
    if gave_up.is_some() {
        return;
    }
    // `Available` (APIService, many operators) stands in for `Ready` when there is none.
    let ready =
        find_condition(conditions, "Ready").or_else(|| find_condition(conditions, "Available"));
    match ready {
        // Rule: Ready=False is progress within start_grace of its transition, then
        // degraded (the controller keeps retrying, but it is not getting there).
        Some(c) if c.status == ConditionStatus::False => {
            v.phase = Phase::Progressing;
            v.message.clone_from(&c.message);
            let since = anchor("condition.lastTransitionTime", c.last_transition_time);
            if ctx.past_anchor(since, ctx.policy.start_grace) {
                push(
                    o,
                    FindingCode::NotReady,
                    Severity::Degraded,
                    Persistence::Transient,
                    c.reason.clone().unwrap_or_else(|| "NotReady".into()),
                    c.message.as_deref(),
                    "custom.not_ready",
                    Some(c),
                    ctx,
                    out,
                );
                v.worsen(Severity::Degraded);
            }
        }
        // Rule: Ready=Unknown: the controller is working on it.
        Some(c) if c.status == ConditionStatus::Unknown => v.phase = Phase::Progressing,
        _ => {}
    }
}

/// `status.phase` values as most operators use them.
fn phase_convention(
    o: &OtherObject,
    phase: &str,
    ctx: &Ctx,
    v: &mut WorkloadVerdict,
    out: &mut Vec<Finding>,
) {
    let severity = match phase {
        "Failed" | "Failure" | "Error" | "Errored" => Severity::Failing,
        "Degraded" => Severity::Degraded,
        "Paused" | "Suspended" => {
            v.phase = Phase::Suspended;
            return;
        }
        "Succeeded" | "Completed" | "Complete" => {
            v.phase = Phase::Completed;
            return;
        }
        "Pending" | "Progressing" | "Provisioning" | "Creating" | "Deploying" | "Initializing"
        | "InProgress" | "Updating" | "Reconciling" | "Installing" | "Upgrading" => {
            v.phase = Phase::Progressing;
            return;
        }
        _ => return,
    };
    let code = if severity == Severity::Failing {
        FindingCode::ReconcileFailed
    } else {
        FindingCode::ResourceDegraded
    };
    push(
        o,
        code,
        severity,
        Persistence::Transient,
        phase.to_owned(),
        o.view.message.as_deref(),
        "custom.phase",
        None,
        ctx,
        out,
    );
    v.worsen(severity);
}
