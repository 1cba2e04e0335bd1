//! Hostile data costs nothing good beside it, the same on both stores: NUL from a pod,
//! items this broker cannot read, clocks ahead, late heartbeats, YAML bombs.

use std::fmt::Write as _;
use std::sync::Arc;

use brokkr::core::store::Store;
use brokkr::http::ServeOptions;
use brokkr::store_memory::MemoryStore;
use brokkr::store_postgres::testing::fresh_store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{lenient, serve_store};
use crate::support::{ADMIN, Caller, register_agent, stack_for};

async fn on_both_stores<F, Fut>(check: F)
where
    F: Fn(Caller, &'static str) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let memory: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let postgres: Arc<dyn Store> = Arc::new(fresh_store().await);
    for (store, name) in [(memory, "memory"), (postgres, "postgres")] {
        let served = serve_store(store, &lenient(), &ServeOptions::default()).await;
        check(served.caller, name).await;
    }
}

/// Asks `agent` for diagnostics of `object` (as the admin); the request's id.
async fn request_diagnostics(caller: &Caller, object: &str, agent: &str) -> String {
    let requested = caller
        .ok(
            Method::POST,
            &format!("/api/v1/deployment-objects/{object}/diagnostics"),
            ADMIN,
            Some(json!({"agent_id": agent})),
        )
        .await;
    requested["request_id"].as_str().unwrap().to_owned()
}

