//! On-demand diagnostics: requested by operators, claimed once and answered by agents.

use super::{Broker, DiagnosticView};
use crate::auth::Principal;
use crate::diagnostics::DiagnosticRequest;
use crate::ids::{AgentId, DeploymentObjectId, DiagnosticId};
use crate::model::DiagnosticOutcome;
use crate::store::{DiagnosticCounts, ResultOutcome, Store};
use crate::{Error, Result};

impl<S: Store + ?Sized> Broker<S> {
    /// Requests diagnostics of an object (admin): from `agent` when given (it must run
    /// the object), else from every agent that runs it, one request each.
    pub async fn request_diagnostics(
        &self,
        who: &Principal,
        object: DeploymentObjectId,
        agent: Option<AgentId>,
        requested_by: &str,
    ) -> Result<Vec<DiagnosticRequest>> {
        who.require_admin()?;
        let object = self.existing_object(object).await?;
        let running = self.store_ref().agents_targeting(object.stack_id).await?;
        let agents = match agent {
            Some(a) if running.contains(&a) => vec![a],
            Some(_) => {
                return Err(Error::invalid(
                    "agent_id",
                    "this agent does not run the deployment object",
                ));
            }
            None if running.is_empty() => {
                return Err(Error::invalid(
                    "agent_id",
                    "no agent runs this deployment object",
                ));
            }
            None => running,
        };
        let now = self.now();
        let requests: Vec<DiagnosticRequest> = agents
            .into_iter()
            .map(|a| {
                DiagnosticRequest::new(
                    object.id,
                    a,
                    requested_by,
                    &self.inner.shared.config.diagnostics,
                    now,
                )
            })
            .collect();
        self.store_ref()
            .insert_diagnostic_requests(&requests)
            .await?;
        Ok(requests)
    }

    /// A request with its result (admin). Overdue requests read as `expired` even
    /// before cleanup records it.
    pub async fn diagnostic(&self, who: &Principal, id: DiagnosticId) -> Result<DiagnosticView> {
        who.require_admin()?;
        let (mut request, result) = self
            .store_ref()
            .get_diagnostic(id)
            .await?
            .ok_or_else(|| Error::not_found("diagnostics request", id))?;
        request.status = request.status_at(self.now());
        Ok(DiagnosticView { request, result })
    }

    /// Claimable requests of the agent (the agent itself, or admin).
    pub async fn pending_diagnostics(
        &self,
        who: &Principal,
        agent: AgentId,
    ) -> Result<Vec<DiagnosticRequest>> {
        who.require_admin_or(agent)?;
        self.existing_agent(agent).await?;
        self.store_ref()
            .pending_diagnostics(agent, self.now())
            .await
    }

    /// Claims a request (its agent); exactly one claimer wins.
    pub async fn claim_diagnostic(
        &self,
        who: &Principal,
        id: DiagnosticId,
        token: Option<&str>,
    ) -> Result<DiagnosticRequest> {
        let Principal::Agent(agent) = *who else {
            return Err(Error::Forbidden("only agents claim diagnostics".into()));
        };
        if token.is_some_and(|t| t.len() > 128) {
            return Err(Error::invalid("claim_token", "at most 128 characters"));
        }
        if token.is_some_and(|t| t.contains('\0')) {
            return Err(Error::invalid(
                "claim_token",
                "must not contain NUL characters",
            ));
        }
        let (request, _) = self
            .store_ref()
            .claim_diagnostic(id, agent, token, self.now())
            .await?;
        Ok(request)
    }

    /// Posts the claimer's result, once (an identical retry is accepted again); secrets
    /// in it are redacted before it is stored.
    pub async fn post_diagnostic_result(
        &self,
        who: &Principal,
        id: DiagnosticId,
        outcome: DiagnosticOutcome,
    ) -> Result<ResultOutcome> {
        let Principal::Agent(agent) = *who else {
            return Err(Error::Forbidden(
                "only agents post diagnostics results".into(),
            ));
        };
        let now = self.now();
        // Redacted first: that also replaces NUL, which the checks would refuse.
        let outcome = outcome.redacted();
        outcome.validate(now, &self.inner.shared.config.limits)?;
        self.store_ref()
            .store_diagnostic_result(id, agent, &outcome, now)
            .await
    }

    /// Diagnostics requests by the state a reader sees now (admin).
    pub async fn diagnostic_counts(&self, who: &Principal) -> Result<DiagnosticCounts> {
        who.require_admin()?;
        self.store_ref().diagnostic_counts(self.now()).await
    }
}
