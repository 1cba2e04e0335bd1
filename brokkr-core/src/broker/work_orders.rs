//! Work orders: created by operators, claimed once and completed by agents.

use super::Broker;
use crate::auth::Principal;
use crate::ids::{AgentId, WorkOrderId};
use crate::model::{NewWorkOrder, WorkOrder};
use crate::store::Store;
use crate::{Error, Result};

impl<S: Store + ?Sized> Broker<S> {
    /// Creates a work order for an agent (admin).
    pub async fn create_work_order(&self, who: &Principal, new: NewWorkOrder) -> Result<WorkOrder> {
        who.require_admin()?;
        let now = self.now();
        new.validate(now, &self.inner.shared.config.limits)?;
        self.existing_agent(new.agent_id).await?;
        let order = new.into_work_order(now);
        self.store_ref().insert_work_order(&order).await?;
        Ok(order)
    }

    /// Pending and claimed work orders of the agent (admin or the agent).
    pub async fn open_work_orders(
        &self,
        who: &Principal,
        agent: AgentId,
    ) -> Result<Vec<WorkOrder>> {
        who.require_admin_or(agent)?;
        self.existing_agent(agent).await?;
        self.store_ref().open_work_orders(agent).await
    }

    /// Claims a work order (its agent).
    pub async fn claim_work_order(&self, who: &Principal, id: WorkOrderId) -> Result<WorkOrder> {
        let Principal::Agent(agent) = *who else {
            return Err(Error::Forbidden("only agents claim work orders".into()));
        };
        self.store_ref()
            .claim_work_order(id, agent, self.now())
            .await
    }

    /// Completes a claimed work order (its agent).
    pub async fn complete_work_order(
        &self,
        who: &Principal,
        id: WorkOrderId,
        success: bool,
    ) -> Result<WorkOrder> {
        let Principal::Agent(agent) = *who else {
            return Err(Error::Forbidden("only agents complete work orders".into()));
        };
        self.store_ref()
            .finish_work_order(id, agent, success, self.now())
            .await
    }
}
