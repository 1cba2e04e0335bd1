//! What happened when an agent applied a deployment object (deliveries and the status
//! events that update them), and work orders: one-off jobs queued for one agent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Limits, check_client_time, check_name, check_opt_len};
use crate::error::{Result, Violations};
use crate::ids::{AgentId, DeploymentObjectId, WorkOrderId};

/// Where one deployment object stands on one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// The object is waiting for the agent to pick it up.
    Pending,
    /// The agent has received the object but not applied it yet.
    Acknowledged,
    /// The agent applied the object successfully.
    Applied,
    /// The agent's last attempt to apply the object failed.
    Failed,
}

/// Why an apply attempt failed, in categories an operator can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// The manifests do not parse or the API server rejected them as invalid.
    InvalidManifest,
    /// The agent's service account may not perform the change.
    Forbidden,
    /// The change conflicted with the live object (e.g. a field manager conflict).
    Conflict,
    /// The API server did not answer in time.
    Timeout,
    /// The API server could not be reached.
    ApiUnavailable,
    /// Anything else; `failure_message` has the details.
    Other,
}

/// The reconcile status of one deployment object on one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// The agent the object is delivered to.
    pub agent_id: AgentId,
    /// The delivered object.
    pub deployment_object_id: DeploymentObjectId,
    /// Current state.
    pub state: DeliveryState,
    /// When the agent first acknowledged the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When the agent last applied the object successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<DateTime<Utc>>,
    /// How many times the agent has retried applying the object.
    #[serde(default)]
    pub retry_count: u32,
    /// When the agent last attempted to apply the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Category of the last failure, when the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<FailureReason>,
    /// Details of the last failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
    /// How long the last reconcile took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciliation_duration_ms: Option<u64>,
}

impl Delivery {
    /// A delivery that the agent has not picked up yet.
    pub fn pending(agent_id: AgentId, deployment_object_id: DeploymentObjectId) -> Self {
        Self {
            agent_id,
            deployment_object_id,
            state: DeliveryState::Pending,
            acknowledged_at: None,
            applied_at: None,
            retry_count: 0,
            last_attempt_at: None,
            failure_reason: None,
            failure_message: None,
            reconciliation_duration_ms: None,
        }
    }
}

impl Delivery {
    /// Applies one reconcile outcome the agent reported; returns whether anything changed.
    ///
    /// Outcomes older than the last recorded attempt are skipped, so retried or
    /// reordered reports never move the status back. An acknowledgement does not undo an
    /// apply or a failure of the same attempt history; `acknowledged_at` is the first
    /// time the agent took the object in hand, whatever the outcome.
    pub fn apply(&mut self, event: &DeploymentStatusEvent) -> bool {
        if self
            .last_attempt_at
            .is_some_and(|last| event.attempted_at < last)
        {
            return false;
        }
        let at = event.attempted_at;
        self.last_attempt_at = Some(at);
        self.retry_count = event.retry_count;
        self.reconciliation_duration_ms = event.reconciliation_duration_ms;
        self.acknowledged_at.get_or_insert(at);
        match event.outcome {
            ReconcileOutcome::Acknowledged => {
                if self.state == DeliveryState::Pending {
                    self.state = DeliveryState::Acknowledged;
                }
            }
            ReconcileOutcome::Applied => {
                self.state = DeliveryState::Applied;
                self.applied_at = Some(at);
                self.failure_reason = None;
                self.failure_message = None;
            }
            ReconcileOutcome::Failed => {
                self.state = DeliveryState::Failed;
                self.failure_reason = Some(event.failure_reason.unwrap_or(FailureReason::Other));
                self.failure_message.clone_from(&event.failure_message);
            }
        }
        true
    }
}

/// The result an agent reports for one reconcile attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReconcileOutcome {
    /// The agent received the object.
    Acknowledged,
    /// The agent applied the object.
    Applied,
    /// The attempt failed.
    Failed,
}

