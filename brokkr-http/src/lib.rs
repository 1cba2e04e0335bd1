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
pub mod openapi;
#[cfg(feature = "otel")]
pub mod otel;
pub mod problem;
pub mod ratelimit;
mod routes;
pub mod tasks;

pub use tasks::{BrokerTasks, TaskConfig};
#[cfg(feature = "webhooks")]
pub mod webhooks;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use brokkr_core::broker::Broker;
use brokkr_core::store::Store;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower::limit::ConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::problem::ApiError;
use crate::routes::{agent, catalog, diagnostics, probes, reads};

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
    /// Requests served at once; more wait.
    pub concurrency_limit: usize,
    /// Failed-authentication limits per address (429 beyond them).
    pub auth_limits: ratelimit::AuthLimits,
    /// Serve `/metrics.json` (default: yes, unless `BROKKR_METRICS_JSON=off`).
    pub metrics_json: bool,
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
        }
    }
}

/// The API routes (under `/api/v1`), the probes, the metrics and the documentation in
/// one router, with a problem+json fallback: what the example broker serves. The
/// metrics registry holds only the broker's families.
pub fn router(broker: Broker<dyn Store>, config: &HttpConfig) -> Router {
    router_with(broker, config, metrics::Telemetry::new_default())
}

/// [`router`] serving `telemetry`'s registry at `/metrics` (so a host's own metrics
/// appear next to the broker's). Wrap the broker's store in
/// [`MeteredStore`](brokkr_core::store::MeteredStore) with `telemetry.metrics` to get
/// store operation latencies.
pub fn router_with(
    broker: Broker<dyn Store>,
    config: &HttpConfig,
    telemetry: metrics::Telemetry,
) -> Router {
    let parts = routers(broker, config, telemetry, "");
    let fallback = parts.layered(
        Router::new()
            .fallback(not_found)
            .method_not_allowed_fallback(method_not_allowed),
    );
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
    broker: Broker<dyn Store>,
    config: &HttpConfig,
    telemetry: metrics::Telemetry,
    prefix: &str,
) -> Routers {
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
    };
    let large = DefaultBodyLimit::max(config.large_body_limit);
    let api = Router::new()
        .route(
            "/agents",
            post(catalog::register_agent).get(catalog::list_agents),
        )
        .route(
            "/agents/{id}",
            get(catalog::get_agent).delete(catalog::delete_agent),
        )
        .route(
            "/agents/{id}/pak",
            post(catalog::rotate_pak).delete(catalog::revoke_pak),
        )
        .route("/agents/{id}/targets", post(catalog::target))
        .route("/agents/{id}/heartbeat", post(agent::heartbeat))
        .route("/agents/{id}/target-state", get(agent::target_state))
        .route(
            "/agents/{id}/deployment-status",
            post(agent::deployment_status),
        )
        .route("/agents/{id}/health-status", patch(agent::health_status))
        .route("/agents/{id}/health", get(reads::agent_health))
        .route(
            "/agents/{id}/operational-status",
            get(reads::operational_status),
        )
        .route("/agents/{id}/queue-status", get(reads::queue_status))
        .route(
            "/agents/{id}/work-orders/pending",
            get(agent::pending_work_orders),
        )
        .route(
            "/agents/{id}/diagnostics/pending",
            get(diagnostics::pending),
        )
        .route("/stacks", post(catalog::create_stack))
        .route(
            "/stacks/{id}/deployment-objects",
            post(catalog::add_deployment_object).layer(large),
        )
        .route("/stacks/{id}/health", get(reads::stack_health))
        .route(
            "/deployment-objects/{id}",
            get(catalog::get_deployment_object),
        )
        .route("/deployment-objects/{id}/health", get(reads::object_health))
        .route(
            "/deployment-objects/{id}/diagnostics",
            post(diagnostics::request),
        )
        .route("/work-orders", post(agent::create_work_order))
        .route("/work-orders/{id}/claim", post(agent::claim_work_order))
        .route(
            "/work-orders/{id}/complete",
            post(agent::complete_work_order),
        )
        .route("/fleet/summary", get(reads::fleet_summary))
        .route("/events", get(routes::events::stream_events))
        .route(
            "/webhooks",
            post(routes::webhooks::register).get(routes::webhooks::list),
        )
        .route(
            "/webhooks/{id}",
            axum::routing::delete(routes::webhooks::remove),
        )
        .route("/diagnostics/{id}", get(diagnostics::get))
        .route("/diagnostics/{id}/claim", post(diagnostics::claim))
        .route(
            "/diagnostics/{id}/result",
            post(diagnostics::result).layer(large),
        );

    let mut parts = Routers {
        api: Router::new(),
        probes: Router::new(),
        observe: Router::new(),
        docs: Router::new(),
        state,
        config: config.clone(),
    };
    parts.api = parts.layered(
        Router::new()
            .nest("/api/v1", api)
            .method_not_allowed_fallback(method_not_allowed),
    );
    parts.observe = parts.layered(
        Router::new()
            .route("/metrics", get(routes::observe::metrics))
            .route("/metrics.json", get(routes::observe::snapshot)),
    );
    parts.docs = parts.layered(Router::new().merge(openapi::swagger(prefix)));
    // The probes stay outside the concurrency limit and the request timeout: a broker
    // busy with a backlog of agent calls must still answer its orchestrator.
    parts.probes = Router::new()
        .route("/livez", get(probes::livez))
        .route("/readyz", get(probes::readyz))
        .with_state(parts.state.clone())
        .layer(axum::middleware::from_fn(note_route))
        .layer(axum::middleware::from_fn_with_state(
            parts.state.telemetry.metrics.clone(),
            count_request,
        ));
    parts
}

