//! The fleet summary snapshot is refreshed ahead of its readers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use brokkr_core::auth::{Principal, hash_pak};
use brokkr_core::broker::{Broker, BrokerConfig};
use brokkr_core::clock::ManualClock;
use brokkr_core::model::NewAgent;
use brokkr_core::store::Store;
use brokkr_http::{HttpConfig, router};
use brokkr_store_memory::MemoryStore;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const ADMIN: &str = "brokkr_admin_0123456789abcdefghijABCDEFGHIJ0123456789abc";

async fn agents_in_summary(app: &axum::Router) -> u64 {
    let request = Request::get("/api/v1/fleet/summary")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    body["agents"]["total"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_get_a_snapshot_that_is_recomputed_while_they_read() {
    // The broker's clock stands still: only the refresher can bring news.
    let clock = ManualClock::new(chrono::Utc::now());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let config = BrokerConfig {
        fleet_snapshot_max_age: chrono::Duration::milliseconds(250),
        ..BrokerConfig::default()
    };
    let broker: Broker<dyn Store> =
        Broker::new(store, Arc::new(clock), hash_pak(ADMIN), config).unwrap();
    let app = router(broker.clone(), &HttpConfig::default());
    assert_eq!(agents_in_summary(&app).await, 0);
    broker
        .register_agent(
            &Principal::Admin,
            NewAgent {
                name: "edge".into(),
                cluster_name: "edge".into(),
                labels: BTreeMap::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(agents_in_summary(&app).await, 0, "served from the snapshot");
    // The refresher recomputes every 200 ms (four fifths of the age) while read.
    let mut seen = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = agents_in_summary(&app).await;
        if seen == 1 {
            break;
        }
    }
    assert_eq!(seen, 1, "the snapshot was never recomputed");
}
