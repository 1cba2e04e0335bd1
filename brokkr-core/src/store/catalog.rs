//! Stacks, deployment objects and targets, and what an agent may reach.

use async_trait::async_trait;

use crate::Result;
use crate::ids::{AgentId, DeploymentObjectId, StackId};
use crate::model::{DeploymentObject, Stack, Target};

/// An object as an agent reporting on it sees it ([`CatalogStore::reach_of_agent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectReach {
    /// The object's stack.
    pub stack_id: StackId,
    /// Whether the agent targets that stack.
    pub targeted: bool,
}

/// Stacks, deployment objects and which agents target which stacks.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Stores a stack. `Conflict` when the id exists.
    async fn insert_stack(&self, stack: &Stack) -> Result<()>;

    /// The stack, or `None`.
    async fn get_stack(&self, id: StackId) -> Result<Option<Stack>>;

    /// Stores a deployment object, assigning the stack's next `sequence_id` atomically
    /// (the given one is ignored): concurrent inserts get distinct, increasing numbers.
    /// Returns the stored object. `NotFound` when the stack does not exist.
    async fn insert_deployment_object(&self, object: &DeploymentObject)
    -> Result<DeploymentObject>;

    /// The deployment object, or `None`.
    async fn get_deployment_object(
        &self,
        id: DeploymentObjectId,
    ) -> Result<Option<DeploymentObject>>;

    /// What `agent` may report on among `objects`, in one read (ids only: no YAML is
    /// read): for each object that exists, its stack and whether the agent targets that
    /// stack. `None` when the agent does not exist.
    async fn reach_of_agent(
        &self,
        agent: AgentId,
        objects: &[DeploymentObjectId],
    ) -> Result<Option<std::collections::HashMap<DeploymentObjectId, ObjectReach>>>;

    /// The objects with the highest `sequence_id` of each given stack (stacks without
    /// objects are left out).
    async fn latest_objects(&self, stacks: &[StackId]) -> Result<Vec<DeploymentObject>>;

    /// Targets `agent` at `stack`; idempotent (returns whether it was new). `NotFound`
    /// when either does not exist.
    async fn insert_target(&self, target: &Target) -> Result<bool>;

    /// Stacks the agent targets.
    async fn targets_of_agent(&self, agent: AgentId) -> Result<Vec<Target>>;

    /// Agents targeting the stack.
    async fn agents_targeting(&self, stack: StackId) -> Result<Vec<AgentId>>;
}
