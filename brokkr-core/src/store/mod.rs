//! The persistence contract.
//!
//! `Store` is the sum of small traits, one per concept, so an adapter can be read (and a
//! test double written) one concern at a time. Every method is async and object safe
//! (`dyn Store` works), and writes are batch-first so a database store can write a batch
//! in one statement.
//!
//! Stores persist; they do not decide policy. Validation, authorization, staleness and
//! what a verdict means are the broker's job. Where atomicity is part
//! of the contract (the diagnostic claim, sequence numbers), the store guarantees it even
//! with several broker processes on one database.
//!
//! The conformance suite (crate `brokkr-testing`, `store_conformance_tests!`) runs every contract
//! written here against any implementation.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Result;
use crate::diagnostics::{ClaimOutcome, DiagnosticRequest};
use crate::health::Health;
use crate::ids::{AgentId, DeploymentObjectId, DiagnosticId, StackId, WorkOrderId};
use crate::model::{
    Agent, ClusterSnapshot, Delivery, DeploymentObject, DeploymentStatusEvent, DiagnosticOutcome,
    HealthRecord, Stack, Target, WorkOrder,
};

/// SHA-256 of a PAK: the only form in which a key is stored.
pub type PakHash = [u8; 32];

/// One page of a listing ordered by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Items per page (callers cap it; stores honour it as given).
    pub limit: usize,
    /// Return items whose id is greater than this one.
    pub after: Option<Uuid>,
}

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, ordered by id.
    pub items: Vec<T>,
    /// Id to pass as `after` for the next page; `None` on the last page.
    pub next: Option<Uuid>,
}

/// A heartbeat as received.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatRecord {
    /// Who sent it.
    pub agent_id: AgentId,
    /// When the broker received it (its clock, not the agent's).
    pub received_at: DateTime<Utc>,
    /// The snapshot it carried (latest only is kept; an empty snapshot keeps the previous).
    pub snapshot: ClusterSnapshot,
    /// End of the agent's last complete health cycle, when it said.
    pub health_checked_at: Option<DateTime<Utc>>,
}

/// What the broker knows of an agent's liveness.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentLiveness {
    /// When the last heartbeat arrived.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// End of the agent's last complete health cycle.
    pub health_checked_at: Option<DateTime<Utc>>,
    /// The latest non-empty cluster snapshot.
    pub snapshot: Option<ClusterSnapshot>,
}

/// Agents, their keys and their liveness.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Stores a new agent and the hash of its key. `Conflict` when the id or the key hash
    /// exists.
    async fn insert_agent(&self, agent: &Agent, pak_hash: &PakHash) -> Result<()>;

    /// The agent, or `None`.
    async fn get_agent(&self, id: AgentId) -> Result<Option<Agent>>;

    /// Agents ordered by id, a page at a time.
    async fn list_agents(&self, page: PageRequest) -> Result<Page<Agent>>;

    /// Deletes the agent and everything that is only its own (key, liveness, targets,
    /// deliveries, work orders, verdicts, diagnostics), keeping the fleet counts right.
    /// Returns whether it existed.
    async fn delete_agent(&self, id: AgentId) -> Result<bool>;

    /// Replaces the agent's key by `pak_hash`, or revokes it (`None`): the old key stops
    /// working at once. `NotFound` for an unknown agent; `Conflict` when the new hash
    /// belongs to another agent.
    async fn replace_pak(&self, id: AgentId, pak_hash: Option<&PakHash>) -> Result<()>;

    /// The agent whose key hashes to `pak_hash` (an indexed lookup, never a scan).
    async fn agent_for_pak(&self, pak_hash: &PakHash) -> Result<Option<AgentId>>;

    /// Records heartbeats of many agents at once. Heartbeats of unknown agents are
    /// skipped; returns how many were recorded. A heartbeat older than the stored one
    /// does not move `last_heartbeat_at` back.
    async fn record_heartbeats(&self, beats: &[HeartbeatRecord]) -> Result<u64>;

    /// The agent's liveness; `None` for an unknown agent.
    async fn liveness(&self, id: AgentId) -> Result<Option<AgentLiveness>>;

    /// The liveness of each of `ids` in one read (listing agents must not cost a round
    /// trip per agent); unknown agents are left out.
    async fn liveness_of(
        &self,
        ids: &[AgentId],
    ) -> Result<std::collections::HashMap<AgentId, AgentLiveness>>;
}

