//! Webhook subscriptions (admin): register, list, remove.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use brokkr_core::events::{NewWebhook, Webhook};
use brokkr_core::ids::WebhookId;
use serde::Serialize;

use crate::AppState;
use crate::extract::{ApiJson, ApiPath, Caller};
use crate::problem::{ApiError, ErrorResponses};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "events",
    request_body(content = NewWebhook, content_type = "application/json"),
    responses(
        (status = 201, description = "registered (the secret is not shown again)", body = Webhook),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn register(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiJson(new): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<Webhook>), ApiError> {
    // The name must not resolve anywhere a delivery may not go (checked again, after
    // resolution, on every delivery).
    // Admin first: nobody else may make the broker resolve names for them.
    who.require_admin().map_err(ApiError::from)?;
    let policy = &state.broker.config().webhook_destinations;
    let refuse = |reason| ApiError::from(brokkr_core::Error::invalid("url", reason));
    // (A URL of another scheme is refused by the broker's own checks below.)
    let checkable = new.url.starts_with("http://") || new.url.starts_with("https://");
    if checkable
        && let Some(name) = crate::webhooks::check_target(policy, &new.url).map_err(refuse)?
    {
        crate::webhooks::check_resolved(policy, &name)
            .await
            .map_err(refuse)?;
    }
    let mut webhook = state.broker.register_webhook(&who, new).await?;
    webhook.url = brokkr_core::destination::mask_credentials(&webhook.url);
    state
        .telemetry
        .webhooks_changed
        .fetch_add(1, Ordering::AcqRel);
    Ok((StatusCode::CREATED, Json(webhook)))
}

/// `GET /webhooks` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhooksBody {
    /// Subscriptions, oldest first, without secrets.
    pub webhooks: Vec<Webhook>,
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "events",
    responses(
        (status = 200, description = "every subscription (secrets never shown)", body = WebhooksBody),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
) -> Result<Json<WebhooksBody>, ApiError> {
    let mut webhooks = state.broker.webhooks(&who).await?;
    // Never echo `user:password@` back.
    for hook in &mut webhooks {
        hook.url = brokkr_core::destination::mask_credentials(&hook.url);
    }
    Ok(Json(WebhooksBody { webhooks }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{id}",
    tag = "events",
    params(("id" = Uuid, Path, description = "webhook id")),
    responses(
        (status = 204, description = "removed"),
        ErrorResponses,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiPath(id): ApiPath<WebhookId>,
) -> Result<StatusCode, ApiError> {
    state.broker.delete_webhook(&who, id).await?;
    state
        .telemetry
        .webhooks_changed
        .fetch_add(1, Ordering::AcqRel);
    Ok(StatusCode::NO_CONTENT)
}

/// Webhook subscriptions.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(register, list))
        .routes(routes!(remove))
}
