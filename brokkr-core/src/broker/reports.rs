//! What agents send: heartbeats, target state, reconcile status and health reports.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::{Broker, HealthReportResult, Rejected, StatusReportResult};
use crate::auth::Principal;
use crate::ids::{AgentId, DeploymentObjectId, StackId};
use crate::model::{DeploymentObject, DeploymentStatusEvent, HealthReport, Heartbeat};
use crate::store::{HeartbeatRecord, Store, UpsertOutcome};
use crate::{Error, Result};

/// A batch whose every item was refused is refused as a whole (422) with the reasons.
fn all_bad<T>(good: &[T], rejected: &[Rejected]) -> Result<()> {
    if good.is_empty() && !rejected.is_empty() {
        return Err(Error::Invalid(
            rejected
                .iter()
                .map(|r| crate::error::FieldError::new(r.id.to_string(), r.reason.clone()))
                .collect(),
        ));
    }
    Ok(())
}

impl<S: Store + ?Sized> Broker<S> {
    /// Records a heartbeat (the agent itself).
    pub async fn heartbeat(&self, who: &Principal, agent: AgentId, beat: Heartbeat) -> Result<()> {
        who.require_agent(agent)?;
        let now = self.now();
        let mut beat = beat;
        // An agent's clock ahead of ours is no reason to lose its heartbeat (it would
        // read as lost): its own times are taken as "now" at the latest.
        clamp_to(&mut beat.health_checked_at, now);
        clamp_to(&mut beat.snapshot.last_successful_reconcile, now);
        beat.validate(now, &self.inner.shared.config.limits)?;
        let record = HeartbeatRecord {
            agent_id: agent,
            received_at: now,
            snapshot: beat.snapshot,
            health_checked_at: beat.health_checked_at,
        };
        // Nothing recorded: an unknown agent, or a heartbeat older than the stored one
        // (a clock step, a replica slightly behind), which is no error.
        if self.store_ref().record_heartbeats(&[record]).await? == 0 {
            self.existing_agent(agent).await?;
        }
        Ok(())
    }

    /// The desired set: the latest object of every targeted stack (the agent itself).
    pub async fn target_state(
        &self,
        who: &Principal,
        agent: AgentId,
    ) -> Result<Vec<DeploymentObject>> {
        who.require_agent(agent)?;
        self.existing_agent(agent).await?;
        self.effective_objects(agent).await
    }

    /// Ids of [`Self::effective_objects`].
    pub(super) async fn effective_ids(
        &self,
        agent: AgentId,
    ) -> Result<HashSet<DeploymentObjectId>> {
        Ok(self
            .effective_objects(agent)
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect())
    }

    /// The objects the agent should run now: the latest of every stack it targets.
    pub(super) async fn effective_objects(&self, agent: AgentId) -> Result<Vec<DeploymentObject>> {
        let stacks = self.targeted_stacks(agent).await?;
        self.store_ref().latest_objects(&stacks).await
    }

    pub(super) async fn targeted_stacks(&self, agent: AgentId) -> Result<Vec<StackId>> {
        Ok(self
            .store_ref()
            .targets_of_agent(agent)
            .await?
            .into_iter()
            .map(|t| t.stack_id)
            .collect())
    }

    /// Objects of `ids` the agent may report on (of stacks it targets), with a reason for
    /// each id it may not; `NotFound` for an unknown agent. One store read.
    pub(super) async fn reportable(
        &self,
        agent: AgentId,
        ids: &[DeploymentObjectId],
    ) -> Result<HashMap<DeploymentObjectId, std::result::Result<StackId, String>>> {
        let reach = self
            .store_ref()
            .reach_of_agent(agent, ids)
            .await?
            .ok_or_else(|| Error::not_found("agent", agent))?;
        Ok(ids
            .iter()
            .map(|id| {
                let verdict = match reach.get(id) {
                    None => Err("unknown deployment object".to_owned()),
                    Some(r) if !r.targeted => {
                        Err("deployment object of a stack this agent does not target".to_owned())
                    }
                    Some(r) => Ok(r.stack_id),
                };
                (*id, verdict)
            })
            .collect())
    }

    /// Reconcile outcomes (the agent itself). Bad items are rejected one by one; when
    /// every item is bad the whole batch is `Invalid`.
    pub async fn report_deployment_status(
        &self,
        who: &Principal,
        agent: AgentId,
        events: Vec<DeploymentStatusEvent>,
    ) -> Result<StatusReportResult> {
        self.report_deployment_status_with(who, agent, events, Vec::new())
            .await
    }

