//! Handlers, one module per area of the API. Each is a thin translation: extract,
//! call the broker, shape the answer.

pub(crate) mod agent;
pub(crate) mod catalog;
pub(crate) mod diagnostics;
pub(crate) mod events;
pub(crate) mod observe;
pub(crate) mod probes;
pub(crate) mod reads;
#[cfg(feature = "webhooks")]
pub(crate) mod webhooks;

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::AppState;

/// Every route of the API (`/api/v1/...`) with its OpenAPI operations, from each area's
/// `routes()`. `large` is the body limit of the routes that take big bodies (deployment
/// objects, diagnostics results).
pub(crate) fn api(large: DefaultBodyLimit) -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::default()
        .merge(catalog::routes(large))
        .merge(agent::routes())
        .merge(reads::routes())
        .merge(diagnostics::routes(large))
        .merge(events::routes());
    // Subscriptions only where something delivers them (feature `webhooks`): accepting
    // one that is never delivered would lose events silently.
    #[cfg(feature = "webhooks")]
    let api = api.merge(webhooks::routes());
    api
}

/// `routes` with a body limit of its own.
pub(crate) fn with_body_limit(
    (schemas, paths, method_router): UtoipaMethodRouter<AppState>,
    limit: DefaultBodyLimit,
) -> UtoipaMethodRouter<AppState> {
    (schemas, paths, method_router.layer(limit))
}
