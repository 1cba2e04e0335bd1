//! Every route of the API × {no key, bad key, admin, owning agent, other agent}, over
//! real HTTP, against the table of DESIGN §4 (docs/api.md). The table is checked against
//! the OpenAPI document, so a new route without a row fails here.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Served, exchange, serve_memory};
use crate::support::{ADMIN, Caller, Registered, register_agent, stack_for};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum May {
    /// The admin only.
    Admin,
    /// The agent the path names (or that owns the work order or diagnostic request).
    Owner,
    /// The admin or the agent the path names.
    AdminOrOwner,
}

/// One agent (the owner) targeting a stack with one object, another agent that does not,
/// and one of each thing a route may need.
pub struct World {
    pub caller: Caller,
    pub owner: Registered,
    pub other: Registered,
    stack: String,
    pub object: String,
    pub work_order: String,
    claimed_work_order: String,
    diagnostic: String,
    claimed_diagnostic: String,
    webhook: String,
}

pub async fn world(caller: &Caller) -> World {
    let owner = register_agent(caller, "owner").await;
    let other = register_agent(caller, "other").await;
    let object = stack_for(caller, std::slice::from_ref(&owner), 1)
        .await
        .remove(0);
    let view = caller
        .ok(
            Method::GET,
            &format!("/api/v1/deployment-objects/{object}"),
            ADMIN,
            None,
        )
        .await;
    let stack = view["stack_id"].as_str().unwrap().to_owned();
    let work_order = || async {
        let order = caller
            .ok(
                Method::POST,
                "/api/v1/work-orders",
                ADMIN,
                Some(json!({"agent_id": owner.id, "kind": "rotate-certs"})),
            )
            .await;
        order["id"].as_str().unwrap().to_owned()
    };
    let diagnostic = || async {
        let requested = caller
            .ok(
                Method::POST,
                &format!("/api/v1/deployment-objects/{object}/diagnostics"),
                ADMIN,
                Some(json!({"agent_id": owner.id})),
            )
            .await;
        requested["request_id"].as_str().unwrap().to_owned()
    };
    let claimed_work_order = work_order().await;
    caller
        .ok(
            Method::POST,
            &format!("/api/v1/work-orders/{claimed_work_order}/claim"),
            &owner.key,
            None,
        )
        .await;
    let claimed_diagnostic = diagnostic().await;
    caller
        .ok(
            Method::POST,
            &format!("/api/v1/diagnostics/{claimed_diagnostic}/claim"),
            &owner.key,
            None,
        )
        .await;
    let webhook = caller
        .ok(
            Method::POST,
            "/api/v1/webhooks",
            ADMIN,
            Some(json!({"url": "https://hooks.example.com/brokkr",
                        "secret": "0123456789abcdef", "events": ["health.failing"]})),
        )
        .await;
    World {
        caller: caller.clone(),
        work_order: work_order().await,
        claimed_work_order,
        diagnostic: diagnostic().await,
        claimed_diagnostic,
        webhook: webhook["id"].as_str().unwrap().to_owned(),
        owner,
        other,
        stack,
        object,
    }
}

/// A call that succeeds for whoever may make it: method, route template, concrete path,
/// body.
pub struct Call {
    pub method: Method,
    pub template: &'static str,
    pub path: String,
    pub body: Option<Value>,
    pub may: May,
}

