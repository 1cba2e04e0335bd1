//! OTLP export: request spans reach a collector.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use brokkr_http::otel::otlp_layer;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_to_the_collector() {
    // A collector that records what it is sent.
    let got: Arc<Mutex<Vec<(String, Bytes)>>> = Arc::default();
    let log = got.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                let kind = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                log.lock().unwrap().push((kind, body));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (layer, guard) = otlp_layer(&endpoint, "brokkr-test").unwrap();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!(
            "request",
            route = "/api/v1/fleet/summary",
            principal = "admin"
        );
        let _entered = span.enter();
        tracing::info!("inside");
    });
    // Flushing blocks on the export: off the async threads.
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .unwrap();

    let got = got.lock().unwrap().clone();
    assert!(!got.is_empty(), "the collector got the spans");
    let (kind, body) = &got[0];
    assert_eq!(kind, "application/x-protobuf");
    // Protobuf carries strings verbatim: the span name, an attribute and the service.
    let text = String::from_utf8_lossy(body);
    for expected in ["request", "/api/v1/fleet/summary", "brokkr-test"] {
        assert!(text.contains(expected), "{expected} not in the export");
    }
}
