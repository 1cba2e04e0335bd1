//! The broker service over the in-memory store, with a manual clock: policy as a user of
//! the service sees it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use brokkr::core::Error;
use brokkr::core::auth::{Principal, hash_pak};
use brokkr::core::broker::{Broker, BrokerConfig, HealthReportResult};
use brokkr::core::clock::ManualClock;
use brokkr::core::diagnostics::DiagnosticStatus;
use brokkr::core::health::Health;
use brokkr::core::ids::{AgentId, DeploymentObjectId};
use brokkr::core::model::{
    ClusterSnapshot, DeliveryState, DeploymentStatusEvent, DiagnosticBundle, DiagnosticOutcome,
    HealthReport, HealthReportItem, HealthSummary, Heartbeat, NewAgent, NewDeploymentObject,
    NewStack, NewTarget, NewWorkOrder, ReconcileOutcome,
};
use brokkr::core::staleness::Staleness;
use brokkr::core::store::{PageRequest, ResultOutcome};
use brokkr::store_memory::MemoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc};

const ADMIN_KEY: &str = "brokkr_admin_0123456789abcdefghijABCDEFGHIJ0123456789abc";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

struct World {
    broker: Broker<MemoryStore>,
    clock: ManualClock,
    admin: Principal,
    agent: Principal,
    agent_id: AgentId,
    agent_key: String,
    object: DeploymentObjectId,
    stack: brokkr::core::ids::StackId,
}

async fn world() -> World {
    let clock = ManualClock::new(t0());
    let broker = Broker::new(
        Arc::new(MemoryStore::new()),
        Arc::new(clock.clone()),
        hash_pak(ADMIN_KEY),
        BrokerConfig::default(),
    )
    .unwrap();
    let admin = broker.authenticate(ADMIN_KEY).await.unwrap();
    let registered = broker
        .register_agent(
            &admin,
            NewAgent {
                name: "edge-1".into(),
                cluster_name: "eu-west".into(),
                labels: BTreeMap::default(),
            },
        )
        .await
        .unwrap();
    let agent_key = registered.pak.expose().to_owned();
    let agent = broker.authenticate(&agent_key).await.unwrap();
    let stack = broker
        .create_stack(
            &admin,
            NewStack {
                name: "shop".into(),
                labels: BTreeMap::default(),
            },
        )
        .await
        .unwrap();
    broker
        .target(
            &admin,
            registered.agent.id,
            NewTarget { stack_id: stack.id },
        )
        .await
        .unwrap();
    let object = broker
        .add_deployment_object(&admin, stack.id, yaml("v1"))
        .await
        .unwrap();
    World {
        broker,
        clock,
        admin,
        agent,
        agent_id: registered.agent.id,
        agent_key,
        object: object.id,
        stack: stack.id,
    }
}

fn yaml(version: &str) -> NewDeploymentObject {
    NewDeploymentObject {
        yaml_content: format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  v: {version}\n"
        ),
        is_deletion: false,
    }
}

fn verdict(id: DeploymentObjectId, status: Health, checked_at: DateTime<Utc>) -> HealthReportItem {
    HealthReportItem {
        id,
        status,
        checked_at,
        summary: HealthSummary {
            pods_ready: 1,
            pods_total: 2,
            conditions: vec!["CrashLoopBackOff".into()],
            ..HealthSummary::default()
        },
    }
}

fn report(items: Vec<HealthReportItem>) -> HealthReport {
    HealthReport {
        deployment_objects: items,
    }
}

impl World {
    /// The agent reports one verdict on its object.
    async fn report_own(
        &self,
        status: Health,
        checked_at: DateTime<Utc>,
    ) -> brokkr::core::Result<HealthReportResult> {
        self.broker
            .report_health(
                &self.agent,
                self.agent_id,
                report(vec![verdict(self.object, status, checked_at)]),
            )
            .await
    }
}