    /// [`Self::report_deployment_status`] for a batch some of whose items were already
    /// refused (`rejected`: they could not be decoded, see [`crate::api::decode_each`]);
    /// they count as bad items of the batch.
    pub async fn report_deployment_status_with(
        &self,
        who: &Principal,
        agent: AgentId,
        events: Vec<DeploymentStatusEvent>,
        rejected: Vec<Rejected>,
    ) -> Result<StatusReportResult> {
        who.require_agent(agent)?;
        let now = self.now();
        let ids: Vec<_> = events.iter().map(|e| e.deployment_object_id).collect();
        // Also answers whether the agent exists.
        let allowed = self.reportable(agent, &ids).await?;
        let mut good = Vec::new();
        let mut rejected = rejected;
        for mut event in events {
            let id = event.deployment_object_id;
            event.scrub_cluster_text();
            event.attempted_at = event.attempted_at.min(now);
            let check = match allowed.get(&id) {
                Some(Ok(_)) => event
                    .validate(now, &self.inner.shared.config.limits)
                    .map_err(|e| e.to_string()),
                Some(Err(reason)) => Err(reason.clone()),
                None => Err("unknown deployment object".to_owned()),
            };
            match check {
                Ok(()) => good.push(event),
                Err(reason) => rejected.push(Rejected { id, reason }),
            }
        }
        all_bad(&good, &rejected)?;
        // Events of one batch apply in time order, so a batch can carry a whole history.
        good.sort_by_key(|e| e.attempted_at);
        self.store_ref().apply_status_events(agent, &good).await?;
        Ok(StatusReportResult {
            accepted: good.len() as u64,
            rejected,
        })
    }

    /// Health verdicts (the agent itself): per item validated and authorized, then
    /// upserted (unchanged rows not rewritten, older reports never overwrite newer).
    pub async fn report_health(
        &self,
        who: &Principal,
        agent: AgentId,
        report: HealthReport,
    ) -> Result<HealthReportResult> {
        self.report_health_with(who, agent, report, Vec::new())
            .await
    }

    /// [`Self::report_health`] for a batch some of whose items were already refused
    /// (`rejected`: they could not be decoded, see [`crate::api::decode_each`]); they
    /// count as bad items of the batch.
    pub async fn report_health_with(
        &self,
        who: &Principal,
        agent: AgentId,
        report: HealthReport,
        rejected: Vec<Rejected>,
    ) -> Result<HealthReportResult> {
        who.require_agent(agent)?;
        // Duplicate ids are a client bug: the whole batch is refused.
        report.check_duplicates()?;
        let now = self.now();
        let ids: Vec<_> = report.deployment_objects.iter().map(|i| i.id).collect();
        let allowed = self.reportable(agent, &ids).await?;
        let mut records = Vec::new();
        let mut rejected = rejected;
        for mut item in report.deployment_objects {
            // Cluster text made safe (NUL, secrets) before it is checked, so one pod's
            // output never costs a verdict; a check "in the future" is a clock ahead.
            item.summary.scrub_cluster_text();
            item.checked_at = item.checked_at.min(now);
            let check = match allowed.get(&item.id) {
                Some(Ok(_)) => item
                    .validate(now, &self.inner.shared.config.limits)
                    .map_err(|e| e.to_string()),
                Some(Err(reason)) => Err(reason.clone()),
                None => Err("unknown deployment object".to_owned()),
            };
            match check {
                Ok(()) => records.push(item.into_record(agent, now)),
                Err(reason) => rejected.push(Rejected {
                    id: item.id,
                    reason,
                }),
            }
        }
        all_bad(&records, &rejected)?;
        let rewrite_before = now - self.inner.shared.config.refresh_interval / 2;
        let outcomes = self
            .store_ref()
            .upsert_health(&records, rewrite_before)
            .await?;
        let mut result = HealthReportResult {
            rejected,
            ..HealthReportResult::default()
        };
        // Status changes reached the events outbox in the same write.
        for outcome in outcomes {
            match outcome {
                UpsertOutcome::Accepted { .. } => result.accepted += 1,
                UpsertOutcome::Unchanged => result.unchanged += 1,
                UpsertOutcome::Ignored => result.ignored += 1,
            }
        }
        Ok(result)
    }
}

/// A client's time, at the latest `now`: clocks ahead by more than the skew allowance
/// make the field "now" instead of refusing the whole message.
fn clamp_to(at: &mut Option<DateTime<Utc>>, now: DateTime<Utc>) {
    if let Some(t) = at
        && *t > now
    {
        *t = now;
    }
}