pub fn calls(w: &World) -> Vec<Call> {
    use May::{Admin, AdminOrOwner, Owner};
    let (a, s, o) = (&w.owner.id, &w.stack, &w.object);
    let now = chrono::Utc::now().to_rfc3339();
    let call = |method: Method, template: &'static str, body: Option<Value>, may: May| {
        let path = template
            .replace("{agent}", a)
            .replace("{stack}", s)
            .replace("{object}", o)
            .replace("{work_order}", &w.work_order)
            .replace("{claimed_work_order}", &w.claimed_work_order)
            .replace("{diagnostic}", &w.diagnostic)
            .replace("{claimed_diagnostic}", &w.claimed_diagnostic)
            .replace("{webhook}", &w.webhook);
        Call {
            method,
            template,
            path,
            body,
            may,
        }
    };
    vec![
        call(
            Method::POST,
            "/api/v1/agents",
            Some(json!({"name": "n", "cluster_name": "c"})),
            Admin,
        ),
        call(Method::GET, "/api/v1/agents", None, Admin),
        call(Method::GET, "/api/v1/agents/{agent}", None, Admin),
        call(Method::DELETE, "/api/v1/agents/{agent}", None, Admin),
        call(
            Method::POST,
            "/api/v1/agents/{agent}/pak",
            None,
            AdminOrOwner,
        ),
        call(Method::DELETE, "/api/v1/agents/{agent}/pak", None, Admin),
        call(
            Method::POST,
            "/api/v1/agents/{agent}/targets",
            Some(json!({"stack_id": s})),
            Admin,
        ),
        call(
            Method::POST,
            "/api/v1/agents/{agent}/heartbeat",
            Some(json!({"node_count": 1})),
            Owner,
        ),
        call(
            Method::GET,
            "/api/v1/agents/{agent}/target-state",
            None,
            Owner,
        ),
        call(
            Method::POST,
            "/api/v1/agents/{agent}/deployment-status",
            Some(
                json!({"events": [{"deployment_object_id": o, "outcome": "applied",
                "attempted_at": now, "retry_count": 0, "reconciliation_duration_ms": 5}]}),
            ),
            Owner,
        ),
        call(
            Method::PATCH,
            "/api/v1/agents/{agent}/health-status",
            Some(
                json!({"deployment_objects": [{"id": o, "status": "healthy", "checked_at": now,
                "summary": {"pods_ready": 1, "pods_total": 1, "conditions": [], "resources": []}}]}),
            ),
            Owner,
        ),
        call(
            Method::GET,
            "/api/v1/agents/{agent}/health",
            None,
            AdminOrOwner,
        ),
        call(
            Method::GET,
            "/api/v1/agents/{agent}/operational-status",
            None,
            AdminOrOwner,
        ),
        call(
            Method::GET,
            "/api/v1/agents/{agent}/queue-status",
            None,
            AdminOrOwner,
        ),
        call(
            Method::GET,
            "/api/v1/agents/{agent}/work-orders/pending",
            None,
            AdminOrOwner,
        ),
        call(
            Method::GET,
            "/api/v1/agents/{agent}/diagnostics/pending",
            None,
            AdminOrOwner,
        ),
        call(
            Method::POST,
            "/api/v1/stacks",
            Some(json!({"name": "more"})),
            Admin,
        ),
        call(
            Method::POST,
            "/api/v1/stacks/{stack}/deployment-objects",
            Some(
                json!({"yaml_content": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"}),
            ),
            Admin,
        ),
        call(Method::GET, "/api/v1/stacks/{stack}/health", None, Admin),
        call(
            Method::GET,
            "/api/v1/deployment-objects/{object}",
            None,
            Admin,
        ),
        call(
            Method::GET,
            "/api/v1/deployment-objects/{object}/health",
            None,
            Admin,
        ),
        call(
            Method::POST,
            "/api/v1/deployment-objects/{object}/diagnostics",
            Some(json!({"agent_id": a})),
            Admin,
        ),
        call(
            Method::POST,
            "/api/v1/work-orders",
            Some(json!({"agent_id": a, "kind": "k"})),
            Admin,
        ),
        call(
            Method::POST,
            "/api/v1/work-orders/{work_order}/claim",
            None,
            Owner,
        ),
        call(
            Method::POST,
            "/api/v1/work-orders/{claimed_work_order}/complete",
            Some(json!({"success": true})),
            Owner,
        ),
        call(Method::GET, "/api/v1/fleet/summary", None, Admin),
        call(Method::GET, "/api/v1/events", None, Admin),
        call(
            Method::POST,
            "/api/v1/webhooks",
            Some(
                json!({"url": "https://hooks.example.com/x", "secret": "0123456789abcdef",
                        "events": ["agent.lost"]}),
            ),
            Admin,
        ),
        call(Method::GET, "/api/v1/webhooks", None, Admin),
        call(Method::DELETE, "/api/v1/webhooks/{webhook}", None, Admin),
        call(Method::GET, "/api/v1/diagnostics/{diagnostic}", None, Admin),
        call(
            Method::POST,
            "/api/v1/diagnostics/{diagnostic}/claim",
            None,
            Owner,
        ),
        call(
            Method::POST,
            "/api/v1/diagnostics/{claimed_diagnostic}/result",
            Some(json!({"collected_at": now, "pod_statuses": [], "events": [], "log_tails": {}})),
            Owner,
        ),
    ]
}

/// The status of one call; an event stream is not read past its headers.
async fn status_of(caller: &Caller, call: &Call, key: Option<&str>) -> (StatusCode, String) {
    let body = call.body.as_ref().map(|b| b.to_string().into_bytes());
    let (status, content_type, text) = exchange(caller, call.method.clone(), &call.path, key, body)
        .await
        .unwrap();
    (status, format!("{content_type} {text}"))
}

/// The API's operations as the OpenAPI document lists them, paths with `{…}` collapsed.
async fn documented(caller: &Caller) -> BTreeSet<(String, String)> {
    let doc = caller.ok(Method::GET, "/openapi.json", ADMIN, None).await;
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), collapse(path)))
        })
        .collect()
}

