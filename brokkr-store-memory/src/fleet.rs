//! The fleet rollup and the store's ping.

use crate::MemoryStore;
use async_trait::async_trait;
use brokkr_core::Result;
use brokkr_core::store::{FleetRollup, FleetStore};
use chrono::{DateTime, Utc};

#[async_trait]
impl FleetStore for MemoryStore {
    async fn fleet_rollup(
        &self,
        stale_before: DateTime<Utc>,
        lost_before: DateTime<Utc>,
    ) -> Result<FleetRollup> {
        let state = self.read();
        let mut rollup = state.health_counts.clone();
        rollup.agents = state.agents.len() as u64;
        // Only deliveries of each stack's latest object wait: a superseded one never will.
        let effective: std::collections::HashSet<_> =
            state.latest.values().map(|(_, id)| *id).collect();
        rollup.queue_depth = state
            .deliveries
            .values()
            .filter(|d| {
                d.state == brokkr_core::model::DeliveryState::Pending
                    && effective.contains(&d.deployment_object_id)
            })
            .count() as u64;
        rollup.work_order_backlog = state
            .work_orders
            .values()
            .filter(|o| o.status.is_open())
            .count() as u64;
        for live in state.liveness.values() {
            match live.last_heartbeat_at {
                Some(t) if t >= stale_before => rollup.fresh += 1,
                Some(t) if t >= lost_before => rollup.stale += 1,
                _ => rollup.lost += 1,
            }
            // Capacity of live clusters only: a lost agent's snapshot is history.
            let alive = live.last_heartbeat_at.is_some_and(|t| t >= lost_before);
            if let Some(s) = live.snapshot.as_ref().filter(|_| alive) {
                rollup.capacity_clusters += 1;
                rollup.cpu_capacity = rollup
                    .cpu_capacity
                    .saturating_add(s.cluster_cpu_capacity.unwrap_or(0));
                rollup.cpu_available = rollup
                    .cpu_available
                    .saturating_add(s.cluster_cpu_available.unwrap_or(0));
                rollup.memory_capacity = rollup
                    .memory_capacity
                    .saturating_add(s.cluster_memory_capacity.unwrap_or(0));
                rollup.memory_available = rollup
                    .memory_available
                    .saturating_add(s.cluster_memory_available.unwrap_or(0));
                rollup.nodes = rollup.nodes.saturating_add(s.node_count.unwrap_or(0));
                rollup.nodes_ready = rollup
                    .nodes_ready
                    .saturating_add(s.node_ready_count.unwrap_or(0));
            }
        }
        Ok(rollup)
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
