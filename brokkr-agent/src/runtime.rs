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

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::AgentConfig;
use super::reconcile::{Backoff, Reconciler};
use super::reporting::HealthReporter;
use brokkr_core::api::BrokerApi;
use brokkr_core::clock::Clock;
use brokkr_core::error::{Error, Result};
use brokkr_core::ids::{DeploymentObjectId, DiagnosticId};
use brokkr_core::model::{ClusterSnapshot, DeploymentObject, DiagnosticOutcome, Heartbeat};
use brokkr_core::probe::{Applier, ClusterProbe, ClusterState, ProbeError};

mod diagnostics;
mod health;
mod reconciling;

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

    /// Verdicts waiting to be sent.
    pub fn queued_verdicts(&self) -> usize {
        self.state().reporter.queued().len()
    }
}
