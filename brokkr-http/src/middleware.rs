//! The layers every broker route runs under, as plain functions: route labels, request
//! spans, request counting, `Connection: close` after an unread body, problem+json for
//! bare errors, and the fallbacks.

use axum::http::StatusCode;

use crate::metrics;
use crate::problem::ApiError;

/// The broker's own route template in a matched path: whatever prefix a host nested the
/// routers under is left out, so metric labels are the same everywhere. The broker's
/// template is always the end of the matched path and starts at one of its roots; its
/// own templates contain no second root, so the last root found starts it (a host
/// prefix such as `/docs/brokkr` or `/api/v1/fleet` is not mistaken for it).
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
            matched
                .match_indices(root)
                .map(|(i, _)| i)
                .filter(|&i| {
                    let rest = &matched[i + root.len()..];
                    rest.is_empty() || rest.starts_with('/') || rest.starts_with('.')
                })
                .last()
        })
        .max()
        .map_or(matched, |i| &matched[i..])
}

/// Where the route template of a request ends up: routing happens inside the layers,
/// the counting outside them.
#[derive(Clone, Default)]
struct RouteSlot(std::sync::Arc<std::sync::OnceLock<String>>);

/// Notes the matched route template in the request's [`RouteSlot`].
pub(crate) async fn note_route(
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
pub(crate) fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
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
pub(crate) async fn count_request(
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
pub(crate) async fn close_after_unread_body(
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
pub(crate) async fn problem_for_bare_errors<B>(
    response: axum::http::Response<B>,
) -> axum::response::Response
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

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

#[cfg(test)]
mod tests {
    use super::own_template;

    #[test]
    fn route_labels_leave_the_host_prefix_out() {
        for (matched, label) in [
            (
                "/api/v1/agents/{id}/heartbeat",
                "/api/v1/agents/{id}/heartbeat",
            ),
            (
                "/brokkr/api/v1/agents/{id}/heartbeat",
                "/api/v1/agents/{id}/heartbeat",
            ),
            ("/docs/brokkr/api/v1/fleet/summary", "/api/v1/fleet/summary"),
            ("/api/v1/tools/api/v1/events", "/api/v1/events"),
            ("/brokkr/metrics.json", "/metrics.json"),
            ("/ops/readyz", "/readyz"),
            ("/brokkr/docs/{*rest}", "/docs/{*rest}"),
            ("/host/own/route", "/host/own/route"),
        ] {
            assert_eq!(own_template(matched), label, "{matched}");
        }
    }
}
