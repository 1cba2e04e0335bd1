//! What agents call: heartbeats, target state, reconcile and health reports, work orders.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brokkr_core::api::{
    CompleteBody, RawHealthReport, RawStatusBody, StatusBody, TargetStateBody, WorkOrdersBody,
    decode_each,
};
use brokkr_core::broker::{HealthReportResult, StatusReportResult};
use brokkr_core::ids::{AgentId, WorkOrderId};
use brokkr_core::model::{HealthReport, Heartbeat, NewWorkOrder, WorkOrder};

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, Caller, OptionalJson};
use crate::problem::{ApiError, ErrorResponses, Problem};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
#[allow(unused_imports)]
use uuid::Uuid;

#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/heartbeat",
    tag = "agent",
    params(("id" = Uuid, Path, description = "agent id")),
    request_body(content = Option<Heartbeat>, description = "optional JSON body", content_type = "application/json"),
    responses(
        (status = 204, description = "recorded"),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
    OptionalJson(beat): OptionalJson<Heartbeat>,
) -> Result<StatusCode, ApiError> {
    state.broker.heartbeat(&who, agent, beat).await?;
    state.telemetry.metrics.heartbeat();
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/target-state",
    tag = "agent",
    params(("id" = Uuid, Path, description = "agent id")),
    responses(
        (status = 200, description = "the latest object of every targeted stack", body = TargetStateBody),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn target_state(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
) -> Result<Json<TargetStateBody>, ApiError> {
    let deployment_objects = state.broker.target_state(&who, agent).await?;
    Ok(Json(TargetStateBody { deployment_objects }))
}

#[utoipa::path(
    post,
    path = "/api/v1/agents/{id}/deployment-status",
    tag = "agent",
    params(("id" = Uuid, Path, description = "agent id")),
    request_body(content = StatusBody, content_type = "application/json"),
    responses(
        (status = 200, description = "accepted and rejected events", body = StatusReportResult),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn deployment_status(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
    ApiJson(body): ApiJson<RawStatusBody>,
) -> Result<Json<StatusReportResult>, ApiError> {
    // Item by item: one event this broker cannot read is rejected alone.
    let (events, rejected) = decode_each(&body.events);
    Ok(Json(
        state
            .broker
            .report_deployment_status_with(&who, agent, events, rejected)
            .await?,
    ))
}

#[utoipa::path(
    patch,
    path = "/api/v1/agents/{id}/health-status",
    tag = "agent",
    params(("id" = Uuid, Path, description = "agent id")),
    request_body(content = HealthReport, content_type = "application/json"),
    responses(
        (status = 200, description = "accepted, unchanged, ignored and rejected items", body = HealthReportResult),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn health_status(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
    ApiJson(raw): ApiJson<RawHealthReport>,
) -> Result<Json<HealthReportResult>, ApiError> {
    let items = raw.deployment_objects.len() as u64;
    // Item by item: one verdict this broker cannot read is rejected alone.
    let (deployment_objects, rejected) = decode_each(&raw.deployment_objects);
    let report = HealthReport { deployment_objects };
    let result = state
        .broker
        .report_health_with(&who, agent, report, rejected)
        .await?;
    state.telemetry.metrics.health_report(items);
    Ok(Json(result))
}

#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/work-orders/pending",
    tag = "work orders",
    params(("id" = Uuid, Path, description = "agent id")),
    responses(
        (status = 200, description = "pending and claimed work orders", body = WorkOrdersBody),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn pending_work_orders(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
) -> Result<Json<WorkOrdersBody>, ApiError> {
    let work_orders = state.broker.open_work_orders(&who, agent).await?;
    Ok(Json(WorkOrdersBody { work_orders }))
}

#[utoipa::path(
    post,
    path = "/api/v1/work-orders",
    tag = "work orders",
    request_body(content = NewWorkOrder, content_type = "application/json"),
    responses(
        (status = 201, description = "the work order", body = WorkOrder),
        ErrorResponses,
        (status = 409, description = "state conflict", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create_work_order(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiJson(new): ApiJson<NewWorkOrder>,
) -> Result<(StatusCode, Json<WorkOrder>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.broker.create_work_order(&who, new).await?),
    ))
}

#[utoipa::path(
    post,
    path = "/api/v1/work-orders/{id}/claim",
    tag = "work orders",
    params(("id" = Uuid, Path, description = "work order id")),
    responses(
        (status = 200, description = "claimed", body = WorkOrder),
        ErrorResponses,
        (status = 409, description = "state conflict", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn claim_work_order(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<WorkOrderId>,
) -> Result<Json<WorkOrder>, ApiError> {
    Ok(Json(state.broker.claim_work_order(&who, id).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/work-orders/{id}/complete",
    tag = "work orders",
    params(("id" = Uuid, Path, description = "work order id")),
    request_body(content = Option<CompleteBody>, description = "optional JSON body", content_type = "application/json"),
    responses(
        (status = 200, description = "completed or failed", body = WorkOrder),
        ErrorResponses,
        (status = 409, description = "state conflict", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn complete_work_order(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<WorkOrderId>,
    OptionalJson(body): OptionalJson<CompleteBody>,
) -> Result<Json<WorkOrder>, ApiError> {
    Ok(Json(
        state
            .broker
            .complete_work_order(&who, id, body.success)
            .await?,
    ))
}

/// The agent's calls and the work-order routes, each declared once: path, method and
/// OpenAPI operation all come from the handler's `#[utoipa::path]`.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(heartbeat))
        .routes(routes!(target_state))
        .routes(routes!(deployment_status))
        .routes(routes!(health_status))
        .routes(routes!(pending_work_orders))
        .routes(routes!(create_work_order))
        .routes(routes!(claim_work_order))
        .routes(routes!(complete_work_order))
}
