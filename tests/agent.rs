//! The agent runtime against an in-process broker and a simulated cluster, on a manual
//! clock: what an operator would see on the broker while the agent works.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use brokkr_testing::{Seeded, one_agent_one_object};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use brokkr::agent::{
    Agent, AgentConfig, BrokerApi, Fault, FaultKind, LocalBroker, SimulatedCluster,
    SimulationConfig,
};
use brokkr::core::Error;
use brokkr::core::auth::{Principal, hash_pak};
use brokkr::core::broker::{Broker, BrokerConfig, HealthReportResult, StatusReportResult};
use brokkr::core::clock::{Clock, ManualClock};
use brokkr::core::diagnostics::{DiagnosticStatus, PendingDiagnostic};
use brokkr::core::health::Health;
use brokkr::core::ids::{AgentId, DeploymentObjectId, DiagnosticId, WorkOrderId};
use brokkr::core::model::{
    DeliveryState, DeploymentObject, DeploymentStatusEvent, DiagnosticOutcome, FailureReason,
    HealthReport, Heartbeat, WorkOrder,
};
use brokkr::store_memory::MemoryStore;
use chrono::{DateTime, Duration, TimeZone, Utc};

const ADMIN_KEY: &str = "brokkr_admin_0123456789abcdefghijABCDEFGHIJ0123456789abc";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

/// A broker API that can be switched off (the network is down), can lose only the
/// posting of results, can hold callers after listing pending diagnostics until all
/// have listed (to make a race real), and counts calls.
struct Flaky<B> {
    inner: B,
    down: AtomicBool,
    posts_fail: AtomicBool,
    after_pending: Option<Arc<tokio::sync::Barrier>>,
    health_reports: AtomicUsize,
    /// Refuse every batch of more than one item as a whole (as Postgres did for one bad
    /// value), and any batch holding this object.
    refuse_batches: AtomicBool,
    refused_object: std::sync::Mutex<Option<DeploymentObjectId>>,
}

impl<B> Flaky<B> {
    fn new(inner: B) -> Self {
        Self {
            inner,
            down: AtomicBool::new(false),
            posts_fail: AtomicBool::new(false),
            after_pending: None,
            health_reports: AtomicUsize::new(0),
            refuse_batches: AtomicBool::new(false),
            refused_object: std::sync::Mutex::new(None),
        }
    }
    fn check(&self) -> Result<(), Error> {
        if self.down.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("network down".into()));
        }
        Ok(())
    }
    /// The refusal a broker gives a batch it cannot take, if this one is.
    fn refuses<'a>(&self, ids: impl Iterator<Item = &'a DeploymentObjectId>) -> Result<(), Error> {
        let ids: std::collections::HashSet<_> = ids.collect();
        let many = ids.len() > 1 && self.refuse_batches.load(Ordering::SeqCst);
        let bad = *self.refused_object.lock().unwrap();
        if many || bad.is_some_and(|bad| ids.contains(&bad)) {
            return Err(Error::invalid("body", "the database refused a value"));
        }
        Ok(())
    }
}

