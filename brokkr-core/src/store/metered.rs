//! [`MeteredStore`]: any [`Store`] with every operation timed for a [`StoreObserver`]
//! (the HTTP crate's metrics are one), so store latency is measured the same way
//! whatever the backend.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AgentLiveness, AgentStore, CatalogStore, DeliveryStore, DiagnosticCounts, DiagnosticStore,
    EventStore, FleetRollup, FleetStore, HealthStore, HeartbeatRecord, Page, PageRequest, PakHash,
    ResultOutcome, Store, UpsertOutcome, WebhookStore, WorkOrderStore,
};
use crate::Result;
use crate::diagnostics::{ClaimOutcome, DiagnosticRequest};
use crate::events::{StoredEvent, Webhook};
use crate::ids::{AgentId, DeploymentObjectId, DiagnosticId, StackId, WebhookId, WorkOrderId};
use crate::model::{
    Agent, Delivery, DeploymentObject, DeploymentStatusEvent, DiagnosticOutcome, HealthRecord,
    Stack, Target, WorkOrder,
};
use crate::staleness::Staleness;

/// Told about every store operation: its name (the trait method's), how long it took,
/// and whether it succeeded.
pub trait StoreObserver: Send + Sync {
    /// One finished operation.
    fn observe(&self, operation: &'static str, elapsed: Duration, ok: bool);

    /// Called before each operation; an error is returned instead of calling the
    /// store (to shed load, keep a replica read-only, or inject faults in tests).
    fn admit(&self, operation: &'static str) -> Result<()> {
        let _ = operation;
        Ok(())
    }
}

/// One store call in flight.
struct Pending<'a> {
    observer: &'a dyn StoreObserver,
    operation: &'static str,
    started: Instant,
    done: bool,
}

impl Pending<'_> {
    fn finish(&mut self, ok: bool) {
        self.done = true;
        self.observer
            .observe(self.operation, self.started.elapsed(), ok);
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.observer
                .observe(self.operation, self.started.elapsed(), false);
        }
    }
}

/// A store that reports the duration of every call to an observer.
pub struct MeteredStore<S: ?Sized> {
    inner: Arc<S>,
    observer: Arc<dyn StoreObserver>,
}

impl<S: ?Sized> MeteredStore<S> {
    /// Wraps `inner`.
    pub fn new(inner: Arc<S>, observer: Arc<dyn StoreObserver>) -> Self {
        Self { inner, observer }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        // Reports from drop as well: a call cut off by a timeout (its future dropped)
        // counts as a failure with the time it took, instead of vanishing.
        let mut pending = Pending {
            observer: &*self.observer,
            operation,
            started: Instant::now(),
            done: false,
        };
        let result = match self.observer.admit(operation) {
            Ok(()) => call.await,
            Err(refused) => Err(refused),
        };
        pending.finish(result.is_ok());
        result
    }
}

#[async_trait]
impl<S: Store + ?Sized> AgentStore for MeteredStore<S> {
    async fn insert_agent(&self, agent: &Agent, pak_hash: &PakHash) -> Result<()> {
        self.timed("insert_agent", self.inner.insert_agent(agent, pak_hash))
            .await
    }

    async fn get_agent(&self, id: AgentId) -> Result<Option<Agent>> {
        self.timed("get_agent", self.inner.get_agent(id)).await
    }

    async fn list_agents(&self, page: PageRequest) -> Result<Page<Agent>> {
        self.timed("list_agents", self.inner.list_agents(page))
            .await
    }

    async fn delete_agent(&self, id: AgentId) -> Result<bool> {
        self.timed("delete_agent", self.inner.delete_agent(id))
            .await
    }

    async fn replace_pak(&self, id: AgentId, pak_hash: Option<&PakHash>) -> Result<()> {
        self.timed("replace_pak", self.inner.replace_pak(id, pak_hash))
            .await
    }

    async fn agent_for_pak(&self, pak_hash: &PakHash) -> Result<Option<AgentId>> {
        self.timed("agent_for_pak", self.inner.agent_for_pak(pak_hash))
            .await
    }

    async fn record_heartbeats(&self, beats: &[HeartbeatRecord]) -> Result<u64> {
        self.timed("record_heartbeats", self.inner.record_heartbeats(beats))
            .await
    }

    async fn liveness(&self, id: AgentId) -> Result<Option<AgentLiveness>> {
        self.timed("liveness", self.inner.liveness(id)).await
    }