/// An object as an agent reporting on it sees it ([`CatalogStore::reach_of_agent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectReach {
    /// The object's stack.
    pub stack_id: StackId,
    /// Whether the agent targets that stack.
    pub targeted: bool,
}

/// Stacks, deployment objects and which agents target which stacks.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Stores a stack. `Conflict` when the id exists.
    async fn insert_stack(&self, stack: &Stack) -> Result<()>;

    /// The stack, or `None`.
    async fn get_stack(&self, id: StackId) -> Result<Option<Stack>>;

    /// Stores a deployment object, assigning the stack's next `sequence_id` atomically
    /// (the given one is ignored): concurrent inserts get distinct, increasing numbers.
    /// Returns the stored object. `NotFound` when the stack does not exist.
    async fn insert_deployment_object(&self, object: &DeploymentObject)
    -> Result<DeploymentObject>;

    /// The deployment object, or `None`.
    async fn get_deployment_object(
        &self,
        id: DeploymentObjectId,
    ) -> Result<Option<DeploymentObject>>;

    /// What `agent` may report on among `objects`, in one read (ids only: no YAML is
    /// read): for each object that exists, its stack and whether the agent targets that
    /// stack. `None` when the agent does not exist.
    async fn reach_of_agent(
        &self,
        agent: AgentId,
        objects: &[DeploymentObjectId],
    ) -> Result<Option<std::collections::HashMap<DeploymentObjectId, ObjectReach>>>;

    /// The objects with the highest `sequence_id` of each given stack (stacks without
    /// objects are left out).
    async fn latest_objects(&self, stacks: &[StackId]) -> Result<Vec<DeploymentObject>>;

    /// Targets `agent` at `stack`; idempotent (returns whether it was new). `NotFound`
    /// when either does not exist.
    async fn insert_target(&self, target: &Target) -> Result<bool>;

    /// Stacks the agent targets.
    async fn targets_of_agent(&self, agent: AgentId) -> Result<Vec<Target>>;

    /// Agents targeting the stack.
    async fn agents_targeting(&self, stack: StackId) -> Result<Vec<AgentId>>;
}

/// Per agent × deployment object reconcile status.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Applies reconcile outcomes reported by `agent`, in order, in one transaction:
    /// creates the delivery row when missing, never moves `last_attempt_at` back (an
    /// older event than the stored attempt is skipped). Returns how many were applied.
    async fn apply_status_events(
        &self,
        agent: AgentId,
        events: &[DeploymentStatusEvent],
    ) -> Result<u64>;

    /// Creates a pending delivery for each (agent, object) pair that has none yet;
    /// existing deliveries are left as they are. Returns how many were created.
    async fn ensure_deliveries(&self, pairs: &[(AgentId, DeploymentObjectId)]) -> Result<u64>;

    /// Deliveries of one object, one per agent it was delivered to.
    async fn deliveries_of_object(&self, object: DeploymentObjectId) -> Result<Vec<Delivery>>;

    /// Deliveries of one agent, each with its object's `created_at` (for latency).
    async fn deliveries_of_agent(&self, agent: AgentId) -> Result<Vec<(Delivery, DateTime<Utc>)>>;
}

/// Work orders sent to agents.
#[async_trait]
pub trait WorkOrderStore: Send + Sync {
    /// Stores a new work order. `Conflict` when the id exists.
    async fn insert_work_order(&self, order: &WorkOrder) -> Result<()>;

