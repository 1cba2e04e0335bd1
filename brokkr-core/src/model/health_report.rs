//! Health reports: the verdicts an agent sends for the deployment objects it runs, and
//! the per agent × object record the broker keeps of them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Limits, check_client_time, check_len, check_opt_len};
use crate::error::{Result, Violations};
use crate::health::{Assessment, Health};
use crate::ids::{AgentId, DeploymentObjectId};

/// One Kubernetes resource of a deployment object and whether it is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResourceSummary {
    /// Resource kind, e.g. `Deployment`.
    pub kind: String,
    /// Resource name.
    pub name: String,
    /// Namespace; absent for cluster-scoped resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Whether the resource is ready.
    pub ready: bool,
    /// Why it is not ready, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What explains a verdict: pod counts, display reasons and per-resource readiness.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthSummary {
    /// Pods of the object that are ready.
    pub pods_ready: u32,
    /// Pods of the object.
    pub pods_total: u32,
    /// Distinct display reasons, e.g. `CrashLoopBackOff`.
    #[serde(default)]
    pub conditions: Vec<String>,
    /// The object's resources.
    #[serde(default)]
    pub resources: Vec<ResourceSummary>,
    /// Structured findings of the classifier. Kept as raw JSON here so the model does not
    /// have to change whenever the classifier's finding type grows a field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub findings: Vec<serde_json::Value>,
    /// Lifecycle phase, e.g. `progressing` or `stable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

impl HealthSummary {
    /// Findings kept in a summary (the classifier orders them worst first).
    pub const MAX_FINDINGS: usize = 20;
    /// Resources kept in a summary (top-level ones come first).
    pub const MAX_RESOURCES: usize = 100;

    /// The summary of a classifier verdict, bounded so that a deployment object with a
    /// thousand failing pods still makes a small report.
    pub fn from_assessment(assessment: &Assessment) -> Self {
        Self {
            pods_ready: assessment.pods_ready,
            pods_total: assessment.pods_total,
            conditions: assessment.conditions.clone(),
            resources: assessment
                .resources
                .iter()
                .take(Self::MAX_RESOURCES)
                .map(|r| ResourceSummary {
                    kind: r.kind.clone(),
                    name: r.name.clone(),
                    namespace: r.namespace.clone(),
                    ready: r.ready,
                    message: r.message.clone(),
                })
                .collect(),
            findings: assessment
                .findings
                .iter()
                .take(Self::MAX_FINDINGS)
                .filter_map(|f| serde_json::to_value(f).ok())
                .collect(),
            phase: serde_json::to_value(assessment.phase)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned)),
        }
    }

    /// Makes text that came from the cluster safe to keep (see [`crate::cluster_text`]):
    /// NUL replaced everywhere, messages and findings redacted. The broker calls it
    /// before validating, so a pod that prints `\0` costs nothing, on any store.
    pub fn scrub_cluster_text(&mut self) {
        use crate::cluster_text::{
            replace_nul, replace_nul_opt, scrub_json, scrub_message, scrub_message_opt,
        };
        self.conditions.iter_mut().for_each(scrub_message);
        for resource in &mut self.resources {
            replace_nul(&mut resource.kind);
            replace_nul(&mut resource.name);
            replace_nul_opt(&mut resource.namespace);
            scrub_message_opt(&mut resource.message);
        }
        self.findings.iter_mut().for_each(scrub_json);
        replace_nul_opt(&mut self.phase);
    }

    /// Rejects more ready pods than pods and over-long texts.
    pub fn validate(&self, _now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        let mut v = Violations::new();
        v.check(
            self.pods_ready > self.pods_total,
            "pods_ready",
            "must not exceed pods_total",
        );
        for (i, condition) in self.conditions.iter().enumerate() {
            check_len(
                &mut v,
                &format!("conditions[{i}]"),
                condition,
                limits.max_message_len,
            );
        }
        for (i, resource) in self.resources.iter().enumerate() {
            let at = |field: &str| format!("resources[{i}].{field}");
            check_len(&mut v, &at("kind"), &resource.kind, limits.max_name_len);
            check_len(&mut v, &at("name"), &resource.name, limits.max_name_len);
            check_opt_len(
                &mut v,
                &at("namespace"),
                resource.namespace.as_deref(),
                limits.max_name_len,
            );
            check_opt_len(
                &mut v,
                &at("message"),
                resource.message.as_deref(),
                limits.max_message_len,
            );
        }
        check_opt_len(&mut v, "phase", self.phase.as_deref(), limits.max_name_len);
        v.finish()
    }
}

