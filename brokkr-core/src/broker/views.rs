//! What the broker answers: the views and results of its calls.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::Pak;
use crate::diagnostics::DiagnosticRequest;
use crate::health::Health;
use crate::ids::{AgentId, DeploymentObjectId, StackId};
use crate::model::{
    Agent, ClusterSnapshot, Delivery, DeploymentObject, DiagnosticOutcome, FailureReason,
    HealthSummary,
};
use crate::staleness::Staleness;

/// A registered agent and its key, shown this once.
#[derive(Debug, Clone)]
pub struct RegisteredAgent {
    /// The agent.
    pub agent: Agent,
    /// Its key (only its hash is stored).
    pub pak: Pak,
}

/// An agent with its liveness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentView {
    /// The agent.
    #[serde(flatten)]
    pub agent: Agent,
    /// Fresh, stale or lost.
    pub staleness: Staleness,
    /// When the last heartbeat arrived.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
}

/// A deployment object with its per-agent reconcile status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentObjectView {
    /// The object.
    #[serde(flatten)]
    pub object: DeploymentObject,
    /// One delivery per agent it goes to.
    pub deliveries: Vec<Delivery>,
}

/// Why one item of a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rejected {
    /// The item's deployment object id.
    pub id: DeploymentObjectId,
    /// Why.
    pub reason: String,
}

/// Outcome of a health report batch; `accepted + unchanged + ignored + rejected` is the
/// batch length.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthReportResult {
    /// Rows written.
    pub accepted: u64,
    /// Identical to the stored row and recent: not rewritten.
    pub unchanged: u64,
    /// Older than the stored verdict: never overwrites newer.
    pub ignored: u64,
    /// Items refused, with reasons.
    pub rejected: Vec<Rejected>,
}

/// Outcome of a deployment-status batch.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusReportResult {
    /// Events accepted (stale ones among them change nothing).
    pub accepted: u64,
    /// Items refused, with reasons.
    pub rejected: Vec<Rejected>,
}

/// One agent's verdict on one object, as read back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentHealthEntry {
    /// The agent.
    pub agent_id: AgentId,
    /// Last known status (`unknown` when the agent never reported).
    pub status: Health,
    /// Last reported summary.
    pub summary: Option<HealthSummary>,
    /// When the agent checked.
    pub checked_at: Option<DateTime<Utc>>,
    /// The verdict can no longer be trusted to be current.
    pub stale: bool,
    /// Since when.
    pub stale_since: Option<DateTime<Utc>>,
}

/// Health of one deployment object across agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ObjectHealth {
    /// The object.
    pub deployment_object_id: DeploymentObjectId,
    /// Worst last-known status across agents.
    pub status: Health,
    /// Entries that are stale.
    pub stale_count: u64,
    /// Per agent.
    pub agents: Vec<AgentHealthEntry>,
}

/// Health of a stack: its effective (latest) deployment object across agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StackHealth {
    /// The stack.
    pub stack_id: StackId,
    /// Worst status across objects and agents (`unknown` for a stack without objects).
    pub overall_status: Health,
    /// The effective objects.
    pub deployment_objects: Vec<StackObjectHealth>,
}

/// One object inside [`StackHealth`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StackObjectHealth {
    /// The object.
    pub id: DeploymentObjectId,
    /// Worst status across agents.
    pub status: Health,
    /// Entries that are stale.
    pub stale_count: u64,
    /// Per agent.
    pub agents: Vec<AgentHealthEntry>,
}

/// Every verdict of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentHealth {
    /// The agent.
    pub agent_id: AgentId,
    /// Per object.
    pub deployment_objects: Vec<AgentObjectHealth>,
}

/// One object inside [`AgentHealth`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentObjectHealth {
    /// The object.
    pub id: DeploymentObjectId,
    /// The verdict.
    #[serde(flatten)]
    pub entry: AgentHealthEntry,
}

/// Reconcile figures of one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReconcileStats {
    /// Objects whose last attempt failed.
    pub objects_failing: u64,
    /// Sum of retry counts.
    pub retry_total: u64,
    /// Reason of the most recent failed attempt.
    pub last_failure_reason: Option<FailureReason>,
}

/// Liveness, latest snapshot and reconcile figures of one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperationalStatus {
    /// The agent.
    pub agent_id: AgentId,
    /// Fresh, stale or lost.
    pub staleness: Staleness,
    /// When it became stale (or lost), if it is.
    pub stale_since: Option<DateTime<Utc>>,
    /// Last heartbeat.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// End of its last complete health cycle.
    pub health_checked_at: Option<DateTime<Utc>>,
    /// Latest cluster snapshot.
    pub snapshot: Option<ClusterSnapshot>,
    /// Reconcile figures.
    pub reconcile: ReconcileStats,
}

/// The fleet at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetSummary {
    /// Agents by staleness.
    pub agents: FleetAgents,
    /// Stored verdicts by status.
    pub health: FleetHealth,
    /// Sums over the latest snapshots.
    pub capacity: FleetCapacity,
    /// Queue totals.
    pub queue: FleetQueue,
    /// When this was computed.
    pub generated_at: DateTime<Utc>,
}

/// Agents by staleness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetAgents {
    /// All registered.
    pub total: u64,
    /// Fresh.
    pub fresh: u64,
    /// Stale.
    pub stale: u64,
    /// Lost (or never heard of).
    pub lost: u64,
}

/// Verdicts by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetHealth {
    /// Healthy.
    pub healthy: u64,
    /// Degraded.
    pub degraded: u64,
    /// Failing.
    pub failing: u64,
    /// Unknown.
    pub unknown: u64,
}

/// Capacity sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetCapacity {
    /// Clusters the figures cover: agents not lost that sent a snapshot (a lost
    /// agent's last snapshot is not capacity anyone has).
    pub clusters: u64,
    /// Millicores.
    pub cpu_capacity: i64,
    /// Millicores.
    pub cpu_available: i64,
    /// Bytes.
    pub memory_capacity: i64,
    /// Bytes.
    pub memory_available: i64,
    /// Nodes.
    pub nodes: i64,
    /// Ready nodes.
    pub nodes_ready: i64,
}

/// Queue totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FleetQueue {
    /// Deliveries not yet acknowledged.
    pub depth_total: u64,
    /// Work orders pending or claimed.
    pub backlog_total: u64,
}

/// A diagnostics request with its result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosticView {
    /// The request (status as of now: an overdue request reads `expired`).
    #[serde(flatten)]
    pub request: DiagnosticRequest,
    /// The result, once posted.
    pub result: Option<DiagnosticOutcome>,
}