#[async_trait]
impl<B: BrokerApi> BrokerApi for Flaky<B> {
    fn agent_id(&self) -> AgentId {
        self.inner.agent_id()
    }
    async fn heartbeat(&self, beat: &Heartbeat) -> Result<(), Error> {
        self.check()?;
        self.inner.heartbeat(beat).await
    }
    async fn target_state(&self) -> Result<Vec<DeploymentObject>, Error> {
        self.check()?;
        self.inner.target_state().await
    }
    async fn report_deployment_status(
        &self,
        events: &[DeploymentStatusEvent],
    ) -> Result<StatusReportResult, Error> {
        self.check()?;
        self.refuses(events.iter().map(|e| &e.deployment_object_id))?;
        self.inner.report_deployment_status(events).await
    }
    async fn report_health(&self, report: &HealthReport) -> Result<HealthReportResult, Error> {
        self.check()?;
        self.health_reports.fetch_add(1, Ordering::SeqCst);
        self.refuses(report.deployment_objects.iter().map(|i| &i.id))?;
        self.inner.report_health(report).await
    }
    async fn pending_diagnostics(&self) -> Result<Vec<PendingDiagnostic>, Error> {
        self.check()?;
        let pending = self.inner.pending_diagnostics().await;
        if let Some(barrier) = &self.after_pending {
            barrier.wait().await;
        }
        pending
    }
    async fn claim_diagnostic(&self, id: DiagnosticId, token: &str) -> Result<(), Error> {
        self.check()?;
        self.inner.claim_diagnostic(id, token).await
    }
    async fn post_diagnostic_result(
        &self,
        id: DiagnosticId,
        outcome: &DiagnosticOutcome,
    ) -> Result<(), Error> {
        self.check()?;
        if self.posts_fail.load(Ordering::SeqCst) {
            return Err(Error::Unavailable("connection reset".into()));
        }
        self.inner.post_diagnostic_result(id, outcome).await
    }
    async fn open_work_orders(&self) -> Result<Vec<WorkOrder>, Error> {
        self.check()?;
        self.inner.open_work_orders().await
    }
    async fn claim_work_order(&self, id: WorkOrderId) -> Result<WorkOrder, Error> {
        self.check()?;
        self.inner.claim_work_order(id).await
    }
    async fn complete_work_order(
        &self,
        id: WorkOrderId,
        success: bool,
    ) -> Result<WorkOrder, Error> {
        self.check()?;
        self.inner.complete_work_order(id, success).await
    }
}

type Api = Arc<Flaky<LocalBroker<MemoryStore>>>;
type TestAgent = Agent<Arc<SimulatedCluster>, Api, ManualClock>;

struct World {
    broker: Broker<MemoryStore>,
    clock: ManualClock,
    admin: Principal,
    agent_id: AgentId,
    agent_key: String,
    object: DeploymentObjectId,
    cluster: Arc<SimulatedCluster>,
    api: Api,
    agent: TestAgent,
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
    let Seeded {
        agent: registered,
        stack: _,
        object,
    } = one_agent_one_object(
        &broker,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n",
    )
    .await
    .unwrap();
    let agent_key = registered.pak.expose().to_owned();
    let api = Arc::new(Flaky::new(
        LocalBroker::connect(broker.clone(), &agent_key)
            .await
            .unwrap(),
    ));
    let cluster = Arc::new(SimulatedCluster::new(
        Arc::new(clock.clone()),
        SimulationConfig::default(),
    ));
    let agent = new_agent(&cluster, api.clone(), &clock);
    World {
        broker,
        clock,
        admin,
        agent_id: registered.agent.id,
        agent_key,
        object: object.id,
        cluster,
        api,
        agent,
    }
}

fn new_agent(cluster: &Arc<SimulatedCluster>, api: Api, clock: &ManualClock) -> TestAgent {
    Agent::new(cluster.clone(), api, clock.clone(), AgentConfig::default())
        .unwrap()
        .with_applier(cluster.clone())
}

impl World {
    async fn object_status(&self) -> Health {
        self.broker
            .object_health(&self.admin, self.object)
            .await
            .unwrap()
            .status
    }

    fn advance(&self, seconds: i64) {
        self.clock.advance(Duration::seconds(seconds));
    }

    fn fault(&self, kind: FaultKind) {
        self.fault_on(self.object, kind);
    }

    /// `kind` for `object` from now on.
    fn fault_on(&self, object: DeploymentObjectId, kind: FaultKind) {
        self.cluster.inject(Fault {
            object: Some(object),
            kind,
            from: self.clock.now(),
            until: None,
        });
    }
}

#[tokio::test]
async fn reconcile_applies_the_target_state_once_and_reports_it() {
    let w = world().await;
    let report = w.agent.reconcile_once().await.unwrap();
    assert_eq!((report.desired, report.applied, report.failed), (1, 1, 0));
    assert_eq!(w.cluster.running(), [w.object]);
    let view = w
        .broker
        .deployment_object(&w.admin, w.object)
        .await
        .unwrap();
    assert_eq!(view.deliveries.len(), 1);
    assert_eq!(view.deliveries[0].state, DeliveryState::Applied);
    assert!(view.deliveries[0].acknowledged_at.is_some());
    w.advance(30);
    let again = w.agent.reconcile_once().await.unwrap();
    assert_eq!((again.applied, again.reported), (0, 0), "nothing new to do");
    assert_eq!(w.cluster.apply_calls(), 1);
}

