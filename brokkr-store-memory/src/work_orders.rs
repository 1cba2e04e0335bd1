//! Work orders (and the ownership checks they share).

use crate::{MemoryStore, State};
use async_trait::async_trait;
use brokkr_core::ids::{AgentId, WorkOrderId};
use brokkr_core::model::{WorkOrder, WorkOrderStatus};
use brokkr_core::store::WorkOrderStore;
use brokkr_core::{Error, Result};
use chrono::{DateTime, Utc};

impl State {
    /// Writes for agents that no longer exist (deleted while a request was in flight)
    /// are refused, as the database's foreign keys refuse them.
    pub(crate) fn require_agents<'a>(
        &self,
        agents: impl IntoIterator<Item = &'a AgentId>,
    ) -> Result<()> {
        match agents.into_iter().find(|a| !self.agents.contains_key(a)) {
            Some(missing) => Err(Error::not_found("agent", missing)),
            None => Ok(()),
        }
    }

    pub(crate) fn own_work_order(
        &mut self,
        id: WorkOrderId,
        agent: AgentId,
    ) -> Result<&mut WorkOrder> {
        let order = self
            .work_orders
            .get_mut(&id)
            .ok_or_else(|| Error::not_found("work order", id))?;
        if order.agent_id != agent {
            return Err(Error::Forbidden(format!(
                "work order {id} belongs to another agent"
            )));
        }
        Ok(order)
    }
}

#[async_trait]
impl WorkOrderStore for MemoryStore {
    async fn insert_work_order(&self, order: &WorkOrder) -> Result<()> {
        let mut state = self.write();
        state.require_agents([&order.agent_id])?;
        if state.work_orders.contains_key(&order.id) {
            return Err(Error::Conflict(format!(
                "work order {} already exists",
                order.id
            )));
        }
        state.work_orders.insert(order.id, order.clone());
        Ok(())
    }

    async fn get_work_order(&self, id: WorkOrderId) -> Result<Option<WorkOrder>> {
        Ok(self.read().work_orders.get(&id).cloned())
    }

    async fn open_work_orders(&self, agent: AgentId) -> Result<Vec<WorkOrder>> {
        let state = self.read();
        let mut open: Vec<WorkOrder> = state
            .work_orders
            .values()
            .filter(|o| o.agent_id == agent && o.status.is_open())
            .cloned()
            .collect();
        open.sort_by_key(|o| (o.created_at, o.id));
        Ok(open)
    }

    async fn claim_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder> {
        let mut state = self.write();
        let order = state.own_work_order(id, agent)?;
        if order.status != WorkOrderStatus::Pending {
            return Err(Error::Conflict(format!("work order {id} is not pending")));
        }
        order.status = WorkOrderStatus::Claimed;
        order.claimed_at = Some(now);
        Ok(order.clone())
    }

    async fn finish_work_order(
        &self,
        id: WorkOrderId,
        agent: AgentId,
        success: bool,
        now: DateTime<Utc>,
    ) -> Result<WorkOrder> {
        let mut state = self.write();
        let order = state.own_work_order(id, agent)?;
        if order.status != WorkOrderStatus::Claimed {
            return Err(Error::Conflict(format!("work order {id} is not claimed")));
        }
        order.status = if success {
            WorkOrderStatus::Completed
        } else {
            WorkOrderStatus::Failed
        };
        order.completed_at = Some(now);
        Ok(order.clone())
    }
}
