//! The agent: four loops over one cluster and one broker.
//!
//! * reconcile: fetch the target state, apply what is new or due for a retry, report
//!   each attempt;
//! * health: classify every object of the target state, report what changed;
//! * diagnostics: claim pending requests, collect, post the bundle (or why not);
//! * heartbeat: liveness plus the cluster snapshot.
//!
//! Each loop calls one public `*_once` method, so tests and hosts can drive cycles
//! themselves. Broker errors never stop a loop: what could not be sent is kept (bounded:
//! the newest per object) and sent with the next cycle that gets through.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::collect;
use super::config::AgentConfig;
use super::reconcile::{Backoff, Reconciler};
use super::reporting::HealthReporter;
use brokkr_core::api::BrokerApi;
use brokkr_core::clock::Clock;
use brokkr_core::error::{Error, Result};
use brokkr_core::health::{Health, classify};
use brokkr_core::ids::{DeploymentObjectId, DiagnosticId};
use brokkr_core::model::{
    ClusterSnapshot, DeploymentObject, DiagnosticBundle, DiagnosticOutcome, HealthReport,
    HealthReportItem, HealthSummary, Heartbeat,
};
use brokkr_core::probe::{Applier, ClusterProbe, ClusterState, ProbeError};
use brokkr_core::redact::{LINE_CAP, redact_lines};

/// What one reconcile cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Objects in the target state.
    pub desired: usize,
    /// Apply attempts that succeeded.
    pub applied: usize,
    /// Apply attempts that failed.
    pub failed: usize,
    /// Status events the broker took.
    pub reported: usize,
}

/// What one health cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Objects classified.
    pub observed: usize,
    /// Objects the cluster could not be asked about this time.
    pub unreadable: usize,
    /// Objects not judged yet because they are not applied yet.
    pub pending: usize,
    /// Verdicts the broker took.
    pub reported: usize,
}

/// What one diagnostics cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiagnosticsReport {
    /// Requests this agent claimed.
    pub claimed: usize,
    /// Results the broker took.
    pub posted: usize,
}

#[derive(Debug)]
struct State {
    /// The target state last fetched (`None` before the first fetch).
    desired: Option<Vec<DeploymentObject>>,
    reconciler: Reconciler,
    reporter: HealthReporter,
    /// Results collected but not yet taken by the broker.
    results: BTreeMap<DiagnosticId, DiagnosticOutcome>,
    /// Claims whose outcome is unknown (the broker could not be reached): retried with
    /// the same token.
    claiming: BTreeMap<DiagnosticId, DeploymentObjectId>,
    /// When the last health cycle that read every object finished.
    last_check: Option<DateTime<Utc>>,
    /// When the broker last took a heartbeat.
    last_heartbeat: Option<DateTime<Utc>>,
}

struct Inner<P, B, C> {
    probe: P,
    broker: B,
    clock: C,
    applier: OnceLock<Arc<dyn Applier>>,
    config: AgentConfig,
    started_at: DateTime<Utc>,
    /// Claim tokens are `<instance>-<request>`: a retried claim of this process is
    /// recognised, a restarted process is a different claimer.
    instance: String,
    state: Mutex<State>,
}

/// The agent runtime, generic over the cluster, the broker and the clock.
pub struct Agent<P, B, C> {
    inner: Arc<Inner<P, B, C>>,
}

impl<P, B, C> Clone for Agent<P, B, C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Longest failure reason posted (the broker takes up to 4096 characters).
const MAX_FAILURE_REASON: usize = 1024;

fn failure_reason(reason: &str) -> String {
    reason.chars().take(MAX_FAILURE_REASON).collect()
}

