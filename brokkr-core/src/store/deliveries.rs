//! Deliveries: each agent × object reconcile status.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;
use crate::ids::{AgentId, DeploymentObjectId};
use crate::model::{Delivery, DeploymentStatusEvent};

/// Per agent × deployment object reconcile status.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Applies reconcile outcomes reported by `agent`, in order, in one transaction:
    /// creates the delivery row when missing, never moves `last_attempt_at` back (an
    /// older event than the stored attempt is skipped). Returns how many were applied.
    async fn apply_status_events(
        &self,
        agent: AgentId,
        events: &[DeploymentStatusEvent],
    ) -> Result<u64>;

    /// Creates a pending delivery for each (agent, object) pair that has none yet;
    /// existing deliveries are left as they are. Returns how many were created.
    async fn ensure_deliveries(&self, pairs: &[(AgentId, DeploymentObjectId)]) -> Result<u64>;

    /// Deliveries of one object, one per agent it was delivered to.
    async fn deliveries_of_object(&self, object: DeploymentObjectId) -> Result<Vec<Delivery>>;

    /// Deliveries of one agent, each with its object's `created_at` (for latency).
    async fn deliveries_of_agent(&self, agent: AgentId) -> Result<Vec<(Delivery, DateTime<Utc>)>>;
}
