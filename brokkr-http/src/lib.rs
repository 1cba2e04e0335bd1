//! The broker's HTTP API.
//!
//! [`router`] builds an axum `Router` with every route of the API under `/api/v1` plus
//! `/livez`, `/readyz`, the OpenAPI document at `/openapi.json` and Swagger UI at `/docs`; a host can mount it under any prefix or serve it with
//! [`serve`]. Handlers are thin: extract, call the [`Broker`], shape the answer. Limits
//! (body size, timeout, concurrency), request ids and tracing are tower layers.
//!
//! Errors are `application/problem+json` (RFC 9457): 400 malformed JSON or path, 401 no
//! or bad key, 403 wrong role or not the owner, 404, 409, 410, 413 body too large, 415
//! not JSON, 422 invalid, 503 store unavailable (with `Retry-After`).
//!
//! The agent's side of the same API is the `brokkr-client` crate (no server stack).
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod events;
pub mod extract;
pub mod fleet_snapshot;
pub mod metrics;
mod middleware;
pub mod openapi;
#[cfg(feature = "otel")]
pub mod otel;
pub mod problem;
pub mod ratelimit;
mod routes;
mod serve;
pub mod streams;
pub mod tasks;

pub use serve::{ServeOptions, serve, serve_with, shutdown_signal};
pub use tasks::{BrokerTasks, TaskConfig, spawn_cleanup};
#[cfg(feature = "webhooks")]
pub mod webhooks;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use brokkr_core::broker::Broker;
use brokkr_core::store::Store;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::middleware::{
    close_after_unread_body, count_request, method_not_allowed, not_found, note_route,
    problem_for_bare_errors, request_span,
};
use crate::problem::ApiError;
use crate::routes::probes;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The service.
    pub broker: Broker<dyn Store>,
    /// Failed-authentication limits.
    pub limiter: std::sync::Arc<ratelimit::AuthLimiter>,
    /// Metrics.
    pub telemetry: metrics::Telemetry,
    /// Whether `/metrics.json` is served.
    pub metrics_json: bool,
    /// Open event streams, bounded.
    pub streams: std::sync::Arc<streams::StreamSlots>,
}

/// Limits of the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest request body in general (1 MiB).
    pub body_limit: usize,
    /// Largest deployment object and diagnostics result body (10 MiB: an 8 MiB YAML
    /// grows when escaped into JSON; the 8 MiB limit itself is enforced on the YAML).
    pub large_body_limit: usize,
    /// Longest a request may take (30 s); then 408.
    pub request_timeout: Duration,
    /// Requests served at once by all of the broker's routes together (the probes
    /// aside); more wait.
    pub concurrency_limit: usize,
    /// Failed-authentication limits per address (429 beyond them).
    pub auth_limits: ratelimit::AuthLimits,
    /// Serve `/metrics.json` (default: yes, unless `BROKKR_METRICS_JSON=off`).
    pub metrics_json: bool,
    /// Live event streams one key may hold open (8); more get 503 with `Retry-After`.
    pub max_event_streams_per_key: usize,
    /// Live event streams open at once in all (256).
    pub max_event_streams: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            large_body_limit: 10 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            concurrency_limit: 1024,
            auth_limits: ratelimit::AuthLimits::default(),
            metrics_json: !std::env::var("BROKKR_METRICS_JSON")
                .is_ok_and(|v| v.eq_ignore_ascii_case("off")),
            max_event_streams_per_key: 8,
            max_event_streams: 256,
        }
    }
}

/// The API routes (under `/api/v1`), the probes, the metrics and the documentation in
/// one router, with a problem+json fallback: what the example broker serves. The
/// metrics registry holds only the broker's families. `broker` is a `Broker<dyn Store>`
/// or a typed `Broker<S>` (the same broker: one key cache, see [`Broker::into_dyn`]).
pub fn router(broker: impl Into<Broker<dyn Store>>, config: &HttpConfig) -> Router {
    router_with(broker, config, metrics::Telemetry::new_default())
}

/// [`router`] serving `telemetry`'s registry at `/metrics` (so a host's own metrics
/// appear next to the broker's). Wrap the broker's store in
/// [`MeteredStore`](brokkr_core::store::MeteredStore) with `telemetry.metrics` to get
/// store operation latencies.
pub fn router_with(
    broker: impl Into<Broker<dyn Store>>,
    config: &HttpConfig,
    telemetry: metrics::Telemetry,
) -> Router {
    let parts = routers(broker, config, telemetry, "");
    let fallback = parts.layered(Router::new().fallback(not_found));
    Router::new()
        .merge(parts.api)
        .merge(parts.observe)
        .merge(parts.docs)
        .merge(fallback)
        .merge(parts.probes)
}

