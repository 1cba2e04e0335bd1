//! What agents call: heartbeats, target state, reconcile and health reports, work orders.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brokkr_core::broker::{HealthReportResult, StatusReportResult};
use brokkr_core::ids::{AgentId, WorkOrderId};
use brokkr_core::model::{
    DeploymentObject, DeploymentStatusEvent, HealthReport, Heartbeat, NewWorkOrder, WorkOrder,
};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, Caller, OptionalJson};
use crate::problem::ApiError;

pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
    OptionalJson(beat): OptionalJson<Heartbeat>,
) -> Result<StatusCode, ApiError> {
    state.broker.heartbeat(&who, agent, beat).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /agents/{id}/target-state` answer.
#[derive(Debug, Serialize)]
pub struct TargetStateBody {
    /// The latest object of every targeted stack.
    pub deployment_objects: Vec<DeploymentObject>,
}

pub(crate) async fn target_state(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
) -> Result<Json<TargetStateBody>, ApiError> {
    let deployment_objects = state.broker.target_state(&who, agent).await?;
    Ok(Json(TargetStateBody { deployment_objects }))
}

/// `POST /agents/{id}/deployment-status` body.
#[derive(Debug, Deserialize)]
pub(crate) struct StatusBody {
    events: Vec<DeploymentStatusEvent>,
}

pub(crate) async fn deployment_status(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<StatusReportResult>, ApiError> {
    Ok(Json(
        state
            .broker
            .report_deployment_status(&who, agent, body.events)
            .await?,
    ))
}

pub(crate) async fn health_status(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
    ApiJson(report): ApiJson<HealthReport>,
) -> Result<Json<HealthReportResult>, ApiError> {
    Ok(Json(state.broker.report_health(&who, agent, report).await?))
}

/// A list of work orders.
#[derive(Debug, Serialize)]
pub struct WorkOrdersBody {
    /// Pending and claimed orders, oldest first.
    pub work_orders: Vec<WorkOrder>,
}

pub(crate) async fn pending_work_orders(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
) -> Result<Json<WorkOrdersBody>, ApiError> {
    let work_orders = state.broker.open_work_orders(&who, agent).await?;
    Ok(Json(WorkOrdersBody { work_orders }))
}

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

pub(crate) async fn claim_work_order(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<WorkOrderId>,
) -> Result<Json<WorkOrder>, ApiError> {
    Ok(Json(state.broker.claim_work_order(&who, id).await?))
}

/// `POST /work-orders/{id}/complete` body (optional).
#[derive(Debug, Deserialize)]
#[serde(default)]
pub(crate) struct CompleteBody {
    success: bool,
}

impl Default for CompleteBody {
    fn default() -> Self {
        Self { success: true }
    }
}

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
