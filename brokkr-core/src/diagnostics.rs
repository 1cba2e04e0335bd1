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
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn mins(n: i64) -> Duration {
        Duration::minutes(n)
    }

    fn request() -> DiagnosticRequest {
        DiagnosticRequest::new(
            DeploymentObjectId::new(),
            AgentId::new(),
            "ops@example.com",
            &DiagnosticPolicy::default(),
            t0(),
        )
    }

    fn claimed(token: Option<&str>) -> DiagnosticRequest {
        let mut r = request();
        let agent = r.agent_id;
        assert_eq!(
            r.claim(agent, token, t0() + mins(1)),
            Ok(ClaimOutcome::Claimed)
        );
        r
    }

    #[test]
    fn new_request_is_pending_with_deadlines() {
        let r = request();
        assert_eq!(r.status, DiagnosticStatus::Pending);
        assert_eq!(r.claim_deadline, t0() + mins(10));
        assert_eq!(r.expires_at, t0() + mins(60));
        assert_eq!(r.requested_by, "ops@example.com");
        assert!(!r.is_expired(t0() + mins(9)));
        assert!(!r.should_delete(t0()));
    }

    #[test]
    fn owner_claims_a_pending_request() {
        let r = claimed(Some("tok-1"));
        assert_eq!(r.status, DiagnosticStatus::Claimed);
        assert_eq!(r.claimed_at, Some(t0() + mins(1)));
        assert_eq!(r.claim_token.as_deref(), Some("tok-1"));
    }

    #[test]
    fn another_agent_may_not_claim_or_finish() {
        let mut r = request();
        let before = r.clone();
        let stranger = AgentId::new();
        assert_eq!(
            r.claim(stranger, None, t0()),
            Err(TransitionError::NotOwner)
        );
        assert_eq!(r, before);
        let mut r = claimed(None);
        assert_eq!(r.complete(stranger, t0()), Err(TransitionError::NotOwner));
        assert_eq!(r.fail(stranger, "x", t0()), Err(TransitionError::NotOwner));
        assert_eq!(r.status, DiagnosticStatus::Claimed);
    }

    #[test]
    fn claim_is_allowed_just_before_the_deadline_but_not_at_it() {
        let mut r = request();
        let agent = r.agent_id;
        let before = r.clone();
        assert_eq!(
            r.claim(agent, None, t0() + mins(10)),
            Err(TransitionError::Expired)
        );
        assert_eq!(r, before, "a refused claim changes nothing");
        let just_before = t0() + mins(10) - Duration::nanoseconds(1);
        assert_eq!(r.claim(agent, None, just_before), Ok(ClaimOutcome::Claimed));
    }

    #[test]
    fn retry_with_the_holders_token_is_idempotent() {
        let mut r = claimed(Some("tok-1"));
        let agent = r.agent_id;
        let before = r.clone();
        assert_eq!(
            r.claim(agent, Some("tok-1"), t0() + mins(2)),
            Ok(ClaimOutcome::AlreadyHeld)
        );
        assert_eq!(r, before, "the retry keeps the original claim time");
    }

    #[test]
    fn second_claim_without_or_with_other_token_conflicts() {
        let mut r = claimed(Some("tok-1"));
        let agent = r.agent_id;
        assert_eq!(
            r.claim(agent, None, t0() + mins(2)),
            Err(TransitionError::AlreadyClaimed)
        );
        assert_eq!(
            r.claim(agent, Some("tok-2"), t0() + mins(2)),
            Err(TransitionError::AlreadyClaimed)
        );
        assert_eq!(
            r.claim(agent, Some(""), t0() + mins(2)),
            Err(TransitionError::AlreadyClaimed)
        );
    }

    #[test]
    fn token_less_claims_never_match_each_other() {
        let mut r = claimed(None);
        let agent = r.agent_id;
        assert_eq!(r.claim_token, None);
        assert_eq!(
            r.claim(agent, None, t0() + mins(2)),
            Err(TransitionError::AlreadyClaimed)
        );
        // An empty token is no token: it cannot be used to win a retry either.
        let mut r = claimed(Some(""));
        assert_eq!(r.claim_token, None);
        let agent = r.agent_id;
        assert_eq!(
            r.claim(agent, Some(""), t0() + mins(2)),
            Err(TransitionError::AlreadyClaimed)
        );
    }

    #[test]
    fn completing_restarts_retention_from_completion() {
        let mut r = claimed(None);
        let agent = r.agent_id;
        let done = t0() + mins(30);
        assert_eq!(r.complete(agent, done), Ok(()));
        assert_eq!(r.status, DiagnosticStatus::Completed);
        assert_eq!(r.completed_at, Some(done));
        assert_eq!(r.expires_at, done + mins(60));
        assert_eq!(r.failure_reason, None);
        assert!(!r.is_expired(done + mins(59)));
        assert!(!r.should_delete(done + mins(59)));
        assert!(r.should_delete(done + mins(60)));
    }

    #[test]
    fn failing_records_the_reason() {
        let mut r = claimed(None);
        let agent = r.agent_id;
        let at = t0() + mins(2);
        assert_eq!(r.fail(agent, "pods: forbidden", at), Ok(()));
        assert_eq!(r.status, DiagnosticStatus::Failed);
        assert_eq!(r.failure_reason.as_deref(), Some("pods: forbidden"));
        assert_eq!(r.completed_at, Some(at));
        assert_eq!(r.expires_at, at + mins(60));
    }

    #[test]
    fn only_one_result_per_request() {
        let mut r = claimed(None);
        let agent = r.agent_id;
        r.complete(agent, t0() + mins(2)).unwrap();
        let before = r.clone();
        let finished = Err(TransitionError::AlreadyFinished {
            status: DiagnosticStatus::Completed,
        });
        assert_eq!(r.complete(agent, t0() + mins(3)), finished);
        assert_eq!(r.fail(agent, "late", t0() + mins(3)), finished);
        assert_eq!(r.claim(agent, None, t0() + mins(3)).map(|_| ()), finished);
        assert_eq!(r, before);
    }

    #[test]
    fn result_for_an_unclaimed_request_conflicts() {
        let mut r = request();
        let agent = r.agent_id;
        assert_eq!(
            r.complete(agent, t0() + mins(1)),
            Err(TransitionError::NotClaimed)
        );
        assert_eq!(
            r.fail(agent, "x", t0() + mins(1)),
            Err(TransitionError::NotClaimed)
        );
        // After the claim deadline the unclaimed request is gone, not merely unclaimed.
        assert_eq!(
            r.complete(agent, t0() + mins(10)),
            Err(TransitionError::Expired)
        );
    }

    #[test]
    fn claimed_request_must_finish_before_expires_at() {
        let mut r = claimed(None);
        let agent = r.agent_id;
        let just_before = t0() + mins(60) - Duration::nanoseconds(1);
        assert!(!r.is_expired(just_before));
        let mut late = r.clone();
        assert_eq!(
            late.complete(agent, t0() + mins(60)),
            Err(TransitionError::Expired)
        );
        assert_eq!(r.complete(agent, just_before), Ok(()));
    }

    #[test]
    fn expire_records_missed_deadlines_once() {
        let mut pending = request();
        assert!(!pending.expire(t0() + mins(10) - Duration::seconds(1)));
        assert_eq!(pending.status, DiagnosticStatus::Pending);
        assert!(pending.expire(t0() + mins(10)));
        assert_eq!(pending.status, DiagnosticStatus::Expired);
        assert!(
            !pending.expire(t0() + mins(11)),
            "second run changes nothing"
        );
        let agent = pending.agent_id;
        assert_eq!(
            pending.claim(agent, None, t0() + mins(11)),
            Err(TransitionError::Expired)
        );

        let mut held = claimed(None);
        assert!(
            !held.expire(t0() + mins(30)),
            "claimed survives the claim deadline"
        );
        assert!(held.expire(t0() + mins(60)));
        assert_eq!(held.status, DiagnosticStatus::Expired);

        let mut done = claimed(None);
        let agent = done.agent_id;
        done.complete(agent, t0() + mins(2)).unwrap();
        assert!(
            !done.expire(t0() + mins(500)),
            "finished requests never expire"
        );
        assert_eq!(done.status, DiagnosticStatus::Completed);
    }

    #[test]
    fn status_at_shows_expiry_before_it_is_recorded() {
        let r = request();
        assert_eq!(r.status_at(t0() + mins(9)), DiagnosticStatus::Pending);
        assert_eq!(r.status_at(t0() + mins(10)), DiagnosticStatus::Expired);
        assert_eq!(r.status, DiagnosticStatus::Pending);
    }

    #[test]
    fn cleanup_deletes_after_retention_only() {
        let mut r = request();
        assert!(
            !r.should_delete(t0() + mins(30)),
            "expired but still retained"
        );
        assert!(
            r.should_delete(t0() + mins(60)),
            "unrecorded expiry still counts"
        );
        r.expire(t0() + mins(15));
        assert!(!r.should_delete(t0() + mins(59)));
        assert!(r.should_delete(t0() + mins(60)));
        let held = claimed(None);
        assert!(!held.should_delete(t0() + mins(59)));
        assert!(held.should_delete(t0() + mins(60)));
    }

    #[test]
    fn transition_errors_map_to_api_outcomes() {
        assert!(matches!(
            Error::from(TransitionError::NotOwner),
            Error::Forbidden(_)
        ));
        assert!(matches!(
            Error::from(TransitionError::AlreadyClaimed),
            Error::Conflict(_)
        ));
        assert!(matches!(
            Error::from(TransitionError::NotClaimed),
            Error::Conflict(_)
        ));
        assert_eq!(
            Error::from(TransitionError::AlreadyFinished {
                status: DiagnosticStatus::Failed
            }),
            Error::Conflict("diagnostics request is already failed".into())
        );
        assert!(matches!(
            Error::from(TransitionError::Expired),
            Error::Gone(_)
        ));
    }

    #[test]
    fn request_serializes_status_and_omits_unset_times() {
        let r = request();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["status"], "pending");
        assert_eq!(json["expires_at"], "2026-03-01T13:00:00Z");
        assert!(json.get("claimed_at").is_none());
        assert_eq!(
            serde_json::from_value::<DiagnosticRequest>(json).unwrap(),
            r
        );
    }

    #[test]
    fn policy_validation() {
        assert!(DiagnosticPolicy::default().validate().is_ok());
        let inverted = DiagnosticPolicy {
            claim_deadline: mins(90),
            retention: mins(60),
        };
        assert!(
            matches!(inverted.validate(), Err(Error::Invalid(e)) if e[0].field == "claim_deadline")
        );
        let zero = DiagnosticPolicy {
            claim_deadline: mins(10),
            retention: Duration::zero(),
        };
        assert!(zero.validate().is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Claim {
            owner: bool,
            token: Option<&'static str>,
        },
        Complete {
            owner: bool,
        },
        Fail {
            owner: bool,
        },
        Expire,
        Advance(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                any::<bool>(),
                prop::option::of(prop::sample::select(vec!["a", "b", ""]))
            )
                .prop_map(|(owner, token)| Op::Claim { owner, token }),
            any::<bool>().prop_map(|owner| Op::Complete { owner }),
            any::<bool>().prop_map(|owner| Op::Fail { owner }),
            Just(Op::Expire),
            (0_i64..1_500).prop_map(Op::Advance),
        ]
    }

    fn assert_legal(r: &DiagnosticRequest, policy: &DiagnosticPolicy) {
        let unfinished_expiry = r.created_at + policy.retention;
        assert_eq!(r.claim_deadline, r.created_at + policy.claim_deadline);
        assert_ne!(r.claim_token.as_deref(), Some(""));
        match r.status {
            DiagnosticStatus::Pending => {
                assert_eq!(r.claimed_at, None);
                assert_eq!(r.claim_token, None);
                assert_eq!(r.completed_at, None);
                assert_eq!(r.expires_at, unfinished_expiry);
            }
            DiagnosticStatus::Claimed => {
                let claimed_at = r.claimed_at.unwrap();
                assert!(claimed_at >= r.created_at && claimed_at < r.claim_deadline);
                assert_eq!(r.completed_at, None);
                assert_eq!(r.expires_at, unfinished_expiry);
            }
            DiagnosticStatus::Completed | DiagnosticStatus::Failed => {
                let claimed_at = r.claimed_at.unwrap();
                let completed_at = r.completed_at.unwrap();
                assert!(completed_at >= claimed_at);
                assert!(completed_at < unfinished_expiry);
                assert_eq!(r.expires_at, completed_at + policy.retention);
                assert_eq!(
                    r.failure_reason.is_some(),
                    r.status == DiagnosticStatus::Failed
                );
            }
            DiagnosticStatus::Expired => {
                assert_eq!(r.completed_at, None);
                assert_eq!(r.expires_at, unfinished_expiry);
            }
        }
        if r.status != DiagnosticStatus::Failed {
            assert_eq!(r.failure_reason, None);
        }
    }

    proptest! {
        #[test]
        fn no_sequence_of_operations_reaches_an_illegal_state(
            ops in prop::collection::vec(op(), 0..40),
        ) {
            let policy = DiagnosticPolicy::default();
            let mut r = request();
            let owner = r.agent_id;
            let stranger = AgentId::new();
            let who = |is_owner: bool| if is_owner { owner } else { stranger };
            let mut now = t0();
            let mut wins = 0;
            for op in ops {
                let before = r.clone();
                let result = match op {
                    Op::Claim { owner, token } => {
                        let outcome = r.claim(who(owner), token, now);
                        if outcome == Ok(ClaimOutcome::Claimed) {
                            wins += 1;
                        }
                        outcome.map(|_| ())
                    }
                    Op::Complete { owner } => r.complete(who(owner), now),
                    Op::Fail { owner } => r.fail(who(owner), "cannot list pods", now),
                    Op::Expire => {
                        r.expire(now);
                        Ok(())
                    }
                    Op::Advance(secs) => {
                        now += Duration::seconds(secs);
                        Ok(())
                    }
                };
                if result.is_err() {
                    prop_assert_eq!(&r, &before, "a refused transition changed the request");
                }
                if before.status.is_terminal() {
                    prop_assert_eq!(r.status, before.status, "left a terminal state");
                }
                assert_legal(&r, &policy);
            }
            prop_assert!(wins <= 1, "more than one claim won");
        }
    }
}
