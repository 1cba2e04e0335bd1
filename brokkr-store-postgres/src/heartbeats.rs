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
//! not cancel a write other callers wait on. If the task dies (its runtime shut down),
//! the guard fails whoever was waiting and lets the next caller start a new writer.

use std::collections::{HashMap, HashSet};
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
            let (this, pool) = (self.clone(), pool.clone());
            tokio::spawn(async move { this.write_until_empty(pool).await });
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

    async fn write_until_empty(self: Arc<Self>, pool: PgPool) {
        let mut guard = WriterGuard {
            commit: &self,
            finished: false,
        };
        loop {
            let batch: Vec<Waiter> = {
                let mut queue = guard.commit.lock();
                if queue.waiting.is_empty() {
                    queue.writing = false;
                    guard.finished = true;
                    break;
                }
                let take = queue.waiting.len().min(MAX_BATCH);
                queue.waiting.drain(..take).collect()
            };
            let beats: Vec<&HeartbeatRecord> = batch.iter().map(|(beat, _)| beat).collect();
            let mut written = write_batch(&pool, &beats).await;
            for _ in 0..DEADLOCK_RETRIES {
                match &written {
                    Err(Retry::Deadlock(_)) => written = write_batch(&pool, &beats).await,
                    _ => break,
                }
            }
            let written = written.map_err(Error::from);
            // The statement keeps each agent's newest heartbeat of the batch (compared
            // here, not with the stored value, which Postgres keeps to the microsecond).
            let mut newest: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
            for (beat, _) in &batch {
                let at = newest.entry(beat.agent_id.0).or_insert(beat.received_at);
                *at = (*at).max(beat.received_at);
            }
            for (beat, reply) in batch {
                let outcome = match &written {
                    Ok(updated) => Ok(updated.contains(&beat.agent_id.0)
                        && newest.get(&beat.agent_id.0) == Some(&beat.received_at)),
                    Err(err) => Err(err.clone()),
                };
                // The caller may have gone away; the heartbeat is recorded all the same.
                let _ = reply.send(outcome);
            }
        }
    }
}

/// Fails the waiting callers and frees the writer slot when the writer task is dropped
/// before it emptied the queue (its runtime shut down).
struct WriterGuard<'a> {
    commit: &'a GroupCommit,
    /// The writer emptied the queue and stopped normally.
    finished: bool,
}

impl Drop for WriterGuard<'_> {
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

/// Writes `beats` with one statement; the agents whose liveness it updated.
async fn write_batch(pool: &PgPool, beats: &[&HeartbeatRecord]) -> Result<HashSet<Uuid>, Retry> {
    let mut ids = Vec::with_capacity(beats.len());
    let mut at = Vec::with_capacity(beats.len());
    let mut checked: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(beats.len());
    let mut snapshots: Vec<Option<serde_json::Value>> = Vec::with_capacity(beats.len());
    for beat in beats {
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
    // Per agent only its newest heartbeat of the batch counts, and never one older than
    // what is stored.
    let rows = sqlx::query(
        "UPDATE agent_liveness AS l SET
             last_heartbeat_at = b.at,
             health_checked_at = COALESCE(b.checked, l.health_checked_at),
             snapshot = COALESCE(b.snapshot, l.snapshot)
         FROM (
             SELECT DISTINCT ON (id) id, at, checked, snapshot
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::jsonb[])
                 AS t(id, at, checked, snapshot)
             ORDER BY id, at DESC
         ) AS b
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
    let rows = match rows {
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
    let mut updated = HashSet::with_capacity(rows.len());
    for row in &rows {
        let agent: Uuid = row
            .try_get("agent_id")
            .map_err(|e| Retry::Failed(corrupt("agent_id", e)))?;
        updated.insert(agent);
    }
    Ok(updated)
}
