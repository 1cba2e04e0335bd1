//! `agents`, `agent_keys`, `agent_liveness`.

use std::collections::HashMap;

use async_trait::async_trait;
use brokkr_core::Result;
use brokkr_core::ids::AgentId;
use brokkr_core::model::{Agent, ClusterSnapshot};
use brokkr_core::store::{AgentLiveness, AgentStore, HeartbeatRecord, Page, PageRequest, PakHash};
use sea_query::{Expr, ExprTrait, Order, PostgresQueryBuilder, Query};
use sea_query_sqlx::SqlxBinder;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use crate::PgStore;
use crate::error::Db;
use crate::rows::{corrupt, get, json};

const COLUMNS: [&str; 5] = ["id", "name", "cluster_name", "labels", "created_at"];

fn agent(row: &PgRow) -> Result<Agent> {
    Ok(Agent {
        id: AgentId(get(row, "id")?),
        name: get(row, "name")?,
        cluster_name: get(row, "cluster_name")?,
        labels: json(row, "labels")?,
        created_at: get(row, "created_at")?,
    })
}

#[async_trait]
impl AgentStore for PgStore {
    async fn insert_agent(&self, agent: &Agent, pak_hash: &PakHash) -> Result<()> {
        let labels = serde_json::to_value(&agent.labels).map_err(|e| corrupt("labels", e))?;
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query(
            "INSERT INTO agents (id, name, cluster_name, labels, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(agent.id.0)
        .bind(&agent.name)
        .bind(&agent.cluster_name)
        .bind(labels)
        .bind(agent.created_at)
        .execute(&mut *tx)
        .await
        .db()?;
        sqlx::query("INSERT INTO agent_keys (pak_hash, agent_id) VALUES ($1, $2)")
            .bind(pak_hash.as_slice())
            .bind(agent.id.0)
            .execute(&mut *tx)
            .await
            .db()?;
        sqlx::query("INSERT INTO agent_liveness (agent_id) VALUES ($1)")
            .bind(agent.id.0)
            .execute(&mut *tx)
            .await
            .db()?;
        tx.commit().await.db()
    }

    async fn get_agent(&self, id: AgentId) -> Result<Option<Agent>> {
        let (sql, values) = Query::select()
            .columns(COLUMNS)
            .from("agents")
            .and_where(Expr::col("id").eq(id.0))
            .build_sqlx(PostgresQueryBuilder);
        let row = sqlx::query_with(AssertSqlSafe(sql), values)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        row.as_ref().map(agent).transpose()
    }

    async fn list_agents(&self, page: PageRequest) -> Result<Page<Agent>> {
        let mut query = Query::select();
        query
            .columns(COLUMNS)
            .from("agents")
            .order_by("id", Order::Asc)
            .limit(page.limit as u64 + 1);
        if let Some(after) = page.after {
            query.and_where(Expr::col("id").gt(after));
        }
        let (sql, values) = query.build_sqlx(PostgresQueryBuilder);
        let rows = sqlx::query_with(AssertSqlSafe(sql), values)
            .fetch_all(&self.pool)
            .await
            .db()?;
        let mut items = rows.iter().map(agent).collect::<Result<Vec<_>>>()?;
        let next = if items.len() > page.limit {
            items.truncate(page.limit);
            items.last().map(|a| a.id.0)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn delete_agent(&self, id: AgentId) -> Result<bool> {
        let mut tx = self.pool.begin().await.db()?;
        sqlx::query(crate::locks::AGENT_LOCK)
            .bind(id.0.to_string())
            .execute(&mut *tx)
            .await
            .db()?;
        // Its verdicts and their counts go with it (ON DELETE CASCADE).
        let deleted = sqlx::query("DELETE FROM agents WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .db()?
            .rows_affected();
        tx.commit().await.db()?;
        Ok(deleted == 1)
    }

    async fn replace_pak(&self, id: AgentId, pak_hash: Option<&PakHash>) -> Result<()> {
        let mut tx = self.pool.begin().await.db()?;
        let exists: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM agents WHERE id = $1 FOR UPDATE")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        if exists.is_none() {
            return Err(brokkr_core::Error::not_found("agent", id));
        }
        sqlx::query("DELETE FROM agent_keys WHERE agent_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .db()?;
        if let Some(hash) = pak_hash {
            sqlx::query("INSERT INTO agent_keys (pak_hash, agent_id) VALUES ($1, $2)")
                .bind(hash.as_slice())
                .bind(id.0)
                .execute(&mut *tx)
                .await
                .map_err(|e| match e {
                    sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
                        brokkr_core::Error::Conflict("key already in use".into())
                    }
                    other => crate::PgStoreError::Sqlx(other).into(),
                })?;
        }
        tx.commit().await.db()
    }

    async fn agent_for_pak(&self, pak_hash: &PakHash) -> Result<Option<AgentId>> {
        let row = sqlx::query("SELECT agent_id FROM agent_keys WHERE pak_hash = $1")
            .bind(pak_hash.as_slice())
            .fetch_optional(&self.pool)
            .await
            .db()?;
        row.map(|r| get::<Uuid>(&r, "agent_id").map(AgentId))
            .transpose()
    }

    async fn record_heartbeats(&self, beats: &[HeartbeatRecord]) -> Result<u64> {
        if beats.is_empty() {
            return Ok(0);
        }
        self.heartbeats.record(&self.pool, beats).await
    }

    async fn liveness(&self, id: AgentId) -> Result<Option<AgentLiveness>> {
        Ok(self.liveness_of(&[id]).await?.remove(&id))
    }

    async fn liveness_of(&self, ids: &[AgentId]) -> Result<HashMap<AgentId, AgentLiveness>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = sqlx::query(
            "SELECT agent_id, last_heartbeat_at, health_checked_at, snapshot
             FROM agent_liveness WHERE agent_id = ANY($1)",
        )
        .bind(ids.iter().map(|id| id.0).collect::<Vec<Uuid>>())
        .fetch_all(&self.pool)
        .await
        .db()?;
        let mut out = HashMap::with_capacity(rows.len());
        for row in &rows {
            let snapshot: Option<serde_json::Value> = get(row, "snapshot")?;
            let live = AgentLiveness {
                last_heartbeat_at: row
                    .try_get("last_heartbeat_at")
                    .map_err(|e| corrupt("last_heartbeat_at", e))?,
                health_checked_at: get(row, "health_checked_at")?,
                snapshot: snapshot
                    .map(serde_json::from_value::<ClusterSnapshot>)
                    .transpose()
                    .map_err(|e| corrupt("snapshot", e))?,
            };
            out.insert(AgentId(get(row, "agent_id")?), live);
        }
        Ok(out)
    }
}