/// One reconcile attempt reported by an agent (an item of `POST .../deployment-status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentStatusEvent {
    /// The object the attempt was about.
    pub deployment_object_id: DeploymentObjectId,
    /// What happened.
    pub outcome: ReconcileOutcome,
    /// When the attempt happened (agent clock).
    pub attempted_at: DateTime<Utc>,
    /// How many retries preceded this attempt.
    #[serde(default)]
    pub retry_count: u32,
    /// How long the attempt took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciliation_duration_ms: Option<u64>,
    /// Failure category; only meaningful for a failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<FailureReason>,
    /// Failure details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_message: Option<String>,
}

impl DeploymentStatusEvent {
    /// Makes the failure message, which quotes the cluster, safe to keep: NUL replaced,
    /// secrets redacted ([`crate::cluster_text`]).
    pub fn scrub_cluster_text(&mut self) {
        crate::cluster_text::scrub_message_opt(&mut self.failure_message);
    }

    /// Checks that a failure reason comes only with a failed outcome, that the attempt is
    /// not in the future beyond the clock skew, and that the message is bounded.
    pub fn validate(&self, now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        let mut v = Violations::new();
        v.check(
            self.failure_reason.is_some() && self.outcome != ReconcileOutcome::Failed,
            "failure_reason",
            "only allowed when outcome is failed",
        );
        check_client_time(&mut v, "attempted_at", Some(self.attempted_at), now, limits);
        // The documented ranges (int32, int64), which every store can hold.
        v.check(
            i32::try_from(self.retry_count).is_err(),
            "retry_count",
            "must be at most 2147483647",
        );
        v.check(
            self.reconciliation_duration_ms
                .is_some_and(|ms| i64::try_from(ms).is_err()),
            "reconciliation_duration_ms",
            "must be at most 9223372036854775807",
        );
        check_opt_len(
            &mut v,
            "failure_message",
            self.failure_message.as_deref(),
            limits.max_message_len,
        );
        v.finish()
    }
}

/// Lifecycle of a work order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WorkOrderStatus {
    /// Waiting for the agent to claim it.
    Pending,
    /// The agent is working on it.
    Claimed,
    /// Done.
    Completed,
    /// The agent gave up on it.
    Failed,
}

impl WorkOrderStatus {
    /// Whether the order still counts against the agent's backlog.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Claimed)
    }
}

/// A one-off job for one agent; `kind` selects the handler, `payload` is its input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkOrder {
    /// The order's id.
    pub id: WorkOrderId,
    /// The agent that should run it.
    pub agent_id: AgentId,
    /// Handler name, e.g. `build` or `rotate-certs`.
    pub kind: String,
    /// Handler input; opaque to the broker.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    /// Current status.
    pub status: WorkOrderStatus,
    /// When the order was created.
    pub created_at: DateTime<Utc>,
    /// When the agent claimed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<DateTime<Utc>>,
    /// When it completed or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
}

/// Creation payload for a work order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewWorkOrder {
    /// The agent that should run it.
    pub agent_id: AgentId,
    /// Handler name; must not be blank.
    pub kind: String,
    /// Handler input.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
}

impl NewWorkOrder {
    /// Checks that `kind` is a non-blank, bounded name and the payload holds no NUL.
    pub fn validate(&self, _now: DateTime<Utc>, limits: &Limits) -> Result<()> {
        let mut v = Violations::new();
        check_name(&mut v, "kind", &self.kind, limits);
        // The payload is the client's own: refused, not changed (stores differ on NUL).
        v.check(
            crate::cluster_text::json_has_nul(&self.payload),
            "payload",
            "must not contain NUL characters",
        );
        v.finish()
    }