/// Largest health request body the agent sends (the broker takes up to 1 MiB).
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Verdicts in requests of at most [`MAX_BATCH_BYTES`] (one item always fits: a
/// summary is bounded).
fn batches(items: Vec<HealthReportItem>) -> Vec<Vec<HealthReportItem>> {
    let mut out: Vec<Vec<HealthReportItem>> = Vec::new();
    let mut size = 0;
    for item in items {
        let bytes = serde_json::to_vec(&item).map_or(0, |v| v.len());
        match out.last_mut() {
            Some(batch) if size + bytes <= MAX_BATCH_BYTES => {
                batch.push(item);
                size += bytes;
            }
            _ => {
                out.push(vec![item]);
                size = bytes;
            }
        }
    }
    out
}

/// Whether a broker error means "keep it and try again" rather than "refused".
fn retryable(error: &Error) -> bool {
    matches!(error, Error::Unavailable(_) | Error::Unauthorized)
}

impl<P, B, C> Agent<P, B, C>
where
    P: ClusterProbe + 'static,
    B: BrokerApi + 'static,
    C: Clock,
{
    /// An agent reading `probe`, reporting to `broker`. Without an applier (see
    /// [`Self::with_applier`]) it reports health and diagnostics of what someone else
    /// applies.
    pub fn new(probe: P, broker: B, clock: C, config: AgentConfig) -> Result<Self> {
        config.validate()?;
        let now = clock.now();
        let backoff = Backoff {
            base: config.apply_backoff,
            max: config.apply_backoff_max,
        };
        let reporter = HealthReporter::new(config.recover_after, config.refresh_interval);
        Ok(Self {
            inner: Arc::new(Inner {
                probe,
                broker,
                clock,
                applier: OnceLock::new(),
                started_at: now,
                instance: uuid::Uuid::new_v4().simple().to_string(),
                state: Mutex::new(State {
                    desired: None,
                    reconciler: Reconciler::new(backoff),
                    reporter,
                    results: BTreeMap::new(),
                    claiming: BTreeMap::new(),
                    last_check: None,
                    last_heartbeat: None,
                }),
                config,
            }),
        })
    }

    /// Applies the target state through `applier` (the first one set stays).
    #[must_use]
    pub fn with_applier(self, applier: Arc<dyn Applier>) -> Self {
        let _ = self.inner.applier.set(applier);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.inner.config
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the maps half-written in a way that matters
        // more than stopping the agent would.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Runs every loop until `shutdown` completes, then lets running cycles finish.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let (stop, stopped) = watch::channel(false);
        let mut loops = JoinSet::new();
        let c = &self.inner.config;
        let every = [
            ("reconcile", c.reconcile_interval),
            ("health", c.check_interval),
            ("diagnostics", c.diagnostics_poll),
            ("heartbeat", c.heartbeat_interval),
        ];
        for (name, period) in every {
            let agent = self.clone();
            let stopped = stopped.clone();
            loops.spawn(async move { agent.repeat(name, period, stopped).await });
        }
        shutdown.await;
        let _ = stop.send(true);
        while loops.join_next().await.is_some() {}
        tracing::info!("agent stopped");
    }

    async fn repeat(
        &self,
        name: &'static str,
        period: Duration,
        mut stopped: watch::Receiver<bool>,
    ) {
        let period = period.to_std().unwrap_or(std::time::Duration::from_secs(1));
        let grace = self
            .inner
            .config
            .shutdown_grace
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(5));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                _ = ticker.tick() => {}
            }
            let cycle = self.cycle(name);
            tokio::pin!(cycle);
            let outcome = tokio::select! {
                outcome = &mut cycle => outcome,
                _ = stopped.changed() => {
                    // Shutting down: the cycle gets a grace period, then is dropped (what
                    // it did not send is lost with the process, as on a crash).
                    match tokio::time::timeout(grace, &mut cycle).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(Error::Unavailable("cut short by shutdown".into())),
                    }
                }
            };
            match outcome {
                Ok(done) => tracing::debug!(cycle = name, %done, "cycle done"),
                Err(error) => tracing::warn!(cycle = name, %error, "cycle failed; will retry"),
            }
            if *stopped.borrow() {
                break;
            }
        }
    }

    async fn cycle(&self, name: &str) -> Result<String> {
        match name {
            "reconcile" => self.reconcile_once().await.map(|r| format!("{r:?}")),
            "health" => self.check_once().await.map(|r| format!("{r:?}")),
            "diagnostics" => self.diagnostics_once().await.map(|r| format!("{r:?}")),
            _ => self.heartbeat_once().await.map(|()| String::new()),
        }
    }

    /// A probe call bounded by `probe_timeout`.
    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = std::result::Result<T, ProbeError>>,
    ) -> std::result::Result<T, ProbeError> {
        let limit = self
            .inner
            .config
            .probe_timeout
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(30));
        tokio::time::timeout(limit, call)
            .await
            .unwrap_or_else(|_| Err(ProbeError::Timeout(format!("{what} took too long"))))
    }

    // ------------------------------------------------------------ heartbeat

    /// The heartbeat the agent would send now.
    pub async fn snapshot(&self) -> Heartbeat {
        let cluster = self
            .bounded(
                "reading the cluster state",
                self.inner.probe.cluster_state(),
            )
            .await;
        let now = self.now();
        let (errors, last_success, checked) = {
            let s = self.state();
            (
                s.reconciler.errors_total(),
                s.reconciler.last_success(),
                s.last_check,
            )
        };
        let mut snapshot = ClusterSnapshot {
            agent_uptime_seconds: Some((now - self.inner.started_at).num_seconds().max(0)),
            reconciliation_errors_total: Some(i64::try_from(errors).unwrap_or(i64::MAX)),
            last_successful_reconcile: last_success,
            k8s_api_healthy: Some(cluster.is_ok()),
            ..ClusterSnapshot::default()
        };
        match cluster.map(ClusterState::clamped) {
            Ok(c) => {
                snapshot.node_count = c.node_count;
                snapshot.node_ready_count = c.node_ready_count;
                snapshot.cluster_cpu_capacity = c.cpu_capacity_millis;
                snapshot.cluster_cpu_available = c.cpu_available_millis;
                snapshot.cluster_memory_capacity = c.memory_capacity_bytes;
                snapshot.cluster_memory_available = c.memory_available_bytes;
                snapshot.k8s_api_latency_ms = c.api_latency_ms;
            }
            Err(error) => tracing::warn!(%error, "cluster state unavailable"),
        }
        Heartbeat {
            snapshot,
            health_checked_at: checked,
        }
    }

    /// Sends one heartbeat.
    pub async fn heartbeat_once(&self) -> Result<()> {
        let beat = self.snapshot().await;
        self.inner.broker.heartbeat(&beat).await?;
        self.state().last_heartbeat = Some(self.now());
        Ok(())
    }

    /// When the broker last took a heartbeat (for a readiness probe: an agent that
    /// cannot reach its broker is not doing its job).
    pub fn last_heartbeat(&self) -> Option<DateTime<Utc>> {
        self.state().last_heartbeat
    }

    // ------------------------------------------------------------ reconcile

    /// Fetches the target state, applies what is due, reports the attempts.
    pub async fn reconcile_once(&self) -> Result<ReconcileReport> {
        let fetched = self.inner.broker.target_state().await;
        let mut report = ReconcileReport::default();
        if let Ok(desired) = &fetched {
            report.desired = desired.len();
            let due = {
                let mut s = self.state();
                s.desired = Some(desired.clone());
                let ids: HashSet<_> = desired.iter().map(|o| o.id).collect();
                s.reporter.retain(&ids);
                match self.inner.applier.get() {
                    Some(_) => s.reconciler.plan(desired, self.now()),
                    None => Vec::new(),
                }
            };
            if let Some(applier) = self.inner.applier.get() {
                for object in due {
                    let started = self.now();
                    let clock = std::time::Instant::now();
                    let result = applier.apply(&object).await;
                    let took = Duration::from_std(clock.elapsed()).unwrap_or(Duration::zero());
                    match &result {
                        Ok(()) => report.applied += 1,
                        Err(error) => {
                            report.failed += 1;
                            tracing::warn!(object = %object.id, %error, "apply failed");
                        }
                    }
                    self.state().reconciler.record(
                        object.id,
                        result,
                        started,
                        took,
                        brokkr_core::retry::jitter(),
                    );
                }
            }
        }
        // Reports of earlier cycles go out even when this fetch failed.
        let flushed = self.flush_status().await;
        fetched?;
        report.reported = flushed?;
        Ok(report)
    }

    async fn flush_status(&self) -> Result<usize> {
        let events = self.state().reconciler.unsent();
        if events.is_empty() {
            return Ok(0);
        }
        match self.inner.broker.report_deployment_status(&events).await {
            Ok(result) => {
                for r in &result.rejected {
                    tracing::warn!(object = %r.id, reason = %r.reason, "status event refused");
                }
                self.state().reconciler.delivered(&events);
                Ok(events.len())
            }
            Err(error) if retryable(&error) => Err(error),
            Err(error) => {
                tracing::warn!(%error, "status events refused; dropped");
                self.state().reconciler.delivered(&events);
                Err(error)
            }
        }
    }

    // ------------------------------------------------------------ health

    async fn desired(&self) -> Result<Vec<DeploymentObject>> {
        if let Some(desired) = self.state().desired.clone() {
            return Ok(desired);
        }
        let desired = self.inner.broker.target_state().await?;
        self.state().desired = Some(desired.clone());
        Ok(desired)
    }

    /// Classifies every object of the target state and reports what changed.
    pub async fn check_once(&self) -> Result<CheckReport> {
        let desired = self.desired().await?;
        let now = self.now();
        let mut report = CheckReport::default();
        for object in &desired {
            // An object this agent applies is judged once it is applied: before that,
            // "nothing found" would read as a failure that is only a delivery in
            // progress (its deployment status tells that story).
            if self.inner.applier.get().is_some() && !self.state().reconciler.is_applied(object.id)
            {
                report.pending += 1;
                continue;
            }
            match self
                .bounded("observing an object", self.inner.probe.observe(object))
                .await
            {
                Ok(mut observations) => {
                    observations.deletion = object.is_deletion;
                    let verdict = classify(&observations, now, &self.inner.config.health_policy);
                    self.state().reporter.observe(object.id, &verdict, now);
                    report.observed += 1;
                }
                Err(ProbeError::Forbidden(message)) => {
                    // RBAC keeps us from looking: say so instead of guessing.
                    let summary = HealthSummary {
                        conditions: vec!["NotAssessed".to_owned()],
                        findings: vec![serde_json::json!({
                            "code": "NotAssessed",
                            "severity": "unknown",
                            "message": message,
                        })],
                        ..HealthSummary::default()
                    };
                    self.state()
                        .reporter
                        .observe_summary(object.id, Health::Unknown, summary, now);
                    report.observed += 1;
                }
                Err(error) => {
                    tracing::warn!(object = %object.id, %error, "could not observe");
                    report.unreadable += 1;
                }
            }
        }
        if report.unreadable == 0 {
            self.state().last_check = Some(now);
        }
        report.reported = self.flush_health().await?;
        Ok(report)
    }

    async fn flush_health(&self) -> Result<usize> {
        let items = self.state().reporter.queued();
        let mut sent = 0;
        for batch in batches(items) {
            let report = HealthReport {
                deployment_objects: batch,
            };
            match self.inner.broker.report_health(&report).await {
                Ok(result) => {
                    for r in &result.rejected {
                        tracing::warn!(object = %r.id, reason = %r.reason, "verdict refused");
                    }
                }
                Err(error) if retryable(&error) => return Err(error),
                Err(error) => tracing::warn!(%error, "verdicts refused; dropped"),
            }
            self.state().reporter.delivered(&report.deployment_objects);
            sent += report.deployment_objects.len();
        }
        Ok(sent)
    }

    // ------------------------------------------------------------ diagnostics

    /// Posts results still owed, finishes claims whose answer was lost, then claims,
    /// collects and answers new requests.
    pub async fn diagnostics_once(&self) -> Result<DiagnosticsReport> {
        let mut report = DiagnosticsReport::default();
        let owed: Vec<_> = self.state().results.keys().copied().collect();
        for id in owed {
            report.posted += usize::from(self.post(id).await?);
        }
        let unfinished: Vec<_> = self
            .state()
            .claiming
            .iter()
            .map(|(id, object)| (*id, *object))
            .collect();
        let pending = self.inner.broker.pending_diagnostics().await?;
        let fresh = pending
            .into_iter()
            .map(|p| (p.id, p.deployment_object_id))
            .filter(|(id, _)| !unfinished.iter().any(|(u, _)| u == id));
        for (id, object) in unfinished.clone().into_iter().chain(fresh) {
            let token = format!("{}-{id}", self.inner.instance);
            match self.inner.broker.claim_diagnostic(id, &token).await {
                Ok(()) => {
                    self.state().claiming.remove(&id);
                    report.claimed += 1;
                }
                Err(error) if retryable(&error) => {
                    // The claim may have gone through with its answer lost: retry it
                    // with the same token next time (the broker recognises it).
                    self.state().claiming.insert(id, object);
                    return Err(error);
                }
                Err(error) => {
                    // Claimed by someone else, expired, or gone: not ours to answer.
                    self.state().claiming.remove(&id);
                    tracing::debug!(request = %id, %error, "not claimed");
                    continue;
                }
            }
            // Redacted here already: secrets never leave the cluster.
            let outcome = self.collect(object).await.redacted();
            self.state().results.insert(id, outcome);
            report.posted += usize::from(self.post(id).await?);
        }
        Ok(report)
    }

    /// Posts a collected result; `Ok(false)` when the broker refused it for good. A
    /// refused bundle is replaced by a failure saying so, so the request does not stay
    /// claimed until it expires.
    async fn post(&self, id: DiagnosticId) -> Result<bool> {
        let Some(outcome) = self.state().results.get(&id).cloned() else {
            return Ok(false);
        };
        match self.inner.broker.post_diagnostic_result(id, &outcome).await {
            Ok(()) => {
                self.state().results.remove(&id);
                Ok(true)
            }
            Err(error) if retryable(&error) => Err(error),
            Err(Error::Invalid(fields)) if matches!(outcome, DiagnosticOutcome::Bundle(_)) => {
                let reason = failure_reason(&format!(
                    "the broker refused the bundle: {}",
                    Error::Invalid(fields)
                ));
                tracing::warn!(request = %id, %reason, "bundle refused; posting a failure");
                self.state()
                    .results
                    .insert(id, DiagnosticOutcome::Failed(reason));
                Box::pin(self.post(id)).await
            }
            Err(error) => {
                tracing::warn!(request = %id, %error, "result refused; dropped");
                self.state().results.remove(&id);
                Ok(false)
            }
        }
    }

    /// Collects a bundle for one object; a failure becomes a `failed` outcome with the
    /// reason, so the request never stays claimed for nothing.
    pub async fn collect(&self, id: DeploymentObjectId) -> DiagnosticOutcome {
        match self.try_collect(id).await {
            Ok(bundle) => DiagnosticOutcome::Bundle(bundle),
            Err(reason) => DiagnosticOutcome::Failed(failure_reason(&reason)),
        }
    }

    async fn try_collect(
        &self,
        id: DeploymentObjectId,
    ) -> std::result::Result<DiagnosticBundle, String> {
        let c = &self.inner.config;
        let desired = self
            .desired()
            .await
            .map_err(|e| format!("could not fetch the target state: {e}"))?;
        let object = desired.into_iter().find(|o| o.id == id).ok_or_else(|| {
            "the deployment object is not in this agent's target state".to_owned()
        })?;
        let observations = self
            .bounded("observing the object", self.inner.probe.observe(&object))
            .await
            .map_err(|e| format!("could not read the cluster: {e}"))?;
        let now = self.now();
        let resources = &observations.resources;
        let scope = collect::event_scope(resources, now - c.event_lookback);
        let events = match self
            .bounded("reading events", self.inner.probe.events(&scope))
            .await
        {
            Ok(events) => collect::event_reports(events, &scope),
            Err(error) => {
                tracing::warn!(object = %id, %error, "events unavailable");
                Vec::new()
            }
        };
        let mut log_tails = BTreeMap::new();
        for (key, query) in collect::log_queries(resources, c.log_tail_lines, c.log_tail_bytes) {
            let lines = match self
                .bounded("reading a log tail", self.inner.probe.log_tail(&query))
                .await
            {
                Ok(lines) => {
                    let skip = lines.len().saturating_sub(c.log_tail_lines as usize);
                    redact_lines(&lines[skip..], LINE_CAP)
                }
                // A previous instance whose log is gone: nothing to show.
                Err(ProbeError::NotFound(_)) => continue,
                Err(error) => vec![format!("[log unavailable: {error}]")],
            };
            log_tails.insert(key, lines);
        }
        let mut bundle = DiagnosticBundle {
            collected_at: now,
            pod_statuses: collect::pod_reports(resources),
            events,
            log_tails,
            owner_chain: collect::owner_chain(resources),
            truncated: false,
        };
        collect::fit(&mut bundle, c.max_bundle_bytes);
        Ok(bundle)
    }

    /// Diagnostics results collected but not yet taken by the broker.
    pub fn owed_results(&self) -> usize {
        self.state().results.len()
    }

    /// Verdicts waiting to be sent.
    pub fn queued_verdicts(&self) -> usize {
        self.state().reporter.queued().len()
    }
}
