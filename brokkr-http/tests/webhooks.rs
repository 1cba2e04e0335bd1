//! Webhooks as a receiver sees them: registered over the API, signed, filtered by event
//! type, retried when the receiver fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use brokkr_testing::{Seeded, one_agent_one_object};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::post;
use brokkr_core::auth::hash_pak;
use brokkr_core::broker::{Broker, BrokerConfig};
use brokkr_core::clock::SystemClock;
use brokkr_core::store::Store;
use brokkr_http::metrics::Telemetry;
use brokkr_http::webhooks::{WebhookConfig, signature, spawn_webhook_dispatcher};
use brokkr_http::{HttpConfig, router_with, serve};
use brokkr_store_memory::MemoryStore;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN: &str = "brokkr_admin_0123456789abcdefghijABCDEFGHIJ0123456789abc";
const SECRET: &str = "s3cret-for-signing-deliveries";

#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

/// A receiver on loopback that fails the first `fail_first` deliveries with 503.
async fn receiver(fail_first: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = got.clone();
    let calls = Arc::new(Mutex::new(0usize));
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            let calls = calls.clone();
            async move {
                let n = {
                    let mut c = calls.lock().unwrap();
                    *c += 1;
                    *c
                };
                if n <= fail_first {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                log.lock().unwrap().push(Received { headers, body });
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, app, std::future::pending()));
    (url, got)
}

struct World {
    app: Router,
    broker: Broker<dyn Store>,
    agent: String,
    key: String,
    object: String,
}

/// The test's receivers listen on this machine's loopback, which deliveries may not
/// reach unless the operator lists it.
fn receivers_here() -> BrokerConfig {
    BrokerConfig {
        webhook_destinations: brokkr_core::destination::DestinationPolicy {
            allow_private: false,
            allow_hosts: vec!["127.0.0.1".to_owned()],
        },
        ..BrokerConfig::default()
    }
}

/// Another broker over the same store.
fn replica_of(broker: &Broker<dyn Store>) -> Broker<dyn Store> {
    Broker::new(
        broker.store().clone(),
        Arc::new(SystemClock),
        hash_pak(ADMIN),
        receivers_here(),
    )
    .unwrap()
}

async fn world(config: WebhookConfig) -> World {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let broker: Broker<dyn Store> = Broker::new(
        store,
        Arc::new(SystemClock),
        hash_pak(ADMIN),
        receivers_here(),
    )
    .unwrap();
    let Seeded {
        agent,
        stack: _,
        object,
    } = one_agent_one_object(&broker, "kind: ConfigMap\n")
        .await
        .unwrap();
    let telemetry = Telemetry::new_default();
    let app = router_with(broker.clone(), &HttpConfig::default(), telemetry.clone());
    // A second replica on the same store dispatches too: every test also checks that a
    // delivery goes out once, not once per replica.
    let replica = replica_of(&broker);
    let replica_telemetry = Telemetry::new_default();
    spawn_webhook_dispatcher(replica, &replica_telemetry, config.clone());
    let spare = replica_of(&broker);
    spawn_webhook_dispatcher(broker, &telemetry, config);
    World {
        app,
        broker: spare,
        agent: agent.agent.id.to_string(),
        key: agent.pak.expose().to_owned(),
        object: object.id.to_string(),
    }
}

