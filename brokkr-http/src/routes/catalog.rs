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
use crate::problem::{ApiError, ErrorResponses, Problem};
use crate::routes::with_body_limit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// `POST /agents` answer: the agent and its key, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RegisteredAgentBody {
    /// The agent.
    #[serde(flatten)]
    pub agent: Agent,
    /// Its key.
    pub pak: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/agents",
    tag = "catalog",
    request_body(content = NewAgent, content_type = "application/json"),
    responses(
        (status = 201, description = "the agent and its key, shown once", body = RegisteredAgentBody),
        ErrorResponses,
        (status = 409, description = "state conflict", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    cursor: Option<Uuid>,
    staleness: Option<Staleness>,
}

/// A page of agents.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AgentPage {
    /// The agents, ordered by id.
    pub items: Vec<AgentView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<Uuid>,
}

/// Largest page.
pub const MAX_PAGE: usize = 500;

#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "catalog",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 500, description = "page size, 1..=500 (default 100)"), ("cursor" = Option<Uuid>, Query, description = "next_cursor of the previous page"), ("staleness" = Option<Staleness>, Query, description = "only agents in this state")),
    responses(
        (status = 200, description = "a page of agents", body = AgentPage),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_agents(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<AgentPage>, ApiError> {
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
    Ok(Json(AgentPage {
        items: page.items,
        next_cursor: page.next,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "agent id")),
    responses(
        (status = 200, description = "the agent", body = AgentView),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_agent(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(state.broker.get_agent(&who, id).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/agents/{id}",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "agent id")),
    responses(
        (status = 204, description = "deleted, with everything only the agent had"),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete_agent(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<StatusCode, ApiError> {
    state.broker.delete_agent(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /agents/{id}/pak` answer: the new key, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewKeyBody {
    /// The agent.
    pub agent_id: AgentId,
    /// Its new key; the old one no longer works.
    pub pak: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/pak",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "agent id")),
    responses(
        (status = 200, description = "a new key; the old one stops working", body = NewKeyBody),
        (status = 409, description = "state conflict", body = Problem, content_type = "application/problem+json"),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn rotate_pak(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<Json<NewKeyBody>, ApiError> {
    let pak = state.broker.rotate_pak(&who, id).await?;
    Ok(Json(NewKeyBody {
        agent_id: id,
        pak: pak.expose().to_owned(),
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/agents/{id}/pak",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "agent id")),
    responses(
        (status = 204, description = "revoked: the agent cannot authenticate until a new key is issued"),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn revoke_pak(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<StatusCode, ApiError> {
    state.broker.revoke_pak(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/api/v1/stacks",
    tag = "catalog",
    request_body(content = NewStack, content_type = "application/json"),
    responses(
        (status = 201, description = "the stack", body = Stack),
        ErrorResponses,
        (status = 409, description = "state conflict", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
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

#[utoipa::path(
    post,
    path = "/api/v1/stacks/{id}/deployment-objects",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "stack id")),
    request_body(content = NewDeploymentObject, content_type = "application/json"),
    responses(
        (status = 201, description = "the object, with its sequence id", body = CreatedObjectBody),
        ErrorResponses,
        (status = 409, description = "state conflict", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/deployment-objects/{id}",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "deployment object id")),
    responses(
        (status = 200, description = "the object with per-agent deliveries", body = DeploymentObjectView),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get_deployment_object(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<DeploymentObjectId>,
) -> Result<Json<DeploymentObjectView>, ApiError> {
    Ok(Json(state.broker.deployment_object(&who, id).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/targets",
    tag = "catalog",
    params(("id" = Uuid, Path, description = "agent id")),
    request_body(content = NewTarget, content_type = "application/json"),
    responses(
        (status = 201, description = "the target (idempotent)", body = Target),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
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

/// Agents, keys, stacks, deployment objects and targets. `large` is the body limit of
/// deployment object uploads.
pub(crate) fn routes(large: axum::extract::DefaultBodyLimit) -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(register_agent, list_agents))
        .routes(routes!(get_agent, delete_agent))
        .routes(routes!(rotate_pak, revoke_pak))
        .routes(routes!(target))
        .routes(routes!(create_stack))
        .routes(with_body_limit(routes!(add_deployment_object), large))
        .routes(routes!(get_deployment_object))
}
