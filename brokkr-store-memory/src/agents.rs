//! Agents, their keys and heartbeats.

use std::collections::HashMap;

use crate::MemoryStore;
use async_trait::async_trait;
use brokkr_core::ids::AgentId;
use brokkr_core::model::Agent;
use brokkr_core::store::{AgentLiveness, AgentStore, HeartbeatRecord, Page, PageRequest, PakHash};
use brokkr_core::{Error, Result};

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
            // A late heartbeat never moves the last health check back.
            live.health_checked_at = live.health_checked_at.max(beat.health_checked_at);
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