impl Routers {
    /// `router` with the broker's state and every layer of the API applied.
    fn layered(&self, router: Router<AppState>) -> Router {
        let config = &self.config;
        router
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
                    .layer(ConcurrencyLimitLayer::new(config.concurrency_limit))
                    .layer(DefaultBodyLimit::max(config.body_limit)),
            )
            // Outermost: sees what the client sees, panics (500) and timeouts included.
            .layer(axum::middleware::from_fn_with_state(
                self.state.telemetry.metrics.clone(),
                count_request,
            ))
    }
}

/// The broker's own route template in a matched path: whatever prefix a host nested the
/// routers under is left out, so metric labels are the same everywhere.
fn own_template(matched: &str) -> &str {
    const ROOTS: [&str; 6] = [
        "/api/v1",
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
    ];
    ROOTS
        .iter()
        .filter_map(|root| {
            matched.match_indices(root).map(|(i, _)| i).find(|&i| {
                let rest = &matched[i + root.len()..];
                rest.is_empty() || rest.starts_with('/') || rest.starts_with('.')
            })
        })
        .min()
        .map_or(matched, |i| &matched[i..])
}

/// Where the route template of a request ends up: routing happens inside the layers,
/// the counting outside them.
#[derive(Clone, Default)]
struct RouteSlot(std::sync::Arc<std::sync::OnceLock<String>>);

/// Notes the matched route template in the request's [`RouteSlot`].
async fn note_route(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let (Some(slot), Some(route)) = (
        request.extensions().get::<RouteSlot>(),
        request.extensions().get::<axum::extract::MatchedPath>(),
    ) {
        let _ = slot.0.set(own_template(route.as_str()).to_owned());
    }
    next.run(request).await
}

/// One span per request: method, route template, request id, and the caller's kind
/// once authenticated (never the key).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or(metrics::UNMATCHED, axum::extract::MatchedPath::as_str);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        route,
        request_id,
        principal = tracing::field::Empty,
    )
}

