//! On-demand diagnostics: request (admin), poll, claim and answer (the owning agent).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brokkr_core::api::{ClaimBody, PendingBody};
use brokkr_core::diagnostics::{DiagnosticRequest, DiagnosticStatus, PendingDiagnostic};
use brokkr_core::ids::{AgentId, DeploymentObjectId, DiagnosticId};
use brokkr_core::model::DiagnosticOutcome;
use brokkr_core::store::ResultOutcome;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, Caller, OptionalJson};
use crate::problem::{ApiError, ErrorResponses, Problem};
use crate::routes::with_body_limit;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
#[allow(unused_imports)]
use uuid::Uuid;

/// `POST /deployment-objects/{id}/diagnostics` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub(crate) struct RequestBody {
    agent_id: Option<AgentId>,
}

/// One created request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedRequest {
    /// The request.
    pub request_id: DiagnosticId,
    /// The agent asked to collect.
    pub agent_id: AgentId,
    /// `pending`.
    pub status: DiagnosticStatus,
    /// When it expires unless completed.
    pub expires_at: DateTime<Utc>,
}

/// `POST /deployment-objects/{id}/diagnostics` answer (202): the first request at the top
/// level, every request (one per agent running the object) in `requests`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RequestedBody {
    /// The first request.
    #[serde(flatten)]
    pub first: CreatedRequest,
    /// All requests.
    pub requests: Vec<CreatedRequest>,
}

fn created(r: &DiagnosticRequest) -> CreatedRequest {
    CreatedRequest {
        request_id: r.id,
        agent_id: r.agent_id,
        status: r.status,
        expires_at: r.expires_at,
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/deployment-objects/{id}/diagnostics",
    tag = "diagnostics",
    params(("id" = Uuid, Path, description = "deployment object id")),
    request_body(content = Option<RequestBody>, description = "optional JSON body", content_type = "application/json"),
    responses(
        (status = 202, description = "requested, one per agent running the object", body = RequestedBody),
        ErrorResponses,
        (status = 409, description = "state conflict", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn request(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(object): ApiPath<DeploymentObjectId>,
    OptionalJson(body): OptionalJson<RequestBody>,
) -> Result<(StatusCode, Json<RequestedBody>), ApiError> {
    let requests = state
        .broker
        .request_diagnostics(&who, object, body.agent_id, who.kind())
        .await?;
    let first = requests.first().map(created).ok_or_else(|| {
        ApiError::from(brokkr_core::Error::invalid(
            "agent_id",
            "no agent runs this deployment object",
        ))
    })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RequestedBody {
            first,
            requests: requests.iter().map(created).collect(),
        }),
    ))
}

/// `GET /diagnostics/{id}` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DiagnosticBody {
    /// The request.
    pub request_id: DiagnosticId,
    /// The object diagnosed.
    pub deployment_object_id: DeploymentObjectId,
    /// The agent asked.
    pub agent_id: AgentId,
    /// Status as of now.
    pub status: DiagnosticStatus,
    /// Who asked.
    pub requested_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When claimed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<DateTime<Utc>>,
    /// When answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Deleted after this.
    pub expires_at: DateTime<Utc>,
    /// The agent's result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<DiagnosticOutcome>,
}

#[utoipa::path(
    get,
    path = "/api/v1/diagnostics/{id}",
    tag = "diagnostics",
    params(("id" = Uuid, Path, description = "diagnostics request id")),
    responses(
        (status = 200, description = "status and result", body = DiagnosticBody),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<DiagnosticId>,
) -> Result<Json<DiagnosticBody>, ApiError> {
    let view = state.broker.diagnostic(&who, id).await?;
    let r = view.request;
    Ok(Json(DiagnosticBody {
        request_id: r.id,
        deployment_object_id: r.deployment_object_id,
        agent_id: r.agent_id,
        status: r.status,
        requested_by: r.requested_by,
        created_at: r.created_at,
        claimed_at: r.claimed_at,
        completed_at: r.completed_at,
        expires_at: r.expires_at,
        result: view.result,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/agents/{id}/diagnostics/pending",
    tag = "diagnostics",
    params(("id" = Uuid, Path, description = "agent id")),
    responses(
        (status = 200, description = "claimable requests", body = PendingBody),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn pending(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(agent): ApiPath<AgentId>,
) -> Result<Json<PendingBody>, ApiError> {
    let requests = state.broker.pending_diagnostics(&who, agent).await?;
    Ok(Json(PendingBody {
        requests: requests.into_iter().map(PendingDiagnostic::from).collect(),
    }))
}

/// `POST /diagnostics/{id}/claim` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClaimedBody {
    /// The request.
    pub request_id: DiagnosticId,
    /// `claimed`.
    pub status: DiagnosticStatus,
    /// When it was claimed.
    pub claimed_at: Option<DateTime<Utc>>,
    /// The object to diagnose.
    pub deployment_object_id: DeploymentObjectId,
}

#[utoipa::path(
    post,
    path = "/api/v1/diagnostics/{id}/claim",
    tag = "diagnostics",
    params(("id" = Uuid, Path, description = "diagnostics request id")),
    request_body(content = Option<ClaimBody>, description = "optional JSON body", content_type = "application/json"),
    responses(
        (status = 200, description = "claimed (or retried by the holder)", body = ClaimedBody),
        ErrorResponses,
        (status = 409, description = "state conflict", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "expired", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn claim(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<DiagnosticId>,
    OptionalJson(body): OptionalJson<ClaimBody>,
) -> Result<Json<ClaimedBody>, ApiError> {
    let r = state
        .broker
        .claim_diagnostic(&who, id, body.claim_token.as_deref())
        .await?;
    Ok(Json(ClaimedBody {
        request_id: r.id,
        status: r.status,
        claimed_at: r.claimed_at,
        deployment_object_id: r.deployment_object_id,
    }))
}

/// `POST /diagnostics/{id}/result` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResultBody {
    /// The request.
    pub request_id: DiagnosticId,
    /// Whether this call stored it or an identical earlier one did.
    pub stored: &'static str,
}

#[utoipa::path(
    post,
    path = "/api/v1/diagnostics/{id}/result",
    tag = "diagnostics",
    params(("id" = Uuid, Path, description = "diagnostics request id")),
    request_body(content = DiagnosticOutcome, content_type = "application/json"),
    responses(
        (status = 201, description = "stored (or an identical retry)", body = ResultBody),
        ErrorResponses,
        (status = 409, description = "state conflict", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "expired", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn result(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<DiagnosticId>,
    ApiJson(outcome): ApiJson<DiagnosticOutcome>,
) -> Result<(StatusCode, Json<ResultBody>), ApiError> {
    let stored = match state
        .broker
        .post_diagnostic_result(&who, id, outcome)
        .await?
    {
        ResultOutcome::Stored => "now",
        ResultOutcome::AlreadyStored => "before",
    };
    Ok((
        StatusCode::CREATED,
        Json(ResultBody {
            request_id: id,
            stored,
        }),
    ))
}

/// On-demand diagnostics: request, read, and the owning agent's claim and result.
/// `large` is the body limit of results.
pub(crate) fn routes(large: axum::extract::DefaultBodyLimit) -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(request))
        .routes(routes!(get))
        .routes(routes!(pending))
        .routes(routes!(claim))
        .routes(with_body_limit(routes!(result), large))
}
