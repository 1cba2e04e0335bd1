//! The diagnostics loop: claim pending requests, collect, post the bundle (or why not).

use std::collections::BTreeMap;

use super::{Agent, DiagnosticsReport, failure_reason, retryable};
use crate::collect;
use brokkr_core::api::BrokerApi;
use brokkr_core::clock::Clock;
use brokkr_core::error::{Error, Result};
use brokkr_core::ids::{DeploymentObjectId, DiagnosticId};
use brokkr_core::model::{DiagnosticBundle, DiagnosticOutcome};
use brokkr_core::probe::{ClusterProbe, ProbeError};
use brokkr_core::redact::{LINE_CAP, redact_lines};

impl<P, B, C> Agent<P, B, C>
where
    P: ClusterProbe + 'static,
    B: BrokerApi + 'static,
    C: Clock,
{
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
    pub(super) async fn post(&self, id: DiagnosticId) -> Result<bool> {
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

    pub(super) async fn try_collect(
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
}
