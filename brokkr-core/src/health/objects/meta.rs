//! Metadata and conditions: what every object carries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{lenient_labels, lenient_opt_bool, lenient_opt_int, lenient_time, nullable};

/// The metadata every object carries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Namespace; `None` for cluster-scoped objects (and for partial recordings).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Unique id assigned by the API server.
    #[serde(default)]
    pub uid: Option<String>,
    /// Generation of the desired state (bumped on every spec change).
    #[serde(default, deserialize_with = "lenient_opt_int")]
    pub generation: Option<i64>,
    /// When the object was created.
    #[serde(default, deserialize_with = "lenient_time")]
    pub creation_timestamp: Option<DateTime<Utc>>,
    /// When deletion was requested; already includes the grace period.
    #[serde(default, deserialize_with = "lenient_time")]
    pub deletion_timestamp: Option<DateTime<Utc>>,
    /// Labels.
    #[serde(default, deserialize_with = "lenient_labels")]
    pub labels: BTreeMap<String, String>,
    /// Owners; the one with `controller: true` manages this object.
    #[serde(default, deserialize_with = "nullable")]
    pub owner_references: Vec<OwnerReference>,
    /// Who last wrote which part, and when (server-side apply bookkeeping). Often left
    /// out of recordings (`kubectl get` hides it).
    #[serde(default, deserialize_with = "lenient_managed_fields")]
    pub managed_fields: Vec<ManagedFieldsEntry>,
}

/// One writer's entry in `metadata.managedFields`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagedFieldsEntry {
    /// The writer, e.g. `kube-controller-manager`.
    #[serde(default)]
    pub manager: Option<String>,
    /// `status` when the entry is about the status subresource.
    #[serde(default)]
    pub subresource: Option<String>,
    /// When the writer last changed its fields.
    #[serde(default, deserialize_with = "lenient_time")]
    pub time: Option<DateTime<Utc>>,
}

/// `managedFields` entries that cannot be read are dropped: they are bookkeeping, never
/// a reason to reject an object.
fn lenient_managed_fields<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ManagedFieldsEntry>, D::Error> {
    let raw = Option::<Value>::deserialize(deserializer)?;
    Ok(match raw {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|item| serde_json::from_value(item).ok())
            .collect(),
        _ => Vec::new(),
    })
}

impl ObjectMeta {
    /// When a controller last changed the status: the newest `managedFields` entry for
    /// the status subresource. A controller writes status when its counts move, so this
    /// is evidence of progress that kinds without conditions otherwise lack.
    pub fn status_updated_at(&self) -> Option<DateTime<Utc>> {
        self.managed_fields
            .iter()
            .filter(|m| m.subresource.as_deref() == Some("status"))
            .filter_map(|m| m.time)
            .max()
    }

    /// The managing owner: the reference marked `controller: true`, else the first one.
    pub fn controller(&self) -> Option<&OwnerReference> {
        self.owner_references
            .iter()
            .find(|o| o.controller == Some(true))
            .or_else(|| self.owner_references.first())
    }
}

/// A reference from an object to its owner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    /// Owner kind, e.g. `ReplicaSet`.
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    /// Owner name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Owner uid.
    #[serde(default)]
    pub uid: Option<String>,
    /// Whether this owner is the managing controller.
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub controller: Option<bool>,
}

/// Status of a condition: `True`, `False` or `Unknown` (anything else reads as `Unknown`;
/// YAML booleans, from an unquoted `status: True`, read as what they say).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// Not known (also any unrecognised value).
    #[default]
    Unknown,
}

impl<'de> Deserialize<'de> for ConditionStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Bool(true) => Self::True,
            Value::Bool(false) => Self::False,
            Value::String(s) if s.eq_ignore_ascii_case("true") => Self::True,
            Value::String(s) if s.eq_ignore_ascii_case("false") => Self::False,
            _ => Self::Unknown,
        })
    }
}

/// A status condition, as every built-in kind reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`, `Available`, `Progressing`.
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub type_: String,
    /// Whether it holds.
    #[serde(default)]
    pub status: ConditionStatus,
    /// Machine-readable reason, e.g. `Unschedulable`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// When the status last changed.
    #[serde(default, deserialize_with = "lenient_time")]
    pub last_transition_time: Option<DateTime<Utc>>,
    /// When the condition was last updated (Deployments bump this on progress).
    #[serde(default, deserialize_with = "lenient_time")]
    pub last_update_time: Option<DateTime<Utc>>,
}

impl Condition {
    /// The newest of the condition's timestamps.
    pub fn latest_time(&self) -> Option<DateTime<Utc>> {
        self.last_transition_time.max(self.last_update_time)
    }
}

/// Finds the condition of `type_` in `conditions`.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}
