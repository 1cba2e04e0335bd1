//! `GET /api/v1/events`: health transitions and staleness changes as server-sent events
//! from the store's outbox, resumable with `Last-Event-ID`, the same on every replica.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use brokkr_testing::{Seeded, one_agent_one_object};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use brokkr_core::auth::{Principal, hash_pak};
use brokkr_core::broker::{Broker, BrokerConfig};
use brokkr_core::clock::ManualClock;
use brokkr_core::events::FleetEvent;
use brokkr_core::staleness::Staleness;
use brokkr_core::store::Store;
use brokkr_http::events::spawn_staleness_watch;
use brokkr_http::metrics::Telemetry;
use brokkr_http::{HttpConfig, router_with};
use brokkr_store_memory::MemoryStore;
use chrono::{TimeZone, Utc};
use http_body_util::BodyExt;
use tower::ServiceExt;

const ADMIN: &str = "brokkr_admin_0123456789abcdefghijABCDEFGHIJ0123456789abc";

struct World {
    app: Router,
    broker: Broker<dyn Store>,
    telemetry: Telemetry,
    clock: ManualClock,
    agent: String,
    key: String,
    object: String,
}

async fn world() -> World {
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap());
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let broker: Broker<dyn Store> = Broker::new(
        store,
        Arc::new(clock.clone()),
        hash_pak(ADMIN),
        BrokerConfig::default(),
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
    World {
        app: router_with(broker.clone(), &HttpConfig::default(), telemetry.clone()),
        broker,
        telemetry,
        clock,
        agent: agent.agent.id.to_string(),
        key: agent.pak.expose().to_owned(),
        object: object.id.to_string(),
    }
}

impl World {
    /// The agent's bare heartbeat.
    async fn heartbeat(&self) -> StatusCode {
        let heartbeat = Request::builder()
            .method("POST")
            .uri(format!("/api/v1/agents/{}/heartbeat", self.agent))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .body(Body::empty())
            .unwrap();
        self.app.clone().oneshot(heartbeat).await.unwrap().status()
    }

    async fn report(&self, status: &str) -> StatusCode {
        let body = format!(
            r#"{{"deployment_objects":[{{"id":"{}","status":"{status}","checked_at":"{}",
            "summary":{{"pods_ready":0,"pods_total":1,"conditions":["CrashLoopBackOff"]}}}}]}}"#,
            self.object,
            self.clock.now_rfc3339()
        );
        let request = Request::builder()
            .method("PATCH")
            .uri(format!("/api/v1/agents/{}/health-status", self.agent))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        self.app.clone().oneshot(request).await.unwrap().status()
    }

    /// Opens the stream and reads until `wanted` events arrived (or 5 s passed).
    async fn read_events(&self, last_event_id: Option<&str>, wanted: usize) -> String {
        read_events(&self.app, last_event_id, wanted).await
    }

    /// Another replica: its own broker, router and hub over the same store.
    fn replica(&self) -> Router {
        let broker = Broker::new(
            self.broker.store().clone(),
            Arc::new(self.clock.clone()),
            hash_pak(ADMIN),
            BrokerConfig::default(),
        )
        .unwrap();
        router_with(broker, &HttpConfig::default(), Telemetry::new_default())
    }

    async fn stored_events(&self) -> Vec<FleetEvent> {
        self.broker
            .events_after(&Principal::Admin, 0, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect()
    }
}

