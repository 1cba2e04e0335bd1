//! `deployment_health` and its maintained counts in `agent_health_counts`.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use brokkr_core::Result;
use brokkr_core::events::FleetEvent;
use brokkr_core::health::Health;
use brokkr_core::ids::{AgentId, DeploymentObjectId};
use brokkr_core::model::HealthRecord;
use brokkr_core::store::{HealthStore, StoredVerdict, UpsertOutcome};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::PgStore;
use crate::error::Db;
use crate::locks::AGENT_LOCK;
use crate::rows::{corrupt, get, json, parse, text};

const COLUMNS: &str = "agent_id, deployment_object_id, status, summary, checked_at, reported_at";

/// The first 16 bytes of the SHA-256 of a summary's JSON. Equal digests mean equal
/// summaries (a collision is beyond practical odds); equal summaries serialize alike
/// (fields in declaration order), and if they ever did not, the cost would be one
/// needless rewrite, never a skipped one.
fn summary_digest(json: &str) -> [u8; 16] {
    use sha2::Digest;
    let full = sha2::Sha256::digest(json.as_bytes());
    let mut out = [0; 16];
    out.copy_from_slice(&full[..16]);
    out
}

fn record(row: &PgRow) -> Result<HealthRecord> {
    Ok(HealthRecord {
        agent_id: AgentId(get(row, "agent_id")?),
        deployment_object_id: DeploymentObjectId(get(row, "deployment_object_id")?),
        status: parse("status", &get::<String>(row, "status")?)?,
        summary: json(row, "summary")?,
        checked_at: get(row, "checked_at")?,
        reported_at: get(row, "reported_at")?,
    })
}

