//! `Broker`: the service API that the HTTP layer and embedding hosts call.
//!
//! The broker owns policy: it authenticates keys, authorizes every call, validates
//! input, reads the time from its [`Clock`], and turns stored rows into answers
//! (staleness, worst-of rollups, queue figures). Stores only persist. A `Broker` is an
//! `Arc` inside: cheap to clone and safe to share across tasks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::auth::{Pak, Principal, Role, constant_time_eq, hash_pak, looks_like};
use crate::backlog::{BacklogPolicy, QueueStatus};
use crate::clock::Clock;
use crate::diagnostics::{DiagnosticPolicy, DiagnosticRequest};
use crate::events::{NewWebhook, StoredEvent, Webhook};
use crate::health::Health;
use crate::ids::{AgentId, DeploymentObjectId, DiagnosticId, StackId, WebhookId, WorkOrderId};
use crate::model::{
    Agent, ClusterSnapshot, Delivery, DeliveryState, DeploymentObject, DeploymentStatusEvent,
    DiagnosticOutcome, FailureReason, HealthRecord, HealthReport, HealthSummary, Heartbeat, Limits,
    NewAgent, NewDeploymentObject, NewStack, NewTarget, NewWorkOrder, Stack, Target, WorkOrder,
};
use crate::staleness::{Staleness, StalenessPolicy};
use crate::store::{
    AgentLiveness, DiagnosticCounts, HeartbeatRecord, Page, PageRequest, PakHash, ResultOutcome,
    Store, UpsertOutcome,
};
use crate::{Error, Result};

/// How long fleet events stay in the outbox: a subscriber away longer than this gets a
/// gap notice instead of what it missed.
pub const EVENT_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// Policies of a broker. Defaults follow the design.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// Heartbeat age → fresh / stale / lost.
    pub staleness: StalenessPolicy,
    /// Claim deadline and retention of diagnostics.
    pub diagnostics: DiagnosticPolicy,
    /// Window of delivery latency percentiles.
    pub backlog: BacklogPolicy,
    /// Input limits.
    pub limits: Limits,
    /// How often agents re-send unchanged verdicts (5 min). An unchanged verdict is
    /// rewritten when the stored row is older than half of this.
    pub refresh_interval: Duration,
    /// An agent whose last complete health cycle is older than this (3 × the 60 s
    /// check interval) has stopped checking: its verdicts read as stale.
    pub health_ttl: Duration,
    /// Longest the fleet summary is served from a snapshot (5 s): computing it counts
    /// agents by heartbeat age and sums their capacity, a scan over every agent, so a
    /// busy dashboard or scraper must not run it per request. Zero: computed per call.
    pub fleet_snapshot_max_age: Duration,
    /// How long a verified agent key is trusted without asking the store again (30 s:
    /// an agent calls at least every 30 s by default, so most of its requests skip the
    /// key lookup).
    /// Rotating, revoking or deleting through this broker takes effect at once here;
    /// another replica sharing the store keeps accepting the old key for at most this
    /// long. Zero: every request looks its key up.
    pub key_cache_ttl: Duration,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            staleness: StalenessPolicy::default(),
            diagnostics: DiagnosticPolicy::default(),
            backlog: BacklogPolicy::default(),
            limits: Limits::default(),
            refresh_interval: Duration::minutes(5),
            health_ttl: Duration::minutes(3),
            fleet_snapshot_max_age: Duration::seconds(5),
            key_cache_ttl: Duration::seconds(30),
        }
    }
}

impl BrokerConfig {
    /// Rejects inconsistent settings.
    pub fn validate(&self) -> Result<()> {
        let mut v = crate::error::Violations::new();
        v.nest("staleness", self.staleness.validate());
        v.nest("diagnostics", self.diagnostics.validate());
        v.check(
            self.refresh_interval <= Duration::zero(),
            "refresh_interval",
            "must be positive",
        );
        v.check(
            self.health_ttl <= Duration::zero(),
            "health_ttl",
            "must be positive",
        );
        v.check(
            self.fleet_snapshot_max_age < Duration::zero(),
            "fleet_snapshot_max_age",
            "must not be negative",
        );
        v.check(
            self.key_cache_ttl < Duration::zero(),
            "key_cache_ttl",
            "must not be negative",
        );
        v.finish()
    }
}

/// The last fleet summary computed, and which computation it came from.
#[derive(Debug, Default)]
struct FleetSnapshot {
    ticket: u64,
    summary: Option<FleetSummary>,
}

/// The broker service.
pub struct Broker<S: ?Sized> {
    inner: Arc<Inner<S>>,
}

struct Inner<S: ?Sized> {
    config: BrokerConfig,
    clock: Arc<dyn Clock>,
    admin: PakHash,
    store: Arc<S>,
    /// The last fleet summary computed ([`Broker::fleet_summary`]).
    fleet_snapshot: std::sync::Mutex<FleetSnapshot>,
    /// Numbers the fleet summary computations in the order they started.
    fleet_tickets: std::sync::atomic::AtomicU64,
    /// Agent keys verified recently.
    keys: crate::key_cache::KeyCache,
}