    /// The pending work order this payload creates, with a fresh id.
    pub fn into_work_order(self, now: DateTime<Utc>) -> WorkOrder {
        WorkOrder {
            id: WorkOrderId::new(),
            agent_id: self.agent_id,
            kind: self.kind,
            payload: self.payload,
            status: WorkOrderStatus::Pending,
            created_at: now,
            claimed_at: None,
            completed_at: None,
        }
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

    fn event(outcome: ReconcileOutcome) -> DeploymentStatusEvent {
        DeploymentStatusEvent {
            deployment_object_id: DeploymentObjectId::new(),
            outcome,
            attempted_at: now(),
            retry_count: 0,
            reconciliation_duration_ms: Some(120),
            failure_reason: None,
            failure_message: None,
        }
    }

    #[test]
    fn status_event_parses_the_documented_shape() {
        let id = DeploymentObjectId::new();
        let parsed: DeploymentStatusEvent = serde_json::from_value(json!({
            "deployment_object_id": id,
            "outcome": "failed",
            "attempted_at": "2026-03-01T11:59:00Z",
            "retry_count": 2,
            "reconciliation_duration_ms": 830,
            "failure_reason": "api_unavailable",
            "failure_message": "connection refused",
            "future_field": true
        }))
        .unwrap();
        assert_eq!(parsed.deployment_object_id, id);
        assert_eq!(parsed.outcome, ReconcileOutcome::Failed);
        assert_eq!(parsed.retry_count, 2);
        assert_eq!(parsed.failure_reason, Some(FailureReason::ApiUnavailable));
        assert!(parsed.validate(now(), &Limits::default()).is_ok());
    }

    #[test]
    fn unknown_outcome_is_a_parse_error() {
        let result = serde_json::from_value::<DeploymentStatusEvent>(json!({
            "deployment_object_id": DeploymentObjectId::new(),
            "outcome": "exploded",
            "attempted_at": "2026-03-01T11:59:00Z",
        }));
        assert!(result.is_err());
    }

    #[test]
    fn failure_reason_requires_failed_outcome() {
        let mut applied = event(ReconcileOutcome::Applied);
        applied.failure_reason = Some(FailureReason::Timeout);
        assert_eq!(
            invalid_fields(applied.validate(now(), &Limits::default())),
            ["failure_reason"]
        );
        let mut failed = event(ReconcileOutcome::Failed);
        failed.failure_reason = Some(FailureReason::Timeout);
        assert!(failed.validate(now(), &Limits::default()).is_ok());
    }

    #[test]
    fn future_attempt_and_long_message_are_both_reported() {
        let mut e = event(ReconcileOutcome::Failed);
        e.attempted_at = now() + Duration::minutes(5);
        e.failure_message = Some("x".repeat(4097));
        assert_eq!(
            invalid_fields(e.validate(now(), &Limits::default())),
            ["attempted_at", "failure_message"]
        );
    }

    #[test]
    fn delivery_omits_absent_fields_and_reads_them_back() {
        let d = Delivery::pending(AgentId::new(), DeploymentObjectId::new());
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["state"], "pending");
        assert_eq!(json["retry_count"], 0);
        assert!(json.get("acknowledged_at").is_none());
        assert_eq!(serde_json::from_value::<Delivery>(json).unwrap(), d);
    }

    #[test]
    fn failure_reasons_use_snake_case() {
        assert_eq!(
            serde_json::to_value(FailureReason::InvalidManifest).unwrap(),
            "invalid_manifest"
        );
        assert_eq!(
            serde_json::to_value(FailureReason::ApiUnavailable).unwrap(),
            "api_unavailable"
        );
    }

    #[test]
    fn open_work_orders_are_pending_or_claimed() {
        assert!(WorkOrderStatus::Pending.is_open());
        assert!(WorkOrderStatus::Claimed.is_open());
        assert!(!WorkOrderStatus::Completed.is_open());
        assert!(!WorkOrderStatus::Failed.is_open());
    }

    #[test]
    fn new_work_order_starts_pending_and_needs_a_kind() {
        let agent = AgentId::new();
        let blank = NewWorkOrder {
            agent_id: agent,
            kind: " ".into(),
            payload: json!(null),
        };
        assert_eq!(
            invalid_fields(blank.validate(now(), &Limits::default())),
            ["kind"]
        );
        let order = NewWorkOrder {
            agent_id: agent,
            kind: "rotate-certs".into(),
            payload: json!({"secret": "tls"}),
        }
        .into_work_order(now());
        assert_eq!(order.status, WorkOrderStatus::Pending);
        assert_eq!(order.payload["secret"], "tls");
        assert_eq!(order.created_at, now());
        assert_eq!(order.claimed_at, None);
    }
}