/// The verdict for one deployment object in a health report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthReportItem {
    /// The deployment object.
    pub id: DeploymentObjectId,
    /// The verdict.
    pub status: Health,
    /// When the agent checked (agent clock).
    pub checked_at: DateTime<Utc>,
    /// What explains the verdict.
    pub summary: HealthSummary,
}

impl HealthReportItem {
    /// Rejects a `checked_at` beyond the clock skew and an invalid summary (fields
    /// reported as `summary.<name>`).
    pub fn validate(&self, now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        let mut v = Violations::new();
        check_client_time(&mut v, "checked_at", Some(self.checked_at), now, limits);
        v.nest("summary", self.summary.validate(now, limits));
        v.finish()
    }

    /// The record to store for this item, reported by `agent_id` at `reported_at`.
    pub fn into_record(self, agent_id: AgentId, reported_at: DateTime<Utc>) -> HealthRecord {
        HealthRecord {
            agent_id,
            deployment_object_id: self.id,
            status: self.status,
            summary: self.summary,
            checked_at: self.checked_at,
            reported_at,
        }
    }
}

/// The body of `PATCH /agents/{id}/health-status`: a batch of verdicts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthReport {
    /// One verdict per deployment object.
    #[serde(default)]
    pub deployment_objects: Vec<HealthReportItem>,
}

impl HealthReport {
    /// Rejects a batch that names the same deployment object twice.
    ///
    /// This is the batch-level check: a duplicate is a client bug that makes the whole
    /// batch ambiguous, whereas a bad item alone can be rejected on its own (validate each
    /// item with [`HealthReportItem::validate`]).
    pub fn check_duplicates(&self) -> Result<()> {
        let mut v = Violations::new();
        self.push_duplicates(&mut v);
        v.finish()
    }

    fn push_duplicates(&self, v: &mut Violations) {
        let mut first_seen = HashMap::with_capacity(self.deployment_objects.len());
        for (i, item) in self.deployment_objects.iter().enumerate() {
            match first_seen.entry(item.id) {
                Entry::Occupied(first) => v.push(
                    format!("deployment_objects[{i}].id"),
                    format!("duplicate of deployment_objects[{}].id", first.get()),
                ),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }
    }

    /// Every problem of the batch at once: duplicates and each item's violations
    /// (reported as `deployment_objects[<index>].<field>`).
    pub fn validate(&self, now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        let mut v = Violations::new();
        self.push_duplicates(&mut v);
        for (i, item) in self.deployment_objects.iter().enumerate() {
            v.nest(
                &format!("deployment_objects[{i}]"),
                item.validate(now, limits),
            );
        }
        v.finish()
    }
}

/// The broker's stored verdict for one agent × deployment object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthRecord {
    /// The reporting agent.
    pub agent_id: AgentId,
    /// The deployment object.
    pub deployment_object_id: DeploymentObjectId,
    /// The verdict.
    pub status: Health,
    /// What explains the verdict.
    pub summary: HealthSummary,
    /// When the agent checked (agent clock).
    pub checked_at: DateTime<Utc>,
    /// When the broker received the report (broker clock).
    pub reported_at: DateTime<Utc>,
}

