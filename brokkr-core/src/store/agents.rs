//! Agents, their keys and their liveness.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Result;
use crate::ids::AgentId;
use crate::model::{Agent, ClusterSnapshot};

/// SHA-256 of a PAK: the only form in which a key is stored.
pub type PakHash = [u8; 32];

/// One page of a listing ordered by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Items per page (callers cap it; stores honour it as given).
    pub limit: usize,
    /// Return items whose id is greater than this one.
    pub after: Option<Uuid>,
}

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, ordered by id.
    pub items: Vec<T>,
    /// Id to pass as `after` for the next page; `None` on the last page.
    pub next: Option<Uuid>,
}

/// A heartbeat as received.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatRecord {
    /// Who sent it.
    pub agent_id: AgentId,
    /// When the broker received it (its clock, not the agent's).
    pub received_at: DateTime<Utc>,
    /// The snapshot it carried (latest only is kept; an empty snapshot keeps the previous).
    pub snapshot: ClusterSnapshot,
    /// End of the agent's last complete health cycle, when it said.
    pub health_checked_at: Option<DateTime<Utc>>,
}

/// What the broker knows of an agent's liveness.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentLiveness {
    /// When the last heartbeat arrived.
    pub last_heartbeat_at: Option<DateTime<Utc>>,
    /// End of the agent's last complete health cycle.
    pub health_checked_at: Option<DateTime<Utc>>,
    /// The latest non-empty cluster snapshot.
    pub snapshot: Option<ClusterSnapshot>,
}

/// Agents, their keys and their liveness.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Stores a new agent and the hash of its key. `Conflict` when the id or the key hash
    /// exists.
    async fn insert_agent(&self, agent: &Agent, pak_hash: &PakHash) -> Result<()>;

    /// The agent, or `None`.
    async fn get_agent(&self, id: AgentId) -> Result<Option<Agent>>;

    /// Agents ordered by id, a page at a time.
    async fn list_agents(&self, page: PageRequest) -> Result<Page<Agent>>;

    /// Deletes the agent and everything that is only its own (key, liveness, targets,
    /// deliveries, work orders, verdicts, diagnostics), keeping the fleet counts right.
    /// Returns whether it existed.
    async fn delete_agent(&self, id: AgentId) -> Result<bool>;

    /// Replaces the agent's key by `pak_hash`, or revokes it (`None`): the old key stops
    /// working at once. `NotFound` for an unknown agent; `Conflict` when the new hash
    /// belongs to another agent.
    async fn replace_pak(&self, id: AgentId, pak_hash: Option<&PakHash>) -> Result<()>;

    /// The agent whose key hashes to `pak_hash` (an indexed lookup, never a scan).
    async fn agent_for_pak(&self, pak_hash: &PakHash) -> Result<Option<AgentId>>;

    /// Records heartbeats of many agents at once. Heartbeats of unknown agents are
    /// skipped; returns how many were recorded. A heartbeat older than the stored one
    /// does not move `last_heartbeat_at` back.
    async fn record_heartbeats(&self, beats: &[HeartbeatRecord]) -> Result<u64>;

    /// The agent's liveness; `None` for an unknown agent.
    async fn liveness(&self, id: AgentId) -> Result<Option<AgentLiveness>>;

    /// The liveness of each of `ids` in one read (listing agents must not cost a round
    /// trip per agent); unknown agents are left out.
    async fn liveness_of(
        &self,
        ids: &[AgentId],
    ) -> Result<std::collections::HashMap<AgentId, AgentLiveness>>;
}
