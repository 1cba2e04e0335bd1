//! `/metrics` and `/metrics.json` as a Prometheus server and an SRE would use them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use brokkr_core::auth::{Principal, hash_pak};
use brokkr_core::broker::{Broker, BrokerConfig};
use brokkr_core::clock::SystemClock;
use brokkr_core::model::NewAgent;
use brokkr_core::store::{MeteredStore, Store, StoreObserver};
use brokkr_http::metrics::Telemetry;
use brokkr_http::{HttpConfig, router_with};
use brokkr_store_memory::MemoryStore;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const ADMIN: &str = "brokkr_admin_0123456789abcdefghijABCDEFGHIJ0123456789abc";

/// Records store operations, refuses the ones it is told to, and passes the timings on
/// to the metrics.
struct Watch {
    seen: Mutex<Vec<&'static str>>,
    refuse: Mutex<Vec<&'static str>>,
    metrics: Arc<brokkr_http::metrics::Metrics>,
}

impl StoreObserver for Watch {
    fn observe(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        self.seen.lock().unwrap().push(operation);
        self.metrics.observe(operation, elapsed, ok);
    }
    fn admit(&self, operation: &'static str) -> brokkr_core::Result<()> {
        if self.refuse.lock().unwrap().contains(&operation) {
            return Err(brokkr_core::Error::Unavailable("injected".into()));
        }
        Ok(())
    }
}

struct Fixture {
    app: Router,
    broker: Broker<dyn Store>,
    watch: Arc<Watch>,
}

fn fixture(config: &HttpConfig) -> Fixture {
    let telemetry = Telemetry::new_default();
    let watch = Arc::new(Watch {
        seen: Mutex::default(),
        refuse: Mutex::default(),
        metrics: telemetry.metrics.clone(),
    });
    let inner: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let store: Arc<dyn Store> = Arc::new(MeteredStore::new(inner, watch.clone()));
    let broker: Broker<dyn Store> = Broker::new(
        store,
        Arc::new(SystemClock),
        hash_pak(ADMIN),
        BrokerConfig::default(),
    )
    .unwrap();
    Fixture {
        app: router_with(broker.clone(), config, telemetry),
        broker,
        watch,
    }
}

async fn get(app: &Router, path: &str, accept: Option<&str>) -> (StatusCode, String, String) {
    let mut request = Request::builder().uri(path);
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

async fn heartbeat(app: &Router, agent: &str, key: &str) -> StatusCode {
    let request = Request::builder()
        .method("POST")
        .uri(format!("/api/v1/agents/{agent}/heartbeat"))
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"node_count\": 3}"))
        .unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

async fn agents(broker: &Broker<dyn Store>, n: usize) -> Vec<(String, String)> {
    let admin = Principal::Admin;
    let mut out = Vec::new();
    for i in 0..n {
        let registered = broker
            .register_agent(
                &admin,
                NewAgent {
                    name: format!("edge-{i}"),
                    cluster_name: "c".into(),
                    labels: BTreeMap::default(),
                },
            )
            .await
            .unwrap();
        out.push((
            registered.agent.id.to_string(),
            registered.pak.expose().to_owned(),
        ));
    }
    out
}

fn series(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[tokio::test]
async fn metrics_speak_text_0_0_4_with_route_templates() {
    let f = fixture(&HttpConfig::default());
    let agents = agents(&f.broker, 2).await;
    for (id, key) in &agents {
        assert_eq!(heartbeat(&f.app, id, key).await, StatusCode::NO_CONTENT);
    }
    let (status, content_type, text) = get(&f.app, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!text.contains("# EOF"));
    assert!(text.contains("brokkr_heartbeats_total 2"), "{text}");
    assert!(text.contains(
        "brokkr_http_requests_total{route=\"/api/v1/agents/{id}/heartbeat\",method=\"POST\",status=\"2xx\"} 2"
    ), "{text}");
    assert!(text.contains("brokkr_agents{state=\"fresh\"} 2"), "{text}");
    assert!(text.contains(
        "brokkr_store_operation_duration_seconds_count{operation=\"record_heartbeats\"}"
    ));
    for (id, _) in &agents {
        assert!(!text.contains(id.as_str()), "no agent id in any label");
    }
    let (_, content_type, om) = get(
        &f.app,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0"),
    )
    .await;
    assert!(content_type.starts_with("application/openmetrics-text"));
    assert!(om.ends_with("# EOF\n"));
}

#[tokio::test]
async fn the_series_count_does_not_grow_with_the_fleet() {
    let mut counts = Vec::new();
    for n in [10, 10_000] {
        let f = fixture(&HttpConfig::default());
        let agents = agents(&f.broker, n).await;
        for (id, key) in &agents {
            heartbeat(&f.app, id, key).await;
        }
        // Unknown paths do not mint routes either.
        get(&f.app, &format!("/nope/{}", agents[0].0), None).await;
        let (_, _, text) = get(&f.app, "/metrics", None).await;
        assert!(text.contains(&format!("brokkr_heartbeats_total {n}")));
        counts.push(series(&text).len());
    }
    assert_eq!(counts[0], counts[1], "series for 10 and 10,000 agents");
}

#[tokio::test]
async fn the_snapshot_has_every_section_and_only_reads() {
    let f = fixture(&HttpConfig::default());
    agents(&f.broker, 3).await;
    f.watch.seen.lock().unwrap().clear();
    let (status, _, body) = get(&f.app, "/metrics.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert!(v["generated_at"].is_string());
    assert_eq!(v["sections"]["agents"]["total"], 3);
    for section in ["agents", "health", "diagnostics", "queue", "build"] {
        assert!(v["sections"][section].is_object(), "{section}: {v}");
        assert!(
            v["sections"][section].get("error").is_none(),
            "{section}: {v}"
        );
    }
    let reads = ["fleet_rollup", "diagnostic_counts"];
    let seen = f.watch.seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|op| reads.contains(op)),
        "only reads: {seen:?}"
    );
}

#[tokio::test]
async fn a_failing_section_is_an_error_and_the_rest_still_answers() {
    let f = fixture(&HttpConfig::default());
    f.watch.refuse.lock().unwrap().push("diagnostic_counts");
    let (status, _, body) = get(&f.app, "/metrics.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    let error = v["sections"]["diagnostics"]["error"].as_str().unwrap();
    assert!(error.contains("injected"), "{error}");
    assert_eq!(v["sections"]["agents"]["total"], 0);
    // And /metrics keeps answering, counting the failed refresh.
    let (status, _, text) = get(&f.app, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("brokkr_metrics_refresh_failures_total 1"),
        "{text}"
    );
}

#[tokio::test]
async fn the_snapshot_can_be_switched_off() {
    let f = fixture(&HttpConfig {
        metrics_json: false,
        ..HttpConfig::default()
    });
    let (status, content_type, _) = get(&f.app, "/metrics.json", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(content_type.starts_with("application/problem+json"));
    assert_eq!(get(&f.app, "/metrics", None).await.0, StatusCode::OK);
}
