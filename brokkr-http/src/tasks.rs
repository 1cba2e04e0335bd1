//! The broker's background jobs, started together and stopped together through one
//! handle: [`BrokerTasks::spawn`] and [`BrokerTasks::shutdown`].
//!
//! | job | what | every |
//! |---|---|---|
//! | staleness watcher | announces agents' fresh → stale → lost changes to the outbox | `staleness_every` (15 s) |
//! | cleanup | expired diagnostics and fleet events past retention | `cleanup_every` (15 min) |
//! | event relay | outbox → live streams (`GET /api/v1/events`) and webhooks | polls while idle |
//! | webhook dispatcher (feature `webhooks`) | signed deliveries of fleet events | as events come |
//!
//! All of them are safe on every replica. The fleet summary refresher is not among
//! them: it runs only while someone reads the summary and stops by itself.

use std::time::Duration;

use brokkr_core::broker::Broker;
use brokkr_core::store::Store;
use tokio::task::JoinHandle;

use crate::metrics::{self, Telemetry};

/// How often the jobs run. Start from `TaskConfig::default()` and set fields: the struct
/// is non-exhaustive, so enabling feature `webhooks` (which adds a field) never breaks a
/// build.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TaskConfig {
    /// Between staleness passes (15 s).
    pub staleness_every: Duration,
    /// Between cleanups (15 min).
    pub cleanup_every: Duration,
    /// Webhook deliveries; `None` starts no dispatcher.
    #[cfg(feature = "webhooks")]
    pub webhooks: Option<crate::webhooks::WebhookConfig>,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            staleness_every: Duration::from_secs(15),
            cleanup_every: Duration::from_mins(15),
            #[cfg(feature = "webhooks")]
            webhooks: Some(crate::webhooks::WebhookConfig::default()),
        }
    }
}

/// The running jobs of one broker process. Dropping it stops them too, as `shutdown`
/// does (the event relay and open event streams included), without waiting; `shutdown`
/// also waits until they have ended.
#[derive(Debug)]
pub struct BrokerTasks {
    telemetry: Telemetry,
    jobs: Vec<(&'static str, JoinHandle<()>)>,
}

impl BrokerTasks {
    /// Starts every job for `broker`, feeding `telemetry` (its metrics and its event
    /// hub: give the router the same one). Needs a Tokio runtime.
    pub fn spawn(broker: &Broker<dyn Store>, telemetry: &Telemetry, config: &TaskConfig) -> Self {
        #[allow(unused_mut)] // one more job with feature `webhooks`
        let mut jobs = vec![
            (
                "staleness watcher",
                crate::events::spawn_staleness_watch(broker.clone(), config.staleness_every),
            ),
            (
                "cleanup",
                spawn_cleanup(
                    broker.clone(),
                    config.cleanup_every,
                    Some(telemetry.metrics.clone()),
                ),
            ),
        ];
        telemetry.events.ensure_relay(broker.clone());
        #[cfg(feature = "webhooks")]
        if let Some(webhooks) = &config.webhooks {
            jobs.push((
                "webhook dispatcher",
                crate::webhooks::spawn_webhook_dispatcher(
                    broker.clone(),
                    telemetry,
                    webhooks.clone(),
                ),
            ));
        }
        Self {
            telemetry: telemetry.clone(),
            jobs,
        }
    }

    /// The jobs started, by name (the event relay belongs to the telemetry's hub).
    pub fn names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|(name, _)| *name).collect()
    }

    /// Stops every job (and ends open event streams and the relay), then waits for
    /// them to end.
    pub async fn shutdown(mut self) {
        self.telemetry.events.close();
        for (name, job) in std::mem::take(&mut self.jobs) {
            job.abort();
            if let Err(error) = job.await
                && !error.is_cancelled()
            {
                tracing::warn!(job = name, %error, "background job failed");
            }
        }
    }
}

impl Drop for BrokerTasks {
    fn drop(&mut self) {
        self.telemetry.events.close();
        for (_, job) in &self.jobs {
            job.abort();
        }
    }
}

/// Runs diagnostics cleanup (and deletes fleet events past retention) every `every`
/// until the process ends (safe on every replica), counting diagnostics runs and
/// deletions in `metrics`.
pub fn spawn_cleanup(
    broker: Broker<dyn Store>,
    every: Duration,
    metrics: Option<std::sync::Arc<metrics::Metrics>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(every);
        loop {
            ticker.tick().await;
            if let Err(err) = broker.cleanup_events().await {
                tracing::warn!(error = %err, "events cleanup failed");
            }
            let outcome = broker.cleanup().await;
            if let Some(metrics) = &metrics {
                metrics.cleanup(outcome.as_ref().map(|n| *n).map_err(|_| ()));
            }
            match outcome {
                Ok(deleted) if deleted > 0 => tracing::info!(deleted, "diagnostics cleanup"),
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "diagnostics cleanup failed"),
            }
        }
    })
}
