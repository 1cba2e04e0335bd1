//! `deliveries`: per agent × deployment object reconcile status.

use std::collections::HashMap;

use async_trait::async_trait;
use brokkr_core::ids::{AgentId, DeploymentObjectId};
use brokkr_core::model::{Delivery, DeploymentStatusEvent};
use brokkr_core::store::DeliveryStore;
use brokkr_core::{Error, Result};
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::PgStore;
use crate::error::Db;
use crate::rows::{get, parse, text};

const COLUMNS: &str = "d.agent_id, d.deployment_object_id, d.state, d.acknowledged_at, d.applied_at,
    d.retry_count, d.last_attempt_at, d.failure_reason, d.failure_message, d.reconciliation_duration_ms";

fn delivery(row: &PgRow) -> Result<Delivery> {
    let reason: Option<String> = get(row, "failure_reason")?;
    let retry: i64 = get(row, "retry_count")?;
    let duration: Option<i64> = get(row, "reconciliation_duration_ms")?;
    Ok(Delivery {
        agent_id: AgentId(get(row, "agent_id")?),
        deployment_object_id: DeploymentObjectId(get(row, "deployment_object_id")?),
        state: parse("state", &get::<String>(row, "state")?)?,
        acknowledged_at: get(row, "acknowledged_at")?,
        applied_at: get(row, "applied_at")?,
        retry_count: u32::try_from(retry).unwrap_or(u32::MAX),
        last_attempt_at: get(row, "last_attempt_at")?,
        failure_reason: reason.map(|r| parse("failure_reason", &r)).transpose()?,
        failure_message: get(row, "failure_message")?,
        reconciliation_duration_ms: duration.and_then(|d| u64::try_from(d).ok()),
    })
}

use crate::locks::AGENT_LOCK;

#[async_trait]
impl DeliveryStore for PgStore {
    async fn apply_status_events(
        &self,
        agent: AgentId,
        events: &[DeploymentStatusEvent],
    ) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query(AGENT_LOCK)
            .bind(agent.0.to_string())
            .execute(&mut *tx)
            .await
            .db()?;
        let ids: Vec<Uuid> = events.iter().map(|e| e.deployment_object_id.0).collect();
        let known: Vec<Uuid> =
            sqlx::query_scalar("SELECT id FROM deployment_objects WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut *tx)
                .await
                .db()?;
        if let Some(missing) = ids.iter().find(|id| !known.contains(id)) {
            return Err(Error::not_found("deployment object", missing));
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deliveries d WHERE d.agent_id = $1 AND d.deployment_object_id = ANY($2)"
        )))
        .bind(agent.0)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await
        .db()?;
        let mut current: HashMap<DeploymentObjectId, Delivery> = HashMap::new();
        for row in &rows {
            let d = delivery(row)?;
            current.insert(d.deployment_object_id, d);
        }
        // The same rule as every store: Delivery::apply, in order.
        let mut applied = 0;
        for event in events {
            let d = current
                .entry(event.deployment_object_id)
                .or_insert_with(|| Delivery::pending(agent, event.deployment_object_id));
            applied += u64::from(d.apply(event));
        }
        write(&mut tx, current.values()).await?;
        tx.commit().await.db()?;
        Ok(applied)
    }

    async fn ensure_deliveries(&self, pairs: &[(AgentId, DeploymentObjectId)]) -> Result<u64> {
        if pairs.is_empty() {
            return Ok(0);
        }
        let agents: Vec<Uuid> = pairs.iter().map(|(a, _)| a.0).collect();
        let objects: Vec<Uuid> = pairs.iter().map(|(_, o)| o.0).collect();
        let done = sqlx::query(
            "INSERT INTO deliveries (agent_id, deployment_object_id, state)
             SELECT a, o, 'pending' FROM UNNEST($1::uuid[], $2::uuid[]) AS t(a, o)
             ON CONFLICT (agent_id, deployment_object_id) DO NOTHING",
        )
        .bind(agents)
        .bind(objects)
        .execute(&self.pool)
        .await
        .db()?;
        Ok(done.rows_affected())
    }

    async fn deliveries_of_object(&self, object: DeploymentObjectId) -> Result<Vec<Delivery>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deliveries d WHERE d.deployment_object_id = $1 ORDER BY d.agent_id"
        )))
        .bind(object.0)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(delivery).collect()
    }

    async fn deliveries_of_agent(&self, agent: AgentId) -> Result<Vec<(Delivery, DateTime<Utc>)>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS}, o.created_at AS object_created_at FROM deliveries d
             JOIN deployment_objects o ON o.id = d.deployment_object_id
             WHERE d.agent_id = $1 ORDER BY d.deployment_object_id"
        )))
        .bind(agent.0)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter()
            .map(|r| Ok((delivery(r)?, get(r, "object_created_at")?)))
            .collect()
    }
}

/// Writes deliveries back in one statement.
async fn write<'a>(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    deliveries: impl Iterator<Item = &'a Delivery>,
) -> Result<()> {
    let ds: Vec<&Delivery> = deliveries.collect();
    let column = |f: &dyn Fn(&Delivery) -> Option<DateTime<Utc>>| {
        ds.iter().map(|d| f(d)).collect::<Vec<_>>()
    };
    sqlx::query(
        "INSERT INTO deliveries (agent_id, deployment_object_id, state, acknowledged_at, applied_at,
             retry_count, last_attempt_at, failure_reason, failure_message, reconciliation_duration_ms)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::timestamptz[],
             $6::bigint[], $7::timestamptz[], $8::text[], $9::text[], $10::bigint[])
         ON CONFLICT (agent_id, deployment_object_id) DO UPDATE SET
             state = EXCLUDED.state, acknowledged_at = EXCLUDED.acknowledged_at,
             applied_at = EXCLUDED.applied_at, retry_count = EXCLUDED.retry_count,
             last_attempt_at = EXCLUDED.last_attempt_at, failure_reason = EXCLUDED.failure_reason,
             failure_message = EXCLUDED.failure_message,
             reconciliation_duration_ms = EXCLUDED.reconciliation_duration_ms",
    )
    .bind(ds.iter().map(|d| d.agent_id.0).collect::<Vec<Uuid>>())
    .bind(ds.iter().map(|d| d.deployment_object_id.0).collect::<Vec<Uuid>>())
    .bind(ds.iter().map(|d| text(&d.state)).collect::<Vec<_>>())
    .bind(column(&|d| d.acknowledged_at))
    .bind(column(&|d| d.applied_at))
    .bind(ds.iter().map(|d| i64::from(d.retry_count)).collect::<Vec<_>>())
    .bind(column(&|d| d.last_attempt_at))
    .bind(ds.iter().map(|d| d.failure_reason.as_ref().map(text)).collect::<Vec<_>>())
    .bind(ds.iter().map(|d| d.failure_message.clone()).collect::<Vec<_>>())
    .bind(
        ds.iter()
            .map(|d| d.reconciliation_duration_ms.map(|v| i64::try_from(v).unwrap_or(i64::MAX)))
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await
    .db()?;
    Ok(())
}
