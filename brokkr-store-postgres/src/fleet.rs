//! The fleet rollup: the agents' maintained health counts plus figures over agents
//! (never over health rows).

use async_trait::async_trait;
use brokkr_core::Result;
use brokkr_core::store::{FleetRollup, FleetStore};
use chrono::{DateTime, Utc};

use crate::PgStore;
use crate::error::Db;
use crate::rows::{count, get, parse};

#[async_trait]
impl FleetStore for PgStore {
    async fn fleet_rollup(
        &self,
        stale_before: DateTime<Utc>,
        lost_before: DateTime<Utc>,
    ) -> Result<FleetRollup> {
        let mut rollup = FleetRollup::default();
        let rows = sqlx::query(
            "SELECT status, sum(count)::bigint AS count FROM agent_health_counts GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await
        .db()?;
        for row in &rows {
            let status = parse("status", &get::<String>(row, "status")?)?;
            rollup.count_health(status, get::<i64>(row, "count")?);
        }
        let agents = sqlx::query(
            "SELECT count(*) AS agents,
                 count(*) FILTER (WHERE last_heartbeat_at >= $1) AS fresh,
                 count(*) FILTER (WHERE last_heartbeat_at < $1 AND last_heartbeat_at >= $2) AS stale,
                 count(*) FILTER (WHERE last_heartbeat_at >= $2 AND snapshot IS NOT NULL) AS capacity_clusters,
                 LEAST(coalesce(sum((snapshot->>'cluster_cpu_capacity')::numeric) FILTER (WHERE last_heartbeat_at >= $2), 0), 9223372036854775807)::bigint AS cpu_capacity,
                 LEAST(coalesce(sum((snapshot->>'cluster_cpu_available')::numeric) FILTER (WHERE last_heartbeat_at >= $2), 0), 9223372036854775807)::bigint AS cpu_available,
                 LEAST(coalesce(sum((snapshot->>'cluster_memory_capacity')::numeric) FILTER (WHERE last_heartbeat_at >= $2), 0), 9223372036854775807)::bigint AS memory_capacity,
                 LEAST(coalesce(sum((snapshot->>'cluster_memory_available')::numeric) FILTER (WHERE last_heartbeat_at >= $2), 0), 9223372036854775807)::bigint AS memory_available,
                 LEAST(coalesce(sum((snapshot->>'node_count')::numeric) FILTER (WHERE last_heartbeat_at >= $2), 0), 9223372036854775807)::bigint AS nodes,
                 LEAST(coalesce(sum((snapshot->>'node_ready_count')::numeric) FILTER (WHERE last_heartbeat_at >= $2), 0), 9223372036854775807)::bigint AS nodes_ready,
                 (SELECT count(*) FROM deliveries AS d
                      JOIN deployment_objects AS o ON o.id = d.deployment_object_id
                      JOIN stacks AS s ON s.id = o.stack_id AND s.last_sequence = o.sequence_id
                      WHERE d.state = 'pending') AS queue_depth,
                 (SELECT count(*) FROM work_orders WHERE status IN ('pending', 'claimed')) AS backlog
             FROM agent_liveness",
        )
        .bind(stale_before)
        .bind(lost_before)
        .fetch_one(&self.pool)
        .await
        .db()?;
        rollup.agents = count(&agents, "agents")?;
        rollup.fresh = count(&agents, "fresh")?;
        rollup.stale = count(&agents, "stale")?;
        rollup.lost = rollup.agents - rollup.fresh - rollup.stale;
        rollup.capacity_clusters = count(&agents, "capacity_clusters")?;
        rollup.cpu_capacity = get(&agents, "cpu_capacity")?;
        rollup.cpu_available = get(&agents, "cpu_available")?;
        rollup.memory_capacity = get(&agents, "memory_capacity")?;
        rollup.memory_available = get(&agents, "memory_available")?;
        rollup.nodes = get(&agents, "nodes")?;
        rollup.nodes_ready = get(&agents, "nodes_ready")?;
        rollup.queue_depth = count(&agents, "queue_depth")?;
        rollup.work_order_backlog = count(&agents, "backlog")?;
        Ok(rollup)
    }

    async fn ping(&self) -> Result<()> {
        // Reachable, and migrated: the newest migration is recorded as applied.
        let latest = crate::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .db()?;
        if applied.unwrap_or(0) < latest {
            return Err(brokkr_core::Error::Unavailable(
                "database migrations are not applied".into(),
            ));
        }
        Ok(())
    }
}
