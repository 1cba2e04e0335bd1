//! The health loop: classify every object of the target state, report what changed.

use std::collections::HashSet;

use super::{Agent, CheckReport, retryable};
use brokkr_core::api::BrokerApi;
use brokkr_core::clock::Clock;
use brokkr_core::error::Result;
use brokkr_core::health::{Health, classify};
use brokkr_core::model::{HealthReport, HealthReportItem, HealthSummary};
use brokkr_core::probe::{ClusterProbe, ProbeError};

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

impl<P, B, C> Agent<P, B, C>
where
    P: ClusterProbe + 'static,
    B: BrokerApi + 'static,
    C: Clock,
{
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
        // The cycle counts as done unless nothing could be read at all (the API server
        // is away): one unreadable object must not make every verdict of this agent
        // read as stale. Its own verdict ages on its own (the broker marks an object
        // stale once it is no longer reported).
        if report.unreadable == 0 || report.observed > 0 {
            self.state().last_check = Some(now);
        }
        report.reported = self.flush_health().await?;
        Ok(report)
    }

    /// Sends the queued verdicts. Only what the broker took is marked delivered: items it
    /// rejects stay queued (sent again with the next cycle, and logged), and a batch it
    /// refuses as a whole is sent again item by item, so one bad verdict never costs its
    /// neighbours.
    pub(super) async fn flush_health(&self) -> Result<usize> {
        let items = self.state().reporter.queued();
        let mut sent = 0;
        for batch in batches(items) {
            sent += match self.send_verdicts(batch.clone()).await {
                Err(error) if retryable(&error) => return Err(error),
                Err(error) => {
                    tracing::warn!(%error, items = batch.len(), "verdicts refused; sending them one by one");
                    let mut taken = 0;
                    for item in batch {
                        match self.send_verdicts(vec![item]).await {
                            Ok(n) => taken += n,
                            Err(error) if retryable(&error) => return Err(error),
                            Err(error) => tracing::warn!(%error, "verdict refused; kept"),
                        }
                    }
                    taken
                }
                Ok(n) => n,
            };
        }
        Ok(sent)
    }

    /// One request; marks delivered what the broker did not reject and returns how many.
    pub(super) async fn send_verdicts(&self, items: Vec<HealthReportItem>) -> Result<usize> {
        let report = HealthReport {
            deployment_objects: items,
        };
        let result = self.inner.broker.report_health(&report).await?;
        let refused: HashSet<_> = result.rejected.iter().map(|r| r.id).collect();
        for r in &result.rejected {
            tracing::warn!(object = %r.id, reason = %r.reason, "verdict refused; kept");
        }
        let taken: Vec<_> = report
            .deployment_objects
            .into_iter()
            .filter(|item| !refused.contains(&item.id))
            .collect();
        self.state().reporter.delivered(&taken);
        Ok(taken.len())
    }
}
