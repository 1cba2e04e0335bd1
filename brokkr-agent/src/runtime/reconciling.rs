//! The reconcile loop: fetch the target state, apply, report each attempt.

use std::collections::{BTreeMap, HashSet};

use chrono::Duration;

use super::{Agent, ReconcileReport, retryable};
use brokkr_core::api::BrokerApi;
use brokkr_core::clock::Clock;
use brokkr_core::error::Result;
use brokkr_core::ids::DeploymentObjectId;
use brokkr_core::model::{DeploymentObject, DeploymentStatusEvent};
use brokkr_core::probe::ClusterProbe;

impl<P, B, C> Agent<P, B, C>
where
    P: ClusterProbe + 'static,
    B: BrokerApi + 'static,
    C: Clock,
{
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

    /// Sends the reconcile outcomes not yet taken. Only what the broker took is marked
    /// delivered: events it rejects stay (sent again next time, and logged), and a batch
    /// it refuses as a whole is sent again one object's history at a time.
    pub(super) async fn flush_status(&self) -> Result<usize> {
        let events = self.state().reconciler.unsent();
        if events.is_empty() {
            return Ok(0);
        }
        match self.send_status(events.clone()).await {
            Ok(sent) => Ok(sent),
            Err(error) if retryable(&error) => Err(error),
            Err(error) => {
                tracing::warn!(%error, "status events refused; sending them object by object");
                let mut by_object: BTreeMap<DeploymentObjectId, Vec<DeploymentStatusEvent>> =
                    BTreeMap::new();
                for event in events {
                    by_object
                        .entry(event.deployment_object_id)
                        .or_default()
                        .push(event);
                }
                let mut sent = 0;
                for (_, history) in by_object {
                    match self.send_status(history).await {
                        Ok(n) => sent += n,
                        Err(error) if retryable(&error) => return Err(error),
                        Err(error) => tracing::warn!(%error, "status events refused; kept"),
                    }
                }
                Ok(sent)
            }
        }
    }

    /// One request; marks delivered what the broker did not reject and returns how many.
    async fn send_status(&self, events: Vec<DeploymentStatusEvent>) -> Result<usize> {
        let result = self.inner.broker.report_deployment_status(&events).await?;
        for r in &result.rejected {
            tracing::warn!(object = %r.id, reason = %r.reason, "status event refused; kept");
        }
        let refused: HashSet<_> = result.rejected.iter().map(|r| r.id).collect();
        let taken: Vec<_> = events
            .into_iter()
            .filter(|e| !refused.contains(&e.deployment_object_id))
            .collect();
        self.state().reconciler.delivered(&taken);
        Ok(taken.len())
    }

    // ------------------------------------------------------------ health

    pub(super) async fn desired(&self) -> Result<Vec<DeploymentObject>> {
        if let Some(desired) = self.state().desired.clone() {
            return Ok(desired);
        }
        let desired = self.inner.broker.target_state().await?;
        self.state().desired = Some(desired.clone());
        Ok(desired)
    }
}
