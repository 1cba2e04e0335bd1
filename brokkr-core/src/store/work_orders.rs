//! Work orders.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;
use crate::ids::{AgentId, WorkOrderId};
use crate::model::WorkOrder;

/// Work orders sent to agents.
#[async_trait]
pub trait WorkOrderStore: Send + Sync {
    /// Stores a new work order. `Conflict` when the id exists.
    async fn insert_work_order(&self, order: &WorkOrder) -> Result<()>;

    /// The work order, or `None`.
    async fn get_work_order(&self, id: WorkOrderId) -> Result<Option<WorkOrder>>;

    /// Open (pending or claimed) work orders of the agent, oldest first.
    async fn open_work_orders(&self, agent: AgentId) -> Result<Vec<WorkOrder>>;

    /// Moves a pending work order of `agent` to claimed, atomically. `NotFound` for an
    /// unknown id, `Forbidden` for another agent's order, `Conflict` when not pending.
    async fn claim_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder>;

    /// Moves a claimed work order of `agent` to completed or failed. Same errors as
    /// claiming; `Conflict` when not claimed.
    async fn finish_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        success: bool,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder>;
}
