//! Group commit for heartbeats.
//!
//! Every agent sends a heartbeat every few seconds, so at fleet scale heartbeats are the
//! most frequent write. Written one `UPDATE` (and one commit) each, they cost a WAL flush
//! apiece. Here a heartbeat joins a queue; one writer takes everything queued and writes
//! it with one statement, and each caller is answered only after that statement
//! committed. While a write is under way the next batch gathers, so there is no timer:
//! an idle broker writes a lone heartbeat at once, a busy one writes hundreds per commit.
//!
//! The writer is a spawned task, so a caller that goes away (a client hanging up) does
//! not cancel a write other callers wait on. If the task is dropped (its runtime shut
//! down, even before it first ran), its guard fails whoever was waiting and lets the
//! next caller start a new writer.
//!
//! Heartbeats of one agent in a batch are merged first (the newest time, the newest
//! snapshot and health check any of them carried), so the statement has one row per
//! agent. If a batch fails for a reason other than a deadlock, its agents are written
//! one by one, so one agent's bad row cannot fail its neighbours' heartbeats.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use brokkr_core::store::HeartbeatRecord;
use brokkr_core::{Error, Result};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::PgStoreError;
use crate::rows::corrupt;

/// Most heartbeats one statement carries; a longer queue is written in several.
const MAX_BATCH: usize = 1_000;

/// How often a batch is retried after a deadlock with another broker's batch (two
/// replicas updating the same agents in different orders); each retry is a new attempt.
const DEADLOCK_RETRIES: usize = 3;

/// One queued heartbeat and who waits for it: `true` once it was recorded.
type Waiter = (HeartbeatRecord, oneshot::Sender<Result<bool>>);

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiter>,
    /// A writer task is running (it empties `waiting` before it stops).
    writing: bool,
}

/// The heartbeat queue of one pool (shared by the store's clones).
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue holds no invariant a panicking holder could break half-way.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `beats` (all before the first wait, so they can share a batch) and waits
    /// until the batches holding them committed; how many were recorded (not: an unknown
    /// agent, or older than the stored heartbeat).
    pub(crate) async fn record(
        self: &Arc<Self>,
        pool: &PgPool,
        beats: &[HeartbeatRecord],
    ) -> Result<u64> {
        let mut replies = Vec::with_capacity(beats.len());
        let start_writer = {
            let mut queue = self.lock();
            for beat in beats {
                let (tx, rx) = oneshot::channel();
                queue.waiting.push((beat.clone(), tx));
                replies.push(rx);
            }
            !std::mem::replace(&mut queue.writing, true)
        };
        if start_writer {
            // The guard exists before the task does: if the task is never polled, or
            // spawning fails, dropping it still frees the writer slot.
            let guard = WriterGuard {
                commit: self.clone(),
                finished: false,
            };
            let pool = pool.clone();
            tokio::spawn(write_until_empty(guard, pool));
        }
        let mut recorded = 0;
        for reply in replies {
            let stored = reply
                .await
                .map_err(|_| Error::Unavailable("the heartbeat writer stopped".into()))??;
            recorded += u64::from(stored);
        }
        Ok(recorded)
    }
}

async fn write_until_empty(mut guard: WriterGuard, pool: PgPool) {
    loop {
        let batch: Vec<Waiter> = {
            let mut queue = guard.commit.lock();
            if queue.waiting.is_empty() {
                queue.writing = false;
                guard.finished = true;
                return;
            }
            let take = queue.waiting.len().min(MAX_BATCH);
            queue.waiting.drain(..take).collect()
        };
        let rows = merge(batch.iter().map(|(beat, _)| beat));
        let written = match write_with_retries(&pool, &rows).await {
            Err(Retry::Failed(_)) if rows.len() > 1 => {
                // Find the row Postgres refuses instead of failing everyone with it.
                let mut updated = HashSet::new();
                let mut failed = HashMap::new();
                for row in &rows {
                    match write_with_retries(&pool, std::slice::from_ref(row)).await {
                        Ok(agents) => updated.extend(agents),
                        Err(err) => {
                            failed.insert(row.agent_id.0, Error::from(err));
                        }
                    }
                }
                Ok((updated, failed))
            }
            other => other
                .map(|updated| (updated, HashMap::new()))
                .map_err(Error::from),
        };
        for (beat, reply) in batch {
            let outcome = match &written {
                Ok((_, failed)) if failed.contains_key(&beat.agent_id.0) => {
                    Err(failed[&beat.agent_id.0].clone())
                }
                Ok((updated, _)) => Ok(updated.contains(&beat.agent_id.0)),
                Err(err) => Err(err.clone()),
            };
            // The caller may have gone away; the heartbeat is recorded all the same.
            let _ = reply.send(outcome);
        }
    }
}

/// One row per agent: the newest time, and the newest snapshot and health check that
/// any of its heartbeats carried (an empty snapshot keeps the previous one, as when the
/// heartbeats are written one at a time).
fn merge<'a>(beats: impl Iterator<Item = &'a HeartbeatRecord>) -> Vec<HeartbeatRecord> {
    let mut by_agent: BTreeMap<Uuid, Vec<&HeartbeatRecord>> = BTreeMap::new();
    for beat in beats {
        by_agent.entry(beat.agent_id.0).or_default().push(beat);
    }
    by_agent
        .into_values()
        .filter_map(|mut beats| {
            beats.sort_by_key(|b| b.received_at);
            let newest = *beats.last()?;
            Some(HeartbeatRecord {
                agent_id: newest.agent_id,
                received_at: newest.received_at,
                snapshot: beats
                    .iter()
                    .rev()
                    .find(|b| !b.snapshot.is_empty())
                    .map(|b| b.snapshot.clone())
                    .unwrap_or_default(),
                health_checked_at: beats.iter().filter_map(|b| b.health_checked_at).max(),
            })
        })
        .collect()
}