async fn call(
    app: &Router,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {key}"));
    let body = match body {
        Some(b) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

impl World {
    async fn report(&self, status: &str) {
        let body = json!({"deployment_objects": [{"id": self.object, "status": status,
            "checked_at": chrono::Utc::now(), "summary": {"pods_ready": 0, "pods_total": 1,
            "conditions": ["ImagePullBackOff"]}}]});
        let path = format!("/api/v1/agents/{}/health-status", self.agent);
        assert_eq!(
            call(&self.app, "PATCH", &path, &self.key, Some(body))
                .await
                .0,
            StatusCode::OK
        );
    }

    /// Registers a subscription to `events` at `url` (as the admin): status and body.
    async fn subscribe(&self, url: &str, events: &[&str]) -> (StatusCode, Value) {
        call(
            &self.app,
            "POST",
            "/api/v1/webhooks",
            ADMIN,
            Some(json!({"url": url, "secret": SECRET, "events": events})),
        )
        .await
    }
}

async fn wait_for(got: &Arc<Mutex<Vec<Received>>>, n: usize) -> Vec<Received> {
    for _ in 0..200 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    got.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_filtered_and_registered_over_the_api() {
    let w = world(WebhookConfig::default()).await;
    let (url, got) = receiver(0).await;
    let (other_url, other) = receiver(0).await;
    let (status, hook) = w.subscribe(&url, &["health.failing"]).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(hook.get("secret").is_none(), "{hook}");
    w.subscribe(&other_url, &["agent.lost"]).await;
    let (_, listed) = call(&w.app, "GET", "/api/v1/webhooks", ADMIN, None).await;
    assert_eq!(listed["webhooks"].as_array().unwrap().len(), 2);
    assert!(!listed.to_string().contains(SECRET));

    w.report("healthy").await; // health.reported: nobody subscribed
    w.report("failing").await;
    let received = wait_for(&got, 1).await;
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.headers["x-brokkr-event"], "health.failing");
    let timestamp: i64 = r.headers["x-brokkr-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        r.headers["x-brokkr-signature"].to_str().unwrap(),
        signature(SECRET, timestamp, &r.body)
    );
    let event: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(event["to"], "failing");
    assert_eq!(event["deployment_object_id"], w.object);
    assert!(other.lock().unwrap().is_empty(), "filtered by event type");

    // Removed: no more deliveries.
    let id = hook["id"].as_str().unwrap();
    let (status, _) = call(
        &w.app,
        "DELETE",
        &format!("/api/v1/webhooks/{id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &w.app,
        "DELETE",
        &format!("/api/v1/webhooks/{id}"),
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Removed means no more deliveries, at once.
    w.report("healthy").await;
    w.report("failing").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(got.lock().unwrap().len(), 1, "nothing after the removal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_delivery_again() {
    let w = world(WebhookConfig {
        backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
        refresh: Duration::ZERO,
        ..WebhookConfig::default()
    })
    .await;
    let (url, got) = receiver(2).await;
    w.subscribe(&url, &["health.degraded"]).await;
    w.report("degraded").await;
    let received = wait_for(&got, 1).await;
    assert_eq!(received.len(), 1, "delivered on the third try");
    let delivery = received[0].headers["x-brokkr-delivery"].to_str().unwrap();
    assert_eq!(delivery, "1", "the event's id in the outbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_starts_later_does_not_resend_old_events() {
    let w = world(WebhookConfig {
        refresh: Duration::ZERO,
        ..WebhookConfig::default()
    })
    .await;
    let (url, got) = receiver(0).await;
    w.subscribe(&url, &["health.degraded"]).await;
    w.report("degraded").await;
    assert_eq!(wait_for(&got, 1).await.len(), 1);
    // A rolling deploy: a new replica starts; its relay replays the recent events into
    // its ring, but they were delivered already.
    let telemetry = Telemetry::new_default();
    spawn_webhook_dispatcher(
        replica_of(&w.broker),
        &telemetry,
        WebhookConfig {
            refresh: Duration::ZERO,
            ..WebhookConfig::default()
        },
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(got.lock().unwrap().len(), 1, "an old event was sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_event_once() {
    // Both replicas see new subscriptions at once and race for every delivery.
    let w = world(WebhookConfig {
        refresh: Duration::ZERO,
        ..WebhookConfig::default()
    })
    .await;
    let (url, got) = receiver(0).await;
    w.subscribe(&url, &["health.degraded", "health.failing"])
        .await;
    w.report("degraded").await;
    w.report("failing").await;
    wait_for(&got, 2).await;
    // Time for a duplicate to arrive, if one were coming.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let received = got.lock().unwrap().clone();
    let mut ids: Vec<&str> = received
        .iter()
        .map(|r| r.headers["x-brokkr-delivery"].to_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["1", "2"], "each event once");
}

#[tokio::test]
async fn bad_subscriptions_and_non_admins_are_refused() {
    let w = world(WebhookConfig::default()).await;
    let (status, problem) = call(
        &w.app,
        "POST",
        "/api/v1/webhooks",
        ADMIN,
        Some(json!({"url": "ftp://x", "secret": "short", "events": ["health.sideways"]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["errors"].as_array().unwrap().len(), 3, "{problem}");
    let (status, _) = call(&w.app, "GET", "/api/v1/webhooks", &w.key, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn deliveries_never_reach_loopback_metadata_or_private_addresses_unless_allowed() {
    // The default policy, as a deployment has it.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let broker: Broker<dyn Store> = Broker::new(
        store,
        Arc::new(SystemClock),
        hash_pak(ADMIN),
        BrokerConfig::default(),
    )
    .unwrap();
    let app = brokkr_http::router(broker, &brokkr_http::HttpConfig::default());
    let register = |url: &str| {
        let app = app.clone();
        let body = json!({"url": url, "secret": SECRET, "events": ["health.failing"]});
        async move {
            let response = app
                .oneshot(
                    axum::http::Request::post("/api/v1/webhooks")
                        .header("authorization", format!("Bearer {ADMIN}"))
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(body.to_string()))
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://localhost/hook",
    ] {
        let (status, body) = register(url).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {body}");
    }
    // Credentials in a URL are kept for deliveries but never shown back.
    let (status, body) = register("https://bob:s3cret@hooks.example.com/brokkr").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(!body.contains("s3cret"), "{body}");
    let listed = app
        .clone()
        .oneshot(
            axum::http::Request::get("/api/v1/webhooks")
                .header("authorization", format!("Bearer {ADMIN}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let bytes = axum::body::to_bytes(listed.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("[REDACTED]@hooks.example.com"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