fn collapse(path: &str) -> String {
    path.split('/')
        .map(|part| if part.starts_with('{') { "{}" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_lets_exactly_the_right_callers_in() {
    let Served { caller, .. } = serve_memory().await;
    let first = world(&caller).await;
    let table: BTreeSet<(String, String)> = calls(&first)
        .iter()
        .map(|c| (c.method.to_string(), collapse(c.template)))
        .collect();
    let documented = documented(&caller).await;
    let api: BTreeSet<_> = documented
        .into_iter()
        .filter(|(_, path)| path.starts_with("/api/v1/"))
        .collect();
    assert_eq!(
        table, api,
        "the matrix and the OpenAPI document list different routes"
    );

    let bad = "brokkr_agent_0000000000000000000000000000000000000000000";
    // Shaped like the admin key, one character off: the constant-time comparison says no.
    let mut near_admin = ADMIN.to_owned();
    near_admin.pop();
    near_admin.push('x');
    for call in calls(&first) {
        for key in [
            None,
            Some(bad),
            Some(near_admin.as_str()),
            Some("not a key at all"),
        ] {
            let (status, body) = status_of(&caller, &call, key).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {} with {key:?}: {body}",
                call.method,
                call.template
            );
            assert!(body.starts_with("application/problem+json"), "{body}");
        }
    }
    // Each principal on a world of its own: a successful call may change what the next
    // one finds (a claim, a deletion).
    for index in 0..calls(&first).len() {
        for who in ["admin", "owner", "other"] {
            let w = world(&caller).await;
            let call = calls(&w).swap_remove(index);
            let key = match who {
                "admin" => ADMIN,
                "owner" => w.owner.key.as_str(),
                _ => w.other.key.as_str(),
            };
            let allowed = matches!(
                (call.may, who),
                (May::Admin | May::AdminOrOwner, "admin")
                    | (May::Owner | May::AdminOrOwner, "owner")
            );
            let (status, body) = status_of(&w.caller, &call, Some(key)).await;
            if allowed {
                assert!(
                    status.is_success(),
                    "{who} {} {}: {status} {body}",
                    call.method,
                    call.template
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{who} {} {}: {body}",
                    call.method,
                    call.template
                );
                assert!(body.starts_with("application/problem+json"), "{body}");
            }
        }
    }
}

/// The routes outside the API answer everyone: probes for orchestrators, metrics for
/// scrapers, the API description for readers.
#[tokio::test]
async fn probes_metrics_and_documents_are_open() {
    let Served { caller, .. } = serve_memory().await;
    for path in [
        "/livez",
        "/readyz",
        "/metrics",
        "/metrics.json",
        "/openapi.json",
        "/docs/",
    ] {
        let response = caller
            .http
            .get(format!("{}{path}", caller.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

/// What an agent must not reach even on routes it may call: another agent's data, and
/// objects of stacks it does not target.
#[tokio::test]
async fn agents_reach_only_their_own_data_and_stacks() {
    let Served { caller, .. } = serve_memory().await;
    let w = world(&caller).await;
    let other = &w.other;
    let now = chrono::Utc::now().to_rfc3339();
    let foreign_report = caller
        .send(
            Method::PATCH,
            &format!("/api/v1/agents/{}/health-status", other.id),
            &other.key,
            Some(
                json!({"deployment_objects": [{"id": w.object, "status": "failing",
                "checked_at": now, "summary": {"pods_ready": 0, "pods_total": 1,
                "conditions": [], "resources": []}}]}),
            ),
        )
        .await;
    assert_eq!(
        foreign_report.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{foreign_report:?}"
    );
    assert!(
        foreign_report.body.to_string().contains("does not target"),
        "refused for the stack, not for the shape: {foreign_report:?}"
    );
    let foreign_status = caller
        .send(
            Method::POST,
            &format!("/api/v1/agents/{}/deployment-status", other.id),
            &other.key,
            Some(
                json!({"events": [{"deployment_object_id": w.object, "outcome": "failed",
                "attempted_at": now, "retry_count": 1, "reconciliation_duration_ms": 5,
                "failure_reason": "other"}]}),
            ),
        )
        .await;
    assert_eq!(
        foreign_status.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{foreign_status:?}"
    );
    assert!(
        foreign_status.body.to_string().contains("does not target"),
        "refused for the stack, not for the shape: {foreign_status:?}"
    );
    // The same report from the owner is accepted: the refusals above are about whose
    // stack it is.
    let own = caller
        .send(
            Method::PATCH,
            &format!("/api/v1/agents/{}/health-status", w.owner.id),
            &w.owner.key,
            Some(
                json!({"deployment_objects": [{"id": w.object, "status": "failing",
                "checked_at": now, "summary": {"pods_ready": 0, "pods_total": 1,
                "conditions": [], "resources": []}}]}),
            ),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{own:?}");
    // Nothing of it shows up on the object.
    let health = caller
        .ok(
            Method::GET,
            &format!("/api/v1/deployment-objects/{}/health", w.object),
            ADMIN,
            None,
        )
        .await;
    assert!(
        health["agents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["agent_id"] != other.id.as_str()),
        "{health}"
    );
    // The other agent's target state holds nothing of the owner's stack.
    let target = caller
        .ok(
            Method::GET,
            &format!("/api/v1/agents/{}/target-state", other.id),
            &other.key,
            None,
        )
        .await;
    assert!(!target.to_string().contains(&w.object), "{target}");
    // Nor can it read the owner's pending diagnostics or claim its work order.
    let pending = caller
        .send(
            Method::GET,
            &format!("/api/v1/agents/{}/diagnostics/pending", w.owner.id),
            &other.key,
            None,
        )
        .await;
    assert_eq!(pending.status, StatusCode::FORBIDDEN);
    let claim = caller
        .send(
            Method::POST,
            &format!("/api/v1/work-orders/{}/claim", w.work_order),
            &other.key,
            None,
        )
        .await;
    assert_eq!(claim.status, StatusCode::FORBIDDEN);
}
