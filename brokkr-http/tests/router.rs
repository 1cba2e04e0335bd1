//! The router driven with `oneshot`: every route's happy path, its errors, and who may
//! call it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use brokkr_core::auth::hash_pak;
use brokkr_core::broker::{Broker, BrokerConfig};
use brokkr_core::clock::SystemClock;
use brokkr_core::store::Store;
use brokkr_http::{HttpConfig, router};
use brokkr_store_memory::MemoryStore;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const ADMIN: &str = "brokkr_admin_0123456789abcdefghijABCDEFGHIJ0123456789abc";

struct Api {
    router: Router,
}

/// A broker over a fresh in-memory store.
fn memory_broker() -> Broker<dyn Store> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    Broker::new(
        store,
        Arc::new(SystemClock),
        hash_pak(ADMIN),
        BrokerConfig::default(),
    )
    .unwrap()
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Api {
    /// An API whose failed-authentication limits do not get in the way of tests that
    /// try many bad keys on purpose.
    fn new() -> Self {
        Self::with(&HttpConfig {
            auth_limits: brokkr_http::ratelimit::AuthLimits {
                per_key: 10_000,
                per_address: 100_000,
                ..Default::default()
            },
            ..HttpConfig::default()
        })
    }

    fn with(config: &HttpConfig) -> Self {
        let broker = memory_broker();
        Self {
            router: router(broker, config),
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Body,
        json: bool,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        if json {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            content_type,
            body,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        match body {
            Some(b) => {
                self.raw(method, path, key, Body::from(b.to_string()), true)
                    .await
            }
            None => self.raw(method, path, key, Body::empty(), false).await,
        }
    }
}

/// An admin, one agent targeting a stack with one object, and another agent.
struct World {
    api: Api,
    agent: String,
    agent_key: String,
    other: String,
    other_key: String,
    stack: String,
    object: String,
}

async fn world() -> World {
    world_on(Api::new()).await
}

async fn world_on(api: Api) -> World {
    let register = |name: &'static str| {
        let api = &api;
        async move {
            let r = api
                .call(
                    Method::POST,
                    "/api/v1/agents",
                    Some(ADMIN),
                    Some(json!({"name": name, "cluster_name": "c"})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
            (
                r.body["id"].as_str().unwrap().to_owned(),
                r.body["pak"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (agent, agent_key) = register("edge-1").await;
    let (other, other_key) = register("edge-2").await;
    let stack = api
        .call(
            Method::POST,
            "/api/v1/stacks",
            Some(ADMIN),
            Some(json!({"name": "shop"})),
        )
        .await;
    assert_eq!(stack.status, StatusCode::CREATED);
    let stack = stack.body["id"].as_str().unwrap().to_owned();
    let target = api
        .call(
            Method::POST,
            &format!("/api/v1/agents/{agent}/targets"),
            Some(ADMIN),
            Some(json!({"stack_id": stack})),
        )
        .await;
    assert_eq!(target.status, StatusCode::CREATED);
    let object = api
        .call(
            Method::POST,
            &format!("/api/v1/stacks/{stack}/deployment-objects"),
            Some(ADMIN),
            Some(json!({"yaml_content": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n"})),
        )
        .await;
    assert_eq!(object.status, StatusCode::CREATED, "{:?}", object.body);
    assert_eq!(object.body["sequence_id"], 1);
    let object = object.body["id"].as_str().unwrap().to_owned();
    World {
        api,
        agent,
        agent_key,
        other,
        other_key,
        stack,
        object,
    }
}

impl World {
    /// A second object the agent may report on (in a second stack it targets).
    async fn second_object(&self) -> String {
        let stack = self
            .api
            .call(
                Method::POST,
                "/api/v1/stacks",
                Some(ADMIN),
                Some(json!({"name": "shop-2"})),
            )
            .await;
        let stack = stack.body["id"].as_str().unwrap().to_owned();
        let target = self
            .api
            .call(
                Method::POST,
                &format!("/api/v1/agents/{}/targets", self.agent),
                Some(ADMIN),
                Some(json!({"stack_id": stack})),
            )
            .await;
        assert_eq!(target.status, StatusCode::CREATED);
        let object = self
            .api
            .call(
                Method::POST,
                &format!("/api/v1/stacks/{stack}/deployment-objects"),
                Some(ADMIN),
                Some(json!({"yaml_content": "kind: ConfigMap\n"})),
            )
            .await;
        assert_eq!(object.status, StatusCode::CREATED, "{:?}", object.body);
        object.body["id"].as_str().unwrap().to_owned()
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

fn assert_problem(reply: &Reply, status: StatusCode) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["status"], status.as_u16());
    assert!(reply.body["detail"].is_string());
    assert!(reply.body["type"].as_str().unwrap().starts_with("https://"));
}

#[tokio::test]
async fn the_agent_flow_from_heartbeat_to_diagnostics() {
    let w = world().await;
    let (a, key) = (&w.agent, Some(w.agent_key.as_str()));
    let api = &w.api;

    let beat = api
        .call(Method::POST, &format!("/api/v1/agents/{a}/heartbeat"), key,
              Some(json!({"cluster_cpu_capacity": 4000, "cluster_cpu_available": 1500, "node_count": 3, "node_ready_count": 3, "health_checked_at": now()})))
        .await;
    assert_eq!(beat.status, StatusCode::NO_CONTENT);
    let bare = api
        .call(
            Method::POST,
            &format!("/api/v1/agents/{a}/heartbeat"),
            key,
            None,
        )
        .await;
    assert_eq!(
        bare.status,
        StatusCode::NO_CONTENT,
        "a heartbeat without a body is fine"
    );

    let state = api
        .call(
            Method::GET,
            &format!("/api/v1/agents/{a}/target-state"),
            key,
            None,
        )
        .await;
    assert_eq!(state.status, StatusCode::OK);
    assert_eq!(state.body["deployment_objects"][0]["id"], w.object.as_str());

    let status = api
        .call(Method::POST, &format!("/api/v1/agents/{a}/deployment-status"), key,
              Some(json!({"events": [{"deployment_object_id": w.object, "outcome": "applied", "attempted_at": now(), "retry_count": 0, "reconciliation_duration_ms": 420}]})))
        .await;
    assert_eq!(status.status, StatusCode::OK, "{:?}", status.body);
    assert_eq!(status.body["accepted"], 1);

    let health = api
        .call(Method::PATCH, &format!("/api/v1/agents/{a}/health-status"), key,
              Some(json!({"deployment_objects": [{"id": w.object, "status": "failing", "checked_at": now(),
                  "summary": {"pods_ready": 0, "pods_total": 1, "conditions": ["ImagePullBackOff"], "resources": [{"kind": "Pod", "name": "web-0", "namespace": "shop", "ready": false, "message": "ImagePullBackOff"}]}}]})))
        .await;
    assert_eq!(health.status, StatusCode::OK, "{:?}", health.body);
    assert_eq!(
        (
            health.body["accepted"].as_u64(),
            health.body["unchanged"].as_u64(),
            health.body["ignored"].as_u64()
        ),
        (Some(1), Some(0), Some(0))
    );

    let stack = api
        .call(
            Method::GET,
            &format!("/api/v1/stacks/{}/health", w.stack),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(stack.status, StatusCode::OK);
    assert_eq!(stack.body["overall_status"], "failing");
    assert_eq!(
        stack.body["deployment_objects"][0]["agents"][0]["summary"]["conditions"][0],
        "ImagePullBackOff"
    );
    let object = api
        .call(
            Method::GET,
            &format!("/api/v1/deployment-objects/{}/health", w.object),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(object.body["status"], "failing");
    assert_eq!(object.body["agents"][0]["stale"], false);
    let mine = api
        .call(
            Method::GET,
            &format!("/api/v1/agents/{a}/health"),
            key,
            None,
        )
        .await;
    assert_eq!(mine.body["deployment_objects"][0]["status"], "failing");
    let delivered = api
        .call(
            Method::GET,
            &format!("/api/v1/deployment-objects/{}", w.object),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(delivered.body["deliveries"][0]["state"], "applied");
    assert_eq!(
        delivered.body["deliveries"][0]["reconciliation_duration_ms"],
        420
    );
    let ops = api
        .call(
            Method::GET,
            &format!("/api/v1/agents/{a}/operational-status"),
            key,
            None,
        )
        .await;
    assert_eq!(ops.body["staleness"], "fresh");
    assert_eq!(ops.body["snapshot"]["cluster_cpu_capacity"], 4000);
    let queue = api
        .call(
            Method::GET,
            &format!("/api/v1/agents/{a}/queue-status"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(queue.body["queue_depth"], 0);
    let fleet = api
        .call(Method::GET, "/api/v1/fleet/summary", Some(ADMIN), None)
        .await;
    assert_eq!(fleet.body["agents"]["total"], 2);
    assert_eq!(fleet.body["health"]["failing"], 1);
    assert_eq!(fleet.body["capacity"]["cpu_capacity"], 4000);

    // Diagnostics: request, poll, claim (retry with the token), answer once.
    let requested = api
        .call(
            Method::POST,
            &format!("/api/v1/deployment-objects/{}/diagnostics", w.object),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(
        requested.status,
        StatusCode::ACCEPTED,
        "{:?}",
        requested.body
    );
    assert_eq!(requested.body["status"], "pending");
    let id = requested.body["request_id"].as_str().unwrap().to_owned();
    let pending = api
        .call(
            Method::GET,
            &format!("/api/v1/agents/{a}/diagnostics/pending"),
            key,
            None,
        )
        .await;
    assert_eq!(pending.body["requests"][0]["id"], id.as_str());
    let claim = api
        .call(
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/claim"),
            key,
            Some(json!({"claim_token": "k1"})),
        )
        .await;
    assert_eq!(claim.status, StatusCode::OK);
    assert_eq!(claim.body["status"], "claimed");
    let retry = api
        .call(
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/claim"),
            key,
            Some(json!({"claim_token": "k1"})),
        )
        .await;
    assert_eq!(retry.status, StatusCode::OK);
    let stolen = api
        .call(
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/claim"),
            key,
            None,
        )
        .await;
    assert_problem(&stolen, StatusCode::CONFLICT);
    let bundle = json!({"collected_at": now(), "pod_statuses": [{"name": "web-0", "namespace": "shop", "phase": "Pending", "conditions": [],
        "container_statuses": [{"name": "web", "init": false, "ready": false, "state": "waiting", "reason": "ImagePullBackOff", "restart_count": 0}]}],
        "events": [], "log_tails": {"web-0/web": ["pulling image", "db url postgres://app:hunter2@db/shop"]}});
    let result = api
        .call(
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/result"),
            key,
            Some(bundle.clone()),
        )
        .await;
    assert_eq!(result.status, StatusCode::CREATED, "{:?}", result.body);
    let again = api
        .call(
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/result"),
            key,
            Some(bundle),
        )
        .await;
    assert_eq!(
        again.status,
        StatusCode::CREATED,
        "an identical retry is accepted"
    );
    let different = api
        .call(
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/result"),
            key,
            Some(json!({"failed": "gave up"})),
        )
        .await;
    assert_problem(&different, StatusCode::CONFLICT);
    let view = api
        .call(
            Method::GET,
            &format!("/api/v1/diagnostics/{id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(view.body["status"], "completed");
    assert_eq!(
        view.body["result"]["log_tails"]["web-0/web"][0],
        "pulling image"
    );

    // Work orders.
    let order = api
        .call(
            Method::POST,
            "/api/v1/work-orders",
            Some(ADMIN),
            Some(json!({"agent_id": a, "kind": "restart", "payload": {}})),
        )
        .await;
    assert_eq!(order.status, StatusCode::CREATED, "{:?}", order.body);
    let oid = order.body["id"].as_str().unwrap().to_owned();
    let open = api
        .call(
            Method::GET,
            &format!("/api/v1/agents/{a}/work-orders/pending"),
            key,
            None,
        )
        .await;
    assert_eq!(open.body["work_orders"][0]["id"], oid.as_str());
    let claimed = api
        .call(
            Method::POST,
            &format!("/api/v1/work-orders/{oid}/claim"),
            key,
            None,
        )
        .await;
    assert_eq!(claimed.body["status"], "claimed");
    let twice = api
        .call(
            Method::POST,
            &format!("/api/v1/work-orders/{oid}/claim"),
            key,
            None,
        )
        .await;
    assert_problem(&twice, StatusCode::CONFLICT);
    let done = api
        .call(
            Method::POST,
            &format!("/api/v1/work-orders/{oid}/complete"),
            key,
            None,
        )
        .await;
    assert_eq!(done.body["status"], "completed");

    let list = api
        .call(Method::GET, "/api/v1/agents?limit=1", Some(ADMIN), None)
        .await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let cursor = list.body["next_cursor"].as_str().unwrap().to_owned();
    let rest = api
        .call(
            Method::GET,
            &format!("/api/v1/agents?limit=1&cursor={cursor}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
    assert!(rest.body["next_cursor"].is_null());
}

#[tokio::test]
async fn bad_requests_are_problems_never_server_errors() {
    let w = world().await;
    let api = &w.api;
    let a = &w.agent;
    let key = Some(w.agent_key.as_str());
    let hb = format!("/api/v1/agents/{a}/heartbeat");

    let malformed = api
        .raw(Method::POST, &hb, key, Body::from("{not json"), true)
        .await;
    assert_problem(&malformed, StatusCode::BAD_REQUEST);
    let not_json = api
        .raw(
            Method::POST,
            "/api/v1/stacks",
            Some(ADMIN),
            Body::from("name=x"),
            false,
        )
        .await;
    assert_problem(&not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let wrong_type = api
        .call(Method::POST, &hb, key, Some(json!({"node_count": "three"})))
        .await;
    assert_problem(&wrong_type, StatusCode::UNPROCESSABLE_ENTITY);
    let negative = api
        .call(Method::POST, &hb, key, Some(json!({"node_count": -1})))
        .await;
    assert_problem(&negative, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        negative.body["errors"][0]["field"]
            .as_str()
            .unwrap()
            .contains("node_count")
    );
    let over = api
        .call(
            Method::POST,
            &hb,
            key,
            Some(json!({"cluster_memory_capacity": 10, "cluster_memory_available": 20})),
        )
        .await;
    assert_problem(&over, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_id = api
        .call(Method::GET, "/api/v1/agents/not-a-uuid", Some(ADMIN), None)
        .await;
    assert_problem(&bad_id, StatusCode::BAD_REQUEST);
    let unknown = api
        .call(
            Method::GET,
            &format!("/api/v1/agents/{}", uuid::Uuid::nil()),
            Some(ADMIN),
            None,
        )
        .await;
    assert_problem(&unknown, StatusCode::NOT_FOUND);
    let no_route = api
        .call(Method::GET, "/api/v1/nothing", Some(ADMIN), None)
        .await;
    assert_problem(&no_route, StatusCode::NOT_FOUND);
    let wrong_method = api
        .call(Method::DELETE, "/api/v1/stacks", Some(ADMIN), None)
        .await;
    assert_problem(&wrong_method, StatusCode::METHOD_NOT_ALLOWED);
    // Outside the API too: every part of the router answers a wrong method alike.
    for path in ["/metrics", "/livez", "/openapi.json"] {
        let wrong = api.call(Method::DELETE, path, Some(ADMIN), None).await;
        assert_problem(&wrong, StatusCode::METHOD_NOT_ALLOWED);
    }
    let limit = api
        .call(Method::GET, "/api/v1/agents?limit=501", Some(ADMIN), None)
        .await;
    assert_problem(&limit, StatusCode::UNPROCESSABLE_ENTITY);
    let huge = api
        .raw(
            Method::POST,
            "/api/v1/stacks",
            Some(ADMIN),
            Body::from(format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024))),
            true,
        )
        .await;
    assert_problem(&huge, StatusCode::PAYLOAD_TOO_LARGE);
    // Deployment objects may be larger than other bodies (up to 8 MiB).
    let big_yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: {}\n",
        "y".repeat(2 * 1024 * 1024)
    );
    let big = api
        .call(
            Method::POST,
            &format!("/api/v1/stacks/{}/deployment-objects", w.stack),
            Some(ADMIN),
            Some(json!({"yaml_content": big_yaml})),
        )
        .await;
    assert_eq!(big.status, StatusCode::CREATED, "{:?}", big.body);
    let health = format!("/api/v1/agents/{a}/health-status");
    let summary = json!({"pods_ready": 0, "pods_total": 0, "conditions": [], "resources": []});
    // An agent's clock ahead of ours: the check counts as made now, never refused.
    let future = api
        .call(Method::PATCH, &health, key,
              Some(json!({"deployment_objects": [{"id": w.object, "status": "healthy", "checked_at": "2999-01-01T00:00:00Z", "summary": summary}]})))
        .await;
    assert_eq!(future.status, StatusCode::OK, "{:?}", future.body);
    assert_eq!(future.body["accepted"], 1);
    // An item this broker cannot read (a newer agent's status, a negative count) is
    // rejected alone; its neighbour is taken.
    let second = w.second_object().await;
    let mixed = api
        .call(
            Method::PATCH,
            &health,
            key,
            Some(json!({"deployment_objects": [
                  {"id": w.object, "status": "sad", "checked_at": now(), "summary": summary},
                  {"id": second, "status": "failing", "checked_at": now(), "summary": summary}]})),
        )
        .await;
    assert_eq!(mixed.status, StatusCode::OK, "{:?}", mixed.body);
    assert_eq!(mixed.body["accepted"], 1);
    assert_eq!(mixed.body["rejected"][0]["id"], w.object.as_str());
    assert!(
        mixed.body["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("sad"),
        "{:?}",
        mixed.body
    );
    let negative = api
        .call(Method::PATCH, &health, key,
              Some(json!({"deployment_objects": [
                  {"id": w.object, "status": "healthy", "checked_at": now(), "summary": {"pods_ready": -1, "pods_total": 0}},
                  {"id": second, "status": "healthy", "checked_at": now(), "summary": summary}]})))
        .await;
    assert_eq!(negative.status, StatusCode::OK, "{:?}", negative.body);
    assert_eq!(negative.body["rejected"].as_array().unwrap().len(), 1);
    // Every item bad: the batch is refused, with each reason.
    let unknown_status = api
        .call(Method::PATCH, &health, key,
              Some(json!({"deployment_objects": [{"id": w.object, "status": "sad", "checked_at": now(), "summary": summary}]})))
        .await;
    assert_problem(&unknown_status, StatusCode::UNPROCESSABLE_ENTITY);
    // Duplicate ids are a client bug: the whole batch, even when each item is fine.
    let dup = api
        .call(
            Method::PATCH,
            &health,
            key,
            Some(json!({"deployment_objects": [
                  {"id": w.object, "status": "healthy", "checked_at": now(), "summary": summary},
                  {"id": w.object, "status": "failing", "checked_at": now(), "summary": summary}]})),
        )
        .await;
    assert_problem(&dup, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        dup.body["detail"].as_str().unwrap().contains("duplicate"),
        "{:?}",
        dup.body
    );
    // Deployment status: an unknown outcome is rejected alone too.
    let status = api
        .call(Method::POST, &format!("/api/v1/agents/{a}/deployment-status"), key,
              Some(json!({"events": [
                  {"deployment_object_id": w.object, "outcome": "teleported", "attempted_at": now(), "retry_count": 0},
                  {"deployment_object_id": second, "outcome": "applied", "attempted_at": now(), "retry_count": 0}]})))
        .await;
    assert_eq!(status.status, StatusCode::OK, "{:?}", status.body);
    assert_eq!(status.body["accepted"], 1);
    assert_eq!(status.body["rejected"][0]["id"], w.object.as_str());
    let result_unclaimed = api
        .call(
            Method::POST,
            &format!("/api/v1/diagnostics/{}/result", uuid::Uuid::nil()),
            key,
            Some(json!({"failed": "x"})),
        )
        .await;
    assert_problem(&result_unclaimed, StatusCode::NOT_FOUND);
    let nul = api
        .call(
            Method::POST,
            "/api/v1/stacks",
            Some(ADMIN),
            Some(json!({"name": "shop\u{0}"})),
        )
        .await;
    assert_problem(&nul, StatusCode::UNPROCESSABLE_ENTITY);
    // Optional bodies: absent is fine, even with a JSON content type; present must be JSON.
    let empty_json = api.raw(Method::POST, &hb, key, Body::empty(), true).await;
    assert_eq!(empty_json.status, StatusCode::NO_CONTENT);
    let form = api
        .raw(Method::POST, &hb, key, Body::from("a=b"), false)
        .await;
    assert_problem(&form, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let broken = api
        .raw(
            Method::POST,
            &hb,
            key,
            Body::from("{\"node_count\": "),
            true,
        )
        .await;
    assert_problem(&broken, StatusCode::BAD_REQUEST);
    let live = api.call(Method::GET, "/livez", None, None).await;
    assert_eq!(live.status, StatusCode::OK);
    let ready = api.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
}

/// Every route × {no key, bad key, admin, owning agent, other agent}.
#[tokio::test]
async fn authorization_matrix() {
    let w = world().await;
    let (a, o, s) = (&w.agent, &w.object, &w.stack);
    let bad = "brokkr_agent_0000000000000000000000000000000000000000000";
    let ok_admin = "admin";
    // (method, path, body, who may: "admin" | "agent" | "both")
    let routes: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::GET, "/api/v1/agents".into(), None, ok_admin),
        (Method::GET, format!("/api/v1/agents/{a}"), None, ok_admin),
        (
            Method::POST,
            "/api/v1/stacks".into(),
            Some(json!({"name": "x"})),
            ok_admin,
        ),
        (
            Method::POST,
            format!("/api/v1/stacks/{s}/deployment-objects"),
            Some(json!({"yaml_content": "kind: ConfigMap"})),
            ok_admin,
        ),
        (
            Method::GET,
            format!("/api/v1/deployment-objects/{o}"),
            None,
            ok_admin,
        ),
        (
            Method::POST,
            format!("/api/v1/agents/{a}/targets"),
            Some(json!({"stack_id": s})),
            ok_admin,
        ),
        (
            Method::POST,
            format!("/api/v1/agents/{a}/heartbeat"),
            Some(json!({})),
            "agent",
        ),
        (
            Method::GET,
            format!("/api/v1/agents/{a}/target-state"),
            None,
            "agent",
        ),
        (
            Method::POST,
            format!("/api/v1/agents/{a}/deployment-status"),
            Some(json!({"events": []})),
            "agent",
        ),
        (
            Method::PATCH,
            format!("/api/v1/agents/{a}/health-status"),
            Some(json!({"deployment_objects": []})),
            "agent",
        ),
        (
            Method::GET,
            format!("/api/v1/agents/{a}/health"),
            None,
            "both",
        ),
        (
            Method::GET,
            format!("/api/v1/agents/{a}/operational-status"),
            None,
            "both",
        ),
        (
            Method::GET,
            format!("/api/v1/agents/{a}/queue-status"),
            None,
            "both",
        ),
        (
            Method::GET,
            format!("/api/v1/agents/{a}/work-orders/pending"),
            None,
            "both",
        ),
        (
            Method::GET,
            format!("/api/v1/agents/{a}/diagnostics/pending"),
            None,
            "both",
        ),
        (
            Method::GET,
            format!("/api/v1/deployment-objects/{o}/health"),
            None,
            ok_admin,
        ),
        (
            Method::GET,
            format!("/api/v1/stacks/{s}/health"),
            None,
            ok_admin,
        ),
        (Method::GET, "/api/v1/fleet/summary".into(), None, ok_admin),
        (
            Method::POST,
            "/api/v1/work-orders".into(),
            Some(json!({"agent_id": a, "kind": "k", "payload": {}})),
            ok_admin,
        ),
    ];
    for (method, path, body, allowed) in routes {
        let none = w.api.call(method.clone(), &path, None, body.clone()).await;
        assert_problem(&none, StatusCode::UNAUTHORIZED);
        let wrong = w
            .api
            .call(method.clone(), &path, Some(bad), body.clone())
            .await;
        assert_problem(&wrong, StatusCode::UNAUTHORIZED);
        for (who, key) in [
            ("admin", ADMIN),
            ("agent", w.agent_key.as_str()),
            ("other", w.other_key.as_str()),
        ] {
            let reply = w
                .api
                .call(method.clone(), &path, Some(key), body.clone())
                .await;
            let may = match (allowed, who) {
                ("both", "admin" | "agent") => true,
                (role, who) => role == who,
            };
            if may {
                assert!(
                    reply.status.is_success(),
                    "{who} {method} {path}: {} {:?}",
                    reply.status,
                    reply.body
                );
            } else {
                assert_problem(&reply, StatusCode::FORBIDDEN);
            }
        }
    }
    // Agent-scoped claims: the other agent cannot claim or answer this agent's request.
    let requested = w
        .api
        .call(
            Method::POST,
            &format!("/api/v1/deployment-objects/{o}/diagnostics"),
            Some(ADMIN),
            Some(json!({"agent_id": a})),
        )
        .await;
    let id = requested.body["request_id"].as_str().unwrap().to_owned();
    let by_other = w
        .api
        .call(
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/claim"),
            Some(&w.other_key),
            None,
        )
        .await;
    assert_problem(&by_other, StatusCode::FORBIDDEN);
    let by_admin = w
        .api
        .call(
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/claim"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_problem(&by_admin, StatusCode::FORBIDDEN);
    let read_by_agent = w
        .api
        .call(
            Method::GET,
            &format!("/api/v1/diagnostics/{id}"),
            Some(&w.agent_key),
            None,
        )
        .await;
    assert_problem(&read_by_agent, StatusCode::FORBIDDEN);
    // The other agent may not report objects of a stack it does not target.
    let foreign = w
        .api
        .call(Method::PATCH, &format!("/api/v1/agents/{}/health-status", w.other), Some(&w.other_key),
              Some(json!({"deployment_objects": [{"id": o, "status": "healthy", "checked_at": now(), "summary": {}}]})))
        .await;
    assert_problem(&foreign, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn keys_rotate_and_revoke_and_agents_can_be_deleted() {
    let w = world().await;
    let api = &w.api;
    let a = &w.agent;
    let me = format!("/api/v1/agents/{a}/heartbeat");
    // The agent rotates its own key: the old one stops working at once.
    let rotated = api
        .call(
            Method::POST,
            &format!("/api/v1/agents/{a}/pak"),
            Some(&w.agent_key),
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let new_key = rotated.body["pak"].as_str().unwrap().to_owned();
    assert_ne!(new_key, w.agent_key);
    assert_problem(
        &api.call(Method::POST, &me, Some(&w.agent_key), None).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_eq!(
        api.call(Method::POST, &me, Some(&new_key), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // Another agent may not rotate it; only the admin revokes.
    let other = api
        .call(
            Method::POST,
            &format!("/api/v1/agents/{a}/pak"),
            Some(&w.other_key),
            None,
        )
        .await;
    assert_problem(&other, StatusCode::FORBIDDEN);
    let by_agent = api
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{a}/pak"),
            Some(&new_key),
            None,
        )
        .await;
    assert_problem(&by_agent, StatusCode::FORBIDDEN);
    let revoked = api
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{a}/pak"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_problem(
        &api.call(Method::POST, &me, Some(&new_key), None).await,
        StatusCode::UNAUTHORIZED,
    );
    // Deletion removes the agent and what was only its own.
    let deleted = api
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{a}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = api
        .call(
            Method::GET,
            &format!("/api/v1/agents/{a}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_problem(&gone, StatusCode::NOT_FOUND);
    let again = api
        .call(
            Method::DELETE,
            &format!("/api/v1/agents/{a}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_problem(&again, StatusCode::NOT_FOUND);
    let stack = api
        .call(
            Method::GET,
            &format!("/api/v1/stacks/{}/health", w.stack),
            Some(ADMIN),
            None,
        )
        .await;
    assert!(
        stack.body["deployment_objects"][0]["agents"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn repeated_bad_keys_are_slowed_down() {
    let w = world_on(Api::with(&HttpConfig::default())).await;
    let bad = "brokkr_agent_0000000000000000000000000000000000000000000";
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            w.api
                .call(Method::GET, "/api/v1/fleet/summary", Some(bad), None)
                .await,
        );
    }
    assert!(
        statuses[..10]
            .iter()
            .all(|r| r.status == StatusCode::UNAUTHORIZED)
    );
    let limited = &statuses[11];
    assert_problem(limited, StatusCode::TOO_MANY_REQUESTS);
    // Good keys still work: the limit is keyed by address and key id.
    let ok = w
        .api
        .call(Method::GET, "/api/v1/fleet/summary", Some(ADMIN), None)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    // Many different bad keys from one address: further failures get 429, yet good keys
    // from that address (clients behind one proxy) keep working.
    let mut last = StatusCode::OK;
    for n in 0..110 {
        let key = format!("brokkr_agent_{n:0>43}");
        last = w
            .api
            .call(Method::GET, "/api/v1/fleet/summary", Some(&key), None)
            .await
            .status;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let ok = w
        .api
        .call(Method::GET, "/api/v1/fleet/summary", Some(ADMIN), None)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    // A request without any key is a plain 401, never counted.
    let none = w
        .api
        .call(Method::GET, "/api/v1/fleet/summary", None, None)
        .await;
    assert_problem(&none, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_typed_broker_serves_with_the_same_key_cache() {
    // A host holding `Broker<MemoryStore>` gives it to the router as it is; a key it
    // rotates through its typed handle stops working over HTTP at once.
    let broker = Broker::new(
        Arc::new(MemoryStore::new()),
        Arc::new(SystemClock),
        hash_pak(ADMIN),
        BrokerConfig::default(),
    )
    .unwrap();
    let api = Api {
        router: router(broker.clone(), &HttpConfig::default()),
    };
    let registered = api
        .call(
            Method::POST,
            "/api/v1/agents",
            Some(ADMIN),
            Some(json!({"name": "typed", "cluster_name": "c"})),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{:?}",
        registered.body
    );
    let id = registered.body["id"].as_str().unwrap().to_owned();
    let key = registered.body["pak"].as_str().unwrap().to_owned();
    let heartbeat = format!("/api/v1/agents/{id}/heartbeat");
    let beat = api.call(Method::POST, &heartbeat, Some(&key), None).await;
    assert_eq!(beat.status, StatusCode::NO_CONTENT, "the key is cached now");
    broker
        .rotate_pak(&brokkr_core::auth::Principal::Admin, id.parse().unwrap())
        .await
        .unwrap();
    let stale = api.call(Method::POST, &heartbeat, Some(&key), None).await;
    assert_eq!(
        stale.status,
        StatusCode::UNAUTHORIZED,
        "one cache, told of the rotation"
    );
}

/// Counts key lookups in the store.
#[derive(Default)]
struct KeyLookups(std::sync::atomic::AtomicUsize);

impl brokkr_core::store::StoreObserver for KeyLookups {
    fn observe(&self, operation: &'static str, _elapsed: std::time::Duration, _ok: bool) {
        if operation == "agent_for_pak" {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn a_blocked_address_costs_no_store_round_trip() {
    let lookups = Arc::new(KeyLookups::default());
    let store: Arc<dyn Store> = Arc::new(brokkr_core::store::MeteredStore::new(
        Arc::new(MemoryStore::new()),
        lookups.clone(),
    ));
    let broker = Broker::new(
        store,
        Arc::new(SystemClock),
        hash_pak(ADMIN),
        BrokerConfig::default(),
    )
    .unwrap();
    let config = HttpConfig {
        auth_limits: brokkr_http::ratelimit::AuthLimits {
            per_key: 1_000,
            per_address: 5,
            ..Default::default()
        },
        ..HttpConfig::default()
    };
    let address: std::net::SocketAddr = "192.0.2.7:4000".parse().unwrap();
    let api = Api {
        router: router(broker, &config)
            .layer(axum::extract::connect_info::MockConnectInfo(address)),
    };
    let registered = api
        .call(
            Method::POST,
            "/api/v1/agents",
            Some(ADMIN),
            Some(json!({"name": "edge", "cluster_name": "c"})),
        )
        .await;
    let id = registered.body["id"].as_str().unwrap().to_owned();
    let key = registered.body["pak"].as_str().unwrap().to_owned();
    let heartbeat = format!("/api/v1/agents/{id}/heartbeat");
    assert_eq!(
        api.call(Method::POST, &heartbeat, Some(&key), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    for i in 0..5 {
        let guess = format!("brokkr_agent_{i:0>43}");
        let answer = api.call(Method::POST, &heartbeat, Some(&guess), None).await;
        assert!(answer.status.is_client_error());
    }
    let before = lookups.0.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        before >= 5,
        "unknown keys were looked up until the limit: {before}"
    );
    for i in 5..50 {
        let guess = format!("brokkr_agent_{i:0>43}");
        let answer = api.call(Method::POST, &heartbeat, Some(&guess), None).await;
        assert_problem(&answer, StatusCode::TOO_MANY_REQUESTS);
    }
    // One lookup a second at most (the loop takes far less than two seconds).
    let after = lookups.0.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        after <= before + 2,
        "45 guesses from a blocked address cost {} key lookups",
        after - before
    );
    // The agent that works from there keeps working.
    assert_eq!(
        api.call(Method::POST, &heartbeat, Some(&key), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn event_streams_are_bounded_per_key_and_in_total() {
    let broker = memory_broker();
    let config = HttpConfig {
        max_event_streams_per_key: 2,
        max_event_streams: 3,
        ..HttpConfig::default()
    };
    let app = router(broker, &config);
    let open = || {
        app.clone().oneshot(
            Request::get("/api/v1/events")
                .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
                .body(Body::empty())
                .unwrap(),
        )
    };
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );
    let third = open().await.unwrap();
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(third.headers().contains_key(header::RETRY_AFTER));
    // A stream that ends frees its slot.
    drop(first);
    let again = open().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
}

#[tokio::test]
async fn connections_past_the_bound_wait_instead_of_exhausting_the_process() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let broker = memory_broker();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = brokkr_http::ServeOptions {
        max_connections: 2,
        ..brokkr_http::ServeOptions::default()
    };
    let app = router(broker, &HttpConfig::default());
    tokio::spawn(async move {
        brokkr_http::serve_with(listener, app, &options, std::future::pending()).await
    });
    // Two idle connections hold both slots.
    let idle_one = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _idle_two = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 512];
    let early =
        tokio::time::timeout(std::time::Duration::from_millis(300), third.read(&mut buf)).await;
    assert!(early.is_err(), "served past the bound");
    // One closes: the waiting connection is taken and answered.
    drop(idle_one);
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), third.read(&mut buf))
        .await
        .expect("answered once a slot was free")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}
