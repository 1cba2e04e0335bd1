//! The health loop: classify every object of the target state, report what changed.

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
        if report.unreadable == 0 {
            self.state().last_check = Some(now);
        }
        report.reported = self.flush_health().await?;
        Ok(report)
    }

    pub(super) async fn flush_health(&self) -> Result<usize> {
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
}
