//! The fleet rollup: per-agent counters summed without scanning health rows.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::health::Health;

/// Counts for the fleet summary, maintained as writes happen rather than computed by
/// scanning every health row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FleetRollup {
    /// Registered agents.
    pub agents: u64,
    /// Agents whose last heartbeat is at or after `stale_before`.
    pub fresh: u64,
    /// Agents whose last heartbeat is before `stale_before` but at or after `lost_before`.
    pub stale: u64,
    /// Agents never heard of or heard of before `lost_before`.
    pub lost: u64,
    /// Stored health rows by status.
    pub healthy: u64,
    /// Stored health rows by status.
    pub unknown: u64,
    /// Stored health rows by status.
    pub degraded: u64,
    /// Stored health rows by status.
    pub failing: u64,
    /// Agents not lost whose latest snapshot the capacity sums cover.
    pub capacity_clusters: u64,
    /// Sum of the latest snapshots' CPU capacity (millicores), of agents not lost.
    pub cpu_capacity: i64,
    /// Sum of the latest snapshots' available CPU (millicores).
    pub cpu_available: i64,
    /// Sum of the latest snapshots' memory capacity (bytes).
    pub memory_capacity: i64,
    /// Sum of the latest snapshots' available memory (bytes).
    pub memory_available: i64,
    /// Sum of node counts.
    pub nodes: i64,
    /// Sum of ready node counts.
    pub nodes_ready: i64,
    /// Deliveries of each stack's latest object not yet acknowledged (a superseded
    /// object's delivery never will be).
    pub queue_depth: u64,
    /// Work orders pending or claimed.
    pub work_order_backlog: u64,
}

impl FleetRollup {
    /// Adds one health row of `status` to the counts.
    pub fn count_health(&mut self, status: Health, delta: i64) {
        let slot = match status {
            Health::Healthy => &mut self.healthy,
            Health::Unknown => &mut self.unknown,
            Health::Degraded => &mut self.degraded,
            Health::Failing => &mut self.failing,
        };
        *slot = slot.saturating_add_signed(delta);
    }
}

/// The fleet-wide rollup.
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// Counts and sums over the fleet; staleness relative to the two cut-offs.
    async fn fleet_rollup(
        &self,
        stale_before: DateTime<Utc>,
        lost_before: DateTime<Utc>,
    ) -> Result<FleetRollup>;

    /// Whether the store is reachable and ready (migrations applied).
    async fn ping(&self) -> Result<()>;
}
