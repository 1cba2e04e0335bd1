//! A deployment object's resources as the classifier sees them, and how raw Kubernetes
//! JSON becomes them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::objects::{
    Condition, CronJob, DaemonSet, Deployment, HorizontalPodAutoscaler, Ingress, Job, Node,
    ObjectMeta, OtherObject, PersistentVolumeClaim, Pod, ReplicaSet, Service, StatefulSet,
};

/// One Kubernetes object that belongs to a deployment object, typed by kind.
///
/// Serializes back to Kubernetes-shaped JSON (with `kind`, without the fields the
/// classifier does not read), which [`Resource::from_value`] reads again.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    /// A Pod.
    Pod(Pod),
    /// A Deployment.
    Deployment(Deployment),
    /// A StatefulSet.
    StatefulSet(StatefulSet),
    /// A DaemonSet.
    DaemonSet(DaemonSet),
    /// A ReplicaSet.
    ReplicaSet(ReplicaSet),
    /// A Job.
    Job(Job),
    /// A CronJob.
    CronJob(CronJob),
    /// A PersistentVolumeClaim.
    PersistentVolumeClaim(PersistentVolumeClaim),
    /// A Service.
    Service(Service),
    /// An Ingress.
    Ingress(Ingress),
    /// A HorizontalPodAutoscaler.
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    /// Any kind the classifier does not assess (healthy if present).
    Other(OtherObject),
}

impl Resource {
    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Self::Pod(o) => &o.metadata,
            Self::Deployment(o) => &o.metadata,
            Self::StatefulSet(o) => &o.metadata,
            Self::DaemonSet(o) => &o.metadata,
            Self::ReplicaSet(o) => &o.metadata,
            Self::Job(o) => &o.metadata,
            Self::CronJob(o) => &o.metadata,
            Self::PersistentVolumeClaim(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::Ingress(o) => &o.metadata,
            Self::HorizontalPodAutoscaler(o) => &o.metadata,
            Self::Other(o) => &o.metadata,
        }
    }

    /// The object's kind as Kubernetes spells it.
    pub fn kind(&self) -> &str {
        match self {
            Self::Pod(_) => "Pod",
            Self::Deployment(_) => "Deployment",
            Self::StatefulSet(_) => "StatefulSet",
            Self::DaemonSet(_) => "DaemonSet",
            Self::ReplicaSet(_) => "ReplicaSet",
            Self::Job(_) => "Job",
            Self::CronJob(_) => "CronJob",
            Self::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Self::Service(_) => "Service",
            Self::Ingress(_) => "Ingress",
            Self::HorizontalPodAutoscaler(_) => "HorizontalPodAutoscaler",
            Self::Other(o) => &o.kind,
        }
    }

    /// Reads one object from its JSON (or any serde value) form.
    pub fn from_value(value: Value) -> Result<Self, ObjectError> {
        match classify_value(value)? {
            Parsed::Resource(r) => Ok(*r),
            Parsed::Node(n) => Ok(Self::Other(OtherObject {
                api_version: "v1".into(),
                kind: "Node".into(),
                metadata: n.metadata,
                ..OtherObject::default()
            })),
            Parsed::Ignored => Err(ObjectError::NotAResource),
            Parsed::List(_) => Err(ObjectError::UnexpectedList),
        }
    }
}

/// An object with its `kind` added (the typed structs do not store it).
#[derive(Serialize)]
struct Tagged<'a, T> {
    kind: &'a str,
    #[serde(flatten)]
    object: &'a T,
}

