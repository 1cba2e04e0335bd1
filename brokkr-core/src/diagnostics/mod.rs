//! The lifecycle of a diagnostics request.
//!
//! An operator asks for diagnostics of a deployment object on one agent; the agent claims
//! the request, collects a bundle and posts it (or posts why it could not). The states:
//!
//! ```text
//! pending ──claim──▶ claimed ──complete──▶ completed
//!    │                  │ └─────fail─────▶ failed
//!    └──────────────────┴──expire────────▶ expired
//! ```
//!
//! A pending request must be claimed before its `claim_deadline`; a claimed one must be
//! finished before `expires_at`. Finished and expired requests are kept until
//! `expires_at` for the operator to read, then cleaned up. Retention counts from
//! completion, so a result is always readable for the full retention period.
//!
//! Transitions check their preconditions and leave the request untouched when they fail,
//! so the store can persist the request exactly when a transition returns `Ok`.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Violations};
use crate::ids::{AgentId, DeploymentObjectId, DiagnosticId};

/// Where a diagnostics request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DiagnosticStatus {
    /// Waiting for the agent to claim it.
    Pending,
    /// The agent is collecting.
    Claimed,
    /// The agent posted a bundle.
    Completed,
    /// The agent reported that it could not collect a bundle.
    Failed,
    /// Nobody claimed it in time, or the claimer never finished.
    Expired,
}

impl DiagnosticStatus {
    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Claimed => "claimed",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    /// Whether no further transition is possible.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Expired)
    }
}

impl fmt::Display for DiagnosticStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Deadlines of diagnostics requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiagnosticPolicy {
    /// How long after creation a request may be claimed (10 min). An agent that has not
    /// claimed by then is probably down; the operator should not wait on it any longer.
    pub claim_deadline: Duration,
    /// How long a request is kept (60 min): from creation while unfinished, from
    /// completion once finished.
    pub retention: Duration,
}

impl Default for DiagnosticPolicy {
    fn default() -> Self {
        Self {
            claim_deadline: Duration::minutes(10),
            retention: Duration::minutes(60),
        }
    }
}

impl DiagnosticPolicy {
    /// Rejects non-positive durations and a claim deadline beyond retention (a request
    /// would be deleted while it could still be claimed).
    pub fn validate(&self) -> Result<()> {
        let mut v = Violations::new();
        v.check(
            self.claim_deadline <= Duration::zero(),
            "claim_deadline",
            "must be positive",
        );
        v.check(
            self.retention <= Duration::zero(),
            "retention",
            "must be positive",
        );
        v.check(
            self.claim_deadline > self.retention,
            "claim_deadline",
            "must not exceed retention",
        );
        v.finish()
    }
}

/// A request for a diagnostics bundle of one deployment object from one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosticRequest {
    /// The request's id.
    pub id: DiagnosticId,
    /// The object to diagnose.
    pub deployment_object_id: DeploymentObjectId,
    /// The agent asked to collect; the only one allowed to claim and finish the request.
    pub agent_id: AgentId,
    /// Who asked (for the audit trail).
    pub requested_by: String,
    /// Current state.
    pub status: DiagnosticStatus,
    /// When the request was made.
    pub created_at: DateTime<Utc>,
    /// The request can be claimed strictly before this instant.
    pub claim_deadline: DateTime<Utc>,
    /// When the agent claimed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<DateTime<Utc>>,
    /// The token the claimer chose; a retried claim with the same token is recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_token: Option<String>,
    /// When the claimer completed or failed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Until a claimed request must be finished, and after which a finished or expired
    /// request is deleted. While unfinished this is always `created_at + retention`.
    pub expires_at: DateTime<Utc>,
    /// Why the agent could not collect (only for `failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

/// A claimable request as its agent sees it (`GET /agents/{id}/diagnostics/pending`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PendingDiagnostic {
    /// The request.
    pub id: DiagnosticId,
    /// The object to diagnose.
    pub deployment_object_id: DeploymentObjectId,
    /// When asked.
    pub created_at: DateTime<Utc>,
    /// Claim strictly before this.
    pub claim_deadline: DateTime<Utc>,
    /// A claimed request must be finished before this.
    pub expires_at: DateTime<Utc>,
}

impl From<DiagnosticRequest> for PendingDiagnostic {
    fn from(r: DiagnosticRequest) -> Self {
        Self {
            id: r.id,
            deployment_object_id: r.deployment_object_id,
            created_at: r.created_at,
            claim_deadline: r.claim_deadline,
            expires_at: r.expires_at,
        }
    }
}

/// What a successful claim means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// The caller won the claim just now.
    Claimed,
    /// The caller already held the claim (same token); nothing changed. Lets an agent
    /// retry a claim whose response it never received.
    AlreadyHeld,
}

/// Why a transition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The caller is not the agent the request was made for.
    #[error("diagnostics request belongs to another agent")]
    NotOwner,
    /// Someone already claimed the request (or the caller retried without its token).
    #[error("diagnostics request is already claimed")]
    AlreadyClaimed,
    /// A result was posted for a request nobody claimed.
    #[error("diagnostics request has not been claimed")]
    NotClaimed,
    /// The request already has its one result.
    #[error("diagnostics request is already {status}")]
    AlreadyFinished {
        /// `completed` or `failed`.
        status: DiagnosticStatus,
    },
    /// The request's deadline passed.
    #[error("diagnostics request has expired")]
    Expired,
}

impl From<TransitionError> for Error {
    fn from(err: TransitionError) -> Self {
        let message = err.to_string();
        match err {
            TransitionError::NotOwner => Self::Forbidden(message),
            TransitionError::AlreadyClaimed
            | TransitionError::NotClaimed
            | TransitionError::AlreadyFinished { .. } => Self::Conflict(message),
            TransitionError::Expired => Self::Gone(message),
        }
    }
}