#[tokio::test]
async fn a_rejected_apply_is_reported_with_its_reason_and_retried_after_backoff() {
    let w = world().await;
    w.fault(FaultKind::ApplyRejected(FailureReason::Forbidden));
    let report = w.agent.reconcile_once().await.unwrap();
    assert_eq!(report.failed, 1);
    let status = w
        .broker
        .operational_status(&w.admin, w.agent_id)
        .await
        .unwrap();
    assert_eq!(status.reconcile.objects_failing, 1);
    assert_eq!(
        status.reconcile.last_failure_reason,
        Some(FailureReason::Forbidden)
    );
    // Backoff: 10 s at most after the first failure, not retried before 5 s.
    w.advance(4);
    assert_eq!(w.agent.reconcile_once().await.unwrap().failed, 0);
    w.cluster.clear_faults();
    w.advance(7);
    assert_eq!(w.agent.reconcile_once().await.unwrap().applied, 1);
    let view = w
        .broker
        .deployment_object(&w.admin, w.object)
        .await
        .unwrap();
    assert_eq!(view.deliveries[0].state, DeliveryState::Applied);
    assert_eq!(view.deliveries[0].retry_count, 1);
    // The heartbeat carries the error count.
    w.agent.heartbeat_once().await.unwrap();
    let status = w
        .broker
        .operational_status(&w.admin, w.agent_id)
        .await
        .unwrap();
    let snapshot = status.snapshot.unwrap();
    assert_eq!(snapshot.reconciliation_errors_total, Some(1));
    assert!(snapshot.last_successful_reconcile.is_some());
}

#[tokio::test]
async fn objects_not_applied_yet_are_not_judged() {
    let w = world().await;
    let early = w.agent.check_once().await.unwrap();
    assert_eq!((early.observed, early.pending, early.reported), (0, 1, 0));
    let entry = &w
        .broker
        .object_health(&w.admin, w.object)
        .await
        .unwrap()
        .agents[0];
    assert_eq!(entry.status, Health::Unknown);
    assert!(entry.checked_at.is_none(), "never reported, not failing");
    w.agent.reconcile_once().await.unwrap();
    assert_eq!(w.agent.check_once().await.unwrap().observed, 1);
    assert_eq!(w.object_status().await, Health::Healthy);
}

#[tokio::test]
async fn health_is_reported_only_when_it_changes() {
    let w = world().await;
    w.agent.reconcile_once().await.unwrap();
    let first = w.agent.check_once().await.unwrap();
    assert_eq!((first.observed, first.reported), (1, 1));
    assert_eq!(w.object_status().await, Health::Healthy);
    for _ in 0..3 {
        w.advance(60);
        let cycle = w.agent.check_once().await.unwrap();
        assert_eq!(cycle.reported, 0, "nothing changed, nothing sent");
    }
    assert_eq!(w.api.health_reports.load(Ordering::SeqCst), 1);
    // The periodic refresh (5 min after the last send) goes out even without change.
    w.advance(120);
    assert_eq!(w.agent.check_once().await.unwrap().reported, 1);
}

#[tokio::test]
async fn trouble_is_reported_at_once_and_recovery_only_after_it_held() {
    let w = world().await;
    w.agent.reconcile_once().await.unwrap();
    w.agent.check_once().await.unwrap();
    w.advance(60);
    w.fault(FaultKind::CrashLoopBackOff);
    w.advance(10);
    assert_eq!(w.agent.check_once().await.unwrap().reported, 1);
    assert_eq!(w.object_status().await, Health::Failing);
    let health = w.broker.object_health(&w.admin, w.object).await.unwrap();
    let summary = health.agents[0].summary.as_ref().unwrap();
    assert!(
        summary.conditions.iter().any(|c| c == "CrashLoopBackOff"),
        "{summary:?}"
    );
    w.cluster.clear_faults();
    // Recovery is first seen now, and reported once it has held for 90 s.
    for _ in 0..2 {
        w.advance(60);
        assert_eq!(w.agent.check_once().await.unwrap().reported, 0);
        assert_eq!(w.object_status().await, Health::Failing, "held back");
    }
    w.advance(60);
    assert_eq!(w.agent.check_once().await.unwrap().reported, 1);
    assert_eq!(w.object_status().await, Health::Healthy);
}

