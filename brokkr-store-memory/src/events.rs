//! Webhook subscriptions and the fleet events outbox.

use crate::MemoryStore;
use async_trait::async_trait;
use brokkr_core::events::{FleetEvent, StoredEvent};
use brokkr_core::ids::{AgentId, WebhookId};
use brokkr_core::staleness::Staleness;
use brokkr_core::store::EventStore;
use brokkr_core::{Error, Result};
use chrono::{DateTime, Utc};

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
