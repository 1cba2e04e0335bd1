//! Health, operational and queue reads, and the fleet summary.

use axum::Json;
use axum::extract::State;
use brokkr_core::backlog::QueueStatus;
use brokkr_core::broker::{
    AgentHealth, FleetSummary, ObjectHealth, OperationalStatus, StackHealth,
};
use brokkr_core::ids::{AgentId, DeploymentObjectId, StackId};

use crate::AppState;
use crate::extract::{ApiPath, Caller};
use crate::problem::{ApiError, ErrorResponses};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
#[allow(unused_imports)]
use uuid::Uuid;

#[utoipa::path(
    get,
    path = "/api/v1/deployment-objects/{id}/health",
    tag = "health",
    params(("id" = Uuid, Path, description = "deployment object id")),
    responses(
        (status = 200, description = "per-agent health and worst-of", body = ObjectHealth),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn object_health(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<DeploymentObjectId>,
) -> Result<Json<ObjectHealth>, ApiError> {
    Ok(Json(state.broker.object_health(&who, id).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/stacks/{id}/health",
    tag = "health",
    params(("id" = Uuid, Path, description = "stack id")),
    responses(
        (status = 200, description = "overall status and per object per agent", body = StackHealth),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn stack_health(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<StackId>,
) -> Result<Json<StackHealth>, ApiError> {
    Ok(Json(state.broker.stack_health(&who, id).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/health",
    tag = "health",
    params(("id" = Uuid, Path, description = "agent id")),
    responses(
        (status = 200, description = "every verdict of the agent", body = AgentHealth),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn agent_health(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<Json<AgentHealth>, ApiError> {
    Ok(Json(state.broker.agent_health(&who, id).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/operational-status",
    tag = "fleet",
    params(("id" = Uuid, Path, description = "agent id")),
    responses(
        (status = 200, description = "liveness, snapshot, reconcile figures", body = OperationalStatus),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn operational_status(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<Json<OperationalStatus>, ApiError> {
    Ok(Json(state.broker.operational_status(&who, id).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/queue-status",
    tag = "fleet",
    params(("id" = Uuid, Path, description = "agent id")),
    responses(
        (status = 200, description = "queue depth, backlog, delivery latency", body = QueueStatus),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn queue_status(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<AgentId>,
) -> Result<Json<QueueStatus>, ApiError> {
    Ok(Json(state.broker.queue_status(&who, id).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/fleet/summary",
    tag = "fleet",
    responses(
        (status = 200, description = "the fleet at a glance", body = FleetSummary),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn fleet_summary(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<FleetSummary>, ApiError> {
    let summary = state.broker.fleet_summary(&who).await?;
    state.telemetry.fleet_snapshot.reading(&state.broker);
    Ok(Json(summary))
}

/// Health and fleet reads.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(object_health))
        .routes(routes!(stack_health))
        .routes(routes!(agent_health))
        .routes(routes!(operational_status))
        .routes(routes!(queue_status))
        .routes(routes!(fleet_summary))
}