#[tokio::test]
async fn after_an_outage_the_latest_state_is_sent_and_nothing_older() {
    let w = world().await;
    w.agent.reconcile_once().await.unwrap();
    w.agent.check_once().await.unwrap();
    w.api.down.store(true, Ordering::SeqCst);
    w.advance(60);
    w.fault(FaultKind::ImagePullBackOff);
    for _ in 0..5 {
        w.advance(60);
        assert!(matches!(
            w.agent.check_once().await,
            Err(Error::Unavailable(_))
        ));
        assert!(w.agent.heartbeat_once().await.is_err());
        assert_eq!(
            w.agent.queued_verdicts(),
            1,
            "one item per object, the newest"
        );
    }
    assert_eq!(
        w.object_status().await,
        Health::Healthy,
        "nothing got through"
    );
    w.api.down.store(false, Ordering::SeqCst);
    w.advance(60);
    let cycle = w.agent.check_once().await.unwrap();
    assert_eq!(cycle.reported, 1);
    assert_eq!(w.object_status().await, Health::Failing);
    let entry = &w
        .broker
        .object_health(&w.admin, w.object)
        .await
        .unwrap()
        .agents[0];
    assert_eq!(entry.checked_at, Some(w.clock.now()));
    w.agent.heartbeat_once().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_cluster_stops_the_health_clock_but_not_the_agent() {
    let w = world().await;
    w.agent.reconcile_once().await.unwrap();
    w.agent.check_once().await.unwrap();
    w.agent.heartbeat_once().await.unwrap();
    let before = w
        .broker
        .operational_status(&w.admin, w.agent_id)
        .await
        .unwrap();
    assert_eq!(before.health_checked_at, Some(t0()));
    w.cluster.inject(Fault {
        object: None,
        kind: FaultKind::ApiDown,
        from: w.clock.now(),
        until: None,
    });
    w.advance(60);
    let cycle = w.agent.check_once().await.unwrap();
    assert_eq!((cycle.observed, cycle.unreadable), (0, 1));
    w.agent.heartbeat_once().await.unwrap();
    let after = w
        .broker
        .operational_status(&w.admin, w.agent_id)
        .await
        .unwrap();
    assert_eq!(
        after.health_checked_at,
        Some(t0()),
        "no complete cycle since"
    );
    assert_eq!(after.snapshot.unwrap().k8s_api_healthy, Some(false));
}

#[tokio::test]
async fn diagnostics_are_collected_redacted_and_posted() {
    let w = world().await;
    w.agent.reconcile_once().await.unwrap();
    w.fault(FaultKind::OomKilled);
    w.advance(60);
    let requests = w
        .broker
        .request_diagnostics(&w.admin, w.object, Some(w.agent_id), "ops@example")
        .await
        .unwrap();
    let report = w.agent.diagnostics_once().await.unwrap();
    assert_eq!((report.claimed, report.posted), (1, 1));
    let view = w.broker.diagnostic(&w.admin, requests[0].id).await.unwrap();
    assert_eq!(view.request.status, DiagnosticStatus::Completed);
    let Some(DiagnosticOutcome::Bundle(bundle)) = view.result else {
        panic!("expected a bundle, got {:?}", view.result);
    };
    assert_eq!(bundle.pod_statuses.len(), 3);
    let app = &bundle.pod_statuses[0].container_statuses[0];
    assert_eq!(app.last_termination_reason.as_deref(), Some("OOMKilled"));
    assert!(bundle.events.iter().any(|e| e.reason == "OOMKilling"));
    assert!(
        bundle.log_tails.keys().any(|k| k.ends_with("/previous")),
        "{:?}",
        bundle.log_tails.keys()
    );
    // Redacted by the agent itself (the broker redacts again before storing).
    let DiagnosticOutcome::Bundle(raw) = w.agent.collect(w.object).await else {
        panic!("collection failed")
    };
    for tails in [&raw.log_tails, &bundle.log_tails] {
        let text = tails
            .values()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("[REDACTED]"), "{text}");
        assert!(!text.contains("s3cr3t-pa55"), "{text}");
        assert!(!text.contains("eyJhbGciOiJIUzI1NiJ9"), "{text}");
    }
    assert!(bundle.owner_chain[0].starts_with("Deployment/"));
    // Nothing left to do on the next poll.
    assert_eq!(
        w.agent.diagnostics_once().await.unwrap(),
        brokkr::agent::DiagnosticsReport::default()
    );
}

