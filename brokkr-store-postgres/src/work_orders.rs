//! `work_orders`.

use async_trait::async_trait;
use brokkr_core::ids::{AgentId, WorkOrderId};
use brokkr_core::model::{WorkOrder, WorkOrderStatus};
use brokkr_core::store::WorkOrderStore;
use brokkr_core::{Error, Result};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;

use crate::PgStore;
use crate::error::Db;
use crate::rows::{get, parse, text};

const COLUMNS: &str = "id, agent_id, kind, payload, status, created_at, claimed_at, completed_at";

fn order(row: &PgRow) -> Result<WorkOrder> {
    Ok(WorkOrder {
        id: WorkOrderId(get(row, "id")?),
        agent_id: AgentId(get(row, "agent_id")?),
        kind: get(row, "kind")?,
        payload: get(row, "payload")?,
        status: parse("status", &get::<String>(row, "status")?)?,
        created_at: get(row, "created_at")?,
        claimed_at: get(row, "claimed_at")?,
        completed_at: get(row, "completed_at")?,
    })
}

impl PgStore {
    /// One conditional update moves the order from `from` for its own agent; when it
    /// matches nothing, the row (if any) says which rule refused.
    async fn transition(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        from: WorkOrderStatus,
        to: WorkOrderStatus,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder> {
        let stamp = if to == WorkOrderStatus::Claimed {
            "claimed_at"
        } else {
            "completed_at"
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE work_orders SET status = $4, {stamp} = $5
             WHERE id = $1 AND agent_id = $2 AND status = $3 RETURNING {COLUMNS}"
        )))
        .bind(id.0)
        .bind(agent.0)
        .bind(text(&from))
        .bind(text(&to))
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        if let Some(row) = row {
            return order(&row);
        }
        match self.get_work_order(id).await? {
            None => Err(Error::not_found("work order", id)),
            Some(o) if o.agent_id != agent => Err(Error::Forbidden(format!(
                "work order {id} belongs to another agent"
            ))),
            Some(_) => Err(Error::Conflict(format!(
                "work order {id} is not {}",
                text(&from)
            ))),
        }
    }
}

#[async_trait]
impl WorkOrderStore for PgStore {
    async fn insert_work_order(&self, o: &WorkOrder) -> Result<()> {
        sqlx::query(
            "INSERT INTO work_orders (id, agent_id, kind, payload, status, created_at, claimed_at, completed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(o.id.0)
        .bind(o.agent_id.0)
        .bind(&o.kind)
        .bind(&o.payload)
        .bind(text(&o.status))
        .bind(o.created_at)
        .bind(o.claimed_at)
        .bind(o.completed_at)
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    async fn get_work_order(&self, id: WorkOrderId) -> Result<Option<WorkOrder>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM work_orders WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        row.as_ref().map(order).transpose()
    }

    async fn open_work_orders(&self, agent: AgentId) -> Result<Vec<WorkOrder>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM work_orders
             WHERE agent_id = $1 AND status IN ('pending', 'claimed') ORDER BY created_at, id"
        )))
        .bind(agent.0)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(order).collect()
    }

    async fn claim_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder> {
        self.transition(
            id,
            agent,
            WorkOrderStatus::Pending,
            WorkOrderStatus::Claimed,
            now,
        )
        .await
    }

    async fn finish_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        success: bool,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder> {
        let to = if success {
            WorkOrderStatus::Completed
        } else {
            WorkOrderStatus::Failed
        };
        self.transition(id, agent, WorkOrderStatus::Claimed, to, now)
            .await
    }
}
