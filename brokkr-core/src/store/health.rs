//! Health verdicts: the batch upsert and what it decided.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::health::Health;
use crate::ids::{AgentId, DeploymentObjectId};
use crate::model::HealthRecord;

/// What happened to one health record of an upsert batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpsertOutcome {
    /// Written (new, changed, or refreshed because the stored row was old). `previous`
    /// is the status it replaced (`None` for a first verdict): a transition when it
    /// differs from the new one.
    Accepted {
        /// The stored status before this write.
        previous: Option<Health>,
    },
    /// Identical verdict to the stored row, which is recent enough: not rewritten.
    Unchanged,
    /// Older than the stored `checked_at`: never overwrites newer.
    Ignored,
}

/// What [`UpsertOutcome::decide`] needs of a stored verdict: a store may compare
/// summaries by digest instead of reading them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredVerdict {
    /// The stored status.
    pub status: Health,
    /// The stored `checked_at`.
    pub checked_at: DateTime<Utc>,
    /// Whether the stored summary equals the incoming one.
    pub same_summary: bool,
}

impl StoredVerdict {
    /// `stored` as seen by `incoming`.
    pub fn of(stored: &HealthRecord, incoming: &HealthRecord) -> Self {
        Self {
            status: stored.status,
            checked_at: stored.checked_at,
            same_summary: stored.summary == incoming.summary,
        }
    }
}

impl UpsertOutcome {
    /// The contract of [`HealthStore::upsert_health`] for one record against the stored
    /// row, shared by every store so they cannot drift apart.
    pub fn decide(
        stored: Option<StoredVerdict>,
        incoming: &HealthRecord,
        rewrite_before: DateTime<Utc>,
    ) -> Self {
        let Some(old) = stored else {
            return Self::Accepted { previous: None };
        };
        if incoming.checked_at < old.checked_at {
            Self::Ignored
        } else if old.status == incoming.status
            && old.same_summary
            && old.checked_at >= rewrite_before
        {
            Self::Unchanged
        } else {
            Self::Accepted {
                previous: Some(old.status),
            }
        }
    }

    /// Whether the record is written.
    pub fn is_written(self) -> bool {
        matches!(self, Self::Accepted { .. })
    }
}

/// The latest health verdict per agent × deployment object.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// Upserts verdicts keyed by (agent, deployment object). Per record, in input order:
    /// `Ignored` when older than the stored `checked_at`; `Unchanged` when status and
    /// summary equal the stored ones and the stored `checked_at` is not before
    /// `rewrite_before`; else `Accepted` and written. Each record is decided and written
    /// atomically with its count and event; a store may write a batch in more than one
    /// transaction, so after an error part of it may be written (writing it again is
    /// harmless). Records must have distinct keys (the broker rejects duplicate
    /// batches).
    async fn upsert_health(
        &self,
        records: &[HealthRecord],
        rewrite_before: DateTime<Utc>,
    ) -> Result<Vec<UpsertOutcome>>;

    /// Verdicts of one object, one per agent.
    async fn health_of_object(&self, object: DeploymentObjectId) -> Result<Vec<HealthRecord>>;

    /// Verdicts of many objects.
    async fn health_of_objects(&self, objects: &[DeploymentObjectId]) -> Result<Vec<HealthRecord>>;

    /// Verdicts reported by one agent.
    async fn health_of_agent(&self, agent: AgentId) -> Result<Vec<HealthRecord>>;
}
