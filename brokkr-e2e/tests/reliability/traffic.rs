//! Steady traffic of agents and an admin, and a ledger of what the broker acknowledged,
//! to check afterwards that all of it is stored.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{ADMIN, Answer, Caller, Registered, health_report};

/// What the broker answered during the run.
#[derive(Default)]
pub struct Ledger {
    /// Per agent: the send time of its latest acknowledged heartbeat, and how many.
    pub heartbeats: BTreeMap<String, (DateTime<Utc>, u64)>,
    /// Per agent: `checked_at` of its latest acknowledged health report, and how many.
    pub reports: BTreeMap<String, (DateTime<Utc>, u64)>,
    /// Stacks the broker said it created.
    pub stacks: Vec<uuid::Uuid>,
    /// Diagnostic requests whose result the broker accepted.
    pub results: Vec<String>,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// 503s without `Retry-After` or problem+json, and any other unexpected answer.
    pub violations: Vec<String>,
    /// The slowest answer.
    pub slowest: Duration,
    /// Requests that got no answer at all (reset, refused, timed out).
    pub unanswered: u64,
}

impl Ledger {
    pub fn note(&mut self, what: &str, answer: &Answer, took: Duration) {
        *self.statuses.entry(answer.status.as_u16()).or_default() += 1;
        self.slowest = self.slowest.max(took);
        let unavailable = answer.status == StatusCode::SERVICE_UNAVAILABLE;
        if !(answer.status.is_success() || unavailable) {
            self.violations
                .push(format!("{what}: {} {}", answer.status, answer.body));
        }
        if unavailable
            && (answer.retry_after.is_none() || answer.content_type != "application/problem+json")
        {
            self.violations.push(format!(
                "{what}: 503 without Retry-After or problem+json: {answer:?}"
            ));
        }
    }
}

/// Sends one request and enters its answer, or that none came, in the ledger.
async fn send_noted(
    caller: &Caller,
    ledger: &Mutex<Ledger>,
    what: &str,
    method: Method,
    path: &str,
    key: &str,
    body: Option<serde_json::Value>,
) -> Option<Answer> {
    let started = Instant::now();
    let answer = caller.try_send(method, path, key, body).await;
    let mut ledger = ledger.lock().unwrap();
    match &answer {
        Some(answer) => ledger.note(what, answer, started.elapsed()),
        None => ledger.unanswered += 1,
    }
    answer
}

