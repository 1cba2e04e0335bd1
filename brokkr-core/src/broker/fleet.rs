//! The fleet summary: a snapshot refreshed ahead of readers, never older than
//! `fleet_snapshot_max_age`.

use super::{
    Broker, FleetAgents, FleetCapacity, FleetHealth, FleetQueue, FleetSnapshot, FleetSummary,
};
use crate::Result;
use crate::auth::Principal;
use crate::store::Store;

impl<S: Store + ?Sized> Broker<S> {
    /// The fleet at a glance (admin): the last snapshot while it is younger than
    /// `fleet_snapshot_max_age` (its `generated_at` says when it was taken), else a new
    /// one. Health counts come from the store's maintained rollup; agent counts and
    /// capacity need a pass over every agent, which the snapshot spares most calls.
    pub async fn fleet_summary(&self, who: &Principal) -> Result<FleetSummary> {
        who.require_admin()?;
        let now = self.now();
        let max_age = self.inner.shared.config.fleet_snapshot_max_age;
        if let Some(snapshot) = self.fleet_snapshot()
            && snapshot.generated_at <= now
            && now - snapshot.generated_at < max_age
        {
            return Ok(snapshot);
        }
        self.refresh_fleet_summary().await
    }

    /// Computes the fleet summary now and keeps it as the snapshot (unless a newer one
    /// arrived meanwhile). Hosts call this ahead of demand so readers never wait for the
    /// computation; the HTTP layer does while summaries are being read.
    pub async fn refresh_fleet_summary(&self) -> Result<FleetSummary> {
        let ticket = 1 + self
            .inner
            .shared
            .fleet_tickets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = self.now();
        let policy = &self.inner.shared.config.staleness;
        let r = self
            .store_ref()
            .fleet_rollup(now - policy.stale_after, now - policy.lost_after)
            .await?;
        let summary = FleetSummary {
            agents: FleetAgents {
                total: r.agents,
                fresh: r.fresh,
                stale: r.stale,
                lost: r.lost,
            },
            health: FleetHealth {
                healthy: r.healthy,
                degraded: r.degraded,
                failing: r.failing,
                unknown: r.unknown,
            },
            capacity: FleetCapacity {
                clusters: r.capacity_clusters,
                cpu_capacity: r.cpu_capacity,
                cpu_available: r.cpu_available,
                memory_capacity: r.memory_capacity,
                memory_available: r.memory_available,
                nodes: r.nodes,
                nodes_ready: r.nodes_ready,
            },
            queue: FleetQueue {
                depth_total: r.queue_depth,
                backlog_total: r.work_order_backlog,
            },
            generated_at: now,
        };
        let mut slot = self
            .inner
            .shared
            .fleet_snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A computation that started later wins (ordered by start, not by the clock,
        // which may step back).
        if ticket > slot.ticket {
            *slot = FleetSnapshot {
                ticket,
                summary: Some(summary.clone()),
            };
        }
        Ok(summary)
    }

    pub(super) fn fleet_snapshot(&self) -> Option<FleetSummary> {
        self.inner
            .shared
            .fleet_snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .summary
            .clone()
    }
}
