//! `deployment_health` and its maintained counts in `fleet_health_counts`.

use std::collections::HashMap;

use async_trait::async_trait;
use brokkr_core::Result;
use brokkr_core::events::FleetEvent;
use brokkr_core::health::Health;
use brokkr_core::ids::{AgentId, DeploymentObjectId};
use brokkr_core::model::HealthRecord;
use brokkr_core::store::{HealthStore, UpsertOutcome};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::PgStore;
use crate::deliveries::AGENT_LOCK;
use crate::error::Db;
use crate::rows::{corrupt, get, json, parse, text};

const COLUMNS: &str = "agent_id, deployment_object_id, status, summary, checked_at, reported_at";

fn record(row: &PgRow) -> Result<HealthRecord> {
    Ok(HealthRecord {
        agent_id: AgentId(get(row, "agent_id")?),
        deployment_object_id: DeploymentObjectId(get(row, "deployment_object_id")?),
        status: parse("status", &get::<String>(row, "status")?)?,
        summary: json(row, "summary")?,
        checked_at: get(row, "checked_at")?,
        reported_at: get(row, "reported_at")?,
    })
}

#[async_trait]
impl HealthStore for PgStore {
    async fn upsert_health(
        &self,
        records: &[HealthRecord],
        rewrite_before: DateTime<Utc>,
    ) -> Result<Vec<UpsertOutcome>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.db()?;
        // Batches of one agent are serialized (they touch only that agent's rows), so
        // the stored rows read here stay current until commit.
        let mut agents: Vec<Uuid> = records.iter().map(|r| r.agent_id.0).collect();
        agents.sort_unstable();
        agents.dedup();
        for agent in &agents {
            sqlx::query(AGENT_LOCK)
                .bind(agent.to_string())
                .execute(&mut *tx)
                .await
                .db()?;
        }
        let keys_a: Vec<Uuid> = records.iter().map(|r| r.agent_id.0).collect();
        let keys_o: Vec<Uuid> = records.iter().map(|r| r.deployment_object_id.0).collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT h.{} FROM deployment_health h
             JOIN UNNEST($1::uuid[], $2::uuid[]) AS k(a, o)
               ON h.agent_id = k.a AND h.deployment_object_id = k.o",
            COLUMNS.replace(", ", ", h.")
        )))
        .bind(&keys_a)
        .bind(&keys_o)
        .fetch_all(&mut *tx)
        .await
        .db()?;
        let mut stored: HashMap<(AgentId, DeploymentObjectId), HealthRecord> = HashMap::new();
        for row in &rows {
            let r = record(row)?;
            stored.insert((r.agent_id, r.deployment_object_id), r);
        }

        // The same decision as every store makes.
        let mut outcomes = Vec::with_capacity(records.len());
        let mut deltas: HashMap<Health, i64> = HashMap::new();
        let mut write: Vec<&HealthRecord> = Vec::new();
        let mut events = Vec::new();
        for r in records {
            let old = stored.get(&(r.agent_id, r.deployment_object_id));
            let outcome = UpsertOutcome::decide(old, r, rewrite_before);
            if let UpsertOutcome::Accepted { previous } = outcome {
                events.extend(FleetEvent::health_transition(previous, r));
                if let Some(old) = previous {
                    *deltas.entry(old).or_default() -= 1;
                }
                *deltas.entry(r.status).or_default() += 1;
                write.push(r);
            }
            outcomes.push(outcome);
        }

        if !write.is_empty() {
            let mut summaries = Vec::with_capacity(write.len());
            for r in &write {
                summaries
                    .push(serde_json::to_value(&r.summary).map_err(|e| corrupt("summary", e))?);
            }
            sqlx::query(
                "INSERT INTO deployment_health (agent_id, deployment_object_id, status, summary, checked_at, reported_at)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[])
                 ON CONFLICT (agent_id, deployment_object_id) DO UPDATE SET
                     status = EXCLUDED.status, summary = EXCLUDED.summary,
                     checked_at = EXCLUDED.checked_at, reported_at = EXCLUDED.reported_at",
            )
            .bind(write.iter().map(|r| r.agent_id.0).collect::<Vec<_>>())
            .bind(write.iter().map(|r| r.deployment_object_id.0).collect::<Vec<_>>())
            .bind(write.iter().map(|r| text(&r.status)).collect::<Vec<_>>())
            .bind(summaries)
            .bind(write.iter().map(|r| r.checked_at).collect::<Vec<_>>())
            .bind(write.iter().map(|r| r.reported_at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .db()?;
            let (statuses, changes): (Vec<String>, Vec<i64>) = deltas
                .iter()
                .filter(|(_, d)| **d != 0)
                .map(|(s, d)| (text(s), *d))
                .unzip();
            if !statuses.is_empty() {
                // Lock the count rows in one fixed order: two batches moving rows in
                // opposite directions must not deadlock.
                sqlx::query(
                    "SELECT status FROM fleet_health_counts WHERE status = ANY($1) ORDER BY status FOR UPDATE",
                )
                .bind(&statuses)
                .execute(&mut *tx)
                .await
                .db()?;
                sqlx::query(
                    "UPDATE fleet_health_counts AS c SET count = c.count + d.delta
                     FROM UNNEST($1::text[], $2::bigint[]) AS d(status, delta)
                     WHERE c.status = d.status",
                )
                .bind(statuses)
                .bind(changes)
                .execute(&mut *tx)
                .await
                .db()?;
            }
        }
        // Status changes reach the outbox in the same transaction as the verdicts.
        if let Some(first) = records.first() {
            crate::events::append(&mut tx, &events, first.reported_at).await?;
        }
        tx.commit().await.db()?;
        Ok(outcomes)
    }

    async fn health_of_object(&self, object: DeploymentObjectId) -> Result<Vec<HealthRecord>> {
        self.health_of_objects(&[object]).await
    }

    async fn health_of_objects(&self, objects: &[DeploymentObjectId]) -> Result<Vec<HealthRecord>> {
        let ids: Vec<Uuid> = objects.iter().map(|o| o.0).collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployment_health WHERE deployment_object_id = ANY($1)
             ORDER BY deployment_object_id, agent_id"
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(record).collect()
    }

    async fn health_of_agent(&self, agent: AgentId) -> Result<Vec<HealthRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployment_health WHERE agent_id = $1 ORDER BY deployment_object_id"
        )))
        .bind(agent.0)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(record).collect()
    }
}