impl PgStore {
    /// The common write in one statement, without a transaction: verdicts that keep
    /// their stored status and that [`UpsertOutcome::decide`] accepts (not older than
    /// the stored check; a new summary, or a stored row older than `rewrite_before`).
    /// They change no counts and raise no events. Returns the (agent, object) keys it
    /// wrote; every other record (new, a status change, unchanged, older) is left to
    /// [`Self::decide_and_write`].
    ///
    /// The statement takes the agents' advisory locks before it writes, so it never runs
    /// inside another writer's read-decide-write transaction. It only updates rows that
    /// exist (by its snapshot; a row inserted meanwhile is left to the transaction), and
    /// a row changed meanwhile is judged again as it is now (Postgres re-checks an
    /// `UPDATE`'s conditions against the newest version of a row it has to wait for).
    async fn rewrite_same_status(
        &self,
        batch: &Batch<'_>,
        rewrite_before: DateTime<Utc>,
    ) -> Result<HashSet<Key>> {
        let r = batch.records;
        let rows = sqlx::query(concat!(
            "WITH locked AS MATERIALIZED (
                 SELECT count(pg_advisory_xact_lock(",
            agent_lock_key!("a"),
            ")) AS n
                 FROM UNNEST($8::uuid[]) AS l(a)
             )
             UPDATE deployment_health AS h SET
                 summary = i.summary::jsonb, checked_at = i.checked_at,
                 reported_at = i.reported_at, summary_digest = i.digest
             FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::bytea[])
                 AS i(agent_id, object_id, status, summary, checked_at, reported_at, digest)
             CROSS JOIN locked
             WHERE h.agent_id = i.agent_id AND h.deployment_object_id = i.object_id
               AND h.status = i.status
               AND i.checked_at >= h.checked_at
               AND (h.summary_digest IS DISTINCT FROM i.digest OR h.checked_at < $9)
             RETURNING h.agent_id, h.deployment_object_id",
        ))
        .bind(r.iter().map(|r| r.agent_id.0).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.deployment_object_id.0).collect::<Vec<_>>())
        .bind(r.iter().map(|r| text(&r.status)).collect::<Vec<_>>())
        .bind(&batch.texts)
        .bind(r.iter().map(|r| r.checked_at).collect::<Vec<_>>())
        .bind(r.iter().map(|r| r.reported_at).collect::<Vec<_>>())
        .bind(batch.digests.iter().map(|d| d.to_vec()).collect::<Vec<_>>())
        .bind(batch.agents(0..batch.records.len()))
        .bind(rewrite_before)
        .fetch_all(&self.pool)
        .await
        .db()?;
        let mut written = HashSet::with_capacity(rows.len());
        for row in &rows {
            written.insert((get(row, "agent_id")?, get(row, "deployment_object_id")?));
        }
        Ok(written)
    }

    /// Records `picked` of the batch in one transaction holding their agents' advisory
    /// locks: reads the stored rows, decides each record as every store does, writes
    /// the accepted ones, moves the maintained counts and appends status changes to the
    /// events outbox. Outcomes in the order of `picked`.
    async fn decide_and_write(
        &self,
        batch: &Batch<'_>,
        picked: &[usize],
        rewrite_before: DateTime<Utc>,
    ) -> Result<Vec<UpsertOutcome>> {
        let records = batch.records;
        let mut tx = self.pool.begin().await.db()?;
        // Batches of one agent are serialized (they touch only that agent's rows), so
        // the stored rows read here stay current until commit.
        for agent in batch.agents(picked.iter().copied()) {
            sqlx::query(AGENT_LOCK)
                .bind(agent.to_string())
                .execute(&mut *tx)
                .await
                .db()?;
        }
        let keys_a: Vec<Uuid> = picked.iter().map(|i| records[*i].agent_id.0).collect();
        let keys_o: Vec<Uuid> = picked
            .iter()
            .map(|i| records[*i].deployment_object_id.0)
            .collect();
        let rows = sqlx::query(
            "SELECT h.agent_id, h.deployment_object_id, h.status, h.checked_at, h.summary_digest
             FROM deployment_health h
             JOIN UNNEST($1::uuid[], $2::uuid[]) AS k(a, o)
               ON h.agent_id = k.a AND h.deployment_object_id = k.o",
        )
        .bind(&keys_a)
        .bind(&keys_o)
        .fetch_all(&mut *tx)
        .await
        .db()?;
        // Per (agent, object): the stored verdict, its summary digest aside.
        let mut stored: HashMap<Key, (StoredVerdict, Option<Vec<u8>>)> =
            HashMap::with_capacity(rows.len());
        for row in &rows {
            let verdict = StoredVerdict {
                status: parse("status", &get::<String>(row, "status")?)?,
                checked_at: get(row, "checked_at")?,
                same_summary: false,
            };
            stored.insert(
                (get(row, "agent_id")?, get(row, "deployment_object_id")?),
                (verdict, get(row, "summary_digest")?),
            );
        }

        // The same decision as every store makes.
        let mut outcomes = Vec::with_capacity(records.len());
        let mut deltas: HashMap<(Uuid, Health), i64> = HashMap::new();
        let mut write: Vec<usize> = Vec::new();
        let mut events = Vec::new();
        for &i in picked {
            let r = &records[i];
            let old =
                stored
                    .get(&(r.agent_id.0, r.deployment_object_id.0))
                    .map(|(verdict, digest)| StoredVerdict {
                        same_summary: digest.as_deref() == Some(batch.digests[i].as_slice()),
                        ..*verdict
                    });
            let outcome = UpsertOutcome::decide(old, r, rewrite_before);
            if let UpsertOutcome::Accepted { previous } = outcome {
                events.extend(FleetEvent::health_transition(previous, r));
                if let Some(old) = previous {
                    *deltas.entry((r.agent_id.0, old)).or_default() -= 1;
                }
                *deltas.entry((r.agent_id.0, r.status)).or_default() += 1;
                write.push(i);
            }
            outcomes.push(outcome);
        }

        if !write.is_empty() {
            let pick = |i: &usize| &records[*i];
            sqlx::query(
                "INSERT INTO deployment_health (agent_id, deployment_object_id, status, summary, checked_at, reported_at, summary_digest)
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[]::jsonb[], $5::timestamptz[], $6::timestamptz[], $7::bytea[])
                 ON CONFLICT (agent_id, deployment_object_id) DO UPDATE SET
                     status = EXCLUDED.status, summary = EXCLUDED.summary,
                     checked_at = EXCLUDED.checked_at, reported_at = EXCLUDED.reported_at,
                     summary_digest = EXCLUDED.summary_digest",
            )
            .bind(write.iter().map(|i| pick(i).agent_id.0).collect::<Vec<_>>())
            .bind(write.iter().map(|i| pick(i).deployment_object_id.0).collect::<Vec<_>>())
            .bind(write.iter().map(|i| text(&pick(i).status)).collect::<Vec<_>>())
            .bind(write.iter().map(|i| batch.texts[*i].as_str()).collect::<Vec<_>>())
            .bind(write.iter().map(|i| pick(i).checked_at).collect::<Vec<_>>())
            .bind(write.iter().map(|i| pick(i).reported_at).collect::<Vec<_>>())
            .bind(write.iter().map(|i| batch.digests[*i].to_vec()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .db()?;
            // The agents' own count rows: written only under their advisory locks, so
            // no other writer waits for them.
            let mut agents = Vec::new();
            let mut statuses = Vec::new();
            let mut changes = Vec::new();
            for ((agent, status), delta) in &deltas {
                if *delta != 0 {
                    agents.push(*agent);
                    statuses.push(text(status));
                    changes.push(*delta);
                }
            }
            if !agents.is_empty() {
                sqlx::query(
                    "INSERT INTO agent_health_counts AS c (agent_id, status, count)
                     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bigint[])
                     ON CONFLICT (agent_id, status) DO UPDATE SET count = c.count + EXCLUDED.count",
                )
                .bind(agents)
                .bind(statuses)
                .bind(changes)
                .execute(&mut *tx)
                .await
                .db()?;
            }
        }
        // Status changes reach the outbox in the same transaction as the verdicts.
        if let Some(first) = picked.first() {
            crate::events::append(&mut tx, &events, records[*first].reported_at).await?;
        }
        tx.commit().await.db()?;
        Ok(outcomes)
    }
}