pub async fn agent_traffic(
    caller: Caller,
    agent: Registered,
    objects: Vec<String>,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    let mut round = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let sent = Utc::now();
        let beat = send_noted(
            &caller,
            &ledger,
            "heartbeat",
            Method::POST,
            &format!("/api/v1/agents/{}/heartbeat", agent.id),
            &agent.key,
            Some(json!({"node_count": 3})),
        )
        .await;
        if beat.is_some_and(|a| a.status == StatusCode::NO_CONTENT) {
            let mut ledger = ledger.lock().unwrap();
            let entry = ledger.heartbeats.entry(agent.id.clone()).or_default();
            *entry = (sent, entry.1 + 1);
        }
        // What an agent reads each cycle: its target state.
        send_noted(
            &caller,
            &ledger,
            "target state",
            Method::GET,
            &format!("/api/v1/agents/{}/target-state", agent.id),
            &agent.key,
            None,
        )
        .await;
        let checked_at = Utc::now();
        let status = if round.is_multiple_of(2) {
            "healthy"
        } else {
            "degraded"
        };
        let report = send_noted(
            &caller,
            &ledger,
            "health report",
            Method::PATCH,
            &format!("/api/v1/agents/{}/health-status", agent.id),
            &agent.key,
            Some(health_report(&objects, status, &checked_at.to_rfc3339())),
        )
        .await;
        if report.is_some_and(|a| a.status == StatusCode::OK) {
            let mut ledger = ledger.lock().unwrap();
            let entry = ledger.reports.entry(agent.id.clone()).or_default();
            *entry = (checked_at, entry.1 + 1);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn admin_traffic(caller: Caller, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let answer = send_noted(
            &caller,
            &ledger,
            "create stack",
            Method::POST,
            "/api/v1/stacks",
            ADMIN,
            Some(json!({"name": format!("stack-{n}")})),
        )
        .await;
        if let Some(answer) = answer.filter(|a| a.status == StatusCode::CREATED) {
            let id = answer.body["id"].as_str().unwrap().parse().unwrap();
            ledger.lock().unwrap().stacks.push(id);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An admin asks for diagnostics of `object` on `agent`, which claims the request and
/// posts a (small) bundle; again and again.
pub async fn diagnostics_traffic(
    caller: Caller,
    agent: Registered,
    object: String,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(requested) = send_noted(
            &caller,
            &ledger,
            "request diagnostics",
            Method::POST,
            &format!("/api/v1/deployment-objects/{object}/diagnostics"),
            ADMIN,
            Some(json!({"agent_id": agent.id})),
        )
        .await
        .filter(|a| a.status == StatusCode::ACCEPTED) else {
            continue;
        };
        let id = requested.body["request_id"].as_str().unwrap().to_owned();
        let claimed = send_noted(
            &caller,
            &ledger,
            "claim",
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/claim"),
            &agent.key,
            Some(json!({"claim_token": uuid::Uuid::new_v4()})),
        )
        .await;
        if claimed.is_none_or(|a| a.status != StatusCode::OK) {
            continue;
        }
        let bundle = json!({"collected_at": Utc::now().to_rfc3339(), "pod_statuses": [],
                            "events": [], "log_tails": {"web-1/app": ["started"]}});
        let posted = send_noted(
            &caller,
            &ledger,
            "result",
            Method::POST,
            &format!("/api/v1/diagnostics/{id}/result"),
            &agent.key,
            Some(bundle),
        )
        .await;
        if posted.is_some_and(|a| a.status == StatusCode::CREATED) {
            ledger.lock().unwrap().results.push(id);
        }
    }
}

/// Asserts that `agent`'s newest acknowledged heartbeat and health report (as the
/// ledger has them) are what the broker stores, or newer; `when` says which
/// acknowledgements in the messages.
pub async fn assert_newest_stored(
    caller: &Caller,
    agent: &str,
    (sent, beats): (DateTime<Utc>, u64),
    (checked_at, reports): (DateTime<Utc>, u64),
    objects: usize,
    when: &str,
) {
    let status = caller
        .ok(
            Method::GET,
            &format!("/api/v1/agents/{agent}/operational-status"),
            ADMIN,
            None,
        )
        .await;
    let stored: DateTime<Utc> = status["last_heartbeat_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stored >= sent,
        "{beats} heartbeats acknowledged{when}, the newest sent at {sent}, stored {stored}"
    );
    let health = caller
        .ok(
            Method::GET,
            &format!("/api/v1/agents/{agent}/health"),
            ADMIN,
            None,
        )
        .await;
    let rows = health["deployment_objects"].as_array().unwrap();
    assert_eq!(rows.len(), objects, "{health}");
    for row in rows {
        let stored: DateTime<Utc> = row["checked_at"].as_str().unwrap().parse().unwrap();
        // Stored with microseconds: a nanosecond `checked_at` reads back a little lower.
        assert!(
            stored >= checked_at - chrono::Duration::milliseconds(1),
            "{reports} reports acknowledged{when}, the newest checked at {checked_at}, \
             stored {row}"
        );
    }
}

/// Polls `path` until it answers `want`; how long that took.
pub async fn until(
    caller: &Caller,
    path: &str,
    key: &str,
    want: StatusCode,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if let Some(answer) = caller.try_send(Method::GET, path, key, None).await
            && answer.status == want
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{path} did not answer {want} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
