//! Agents, stacks, deployment objects and targets (admin, except reading oneself).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brokkr_core::Error;
use brokkr_core::broker::{AgentView, DeploymentObjectView};
use brokkr_core::ids::{AgentId, DeploymentObjectId, StackId};
use brokkr_core::model::{
    Agent, NewAgent, NewDeploymentObject, NewStack, NewTarget, Stack, Target,
};
use brokkr_core::staleness::Staleness;
use brokkr_core::store::PageRequest;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, ApiQuery, Caller};
use crate::problem::ApiError;

/// `POST /agents` answer: the agent and its key, shown this once.
#[derive(Debug, Serialize)]
pub struct RegisteredAgentBody {
    /// The agent.
    #[serde(flatten)]
    pub agent: Agent,
    /// Its key.
    pub pak: String,
}

pub(crate) async fn register_agent(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiJson(new): ApiJson<NewAgent>,
) -> Result<(StatusCode, Json<RegisteredAgentBody>), ApiError> {
    let registered = state.broker.register_agent(&who, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisteredAgentBody {
            agent: registered.agent,
            pak: registered.pak.expose().to_owned(),
        }),
    ))
}

/// Query of `GET /agents`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    cursor: Option<Uuid>,
    staleness: Option<Staleness>,
}

/// A page of a listing.
#[derive(Debug, Serialize)]
pub struct PageBody<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<Uuid>,
}

/// Largest page.
pub const MAX_PAGE: usize = 500;

pub(crate) async fn list_agents(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<PageBody<AgentView>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::invalid("limit", format!("must be between 1 and {MAX_PAGE}")).into());
    }
    let page = state
        .broker
        .list_agents(
            &who,
            PageRequest {
                limit,
                after: query.cursor,
            },
            query.staleness,
        )
        .await?;
    Ok(Json(PageBody {
        items: page.items,
        next_cursor: page.next,
    }))
}

pub(crate) async fn get_agent(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(state.broker.get_agent(&who, id).await?))
}

pub(crate) async fn create_stack(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiJson(new): ApiJson<NewStack>,
) -> Result<(StatusCode, Json<Stack>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.broker.create_stack(&who, new).await?),
    ))
}

/// `POST /stacks/{id}/deployment-objects` answer (the YAML is not echoed).
#[derive(Debug, Serialize)]
pub struct CreatedObjectBody {
    /// The object.
    pub id: DeploymentObjectId,
    /// Its stack.
    pub stack_id: StackId,
    /// Its position in the stack.
    pub sequence_id: i64,
    /// Deletion marker.
    pub is_deletion: bool,
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

pub(crate) async fn add_deployment_object(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(stack): ApiPath<StackId>,
    ApiJson(new): ApiJson<NewDeploymentObject>,
) -> Result<(StatusCode, Json<CreatedObjectBody>), ApiError> {
    let o = state.broker.add_deployment_object(&who, stack, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedObjectBody {
            id: o.id,
            stack_id: o.stack_id,
            sequence_id: o.sequence_id,
            is_deletion: o.is_deletion,
            created_at: o.created_at,
        }),
    ))
}

pub(crate) async fn get_deployment_object(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<DeploymentObjectId>,
) -> Result<Json<DeploymentObjectView>, ApiError> {
    Ok(Json(state.broker.deployment_object(&who, id).await?))
}

pub(crate) async fn target(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
    ApiJson(new): ApiJson<NewTarget>,
) -> Result<(StatusCode, Json<Target>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.broker.target(&who, agent, new).await?),
    ))
}
