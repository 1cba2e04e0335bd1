//! Kubernetes objects in the probe's terms: events, and the kinds a manifest names.

use std::collections::HashSet;

use brokkr_core::probe::ObservedEvent;
use chrono::{DateTime, Utc};
use k8s_openapi::api::events::v1::Event;
use serde_json::Value;

pub(super) fn time_at(value: &Value, path: &[&str]) -> Option<DateTime<Utc>> {
    let mut v = value;
    for key in path {
        v = v.get(key)?;
    }
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An `events.k8s.io/v1` event in the probe's terms. Times are read from the event's
/// JSON (RFC 3339 there), the newest field that is set: series, event time, or the
/// deprecated core-v1 timestamps older emitters still fill.
pub(super) fn observed_event(event: &Event) -> ObservedEvent {
    let json = serde_json::to_value(event).unwrap_or(Value::Null);
    let regarding = event.regarding.as_ref();
    let first_seen =
        time_at(&json, &["deprecatedFirstTimestamp"]).or_else(|| time_at(&json, &["eventTime"]));
    let last_seen = time_at(&json, &["series", "lastObservedTime"])
        .or_else(|| time_at(&json, &["deprecatedLastTimestamp"]))
        .or_else(|| time_at(&json, &["eventTime"]))
        .or(first_seen);
    let count = event
        .series
        .as_ref()
        .map(|s| s.count)
        .or(event.deprecated_count)
        .and_then(|c| u32::try_from(c).ok());
    ObservedEvent {
        involved_uid: regarding.and_then(|r| r.uid.clone()),
        involved_object: regarding.map(|r| {
            format!(
                "{}/{}",
                r.kind.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default()
            )
        }),
        event_type: event.type_.clone().unwrap_or_else(|| "Normal".to_owned()),
        reason: event.reason.clone().unwrap_or_default(),
        message: event.note.clone().unwrap_or_default(),
        first_seen,
        last_seen,
        count,
    }
}

/// Kinds the probe lists (and the classifier assesses) by label.
pub(super) const LISTED_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "PersistentVolumeClaim",
    "Service",
    "Pod",
    "Ingress",
    "HorizontalPodAutoscaler",
];

/// The kinds a deployment object's YAML names (`kind: X` at the start of a line of a
/// top-level document), by a plain text scan: cheap, and never fooled into parsing
/// anything big.
pub(super) fn manifest_kinds(yaml: &str) -> HashSet<&str> {
    yaml.lines()
        .filter_map(|line| line.strip_prefix("kind:"))
        .map(|kind| kind.trim().trim_matches(|c| c == '"' || c == '\''))
        .filter(|kind| !kind.is_empty())
        .collect()
}

/// The documents of a deployment object's YAML whose kinds the probe does not list,
/// as minimal objects (apiVersion, kind, name, namespace).
pub(super) fn unlisted_manifests(yaml: &str) -> Vec<Value> {
    // Over the budget: nothing to add (its apply fails and says why).
    if brokkr_core::yaml_budget::check(yaml, brokkr_core::yaml_budget::YamlBudget::default())
        .is_err()
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(yaml) {
        let Ok(value) = <Value as serde::Deserialize>::deserialize(document) else {
            return Vec::new();
        };
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.is_empty() || kind == "List" || LISTED_KINDS.contains(&kind) {
            continue;
        }
        let metadata = value.get("metadata").cloned().unwrap_or(Value::Null);
        out.push(serde_json::json!({
            "apiVersion": value.get("apiVersion").cloned().unwrap_or(Value::Null),
            "kind": kind,
            "metadata": {
                "name": metadata.get("name").cloned().unwrap_or(Value::Null),
                "namespace": metadata.get("namespace").cloned().unwrap_or(Value::Null),
            },
        }));
    }
    out
}
