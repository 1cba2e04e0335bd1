//! What an agent sends back for a diagnostics request: a bundle of pod statuses, events
//! and log tails, or the reason it could not collect one.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Limits, check_client_time, check_len};
use crate::error::{Result, Violations};

/// One condition of a pod, as Kubernetes reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodConditionReport {
    /// Condition type, e.g. `Ready` or `PodScheduled`.
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The state a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Not running yet (pulling, crash-looping, ...); `reason` says why.
    Waiting,
    /// Running.
    Running,
    /// Exited; `exit_code` and `reason` say how.
    Terminated,
}

/// One container of a pod (init containers included, flagged by `init`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContainerStatusReport {
    /// Container name.
    pub name: String,
    /// Whether this is an init container.
    #[serde(default)]
    pub init: bool,
    /// Whether the container passes its readiness probe.
    pub ready: bool,
    /// Current state.
    pub state: ContainerState,
    /// Reason of the waiting or terminated state, e.g. `CrashLoopBackOff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Message of the state, including a termination message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Exit code of a terminated container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// How often the container restarted.
    #[serde(default)]
    pub restart_count: u32,
    /// Why the previous instance ended, e.g. `OOMKilled` (the current state of a
    /// crash-looping container only says `CrashLoopBackOff`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_termination_reason: Option<String>,
    /// Exit code of the previous instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit_code: Option<i32>,
}

/// The status of one pod of the diagnosed deployment object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PodStatusReport {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod phase, e.g. `Running` or `Pending`.
    pub phase: String,
    /// Pod conditions.
    #[serde(default)]
    pub conditions: Vec<PodConditionReport>,
    /// Container statuses, init containers included.
    #[serde(default)]
    pub container_statuses: Vec<ContainerStatusReport>,
}

/// A Kubernetes event about one of the diagnosed resources (deduplicated by the agent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventReport {
    /// `Normal` or `Warning`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Machine-readable reason, e.g. `BackOff`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// When the event was first seen.
    pub first_seen: DateTime<Utc>,
    /// When the event was last seen.
    pub last_seen: DateTime<Utc>,
    /// How often it occurred.
    pub count: u32,
    /// The involved object, e.g. `Pod/web-5d9c`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// Everything an agent collected for a diagnostics request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosticBundle {
    /// When the agent collected the bundle (agent clock).
    pub collected_at: DateTime<Utc>,
    /// Status of every pod of the object.
    #[serde(default)]
    pub pod_statuses: Vec<PodStatusReport>,
    /// Recent events about the object's resources.
    #[serde(default)]
    pub events: Vec<EventReport>,
    /// Last log lines (already redacted by the agent), keyed by `<pod>/<container>`,
    /// and `<pod>/<container>/previous` for the instance before the last restart.
    #[serde(default)]
    pub log_tails: BTreeMap<String, Vec<String>>,
    /// Who owns whom, top-level first, e.g. `Deployment/web -> ReplicaSet/web-5d8f
    /// -> Pod/web-5d8f-x2k4`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_chain: Vec<String>,
    /// The agent left things out to stay within the size cap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl DiagnosticBundle {
    /// Rejects a `collected_at` beyond the clock skew.
    pub fn validate(&self, now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        let mut v = Violations::new();
        check_client_time(&mut v, "collected_at", Some(self.collected_at), now, limits);
        v.finish()
    }
}

/// The result an agent posts for a diagnostics request.
///
/// On the wire this is either the bundle object itself or `{"failed": "<reason>"}`.
/// Deserialization looks for the `failed` key instead of trying both shapes in turn, so
/// a malformed bundle yields the bundle's own parse error rather than a vague "matched
/// no variant".
#[derive(Debug, Clone, PartialEq)]
pub enum DiagnosticOutcome {
    /// The agent collected a bundle.
    Bundle(DiagnosticBundle),
    /// The agent could not collect a bundle, and says why.
    Failed(String),
}

impl DiagnosticOutcome {
    /// Validates the bundle, or requires a non-blank, bounded failure reason.
    pub fn validate(&self, now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        match self {
            Self::Bundle(bundle) => bundle.validate(now, limits),
            Self::Failed(reason) => {
                let mut v = Violations::new();
                if reason.trim().is_empty() {
                    v.push("failed", "must not be empty");
                } else {
                    check_len(&mut v, "failed", reason, limits.max_message_len);
                }
                v.finish()
            }
        }
    }
}

impl Serialize for DiagnosticOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Self::Bundle(bundle) => bundle.serialize(serializer),
            Self::Failed(reason) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("failed", reason)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for DiagnosticOutcome {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        if let Some(reason) = value.get("failed") {
            return String::deserialize(reason)
                .map(Self::Failed)
                .map_err(D::Error::custom);
        }
        DiagnosticBundle::deserialize(value)
            .map(Self::Bundle)
            .map_err(D::Error::custom)
    }
}