/// The agent's last health check as the broker has it.
async fn health_checked_at(caller: &Caller, agent: &str) -> chrono::DateTime<chrono::Utc> {
    let status = caller
        .ok(
            Method::GET,
            &format!("/api/v1/agents/{agent}/operational-status"),
            ADMIN,
            None,
        )
        .await;
    serde_json::from_value(status["health_checked_at"].clone()).unwrap()
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

fn summary_with(message: &str) -> Value {
    json!({"pods_ready": 0, "pods_total": 1, "conditions": [format!("Crash{message}")],
           "resources": [{"kind": "Pod", "name": "web-0", "ready": false, "message": message}],
           "findings": [{"code": "CrashLoopBackOff", "message": message, "extra": {"k\u{0}": [message]}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_from_a_cluster_is_kept_as_a_replacement_character_on_both_stores() {
    on_both_stores(|caller, store| async move {
        let agent = register_agent(&caller, "edge").await;
        let objects = stack_for(&caller, std::slice::from_ref(&agent), 2).await;
        let nul = "exit\u{0}ed with password=hunter2";
        let report = json!({"deployment_objects": [
            {"id": objects[0], "status": "failing", "checked_at": now(), "summary": summary_with(nul)},
            {"id": objects[1], "status": "healthy", "checked_at": now(), "summary": summary_with("fine")}]});
        let answer = caller
            .send(Method::PATCH, &format!("/api/v1/agents/{}/health-status", agent.id), &agent.key, Some(report))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{store}: {answer:?}");
        assert_eq!(answer.body["accepted"], 2, "{store}: {answer:?}");
        let read = caller
            .ok(Method::GET, &format!("/api/v1/deployment-objects/{}/health", objects[0]), ADMIN, None)
            .await;
        let text = read.to_string();
        assert!(!text.contains("\\u0000"), "{store}: {text}");
        assert!(text.contains("exit\u{FFFD}ed"), "{store}: {text}");
        assert!(!text.contains("hunter2"), "{store}: messages are redacted: {text}");

        // A reconcile failure message quoting the pod.
        let events = json!({"events": [{"deployment_object_id": objects[0], "outcome": "failed",
            "attempted_at": now(), "retry_count": 1, "failure_reason": "invalid_manifest",
            "failure_message": nul}]});
        let answer = caller
            .send(Method::POST, &format!("/api/v1/agents/{}/deployment-status", agent.id), &agent.key, Some(events))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{store}: {answer:?}");
        assert_eq!(answer.body["accepted"], 1, "{store}: {answer:?}");

        // A diagnostics bundle of a pod that prints NUL is stored.
        let id = request_diagnostics(&caller, &objects[0], &agent.id).await;
        let claimed = caller
            .send(Method::POST, &format!("/api/v1/diagnostics/{id}/claim"), &agent.key, Some(json!({})))
            .await;
        assert_eq!(claimed.status, StatusCode::OK, "{store}: {claimed:?}");
        let bundle = json!({"collected_at": now(), "pod_statuses": [{"name": "web\u{0}0", "namespace": "shop",
            "phase": "Running", "conditions": [], "container_statuses": []}],
            "events": [{"type": "Warning", "reason": "BackOff\u{0}", "message": nul, "first_seen": now(),
                        "last_seen": now(), "count": 1}],
            "log_tails": {"web-0/app\u{0}": ["line\u{0}one", "token=abcdefgh12345"]}, "owner_chain": ["Deployment/web\u{0}"],
            "truncated": false});
        let posted = caller
            .send(Method::POST, &format!("/api/v1/diagnostics/{id}/result"), &agent.key, Some(bundle))
            .await;
        assert_eq!(posted.status, StatusCode::CREATED, "{store}: {posted:?}");
        let got = caller.ok(Method::GET, &format!("/api/v1/diagnostics/{id}"), ADMIN, None).await;
        let text = got.to_string();
        assert!(text.contains("line\u{FFFD}one"), "{store}: {text}");
        assert!(!text.contains("\\u0000") && !text.contains("abcdefgh12345"), "{store}: {text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_client_controls_is_refused_alike_on_both_stores() {
    on_both_stores(|caller, store| async move {
        let agent = register_agent(&caller, "edge").await;
        let objects = stack_for(&caller, std::slice::from_ref(&agent), 1).await;
        let stack = caller
            .ok(
                Method::POST,
                "/api/v1/stacks",
                ADMIN,
                Some(json!({"name": "more"})),
            )
            .await;
        let stack = stack["id"].as_str().unwrap().to_owned();
        let upload = |yaml: String| {
            let caller = &caller;
            let stack = stack.clone();
            async move {
                caller
                    .send(
                        Method::POST,
                        &format!("/api/v1/stacks/{stack}/deployment-objects"),
                        ADMIN,
                        Some(json!({"yaml_content": yaml})),
                    )
                    .await
            }
        };
        let nul = upload("kind: ConfigMap\nmetadata:\n  name: a\u{0}b\n".to_owned()).await;
        assert_eq!(
            nul.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{store}: {nul:?}"
        );
        // A billion laughs in a few hundred bytes, padded with comments.
        let mut bomb = String::from("a0: &a0 [lol]\n");
        for level in 1..=9 {
            let aliases = vec![format!("*a{}", level - 1); 10].join(", ");
            let _ = writeln!(bomb, "# padding\na{level}: &a{level} [{aliases}]");
        }
        let refused = upload(bomb).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{store}: {refused:?}"
        );
        assert!(
            refused.body.to_string().contains("expands to more than"),
            "{store}: {refused:?}"
        );
        let deep = upload(format!("{}{}", "[".repeat(300), "]".repeat(300))).await;
        assert_eq!(
            deep.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{store}: {deep:?}"
        );
        let work = caller
            .send(
                Method::POST,
                "/api/v1/work-orders",
                ADMIN,
                Some(
                    json!({"agent_id": agent.id, "kind": "restart", "payload": {"note": "a\u{0}"}}),
                ),
            )
            .await;
        assert_eq!(
            work.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{store}: {work:?}"
        );
        let id = request_diagnostics(&caller, &objects[0], &agent.id).await;
        let claim = caller
            .send(
                Method::POST,
                &format!("/api/v1/diagnostics/{id}/claim"),
                &agent.key,
                Some(json!({"claim_token": "t\u{0}"})),
            )
            .await;
        assert_eq!(
            claim.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{store}: {claim:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clocks_ahead_and_late_heartbeats_never_lose_or_rewind_on_both_stores() {
    on_both_stores(|caller, store| async move {
        let agent = register_agent(&caller, "edge").await;
        let heartbeat = format!("/api/v1/agents/{}/heartbeat", agent.id);
        let ahead = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
        let beat = caller
            .send(
                Method::POST,
                &heartbeat,
                &agent.key,
                Some(json!({"health_checked_at": ahead, "last_successful_reconcile": ahead})),
            )
            .await;
        assert_eq!(beat.status, StatusCode::NO_CONTENT, "{store}: {beat:?}");
        let first = health_checked_at(&caller, &agent.id).await;
        assert!(
            first <= chrono::Utc::now(),
            "{store}: clamped to the broker's now: {first}"
        );
        // A late, retried heartbeat carrying an older check does not move it back.
        let older = (first - chrono::Duration::minutes(2)).to_rfc3339();
        let late = caller
            .send(
                Method::POST,
                &heartbeat,
                &agent.key,
                Some(json!({"health_checked_at": older})),
            )
            .await;
        assert_eq!(late.status, StatusCode::NO_CONTENT);
        let after = health_checked_at(&caller, &agent.id).await;
        assert_eq!(after, first, "{store}");
    })
    .await;
}