#[tokio::test]
async fn a_failed_collection_posts_a_failure_instead_of_holding_the_claim() {
    let w = world().await;
    w.agent.reconcile_once().await.unwrap();
    let requests = w
        .broker
        .request_diagnostics(&w.admin, w.object, Some(w.agent_id), "ops@example")
        .await
        .unwrap();
    w.cluster.inject(Fault {
        object: None,
        kind: FaultKind::ApiDown,
        from: w.clock.now(),
        until: None,
    });
    w.agent.diagnostics_once().await.unwrap();
    let view = w.broker.diagnostic(&w.admin, requests[0].id).await.unwrap();
    assert_eq!(view.request.status, DiagnosticStatus::Failed);
    let Some(DiagnosticOutcome::Failed(reason)) = view.result else {
        panic!("expected a failure, got {:?}", view.result);
    };
    assert!(reason.contains("could not read the cluster"), "{reason}");
}

#[tokio::test]
async fn a_result_that_could_not_be_posted_is_posted_on_the_next_poll() {
    let w = world().await;
    w.agent.reconcile_once().await.unwrap();
    let requests = w
        .broker
        .request_diagnostics(&w.admin, w.object, Some(w.agent_id), "ops@example")
        .await
        .unwrap();
    // Claimed and collected, but the post is lost.
    w.api.posts_fail.store(true, Ordering::SeqCst);
    assert!(w.agent.diagnostics_once().await.is_err());
    assert_eq!(w.agent.owed_results(), 1);
    let view = w.broker.diagnostic(&w.admin, requests[0].id).await.unwrap();
    assert_eq!(view.request.status, DiagnosticStatus::Claimed);
    w.api.posts_fail.store(false, Ordering::SeqCst);
    let report = w.agent.diagnostics_once().await.unwrap();
    assert_eq!((report.claimed, report.posted), (0, 1));
    assert_eq!(w.agent.owed_results(), 0);
    let view = w.broker.diagnostic(&w.admin, requests[0].id).await.unwrap();
    assert_eq!(view.request.status, DiagnosticStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agent_processes_racing_claim_each_request_exactly_once() {
    let w = world().await;
    w.agent.reconcile_once().await.unwrap();
    // Two processes with the same key (a botched rollout running two replicas), each
    // holding the same list of pending requests before either claims.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let racer = || async {
        let mut api = Flaky::new(
            LocalBroker::connect(w.broker.clone(), &w.agent_key)
                .await
                .unwrap(),
        );
        api.after_pending = Some(barrier.clone());
        let agent = new_agent(&w.cluster, Arc::new(api), &w.clock);
        agent.reconcile_once().await.unwrap();
        agent
    };
    let (first, second) = (racer().await, racer().await);
    let mut ids = Vec::new();
    for _ in 0..10 {
        let r = w
            .broker
            .request_diagnostics(&w.admin, w.object, Some(w.agent_id), "ops@example")
            .await
            .unwrap();
        ids.push(r[0].id);
    }
    let (a, b) = tokio::join!(
        tokio::spawn(async move { first.diagnostics_once().await }),
        tokio::spawn(async move { second.diagnostics_once().await })
    );
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    assert_eq!(a.claimed + b.claimed, 10, "each request once: {a:?} {b:?}");
    assert_eq!(a.posted + b.posted, 10);
    for id in ids {
        let view = w.broker.diagnostic(&w.admin, id).await.unwrap();
        assert_eq!(view.request.status, DiagnosticStatus::Completed);
    }
}

#[tokio::test]
async fn the_heartbeat_carries_the_cluster_snapshot() {
    let w = world().await;
    w.agent.reconcile_once().await.unwrap();
    w.cluster.inject(Fault {
        object: None,
        kind: FaultKind::NodeLoss(1),
        from: w.clock.now(),
        until: None,
    });
    w.advance(45);
    w.agent.heartbeat_once().await.unwrap();
    let status = w
        .broker
        .operational_status(&w.admin, w.agent_id)
        .await
        .unwrap();
    let s = status.snapshot.unwrap();
    assert_eq!((s.node_count, s.node_ready_count), (Some(3), Some(2)));
    assert_eq!(s.cluster_cpu_capacity, Some(12_000));
    assert_eq!(s.cluster_cpu_available, Some(12_000 - 3 * 100));
    assert_eq!(s.k8s_api_healthy, Some(true));
    assert_eq!(s.agent_uptime_seconds, Some(45));
    assert_eq!(status.last_heartbeat_at, Some(w.clock.now()));
}

#[tokio::test]
async fn an_overcommitted_cluster_still_gets_its_heartbeat_through() {
    let w = world().await;
    // 200 pods requesting 100m each on one 4-core node: more requested than allocatable.
    let crowded = Arc::new(SimulatedCluster::new(
        Arc::new(w.clock.clone()),
        SimulationConfig {
            pods_per_object: 200,
            nodes: 1,
            ..SimulationConfig::default()
        },
    ));
    let agent = new_agent(&crowded, w.api.clone(), &w.clock);
    agent.reconcile_once().await.unwrap();
    agent.heartbeat_once().await.unwrap();
    let status = w
        .broker
        .operational_status(&w.admin, w.agent_id)
        .await
        .unwrap();
    let s = status.snapshot.unwrap();
    assert_eq!(s.cluster_cpu_capacity, Some(4_000));
    assert_eq!(
        s.cluster_cpu_available,
        Some(0),
        "no headroom, not negative"
    );
    assert_eq!(status.last_heartbeat_at, Some(w.clock.now()));
}

#[tokio::test]
async fn pods_on_a_lost_node_make_the_object_unknown_not_healthy() {
    let w = world().await;
    w.agent.reconcile_once().await.unwrap();
    w.agent.check_once().await.unwrap();
    w.cluster.inject(Fault {
        object: None,
        kind: FaultKind::NodeLoss(0),
        from: w.clock.now(),
        until: None,
    });
    w.advance(60);
    w.agent.check_once().await.unwrap();
    assert_eq!(w.object_status().await, Health::Unknown);
}

#[tokio::test]
async fn the_loops_run_until_shutdown() {
    // Real time, short intervals: the loops themselves, not the policies.
    let w = world().await;
    let config = AgentConfig {
        heartbeat_interval: Duration::milliseconds(20),
        check_interval: Duration::milliseconds(20),
        diagnostics_poll: Duration::milliseconds(20),
        reconcile_interval: Duration::milliseconds(20),
        recover_after: Duration::milliseconds(50),
        ..AgentConfig::default()
    };
    let agent = Agent::new(w.cluster.clone(), w.api.clone(), w.clock.clone(), config)
        .unwrap()
        .with_applier(w.cluster.clone());
    let request = w
        .broker
        .request_diagnostics(&w.admin, w.object, Some(w.agent_id), "ops@example")
        .await
        .unwrap()[0]
        .id;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(agent.run(async move {
        let _ = stopped.await;
    }));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let done = w.broker.diagnostic(&w.admin, request).await.unwrap();
        let health = w.object_status().await;
        if done.request.status == DiagnosticStatus::Completed && health == Health::Healthy {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the loops did not run"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), running)
        .await
        .expect("shutdown finishes")
        .unwrap();
    let status = w
        .broker
        .operational_status(&w.admin, w.agent_id)
        .await
        .unwrap();
    assert!(status.last_heartbeat_at.is_some());
}

impl World {
    /// A second stack the agent targets, with one object; its id.
    async fn second_object(&self) -> DeploymentObjectId {
        use brokkr::core::model::{NewDeploymentObject, NewStack, NewTarget};
        let stack = self
            .broker
            .create_stack(
                &self.admin,
                NewStack {
                    name: "more".into(),
                    labels: std::collections::BTreeMap::default(),
                },
            )
            .await
            .unwrap();
        self.broker
            .target(&self.admin, self.agent_id, NewTarget { stack_id: stack.id })
            .await
            .unwrap();
        self.broker
            .add_deployment_object(
                &self.admin,
                stack.id,
                NewDeploymentObject {
                    yaml_content: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n"
                        .into(),
                    is_deletion: false,
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn status_of(&self, object: DeploymentObjectId) -> Health {
        self.broker
            .object_health(&self.admin, object)
            .await
            .unwrap()
            .status
    }
}

#[tokio::test]
async fn a_refused_batch_is_sent_again_item_by_item_and_nothing_refused_counts_as_delivered() {
    let w = world().await;
    let second = w.second_object().await;
    w.agent.reconcile_once().await.unwrap();
    // The broker takes no batch of two, and never the first object (a value its store
    // refuses): the second object's verdict still arrives, one by one.
    w.api.refuse_batches.store(true, Ordering::SeqCst);
    *w.api.refused_object.lock().unwrap() = Some(w.object);
    let cycle = w.agent.check_once().await.unwrap();
    assert_eq!(cycle.observed, 2);
    assert_eq!(cycle.reported, 1, "only what the broker took");
    assert_eq!(w.status_of(second).await, Health::Healthy);
    assert_eq!(w.object_status().await, Health::Unknown, "never reported");
    assert_eq!(
        w.agent.queued_verdicts(),
        1,
        "the refused verdict is kept, not dropped"
    );
    // Once the broker takes it, it goes out with the next cycle, unchanged as it is.
    *w.api.refused_object.lock().unwrap() = None;
    w.advance(60);
    let cycle = w.agent.check_once().await.unwrap();
    assert_eq!(cycle.reported, 1);
    assert_eq!(w.object_status().await, Health::Healthy);
    assert_eq!(w.agent.queued_verdicts(), 0);
}

#[tokio::test]
async fn refused_status_events_are_retried_per_object_and_kept() {
    let w = world().await;
    let second = w.second_object().await;
    w.api.refuse_batches.store(true, Ordering::SeqCst);
    *w.api.refused_object.lock().unwrap() = Some(w.object);
    let report = w.agent.reconcile_once().await.unwrap();
    assert_eq!(report.applied, 2);
    let state = |id| {
        let broker = w.broker.clone();
        let admin = w.admin;
        async move {
            let view = broker.deployment_object(&admin, id).await.unwrap();
            view.deliveries.first().map(|d| d.state)
        }
    };
    assert_eq!(
        state(second).await,
        Some(DeliveryState::Applied),
        "the second object's history went out alone"
    );
    assert_ne!(state(w.object).await, Some(DeliveryState::Applied));
    // Allowed again: the kept events of the first object go out with the next cycle.
    *w.api.refused_object.lock().unwrap() = None;
    w.api.refuse_batches.store(false, Ordering::SeqCst);
    w.advance(60);
    let again = w.agent.reconcile_once().await.unwrap();
    assert!(again.reported >= 1, "{again:?}");
    assert_eq!(state(w.object).await, Some(DeliveryState::Applied));
}

#[tokio::test]
async fn one_unreadable_object_does_not_stop_the_health_clock() {
    let w = world().await;
    let second = w.second_object().await;
    w.agent.reconcile_once().await.unwrap();
    w.fault_on(second, FaultKind::ApiDown);
    let cycle = w.agent.check_once().await.unwrap();
    assert_eq!((cycle.observed, cycle.unreadable), (1, 1));
    w.agent.heartbeat_once().await.unwrap();
    let status = w
        .broker
        .operational_status(&w.admin, w.agent_id)
        .await
        .unwrap();
    assert_eq!(status.health_checked_at, Some(t0()), "the cycle counts");
    assert_eq!(w.object_status().await, Health::Healthy);
}