impl DiagnosticRequest {
    /// A pending request for `agent_id` to diagnose `deployment_object_id`.
    pub fn new(
        deployment_object_id: DeploymentObjectId,
        agent_id: AgentId,
        requested_by: impl Into<String>,
        policy: &DiagnosticPolicy,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: DiagnosticId::new(),
            deployment_object_id,
            agent_id,
            requested_by: requested_by.into(),
            status: DiagnosticStatus::Pending,
            created_at: now,
            claim_deadline: now + policy.claim_deadline,
            claimed_at: None,
            claim_token: None,
            completed_at: None,
            expires_at: now + policy.retention,
            failure_reason: None,
        }
    }

    /// Whether the request is expired at `now`, whether or not that was recorded yet:
    /// pending at or after `claim_deadline`, or claimed at or after `expires_at`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        match self.status {
            DiagnosticStatus::Expired => true,
            DiagnosticStatus::Pending => now >= self.claim_deadline,
            DiagnosticStatus::Claimed => now >= self.expires_at,
            DiagnosticStatus::Completed | DiagnosticStatus::Failed => false,
        }
    }

    /// The status a reader should see at `now`: `expired` once a deadline passed, even if
    /// the cleanup has not recorded it yet.
    pub fn status_at(&self, now: DateTime<Utc>) -> DiagnosticStatus {
        if self.is_expired(now) {
            DiagnosticStatus::Expired
        } else {
            self.status
        }
    }

    /// `agent` claims the request.
    ///
    /// Only the owning agent may claim, only a pending request, and only before the claim
    /// deadline. A claim on a request the caller already holds succeeds without change
    /// ([`ClaimOutcome::AlreadyHeld`]) when it carries the same non-empty token; without a
    /// token a second claim is a conflict, so of several token-less claims exactly one wins.
    pub fn claim(
        &mut self,
        agent: AgentId,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<ClaimOutcome, TransitionError> {
        self.check_owner(agent)?;
        // An empty token would make every token-less retry look like the holder.
        let token = token.filter(|t| !t.is_empty());
        match self.status {
            _ if self.is_expired(now) => Err(TransitionError::Expired),
            DiagnosticStatus::Pending => {
                self.status = DiagnosticStatus::Claimed;
                // Replicas' clocks may disagree slightly; never claim before creation.
                self.claimed_at = Some(now.max(self.created_at));
                self.claim_token = token.map(str::to_owned);
                Ok(ClaimOutcome::Claimed)
            }
            DiagnosticStatus::Claimed => {
                if token.is_some() && token == self.claim_token.as_deref() {
                    Ok(ClaimOutcome::AlreadyHeld)
                } else {
                    Err(TransitionError::AlreadyClaimed)
                }
            }
            status @ (DiagnosticStatus::Completed | DiagnosticStatus::Failed) => {
                Err(TransitionError::AlreadyFinished { status })
            }
            DiagnosticStatus::Expired => Err(TransitionError::Expired),
        }
    }

    /// The claimer posts its bundle: the request becomes `completed` and is kept for the
    /// retention period from now.
    pub fn complete(&mut self, agent: AgentId, now: DateTime<Utc>) -> Result<(), TransitionError> {
        self.finish(agent, DiagnosticStatus::Completed, None, now)
    }

    /// The claimer reports it could not collect a bundle: the request becomes `failed`
    /// with `reason` and is kept for the retention period from now.
    pub fn fail(
        &mut self,
        agent: AgentId,
        reason: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        self.finish(agent, DiagnosticStatus::Failed, Some(reason.into()), now)
    }

    /// Records expiry when a deadline has passed; returns whether the request changed.
    /// Safe to call repeatedly and on any request, which is what a cleanup run does.
    pub fn expire(&mut self, now: DateTime<Utc>) -> bool {
        let open = matches!(
            self.status,
            DiagnosticStatus::Pending | DiagnosticStatus::Claimed
        );
        if open && self.is_expired(now) {
            self.status = DiagnosticStatus::Expired;
            true
        } else {
            false
        }
    }

    /// Whether cleanup should delete the request: it is finished or expired and its
    /// retention is over.
    pub fn should_delete(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at && (self.status.is_terminal() || self.is_expired(now))
    }

    fn check_owner(&self, agent: AgentId) -> Result<(), TransitionError> {
        if agent == self.agent_id {
            Ok(())
        } else {
            Err(TransitionError::NotOwner)
        }
    }

    fn finish(
        &mut self,
        agent: AgentId,
        to: DiagnosticStatus,
        failure_reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        self.check_owner(agent)?;
        match self.status {
            _ if self.is_expired(now) => Err(TransitionError::Expired),
            DiagnosticStatus::Claimed => {
                // Until now `expires_at` has been `created_at + retention` (see `new`), so
                // the difference is the retention this request was created with; keeping
                // it means a policy change never shortens the life of a running request.
                let retention = (self.expires_at - self.created_at).max(Duration::zero());
                let finished_at = match self.claimed_at {
                    Some(claimed_at) => now.max(claimed_at),
                    None => now,
                };
                self.status = to;
                self.completed_at = Some(finished_at);
                self.expires_at = finished_at + retention;
                self.failure_reason = failure_reason;
                Ok(())
            }
            DiagnosticStatus::Pending => Err(TransitionError::NotClaimed),
            status @ (DiagnosticStatus::Completed | DiagnosticStatus::Failed) => {
                Err(TransitionError::AlreadyFinished { status })
            }
            DiagnosticStatus::Expired => Err(TransitionError::Expired),
        }
    }
}

#[cfg(test)]
mod tests;
