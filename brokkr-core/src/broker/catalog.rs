//! The catalog: agents as operators see them, stacks, deployment objects, targets.

use chrono::{DateTime, Utc};

use super::{AgentView, Broker, DeploymentObjectView};
use crate::Result;
use crate::auth::Principal;
use crate::ids::{AgentId, DeploymentObjectId, StackId};
use crate::model::{
    Agent, DeploymentObject, NewDeploymentObject, NewStack, NewTarget, Stack, Target,
};
use crate::staleness::Staleness;
use crate::store::{AgentLiveness, Page, PageRequest, Store};

impl<S: Store + ?Sized> Broker<S> {
    pub(super) fn view(
        &self,
        agent: Agent,
        live: Option<&AgentLiveness>,
        now: DateTime<Utc>,
    ) -> AgentView {
        let last = live.and_then(|l| l.last_heartbeat_at);
        AgentView {
            agent,
            staleness: self.inner.shared.config.staleness.classify(last, now),
            last_heartbeat_at: last,
        }
    }

    /// One agent with its liveness (admin).
    pub async fn get_agent(&self, who: &Principal, id: AgentId) -> Result<AgentView> {
        who.require_admin()?;
        let agent = self.existing_agent(id).await?;
        let live = self.store_ref().liveness(id).await?;
        Ok(self.view(agent, live.as_ref(), self.now()))
    }

    /// A page of agents (admin), optionally only those in `staleness`. A page shorter
    /// than `limit` is the last one.
    pub async fn list_agents(
        &self,
        who: &Principal,
        page: PageRequest,
        staleness: Option<Staleness>,
    ) -> Result<Page<AgentView>> {
        who.require_admin()?;
        let now = self.now();
        // With a filter, keep reading store pages until the page is full or the agents
        // run out, so a short page always means the end (the cursor stays exact).
        let mut items = Vec::with_capacity(page.limit.min(500));
        let mut after = page.after;
        loop {
            let batch = self
                .store_ref()
                .list_agents(PageRequest {
                    limit: page.limit,
                    after,
                })
                .await?;
            let exhausted = batch.next.is_none();
            let ids: Vec<AgentId> = batch.items.iter().map(|a| a.id).collect();
            let liveness = self.store_ref().liveness_of(&ids).await?;
            for agent in batch.items {
                if items.len() == page.limit {
                    return Ok(Page {
                        next: items.last().map(|v: &AgentView| v.agent.id.0),
                        items,
                    });
                }
                after = Some(agent.id.0);
                let live = liveness.get(&agent.id);
                let view = self.view(agent, live, now);
                if staleness.is_none_or(|s| s == view.staleness) {
                    items.push(view);
                }
            }
            if exhausted {
                return Ok(Page { items, next: None });
            }
            if items.len() == page.limit {
                return Ok(Page {
                    next: items.last().map(|v| v.agent.id.0),
                    items,
                });
            }
        }
    }

    /// Creates a stack (admin).
    pub async fn create_stack(&self, who: &Principal, new: NewStack) -> Result<Stack> {
        who.require_admin()?;
        let now = self.now();
        new.validate(now, &self.inner.shared.config.limits)?;
        let stack = new.into_stack(now);
        self.store_ref().insert_stack(&stack).await?;
        Ok(stack)
    }

    /// Adds a deployment object to a stack (admin); it becomes the stack's effective
    /// object and is queued for every agent targeting the stack.
    pub async fn add_deployment_object(
        &self,
        who: &Principal,
        stack: StackId,
        new: NewDeploymentObject,
    ) -> Result<DeploymentObject> {
        who.require_admin()?;
        let now = self.now();
        new.validate(now, &self.inner.shared.config.limits)?;
        let object = DeploymentObject {
            id: DeploymentObjectId::new(),
            stack_id: stack,
            sequence_id: 0,
            yaml_content: new.yaml_content,
            is_deletion: new.is_deletion,
            created_at: now,
        };
        let stored = self.store_ref().insert_deployment_object(&object).await?;
        let agents = self.store_ref().agents_targeting(stack).await?;
        let pairs: Vec<_> = agents.into_iter().map(|a| (a, stored.id)).collect();
        self.store_ref().ensure_deliveries(&pairs).await?;
        Ok(stored)
    }

    /// Targets an agent at a stack (admin); the stack's effective object is queued for it.
    pub async fn target(&self, who: &Principal, agent: AgentId, new: NewTarget) -> Result<Target> {
        who.require_admin()?;
        let target = Target {
            agent_id: agent,
            stack_id: new.stack_id,
            created_at: self.now(),
        };
        self.store_ref().insert_target(&target).await?;
        let latest = self.store_ref().latest_objects(&[new.stack_id]).await?;
        let pairs: Vec<_> = latest.iter().map(|o| (agent, o.id)).collect();
        self.store_ref().ensure_deliveries(&pairs).await?;
        Ok(target)
    }

    /// A deployment object with its deliveries (admin).
    pub async fn deployment_object(
        &self,
        who: &Principal,
        id: DeploymentObjectId,
    ) -> Result<DeploymentObjectView> {
        who.require_admin()?;
        let object = self.existing_object(id).await?;
        let deliveries = self.store_ref().deliveries_of_object(id).await?;
        Ok(DeploymentObjectView { object, deliveries })
    }
}
