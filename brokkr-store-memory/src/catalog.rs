//! Stacks, deployment objects and targets.

use std::collections::HashMap;

use crate::MemoryStore;
use async_trait::async_trait;
use brokkr_core::ids::{AgentId, DeploymentObjectId, StackId};
use brokkr_core::model::{DeploymentObject, Stack, Target};
use brokkr_core::store::{CatalogStore, ObjectReach};
use brokkr_core::{Error, Result};

#[async_trait]
impl CatalogStore for MemoryStore {
    async fn insert_stack(&self, stack: &Stack) -> Result<()> {
        let mut state = self.write();
        if state.stacks.contains_key(&stack.id) {
            return Err(Error::Conflict(format!(
                "stack {} already exists",
                stack.id
            )));
        }
        state.stacks.insert(stack.id, stack.clone());
        Ok(())
    }

    async fn get_stack(&self, id: StackId) -> Result<Option<Stack>> {
        Ok(self.read().stacks.get(&id).cloned())
    }

    async fn insert_deployment_object(
        &self,
        object: &DeploymentObject,
    ) -> Result<DeploymentObject> {
        let mut state = self.write();
        if !state.stacks.contains_key(&object.stack_id) {
            return Err(Error::not_found("stack", object.stack_id));
        }
        if state.objects.contains_key(&object.id) {
            return Err(Error::Conflict(format!(
                "deployment object {} already exists",
                object.id
            )));
        }
        let sequence_id = state
            .latest
            .get(&object.stack_id)
            .map_or(1, |(seq, _)| seq + 1);
        let stored = DeploymentObject {
            sequence_id,
            ..object.clone()
        };
        state
            .latest
            .insert(object.stack_id, (sequence_id, object.id));
        state.objects.insert(object.id, stored.clone());
        Ok(stored)
    }

    async fn get_deployment_object(
        &self,
        id: DeploymentObjectId,
    ) -> Result<Option<DeploymentObject>> {
        Ok(self.read().objects.get(&id).cloned())
    }

    async fn reach_of_agent(
        &self,
        agent: AgentId,
        objects: &[DeploymentObjectId],
    ) -> Result<Option<HashMap<DeploymentObjectId, ObjectReach>>> {
        let state = self.read();
        if !state.agents.contains_key(&agent) {
            return Ok(None);
        }
        Ok(Some(
            objects
                .iter()
                .filter_map(|id| {
                    let stack_id = state.objects.get(id)?.stack_id;
                    let targeted = state.targets.contains_key(&(agent, stack_id));
                    Some((*id, ObjectReach { stack_id, targeted }))
                })
                .collect(),
        ))
    }

    async fn latest_objects(&self, stacks: &[StackId]) -> Result<Vec<DeploymentObject>> {
        let state = self.read();
        Ok(stacks
            .iter()
            .filter_map(|s| state.latest.get(s))
            .filter_map(|(_, id)| state.objects.get(id).cloned())
            .collect())
    }

    async fn insert_target(&self, target: &Target) -> Result<bool> {
        let mut state = self.write();
        if !state.agents.contains_key(&target.agent_id) {
            return Err(Error::not_found("agent", target.agent_id));
        }
        if !state.stacks.contains_key(&target.stack_id) {
            return Err(Error::not_found("stack", target.stack_id));
        }
        let key = (target.agent_id, target.stack_id);
        if state.targets.contains_key(&key) {
            return Ok(false);
        }
        state.targets.insert(key, target.clone());
        Ok(true)
    }

    async fn targets_of_agent(&self, agent: AgentId) -> Result<Vec<Target>> {
        let state = self.read();
        Ok(state
            .targets
            .range((agent, StackId(uuid::Uuid::nil()))..)
            .take_while(|((a, _), _)| *a == agent)
            .map(|(_, t)| t.clone())
            .collect())
    }

    async fn agents_targeting(&self, stack: StackId) -> Result<Vec<AgentId>> {
        let state = self.read();
        Ok(state
            .targets
            .keys()
            .filter(|(_, s)| *s == stack)
            .map(|(a, _)| *a)
            .collect())
    }
}
