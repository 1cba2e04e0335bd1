//! The catalog: agents (one per cluster), stacks, their deployment objects, and targets
//! that say which agent runs which stack.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Limits, check_labels, check_name};
use crate::error::{Result, Violations};
use crate::ids::{AgentId, DeploymentObjectId, StackId};

/// A registered agent: the broker's view of one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agent {
    /// The agent's id.
    pub id: AgentId,
    /// Human-chosen agent name.
    pub name: String,
    /// Name of the cluster the agent runs in.
    pub cluster_name: String,
    /// Free-form labels for filtering (e.g. `env=prod`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When the agent was registered.
    pub created_at: DateTime<Utc>,
}

/// Registration payload for a new agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewAgent {
    /// Human-chosen agent name; must not be blank.
    pub name: String,
    /// Name of the cluster the agent runs in; must not be blank.
    pub cluster_name: String,
    /// Optional labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl NewAgent {
    /// Checks names and labels against `limits`.
    ///
    /// `now` is unused today; it is taken so every payload validates with the same shape.
    pub fn validate(&self, _now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        let mut v = Violations::new();
        check_name(&mut v, "name", &self.name, limits);
        check_name(&mut v, "cluster_name", &self.cluster_name, limits);
        check_labels(&mut v, &self.labels, limits);
        v.finish()
    }

    /// The stored agent this payload registers, with a fresh id.
    pub fn into_agent(self, now: DateTime<Utc>) -> Agent {
        Agent {
            id: AgentId::new(),
            name: self.name,
            cluster_name: self.cluster_name,
            labels: self.labels,
            created_at: now,
        }
    }
}

/// A stack: a named, versioned group of manifests deployed to the agents that target it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stack {
    /// The stack's id.
    pub id: StackId,
    /// Human-chosen stack name.
    pub name: String,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When the stack was created.
    pub created_at: DateTime<Utc>,
}

/// Creation payload for a new stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewStack {
    /// Human-chosen stack name; must not be blank.
    pub name: String,
    /// Optional labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl NewStack {
    /// Checks the name and labels against `limits`.
    pub fn validate(&self, _now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        let mut v = Violations::new();
        check_name(&mut v, "name", &self.name, limits);
        check_labels(&mut v, &self.labels, limits);
        v.finish()
    }

    /// The stored stack this payload creates, with a fresh id.
    pub fn into_stack(self, now: DateTime<Utc>) -> Stack {
        Stack {
            id: StackId::new(),
            name: self.name,
            labels: self.labels,
            created_at: now,
        }
    }
}

/// One version of a stack's manifests. Objects of a stack are ordered by `sequence_id`;
/// only the latest one is the stack's desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentObject {
    /// The object's id.
    pub id: DeploymentObjectId,
    /// The stack this object belongs to.
    pub stack_id: StackId,
    /// Position within the stack; assigned by the store, increasing.
    pub sequence_id: i64,
    /// The manifests (multi-document YAML).
    pub yaml_content: String,
    /// True when this object asks agents to delete the manifests instead of applying them.
    #[serde(default)]
    pub is_deletion: bool,
    /// When the object was created.
    pub created_at: DateTime<Utc>,
}

/// Creation payload for a new deployment object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewDeploymentObject {
    /// The manifests (multi-document YAML); must not be blank, even for a deletion marker,
    /// because the agent needs them to know what to delete.
    pub yaml_content: String,
    /// Whether this object is a deletion marker.
    #[serde(default)]
    pub is_deletion: bool,
}

impl NewDeploymentObject {
    /// Checks that the manifests are present, within [`Limits::max_object_bytes`], free
    /// of NUL, and YAML within [`Limits::yaml`]: parsed once here, so an alias bomb or
    /// a nesting storm is refused with its reason instead of reaching every agent.
    pub fn validate(&self, _now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        let mut v = Violations::new();
        if self.yaml_content.trim().is_empty() {
            v.push("yaml_content", "must not be empty");
        } else if self.yaml_content.len() > limits.max_object_bytes {
            v.push(
                "yaml_content",
                format!("must be at most {} bytes", limits.max_object_bytes),
            );
        } else if self.yaml_content.contains('\0') {
            v.push("yaml_content", "must not contain NUL characters");
        } else if let Err(error) = crate::yaml_budget::check(&self.yaml_content, limits.yaml) {
            v.push("yaml_content", error.to_string());
        }
        v.finish()
    }
}

/// An agent targets a stack: it should run the stack's latest deployment object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Target {
    /// The agent that runs the stack.
    pub agent_id: AgentId,
    /// The stack it runs.
    pub stack_id: StackId,
    /// When the target was created.
    pub created_at: DateTime<Utc>,
}

/// Payload of `POST /agents/{id}/targets`; the agent comes from the path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTarget {
    /// The stack to target.
    pub stack_id: StackId,
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn new_agent_without_labels_parses_and_validates() {
        let agent: NewAgent =
            serde_json::from_str(r#"{"name":"edge-1","cluster_name":"eu-west","extra":1}"#)
                .unwrap();
        assert!(agent.labels.is_empty());
        assert!(agent.validate(now(), &Limits::default()).is_ok());
    }

    #[test]
    fn blank_and_over_long_names_are_all_reported() {
        let agent = NewAgent {
            name: "   ".into(),
            cluster_name: "c".repeat(254),
            labels: BTreeMap::new(),
        };
        assert_eq!(
            invalid_fields(agent.validate(now(), &Limits::default())),
            ["name", "cluster_name"]
        );
    }

    #[test]
    fn new_agent_becomes_an_agent_with_its_fields() {
        let payload = NewAgent {
            name: "edge-1".into(),
            cluster_name: "eu-west".into(),
            labels: BTreeMap::from([("env".into(), "prod".into())]),
        };
        let agent = payload.clone().into_agent(now());
        assert_eq!(agent.name, "edge-1");
        assert_eq!(agent.labels, payload.labels);
        assert_eq!(agent.created_at, now());
        let json = serde_json::to_value(&agent).unwrap();
        assert_eq!(json["cluster_name"], "eu-west");
        assert_eq!(json["labels"]["env"], "prod");
        assert_eq!(json["created_at"], "2026-03-01T12:00:00Z");
    }

    #[test]
    fn new_stack_requires_a_name() {
        let stack = NewStack {
            name: String::new(),
            labels: BTreeMap::new(),
        };
        assert_eq!(
            invalid_fields(stack.validate(now(), &Limits::default())),
            ["name"]
        );
        let ok = NewStack {
            name: "payments".into(),
            labels: BTreeMap::new(),
        };
        assert_eq!(ok.into_stack(now()).name, "payments");
    }

    #[test]
    fn deployment_object_defaults_to_apply_and_bounds_size() {
        let obj: NewDeploymentObject =
            serde_json::from_str(r#"{"yaml_content":"kind: ConfigMap"}"#).unwrap();
        assert!(!obj.is_deletion);
        assert!(obj.validate(now(), &Limits::default()).is_ok());

        let small = Limits {
            max_object_bytes: 4,
            ..Limits::default()
        };
        assert_eq!(
            invalid_fields(obj.validate(now(), &small)),
            ["yaml_content"]
        );
        let empty = NewDeploymentObject {
            yaml_content: "\n".into(),
            is_deletion: true,
        };
        assert_eq!(
            invalid_fields(empty.validate(now(), &Limits::default())),
            ["yaml_content"]
        );
    }
}
