//! The agent's HTTP client against a real listener: the whole agent over HTTP, and the
//! retry rules against a server that misbehaves on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use brokkr_testing::{Seeded, one_agent_one_object};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use brokkr_agent::{Agent, AgentConfig, BrokerApi, SimulatedCluster, SimulationConfig};
use brokkr_client::{Client, ClientConfig};
use brokkr_core::Error;
use brokkr_core::auth::hash_pak;
use brokkr_core::broker::{Broker, BrokerConfig};
use brokkr_core::clock::SystemClock;
use brokkr_core::diagnostics::DiagnosticStatus;
use brokkr_core::health::Health;
use brokkr_core::ids::AgentId;
use brokkr_core::model::{DeliveryState, Heartbeat};
use brokkr_core::store::Store;
use brokkr_http::{HttpConfig, router, serve};
use brokkr_store_memory::MemoryStore;
use tokio::net::TcpListener;

const ADMIN: &str = "brokkr_admin_0123456789abcdefghijABCDEFGHIJ0123456789abc";

async fn listen(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app, std::future::pending()));
    addr
}

fn quick(addr: SocketAddr, agent: AgentId, key: &str) -> ClientConfig {
    ClientConfig {
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(200),
        ..ClientConfig::new(format!("http://{addr}"), agent, key)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_http_applies_reports_and_answers_diagnostics() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let broker = Broker::new(
        store,
        Arc::new(SystemClock),
        hash_pak(ADMIN),
        BrokerConfig::default(),
    )
    .unwrap();
    let admin = broker.authenticate(ADMIN).await.unwrap();
    let Seeded {
        agent: registered,
        stack: _,
        object,
    } = one_agent_one_object(&broker, "kind: ConfigMap\n")
        .await
        .unwrap();
    let addr = listen(router(broker.clone(), &HttpConfig::default())).await;
    let client = Client::new(quick(addr, registered.agent.id, registered.pak.expose())).unwrap();
    let cluster = Arc::new(SimulatedCluster::new(
        Arc::new(SystemClock),
        SimulationConfig::default(),
    ));
    let agent = Agent::new(cluster.clone(), client, SystemClock, AgentConfig::default())
        .unwrap()
        .with_applier(cluster);

    assert_eq!(agent.reconcile_once().await.unwrap().applied, 1);
    assert_eq!(agent.check_once().await.unwrap().reported, 1);
    agent.heartbeat_once().await.unwrap();
    let request = broker
        .request_diagnostics(&admin, object.id, None, "ops")
        .await
        .unwrap()[0]
        .id;
    assert_eq!(agent.diagnostics_once().await.unwrap().posted, 1);

    let view = broker.deployment_object(&admin, object.id).await.unwrap();
    assert_eq!(view.deliveries[0].state, DeliveryState::Applied);
    let health = broker.object_health(&admin, object.id).await.unwrap();
    assert_eq!(health.status, Health::Healthy);
    let status = broker
        .operational_status(&admin, registered.agent.id)
        .await
        .unwrap();
    assert_eq!(status.snapshot.unwrap().node_count, Some(3));
    let diagnostic = broker.diagnostic(&admin, request).await.unwrap();
    assert_eq!(diagnostic.request.status, DiagnosticStatus::Completed);
}

#[tokio::test]
async fn a_wrong_key_is_unauthorized_and_not_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/api/v1/agents/{id}/heartbeat",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::CONTENT_TYPE, "application/problem+json")],
                    r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"bad key"}"#,
                )
            }
        }),
    );
    let addr = listen(app).await;
    let client = Client::new(quick(addr, AgentId::new(), "nope")).unwrap();
    let err = client.heartbeat(&Heartbeat::default()).await.unwrap_err();
    assert_eq!(err, Error::Unauthorized);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn validation_errors_come_back_field_by_field_without_retry() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/api/v1/agents/{id}/heartbeat",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    [(header::CONTENT_TYPE, "application/problem+json")],
                    r#"{"type":"about:blank","title":"Invalid","status":422,"detail":"invalid input","errors":[{"field":"snapshot.node_count","reason":"must not be negative"}]}"#,
                )
            }
        }),
    );
    let addr = listen(app).await;
    let client = Client::new(quick(addr, AgentId::new(), "k")).unwrap();
    let err = client.heartbeat(&Heartbeat::default()).await.unwrap_err();
    let Error::Invalid(fields) = err else {
        panic!("{err:?}")
    };
    assert_eq!(fields[0].field, "snapshot.node_count");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unavailable_answers_are_retried_until_one_gets_through() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/api/v1/agents/{id}/target-state",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    let mut h = HeaderMap::new();
                    h.insert(header::RETRY_AFTER, "0".parse().unwrap());
                    (StatusCode::SERVICE_UNAVAILABLE, h, "store down").into_response()
                } else {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        r#"{"deployment_objects":[]}"#,
                    )
                        .into_response()
                }
            }
        }),
    );
    let addr = listen(app).await;
    let client = Client::new(quick(addr, AgentId::new(), "k")).unwrap();
    assert!(client.target_state().await.unwrap().is_empty());
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_retry_after_longer_than_the_patience_ends_the_retries() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/api/v1/agents/{id}/target-state",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "60")],
                    "busy",
                )
            }
        }),
    );
    let addr = listen(app).await;
    let client = Client::new(quick(addr, AgentId::new(), "k")).unwrap();
    let err = client.target_state().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_broker_that_is_not_there_is_unavailable_after_the_attempts() {
    // Bind and drop: nothing listens on the port any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::new(quick(addr, AgentId::new(), "k")).unwrap();
    let err = client.target_state().await.unwrap_err();
    let Error::Unavailable(message) = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("cannot be reached"), "{message}");
}

#[tokio::test]
async fn a_short_retry_after_is_waited_for() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/api/v1/agents/{id}/target-state",
        get(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        [(header::RETRY_AFTER, "1")],
                        "busy",
                    )
                        .into_response()
                } else {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        r#"{"deployment_objects":[]}"#,
                    )
                        .into_response()
                }
            }
        }),
    );
    let addr = listen(app).await;
    let config = ClientConfig {
        max_backoff: Duration::from_secs(2),
        ..quick(addr, AgentId::new(), "k")
    };
    let client = Client::new(config).unwrap();
    let started = std::time::Instant::now();
    client.target_state().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_work_order_claim_that_reached_the_broker_is_not_repeated() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/api/v1/work-orders/{id}/claim",
        post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { (StatusCode::BAD_GATEWAY, "proxy hiccup") }
        }),
    );
    let addr = listen(app).await;
    let client = Client::new(quick(addr, AgentId::new(), "k")).unwrap();
    let err = client
        .claim_work_order(brokkr_core::ids::WorkOrderId::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
