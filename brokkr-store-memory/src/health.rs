//! Health verdicts, with the fleet rollup kept up to date on every write.

use crate::MemoryStore;
use async_trait::async_trait;
use brokkr_core::Result;
use brokkr_core::events::FleetEvent;
use brokkr_core::ids::{AgentId, DeploymentObjectId};
use brokkr_core::model::HealthRecord;
use brokkr_core::store::{HealthStore, StoredVerdict, UpsertOutcome};
use chrono::{DateTime, Utc};

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
