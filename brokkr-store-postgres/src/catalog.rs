//! `stacks`, `deployment_objects`, `targets`.

use async_trait::async_trait;
use brokkr_core::ids::{AgentId, DeploymentObjectId, StackId};
use brokkr_core::model::{DeploymentObject, Stack, Target};
use brokkr_core::store::{CatalogStore, ObjectReach};
use brokkr_core::{Error, Result};
use sea_query::{Expr, ExprTrait, PostgresQueryBuilder, Query};
use sea_query_sqlx::SqlxBinder;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::PgStore;
use crate::error::Db;
use crate::rows::{corrupt, get, json};

const OBJECT_COLUMNS: &str = "id, stack_id, sequence_id, yaml_content, is_deletion, created_at";

fn object(row: &PgRow) -> Result<DeploymentObject> {
    Ok(DeploymentObject {
        id: DeploymentObjectId(get(row, "id")?),
        stack_id: StackId(get(row, "stack_id")?),
        sequence_id: get(row, "sequence_id")?,
        yaml_content: get(row, "yaml_content")?,
        is_deletion: get(row, "is_deletion")?,
        created_at: get(row, "created_at")?,
    })
}

fn target(row: &PgRow) -> Result<Target> {
    Ok(Target {
        agent_id: AgentId(get(row, "agent_id")?),
        stack_id: StackId(get(row, "stack_id")?),
        created_at: get(row, "created_at")?,
    })
}

#[async_trait]
impl CatalogStore for PgStore {
    async fn insert_stack(&self, stack: &Stack) -> Result<()> {
        let labels = serde_json::to_value(&stack.labels).map_err(|e| corrupt("labels", e))?;
        sqlx::query("INSERT INTO stacks (id, name, labels, created_at) VALUES ($1, $2, $3, $4)")
            .bind(stack.id.0)
            .bind(&stack.name)
            .bind(labels)
            .bind(stack.created_at)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(())
    }

    async fn get_stack(&self, id: StackId) -> Result<Option<Stack>> {
        let (sql, values) = Query::select()
            .columns(["id", "name", "labels", "created_at"])
            .from("stacks")
            .and_where(Expr::col("id").eq(id.0))
            .build_sqlx(PostgresQueryBuilder);
        let row = sqlx::query_with(AssertSqlSafe(sql), values)
            .fetch_optional(&self.pool)
            .await
            .db()?;
        row.map(|r| {
            Ok(Stack {
                id: StackId(get(&r, "id")?),
                name: get(&r, "name")?,
                labels: json(&r, "labels")?,
                created_at: get(&r, "created_at")?,
            })
        })
        .transpose()
    }

    async fn insert_deployment_object(
        &self,
        object: &DeploymentObject,
    ) -> Result<DeploymentObject> {
        let mut tx = self.pool.begin().await.db()?;
        // The row lock on the stack serializes concurrent inserts into one stack, across
        // every broker process.
        let sequence: Option<i64> = sqlx::query_scalar(
            "UPDATE stacks SET last_sequence = last_sequence + 1 WHERE id = $1 RETURNING last_sequence",
        )
        .bind(object.stack_id.0)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        let Some(sequence_id) = sequence else {
            return Err(Error::not_found("stack", object.stack_id));
        };
        sqlx::query(
            "INSERT INTO deployment_objects (id, stack_id, sequence_id, yaml_content, is_deletion, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(object.id.0)
        .bind(object.stack_id.0)
        .bind(sequence_id)
        .bind(&object.yaml_content)
        .bind(object.is_deletion)
        .bind(object.created_at)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()?;
        Ok(DeploymentObject {
            sequence_id,
            ..object.clone()
        })
    }

    async fn get_deployment_object(
        &self,
        id: DeploymentObjectId,
    ) -> Result<Option<DeploymentObject>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {OBJECT_COLUMNS} FROM deployment_objects WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        row.as_ref().map(object).transpose()
    }

    async fn reach_of_agent(
        &self,
        agent: AgentId,
        objects: &[DeploymentObjectId],
    ) -> Result<Option<std::collections::HashMap<DeploymentObjectId, ObjectReach>>> {
        let ids: Vec<Uuid> = objects.iter().map(|o| o.0).collect();
        // One row per existing object, or one row of NULLs: the agent's existence comes
        // with it.
        let rows = sqlx::query(
            "SELECT a.id AS agent_id, o.id, o.stack_id,
                    EXISTS (SELECT 1 FROM targets AS t
                            WHERE t.agent_id = a.id AND t.stack_id = o.stack_id) AS targeted
             FROM (SELECT $1::uuid AS id) AS asked
             LEFT JOIN agents AS a ON a.id = asked.id
             LEFT JOIN deployment_objects AS o ON o.id = ANY($2) AND a.id IS NOT NULL",
        )
        .bind(agent.0)
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .db()?;
        let mut reach = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            if get::<Option<Uuid>>(row, "agent_id")?.is_none() {
                return Ok(None);
            }
            if let Some(id) = get::<Option<Uuid>>(row, "id")? {
                let reached = ObjectReach {
                    stack_id: StackId(get(row, "stack_id")?),
                    targeted: get(row, "targeted")?,
                };
                reach.insert(DeploymentObjectId(id), reached);
            }
        }
        Ok(Some(reach))
    }

    async fn latest_objects(&self, stacks: &[StackId]) -> Result<Vec<DeploymentObject>> {
        let ids: Vec<Uuid> = stacks.iter().map(|s| s.0).collect();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT DISTINCT ON (stack_id) {OBJECT_COLUMNS} FROM deployment_objects
             WHERE stack_id = ANY($1) ORDER BY stack_id, sequence_id DESC"
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(object).collect()
    }

    async fn insert_target(&self, target: &Target) -> Result<bool> {
        let result = sqlx::query(
            "INSERT INTO targets (agent_id, stack_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (agent_id, stack_id) DO NOTHING",
        )
        .bind(target.agent_id.0)
        .bind(target.stack_id.0)
        .bind(target.created_at)
        .execute(&self.pool)
        .await;
        match result {
            Ok(done) => Ok(done.rows_affected() == 1),
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23503") => {
                Err(if db.constraint().is_some_and(|c| c.contains("agent")) {
                    Error::not_found("agent", target.agent_id)
                } else {
                    Error::not_found("stack", target.stack_id)
                })
            }
            Err(other) => Err(other).db(),
        }
    }

    async fn targets_of_agent(&self, agent: AgentId) -> Result<Vec<Target>> {
        let rows = sqlx::query(
            "SELECT agent_id, stack_id, created_at FROM targets WHERE agent_id = $1 ORDER BY stack_id",
        )
        .bind(agent.0)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(target).collect()
    }

    async fn agents_targeting(&self, stack: StackId) -> Result<Vec<AgentId>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT agent_id FROM targets WHERE stack_id = $1 ORDER BY agent_id",
        )
        .bind(stack.0)
        .fetch_all(&self.pool)
        .await
        .db()?;
        Ok(ids.into_iter().map(AgentId).collect())
    }
}