/// The broker's routes in parts, for a host that places them itself (see
/// `docs/embedding.md`). None has a fallback or claims `/`: the host's own routes and
/// fallback stay its own. Each part carries its layers (request ids, tracing, limits,
/// metrics); the route labels of the metrics are the broker's own templates
/// (`/api/v1/agents/{id}/heartbeat`) wherever the host nests them, so the shipped alert
/// and SLO rules keep matching.
pub struct Routers {
    /// `/api/v1/...`: the API.
    pub api: Router,
    /// `/livez` and `/readyz`, outside the concurrency limit and the request timeout.
    pub probes: Router,
    /// `/metrics` (Prometheus text, refreshing the fleet gauges on every scrape) and
    /// `/metrics.json`; unauthenticated, so place them where only your monitoring reaches.
    pub observe: Router,
    /// `/openapi.json` and Swagger UI at `/docs`, with the document's server URL set to
    /// the prefix the host mounts the API under.
    pub docs: Router,
    state: AppState,
    config: HttpConfig,
    /// One bound for every part, so `concurrency_limit` holds across them.
    concurrency: GlobalConcurrencyLimitLayer,
}

impl std::fmt::Debug for Routers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routers").finish_non_exhaustive()
    }
}

/// The broker's routes as [`Routers`]. `prefix` is where the host nests them (`""` at
/// the root, `"/brokkr"` for `host.nest("/brokkr", ...)`): the OpenAPI document and
/// Swagger UI point there.
pub fn routers(
    broker: impl Into<Broker<dyn Store>>,
    config: &HttpConfig,
    telemetry: metrics::Telemetry,
    prefix: &str,
) -> Routers {
    let broker = broker.into();
    // The relay feeds /api/v1/events from the outbox; without a runtime here, the first
    // subscriber starts it.
    if tokio::runtime::Handle::try_current().is_ok() {
        telemetry.events.ensure_relay(broker.clone());
    }
    let state = AppState {
        broker,
        limiter: std::sync::Arc::new(ratelimit::AuthLimiter::new(config.auth_limits.clone())),
        telemetry,
        metrics_json: config.metrics_json,
        streams: std::sync::Arc::new(streams::StreamSlots::new(
            config.max_event_streams_per_key,
            config.max_event_streams,
        )),
    };
    let (api, _) = routes::api(DefaultBodyLimit::max(config.large_body_limit)).split_for_parts();
    let mut parts = Routers {
        api: Router::new(),
        probes: Router::new(),
        observe: Router::new(),
        docs: Router::new(),
        state,
        config: config.clone(),
        concurrency: GlobalConcurrencyLimitLayer::new(config.concurrency_limit),
    };
    parts.api = parts.layered(api);
    parts.observe = parts.layered(
        Router::new()
            .route("/metrics", get(routes::observe::metrics))
            .route("/metrics.json", get(routes::observe::snapshot)),
    );
    parts.docs = parts.layered(openapi::swagger(prefix));
    // The probes stay outside the concurrency limit and the request timeout: a broker
    // busy with a backlog of agent calls must still answer its orchestrator.
    parts.probes = Router::new()
        .route("/livez", get(probes::livez))
        .route("/readyz", get(probes::readyz))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(parts.state.clone())
        .layer(axum::middleware::from_fn(note_route))
        .layer(axum::middleware::from_fn_with_state(
            parts.state.telemetry.metrics.clone(),
            count_request,
        ));
    parts
}

impl Routers {
    /// `router` with the broker's state and every layer of the API applied; a known
    /// path asked with the wrong method answers 405 problem+json.
    fn layered(&self, router: Router<AppState>) -> Router {
        let config = &self.config;
        router
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(self.state.clone())
            .layer(axum::middleware::from_fn(note_route))
            .layer(
                ServiceBuilder::new()
                    .layer(axum::middleware::from_fn(close_after_unread_body))
                    .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                    .layer(PropagateRequestIdLayer::x_request_id())
                    .layer(TraceLayer::new_for_http().make_span_with(request_span))
                    .layer(axum::middleware::map_response(problem_for_bare_errors))
                    .layer(CatchPanicLayer::custom(|_| {
                        axum::response::IntoResponse::into_response(ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "internal error",
                        ))
                    }))
                    .layer(TimeoutLayer::with_status_code(
                        StatusCode::REQUEST_TIMEOUT,
                        config.request_timeout,
                    ))
                    .layer(self.concurrency.clone())
                    .layer(DefaultBodyLimit::max(config.body_limit)),
            )
            // Outermost: sees what the client sees, panics (500) and timeouts included.
            .layer(axum::middleware::from_fn_with_state(
                self.state.telemetry.metrics.clone(),
                count_request,
            ))
    }
}