#[tokio::test]
async fn keys_authenticate_their_holders_only() {
    let w = world().await;
    assert_eq!(w.admin, Principal::Admin);
    assert_eq!(w.agent, Principal::Agent(w.agent_id));
    for junk in [
        "",
        "Bearer",
        "brokkr_admin_wrongwrongwrongwrongwrongwrongwrongwrong123",
        "brokkr_agent_0000000000000000000000000000000000000000000",
        &w.agent_key[..w.agent_key.len() - 1],
    ] {
        assert!(matches!(
            w.broker.authenticate(junk).await,
            Err(Error::Unauthorized)
        ));
    }
}

#[tokio::test]
async fn agents_go_stale_then_lost_without_heartbeats() {
    let w = world().await;
    let view = w.broker.get_agent(&w.admin, w.agent_id).await.unwrap();
    assert_eq!(view.staleness, Staleness::Lost, "never heard of");
    w.broker
        .heartbeat(&w.agent, w.agent_id, Heartbeat::default())
        .await
        .unwrap();
    let status = |w: &World| {
        let broker = w.broker.clone();
        let admin = w.admin;
        let id = w.agent_id;
        async move { broker.get_agent(&admin, id).await.unwrap().staleness }
    };
    assert_eq!(status(&w).await, Staleness::Fresh);
    w.clock.advance(Duration::seconds(89));
    assert_eq!(status(&w).await, Staleness::Fresh);
    w.clock.advance(Duration::seconds(1));
    assert_eq!(status(&w).await, Staleness::Stale);
    w.clock.advance(Duration::seconds(210));
    assert_eq!(status(&w).await, Staleness::Lost);
    let page = w
        .broker
        .list_agents(
            &w.admin,
            PageRequest {
                limit: 10,
                after: None,
            },
            Some(Staleness::Lost),
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn filtered_listings_fill_their_pages() {
    let w = world().await;
    for n in 0..6 {
        let registered = w
            .broker
            .register_agent(
                &w.admin,
                NewAgent {
                    name: format!("a{n}"),
                    cluster_name: "c".into(),
                    labels: BTreeMap::default(),
                },
            )
            .await
            .unwrap();
        if n % 2 == 0 {
            let me = Principal::Agent(registered.agent.id);
            w.broker
                .heartbeat(&me, registered.agent.id, Heartbeat::default())
                .await
                .unwrap();
        }
    }
    // 7 agents: 3 fresh, 4 lost (never heard of). Walk the lost ones two at a time.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = w
            .broker
            .list_agents(
                &w.admin,
                PageRequest { limit: 2, after },
                Some(Staleness::Lost),
            )
            .await
            .unwrap();
        assert!(page.items.iter().all(|a| a.staleness == Staleness::Lost));
        if page.next.is_some() {
            assert_eq!(page.items.len(), 2, "only the last page may be short");
        }
        seen.extend(page.items.iter().map(|a| a.agent.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4);
}

#[tokio::test]
async fn a_heartbeat_behind_the_stored_one_is_no_error() {
    let w = world().await;
    w.broker
        .heartbeat(&w.agent, w.agent_id, Heartbeat::default())
        .await
        .unwrap();
    // The broker's clock steps back (NTP), or a replica is slightly behind.
    w.clock.advance(Duration::seconds(-2));
    w.broker
        .heartbeat(&w.agent, w.agent_id, Heartbeat::default())
        .await
        .unwrap();
    let view = w.broker.get_agent(&w.admin, w.agent_id).await.unwrap();
    assert_eq!(view.last_heartbeat_at, Some(t0()), "never moved back");
}

#[tokio::test]
async fn superseded_objects_leave_agent_views() {
    let w = world().await;
    let event = DeploymentStatusEvent {
        deployment_object_id: w.object,
        outcome: ReconcileOutcome::Failed,
        attempted_at: t0(),
        retry_count: 3,
        reconciliation_duration_ms: None,
        failure_reason: Some(brokkr::core::model::FailureReason::InvalidManifest),
        failure_message: None,
    };
    w.broker
        .report_deployment_status(&w.agent, w.agent_id, vec![event])
        .await
        .unwrap();
    w.report_own(Health::Failing, t0()).await.unwrap();
    let before = w
        .broker
        .operational_status(&w.agent, w.agent_id)
        .await
        .unwrap();
    assert_eq!(before.reconcile.objects_failing, 1);

    let newer = w
        .broker
        .add_deployment_object(&w.admin, w.stack, yaml("v2"))
        .await
        .unwrap();
    let after = w
        .broker
        .operational_status(&w.agent, w.agent_id)
        .await
        .unwrap();
    assert_eq!(
        after.reconcile.objects_failing, 0,
        "v1's failure is history"
    );
    assert_eq!(after.reconcile.last_failure_reason, None);
    let health = w.broker.agent_health(&w.agent, w.agent_id).await.unwrap();
    assert_eq!(health.deployment_objects.len(), 1);
    assert_eq!(health.deployment_objects[0].id, newer.id);
    assert_eq!(
        health.deployment_objects[0].entry.status,
        Health::Unknown,
        "not reported yet"
    );
}

#[tokio::test]
async fn heartbeats_are_validated_and_only_the_agent_itself_may_send_them() {
    let w = world().await;
    let bad = Heartbeat {
        snapshot: ClusterSnapshot {
            cluster_cpu_capacity: Some(1000),
            cluster_cpu_available: Some(2000),
            ..ClusterSnapshot::default()
        },
        health_checked_at: None,
    };
    assert!(matches!(
        w.broker.heartbeat(&w.agent, w.agent_id, bad).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        w.broker
            .heartbeat(&w.admin, w.agent_id, Heartbeat::default())
            .await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        w.broker
            .heartbeat(&w.agent, AgentId::new(), Heartbeat::default())
            .await,
        Err(Error::Forbidden(_))
    ));
}

#[tokio::test]
async fn target_state_is_the_latest_object_of_each_targeted_stack() {
    let w = world().await;
    let newer = w
        .broker
        .add_deployment_object(&w.admin, w.stack, yaml("v2"))
        .await
        .unwrap();
    let state = w.broker.target_state(&w.agent, w.agent_id).await.unwrap();
    assert_eq!(state.len(), 1);
    assert_eq!(state[0].id, newer.id);
    assert!(state[0].sequence_id > 1);
    // Both objects were queued for the agent; only the effective one counts in the queue.
    let queue = w.broker.queue_status(&w.agent, w.agent_id).await.unwrap();
    assert_eq!(queue.queue_depth, 1);
}

#[tokio::test]
async fn health_reports_are_counted_item_by_item() {
    let w = world().await;
    let outsider = w
        .broker
        .create_stack(
            &w.admin,
            NewStack {
                name: "other".into(),
                labels: BTreeMap::default(),
            },
        )
        .await
        .unwrap();
    let foreign = w
        .broker
        .add_deployment_object(&w.admin, outsider.id, yaml("x"))
        .await
        .unwrap();
    let result = w
        .broker
        .report_health(
            &w.agent,
            w.agent_id,
            report(vec![
                verdict(w.object, Health::Failing, t0()),
                verdict(foreign.id, Health::Healthy, t0()),
                verdict(DeploymentObjectId::new(), Health::Healthy, t0()),
                verdict(w.object, Health::Healthy, t0() + Duration::hours(1))
                    .clone_with_id(DeploymentObjectId::new()),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(result.accepted, 1);
    assert_eq!(result.rejected.len(), 3);
    assert!(
        result
            .rejected
            .iter()
            .any(|r| r.id == foreign.id && r.reason.contains("does not target"))
    );

    // Same verdict again soon: unchanged; an older one: ignored.
    w.clock.advance(Duration::seconds(60));
    let again = w
        .report_own(Health::Failing, t0() + Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!((again.accepted, again.unchanged, again.ignored), (0, 1, 0));
    let older = w
        .report_own(Health::Healthy, t0() - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!((older.accepted, older.unchanged, older.ignored), (0, 0, 1));

    // Every item bad: the batch is refused; duplicates: refused whole.
    let all_bad = w
        .broker
        .report_health(
            &w.agent,
            w.agent_id,
            report(vec![verdict(foreign.id, Health::Healthy, t0())]),
        )
        .await;
    assert!(matches!(all_bad, Err(Error::Invalid(_))));
    let dup = w
        .broker
        .report_health(
            &w.agent,
            w.agent_id,
            report(vec![
                verdict(w.object, Health::Healthy, t0()),
                verdict(w.object, Health::Failing, t0()),
            ]),
        )
        .await;
    assert!(matches!(dup, Err(Error::Invalid(_))));
    // A checked_at in the future (an agent's clock ahead) counts as now: never refused,
    // never stored ahead of the broker's clock.
    let future = w
        .report_own(Health::Healthy, t0() + Duration::minutes(10))
        .await
        .unwrap();
    assert_eq!(future.rejected, vec![]);
    let stored = w.broker.object_health(&w.admin, w.object).await.unwrap();
    assert!(
        stored
            .agents
            .iter()
            .all(|a| a.checked_at.is_some_and(|t| t <= w.broker.now()))
    );
    // Another agent's id, or the admin, may not report.
    assert!(matches!(
        w.broker
            .report_health(&w.admin, w.agent_id, report(vec![]))
            .await,
        Err(Error::Forbidden(_))
    ));
}

trait CloneWithId {
    fn clone_with_id(self, id: DeploymentObjectId) -> Self;
}

impl CloneWithId for HealthReportItem {
    fn clone_with_id(mut self, id: DeploymentObjectId) -> Self {
        self.id = id;
        self
    }
}

#[tokio::test]
async fn stale_verdicts_keep_their_last_known_status() {
    let w = world().await;
    let health = |w: &World| {
        let (broker, admin, object) = (w.broker.clone(), w.admin, w.object);
        async move { broker.object_health(&admin, object).await.unwrap() }
    };
    // Targeted but never reported: unknown.
    let before = health(&w).await;
    assert_eq!(before.status, Health::Unknown);
    assert_eq!(before.agents[0].summary, None);

    w.broker
        .heartbeat(
            &w.agent,
            w.agent_id,
            Heartbeat {
                snapshot: ClusterSnapshot::default(),
                health_checked_at: Some(t0()),
            },
        )
        .await
        .unwrap();
    w.report_own(Health::Degraded, t0()).await.unwrap();
    let fresh = health(&w).await;
    assert_eq!(fresh.status, Health::Degraded);
    assert!(!fresh.agents[0].stale);

    // The agent keeps heartbeating but stopped finishing health cycles: after health_ttl
    // (3 min) its verdict is stale, still degraded.
    for _ in 0..8 {
        w.clock.advance(Duration::seconds(30));
        w.broker
            .heartbeat(&w.agent, w.agent_id, Heartbeat::default())
            .await
            .unwrap();
    }
    let stale = health(&w).await;
    assert_eq!(
        stale.status,
        Health::Degraded,
        "staleness never improves a verdict"
    );
    assert!(stale.agents[0].stale);
    assert_eq!(
        stale.agents[0].stale_since,
        Some(t0() + Duration::minutes(3))
    );
    assert_eq!(stale.stale_count, 1);

    let stack = w.broker.stack_health(&w.admin, w.stack).await.unwrap();
    assert_eq!(stack.overall_status, Health::Degraded);
    let mine = w.broker.agent_health(&w.agent, w.agent_id).await.unwrap();
    assert_eq!(mine.deployment_objects.len(), 1);
    assert!(matches!(
        w.broker
            .agent_health(&Principal::Agent(AgentId::new()), w.agent_id)
            .await,
        Err(Error::Forbidden(_))
    ));
}

#[tokio::test]
async fn reconcile_reports_feed_deliveries_and_operational_status() {
    let w = world().await;
    let event = |outcome, secs: i64, retry| DeploymentStatusEvent {
        deployment_object_id: w.object,
        outcome,
        attempted_at: t0() + Duration::seconds(secs),
        retry_count: retry,
        reconciliation_duration_ms: Some(800),
        failure_reason: (outcome == ReconcileOutcome::Failed)
            .then_some(brokkr::core::model::FailureReason::Timeout),
        failure_message: None,
    };
    w.clock.advance(Duration::seconds(10));
    let result = w
        .broker
        .report_deployment_status(
            &w.agent,
            w.agent_id,
            vec![
                event(ReconcileOutcome::Failed, 5, 2),
                event(ReconcileOutcome::Acknowledged, 1, 0),
            ],
        )
        .await
        .unwrap();
    assert_eq!(result.accepted, 2);
    let view = w
        .broker
        .deployment_object(&w.admin, w.object)
        .await
        .unwrap();
    let delivery = &view.deliveries[0];
    assert_eq!(delivery.state, DeliveryState::Failed);
    assert_eq!(delivery.retry_count, 2);
    let ops = w
        .broker
        .operational_status(&w.agent, w.agent_id)
        .await
        .unwrap();
    assert_eq!(ops.reconcile.objects_failing, 1);
    assert_eq!(ops.reconcile.retry_total, 2);
    assert_eq!(
        ops.reconcile.last_failure_reason,
        Some(brokkr::core::model::FailureReason::Timeout)
    );
    let queue = w.broker.queue_status(&w.admin, w.agent_id).await.unwrap();
    assert_eq!(queue.queue_depth, 0);
    let latency = queue.delivery_latency_ms.unwrap();
    assert_eq!(
        latency.max, 1000,
        "acknowledged 1 s after the object was created"
    );
}

#[tokio::test]
async fn diagnostics_expire_exactly_at_their_deadlines_and_are_cleaned_up() {
    let w = world().await;
    let requests = w
        .broker
        .request_diagnostics(&w.admin, w.object, None, "admin")
        .await
        .unwrap();
    assert_eq!(
        requests.len(),
        1,
        "one request per agent running the object"
    );
    let id = requests[0].id;
    assert!(matches!(
        w.broker
            .request_diagnostics(&w.agent, w.object, None, "x")
            .await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        w.broker
            .request_diagnostics(&w.admin, w.object, Some(AgentId::new()), "admin")
            .await,
        Err(Error::Invalid(_))
    ));

    w.clock
        .set(requests[0].claim_deadline - Duration::milliseconds(1));
    assert_eq!(
        w.broker
            .pending_diagnostics(&w.agent, w.agent_id)
            .await
            .unwrap()
            .len(),
        1
    );
    w.clock.set(requests[0].claim_deadline);
    assert!(
        w.broker
            .pending_diagnostics(&w.agent, w.agent_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        w.broker.claim_diagnostic(&w.agent, id, None).await,
        Err(Error::Gone(_))
    ));
    assert_eq!(
        w.broker
            .diagnostic(&w.admin, id)
            .await
            .unwrap()
            .request
            .status,
        DiagnosticStatus::Expired
    );

    // A second request, claimed and answered, is kept for the retention from completion.
    w.clock.set(t0() + Duration::hours(1));
    let second = w
        .broker
        .request_diagnostics(&w.admin, w.object, Some(w.agent_id), "admin")
        .await
        .unwrap()[0]
        .id;
    let claimed = w
        .broker
        .claim_diagnostic(&w.agent, second, Some("t1"))
        .await
        .unwrap();
    assert_eq!(claimed.status, DiagnosticStatus::Claimed);
    let again = w
        .broker
        .claim_diagnostic(&w.agent, second, Some("t1"))
        .await
        .unwrap();
    assert_eq!(
        again.claimed_at, claimed.claimed_at,
        "a retried claim changes nothing"
    );
    let bundle = DiagnosticOutcome::Bundle(DiagnosticBundle {
        collected_at: t0() + Duration::hours(1),
        pod_statuses: vec![],
        events: vec![],
        log_tails: BTreeMap::default(),
        owner_chain: Vec::new(),
        truncated: false,
    });
    assert_eq!(
        w.broker
            .post_diagnostic_result(&w.agent, second, bundle.clone())
            .await
            .unwrap(),
        ResultOutcome::Stored
    );
    assert_eq!(
        w.broker
            .post_diagnostic_result(&w.agent, second, bundle)
            .await
            .unwrap(),
        ResultOutcome::AlreadyStored
    );
    assert!(matches!(
        w.broker
            .post_diagnostic_result(&w.agent, second, DiagnosticOutcome::Failed("no".into()))
            .await,
        Err(Error::Conflict(_))
    ));
    let view = w.broker.diagnostic(&w.admin, second).await.unwrap();
    assert_eq!(view.request.status, DiagnosticStatus::Completed);
    assert!(view.result.is_some());

    // Cleanup: the expired first request goes once its retention from creation is over;
    // the answered one 60 min after completion; a second run deletes nothing.
    assert_eq!(w.broker.cleanup().await.unwrap(), 1);
    w.clock
        .set(t0() + Duration::hours(2) + Duration::seconds(1));
    assert_eq!(w.broker.cleanup().await.unwrap(), 1);
    assert_eq!(w.broker.cleanup().await.unwrap(), 0);
    assert!(matches!(
        w.broker.diagnostic(&w.admin, second).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn work_orders_and_fleet_summary() {
    let w = world().await;
    let order = w
        .broker
        .create_work_order(
            &w.admin,
            NewWorkOrder {
                agent_id: w.agent_id,
                kind: "restart".into(),
                payload: serde_json::json!({}),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        w.broker
            .open_work_orders(&w.agent, w.agent_id)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        w.broker.claim_work_order(&w.admin, order.id).await,
        Err(Error::Forbidden(_))
    ));
    w.broker.claim_work_order(&w.agent, order.id).await.unwrap();

    w.broker
        .heartbeat(
            &w.agent,
            w.agent_id,
            Heartbeat {
                snapshot: ClusterSnapshot {
                    cluster_cpu_capacity: Some(4000),
                    cluster_cpu_available: Some(1000),
                    node_count: Some(3),
                    node_ready_count: Some(2),
                    ..ClusterSnapshot::default()
                },
                health_checked_at: Some(t0()),
            },
        )
        .await
        .unwrap();
    w.report_own(Health::Failing, t0()).await.unwrap();
    let summary = w.broker.fleet_summary(&w.admin).await.unwrap();
    assert_eq!((summary.agents.total, summary.agents.fresh), (1, 1));
    assert_eq!(summary.health.failing, 1);
    assert_eq!(summary.capacity.cpu_capacity, 4000);
    assert_eq!(summary.capacity.nodes_ready, 2);
    assert_eq!(summary.queue.backlog_total, 1);
    assert_eq!(summary.queue.depth_total, 1);
    assert!(matches!(
        w.broker.fleet_summary(&w.agent).await,
        Err(Error::Forbidden(_))
    ));
}

#[tokio::test]
async fn the_fleet_summary_is_a_snapshot_at_most_five_seconds_old() {
    let w = world().await;
    let first = w.broker.fleet_summary(&w.admin).await.unwrap();
    assert_eq!((first.agents.total, first.health.failing), (1, 0));
    assert_eq!(first.generated_at, t0());
    w.report_own(Health::Failing, t0()).await.unwrap();
    // Within the maximum age the snapshot is served, and says when it was taken.
    w.clock.advance(Duration::milliseconds(4_999));
    let cached = w.broker.fleet_summary(&w.admin).await.unwrap();
    assert_eq!(cached, first);
    // Past it, a new one.
    w.clock.advance(Duration::milliseconds(1));
    let fresh = w.broker.fleet_summary(&w.admin).await.unwrap();
    assert_eq!(fresh.health.failing, 1);
    assert_eq!(fresh.generated_at, t0() + Duration::seconds(5));
    // A host refreshing ahead of demand replaces it at once.
    w.report_own(Health::Healthy, t0() + Duration::seconds(5))
        .await
        .unwrap();
    assert_eq!(
        w.broker
            .refresh_fleet_summary()
            .await
            .unwrap()
            .health
            .failing,
        0
    );
    assert_eq!(
        w.broker
            .fleet_summary(&w.admin)
            .await
            .unwrap()
            .health
            .failing,
        0
    );
    // A clock stepped back (before the snapshot) gets a new one, not a summary "from
    // the future".
    w.clock.set(t0());
    assert_eq!(
        w.broker.fleet_summary(&w.admin).await.unwrap().generated_at,
        t0()
    );
}

#[tokio::test]
async fn without_a_snapshot_age_every_summary_is_computed() {
    let clock = ManualClock::new(t0());
    let config = BrokerConfig {
        fleet_snapshot_max_age: Duration::zero(),
        ..BrokerConfig::default()
    };
    let store = Arc::new(MemoryStore::new());
    let broker = Broker::new(store, Arc::new(clock), hash_pak(ADMIN_KEY), config).unwrap();
    let admin = broker.authenticate(ADMIN_KEY).await.unwrap();
    assert_eq!(broker.fleet_summary(&admin).await.unwrap().agents.total, 0);
    broker
        .register_agent(
            &admin,
            NewAgent {
                name: "edge-2".into(),
                cluster_name: "eu-west".into(),
                labels: BTreeMap::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(broker.fleet_summary(&admin).await.unwrap().agents.total, 1);
    let negative = BrokerConfig {
        fleet_snapshot_max_age: Duration::seconds(-1),
        ..BrokerConfig::default()
    };
    assert!(matches!(
        Broker::new(
            Arc::new(MemoryStore::new()),
            Arc::new(ManualClock::new(t0())),
            hash_pak(ADMIN_KEY),
            negative
        ),
        Err(Error::Invalid(_))
    ));
}

mod interleavings {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever order reports for one (agent, object) arrive in, the stored verdict
        /// is the one with the latest `checked_at` (older reports never overwrite newer).
        #[test]
        fn the_latest_check_wins(reports in prop::collection::vec((0i64..10_000, 0u8..4), 1..12)
            .prop_map(|mut r| { r.sort_by_key(|(t, _)| *t); r.dedup_by_key(|(t, _)| *t); r })
            .prop_shuffle())
        {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let w = world().await;
                w.clock.set(t0() + Duration::seconds(10_000));
                let status = |n: u8| [Health::Healthy, Health::Unknown, Health::Degraded, Health::Failing][n as usize];
                for (at, s) in &reports {
                    w.report_own(status(*s), t0() + Duration::seconds(*at)).await.unwrap();
                }
                let (last_at, last_status) = reports.iter().max_by_key(|(t, _)| *t).unwrap();
                let stored = w.broker.object_health(&w.admin, w.object).await.unwrap();
                assert_eq!(stored.agents[0].status, status(*last_status));
                // The row holds the latest check, unless that check repeated the stored
                // verdict while the row was recent (less than half the refresh interval
                // old): then it is deliberately not rewritten.
                let checked = stored.agents[0].checked_at.unwrap();
                let latest = t0() + Duration::seconds(*last_at);
                let recent_enough = t0() + Duration::seconds(10_000) - Duration::seconds(150);
                assert!(checked == latest || (checked < latest && checked >= recent_enough),
                    "stored {checked}, latest {latest}");
            });
        }
    }
}
