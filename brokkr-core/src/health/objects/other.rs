//! Any other kind: its identity and the status conventions most controllers follow.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::meta::{Condition, ObjectMeta};
use super::{lenient_opt_bool, lenient_opt_int, lenient_time, nullable};

/// Any other kind: its identity, plus the status conventions most controllers follow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", from = "RawOther")]
pub struct OtherObject {
    /// API version, e.g. `v1`.
    pub api_version: String,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// The switches of the spec that mean "paused on purpose" (`suspend`, `paused`).
    #[serde(skip_serializing_if = "OtherSpec::is_empty")]
    pub spec: OtherSpec,
    /// The status as the object carries it.
    #[serde(skip_serializing_if = "Value::is_null")]
    pub status: Value,
    /// What the classifier reads of `status`.
    #[serde(skip)]
    pub view: OtherStatus,
}

impl OtherObject {
    /// The API group (`""` for the core group).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }
}

/// The spec switches of a custom kind that pause it on purpose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OtherSpec {
    /// Flux, CronJob-like kinds: `spec.suspend`.
    #[serde(
        default,
        deserialize_with = "lenient_opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub suspend: Option<bool>,
    /// Argo Rollouts and Cluster API: `spec.paused`.
    #[serde(
        default,
        deserialize_with = "lenient_opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub paused: Option<bool>,
}

impl OtherSpec {
    fn is_empty(&self) -> bool {
        self.suspend.is_none() && self.paused.is_none()
    }

    /// Whether the spec pauses the object on purpose.
    pub fn suspended(&self) -> bool {
        self.suspend == Some(true) || self.paused == Some(true)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawOther {
    #[serde(default, deserialize_with = "nullable")]
    api_version: String,
    #[serde(default, deserialize_with = "nullable")]
    kind: String,
    #[serde(default, deserialize_with = "nullable")]
    metadata: ObjectMeta,
    #[serde(default, deserialize_with = "lenient_other_spec")]
    spec: OtherSpec,
    #[serde(default)]
    status: Value,
}

impl From<RawOther> for OtherObject {
    fn from(raw: RawOther) -> Self {
        let view = OtherStatus::read(&raw.status);
        Self {
            api_version: raw.api_version,
            kind: raw.kind,
            metadata: raw.metadata,
            spec: raw.spec,
            status: raw.status,
            view,
        }
    }
}

/// A spec whose switches cannot be read pauses nothing.
fn lenient_other_spec<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OtherSpec, D::Error> {
    let raw = Option::<Value>::deserialize(deserializer)?;
    Ok(raw
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// The status conventions most controllers follow, read from any kind's status: each
/// field on its own, so one odd field (Argo Rollouts once wrote `observedGeneration` as
/// a hash) never hides the others.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtherStatus {
    /// The status carries at least one non-empty field: some controller wrote it.
    pub present: bool,
    /// Generation the controller last acted on.
    pub observed_generation: Option<i64>,
    /// Conditions.
    pub conditions: Vec<Condition>,
    /// `status.phase`, e.g. `Running`, `Failed`, `Degraded`, `Paused`.
    pub phase: Option<String>,
    /// `status.message`.
    pub message: Option<String>,
    /// cert-manager Certificate: end of validity.
    pub not_after: Option<DateTime<Utc>>,
    /// Argo Rollouts: the rollout was aborted.
    pub abort: bool,
}

impl OtherStatus {
    /// Reads the conventional fields of `status`.
    pub fn read(status: &Value) -> Self {
        let Value::Object(map) = status else {
            return Self::default();
        };
        let text = |name: &str| map.get(name).and_then(Value::as_str).map(str::to_owned);
        let conditions = match map.get("conditions") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|c| Condition::deserialize(c).ok())
                .collect(),
            _ => Vec::new(),
        };
        Self {
            present: map.values().any(|v| !is_empty_value(v)),
            observed_generation: map
                .get("observedGeneration")
                .and_then(|v| lenient_opt_int::<_, i64>(v).ok().flatten()),
            conditions,
            phase: text("phase").filter(|p| !p.is_empty()),
            message: text("message").filter(|m| !m.is_empty()),
            not_after: map
                .get("notAfter")
                .and_then(|v| lenient_time(v).ok().flatten()),
            abort: map.get("abort").and_then(Value::as_bool).unwrap_or(false),
        }
    }
}

fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty_value),
        Value::Bool(_) | Value::Number(_) => false,
    }
}