    /// The work order, or `None`.
    async fn get_work_order(&self, id: WorkOrderId) -> Result<Option<WorkOrder>>;

    /// Open (pending or claimed) work orders of the agent, oldest first.
    async fn open_work_orders(&self, agent: AgentId) -> Result<Vec<WorkOrder>>;

    /// Moves a pending work order of `agent` to claimed, atomically. `NotFound` for an
    /// unknown id, `Forbidden` for another agent's order, `Conflict` when not pending.
    async fn claim_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder>;

    /// Moves a claimed work order of `agent` to completed or failed. Same errors as
    /// claiming; `Conflict` when not claimed.
    async fn finish_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        success: bool,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder>;
}

/// What happened to one health record of an upsert batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpsertOutcome {
    /// Written (new, changed, or refreshed because the stored row was old). `previous`
    /// is the status it replaced (`None` for a first verdict): a transition when it
    /// differs from the new one.
    Accepted {
        /// The stored status before this write.
        previous: Option<Health>,
    },
    /// Identical verdict to the stored row, which is recent enough: not rewritten.
    Unchanged,
    /// Older than the stored `checked_at`: never overwrites newer.
    Ignored,
}

/// What [`UpsertOutcome::decide`] needs of a stored verdict: a store may compare
/// summaries by digest instead of reading them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredVerdict {
    /// The stored status.
    pub status: Health,
    /// The stored `checked_at`.
    pub checked_at: DateTime<Utc>,
    /// Whether the stored summary equals the incoming one.
    pub same_summary: bool,
}

impl StoredVerdict {
    /// `stored` as seen by `incoming`.
    pub fn of(stored: &HealthRecord, incoming: &HealthRecord) -> Self {
        Self {
            status: stored.status,
            checked_at: stored.checked_at,
            same_summary: stored.summary == incoming.summary,
        }
    }
}

impl UpsertOutcome {
    /// The contract of [`HealthStore::upsert_health`] for one record against the stored
    /// row, shared by every store so they cannot drift apart.
    pub fn decide(
        stored: Option<StoredVerdict>,
        incoming: &HealthRecord,
        rewrite_before: DateTime<Utc>,
    ) -> Self {
        let Some(old) = stored else {
            return Self::Accepted { previous: None };
        };
        if incoming.checked_at < old.checked_at {
            Self::Ignored
        } else if old.status == incoming.status
            && old.same_summary
            && old.checked_at >= rewrite_before
        {
            Self::Unchanged
        } else {
            Self::Accepted {
                previous: Some(old.status),
            }
        }
    }

    /// Whether the record is written.
    pub fn is_written(self) -> bool {
        matches!(self, Self::Accepted { .. })
    }
}

/// Webhook subscriptions.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a subscription.
    async fn insert_webhook(&self, webhook: &crate::events::Webhook) -> Result<()>;

    /// Every subscription, oldest first, secrets included (for signing).
    async fn list_webhooks(&self) -> Result<Vec<crate::events::Webhook>>;

    /// Removes a subscription; `false` when there was none.
    async fn delete_webhook(&self, id: crate::ids::WebhookId) -> Result<bool>;
}