impl Serialize for Resource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let kind = self.kind();
        match self {
            Self::Pod(o) => Tagged { kind, object: o }.serialize(serializer),
            Self::Deployment(o) => Tagged { kind, object: o }.serialize(serializer),
            Self::StatefulSet(o) => Tagged { kind, object: o }.serialize(serializer),
            Self::DaemonSet(o) => Tagged { kind, object: o }.serialize(serializer),
            Self::ReplicaSet(o) => Tagged { kind, object: o }.serialize(serializer),
            Self::Job(o) => Tagged { kind, object: o }.serialize(serializer),
            Self::CronJob(o) => Tagged { kind, object: o }.serialize(serializer),
            Self::PersistentVolumeClaim(o) => Tagged { kind, object: o }.serialize(serializer),
            Self::Service(o) => Tagged { kind, object: o }.serialize(serializer),
            Self::Ingress(o) => Tagged { kind, object: o }.serialize(serializer),
            Self::HorizontalPodAutoscaler(o) => Tagged { kind, object: o }.serialize(serializer),
            Self::Other(o) => o.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// Why a value is not a usable Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// Not a JSON object.
    #[error("expected a Kubernetes object (a map), found {0}")]
    NotAnObject(&'static str),
    /// No `kind` field.
    #[error("object has no `kind`")]
    MissingKind,
    /// A field of a known kind has the wrong shape.
    #[error("{kind} {name:?}: {reason}")]
    BadField {
        /// Kind of the object.
        kind: String,
        /// Name of the object, when it has one.
        name: String,
        /// What serde reported.
        reason: String,
    },
    /// The value is an event, which is not a resource.
    #[error("events are not resources of a deployment object")]
    NotAResource,
    /// A list where one object was expected.
    #[error("expected one object, found a list")]
    UnexpectedList,
}

enum Parsed {
    Resource(Box<Resource>),
    Node(Box<Node>),
    List(Vec<Value>),
    Ignored,
}

fn typed<T: serde::de::DeserializeOwned>(
    value: Value,
    kind: &str,
    wrap: impl FnOnce(T) -> Resource,
) -> Result<Parsed, ObjectError> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    serde_json::from_value(value)
        .map(|t| Parsed::Resource(Box::new(wrap(t))))
        .map_err(|e| ObjectError::BadField {
            kind: kind.to_owned(),
            name,
            reason: e.to_string(),
        })
}

fn classify_value(value: Value) -> Result<Parsed, ObjectError> {
    let kind = match &value {
        Value::Object(map) => match map.get("kind").and_then(Value::as_str) {
            Some(kind) => kind.to_owned(),
            // A bare `{items: [...]}` wrapper is a list whose kind was left out.
            None if map.get("items").is_some_and(Value::is_array) => "List".to_owned(),
            None => return Err(ObjectError::MissingKind),
        },
        Value::Null => return Err(ObjectError::NotAnObject("null")),
        Value::Array(_) => return Err(ObjectError::NotAnObject("an array")),
        _ => return Err(ObjectError::NotAnObject("a scalar")),
    };
    // `kind: List` from kubectl and `PodList`-style kinds from the API both carry items;
    // the API leaves `kind` out of the items of a typed list, so it comes from the list.
    if let Some(item_kind) = kind.strip_suffix("List")
        && let Some(items) = value.get("items")
    {
        let items = match items {
            Value::Array(items) => items.clone(),
            Value::Null => Vec::new(),
            _ => {
                return Err(ObjectError::NotAnObject(
                    "a list whose items are not an array",
                ));
            }
        };
        return Ok(Parsed::List(
            items
                .into_iter()
                .map(|mut item| {
                    if let Value::Object(map) = &mut item
                        && !map.contains_key("kind")
                        && !item_kind.is_empty()
                    {
                        map.insert("kind".into(), Value::String(item_kind.to_owned()));
                    }
                    item
                })
                .collect(),
        ));
    }
    // Kinds are only what we think they are in their own API group: a Knative `Service`
    // or a Volcano `Job` is a custom resource, not the built-in kind.
    let group = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(|v| v.rsplit_once('/').map_or("", |(group, _)| group));
    let builtin = |groups: &[&str]| group.is_none_or(|g| groups.contains(&g));
    let recognised = match kind.as_str() {
        "Pod" | "Service" | "PersistentVolumeClaim" | "Node" => builtin(&[""]),
        "Event" => builtin(&["", "events.k8s.io"]),
        "Deployment" | "DaemonSet" | "ReplicaSet" => builtin(&["apps", "extensions"]),
        "StatefulSet" => builtin(&["apps"]),
        "Ingress" => builtin(&["networking.k8s.io", "extensions"]),
        "HorizontalPodAutoscaler" => builtin(&["autoscaling"]),
        "Job" | "CronJob" => builtin(&["batch"]),
        _ => false,
    };
    if !recognised {
        return typed(value, &kind, Resource::Other);
    }
    match kind.as_str() {
        "Pod" => typed(value, &kind, Resource::Pod),
        "Deployment" => typed(value, &kind, Resource::Deployment),
        "StatefulSet" => typed(value, &kind, Resource::StatefulSet),
        "DaemonSet" => typed(value, &kind, Resource::DaemonSet),
        "ReplicaSet" => typed(value, &kind, Resource::ReplicaSet),
        "Job" => typed(value, &kind, Resource::Job),
        "CronJob" => typed(value, &kind, Resource::CronJob),
        "PersistentVolumeClaim" => typed(value, &kind, Resource::PersistentVolumeClaim),
        "Service" => typed(value, &kind, Resource::Service),
        "Ingress" => typed(value, &kind, Resource::Ingress),
        "HorizontalPodAutoscaler" => {
            let v1_conditions = v1_autoscaler_conditions(&value);
            typed(value, &kind, |mut hpa: HorizontalPodAutoscaler| {
                if hpa.status.conditions.is_empty() {
                    hpa.status.conditions = v1_conditions;
                }
                Resource::HorizontalPodAutoscaler(hpa)
            })
        }
        "Node" => serde_json::from_value(value)
            .map(|n| Parsed::Node(Box::new(n)))
            .map_err(|e| ObjectError::BadField {
                kind,
                name: String::new(),
                reason: e.to_string(),
            }),
        "Event" => Ok(Parsed::Ignored),
        _ => typed(value, &kind, Resource::Other),
    }
}

