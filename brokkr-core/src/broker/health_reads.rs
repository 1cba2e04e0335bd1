//! Health as operators read it: per object, per stack, per agent; operational and
//! queue status.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::{
    AgentHealth, AgentHealthEntry, AgentObjectHealth, Broker, ObjectHealth, OperationalStatus,
    ReconcileStats, StackHealth, StackObjectHealth,
};
use crate::auth::Principal;
use crate::backlog::QueueStatus;
use crate::health::Health;
use crate::ids::{AgentId, DeploymentObjectId, StackId};
use crate::model::{Delivery, DeliveryState, DeploymentObject, HealthRecord};
use crate::store::{AgentLiveness, Store};
use crate::{Error, Result};

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

impl<S: Store + ?Sized> Broker<S> {
    /// Staleness of one stored verdict: the agent is lost, stopped checking, or stopped
    /// reporting this object. Returns since when, if stale.
    pub(super) fn stale_since(
        &self,
        record: &HealthRecord,
        live: Option<&AgentLiveness>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let c = &self.inner.shared.config;
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

    pub(super) async fn entries(
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
    pub(super) async fn object_entries(
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
        let policy = &self.inner.shared.config.staleness;
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
            &self.inner.shared.config.backlog,
            self.now(),
        ))
    }
}