/// Counts a request by its route template (never the raw path: ids would make the
/// label set unbounded) and times it.
async fn count_request(
    axum::extract::State(metrics): axum::extract::State<std::sync::Arc<metrics::Metrics>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let route = slot.0.get().map_or(metrics::UNMATCHED, String::as_str);
    metrics.observe_request(
        route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// An answer may come before the request's body was read (a 413, a 401 checked first, a
/// route that takes no body); the rest of that body is still on the wire, so the
/// connection cannot carry another request. Saying `Connection: close` then lets the
/// client open a new connection instead of failing its next request on this one.
async fn close_after_unread_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let headers = request.headers();
    let has_body = headers.contains_key(axum::http::header::TRANSFER_ENCODING)
        || headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v != "0");
    if !has_body {
        return next.run(request).await;
    }
    let read = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let request = request.map(|body| {
        axum::body::Body::new(ReadToEnd {
            inner: body,
            read: read.clone(),
        })
    });
    let mut response = next.run(request).await;
    if !read.load(std::sync::atomic::Ordering::Acquire) {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// A request body that notes when it has been read to its end.
struct ReadToEnd {
    inner: axum::body::Body,
    read: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl http_body::Body for ReadToEnd {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) {
            self.read.store(true, std::sync::atomic::Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Errors produced by layers (a timeout's 408, a limit's rejection) carry no body; give
/// every error response the problem+json shape clients rely on.
async fn problem_for_bare_errors<B>(response: axum::http::Response<B>) -> axum::response::Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = response.status();
    let is_problem = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        let detail = status.canonical_reason().unwrap_or("error").to_lowercase();
        return axum::response::IntoResponse::into_response(ApiError::new(status, detail));
    }
    response.map(axum::body::Body::new)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

/// Connection-level limits of [`serve_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// Longest a client may take to send a request's headers (10 s), counted from when
    /// the connection opens or the previous response went out; then the connection is
    /// closed. Without it, a client that sends one byte a minute, or nothing at all,
    /// holds a connection and a task forever. It also closes keep-alive connections
    /// idle that long (the agent's client drops idle connections sooner). Slow bodies
    /// are bounded by `HttpConfig::request_timeout`.
    pub header_read_timeout: Duration,
    /// After shutdown is asked for, how long requests in flight may take to finish
    /// before their connections are dropped (30 s).
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then finishes the requests in
/// flight; [`ServeOptions::default`] limits.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, &ServeOptions::default(), shutdown).await
}

/// [`serve`] with explicit connection limits: HTTP/1.1 (with keep-alive) on our own
/// accept loop, because axum's `serve` arms no timer and so cannot time out a client
/// that never sends its headers. Each request carries the peer's address as
/// `ConnectInfo<SocketAddr>` (failed-authentication limits are per address).
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    options: &ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};

    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning
                    // (still listening for shutdown); the listener stays usable.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        let service = tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request.map(axum::body::Body::new)
            },
        );
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.shutdown_grace, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the shutdown grace period were cut off");
    }
    Ok(())
}

/// Errors of one incoming connection (it went away before we took it), not of the
/// listener.
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Runs diagnostics cleanup (and deletes fleet events past retention) every `every`
/// until the process ends (safe on every replica), counting diagnostics runs and
/// deletions in `metrics`.
pub fn spawn_cleanup(
    broker: Broker<dyn Store>,
    every: Duration,
    metrics: Option<std::sync::Arc<metrics::Metrics>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            if let Err(err) = broker.cleanup_events().await {
                tracing::warn!(error = %err, "events cleanup failed");
            }
            let outcome = broker.cleanup().await;
            if let Some(metrics) = &metrics {
                metrics.cleanup(outcome.as_ref().map(|n| *n).map_err(|_| ()));
            }
            match outcome {
                Ok(deleted) if deleted > 0 => tracing::info!(deleted, "diagnostics cleanup"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "diagnostics cleanup failed"),
            }
        }
    })
}
