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
//! The statement merges heartbeats of one agent in a batch as if they were written one
//! at a time in time order: those older than the stored heartbeat are left out, then
//! the newest time, and the newest snapshot and health check the rest carried, win. If
//! Postgres refuses a batch for a value in it (a data error), its agents are written
//! one by one, so one agent's bad row cannot fail its neighbours' heartbeats; any other
//! error (the database unreachable or slow) fails the batch at once.

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
        let beats: Vec<&HeartbeatRecord> = batch.iter().map(|(beat, _)| beat).collect();
        let written = match write_with_retries(&pool, &beats).await {
            Err(Retry::Failed(Error::Invalid(_))) if has_several_agents(&beats) => {
                // Find the agent whose row Postgres refuses instead of failing everyone.
                let mut by_agent: BTreeMap<Uuid, Vec<&HeartbeatRecord>> = BTreeMap::new();
                for beat in &beats {
                    by_agent.entry(beat.agent_id.0).or_default().push(beat);
                }
                let mut updated = HashSet::new();
                let mut failed = HashMap::new();
                for (agent, own) in by_agent {
                    match write_with_retries(&pool, &own).await {
                        Ok(agents) => updated.extend(agents),
                        Err(err) => {
                            failed.insert(agent, Error::from(err));
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

fn has_several_agents(beats: &[&HeartbeatRecord]) -> bool {
    beats.iter().any(|b| b.agent_id != beats[0].agent_id)
}

async fn write_with_retries(
    pool: &PgPool,
    rows: &[&HeartbeatRecord],
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

/// Heartbeats of distinct agents: each written unless a newer one is stored; the health
/// check time only ever moves forward.
const ONE_PER_AGENT: &str = "UPDATE agent_liveness AS l SET
         last_heartbeat_at = b.at,
         health_checked_at = GREATEST(b.checked, l.health_checked_at),
         snapshot = COALESCE(b.snapshot, l.snapshot)
     FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::jsonb[])
         AS b(id, at, checked, snapshot)
     WHERE l.agent_id = b.id
       AND (l.last_heartbeat_at IS NULL OR l.last_heartbeat_at <= b.at)
     RETURNING l.agent_id";

/// Several heartbeats of one agent, as if written one at a time in time order: those
/// older than the stored one are left out; of the rest, the newest time and snapshot
/// win, and the latest health check (never earlier than the stored one: GREATEST
/// ignores NULL).
const MERGED_PER_AGENT: &str = "WITH beats AS (
         SELECT * FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::jsonb[])
             AS t(id, at, checked, snapshot)
     ), newer AS (
         SELECT b.* FROM beats AS b JOIN agent_liveness AS l ON l.agent_id = b.id
         WHERE l.last_heartbeat_at IS NULL OR l.last_heartbeat_at <= b.at
     ), merged AS (
         SELECT id, max(at) AS at,
                max(checked) AS checked,
                (array_agg(snapshot ORDER BY at DESC) FILTER (WHERE snapshot IS NOT NULL))[1] AS snapshot
         FROM newer GROUP BY id
     )
     UPDATE agent_liveness AS l SET
         last_heartbeat_at = m.at,
         health_checked_at = GREATEST(m.checked, l.health_checked_at),
         snapshot = COALESCE(m.snapshot, l.snapshot)
     FROM merged AS m
     WHERE l.agent_id = m.id
       AND (l.last_heartbeat_at IS NULL OR l.last_heartbeat_at <= m.at)
     RETURNING l.agent_id";

/// Writes `rows` with one statement; the agents whose liveness it updated (not: unknown,
/// or every one of its heartbeats is older than the stored one).
async fn write_batch(pool: &PgPool, rows: &[&HeartbeatRecord]) -> Result<HashSet<Uuid>, Retry> {
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
    // Usually each agent has one heartbeat in the batch: then a plain update is the same
    // as writing them one at a time. Otherwise the statement merges per agent.
    let mut agents: Vec<Uuid> = ids.clone();
    agents.sort_unstable();
    agents.dedup();
    let sql = if agents.len() == ids.len() {
        ONE_PER_AGENT
    } else {
        MERGED_PER_AGENT
    };
    let updated = sqlx::query(sql)
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
