//! Diagnostic requests, claims and results.

use crate::MemoryStore;
use async_trait::async_trait;
use brokkr_core::diagnostics::{ClaimOutcome, DiagnosticRequest, DiagnosticStatus};
use brokkr_core::ids::{AgentId, DiagnosticId};
use brokkr_core::model::DiagnosticOutcome;
use brokkr_core::store::{DiagnosticCounts, DiagnosticStore, ResultOutcome};
use brokkr_core::{Error, Result};
use chrono::{DateTime, Utc};

#[async_trait]
impl DiagnosticStore for MemoryStore {
    async fn insert_diagnostic_requests(&self, requests: &[DiagnosticRequest]) -> Result<()> {
        let mut state = self.write();
        state.require_agents(requests.iter().map(|r| &r.agent_id))?;
        if let Some(existing) = requests
            .iter()
            .find(|r| state.diagnostics.contains_key(&r.id))
        {
            return Err(Error::Conflict(format!(
                "diagnostics request {} already exists",
                existing.id
            )));
        }
        for request in requests {
            state
                .diagnostics
                .insert(request.id, (request.clone(), None));
        }
        Ok(())
    }

    async fn get_diagnostic(
        &self,
        id: DiagnosticId,
    ) -> Result<Option<(DiagnosticRequest, Option<DiagnosticOutcome>)>> {
        Ok(self.read().diagnostics.get(&id).cloned())
    }

    async fn pending_diagnostics(
        &self,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DiagnosticRequest>> {
        let state = self.read();
        let mut pending: Vec<DiagnosticRequest> = state
            .diagnostics
            .values()
            .map(|(r, _)| r)
            .filter(|r| {
                r.agent_id == agent && r.status == DiagnosticStatus::Pending && !r.is_expired(now)
            })
            .cloned()
            .collect();
        pending.sort_by_key(|r| (r.created_at, r.id));
        Ok(pending)
    }

    async fn claim_diagnostic(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(DiagnosticRequest, ClaimOutcome)> {
        let mut state = self.write();
        let (request, _) = state
            .diagnostics
            .get_mut(&id)
            .ok_or_else(|| Error::not_found("diagnostics request", id))?;
        // Transition a copy: a refused claim must leave the stored request untouched.
        let mut next = request.clone();
        let outcome = next.claim(agent, token, now)?;
        *request = next.clone();
        Ok((next, outcome))
    }

    async fn store_diagnostic_result(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        outcome: &DiagnosticOutcome,
        now: DateTime<Utc>,
    ) -> Result<ResultOutcome> {
        let mut state = self.write();
        let (request, stored) = state
            .diagnostics
            .get_mut(&id)
            .ok_or_else(|| Error::not_found("diagnostics request", id))?;
        if request.agent_id != agent {
            return Err(Error::Forbidden(format!(
                "diagnostics request {id} belongs to another agent"
            )));
        }
        if let Some(previous) = stored.as_ref() {
            return if previous == outcome {
                Ok(ResultOutcome::AlreadyStored)
            } else {
                Err(Error::Conflict(format!(
                    "diagnostics request {id} already has a different result"
                )))
            };
        }
        let mut next = request.clone();
        match outcome {
            DiagnosticOutcome::Bundle(_) => next.complete(agent, now)?,
            DiagnosticOutcome::Failed(reason) => next.fail(agent, reason.clone(), now)?,
        }
        *request = next;
        *stored = Some(outcome.clone());
        Ok(ResultOutcome::Stored)
    }

    async fn delete_expired_diagnostics(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut state = self.write();
        let before = state.diagnostics.len();
        state
            .diagnostics
            .retain(|_, (request, _)| !request.should_delete(now));
        Ok((before - state.diagnostics.len()) as u64)
    }

    async fn diagnostic_counts(&self, now: DateTime<Utc>) -> Result<DiagnosticCounts> {
        let mut counts = DiagnosticCounts::default();
        for (request, _) in self.read().diagnostics.values() {
            counts.add(request.status_at(now));
        }
        Ok(counts)
    }
}