/// The events outbox: fleet events in one order for every broker replica.
///
/// Health transitions are written by [`HealthStore::upsert_health`] itself, in the same
/// write as the verdicts (see [`FleetEvent::health_transition`](crate::events::FleetEvent::health_transition)):
/// an event exists exactly when its verdict was stored. Sequence numbers increase in
/// commit order, so a reader that has seen `n` never later finds an event below `n`.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Events after `after`, oldest first, at most `limit`.
    async fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::events::StoredEvent>>;

    /// The newest sequence number (0 when there is none).
    async fn last_event_seq(&self) -> Result<u64>;

    /// Tells the store that `agent` was `state` as observed at `at`. The first
    /// announcement for an agent only records it; a later one that differs from the
    /// recorded state records it and writes an `AgentStalenessChanged` event, returned.
    /// Announcing the same change from several replicas at once writes one event; an
    /// observation older than the recorded one (a slow replica) is ignored. Unknown
    /// agents: nothing.
    async fn announce_staleness(
        &self,
        agent: AgentId,
        state: crate::staleness::Staleness,
        at: DateTime<Utc>,
    ) -> Result<Option<crate::events::StoredEvent>>;

    /// Claims the delivery of event `seq` to `webhook`: `true` for exactly one caller,
    /// whichever replica asks first.
    async fn claim_event_delivery(
        &self,
        webhook: crate::ids::WebhookId,
        seq: u64,
        at: DateTime<Utc>,
    ) -> Result<bool>;

    /// Deletes events created before `before` (and their delivery claims); how many.
    async fn delete_events_before(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// The latest health verdict per agent × deployment object.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Upserts verdicts keyed by (agent, deployment object). Per record, in input order:
    /// `Ignored` when older than the stored `checked_at`; `Unchanged` when status and
    /// summary equal the stored ones and the stored `checked_at` is not before
    /// `rewrite_before`; else `Accepted` and written. Each record is decided and written
    /// atomically with its count and event; a store may write a batch in more than one
    /// transaction, so after an error part of it may be written (writing it again is
    /// harmless). Records must have distinct keys (the broker rejects duplicate
    /// batches).
    async fn upsert_health(
        &self,
        records: &[HealthRecord],
        rewrite_before: DateTime<Utc>,
    ) -> Result<Vec<UpsertOutcome>>;

    /// Verdicts of one object, one per agent.
    async fn health_of_object(&self, object: DeploymentObjectId) -> Result<Vec<HealthRecord>>;

    /// Verdicts of many objects.
    async fn health_of_objects(&self, objects: &[DeploymentObjectId]) -> Result<Vec<HealthRecord>>;

    /// Verdicts reported by one agent.
    async fn health_of_agent(&self, agent: AgentId) -> Result<Vec<HealthRecord>>;
}

/// Whether a posted diagnostics result was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOutcome {
    /// Stored now; the request moved to completed or failed.
    Stored,
    /// The same result was stored before (a retry): nothing changed.
    AlreadyStored,
}

/// Diagnostics requests and their results.
#[async_trait]
pub trait DiagnosticStore: Send + Sync {
    /// Stores new requests (one per agent). `Conflict` when an id exists.
    async fn insert_diagnostic_requests(&self, requests: &[DiagnosticRequest]) -> Result<()>;

    /// The request and its result, if any.
    async fn get_diagnostic(
        &self,
        id: DiagnosticId,
    ) -> Result<Option<(DiagnosticRequest, Option<DiagnosticOutcome>)>>;