impl DiagnosticOutcome {
    /// The outcome with secrets removed from everything free-form in it: log tails
    /// (line by line, each cut to [`crate::redact::LINE_CAP`]), event, condition and
    /// container messages, and the failure reason. Applied by the broker before a
    /// result is stored, whatever the agent already did.
    ///
    /// Every other text in it (names, reasons, log-tail keys, the owner chain) has its
    /// NUL characters replaced ([`crate::cluster_text`]): a pod printing `\0` still gets
    /// its bundle stored, on any store.
    #[must_use]
    pub fn redacted(self) -> Self {
        use crate::cluster_text::{replace_nul, replace_nul_opt};
        use crate::redact::{LINE_CAP, redact, redact_lines};
        let scrub = |text: Option<String>| text.map(|t| redact(&t, LINE_CAP));
        match self {
            Self::Failed(reason) => Self::Failed(redact(&reason, LINE_CAP)),
            Self::Bundle(mut bundle) => {
                bundle.log_tails = std::mem::take(&mut bundle.log_tails)
                    .into_iter()
                    .map(|(mut key, tail)| {
                        key = redact(&key, LINE_CAP);
                        (key, redact_lines(&tail, LINE_CAP))
                    })
                    .collect();
                for event in &mut bundle.events {
                    event.message = redact(&event.message, LINE_CAP);
                    event.reason = redact(&event.reason, LINE_CAP);
                    replace_nul(&mut event.event_type);
                    replace_nul_opt(&mut event.object);
                }
                for pod in &mut bundle.pod_statuses {
                    replace_nul(&mut pod.name);
                    replace_nul(&mut pod.namespace);
                    replace_nul(&mut pod.phase);
                    for condition in &mut pod.conditions {
                        replace_nul(&mut condition.condition_type);
                        replace_nul(&mut condition.status);
                        replace_nul_opt(&mut condition.reason);
                        condition.message = scrub(condition.message.take());
                    }
                    for container in &mut pod.container_statuses {
                        replace_nul(&mut container.name);
                        replace_nul_opt(&mut container.reason);
                        replace_nul_opt(&mut container.last_termination_reason);
                        container.message = scrub(container.message.take());
                    }
                }
                bundle.owner_chain.iter_mut().for_each(replace_nul);
                Self::Bundle(bundle)
            }
        }
    }
}

/// The wire form has two shapes, so its schema is written by hand: the bundle, or
/// `{"failed": "<reason>"}`.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for DiagnosticOutcome {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("DiagnosticBundle"))
            .item(
                ObjectBuilder::new()
                    .property(
                        "failed",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .description(Some("why no bundle could be collected")),
                    )
                    .required("failed"),
            )
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for DiagnosticOutcome {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema;
        schemas.push(("DiagnosticBundle".into(), DiagnosticBundle::schema()));
        <DiagnosticBundle as utoipa::ToSchema>::schemas(schemas);
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

    fn bundle_json() -> serde_json::Value {
        json!({
            "collected_at": "2026-03-01T11:59:50Z",
            "pod_statuses": [{
                "name": "web-5d9c",
                "namespace": "shop",
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "container_statuses": [
                    {"name": "migrate", "init": true, "ready": true, "state": "terminated",
                     "reason": "Completed", "exit_code": 0, "restart_count": 0},
                    {"name": "app", "init": false, "ready": false, "state": "waiting",
                     "reason": "CrashLoopBackOff", "message": "back-off 5m0s", "restart_count": 7}
                ]
            }],
            "events": [{
                "type": "Warning", "reason": "BackOff", "message": "Back-off restarting",
                "first_seen": "2026-03-01T11:40:00Z", "last_seen": "2026-03-01T11:59:00Z",
                "count": 31, "object": "Pod/web-5d9c"
            }],
            "log_tails": {"web-5d9c/app": ["panic: boom"]}
        })
    }

    #[test]
    fn bundle_parses_the_documented_shape_and_round_trips() {
        let outcome: DiagnosticOutcome = serde_json::from_value(bundle_json()).unwrap();
        let DiagnosticOutcome::Bundle(bundle) = &outcome else {
            panic!("expected a bundle, got {outcome:?}");
        };
        let pod = &bundle.pod_statuses[0];
        assert_eq!(pod.conditions[0].condition_type, "Ready");
        assert_eq!(pod.container_statuses[0].state, ContainerState::Terminated);
        assert!(pod.container_statuses[0].init);
        assert_eq!(pod.container_statuses[0].exit_code, Some(0));
        assert_eq!(pod.container_statuses[1].state, ContainerState::Waiting);
        assert_eq!(pod.container_statuses[1].restart_count, 7);
        assert_eq!(bundle.events[0].count, 31);
        assert_eq!(bundle.log_tails["web-5d9c/app"], ["panic: boom"]);
        assert!(outcome.validate(now(), &Limits::default()).is_ok());

        assert_eq!(serde_json::to_value(&outcome).unwrap(), bundle_json());
    }

    #[test]
    fn failure_shape_round_trips() {
        let outcome: DiagnosticOutcome =
            serde_json::from_value(json!({"failed": "pods: forbidden"})).unwrap();
        assert_eq!(outcome, DiagnosticOutcome::Failed("pods: forbidden".into()));
        assert_eq!(
            serde_json::to_value(&outcome).unwrap(),
            json!({"failed": "pods: forbidden"})
        );
    }

    #[test]
    fn malformed_bundle_reports_the_missing_field() {
        let err = serde_json::from_value::<DiagnosticOutcome>(json!({"pod_statuses": []}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("collected_at"), "{err}");
        assert!(serde_json::from_value::<DiagnosticOutcome>(json!({"failed": 3})).is_err());
    }

    #[test]
    fn unknown_container_state_is_rejected() {
        let mut value = bundle_json();
        value["pod_statuses"][0]["container_statuses"][1]["state"] = json!("sleeping");
        assert!(serde_json::from_value::<DiagnosticBundle>(value).is_err());
    }

    #[test]
    fn future_bundle_and_blank_failure_are_invalid() {
        let mut bundle: DiagnosticBundle = serde_json::from_value(bundle_json()).unwrap();
        bundle.collected_at = now() + Duration::minutes(10);
        match bundle.validate(now(), &Limits::default()) {
            Err(Error::Invalid(errors)) => assert_eq!(errors[0].field, "collected_at"),
            other => panic!("expected Invalid, got {other:?}"),
        }
        match DiagnosticOutcome::Failed("  ".into()).validate(now(), &Limits::default()) {
            Err(Error::Invalid(errors)) => assert_eq!(errors[0].field, "failed"),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
}