impl HealthRecord {
    /// Whether `item` carries the same verdict and explanation as this record, i.e.
    /// differs at most in `checked_at`. Such a report need not be rewritten.
    pub fn same_verdict(&self, item: &HealthReportItem) -> bool {
        self.deployment_object_id == item.id
            && self.status == item.status
            && self.summary == item.summary
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::json;

    use super::*;
    use crate::Error;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn invalid_fields(result: Result<()>) -> Vec<String> {
        match result {
            Err(Error::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn item(status: Health) -> HealthReportItem {
        HealthReportItem {
            id: DeploymentObjectId::new(),
            status,
            checked_at: now() - Duration::seconds(5),
            summary: HealthSummary {
                pods_ready: 2,
                pods_total: 3,
                conditions: vec!["CrashLoopBackOff".into()],
                resources: vec![ResourceSummary {
                    kind: "Deployment".into(),
                    name: "web".into(),
                    namespace: Some("shop".into()),
                    ready: false,
                    message: Some("1 of 3 pods crashing".into()),
                }],
                findings: Vec::new(),
                phase: Some("stable".into()),
            },
        }
    }

    #[test]
    fn report_parses_the_documented_shape() {
        let id = DeploymentObjectId::new();
        let report: HealthReport = serde_json::from_value(json!({
            "deployment_objects": [{
                "id": id,
                "status": "degraded",
                "checked_at": "2026-03-01T11:59:00Z",
                "summary": {
                    "pods_ready": 1,
                    "pods_total": 2,
                    "conditions": ["CrashLoopBackOff"],
                    "resources": [{"kind": "Deployment", "name": "web", "namespace": "shop",
                                   "ready": false, "message": "crashing"}],
                    "findings": [{"code": "CrashLoopBackOff", "severity": "failing"}],
                    "phase": "stable",
                    "added_later": 1
                }
            }]
        }))
        .unwrap();
        let first = &report.deployment_objects[0];
        assert_eq!(first.id, id);
        assert_eq!(first.status, Health::Degraded);
        assert_eq!(
            first.summary.resources[0].namespace.as_deref(),
            Some("shop")
        );
        assert_eq!(first.summary.findings[0]["code"], "CrashLoopBackOff");
        assert!(report.validate(now(), &Limits::default()).is_ok());
    }

    #[test]
    fn summary_without_findings_omits_them() {
        let summary = HealthSummary {
            pods_ready: 1,
            pods_total: 1,
            ..HealthSummary::default()
        };
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(
            json,
            json!({"pods_ready": 1, "pods_total": 1, "conditions": [], "resources": []})
        );
    }

    #[test]
    fn item_errors_are_indexed_within_the_batch() {
        let good = item(Health::Healthy);
        let mut future = item(Health::Failing);
        future.checked_at = now() + Duration::minutes(2);
        let mut overfull = item(Health::Degraded);
        overfull.summary.pods_ready = 4;
        overfull.summary.resources[0].message = Some("m".repeat(4097));
        let report = HealthReport {
            deployment_objects: vec![good, future, overfull],
        };
        assert_eq!(
            invalid_fields(report.validate(now(), &Limits::default())),
            [
                "deployment_objects[1].checked_at",
                "deployment_objects[2].summary.pods_ready",
                "deployment_objects[2].summary.resources[0].message",
            ]
        );
    }

    #[test]
    fn duplicate_ids_point_at_the_first_occurrence() {
        let a = item(Health::Healthy);
        let b = item(Health::Healthy);
        let report = HealthReport {
            deployment_objects: vec![a.clone(), b, a.clone(), a],
        };
        match report.check_duplicates() {
            Err(Error::Invalid(errors)) => {
                let pairs: Vec<(&str, &str)> = errors
                    .iter()
                    .map(|e| (e.field.as_str(), e.reason.as_str()))
                    .collect();
                assert_eq!(
                    pairs,
                    [
                        (
                            "deployment_objects[2].id",
                            "duplicate of deployment_objects[0].id"
                        ),
                        (
                            "deployment_objects[3].id",
                            "duplicate of deployment_objects[0].id"
                        ),
                    ]
                );
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert!(report.validate(now(), &Limits::default()).is_err());
    }

    #[test]
    fn distinct_ids_pass_the_duplicate_check() {
        let report = HealthReport {
            deployment_objects: vec![item(Health::Healthy), item(Health::Unknown)],
        };
        assert!(report.check_duplicates().is_ok());
    }

    #[test]
    fn record_keeps_the_item_and_compares_verdicts() {
        let agent = AgentId::new();
        let reported = item(Health::Degraded);
        let record = reported.clone().into_record(agent, now());
        assert_eq!(record.agent_id, agent);
        assert_eq!(record.deployment_object_id, reported.id);
        assert_eq!(record.checked_at, reported.checked_at);
        assert_eq!(record.reported_at, now());

        let mut rechecked = reported.clone();
        rechecked.checked_at = now();
        assert!(record.same_verdict(&rechecked));
        let mut worse = reported;
        worse.status = Health::Failing;
        assert!(!record.same_verdict(&worse));
    }
}
