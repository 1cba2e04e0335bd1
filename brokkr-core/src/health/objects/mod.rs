//! Observation types: the subset of Kubernetes objects the classifier reads.
//!
//! They deserialize directly from the JSON the API server returns (camelCase, unknown
//! fields ignored), so `kubectl get pods -o json` output can be fed in as it is. Every
//! field is optional or defaulted, and `null` is accepted wherever a value may be missing:
//! objects recorded from real clusters and test suites are often partial, and a missing
//! field must mean "not known", never a parse failure.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

mod meta;
mod network;
mod other;
mod pod;
mod workloads;

pub use meta::{
    Condition, ConditionStatus, ManagedFieldsEntry, ObjectMeta, OwnerReference, find_condition,
};
pub use network::{
    AutoscalerStatus, HorizontalPodAutoscaler, Ingress, LoadBalancerStatus, Node, NodeSpec,
    NodeStatus, PersistentVolumeClaim, PhaseStatus, Service, ServiceSpec, ServiceStatus, Taint,
};
pub use other::{OtherObject, OtherSpec, OtherStatus};
pub use pod::{
    ContainerSpec, ContainerState, ContainerStatus, Pod, PodPhase, PodSpec, PodStatus,
    StateRunning, StateTerminated, StateWaiting,
};
pub use workloads::{
    CronJob, CronJobSpec, CronJobStatus, DaemonSet, DaemonSetSpec, DaemonSetStatus, Deployment,
    DeploymentSpec, Job, JobSpec, JobStatus, ReplicaSet, ReplicaSetSpec, RollingUpdate,
    StatefulSet, StatefulSetSpec, UpdateStrategy, WorkloadStatus,
};

/// Deserializes `null` (or a missing field, together with `#[serde(default)]`) as the
/// type's default value.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// Deserializes an RFC 3339 timestamp; `null`, an empty string or an unparsable value
/// become `None` (an unknown time), because one odd timestamp must not make a whole
/// object unreadable.
fn lenient_time<'de, D>(deserializer: D) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = Option::<Value>::deserialize(deserializer)?;
    Ok(raw.as_ref().and_then(Value::as_str).and_then(|s| {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }))
}

/// Reads an integer leniently: integral floats (`2.0`) and numeric strings (`"3"`) are
/// accepted, because YAML tooling and hand-written recordings produce them; anything
/// else non-null is an error.
fn lenient_opt_int<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64>,
{
    let raw = Option::<Value>::deserialize(deserializer)?;
    let number = match &raw {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(_) => None,
    };
    number
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected an integer, found {}",
                raw.unwrap_or_default()
            ))
        })
}

fn lenient_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i32, D::Error> {
    lenient_opt_int(deserializer).map(Option::unwrap_or_default)
}

/// Reads a boolean leniently: `true`/`false` and the strings `"true"`/`"false"`.
fn lenient_opt_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a boolean, found {other}"
        ))),
    }
}

fn lenient_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    lenient_opt_bool(deserializer).map(Option::unwrap_or_default)
}

/// Reads labels leniently: unquoted YAML scalars (`hash: 2279996225`, `enabled: true`)
/// become their text; nulls are dropped.
fn lenient_labels<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, Value>>::deserialize(deserializer)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Null => None,
            other => Some((k, other.to_string())),
        })
        .collect())
}
