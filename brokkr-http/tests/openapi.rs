//! The served OpenAPI document describes the API as it really answers: every route is
//! documented, every status a request got is documented for its operation, and every
//! JSON body's fields are properties of the documented schema (required ones present).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::many_single_char_names
)]

use std::collections::BTreeSet;
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

struct Checker {
    router: Router,
    doc: Value,
    checked: BTreeSet<(String, String)>,
}

impl Checker {
    async fn new() -> Self {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let broker = Broker::new(
            store,
            Arc::new(SystemClock),
            hash_pak(ADMIN),
            BrokerConfig::default(),
        )
        .unwrap();
        let router = router(broker, &HttpConfig::default());
        let response = router
            .clone()
            .oneshot(Request::get("/openapi.json").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let doc: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        Self {
            router,
            doc,
            checked: BTreeSet::new(),
        }
    }

    /// Resolves `$ref`s and collects (properties, required) through allOf/oneOf/anyOf.
    fn fields(
        &self,
        schema: &Value,
        props: &mut BTreeSet<String>,
        required: &mut BTreeSet<String>,
        open: &mut bool,
    ) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let name = r.rsplit('/').next().unwrap();
            let target = &self.doc["components"]["schemas"][name];
            assert!(!target.is_null(), "dangling $ref {r}");
            return self.fields(target, props, required, open);
        }
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            props.extend(p.keys().cloned());
        }
        if let Some(r) = schema.get("required").and_then(Value::as_array) {
            required.extend(r.iter().filter_map(Value::as_str).map(str::to_owned));
        }
        if schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
        {
            *open = true;
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            for part in schema
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                // oneOf alternatives each describe the whole body: accept the union.
                let mut part_required = BTreeSet::new();
                self.fields(part, props, &mut part_required, open);
                if key == "allOf" {
                    required.extend(part_required);
                }
            }
        }
    }

    async fn call(
        &mut self,
        method: Method,
        template: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method.clone()).uri(path);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = match body {
            Some(b) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };

        let op = &self.doc["paths"][template][method.as_str().to_lowercase()];
        assert!(!op.is_null(), "{method} {template} is not documented");
        let documented = &op["responses"][status.as_str()];
        assert!(
            !documented.is_null(),
            "{method} {template} answered {status}, which is not documented"
        );
        if !json.is_null() {
            let content = documented["content"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {template} {status}: body not documented"));
            let schema = content.values().next().unwrap()["schema"].clone();
            let (mut props, mut required, mut open) = (BTreeSet::new(), BTreeSet::new(), false);
            self.fields(&schema, &mut props, &mut required, &mut open);
            if let Some(obj) = json.as_object() {
                for field in obj.keys() {
                    assert!(
                        open || props.contains(field),
                        "{method} {template} {status}: field `{field}` not in the schema {props:?}"
                    );
                }
                for field in &required {
                    assert!(
                        obj.contains_key(field),
                        "{method} {template} {status}: required `{field}` missing in {json}"
                    );
                }
            }
        }
        self.checked
            .insert((method.as_str().to_owned(), template.to_owned()));
        (status, json)
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

#[tokio::test]
async fn every_route_answers_as_documented() {
    let mut c = Checker::new().await;
    let documented: BTreeSet<(String, String)> = c.doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    assert_eq!(documented.len(), 33, "{documented:?}");

    let (s, agent) = c
        .call(
            Method::POST,
            "/api/v1/agents",
            "/api/v1/agents",
            Some(ADMIN),
            Some(json!({"name": "a", "cluster_name": "c"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (a, ak) = (
        agent["id"].as_str().unwrap().to_owned(),
        agent["pak"].as_str().unwrap().to_owned(),
    );
    let key = Some(ak.as_str());
    c.call(
        Method::POST,
        "/api/v1/agents",
        "/api/v1/agents",
        None,
        Some(json!({"name": "a", "cluster_name": "c"})),
    )
    .await;
    c.call(
        Method::POST,
        "/api/v1/agents",
        "/api/v1/agents",
        Some(ADMIN),
        Some(json!({"name": ""})),
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/agents",
        "/api/v1/agents?limit=10",
        Some(ADMIN),
        None,
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/agents",
        "/api/v1/agents?limit=0",
        Some(ADMIN),
        None,
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/agents/{id}",
        &format!("/api/v1/agents/{a}"),
        key,
        None,
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/agents/{id}",
        "/api/v1/agents/nope",
        Some(ADMIN),
        None,
    )
    .await;
    let (_, stack) = c
        .call(
            Method::POST,
            "/api/v1/stacks",
            "/api/v1/stacks",
            Some(ADMIN),
            Some(json!({"name": "s"})),
        )
        .await;
    let st = stack["id"].as_str().unwrap().to_owned();
    c.call(
        Method::POST,
        "/api/v1/agents/{id}/targets",
        &format!("/api/v1/agents/{a}/targets"),
        Some(ADMIN),
        Some(json!({"stack_id": st})),
    )
    .await;
    let (_, object) = c
        .call(
            Method::POST,
            "/api/v1/stacks/{id}/deployment-objects",
            &format!("/api/v1/stacks/{st}/deployment-objects"),
            Some(ADMIN),
            Some(json!({"yaml_content": "kind: ConfigMap"})),
        )
        .await;
    let o = object["id"].as_str().unwrap().to_owned();
    c.call(
        Method::GET,
        "/api/v1/deployment-objects/{id}",
        &format!("/api/v1/deployment-objects/{o}"),
        Some(ADMIN),
        None,
    )
    .await;
    c.call(
        Method::POST,
        "/api/v1/agents/{id}/heartbeat",
        &format!("/api/v1/agents/{a}/heartbeat"),
        key,
        Some(json!({"node_count": 2, "node_ready_count": 1})),
    )
    .await;
    c.call(
        Method::POST,
        "/api/v1/agents/{id}/heartbeat",
        &format!("/api/v1/agents/{a}/heartbeat"),
        key,
        Some(json!({"node_count": -2})),
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/agents/{id}/target-state",
        &format!("/api/v1/agents/{a}/target-state"),
        key,
        None,
    )
    .await;
    c.call(Method::POST, "/api/v1/agents/{id}/deployment-status", &format!("/api/v1/agents/{a}/deployment-status"), key,
        Some(json!({"events": [{"deployment_object_id": o, "outcome": "failed", "attempted_at": now(), "retry_count": 1, "failure_reason": "timeout"}]}))).await;
    c.call(Method::PATCH, "/api/v1/agents/{id}/health-status", &format!("/api/v1/agents/{a}/health-status"), key,
        Some(json!({"deployment_objects": [{"id": o, "status": "degraded", "checked_at": now(), "summary": {"pods_ready": 1, "pods_total": 2, "conditions": ["NotReady"], "resources": []}}]}))).await;
    c.call(
        Method::PATCH,
        "/api/v1/agents/{id}/health-status",
        &format!("/api/v1/agents/{a}/health-status"),
        Some(ADMIN),
        Some(json!({"deployment_objects": []})),
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/deployment-objects/{id}/health",
        &format!("/api/v1/deployment-objects/{o}/health"),
        Some(ADMIN),
        None,
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/stacks/{id}/health",
        &format!("/api/v1/stacks/{st}/health"),
        Some(ADMIN),
        None,
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/agents/{id}/health",
        &format!("/api/v1/agents/{a}/health"),
        key,
        None,
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/agents/{id}/operational-status",
        &format!("/api/v1/agents/{a}/operational-status"),
        key,
        None,
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/agents/{id}/queue-status",
        &format!("/api/v1/agents/{a}/queue-status"),
        key,
        None,
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/fleet/summary",
        "/api/v1/fleet/summary",
        Some(ADMIN),
        None,
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/fleet/summary",
        "/api/v1/fleet/summary",
        key,
        None,
    )
    .await;
    // The event stream itself never ends; its refusals are plain answers.
    for who in [None, key] {
        let (s, _) = c
            .call(Method::GET, "/api/v1/events", "/api/v1/events", who, None)
            .await;
        assert!(
            s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN,
            "{s}"
        );
    }
    let (s, hook) = c
        .call(
            Method::POST,
            "/api/v1/webhooks",
            "/api/v1/webhooks",
            Some(ADMIN),
            Some(json!({"url": "https://hooks.example/x", "secret": "0123456789abcdef", "events": ["health.failing"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    c.call(
        Method::POST,
        "/api/v1/webhooks",
        "/api/v1/webhooks",
        Some(ADMIN),
        Some(json!({"url": "nope", "secret": "x", "events": []})),
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/webhooks",
        "/api/v1/webhooks",
        Some(ADMIN),
        None,
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let (s, _) = c
        .call(
            Method::DELETE,
            "/api/v1/webhooks/{id}",
            &format!("/api/v1/webhooks/{hook_id}"),
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    c.call(
        Method::DELETE,
        "/api/v1/webhooks/{id}",
        &format!("/api/v1/webhooks/{hook_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    let (_, order) = c
        .call(
            Method::POST,
            "/api/v1/work-orders",
            "/api/v1/work-orders",
            Some(ADMIN),
            Some(json!({"agent_id": a, "kind": "k", "payload": {"x": 1}})),
        )
        .await;
    let w = order["id"].as_str().unwrap().to_owned();
    c.call(
        Method::GET,
        "/api/v1/agents/{id}/work-orders/pending",
        &format!("/api/v1/agents/{a}/work-orders/pending"),
        key,
        None,
    )
    .await;
    c.call(
        Method::POST,
        "/api/v1/work-orders/{id}/claim",
        &format!("/api/v1/work-orders/{w}/claim"),
        key,
        None,
    )
    .await;
    c.call(
        Method::POST,
        "/api/v1/work-orders/{id}/claim",
        &format!("/api/v1/work-orders/{w}/claim"),
        key,
        None,
    )
    .await;
    c.call(
        Method::POST,
        "/api/v1/work-orders/{id}/complete",
        &format!("/api/v1/work-orders/{w}/complete"),
        key,
        Some(json!({"success": false})),
    )
    .await;
    let (_, req) = c
        .call(
            Method::POST,
            "/api/v1/deployment-objects/{id}/diagnostics",
            &format!("/api/v1/deployment-objects/{o}/diagnostics"),
            Some(ADMIN),
            None,
        )
        .await;
    let d = req["request_id"].as_str().unwrap().to_owned();
    c.call(
        Method::GET,
        "/api/v1/agents/{id}/diagnostics/pending",
        &format!("/api/v1/agents/{a}/diagnostics/pending"),
        key,
        None,
    )
    .await;
    c.call(
        Method::POST,
        "/api/v1/diagnostics/{id}/claim",
        &format!("/api/v1/diagnostics/{d}/claim"),
        key,
        Some(json!({"claim_token": "t"})),
    )
    .await;
    c.call(
        Method::POST,
        "/api/v1/diagnostics/{id}/claim",
        &format!("/api/v1/diagnostics/{d}/claim"),
        key,
        None,
    )
    .await;
    c.call(
        Method::POST,
        "/api/v1/diagnostics/{id}/result",
        &format!("/api/v1/diagnostics/{d}/result"),
        key,
        Some(json!({"failed": "no pods found"})),
    )
    .await;
    c.call(
        Method::POST,
        "/api/v1/diagnostics/{id}/result",
        &format!("/api/v1/diagnostics/{d}/result"),
        key,
        Some(json!({"failed": "other"})),
    )
    .await;
    c.call(
        Method::GET,
        "/api/v1/diagnostics/{id}",
        &format!("/api/v1/diagnostics/{d}"),
        Some(ADMIN),
        None,
    )
    .await;

    let pak = format!("/api/v1/agents/{a}/pak");
    let me = format!("/api/v1/agents/{a}");
    c.call(Method::POST, "/api/v1/agents/{id}/pak", &pak, key, None)
        .await;
    c.call(
        Method::DELETE,
        "/api/v1/agents/{id}/pak",
        &pak,
        Some(ADMIN),
        None,
    )
    .await;
    c.call(
        Method::DELETE,
        "/api/v1/agents/{id}",
        &me,
        Some(ADMIN),
        None,
    )
    .await;
    c.call(
        Method::DELETE,
        "/api/v1/agents/{id}",
        &me,
        Some(ADMIN),
        None,
    )
    .await;

    assert_eq!(
        c.checked, documented,
        "every documented operation was exercised, and only those"
    );

    let get = |path: &'static str| {
        c.router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
    };
    let docs = get("/docs/").await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK, "Swagger UI is served");
    let initializer = get("/docs/swagger-initializer.js").await.unwrap();
    assert_eq!(initializer.status(), StatusCode::OK);
    let script = axum::body::to_bytes(initializer.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&script).contains("../openapi.json"),
        "the UI loads the document relatively"
    );
    // Relative, so a host's prefix stays in the browser's URL.
    let bare = get("/docs").await.unwrap();
    assert!(bare.status().is_redirection(), "{}", bare.status());
    assert_eq!(bare.headers()["location"], "docs/");
    let missing = get("/docs/no-such-file.js").await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