    async fn liveness_of(
        &self,
        ids: &[AgentId],
    ) -> Result<std::collections::HashMap<AgentId, AgentLiveness>> {
        self.timed("liveness_of", self.inner.liveness_of(ids)).await
    }
}

#[async_trait]
impl<S: Store + ?Sized> CatalogStore for MeteredStore<S> {
    async fn insert_stack(&self, stack: &Stack) -> Result<()> {
        self.timed("insert_stack", self.inner.insert_stack(stack))
            .await
    }

    async fn get_stack(&self, id: StackId) -> Result<Option<Stack>> {
        self.timed("get_stack", self.inner.get_stack(id)).await
    }

    async fn insert_deployment_object(
        &self,
        object: &DeploymentObject,
    ) -> Result<DeploymentObject> {
        self.timed(
            "insert_deployment_object",
            self.inner.insert_deployment_object(object),
        )
        .await
    }

    async fn get_deployment_object(
        &self,
        id: DeploymentObjectId,
    ) -> Result<Option<DeploymentObject>> {
        self.timed(
            "get_deployment_object",
            self.inner.get_deployment_object(id),
        )
        .await
    }

    async fn reach_of_agent(
        &self,
        agent: AgentId,
        objects: &[DeploymentObjectId],
    ) -> Result<Option<std::collections::HashMap<DeploymentObjectId, super::ObjectReach>>> {
        self.timed("reach_of_agent", self.inner.reach_of_agent(agent, objects))
            .await
    }

    async fn latest_objects(&self, stacks: &[StackId]) -> Result<Vec<DeploymentObject>> {
        self.timed("latest_objects", self.inner.latest_objects(stacks))
            .await
    }

    async fn insert_target(&self, target: &Target) -> Result<bool> {
        self.timed("insert_target", self.inner.insert_target(target))
            .await
    }

    async fn targets_of_agent(&self, agent: AgentId) -> Result<Vec<Target>> {
        self.timed("targets_of_agent", self.inner.targets_of_agent(agent))
            .await
    }