impl<S: ?Sized> Clone for Broker<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

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

impl<S: Store + ?Sized> Broker<S> {
    /// A broker over `store`, reading time from `clock`, accepting the admin key whose
    /// hash is `admin_pak_hash`.
    pub fn new(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        admin_pak_hash: PakHash,
        config: BrokerConfig,
    ) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                clock,
                admin: admin_pak_hash,
                store,
                fleet_snapshot: std::sync::Mutex::default(),
                fleet_tickets: std::sync::atomic::AtomicU64::new(0),
                keys: crate::key_cache::KeyCache::default(),
            }),
        })
    }

    /// The store (for hosts that need direct access, and for readiness checks).
    pub fn store(&self) -> &Arc<S> {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.config
    }

    /// The time by the broker's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    fn store_ref(&self) -> &S {
        &self.inner.store
    }

    /// Who presents `key`: the admin, an agent, or nobody (`Unauthorized`).
    pub async fn authenticate(&self, key: &str) -> Result<Principal> {
        if looks_like(key, Role::Admin) {
            if constant_time_eq(&hash_pak(key), &self.inner.admin) {
                return Ok(Principal::Admin);
            }
        } else if looks_like(key, Role::Agent) {
            let hash = hash_pak(key);
            let (now, ttl) = (self.now(), self.inner.config.key_cache_ttl);
            if let Some(agent) = self.inner.keys.get(&hash, now, ttl) {
                return Ok(Principal::Agent(agent));
            }
            let generation = self.inner.keys.generation();
            if let Some(agent) = self.store_ref().agent_for_pak(&hash).await? {
                if ttl > Duration::zero() {
                    self.inner.keys.put(hash, agent, now, ttl, generation);
                }
                return Ok(Principal::Agent(agent));
            }
        }
        Err(Error::Unauthorized)
    }

    async fn existing_agent(&self, id: AgentId) -> Result<Agent> {
        self.store_ref()
            .get_agent(id)
            .await?
            .ok_or_else(|| Error::not_found("agent", id))
    }

    async fn existing_object(&self, id: DeploymentObjectId) -> Result<DeploymentObject> {
        self.store_ref()
            .get_deployment_object(id)
            .await?
            .ok_or_else(|| Error::not_found("deployment object", id))
    }

    // ------------------------------------------------------------ catalog

    /// Registers an agent and issues its key (admin).
    pub async fn register_agent(&self, who: &Principal, new: NewAgent) -> Result<RegisteredAgent> {
        who.require_admin()?;
        let now = self.now();
        new.validate(now, &self.inner.config.limits)?;
        let pak = Pak::generate(Role::Agent)?;
        let agent = new.into_agent(now);
        self.store_ref().insert_agent(&agent, &pak.hash()).await?;
        Ok(RegisteredAgent { agent, pak })
    }

    /// Deletes an agent and everything only it had (admin).
    pub async fn delete_agent(&self, who: &Principal, id: AgentId) -> Result<()> {
        who.require_admin()?;
        let deleted = self.store_ref().delete_agent(id).await;
        // Whatever the store answered: an error may come after the commit.
        self.inner.keys.forget_agent(id);
        if deleted? {
            Ok(())
        } else {
            Err(Error::not_found("agent", id))
        }
    }

    /// Issues a new key for the agent; the old one stops working at once (admin or the
    /// agent itself).
    pub async fn rotate_pak(&self, who: &Principal, id: AgentId) -> Result<Pak> {
        who.require_admin_or(id)?;
        let pak = Pak::generate(Role::Agent)?;
        let replaced = self.store_ref().replace_pak(id, Some(&pak.hash())).await;
        // After the store call, whatever it answered (an error may come after the
        // commit); a lookup of the old key under way cannot put it back, the
        // generation moved on.
        self.inner.keys.forget_agent(id);
        replaced?;
        Ok(pak)
    }

    /// Revokes the agent's key: it cannot authenticate until a new key is issued (admin).
    pub async fn revoke_pak(&self, who: &Principal, id: AgentId) -> Result<()> {
        who.require_admin()?;
        let revoked = self.store_ref().replace_pak(id, None).await;
        self.inner.keys.forget_agent(id);
        revoked
    }

    fn view(&self, agent: Agent, live: Option<&AgentLiveness>, now: DateTime<Utc>) -> AgentView {
        let last = live.and_then(|l| l.last_heartbeat_at);
        AgentView {
            agent,
            staleness: self.inner.config.staleness.classify(last, now),
            last_heartbeat_at: last,
        }
    }

    /// One agent with its liveness (admin).
    pub async fn get_agent(&self, who: &Principal, id: AgentId) -> Result<AgentView> {
        who.require_admin()?;
        let agent = self.existing_agent(id).await?;
        let live = self.store_ref().liveness(id).await?;
        Ok(self.view(agent, live.as_ref(), self.now()))
    }

    /// A page of agents (admin), optionally only those in `staleness`. A page shorter
    /// than `limit` is the last one.
    pub async fn list_agents(
        &self,
        who: &Principal,
        page: PageRequest,
        staleness: Option<Staleness>,
    ) -> Result<Page<AgentView>> {
        who.require_admin()?;
        let now = self.now();
        // With a filter, keep reading store pages until the page is full or the agents
        // run out, so a short page always means the end (the cursor stays exact).
        let mut items = Vec::with_capacity(page.limit.min(500));
        let mut after = page.after;
        loop {
            let batch = self
                .store_ref()
                .list_agents(PageRequest {
                    limit: page.limit,
                    after,
                })
                .await?;
            let exhausted = batch.next.is_none();
            let ids: Vec<AgentId> = batch.items.iter().map(|a| a.id).collect();
            let liveness = self.store_ref().liveness_of(&ids).await?;
            for agent in batch.items {
                if items.len() == page.limit {
                    return Ok(Page {
                        next: items.last().map(|v: &AgentView| v.agent.id.0),
                        items,
                    });
                }
                after = Some(agent.id.0);
                let live = liveness.get(&agent.id);
                let view = self.view(agent, live, now);
                if staleness.is_none_or(|s| s == view.staleness) {
                    items.push(view);
                }
            }
            if exhausted {
                return Ok(Page { items, next: None });
            }
            if items.len() == page.limit {
                return Ok(Page {
                    next: items.last().map(|v| v.agent.id.0),
                    items,
                });
            }
        }
    }

    /// Creates a stack (admin).
    pub async fn create_stack(&self, who: &Principal, new: NewStack) -> Result<Stack> {
        who.require_admin()?;
        let now = self.now();
        new.validate(now, &self.inner.config.limits)?;
        let stack = new.into_stack(now);
        self.store_ref().insert_stack(&stack).await?;
        Ok(stack)
    }

    /// Adds a deployment object to a stack (admin); it becomes the stack's effective
    /// object and is queued for every agent targeting the stack.
    pub async fn add_deployment_object(
        &self,
        who: &Principal,
        stack: StackId,
        new: NewDeploymentObject,
    ) -> Result<DeploymentObject> {
        who.require_admin()?;
        let now = self.now();
        new.validate(now, &self.inner.config.limits)?;
        let object = DeploymentObject {
            id: DeploymentObjectId::new(),
            stack_id: stack,
            sequence_id: 0,
            yaml_content: new.yaml_content,
            is_deletion: new.is_deletion,
            created_at: now,
        };
        let stored = self.store_ref().insert_deployment_object(&object).await?;
        let agents = self.store_ref().agents_targeting(stack).await?;
        let pairs: Vec<_> = agents.into_iter().map(|a| (a, stored.id)).collect();
        self.store_ref().ensure_deliveries(&pairs).await?;
        Ok(stored)
    }

    /// Targets an agent at a stack (admin); the stack's effective object is queued for it.
    pub async fn target(&self, who: &Principal, agent: AgentId, new: NewTarget) -> Result<Target> {
        who.require_admin()?;
        let target = Target {
            agent_id: agent,
            stack_id: new.stack_id,
            created_at: self.now(),
        };
        self.store_ref().insert_target(&target).await?;
        let latest = self.store_ref().latest_objects(&[new.stack_id]).await?;
        let pairs: Vec<_> = latest.iter().map(|o| (agent, o.id)).collect();
        self.store_ref().ensure_deliveries(&pairs).await?;
        Ok(target)
    }

    /// A deployment object with its deliveries (admin).
    pub async fn deployment_object(
        &self,
        who: &Principal,
        id: DeploymentObjectId,
    ) -> Result<DeploymentObjectView> {
        who.require_admin()?;
        let object = self.existing_object(id).await?;
        let deliveries = self.store_ref().deliveries_of_object(id).await?;
        Ok(DeploymentObjectView { object, deliveries })
    }

    // ------------------------------------------------------------ agent side

    /// Records a heartbeat (the agent itself).
    pub async fn heartbeat(&self, who: &Principal, agent: AgentId, beat: Heartbeat) -> Result<()> {
        who.require_agent(agent)?;
        let now = self.now();
        beat.validate(now, &self.inner.config.limits)?;
        let record = HeartbeatRecord {
            agent_id: agent,
            received_at: now,
            snapshot: beat.snapshot,
            health_checked_at: beat.health_checked_at,
        };
        // Nothing recorded: an unknown agent, or a heartbeat older than the stored one
        // (a clock step, a replica slightly behind), which is no error.
        if self.store_ref().record_heartbeats(&[record]).await? == 0 {
            self.existing_agent(agent).await?;
        }
        Ok(())
    }

    /// The desired set: the latest object of every targeted stack (the agent itself).
    pub async fn target_state(
        &self,
        who: &Principal,
        agent: AgentId,
    ) -> Result<Vec<DeploymentObject>> {
        who.require_agent(agent)?;
        self.existing_agent(agent).await?;
        self.effective_objects(agent).await
    }

    /// Ids of [`Self::effective_objects`].
    async fn effective_ids(&self, agent: AgentId) -> Result<HashSet<DeploymentObjectId>> {
        Ok(self
            .effective_objects(agent)
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect())
    }

    /// The objects the agent should run now: the latest of every stack it targets.
    async fn effective_objects(&self, agent: AgentId) -> Result<Vec<DeploymentObject>> {
        let stacks = self.targeted_stacks(agent).await?;
        self.store_ref().latest_objects(&stacks).await
    }

    async fn targeted_stacks(&self, agent: AgentId) -> Result<Vec<StackId>> {
        Ok(self
            .store_ref()
            .targets_of_agent(agent)
            .await?
            .into_iter()
            .map(|t| t.stack_id)
            .collect())
    }

    /// Objects of `ids` the agent may report on (of stacks it targets), with a reason for
    /// each id it may not; `NotFound` for an unknown agent. One store read.
    async fn reportable(
        &self,
        agent: AgentId,
        ids: &[DeploymentObjectId],
    ) -> Result<HashMap<DeploymentObjectId, std::result::Result<StackId, String>>> {
        let reach = self
            .store_ref()
            .reach_of_agent(agent, ids)
            .await?
            .ok_or_else(|| Error::not_found("agent", agent))?;
        Ok(ids
            .iter()
            .map(|id| {
                let verdict = match reach.get(id) {
                    None => Err("unknown deployment object".to_owned()),
                    Some(r) if !r.targeted => {
                        Err("deployment object of a stack this agent does not target".to_owned())
                    }
                    Some(r) => Ok(r.stack_id),
                };
                (*id, verdict)
            })
            .collect())
    }

    /// Reconcile outcomes (the agent itself). Bad items are rejected one by one; when
    /// every item is bad the whole batch is `Invalid`.
    pub async fn report_deployment_status(
        &self,
        who: &Principal,
        agent: AgentId,
        events: Vec<DeploymentStatusEvent>,
    ) -> Result<StatusReportResult> {
        who.require_agent(agent)?;
        let now = self.now();
        let ids: Vec<_> = events.iter().map(|e| e.deployment_object_id).collect();
        // Also answers whether the agent exists.
        let allowed = self.reportable(agent, &ids).await?;
        let mut good = Vec::new();
        let mut rejected = Vec::new();
        for event in events {
            let id = event.deployment_object_id;
            let check = match allowed.get(&id) {
                Some(Ok(_)) => event
                    .validate(now, &self.inner.config.limits)
                    .map_err(|e| e.to_string()),
                Some(Err(reason)) => Err(reason.clone()),
                None => Err("unknown deployment object".to_owned()),
            };
            match check {
                Ok(()) => good.push(event),
                Err(reason) => rejected.push(Rejected { id, reason }),
            }
        }
        all_bad(&good, &rejected)?;
        // Events of one batch apply in time order, so a batch can carry a whole history.
        good.sort_by_key(|e| e.attempted_at);
        self.store_ref().apply_status_events(agent, &good).await?;
        Ok(StatusReportResult {
            accepted: good.len() as u64,
            rejected,
        })
    }

    /// Health verdicts (the agent itself): per item validated and authorized, then
    /// upserted (unchanged rows not rewritten, older reports never overwrite newer).
    pub async fn report_health(
        &self,
        who: &Principal,
        agent: AgentId,
        report: HealthReport,
    ) -> Result<HealthReportResult> {
        who.require_agent(agent)?;
        // Duplicate ids are a client bug: the whole batch is refused.
        report.check_duplicates()?;
        let now = self.now();
        let ids: Vec<_> = report.deployment_objects.iter().map(|i| i.id).collect();
        let allowed = self.reportable(agent, &ids).await?;
        let mut records = Vec::new();
        let mut rejected = Vec::new();
        for item in report.deployment_objects {
            let check = match allowed.get(&item.id) {
                Some(Ok(_)) => item
                    .validate(now, &self.inner.config.limits)
                    .map_err(|e| e.to_string()),
                Some(Err(reason)) => Err(reason.clone()),
                None => Err("unknown deployment object".to_owned()),
            };
            match check {
                Ok(()) => records.push(item.into_record(agent, now)),
                Err(reason) => rejected.push(Rejected {
                    id: item.id,
                    reason,
                }),
            }
        }
        all_bad(&records, &rejected)?;
        let rewrite_before = now - self.inner.config.refresh_interval / 2;
        let outcomes = self
            .store_ref()
            .upsert_health(&records, rewrite_before)
            .await?;
        let mut result = HealthReportResult {
            rejected,
            ..HealthReportResult::default()
        };
        // Status changes reached the events outbox in the same write.
        for outcome in outcomes {
            match outcome {
                UpsertOutcome::Accepted { .. } => result.accepted += 1,
                UpsertOutcome::Unchanged => result.unchanged += 1,
                UpsertOutcome::Ignored => result.ignored += 1,
            }
        }
        Ok(result)
    }

    // ------------------------------------------------------------ health reads

    /// Staleness of one stored verdict: the agent is lost, stopped checking, or stopped
    /// reporting this object. Returns since when, if stale.
    fn stale_since(
        &self,
        record: &HealthRecord,
        live: Option<&AgentLiveness>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let c = &self.inner.config;
        let lost = live
            .and_then(|l| l.last_heartbeat_at)
            .map_or(Some(record.checked_at), |t| {
                Some(t + c.staleness.lost_after)
            });
        let stopped_checking = live
            .and_then(|l| l.health_checked_at)
            .map(|t| t + c.health_ttl);
        let stopped_reporting = Some(record.checked_at + c.refresh_interval + c.health_ttl);
        [lost, stopped_checking, stopped_reporting]
            .into_iter()
            .flatten()
            .filter(|since| *since <= now)
            .min()
    }

    async fn entries(
        &self,
        records: Vec<HealthRecord>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(DeploymentObjectId, AgentHealthEntry)>> {
        let mut agents: Vec<AgentId> = records.iter().map(|r| r.agent_id).collect();
        agents.sort_unstable();
        agents.dedup();
        let liveness = self.store_ref().liveness_of(&agents).await?;
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let live = liveness.get(&record.agent_id);
            let stale_since = self.stale_since(&record, live, now);
            out.push((
                record.deployment_object_id,
                AgentHealthEntry {
                    agent_id: record.agent_id,
                    status: record.status,
                    summary: Some(record.summary),
                    checked_at: Some(record.checked_at),
                    stale: stale_since.is_some(),
                    stale_since,
                },
            ));
        }
        Ok(out)
    }

    /// Verdicts of one object, with an `unknown` entry for every agent that runs it
    /// (targets its stack, and it is the stack's effective object) but never reported.
    async fn object_entries(
        &self,
        object: &DeploymentObject,
        effective: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<AgentHealthEntry>> {
        let records = self.store_ref().health_of_object(object.id).await?;
        let mut entries: Vec<AgentHealthEntry> = self
            .entries(records, now)
            .await?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        if effective {
            let reported: HashSet<AgentId> = entries.iter().map(|e| e.agent_id).collect();
            for agent in self.store_ref().agents_targeting(object.stack_id).await? {
                if !reported.contains(&agent) {
                    entries.push(unreported(agent));
                }
            }
        }
        entries.sort_by_key(|e| e.agent_id);
        Ok(entries)
    }

    /// Health of one deployment object across agents (admin).
    pub async fn object_health(
        &self,
        who: &Principal,
        id: DeploymentObjectId,
    ) -> Result<ObjectHealth> {
        who.require_admin()?;
        let object = self.existing_object(id).await?;
        let latest = self.store_ref().latest_objects(&[object.stack_id]).await?;
        let effective = latest.iter().any(|o| o.id == id);
        let agents = self.object_entries(&object, effective, self.now()).await?;
        Ok(ObjectHealth {
            deployment_object_id: id,
            status: worst(&agents),
            stale_count: stale_count(&agents),
            agents,
        })
    }

    /// Health of a stack: its effective object across agents (admin).
    pub async fn stack_health(&self, who: &Principal, stack: StackId) -> Result<StackHealth> {
        who.require_admin()?;
        self.store_ref()
            .get_stack(stack)
            .await?
            .ok_or_else(|| Error::not_found("stack", stack))?;
        let now = self.now();
        let mut deployment_objects = Vec::new();
        for object in self.store_ref().latest_objects(&[stack]).await? {
            let agents = self.object_entries(&object, true, now).await?;
            deployment_objects.push(StackObjectHealth {
                id: object.id,
                status: worst(&agents),
                stale_count: stale_count(&agents),
                agents,
            });
        }
        let overall_status = deployment_objects
            .iter()
            .map(|o| o.status)
            .max()
            .unwrap_or(Health::Unknown);
        Ok(StackHealth {
            stack_id: stack,
            overall_status,
            deployment_objects,
        })
    }

    /// Every verdict of one agent (admin or the agent).
    pub async fn agent_health(&self, who: &Principal, agent: AgentId) -> Result<AgentHealth> {
        who.require_admin_or(agent)?;
        self.existing_agent(agent).await?;
        // Only what the agent should run now; an effective object it never reported
        // reads as unknown.
        let effective = self.effective_ids(agent).await?;
        let records: Vec<HealthRecord> = self
            .store_ref()
            .health_of_agent(agent)
            .await?
            .into_iter()
            .filter(|r| effective.contains(&r.deployment_object_id))
            .collect();
        let mut deployment_objects: Vec<AgentObjectHealth> = self
            .entries(records, self.now())
            .await?
            .into_iter()
            .map(|(id, entry)| AgentObjectHealth { id, entry })
            .collect();
        let reported: HashSet<DeploymentObjectId> =
            deployment_objects.iter().map(|o| o.id).collect();
        deployment_objects.extend(
            effective
                .difference(&reported)
                .map(|&id| AgentObjectHealth {
                    id,
                    entry: unreported(agent),
                }),
        );
        deployment_objects.sort_by_key(|o| o.id);
        Ok(AgentHealth {
            agent_id: agent,
            deployment_objects,
        })
    }

    /// Liveness, snapshot and reconcile figures (admin or the agent).
    pub async fn operational_status(
        &self,
        who: &Principal,
        agent: AgentId,
    ) -> Result<OperationalStatus> {
        who.require_admin_or(agent)?;
        self.existing_agent(agent).await?;
        let now = self.now();
        let live = self.store_ref().liveness(agent).await?.unwrap_or_default();
        let policy = &self.inner.config.staleness;
        let effective = self.effective_ids(agent).await?;
        // Superseded objects' failures no longer matter.
        let deliveries: Vec<(Delivery, DateTime<Utc>)> = self
            .store_ref()
            .deliveries_of_agent(agent)
            .await?
            .into_iter()
            .filter(|(d, _)| effective.contains(&d.deployment_object_id))
            .collect();
        let failing: Vec<&Delivery> = deliveries
            .iter()
            .map(|(d, _)| d)
            .filter(|d| d.state == DeliveryState::Failed)
            .collect();
        Ok(OperationalStatus {
            agent_id: agent,
            staleness: policy.classify(live.last_heartbeat_at, now),
            stale_since: policy.stale_since(live.last_heartbeat_at, now),
            last_heartbeat_at: live.last_heartbeat_at,
            health_checked_at: live.health_checked_at,
            snapshot: live.snapshot,
            reconcile: ReconcileStats {
                objects_failing: failing.len() as u64,
                retry_total: deliveries
                    .iter()
                    .map(|(d, _)| u64::from(d.retry_count))
                    .sum(),
                last_failure_reason: failing
                    .iter()
                    .max_by_key(|d| d.last_attempt_at)
                    .and_then(|d| d.failure_reason),
            },
        })
    }

    /// Queue depth, work-order backlog and delivery latency of the agent's effective
    /// objects (admin or the agent).
    pub async fn queue_status(&self, who: &Principal, agent: AgentId) -> Result<QueueStatus> {
        who.require_admin_or(agent)?;
        self.existing_agent(agent).await?;
        let effective = self.effective_ids(agent).await?;
        let deliveries = self.store_ref().deliveries_of_agent(agent).await?;
        let orders = self.store_ref().open_work_orders(agent).await?;
        Ok(QueueStatus::compute(
            agent,
            deliveries
                .iter()
                .filter(|(d, _)| effective.contains(&d.deployment_object_id))
                .map(|(d, created)| (d, *created)),
            &orders,
            &self.inner.config.backlog,
            self.now(),
        ))
    }

    /// The fleet at a glance (admin): the last snapshot while it is younger than
    /// `fleet_snapshot_max_age` (its `generated_at` says when it was taken), else a new
    /// one. Health counts come from the store's maintained rollup; agent counts and
    /// capacity need a pass over every agent, which the snapshot spares most calls.
    pub async fn fleet_summary(&self, who: &Principal) -> Result<FleetSummary> {
        who.require_admin()?;
        let now = self.now();
        let max_age = self.inner.config.fleet_snapshot_max_age;
        if let Some(snapshot) = self.fleet_snapshot()
            && snapshot.generated_at <= now
            && now - snapshot.generated_at < max_age
        {
            return Ok(snapshot);
        }
        self.refresh_fleet_summary().await
    }

    /// Computes the fleet summary now and keeps it as the snapshot (unless a newer one
    /// arrived meanwhile). Hosts call this ahead of demand so readers never wait for the
    /// computation; the HTTP layer does while summaries are being read.
    pub async fn refresh_fleet_summary(&self) -> Result<FleetSummary> {
        let ticket = 1 + self
            .inner
            .fleet_tickets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = self.now();
        let policy = &self.inner.config.staleness;
        let r = self
            .store_ref()
            .fleet_rollup(now - policy.stale_after, now - policy.lost_after)
            .await?;
        let summary = FleetSummary {
            agents: FleetAgents {
                total: r.agents,
                fresh: r.fresh,
                stale: r.stale,
                lost: r.lost,
            },
            health: FleetHealth {
                healthy: r.healthy,
                degraded: r.degraded,
                failing: r.failing,
                unknown: r.unknown,
            },
            capacity: FleetCapacity {
                cpu_capacity: r.cpu_capacity,
                cpu_available: r.cpu_available,
                memory_capacity: r.memory_capacity,
                memory_available: r.memory_available,
                nodes: r.nodes,
                nodes_ready: r.nodes_ready,
            },
            queue: FleetQueue {
                depth_total: r.queue_depth,
                backlog_total: r.work_order_backlog,
            },
            generated_at: now,
        };
        let mut slot = self
            .inner
            .fleet_snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A computation that started later wins (ordered by start, not by the clock,
        // which may step back).
        if ticket > slot.ticket {
            *slot = FleetSnapshot {
                ticket,
                summary: Some(summary.clone()),
            };
        }
        Ok(summary)
    }

    fn fleet_snapshot(&self) -> Option<FleetSummary> {
        self.inner
            .fleet_snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .summary
            .clone()
    }

    // ------------------------------------------------------------ work orders

    /// Creates a work order for an agent (admin).
    pub async fn create_work_order(&self, who: &Principal, new: NewWorkOrder) -> Result<WorkOrder> {
        who.require_admin()?;
        let now = self.now();
        new.validate(now, &self.inner.config.limits)?;
        self.existing_agent(new.agent_id).await?;
        let order = new.into_work_order(now);
        self.store_ref().insert_work_order(&order).await?;
        Ok(order)
    }

    /// Pending and claimed work orders of the agent (admin or the agent).
    pub async fn open_work_orders(
        &self,
        who: &Principal,
        agent: AgentId,
    ) -> Result<Vec<WorkOrder>> {
        who.require_admin_or(agent)?;
        self.existing_agent(agent).await?;
        self.store_ref().open_work_orders(agent).await
    }

    /// Claims a work order (its agent).
    pub async fn claim_work_order(&self, who: &Principal, id: WorkOrderId) -> Result<WorkOrder> {
        let Principal::Agent(agent) = *who else {
            return Err(Error::Forbidden("only agents claim work orders".into()));
        };
        self.store_ref()
            .claim_work_order(id, agent, self.now())
            .await
    }

    /// Completes a claimed work order (its agent).
    pub async fn complete_work_order(
        &self,
        who: &Principal,
        id: WorkOrderId,
        success: bool,
    ) -> Result<WorkOrder> {
        let Principal::Agent(agent) = *who else {
            return Err(Error::Forbidden("only agents complete work orders".into()));
        };
        self.store_ref()
            .finish_work_order(id, agent, success, self.now())
            .await
    }

    // ------------------------------------------------------------ diagnostics

    /// Requests diagnostics of an object (admin): from `agent` when given (it must run
    /// the object), else from every agent that runs it, one request each.
    pub async fn request_diagnostics(
        &self,
        who: &Principal,
        object: DeploymentObjectId,
        agent: Option<AgentId>,
        requested_by: &str,
    ) -> Result<Vec<DiagnosticRequest>> {
        who.require_admin()?;
        let object = self.existing_object(object).await?;
        let running = self.store_ref().agents_targeting(object.stack_id).await?;
        let agents = match agent {
            Some(a) if running.contains(&a) => vec![a],
            Some(_) => {
                return Err(Error::invalid(
                    "agent_id",
                    "this agent does not run the deployment object",
                ));
            }
            None if running.is_empty() => {
                return Err(Error::invalid(
                    "agent_id",
                    "no agent runs this deployment object",
                ));
            }
            None => running,
        };
        let now = self.now();
        let requests: Vec<DiagnosticRequest> = agents
            .into_iter()
            .map(|a| {
                DiagnosticRequest::new(
                    object.id,
                    a,
                    requested_by,
                    &self.inner.config.diagnostics,
                    now,
                )
            })
            .collect();
        self.store_ref()
            .insert_diagnostic_requests(&requests)
            .await?;
        Ok(requests)
    }

    /// A request with its result (admin). Overdue requests read as `expired` even
    /// before cleanup records it.
    pub async fn diagnostic(&self, who: &Principal, id: DiagnosticId) -> Result<DiagnosticView> {
        who.require_admin()?;
        let (mut request, result) = self
            .store_ref()
            .get_diagnostic(id)
            .await?
            .ok_or_else(|| Error::not_found("diagnostics request", id))?;
        request.status = request.status_at(self.now());
        Ok(DiagnosticView { request, result })
    }

    /// Claimable requests of the agent (the agent itself, or admin).
    pub async fn pending_diagnostics(
        &self,
        who: &Principal,
        agent: AgentId,
    ) -> Result<Vec<DiagnosticRequest>> {
        who.require_admin_or(agent)?;
        self.existing_agent(agent).await?;
        self.store_ref()
            .pending_diagnostics(agent, self.now())
            .await
    }

    /// Claims a request (its agent); exactly one claimer wins.
    pub async fn claim_diagnostic(
        &self,
        who: &Principal,
        id: DiagnosticId,
        token: Option<&str>,
    ) -> Result<DiagnosticRequest> {
        let Principal::Agent(agent) = *who else {
            return Err(Error::Forbidden("only agents claim diagnostics".into()));
        };
        if token.is_some_and(|t| t.len() > 128) {
            return Err(Error::invalid("claim_token", "at most 128 characters"));
        }
        let (request, _) = self
            .store_ref()
            .claim_diagnostic(id, agent, token, self.now())
            .await?;
        Ok(request)
    }

    /// Posts the claimer's result, once (an identical retry is accepted again); secrets
    /// in it are redacted before it is stored.
    pub async fn post_diagnostic_result(
        &self,
        who: &Principal,
        id: DiagnosticId,
        outcome: DiagnosticOutcome,
    ) -> Result<ResultOutcome> {
        let Principal::Agent(agent) = *who else {
            return Err(Error::Forbidden(
                "only agents post diagnostics results".into(),
            ));
        };
        let now = self.now();
        outcome.validate(now, &self.inner.config.limits)?;
        let outcome = outcome.redacted();
        self.store_ref()
            .store_diagnostic_result(id, agent, &outcome, now)
            .await
    }

    /// Diagnostics requests by the state a reader sees now (admin).
    pub async fn diagnostic_counts(&self, who: &Principal) -> Result<DiagnosticCounts> {
        who.require_admin()?;
        self.store_ref().diagnostic_counts(self.now()).await
    }

    // ------------------------------------------------------------ webhooks

    /// Registers a webhook subscription (admin).
    pub async fn register_webhook(&self, who: &Principal, new: NewWebhook) -> Result<Webhook> {
        who.require_admin()?;
        new.validate()?;
        let webhook = new.into_webhook(self.now());
        self.store_ref().insert_webhook(&webhook).await?;
        Ok(webhook)
    }

    /// Every webhook subscription, secrets included (admin; the HTTP layer never shows
    /// them).
    pub async fn webhooks(&self, who: &Principal) -> Result<Vec<Webhook>> {
        who.require_admin()?;
        self.store_ref().list_webhooks().await
    }

    /// Removes a webhook subscription (admin).
    pub async fn delete_webhook(&self, who: &Principal, id: WebhookId) -> Result<()> {
        who.require_admin()?;
        if self.store_ref().delete_webhook(id).await? {
            Ok(())
        } else {
            Err(Error::not_found("webhook", id))
        }
    }

    /// Deletes fleet events older than [`EVENT_RETENTION`] (safe on every replica); how
    /// many.
    pub async fn cleanup_events(&self) -> Result<u64> {
        self.store_ref()
            .delete_events_before(self.now() - EVENT_RETENTION)
            .await
    }

    // ------------------------------------------------------------ events

    /// Fleet events after `after`, oldest first, at most `limit` (admin: they name
    /// every agent and object).
    pub async fn events_after(
        &self,
        who: &Principal,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        who.require_admin()?;
        self.store_ref().events_after(after, limit).await
    }

    /// The newest event's sequence number (admin).
    pub async fn last_event_seq(&self, who: &Principal) -> Result<u64> {
        who.require_admin()?;
        self.store_ref().last_event_seq().await
    }

    /// Tells the store what staleness `agent` was in when observed at `observed_at` (the
    /// staleness watcher, on any replica); the event when this announcement changed it.
    pub async fn announce_staleness(
        &self,
        who: &Principal,
        agent: AgentId,
        state: Staleness,
        observed_at: DateTime<Utc>,
    ) -> Result<Option<StoredEvent>> {
        who.require_admin()?;
        self.store_ref()
            .announce_staleness(agent, state, observed_at)
            .await
    }

    /// Claims the delivery of event `seq` to `webhook` for this replica: `true` for
    /// exactly one replica.
    pub async fn claim_event_delivery(
        &self,
        who: &Principal,
        webhook: crate::ids::WebhookId,
        seq: u64,
    ) -> Result<bool> {
        who.require_admin()?;
        self.store_ref()
            .claim_event_delivery(webhook, seq, self.now())
            .await
    }

    /// Deletes diagnostics past retention; idempotent, safe on every replica.
    pub async fn cleanup(&self) -> Result<u64> {
        self.store_ref()
            .delete_expired_diagnostics(self.now())
            .await
    }
}

/// A batch whose every item was refused is refused as a whole (422) with the reasons.
fn all_bad<T>(good: &[T], rejected: &[Rejected]) -> Result<()> {
    if good.is_empty() && !rejected.is_empty() {
        return Err(Error::Invalid(
            rejected
                .iter()
                .map(|r| crate::error::FieldError::new(r.id.to_string(), r.reason.clone()))
                .collect(),
        ));
    }
    Ok(())
}

/// Worst last-known status; `unknown` when there is nothing to go by.
fn worst(entries: &[AgentHealthEntry]) -> Health {
    entries
        .iter()
        .map(|e| e.status)
        .max()
        .unwrap_or(Health::Unknown)
}

fn stale_count(entries: &[AgentHealthEntry]) -> u64 {
    entries.iter().filter(|e| e.stale).count() as u64
}

/// The entry of an agent that runs an object but never reported it.
fn unreported(agent: AgentId) -> AgentHealthEntry {
    AgentHealthEntry {
        agent_id: agent,
        status: Health::Unknown,
        summary: None,
        checked_at: None,
        stale: false,
        stale_since: None,
    }
}
