//! Fixtures for tests of code built on the broker.

use std::collections::BTreeMap;

use brokkr_core::Result;
use brokkr_core::auth::Principal;
use brokkr_core::broker::{Broker, RegisteredAgent};
use brokkr_core::model::{
    DeploymentObject, NewAgent, NewDeploymentObject, NewStack, NewTarget, Stack,
};
use brokkr_core::store::Store;

/// What [`one_agent_one_object`] created.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The agent ("edge-1" in cluster "eu-west") and its key.
    pub agent: RegisteredAgent,
    /// The stack ("shop") the agent targets.
    pub stack: Stack,
    /// The stack's one deployment object.
    pub object: DeploymentObject,
}

/// The smallest fleet: one agent targeting one stack whose one deployment object holds
/// `yaml`.
pub async fn one_agent_one_object<S: Store + ?Sized>(
    broker: &Broker<S>,
    yaml: &str,
) -> Result<Seeded> {
    let admin = Principal::Admin;
    let agent = broker
        .register_agent(
            &admin,
            NewAgent {
                name: "edge-1".into(),
                cluster_name: "eu-west".into(),
                labels: BTreeMap::default(),
            },
        )
        .await?;
    let stack = broker
        .create_stack(
            &admin,
            NewStack {
                name: "shop".into(),
                labels: BTreeMap::default(),
            },
        )
        .await?;
    broker
        .target(&admin, agent.agent.id, NewTarget { stack_id: stack.id })
        .await?;
    let object = broker
        .add_deployment_object(
            &admin,
            stack.id,
            NewDeploymentObject {
                yaml_content: yaml.to_owned(),
                is_deletion: false,
            },
        )
        .await?;
    Ok(Seeded {
        agent,
        stack,
        object,
    })
}