/// (agent, object): one row of `deployment_health`.
type Key = (Uuid, Uuid);

/// A batch ready to write: each summary serialized once (its text is written, its
/// digest decides whether it changed).
struct Batch<'a> {
    records: &'a [HealthRecord],
    texts: Vec<String>,
    digests: Vec<[u8; 16]>,
}

impl<'a> Batch<'a> {
    fn new(records: &'a [HealthRecord]) -> Result<Self> {
        let mut texts = Vec::with_capacity(records.len());
        let mut digests = Vec::with_capacity(records.len());
        for r in records {
            let text = serde_json::to_string(&r.summary).map_err(|e| corrupt("summary", e))?;
            digests.push(summary_digest(&text));
            texts.push(text);
        }
        Ok(Self {
            records,
            texts,
            digests,
        })
    }

    /// The distinct agents of `picked`, sorted: locks are always taken in this order,
    /// so two writers never wait for each other in a cycle.
    fn agents(&self, picked: impl IntoIterator<Item = usize>) -> Vec<Uuid> {
        let mut agents: Vec<Uuid> = picked
            .into_iter()
            .map(|i| self.records[i].agent_id.0)
            .collect();
        agents.sort_unstable();
        agents.dedup();
        agents
    }

    fn has_duplicate_keys(&self) -> bool {
        let mut seen = HashSet::with_capacity(self.records.len());
        !self
            .records
            .iter()
            .all(|r| seen.insert((r.agent_id, r.deployment_object_id)))
    }
}

#[async_trait]
impl HealthStore for PgStore {
    async fn upsert_health(
        &self,
        records: &[HealthRecord],
        rewrite_before: DateTime<Utc>,
    ) -> Result<Vec<UpsertOutcome>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let batch = Batch::new(records)?;
        let mut outcomes: Vec<Option<UpsertOutcome>> = vec![None; records.len()];
        if !batch.has_duplicate_keys() {
            let written = self.rewrite_same_status(&batch, rewrite_before).await?;
            for (outcome, r) in outcomes.iter_mut().zip(records) {
                if written.contains(&(r.agent_id.0, r.deployment_object_id.0)) {
                    *outcome = Some(UpsertOutcome::Accepted {
                        previous: Some(r.status),
                    });
                }
            }
        }
        let rest: Vec<usize> = (0..records.len())
            .filter(|i| outcomes[*i].is_none())
            .collect();
        if !rest.is_empty() {
            let decided = self.decide_and_write(&batch, &rest, rewrite_before).await?;
            for (i, outcome) in rest.into_iter().zip(decided) {
                outcomes[i] = Some(outcome);
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(UpsertOutcome::Ignored))
            .collect())
    }

    async fn health_of_object(&self, object: DeploymentObjectId) -> Result<Vec<HealthRecord>> {
        self.health_of_objects(&[object]).await
    }

    async fn health_of_objects(&self, objects: &[DeploymentObjectId]) -> Result<Vec<HealthRecord>> {
        let ids: Vec<Uuid> = objects.iter().map(|o| o.0).collect();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployment_health WHERE deployment_object_id = ANY($1)
             ORDER BY deployment_object_id, agent_id"
        )))
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(record).collect()
    }

    async fn health_of_agent(&self, agent: AgentId) -> Result<Vec<HealthRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM deployment_health WHERE agent_id = $1 ORDER BY deployment_object_id"
        )))
        .bind(agent.0)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(record).collect()
    }
}
