//! Webhook subscriptions and the events outbox: what changed in the fleet, for
//! live feeds and deliveries, and its cleanup.

use chrono::{DateTime, Utc};

use super::{Broker, EVENT_RETENTION};
use crate::auth::Principal;
use crate::events::{NewWebhook, StoredEvent, Webhook};
use crate::ids::{AgentId, WebhookId};
use crate::staleness::Staleness;
use crate::store::Store;
use crate::{Error, Result};

impl<S: Store + ?Sized> Broker<S> {
    /// Registers a webhook subscription (admin).
    pub async fn register_webhook(&self, who: &Principal, new: NewWebhook) -> Result<Webhook> {
        who.require_admin()?;
        new.validate()?;
        self.config()
            .webhook_destinations
            .check_url(&new.url)
            .map_err(|reason| Error::invalid("url", reason))?;
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