    async fn agents_targeting(&self, stack: StackId) -> Result<Vec<AgentId>> {
        self.timed("agents_targeting", self.inner.agents_targeting(stack))
            .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> DeliveryStore for MeteredStore<S> {
    async fn apply_status_events(
        &self,
        agent: AgentId,
        events: &[DeploymentStatusEvent],
    ) -> Result<u64> {
        self.timed(
            "apply_status_events",
            self.inner.apply_status_events(agent, events),
        )
        .await
    }

    async fn ensure_deliveries(&self, pairs: &[(AgentId, DeploymentObjectId)]) -> Result<u64> {
        self.timed("ensure_deliveries", self.inner.ensure_deliveries(pairs))
            .await
    }

    async fn deliveries_of_object(&self, object: DeploymentObjectId) -> Result<Vec<Delivery>> {
        self.timed(
            "deliveries_of_object",
            self.inner.deliveries_of_object(object),
        )
        .await
    }

    async fn deliveries_of_agent(&self, agent: AgentId) -> Result<Vec<(Delivery, DateTime<Utc>)>> {
        self.timed("deliveries_of_agent", self.inner.deliveries_of_agent(agent))
            .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> WorkOrderStore for MeteredStore<S> {
    async fn insert_work_order(&self, order: &WorkOrder) -> Result<()> {
        self.timed("insert_work_order", self.inner.insert_work_order(order))
            .await
    }

    async fn get_work_order(&self, id: WorkOrderId) -> Result<Option<WorkOrder>> {
        self.timed("get_work_order", self.inner.get_work_order(id))
            .await
    }

    async fn open_work_orders(&self, agent: AgentId) -> Result<Vec<WorkOrder>> {
        self.timed("open_work_orders", self.inner.open_work_orders(agent))
            .await
    }

    async fn claim_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder> {
        self.timed(
            "claim_work_order",
            self.inner.claim_work_order(id, agent, now),
        )
        .await
    }

    async fn finish_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        success: bool,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder> {
        self.timed(
            "finish_work_order",
            self.inner.finish_work_order(id, agent, success, now),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> HealthStore for MeteredStore<S> {
    async fn upsert_health(
        &self,
        records: &[HealthRecord],
        rewrite_before: DateTime<Utc>,
    ) -> Result<Vec<UpsertOutcome>> {
        self.timed(
            "upsert_health",
            self.inner.upsert_health(records, rewrite_before),
        )
        .await
    }

    async fn health_of_object(&self, object: DeploymentObjectId) -> Result<Vec<HealthRecord>> {
        self.timed("health_of_object", self.inner.health_of_object(object))
            .await
    }

    async fn health_of_objects(&self, objects: &[DeploymentObjectId]) -> Result<Vec<HealthRecord>> {
        self.timed("health_of_objects", self.inner.health_of_objects(objects))
            .await
    }

    async fn health_of_agent(&self, agent: AgentId) -> Result<Vec<HealthRecord>> {
        self.timed("health_of_agent", self.inner.health_of_agent(agent))
            .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> DiagnosticStore for MeteredStore<S> {
    async fn insert_diagnostic_requests(&self, requests: &[DiagnosticRequest]) -> Result<()> {
        self.timed(
            "insert_diagnostic_requests",
            self.inner.insert_diagnostic_requests(requests),
        )
        .await
    }

    async fn get_diagnostic(
        &self,
        id: DiagnosticId,
    ) -> Result<Option<(DiagnosticRequest, Option<DiagnosticOutcome>)>> {
        self.timed("get_diagnostic", self.inner.get_diagnostic(id))
            .await
    }

    async fn pending_diagnostics(
        &self,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DiagnosticRequest>> {
        self.timed(
            "pending_diagnostics",
            self.inner.pending_diagnostics(agent, now),
        )
        .await
    }

    async fn claim_diagnostic(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(DiagnosticRequest, ClaimOutcome)> {
        self.timed(
            "claim_diagnostic",
            self.inner.claim_diagnostic(id, agent, token, now),
        )
        .await
    }

    async fn store_diagnostic_result(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        outcome: &DiagnosticOutcome,
        now: DateTime<Utc>,
    ) -> Result<ResultOutcome> {
        self.timed(
            "store_diagnostic_result",
            self.inner.store_diagnostic_result(id, agent, outcome, now),
        )
        .await
    }

    async fn delete_expired_diagnostics(&self, now: DateTime<Utc>) -> Result<u64> {
        self.timed(
            "delete_expired_diagnostics",
            self.inner.delete_expired_diagnostics(now),
        )
        .await
    }

    async fn diagnostic_counts(&self, now: DateTime<Utc>) -> Result<DiagnosticCounts> {
        self.timed("diagnostic_counts", self.inner.diagnostic_counts(now))
            .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> FleetStore for MeteredStore<S> {
    async fn fleet_rollup(
        &self,
        stale_before: DateTime<Utc>,
        lost_before: DateTime<Utc>,
    ) -> Result<FleetRollup> {
        self.timed(
            "fleet_rollup",
            self.inner.fleet_rollup(stale_before, lost_before),
        )
        .await
    }

    async fn ping(&self) -> Result<()> {
        self.timed("ping", self.inner.ping()).await
    }
}

#[async_trait]
impl<S: Store + ?Sized> EventStore for MeteredStore<S> {
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        self.timed("events_after", self.inner.events_after(after, limit))
            .await
    }

    async fn last_event_seq(&self) -> Result<u64> {
        self.timed("last_event_seq", self.inner.last_event_seq())
            .await
    }

    async fn announce_staleness(
        &self,
        agent: AgentId,
        state: Staleness,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredEvent>> {
        self.timed(
            "announce_staleness",
            self.inner.announce_staleness(agent, state, at),
        )
        .await
    }

    async fn claim_event_delivery(
        &self,
        webhook: WebhookId,
        seq: u64,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        self.timed(
            "claim_event_delivery",
            self.inner.claim_event_delivery(webhook, seq, at),
        )
        .await
    }

    async fn delete_events_before(&self, before: DateTime<Utc>) -> Result<u64> {
        self.timed(
            "delete_events_before",
            self.inner.delete_events_before(before),
        )
        .await
    }
}

#[async_trait]
impl<S: Store + ?Sized> WebhookStore for MeteredStore<S> {
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<()> {
        self.timed("insert_webhook", self.inner.insert_webhook(webhook))
            .await
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        self.timed("list_webhooks", self.inner.list_webhooks())
            .await
    }

    async fn delete_webhook(&self, id: WebhookId) -> Result<bool> {
        self.timed("delete_webhook", self.inner.delete_webhook(id))
            .await
    }
}