/// `autoscaling/v1` keeps an autoscaler's conditions as JSON text in an annotation.
/// Unreadable text means no conditions (the autoscaler then reads as not observed).
fn v1_autoscaler_conditions(value: &Value) -> Vec<Condition> {
    value
        .pointer("/metadata/annotations/autoscaling.alpha.kubernetes.io~1conditions")
        .and_then(Value::as_str)
        .and_then(|text| serde_json::from_str::<Vec<Value>>(text).ok())
        .map(|items| {
            items
                .iter()
                .filter_map(|c| Condition::deserialize(c).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Everything the classifier knows about one deployment object at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observations {
    /// The objects found for the deployment object, plus the pods and ReplicaSets/Jobs
    /// they own (in any order: the verdict does not depend on it).
    pub resources: Vec<Resource>,
    /// Nodes the pods run on, when known: they reveal pods on lost nodes.
    pub nodes: Vec<Node>,
    /// The deployment object is a deletion marker: finding nothing is the goal.
    pub deletion: bool,
    /// Last time the caller saw a workload make progress, by workload uid. Optional:
    /// StatefulSets and DaemonSets carry no progress timestamps, so an agent that watches
    /// them over time can say when their counts last moved.
    pub progress_hints: HashMap<String, DateTime<Utc>>,
}

impl Observations {
    /// Observations of the given resources.
    pub fn new(resources: Vec<Resource>) -> Self {
        Self {
            resources,
            ..Self::default()
        }
    }

    /// Adds a raw Kubernetes object: a resource, a Node, or a list of them
    /// (`kind: List` / `PodList` ...). Events are skipped.
    pub fn push_value(&mut self, value: Value) -> Result<(), ObjectError> {
        match classify_value(value)? {
            Parsed::Resource(r) => self.resources.push(*r),
            Parsed::Node(n) => self.nodes.push(*n),
            Parsed::List(items) => {
                for item in items {
                    self.push_value(item)?;
                }
            }
            Parsed::Ignored => {}
        }
        Ok(())
    }

    /// Observations from raw Kubernetes objects (see [`Observations::push_value`]).
    pub fn from_values(values: impl IntoIterator<Item = Value>) -> Result<Self, ObjectError> {
        let mut observations = Self::default();
        for value in values {
            observations.push_value(value)?;
        }
        Ok(observations)
    }
}