async fn read_events(app: &Router, last_event_id: Option<&str>, wanted: usize) -> String {
    let mut request = Request::builder()
        .uri("/api/v1/events")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"));
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while text.matches("\ndata:").count() + usize::from(text.starts_with("data:")) < wanted {
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .expect("events in time")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    text
}

trait Rfc3339 {
    fn now_rfc3339(&self) -> String;
}

impl Rfc3339 for ManualClock {
    fn now_rfc3339(&self) -> String {
        use brokkr_core::clock::Clock;
        self.now().to_rfc3339()
    }
}

#[tokio::test]
async fn health_transitions_stream_and_unchanged_reports_stay_quiet() {
    let w = world().await;
    assert_eq!(w.report("healthy").await, StatusCode::OK);
    w.clock.advance(chrono::Duration::seconds(60));
    assert_eq!(w.report("healthy").await, StatusCode::OK); // no transition
    w.clock.advance(chrono::Duration::seconds(60));
    assert_eq!(w.report("failing").await, StatusCode::OK);
    let text = w.read_events(Some("0"), 2).await;
    let has = |id: u64, event: &str| text.contains(&format!("id: {id}\nevent: {event}\n"));
    assert!(has(1, "health.reported"), "{text}");
    assert!(has(2, "health.failing"), "{text}");
    assert!(text.contains(&w.object));
    assert!(
        text.contains("\"top_finding\":\"CrashLoopBackOff\""),
        "{text}"
    );
    assert_eq!(
        w.stored_events().await.len(),
        2,
        "the unchanged report made no event"
    );
}

#[tokio::test]
async fn a_subscriber_resumes_after_its_last_event_and_hears_new_ones_live() {
    let w = Arc::new(world().await);
    w.report("healthy").await;
    w.clock.advance(chrono::Duration::seconds(60));
    w.report("degraded").await;
    let reader = {
        let w = w.clone();
        tokio::spawn(async move { w.read_events(Some("1"), 2).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    w.clock.advance(chrono::Duration::seconds(60));
    w.report("healthy").await;
    let text = reader.await.unwrap();
    let has = |id: u64, event: &str| text.contains(&format!("id: {id}\nevent: {event}\n"));
    assert!(!text.contains("id: 1\n"), "{text}");
    assert!(has(2, "health.degraded"), "{text}");
    assert!(has(3, "health.recovered"), "{text}");
}

#[tokio::test]
async fn only_the_admin_may_listen() {
    let w = world().await;
    let request = Request::builder()
        .uri("/api/v1/events")
        .header(header::AUTHORIZATION, format!("Bearer {}", w.key))
        .body(Body::empty())
        .unwrap();
    let response = w.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn staleness_changes_are_published() {
    let w = world().await;
    assert_eq!(w.heartbeat().await, StatusCode::NO_CONTENT);
    // Two replicas watch: each change is still one event.
    let watches = [
        spawn_staleness_watch(w.broker.clone(), Duration::from_millis(10)),
        spawn_staleness_watch(w.broker.clone(), Duration::from_millis(10)),
    ];
    tokio::time::sleep(Duration::from_millis(50)).await; // learns: fresh
    w.clock.advance(chrono::Duration::seconds(120)); // stale after 90 s
    tokio::time::sleep(Duration::from_millis(50)).await;
    w.clock.advance(chrono::Duration::seconds(300)); // lost after 300 s
    tokio::time::sleep(Duration::from_millis(50)).await;
    for watch in watches {
        watch.abort();
    }
    let changes: Vec<(Staleness, Staleness)> = w
        .stored_events()
        .await
        .into_iter()
        .filter_map(|e| match e {
            FleetEvent::AgentStalenessChanged { from, to, .. } => Some((from, to)),
            FleetEvent::HealthChanged { .. } => None,
        })
        .collect();
    assert_eq!(
        changes,
        [
            (Staleness::Fresh, Staleness::Stale),
            (Staleness::Stale, Staleness::Lost)
        ]
    );
    let text = w.read_events(Some("0"), 2).await;
    assert!(text.contains("id: 1\nevent: agent.stale\n"), "{text}");
    assert!(text.contains("id: 2\nevent: agent.lost\n"), "{text}");
}

#[tokio::test]
async fn every_replica_serves_the_same_events_under_the_same_ids() {
    let w = world().await;
    let other = w.replica();
    w.report("healthy").await;
    w.clock.advance(chrono::Duration::seconds(60));
    w.report("failing").await;
    // Written through the first replica, read through the second, resumed there.
    let text = read_events(&other, Some("0"), 2).await;
    assert!(text.contains("id: 1\nevent: health.reported\n"), "{text}");
    assert!(text.contains("id: 2\nevent: health.failing\n"), "{text}");
    let resumed = read_events(&other, Some("1"), 1).await;
    assert!(
        resumed.contains("id: 2\nevent: health.failing\n"),
        "{resumed}"
    );
    assert!(!resumed.contains("id: 1\n"), "{resumed}");
}

#[tokio::test]
async fn after_a_restart_a_subscriber_resumes_from_the_outbox() {
    let w = world().await;
    // More events than the new process's ring holds (1024): resuming from early on can
    // only be served from the outbox.
    for n in 0..1100 {
        w.clock.advance(chrono::Duration::seconds(1));
        let status = if n % 2 == 0 { "healthy" } else { "degraded" };
        assert_eq!(w.report(status).await, StatusCode::OK);
    }
    let restarted = w.replica();
    let text = read_events(&restarted, Some("5"), 1095).await;
    assert!(!text.contains("event: gap"), "{}", &text[..300]);
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
        .collect();
    assert_eq!(ids, (6..=1100).collect::<Vec<u64>>());
}

#[tokio::test]
async fn an_id_beyond_the_outbox_gets_a_gap_and_then_new_events() {
    let w = world().await;
    w.report("degraded").await;
    // E.g. an id from before an in-memory broker restarted: numbering began again.
    let reader = {
        let app = w.app.clone();
        tokio::spawn(async move { read_events(&app, Some("5000"), 2).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.clock.advance(chrono::Duration::seconds(60));
    w.report("failing").await;
    let text = reader.await.unwrap();
    assert!(text.contains("event: gap\n"), "{text}");
    assert!(text.contains("id: 2\nevent: health.failing\n"), "{text}");
}

#[tokio::test]
async fn an_id_that_is_not_ours_gets_a_gap_then_everything() {
    let w = world().await;
    w.report("degraded").await;
    let text = w.read_events(Some("0badcafe-17"), 2).await;
    assert!(text.contains("event: gap\n"), "{text}");
    assert!(text.contains("id: 1\nevent: health.degraded\n"), "{text}");
}

#[tokio::test]
async fn closing_the_hub_ends_open_streams() {
    let w = world().await;
    let request = Request::builder()
        .uri("/api/v1/events")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    let response = w.app.clone().oneshot(request).await.unwrap();
    w.telemetry.events.close();
    let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect())
        .await
        .expect("the stream ends once the hub closes");
    assert!(body.is_ok());
}

#[tokio::test]
async fn broker_tasks_start_and_stop_together() {
    use brokkr_http::tasks::{BrokerTasks, TaskConfig};
    let w = world().await;
    assert_eq!(w.heartbeat().await, StatusCode::NO_CONTENT);
    let mut config = TaskConfig::default();
    config.staleness_every = Duration::from_millis(10);
    config.cleanup_every = Duration::from_millis(10);
    // The agent is known fresh before the watcher starts (however late its first pass
    // comes on a loaded machine, the change to stale below is a change).
    w.broker
        .announce_staleness(
            &Principal::Admin,
            w.agent.parse().unwrap(),
            Staleness::Fresh,
            w.broker.now(),
        )
        .await
        .unwrap();
    let tasks = BrokerTasks::spawn(&w.broker, &w.telemetry, &config);
    assert!(
        tasks.names().contains(&"staleness watcher"),
        "{:?}",
        tasks.names()
    );
    assert!(tasks.names().contains(&"cleanup"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    w.clock.advance(chrono::Duration::seconds(120));
    let stale = |events: Vec<FleetEvent>| {
        events
            .into_iter()
            .filter(|e| matches!(e, FleetEvent::AgentStalenessChanged { .. }))
            .count()
    };
    // The watcher runs: the agent's change to stale reaches the outbox (however loaded
    // the machine, within 10 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while stale(w.stored_events().await) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the watcher never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stale(w.stored_events().await), 1);
    tasks.shutdown().await;
    // Stopped: a later change is no longer announced, however many passes would have run.
    w.clock.advance(chrono::Duration::seconds(300));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stale(w.stored_events().await), 1);
}
