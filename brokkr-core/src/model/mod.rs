//! The broker's domain records and the payloads agents and operators send.
//!
//! Types come in two flavours: stored records (`Agent`, `Delivery`, `HealthRecord`, ...)
//! and incoming payloads (`NewAgent`, `Heartbeat`, `HealthReport`, ...). Every payload has
//! a `validate` method that checks what serde cannot express (lengths, signs, cross-field
//! rules, clocks running ahead) and reports *all* problems at once as
//! [`Error::Invalid`](crate::Error::Invalid), with dotted field paths such as
//! `deployment_objects[3].checked_at`.
//!
//! JSON is snake_case; absent optional fields are omitted on output; unknown fields are
//! ignored on input so agents and brokers of different versions can talk during a rolling
//! upgrade.

mod catalog;
mod delivery;
mod diagnostic_bundle;
mod health_report;
mod heartbeat;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::error::Violations;

pub use catalog::{
    Agent, DeploymentObject, NewAgent, NewDeploymentObject, NewStack, NewTarget, Stack, Target,
};
pub use delivery::{
    Delivery, DeliveryState, DeploymentStatusEvent, FailureReason, NewWorkOrder, ReconcileOutcome,
    WorkOrder, WorkOrderStatus,
};
pub use diagnostic_bundle::{
    ContainerState, ContainerStatusReport, DiagnosticBundle, DiagnosticOutcome, EventReport,
    PodConditionReport, PodStatusReport,
};
pub use health_report::{
    HealthRecord, HealthReport, HealthReportItem, HealthSummary, ResourceSummary,
};
pub use heartbeat::{ClusterSnapshot, Heartbeat};

/// Size and clock limits applied when validating incoming payloads.
///
/// Lengths count characters (not bytes) except [`Limits::max_object_bytes`], which bounds
/// a manifest bundle by its encoded size because that is what the store and the wire pay for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest accepted name (agent, cluster, stack, resource, work-order kind).
    /// Defaults to 253, the longest Kubernetes object name.
    pub max_name_len: usize,
    /// Longest accepted label key and label value. Defaults to 253: keys may carry a
    /// DNS-subdomain prefix, and values here are broker labels, not Kubernetes ones.
    pub max_label_len: usize,
    /// Longest accepted free-text message (failure messages, conditions, resource messages).
    /// Defaults to 4096.
    pub max_message_len: usize,
    /// Largest accepted deployment object `yaml_content`, in bytes. Defaults to 8 MiB.
    pub max_object_bytes: usize,
    /// How far in the future a client timestamp may lie before it is rejected.
    /// Defaults to 60 s; clocks of agents and broker are never perfectly in step.
    pub clock_skew: Duration,
    /// What a deployment object's YAML may expand to (nodes after aliases, nesting);
    /// the agent parses with the same budget.
    pub yaml: crate::yaml_budget::YamlBudget,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_name_len: 253,
            max_label_len: 253,
            max_message_len: 4096,
            max_object_bytes: 8 * 1024 * 1024,
            clock_skew: Duration::seconds(60),
            yaml: crate::yaml_budget::YamlBudget::default(),
        }
    }
}

/// Records a violation when a required name is blank or too long.
fn check_name(v: &mut Violations, field: &str, value: &str, limits: &Limits) {
    if value.trim().is_empty() {
        v.push(field, "must not be empty");
    } else {
        check_len(v, field, value, limits.max_name_len);
    }
}

/// Records a violation when `value` has more than `max` characters.
fn check_len(v: &mut Violations, field: &str, value: &str, max: usize) {
    // `chars().count()` is linear, so skip it for values whose byte length already fits.
    if value.len() > max && value.chars().count() > max {
        v.push(field, format!("must be at most {max} characters"));
    }
    // Databases refuse NUL in text; refuse it here so every store agrees.
    if value.contains('\0') {
        v.push(field, "must not contain NUL characters");
    }
}

/// Records a violation when an optional text is too long.
fn check_opt_len(v: &mut Violations, field: &str, value: Option<&str>, max: usize) {
    if let Some(value) = value {
        check_len(v, field, value, max);
    }
}

/// Records a violation when a client timestamp lies beyond the allowed clock skew, or
/// before 1970 (no agent measured anything then, and a store may not hold years far
/// enough back: one such value must not fail a write shared with other agents).
fn check_client_time(
    v: &mut Violations,
    field: &str,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    limits: &Limits,
) {
    if at.is_some_and(|at| at < DateTime::<Utc>::UNIX_EPOCH) {
        v.push(field, "must not be before 1970-01-01T00:00:00Z");
    } else if let Some(at) = at
        && at > now + limits.clock_skew
    {
        v.push(
            field,
            format!(
                "must not be more than {} s in the future",
                limits.clock_skew.num_seconds()
            ),
        );
    }
}

/// Records violations for label maps: keys must be non-blank, keys and values bounded.
fn check_labels(v: &mut Violations, labels: &BTreeMap<String, String>, limits: &Limits) {
    let max = limits.max_label_len;
    for (key, value) in labels {
        if key.trim().is_empty() {
            v.push("labels", "label keys must not be empty");
        } else if key.len() > max && key.chars().count() > max {
            // The key itself is not echoed in the field path: it may be huge.
            v.push(
                "labels",
                format!("label keys must be at most {max} characters"),
            );
        } else {
            check_len(v, &format!("labels.{key}"), value, max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn fields(result: crate::Result<()>) -> Vec<String> {
        match result {
            Err(Error::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_documented_limits() {
        let limits = Limits::default();
        assert_eq!(limits.max_name_len, 253);
        assert_eq!(limits.max_label_len, 253);
        assert_eq!(limits.max_message_len, 4096);
        assert_eq!(limits.max_object_bytes, 8 * 1024 * 1024);
        assert_eq!(limits.clock_skew, Duration::seconds(60));
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let mut v = Violations::new();
        // 3 characters, 9 bytes: fits a 3-character limit.
        check_len(&mut v, "name", "äöü", 3);
        assert!(v.finish().is_ok());
        let mut v = Violations::new();
        check_len(&mut v, "name", "äöüß", 3);
        assert_eq!(fields(v.finish()), ["name"]);
    }

    #[test]
    fn labels_report_blank_keys_and_long_values() {
        let limits = Limits {
            max_label_len: 5,
            ..Limits::default()
        };
        let labels = BTreeMap::from([
            (" ".to_owned(), "x".to_owned()),
            ("env".to_owned(), "production".to_owned()),
            ("averyverylongkey".to_owned(), "x".to_owned()),
            ("ok".to_owned(), "fine".to_owned()),
        ]);
        let mut v = Violations::new();
        check_labels(&mut v, &labels, &limits);
        assert_eq!(fields(v.finish()), ["labels", "labels", "labels.env"]);
    }

    #[test]
    fn timestamps_within_the_skew_are_accepted() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let limits = Limits::default();
        let mut v = Violations::new();
        check_client_time(
            &mut v,
            "at",
            Some(now + Duration::seconds(60)),
            now,
            &limits,
        );
        check_client_time(&mut v, "at", None, now, &limits);
        assert!(v.finish().is_ok());
        let mut v = Violations::new();
        check_client_time(
            &mut v,
            "at",
            Some(now + Duration::seconds(61)),
            now,
            &limits,
        );
        assert_eq!(fields(v.finish()), ["at"]);
    }
}
