//! Diagnostics requests and their results.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::diagnostics::{ClaimOutcome, DiagnosticRequest};
use crate::ids::{AgentId, DiagnosticId};
use crate::model::DiagnosticOutcome;

/// Whether a posted diagnostics result was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOutcome {
    /// Stored now; the request moved to completed or failed.
    Stored,
    /// The same result was stored before (a retry): nothing changed.
    AlreadyStored,
}

/// Diagnostics requests and their results.
#[async_trait]
pub trait DiagnosticStore: Send + Sync {
    /// Stores new requests (one per agent). `Conflict` when an id exists.
    async fn insert_diagnostic_requests(&self, requests: &[DiagnosticRequest]) -> Result<()>;

    /// The request and its result, if any.
    async fn get_diagnostic(
        &self,
        id: DiagnosticId,
    ) -> Result<Option<(DiagnosticRequest, Option<DiagnosticOutcome>)>>;

    /// Requests of `agent` that are pending and claimable at `now`, oldest first.
    async fn pending_diagnostics(
        &self,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DiagnosticRequest>>;

    /// The claim, as one atomic conditional transition with the semantics of
    /// [`DiagnosticRequest::claim`]: only pending, only the owning agent, only before the
    /// claim deadline; among concurrent claimers exactly one wins, also across broker
    /// processes. `NotFound` for an unknown id.
    async fn claim_diagnostic(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(DiagnosticRequest, ClaimOutcome)>;

    /// Stores the claimer's one result and finishes the request, atomically. A retry
    /// with an identical result returns [`ResultOutcome::AlreadyStored`]; a different
    /// second result is a `Conflict`; `Gone` after expiry; `Forbidden` for another agent.
    async fn store_diagnostic_result(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        outcome: &DiagnosticOutcome,
        now: DateTime<Utc>,
    ) -> Result<ResultOutcome>;

    /// Deletes requests (and results) whose retention is over at `now`. Idempotent and
    /// safe to run on every replica at once: each row is deleted once. Returns how many
    /// this call deleted.
    async fn delete_expired_diagnostics(&self, now: DateTime<Utc>) -> Result<u64>;

    /// Requests by the status a reader sees at `now`: a request past its deadline counts
    /// as expired even before cleanup records it. Read-only.
    async fn diagnostic_counts(&self, now: DateTime<Utc>) -> Result<DiagnosticCounts>;
}

/// How many diagnostics requests are in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiagnosticCounts {
    /// Waiting to be claimed.
    pub pending: u64,
    /// Claimed, not answered yet.
    pub claimed: u64,
    /// Answered with a bundle.
    pub completed: u64,
    /// Answered with a failure.
    pub failed: u64,
    /// Past a deadline without an answer.
    pub expired: u64,
}

impl DiagnosticCounts {
    /// Counts one request in `status`.
    pub fn add(&mut self, status: crate::diagnostics::DiagnosticStatus) {
        use crate::diagnostics::DiagnosticStatus as S;
        let slot = match status {
            S::Pending => &mut self.pending,
            S::Claimed => &mut self.claimed,
            S::Completed => &mut self.completed,
            S::Failed => &mut self.failed,
            S::Expired => &mut self.expired,
        };
        *slot += 1;
    }
}