    /// Requests of `agent` that are pending and claimable at `now`, oldest first.
    async fn pending_diagnostics(
        &self,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DiagnosticRequest>>;

    /// The claim, as one atomic conditional transition with the semantics of
    /// [`DiagnosticRequest::claim`]: only pending, only the owning agent, only before the
    /// claim deadline; among concurrent claimers exactly one wins, also across broker
    /// processes. `NotFound` for an unknown id.
    async fn claim_diagnostic(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(DiagnosticRequest, ClaimOutcome)>;

    /// Stores the claimer's one result and finishes the request, atomically. A retry
    /// with an identical result returns [`ResultOutcome::AlreadyStored`]; a different
    /// second result is a `Conflict`; `Gone` after expiry; `Forbidden` for another agent.
    async fn store_diagnostic_result(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        outcome: &DiagnosticOutcome,
        now: DateTime<Utc>,
    ) -> Result<ResultOutcome>;

    /// Deletes requests (and results) whose retention is over at `now`. Idempotent and
    /// safe to run on every replica at once: each row is deleted once. Returns how many
    /// this call deleted.
    async fn delete_expired_diagnostics(&self, now: DateTime<Utc>) -> Result<u64>;

    /// Requests by the status a reader sees at `now`: a request past its deadline counts
    /// as expired even before cleanup records it. Read-only.
    async fn diagnostic_counts(&self, now: DateTime<Utc>) -> Result<DiagnosticCounts>;
}

/// How many diagnostics requests are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosticCounts {
    /// Waiting to be claimed.
    pub pending: u64,
    /// Claimed, not answered yet.
    pub claimed: u64,
    /// Answered with a bundle.
    pub completed: u64,
    /// Answered with a failure.
    pub failed: u64,
    /// Past a deadline without an answer.
    pub expired: u64,
}

impl DiagnosticCounts {
    /// Counts one request in `status`.
    pub fn add(&mut self, status: crate::diagnostics::DiagnosticStatus) {
        use crate::diagnostics::DiagnosticStatus as S;
        let slot = match status {
            S::Pending => &mut self.pending,
            S::Claimed => &mut self.claimed,
            S::Completed => &mut self.completed,
            S::Failed => &mut self.failed,
            S::Expired => &mut self.expired,
        };
        *slot += 1;
    }
}

/// Counts for the fleet summary, maintained as writes happen rather than computed by
/// scanning every health row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FleetRollup {
    /// Registered agents.
    pub agents: u64,
    /// Agents whose last heartbeat is at or after `stale_before`.
    pub fresh: u64,
    /// Agents whose last heartbeat is before `stale_before` but at or after `lost_before`.
    pub stale: u64,
    /// Agents never heard of or heard of before `lost_before`.
    pub lost: u64,
    /// Stored health rows by status.
    pub healthy: u64,
    /// Stored health rows by status.
    pub unknown: u64,
    /// Stored health rows by status.
    pub degraded: u64,
    /// Stored health rows by status.
    pub failing: u64,
    /// Sum of the latest snapshots' CPU capacity (millicores).
    pub cpu_capacity: i64,
    /// Sum of the latest snapshots' available CPU (millicores).
    pub cpu_available: i64,
    /// Sum of the latest snapshots' memory capacity (bytes).
    pub memory_capacity: i64,
    /// Sum of the latest snapshots' available memory (bytes).
    pub memory_available: i64,
    /// Sum of node counts.
    pub nodes: i64,
    /// Sum of ready node counts.
    pub nodes_ready: i64,
    /// Deliveries not yet acknowledged.
    pub queue_depth: u64,
    /// Work orders pending or claimed.
    pub work_order_backlog: u64,
}

impl FleetRollup {
    /// Adds one health row of `status` to the counts.
    pub fn count_health(&mut self, status: Health, delta: i64) {
        let slot = match status {
            Health::Healthy => &mut self.healthy,
            Health::Unknown => &mut self.unknown,
            Health::Degraded => &mut self.degraded,
            Health::Failing => &mut self.failing,
        };
        *slot = slot.saturating_add_signed(delta);
    }
}

/// The fleet-wide rollup.
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Counts and sums over the fleet; staleness relative to the two cut-offs.
    async fn fleet_rollup(
        &self,
        stale_before: DateTime<Utc>,
        lost_before: DateTime<Utc>,
    ) -> Result<FleetRollup>;

    /// Whether the store is reachable and ready (migrations applied).
    async fn ping(&self) -> Result<()>;
}

/// Everything the broker persists.
pub trait Store:
    WebhookStore
    + EventStore
    + AgentStore
    + CatalogStore
    + DeliveryStore
    + WorkOrderStore
    + HealthStore
    + DiagnosticStore
    + FleetStore
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: WebhookStore
        + EventStore
        + AgentStore
        + CatalogStore
        + DeliveryStore
        + WorkOrderStore
        + HealthStore
        + DiagnosticStore
        + FleetStore
        + Send
        + Sync
{
}

mod metered;
pub use metered::{MeteredStore, StoreObserver};
