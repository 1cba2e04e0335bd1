//! In-process [`Store`](brokkr_core::store::Store) for Brokkr.
//!
//! Everything lives in maps behind one lock. Every method takes the lock once, does its
//! work without awaiting, and releases it, so each call is atomic: a batch is all or
//! nothing, and of several concurrent diagnostic claims exactly one wins, the same
//! semantics the Postgres store gives across processes. It is the default store of the
//! examples and tests, and suits a single broker process whose state may be lost on
//! restart.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use brokkr_core::diagnostics::{ClaimOutcome, DiagnosticRequest, DiagnosticStatus};
use brokkr_core::events::{FleetEvent, StoredEvent};
use brokkr_core::ids::{
    AgentId, DeploymentObjectId, DiagnosticId, StackId, WebhookId, WorkOrderId,
};
use brokkr_core::model::{
    Agent, Delivery, DeploymentObject, DeploymentStatusEvent, DiagnosticOutcome, HealthRecord,
    Stack, Target, WorkOrder, WorkOrderStatus,
};
use brokkr_core::staleness::Staleness;
use brokkr_core::store::{
    AgentLiveness, AgentStore, CatalogStore, DeliveryStore, DiagnosticCounts, DiagnosticStore,
    EventStore, FleetRollup, FleetStore, HealthStore, HeartbeatRecord, ObjectReach, Page,
    PageRequest, PakHash, ResultOutcome, StoredVerdict, UpsertOutcome, WorkOrderStore,
};
use brokkr_core::{Error, Result};
use chrono::{DateTime, Utc};

/// The in-memory store. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    agents: BTreeMap<AgentId, Agent>,
    paks: HashMap<PakHash, AgentId>,
    liveness: HashMap<AgentId, AgentLiveness>,
    stacks: HashMap<StackId, Stack>,
    objects: HashMap<DeploymentObjectId, DeploymentObject>,
    /// Highest sequence number and its object, per stack.
    latest: HashMap<StackId, (i64, DeploymentObjectId)>,
    targets: BTreeMap<(AgentId, StackId), Target>,
    deliveries: BTreeMap<(AgentId, DeploymentObjectId), Delivery>,
    work_orders: BTreeMap<WorkOrderId, WorkOrder>,
    health: BTreeMap<(AgentId, DeploymentObjectId), HealthRecord>,
    /// Health rows by status, maintained on every write.
    health_counts: FleetRollup,
    diagnostics: BTreeMap<DiagnosticId, (DiagnosticRequest, Option<DiagnosticOutcome>)>,
    webhooks: BTreeMap<brokkr_core::ids::WebhookId, brokkr_core::events::Webhook>,
    /// The events outbox, oldest first, with when each was written.
    events: std::collections::VecDeque<(StoredEvent, DateTime<Utc>)>,
    /// The last sequence number handed out.
    event_seq: u64,
    /// Staleness last announced per agent, and as of when.
    announced: HashMap<AgentId, (Staleness, DateTime<Utc>)>,
    /// Claimed event deliveries per webhook and event, with when.
    event_claims: HashMap<(WebhookId, u64), DateTime<Utc>>,
}

