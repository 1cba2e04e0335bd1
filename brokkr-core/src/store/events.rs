//! Webhook subscriptions and the events outbox.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;
use crate::ids::AgentId;

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
/// Health transitions are written by [`HealthStore::upsert_health`](super::HealthStore::upsert_health) itself, in the same
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