async fn write_with_retries(
    pool: &PgPool,
    rows: &[HeartbeatRecord],
) -> Result<HashSet<Uuid>, Retry> {
    let mut written = write_batch(pool, rows).await;
    for _ in 0..DEADLOCK_RETRIES {
        match &written {
            Err(Retry::Deadlock(_)) => written = write_batch(pool, rows).await,
            _ => break,
        }
    }
    written
}

/// Fails the waiting callers and frees the writer slot when the writer task is dropped
/// before it emptied the queue (its runtime shut down).
struct WriterGuard {
    commit: Arc<GroupCommit>,
    /// The writer emptied the queue and stopped normally.
    finished: bool,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut queue = self.commit.lock();
        queue.writing = false;
        for (_, reply) in queue.waiting.drain(..) {
            let _ = reply.send(Err(Error::Unavailable(
                "the heartbeat writer stopped".into(),
            )));
        }
    }
}

/// Why a batch was not written.
enum Retry {
    /// Another transaction held rows this one needed, and this one lost: try again.
    Deadlock(Error),
    Failed(Error),
}

impl From<Retry> for Error {
    fn from(value: Retry) -> Self {
        match value {
            Retry::Deadlock(err) | Retry::Failed(err) => err,
        }
    }
}

/// Writes `rows` (one per agent) with one statement; the agents whose liveness it
/// updated (not: unknown, or a newer heartbeat is stored).
async fn write_batch(pool: &PgPool, rows: &[HeartbeatRecord]) -> Result<HashSet<Uuid>, Retry> {
    let mut ids = Vec::with_capacity(rows.len());
    let mut at = Vec::with_capacity(rows.len());
    let mut checked: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(rows.len());
    let mut snapshots: Vec<Option<serde_json::Value>> = Vec::with_capacity(rows.len());
    for beat in rows {
        ids.push(beat.agent_id.0);
        at.push(beat.received_at);
        checked.push(beat.health_checked_at);
        snapshots.push(if beat.snapshot.is_empty() {
            None
        } else {
            Some(
                serde_json::to_value(&beat.snapshot)
                    .map_err(|e| Retry::Failed(corrupt("snapshot", e)))?,
            )
        });
    }
    // Never one older than what is stored.
    let updated = sqlx::query(
        "UPDATE agent_liveness AS l SET
             last_heartbeat_at = b.at,
             health_checked_at = COALESCE(b.checked, l.health_checked_at),
             snapshot = COALESCE(b.snapshot, l.snapshot)
         FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::jsonb[])
             AS b(id, at, checked, snapshot)
         WHERE l.agent_id = b.id
           AND (l.last_heartbeat_at IS NULL OR l.last_heartbeat_at <= b.at)
         RETURNING l.agent_id",
    )
    .bind(ids)
    .bind(at)
    .bind(checked)
    .bind(snapshots)
    .fetch_all(pool)
    .await;
    let updated = match updated {
        Ok(rows) => rows,
        Err(err) => {
            let deadlock =
                matches!(&err, sqlx::Error::Database(db) if db.code().as_deref() == Some("40P01"));
            let err = Error::from(PgStoreError::Sqlx(err));
            return Err(if deadlock {
                Retry::Deadlock(err)
            } else {
                Retry::Failed(err)
            });
        }
    };
    let mut agents = HashSet::with_capacity(updated.len());
    for row in &updated {
        let agent: Uuid = row
            .try_get("agent_id")
            .map_err(|e| Retry::Failed(corrupt("agent_id", e)))?;
        agents.insert(agent);
    }
    Ok(agents)
}

#[cfg(test)]
mod tests {
    use brokkr_core::ids::AgentId;
    use brokkr_core::model::ClusterSnapshot;
    use chrono::TimeZone;

    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).single().unwrap()
    }

    #[test]
    fn heartbeats_of_one_agent_merge_into_the_newest_with_everything_they_carried() {
        let (a, b) = (AgentId::new(), AgentId::new());
        let beat = |agent, s, nodes: Option<i64>, checked: Option<i64>| HeartbeatRecord {
            agent_id: agent,
            received_at: at(s),
            snapshot: ClusterSnapshot {
                node_count: nodes,
                ..ClusterSnapshot::default()
            },
            health_checked_at: checked.map(at),
        };
        let beats = [
            beat(a, 2, Some(3), None),
            beat(b, 1, None, None),
            beat(a, 5, None, None),
            beat(a, 4, Some(4), Some(-10)),
        ];
        let merged = merge(beats.iter());
        assert_eq!(merged.len(), 2);
        let of_a = merged.iter().find(|m| m.agent_id == a).unwrap();
        assert_eq!(of_a.received_at, at(5));
        assert_eq!(
            of_a.snapshot.node_count,
            Some(4),
            "the newest snapshot carried"
        );
        assert_eq!(of_a.health_checked_at, Some(at(-10)));
        let of_b = merged.iter().find(|m| m.agent_id == b).unwrap();
        assert!(of_b.snapshot.is_empty());
    }
}