impl State {
    fn append_event(&mut self, event: FleetEvent, at: DateTime<Utc>) -> StoredEvent {
        self.event_seq += 1;
        let stored = StoredEvent {
            seq: self.event_seq,
            event,
        };
        self.events.push_back((stored.clone(), at));
        stored
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while holding the lock cannot leave the maps half-updated (every method
    // validates before it mutates), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl AgentStore for MemoryStore {
    async fn insert_agent(&self, agent: &Agent, pak_hash: &PakHash) -> Result<()> {
        let mut state = self.write();
        if state.agents.contains_key(&agent.id) || state.paks.contains_key(pak_hash) {
            return Err(Error::Conflict(format!(
                "agent {} already exists",
                agent.id
            )));
        }
        state.agents.insert(agent.id, agent.clone());
        state.paks.insert(*pak_hash, agent.id);
        state.liveness.insert(agent.id, AgentLiveness::default());
        Ok(())
    }

    async fn get_agent(&self, id: AgentId) -> Result<Option<Agent>> {
        Ok(self.read().agents.get(&id).cloned())
    }

    async fn list_agents(&self, page: PageRequest) -> Result<Page<Agent>> {
        let state = self.read();
        let start = page.after.map_or(std::ops::Bound::Unbounded, |after| {
            std::ops::Bound::Excluded(AgentId(after))
        });
        let mut items: Vec<Agent> = state
            .agents
            .range((start, std::ops::Bound::Unbounded))
            .take(page.limit.saturating_add(1))
            .map(|(_, a)| a.clone())
            .collect();
        let next = if items.len() > page.limit {
            items.truncate(page.limit);
            items.last().map(|a| a.id.0)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn delete_agent(&self, id: AgentId) -> Result<bool> {
        let mut state = self.write();
        if state.agents.remove(&id).is_none() {
            return Ok(false);
        }
        state.paks.retain(|_, agent| *agent != id);
        state.liveness.remove(&id);
        state.announced.remove(&id);
        state.targets.retain(|(agent, _), _| *agent != id);
        state.deliveries.retain(|(agent, _), _| *agent != id);
        state.work_orders.retain(|_, o| o.agent_id != id);
        let gone: Vec<_> = state
            .health
            .keys()
            .filter(|(agent, _)| *agent == id)
            .copied()
            .collect();
        for key in gone {
            if let Some(record) = state.health.remove(&key) {
                state.health_counts.count_health(record.status, -1);
            }
        }
        state
            .diagnostics
            .retain(|_, (request, _)| request.agent_id != id);
        Ok(true)
    }

    async fn replace_pak(&self, id: AgentId, pak_hash: Option<&PakHash>) -> Result<()> {
        let mut state = self.write();
        if !state.agents.contains_key(&id) {
            return Err(Error::not_found("agent", id));
        }
        if let Some(hash) = pak_hash
            && state.paks.get(hash).is_some_and(|owner| *owner != id)
        {
            return Err(Error::Conflict("key already in use".into()));
        }
        state.paks.retain(|_, agent| *agent != id);
        if let Some(hash) = pak_hash {
            state.paks.insert(*hash, id);
        }
        Ok(())
    }

    async fn agent_for_pak(&self, pak_hash: &PakHash) -> Result<Option<AgentId>> {
        Ok(self.read().paks.get(pak_hash).copied())
    }

    async fn record_heartbeats(&self, beats: &[HeartbeatRecord]) -> Result<u64> {
        let mut state = self.write();
        let mut recorded = 0;
        for beat in beats {
            let Some(live) = state.liveness.get_mut(&beat.agent_id) else {
                continue;
            };
            if live.last_heartbeat_at.is_some_and(|t| t > beat.received_at) {
                continue;
            }
            live.last_heartbeat_at = Some(beat.received_at);
            if beat.health_checked_at.is_some() {
                live.health_checked_at = beat.health_checked_at;
            }
            if !beat.snapshot.is_empty() {
                live.snapshot = Some(beat.snapshot.clone());
            }
            recorded += 1;
        }
        Ok(recorded)
    }

    async fn liveness(&self, id: AgentId) -> Result<Option<AgentLiveness>> {
        Ok(self.read().liveness.get(&id).cloned())
    }

    async fn liveness_of(&self, ids: &[AgentId]) -> Result<HashMap<AgentId, AgentLiveness>> {
        let state = self.read();
        Ok(ids
            .iter()
            .filter_map(|id| state.liveness.get(id).map(|l| (*id, l.clone())))
            .collect())
    }
}

#[async_trait]
impl CatalogStore for MemoryStore {
    async fn insert_stack(&self, stack: &Stack) -> Result<()> {
        let mut state = self.write();
        if state.stacks.contains_key(&stack.id) {
            return Err(Error::Conflict(format!(
                "stack {} already exists",
                stack.id
            )));
        }
        state.stacks.insert(stack.id, stack.clone());
        Ok(())
    }

    async fn get_stack(&self, id: StackId) -> Result<Option<Stack>> {
        Ok(self.read().stacks.get(&id).cloned())
    }

    async fn insert_deployment_object(
        &self,
        object: &DeploymentObject,
    ) -> Result<DeploymentObject> {
        let mut state = self.write();
        if !state.stacks.contains_key(&object.stack_id) {
            return Err(Error::not_found("stack", object.stack_id));
        }
        if state.objects.contains_key(&object.id) {
            return Err(Error::Conflict(format!(
                "deployment object {} already exists",
                object.id
            )));
        }
        let sequence_id = state
            .latest
            .get(&object.stack_id)
            .map_or(1, |(seq, _)| seq + 1);
        let stored = DeploymentObject {
            sequence_id,
            ..object.clone()
        };
        state
            .latest
            .insert(object.stack_id, (sequence_id, object.id));
        state.objects.insert(object.id, stored.clone());
        Ok(stored)
    }

    async fn get_deployment_object(
        &self,
        id: DeploymentObjectId,
    ) -> Result<Option<DeploymentObject>> {
        Ok(self.read().objects.get(&id).cloned())
    }

    async fn reach_of_agent(
        &self,
        agent: AgentId,
        objects: &[DeploymentObjectId],
    ) -> Result<Option<HashMap<DeploymentObjectId, ObjectReach>>> {
        let state = self.read();
        if !state.agents.contains_key(&agent) {
            return Ok(None);
        }
        Ok(Some(
            objects
                .iter()
                .filter_map(|id| {
                    let stack_id = state.objects.get(id)?.stack_id;
                    let targeted = state.targets.contains_key(&(agent, stack_id));
                    Some((*id, ObjectReach { stack_id, targeted }))
                })
                .collect(),
        ))
    }

    async fn latest_objects(&self, stacks: &[StackId]) -> Result<Vec<DeploymentObject>> {
        let state = self.read();
        Ok(stacks
            .iter()
            .filter_map(|s| state.latest.get(s))
            .filter_map(|(_, id)| state.objects.get(id).cloned())
            .collect())
    }

    async fn insert_target(&self, target: &Target) -> Result<bool> {
        let mut state = self.write();
        if !state.agents.contains_key(&target.agent_id) {
            return Err(Error::not_found("agent", target.agent_id));
        }
        if !state.stacks.contains_key(&target.stack_id) {
            return Err(Error::not_found("stack", target.stack_id));
        }
        let key = (target.agent_id, target.stack_id);
        if state.targets.contains_key(&key) {
            return Ok(false);
        }
        state.targets.insert(key, target.clone());
        Ok(true)
    }

    async fn targets_of_agent(&self, agent: AgentId) -> Result<Vec<Target>> {
        let state = self.read();
        Ok(state
            .targets
            .range((agent, StackId(uuid::Uuid::nil()))..)
            .take_while(|((a, _), _)| *a == agent)
            .map(|(_, t)| t.clone())
            .collect())
    }

    async fn agents_targeting(&self, stack: StackId) -> Result<Vec<AgentId>> {
        let state = self.read();
        Ok(state
            .targets
            .keys()
            .filter(|(_, s)| *s == stack)
            .map(|(a, _)| *a)
            .collect())
    }
}

#[async_trait]
impl DeliveryStore for MemoryStore {
    async fn apply_status_events(
        &self,
        agent: AgentId,
        events: &[DeploymentStatusEvent],
    ) -> Result<u64> {
        let mut state = self.write();
        state.require_agents([&agent])?;
        if let Some(missing) = events
            .iter()
            .find(|e| !state.objects.contains_key(&e.deployment_object_id))
        {
            return Err(Error::not_found(
                "deployment object",
                missing.deployment_object_id,
            ));
        }
        let mut applied = 0;
        for event in events {
            let delivery = state
                .deliveries
                .entry((agent, event.deployment_object_id))
                .or_insert_with(|| Delivery::pending(agent, event.deployment_object_id));
            applied += u64::from(delivery.apply(event));
        }
        Ok(applied)
    }

    async fn ensure_deliveries(&self, pairs: &[(AgentId, DeploymentObjectId)]) -> Result<u64> {
        let mut state = self.write();
        state.require_agents(pairs.iter().map(|(a, _)| a))?;
        let mut created = 0;
        for &(agent, object) in pairs {
            if let std::collections::btree_map::Entry::Vacant(slot) =
                state.deliveries.entry((agent, object))
            {
                slot.insert(Delivery::pending(agent, object));
                created += 1;
            }
        }
        Ok(created)
    }

    async fn deliveries_of_object(&self, object: DeploymentObjectId) -> Result<Vec<Delivery>> {
        let state = self.read();
        Ok(state
            .deliveries
            .values()
            .filter(|d| d.deployment_object_id == object)
            .cloned()
            .collect())
    }

    async fn deliveries_of_agent(&self, agent: AgentId) -> Result<Vec<(Delivery, DateTime<Utc>)>> {
        let state = self.read();
        Ok(state
            .deliveries
            .range((agent, DeploymentObjectId(uuid::Uuid::nil()))..)
            .take_while(|((a, _), _)| *a == agent)
            .filter_map(|(_, d)| {
                let created = state.objects.get(&d.deployment_object_id)?.created_at;
                Some((d.clone(), created))
            })
            .collect())
    }
}

impl State {
    /// Writes for agents that no longer exist (deleted while a request was in flight)
    /// are refused, as the database's foreign keys refuse them.
    fn require_agents<'a>(&self, agents: impl IntoIterator<Item = &'a AgentId>) -> Result<()> {
        match agents.into_iter().find(|a| !self.agents.contains_key(a)) {
            Some(missing) => Err(Error::not_found("agent", missing)),
            None => Ok(()),
        }
    }

    fn own_work_order(&mut self, id: WorkOrderId, agent: AgentId) -> Result<&mut WorkOrder> {
        let order = self
            .work_orders
            .get_mut(&id)
            .ok_or_else(|| Error::not_found("work order", id))?;
        if order.agent_id != agent {
            return Err(Error::Forbidden(format!(
                "work order {id} belongs to another agent"
            )));
        }
        Ok(order)
    }
}

#[async_trait]
impl WorkOrderStore for MemoryStore {
    async fn insert_work_order(&self, order: &WorkOrder) -> Result<()> {
        let mut state = self.write();
        state.require_agents([&order.agent_id])?;
        if state.work_orders.contains_key(&order.id) {
            return Err(Error::Conflict(format!(
                "work order {} already exists",
                order.id
            )));
        }
        state.work_orders.insert(order.id, order.clone());
        Ok(())
    }

    async fn get_work_order(&self, id: WorkOrderId) -> Result<Option<WorkOrder>> {
        Ok(self.read().work_orders.get(&id).cloned())
    }

    async fn open_work_orders(&self, agent: AgentId) -> Result<Vec<WorkOrder>> {
        let state = self.read();
        let mut open: Vec<WorkOrder> = state
            .work_orders
            .values()
            .filter(|o| o.agent_id == agent && o.status.is_open())
            .cloned()
            .collect();
        open.sort_by_key(|o| (o.created_at, o.id));
        Ok(open)
    }

    async fn claim_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder> {
        let mut state = self.write();
        let order = state.own_work_order(id, agent)?;
        if order.status != WorkOrderStatus::Pending {
            return Err(Error::Conflict(format!("work order {id} is not pending")));
        }
        order.status = WorkOrderStatus::Claimed;
        order.claimed_at = Some(now);
        Ok(order.clone())
    }

    async fn finish_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        success: bool,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder> {
        let mut state = self.write();
        let order = state.own_work_order(id, agent)?;
        if order.status != WorkOrderStatus::Claimed {
            return Err(Error::Conflict(format!("work order {id} is not claimed")));
        }
        order.status = if success {
            WorkOrderStatus::Completed
        } else {
            WorkOrderStatus::Failed
        };
        order.completed_at = Some(now);
        Ok(order.clone())
    }
}

#[async_trait]
impl HealthStore for MemoryStore {
    async fn upsert_health(
        &self,
        records: &[HealthRecord],
        rewrite_before: DateTime<Utc>,
    ) -> Result<Vec<UpsertOutcome>> {
        let mut state = self.write();
        state.require_agents(records.iter().map(|r| &r.agent_id))?;
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            let key = (record.agent_id, record.deployment_object_id);
            let stored = state
                .health
                .get(&key)
                .map(|old| StoredVerdict::of(old, record));
            let outcome = UpsertOutcome::decide(stored, record, rewrite_before);
            if let UpsertOutcome::Accepted { previous } = outcome {
                if let Some(old) = previous {
                    state.health_counts.count_health(old, -1);
                }
                state.health_counts.count_health(record.status, 1);
                state.health.insert(key, record.clone());
                if let Some(event) = FleetEvent::health_transition(previous, record) {
                    state.append_event(event, record.reported_at);
                }
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn health_of_object(&self, object: DeploymentObjectId) -> Result<Vec<HealthRecord>> {
        self.health_of_objects(&[object]).await
    }

    async fn health_of_objects(&self, objects: &[DeploymentObjectId]) -> Result<Vec<HealthRecord>> {
        let state = self.read();
        Ok(state
            .health
            .values()
            .filter(|r| objects.contains(&r.deployment_object_id))
            .cloned()
            .collect())
    }

    async fn health_of_agent(&self, agent: AgentId) -> Result<Vec<HealthRecord>> {
        let state = self.read();
        Ok(state
            .health
            .range((agent, DeploymentObjectId(uuid::Uuid::nil()))..)
            .take_while(|((a, _), _)| *a == agent)
            .map(|(_, r)| r.clone())
            .collect())
    }
}

#[async_trait]
impl DiagnosticStore for MemoryStore {
    async fn insert_diagnostic_requests(&self, requests: &[DiagnosticRequest]) -> Result<()> {
        let mut state = self.write();
        state.require_agents(requests.iter().map(|r| &r.agent_id))?;
        if let Some(existing) = requests
            .iter()
            .find(|r| state.diagnostics.contains_key(&r.id))
        {
            return Err(Error::Conflict(format!(
                "diagnostics request {} already exists",
                existing.id
            )));
        }
        for request in requests {
            state
                .diagnostics
                .insert(request.id, (request.clone(), None));
        }
        Ok(())
    }

    async fn get_diagnostic(
        &self,
        id: DiagnosticId,
    ) -> Result<Option<(DiagnosticRequest, Option<DiagnosticOutcome>)>> {
        Ok(self.read().diagnostics.get(&id).cloned())
    }

    async fn pending_diagnostics(
        &self,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DiagnosticRequest>> {
        let state = self.read();
        let mut pending: Vec<DiagnosticRequest> = state
            .diagnostics
            .values()
            .map(|(r, _)| r)
            .filter(|r| {
                r.agent_id == agent && r.status == DiagnosticStatus::Pending && !r.is_expired(now)
            })
            .cloned()
            .collect();
        pending.sort_by_key(|r| (r.created_at, r.id));
        Ok(pending)
    }

    async fn claim_diagnostic(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(DiagnosticRequest, ClaimOutcome)> {
        let mut state = self.write();
        let (request, _) = state
            .diagnostics
            .get_mut(&id)
            .ok_or_else(|| Error::not_found("diagnostics request", id))?;
        // Transition a copy: a refused claim must leave the stored request untouched.
        let mut next = request.clone();
        let outcome = next.claim(agent, token, now)?;
        *request = next.clone();
        Ok((next, outcome))
    }

    async fn store_diagnostic_result(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        outcome: &DiagnosticOutcome,
        now: DateTime<Utc>,
    ) -> Result<ResultOutcome> {
        let mut state = self.write();
        let (request, stored) = state
            .diagnostics
            .get_mut(&id)
            .ok_or_else(|| Error::not_found("diagnostics request", id))?;
        if request.agent_id != agent {
            return Err(Error::Forbidden(format!(
                "diagnostics request {id} belongs to another agent"
            )));
        }
        if let Some(previous) = stored.as_ref() {
            return if previous == outcome {
                Ok(ResultOutcome::AlreadyStored)
            } else {
                Err(Error::Conflict(format!(
                    "diagnostics request {id} already has a different result"
                )))
            };
        }
        let mut next = request.clone();
        match outcome {
            DiagnosticOutcome::Bundle(_) => next.complete(agent, now)?,
            DiagnosticOutcome::Failed(reason) => next.fail(agent, reason.clone(), now)?,
        }
        *request = next;
        *stored = Some(outcome.clone());
        Ok(ResultOutcome::Stored)
    }

    async fn delete_expired_diagnostics(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut state = self.write();
        let before = state.diagnostics.len();
        state
            .diagnostics
            .retain(|_, (request, _)| !request.should_delete(now));
        Ok((before - state.diagnostics.len()) as u64)
    }

    async fn diagnostic_counts(&self, now: DateTime<Utc>) -> Result<DiagnosticCounts> {
        let mut counts = DiagnosticCounts::default();
        for (request, _) in self.read().diagnostics.values() {
            counts.add(request.status_at(now));
        }
        Ok(counts)
    }
}

#[async_trait]
impl brokkr_core::store::WebhookStore for MemoryStore {
    async fn insert_webhook(&self, webhook: &brokkr_core::events::Webhook) -> Result<()> {
        let mut state = self.write();
        if state.webhooks.contains_key(&webhook.id) {
            return Err(Error::Conflict(format!("webhook {} exists", webhook.id)));
        }
        state.webhooks.insert(webhook.id, webhook.clone());
        Ok(())
    }

    async fn list_webhooks(&self) -> Result<Vec<brokkr_core::events::Webhook>> {
        // Ids are time-ordered: oldest first.
        Ok(self.read().webhooks.values().cloned().collect())
    }

    async fn delete_webhook(&self, id: brokkr_core::ids::WebhookId) -> Result<bool> {
        let mut state = self.write();
        state.event_claims.retain(|(webhook, _), _| *webhook != id);
        Ok(state.webhooks.remove(&id).is_some())
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let state = self.read();
        // Kept in sequence order.
        let start = state.events.partition_point(|(e, _)| e.seq <= after);
        Ok(state
            .events
            .range(start..)
            .take(limit)
            .map(|(e, _)| e.clone())
            .collect())
    }

    async fn last_event_seq(&self) -> Result<u64> {
        Ok(self.read().event_seq)
    }

    async fn announce_staleness(
        &self,
        agent: AgentId,
        state_now: Staleness,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredEvent>> {
        let mut state = self.write();
        if !state.agents.contains_key(&agent) {
            return Ok(None);
        }
        let before = state.announced.get(&agent).copied();
        // A slow replica's observation must not undo a newer one.
        if before.is_some_and(|(_, known)| at < known) {
            return Ok(None);
        }
        state.announced.insert(agent, (state_now, at));
        match before.map(|(s, _)| s) {
            Some(before) if before != state_now => Ok(Some(state.append_event(
                FleetEvent::AgentStalenessChanged {
                    agent_id: agent,
                    from: before,
                    to: state_now,
                    at,
                },
                at,
            ))),
            _ => Ok(None),
        }
    }

    async fn claim_event_delivery(
        &self,
        webhook: WebhookId,
        seq: u64,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let mut state = self.write();
        let retained = state
            .events
            .binary_search_by_key(&seq, |(e, _)| e.seq)
            .is_ok();
        if !state.webhooks.contains_key(&webhook) || !retained {
            return Ok(false);
        }
        Ok(state.event_claims.insert((webhook, seq), at).is_none())
    }

    async fn delete_events_before(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut state = self.write();
        let kept_before = state.events.len();
        state.events.retain(|(_, at)| *at >= before);
        // Claims go with their events.
        let oldest = state.events.front().map_or(u64::MAX, |(e, _)| e.seq);
        state.event_claims.retain(|(_, seq), _| *seq >= oldest);
        Ok((kept_before - state.events.len()) as u64)
    }
}

#[async_trait]
impl FleetStore for MemoryStore {
    async fn fleet_rollup(
        &self,
        stale_before: DateTime<Utc>,
        lost_before: DateTime<Utc>,
    ) -> Result<FleetRollup> {
        let state = self.read();
        let mut rollup = state.health_counts.clone();
        rollup.agents = state.agents.len() as u64;
        rollup.queue_depth = state
            .deliveries
            .values()
            .filter(|d| d.state == brokkr_core::model::DeliveryState::Pending)
            .count() as u64;
        rollup.work_order_backlog = state
            .work_orders
            .values()
            .filter(|o| o.status.is_open())
            .count() as u64;
        for live in state.liveness.values() {
            match live.last_heartbeat_at {
                Some(t) if t >= stale_before => rollup.fresh += 1,
                Some(t) if t >= lost_before => rollup.stale += 1,
                _ => rollup.lost += 1,
            }
            if let Some(s) = &live.snapshot {
                rollup.cpu_capacity = rollup
                    .cpu_capacity
                    .saturating_add(s.cluster_cpu_capacity.unwrap_or(0));
                rollup.cpu_available = rollup
                    .cpu_available
                    .saturating_add(s.cluster_cpu_available.unwrap_or(0));
                rollup.memory_capacity = rollup
                    .memory_capacity
                    .saturating_add(s.cluster_memory_capacity.unwrap_or(0));
                rollup.memory_available = rollup
                    .memory_available
                    .saturating_add(s.cluster_memory_available.unwrap_or(0));
                rollup.nodes = rollup.nodes.saturating_add(s.node_count.unwrap_or(0));
                rollup.nodes_ready = rollup
                    .nodes_ready
                    .saturating_add(s.node_ready_count.unwrap_or(0));
            }
        }
        Ok(rollup)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryStore;

    // The conformance macro takes async factories (a database store needs them).
    #[allow(clippy::unused_async)]
    async fn fresh() -> Arc<MemoryStore> {
        Arc::new(MemoryStore::new())
    }

    /// The memory store's "second replica" is another handle on the same maps.
    #[allow(clippy::unused_async)]
    async fn same(store: &Arc<MemoryStore>) -> Arc<MemoryStore> {
        Arc::clone(store)
    }

    brokkr_testing::store_conformance_tests!(fresh(), same);

    mod rollup_property {
        use brokkr_core::health::Health;
        use brokkr_testing::conformance::{
            FleetStep, ROLLUP_AGENTS, ROLLUP_OBJECTS, fleet_rollup_matches_a_full_recompute_after,
        };
        use proptest::prelude::*;

        use super::fresh;

        fn step() -> impl Strategy<Value = FleetStep> {
            let status = prop_oneof![
                Just(Health::Healthy),
                Just(Health::Unknown),
                Just(Health::Degraded),
                Just(Health::Failing)
            ];
            prop_oneof![
                6 => (0..ROLLUP_AGENTS, 0..ROLLUP_OBJECTS, status, 0i64..300)
                    .prop_map(|(agent, object, status, at)| FleetStep::Report { agent, object, status, at }),
                3 => (0..ROLLUP_AGENTS, 0i64..300, prop::option::of(0i64..8000))
                    .prop_map(|(agent, at, cpu)| FleetStep::Heartbeat { agent, at, cpu }),
                1 => (0..ROLLUP_AGENTS).prop_map(|agent| FleetStep::Delete { agent }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

            /// Whatever the history, the maintained rollup equals a full recompute.
            #[test]
            fn the_rollup_equals_a_full_recompute(steps in prop::collection::vec(step(), 1..40)) {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                runtime.block_on(async {
                    fleet_rollup_matches_a_full_recompute_after(fresh().await, &steps).await;
                });
            }
        }
    }
}
