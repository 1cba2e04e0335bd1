//! Deliveries and the agents' reconcile status events.

use crate::MemoryStore;
use async_trait::async_trait;
use brokkr_core::ids::{AgentId, DeploymentObjectId};
use brokkr_core::model::{Delivery, DeploymentStatusEvent};
use brokkr_core::store::DeliveryStore;
use brokkr_core::{Error, Result};
use chrono::{DateTime, Utc};

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
