//! End to end over real TCP: the HTTP API served by the broker on the Postgres store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use brokkr::core::auth::hash_pak;
use brokkr::core::broker::{Broker, BrokerConfig};
use brokkr::core::clock::SystemClock;
use brokkr::core::store::Store;
use brokkr::http::{HttpConfig, router, serve};
use brokkr::store_postgres::testing::fresh_store;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Executor;

const ADMIN: &str = "brokkr_admin_0123456789abcdefghijABCDEFGHIJ0123456789abc";

struct Server {
    base: String,
    store: brokkr::store_postgres::PgStore,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    http: reqwest::Client,
}

async fn start() -> Server {
    let pg = fresh_store().await;
    let store: Arc<dyn Store> = Arc::new(pg.clone());
    let broker = Broker::new(
        store,
        Arc::new(SystemClock),
        hash_pak(ADMIN),
        BrokerConfig::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        router(broker, &HttpConfig::default()),
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        base,
        store: pg,
        stop,
        task,
        http: reqwest::Client::new(),
    }
}

impl Server {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }
}

/// Forgets the applied migrations, as a database restored from an old backup would.
async fn sqlx_unmigrate(s: &Server) {
    s.store
        .pool()
        .execute("DELETE FROM _sqlx_migrations")
        .await
        .unwrap();
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_report_and_operators_read_over_http_on_postgres() {
    use reqwest::Method;
    let s = start().await;
    let (status, agent) = s
        .send(
            Method::POST,
            "/agents",
            ADMIN,
            Some(json!({"name": "edge-1", "cluster_name": "eu"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (a, key) = (
        agent["id"].as_str().unwrap().to_owned(),
        agent["pak"].as_str().unwrap().to_owned(),
    );
    let (_, stack) = s
        .send(
            Method::POST,
            "/stacks",
            ADMIN,
            Some(json!({"name": "shop"})),
        )
        .await;
    let st = stack["id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .send(
            Method::POST,
            &format!("/agents/{a}/targets"),
            ADMIN,
            Some(json!({"stack_id": st})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, object) = s
        .send(
            Method::POST,
            &format!("/stacks/{st}/deployment-objects"),
            ADMIN,
            Some(json!({"yaml_content": "kind: ConfigMap"})),
        )
        .await;
    let o = object["id"].as_str().unwrap().to_owned();

    let (status, _) = s
        .send(
            Method::POST,
            &format!("/agents/{a}/heartbeat"),
            &key,
            Some(json!({"node_count": 3, "node_ready_count": 2, "health_checked_at": now()})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let report = json!({"deployment_objects": [{"id": o, "status": "degraded", "checked_at": now(), "summary": {"pods_ready": 1, "pods_total": 2, "conditions": ["OOMKilled"], "resources": []}}]});
    let (status, result) = s
        .send(
            Method::PATCH,
            &format!("/agents/{a}/health-status"),
            &key,
            Some(report.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["accepted"], 1);
    let (_, again) = s
        .send(
            Method::PATCH,
            &format!("/agents/{a}/health-status"),
            &key,
            Some(report),
        )
        .await;
    assert_eq!(again["unchanged"], 1, "the same verdict is not rewritten");

    let (_, health) = s
        .send(Method::GET, &format!("/stacks/{st}/health"), ADMIN, None)
        .await;
    assert_eq!(health["overall_status"], "degraded");
    let (_, fleet) = s.send(Method::GET, "/fleet/summary", ADMIN, None).await;
    assert_eq!(fleet["health"]["degraded"], 1);
    let (status, _) = s
        .send(Method::GET, &format!("/stacks/{st}/health"), &key, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Twenty token-less claims race for one request: exactly one wins.
    let (status, requested) = s
        .send(
            Method::POST,
            &format!("/deployment-objects/{o}/diagnostics"),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let d = requested["request_id"].as_str().unwrap().to_owned();
    let mut racers = Vec::new();
    for _ in 0..20 {
        let (http, url, key) = (
            s.http.clone(),
            format!("{}/diagnostics/{d}/claim", s.base),
            key.clone(),
        );
        racers.push(tokio::spawn(async move {
            http.post(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            StatusCode::OK => won += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(won, 1);
    let (status, _) = s
        .send(
            Method::POST,
            &format!("/diagnostics/{d}/result"),
            &key,
            Some(json!({"failed": "namespace gone"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, view) = s
        .send(Method::GET, &format!("/diagnostics/{d}"), ADMIN, None)
        .await;
    assert_eq!(view["status"], "failed");

    // Readiness follows the store: migrations missing → 503 problem with Retry-After.
    let ready = s
        .http
        .get(s.base.replace("/api/v1", "/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    sqlx_unmigrate(&s).await;
    let unready = s
        .http
        .get(s.base.replace("/api/v1", "/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(unready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(unready.headers().contains_key("retry-after"));
    let live = s
        .http
        .get(s.base.replace("/api/v1", "/livez"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);

    // Graceful shutdown: the server stops when asked and the task ends cleanly.
    s.stop.send(()).unwrap();
    s.task.await.unwrap().unwrap();
}
