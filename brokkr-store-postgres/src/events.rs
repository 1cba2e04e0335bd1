//! `fleet_events` (the outbox), `agent_liveness.announced_staleness` and
//! `webhook_event_claims`.

use async_trait::async_trait;
use brokkr_core::Result;
use brokkr_core::events::{FleetEvent, StoredEvent};
use brokkr_core::ids::{AgentId, WebhookId};
use brokkr_core::staleness::Staleness;
use brokkr_core::store::EventStore;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use crate::PgStore;
use crate::error::Db;
use crate::rows::{corrupt, get, parse, text};

use crate::locks::OUTBOX_LOCK;

fn seq(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

/// Appends `events` inside the caller's transaction (its last statement, so the lock is
/// held only briefly); their sequence numbers in order.
pub(crate) async fn append(
    tx: &mut PgConnection,
    events: &[FleetEvent],
    at: DateTime<Utc>,
) -> Result<Vec<u64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query(OUTBOX_LOCK).execute(&mut *tx).await.db()?;
    let mut bodies = Vec::with_capacity(events.len());
    for event in events {
        bodies.push(serde_json::to_value(event).map_err(|e| corrupt("event", e))?);
    }
    let rows = sqlx::query(
        "INSERT INTO fleet_events (body, created_at)
         SELECT b, $2 FROM UNNEST($1::jsonb[]) WITH ORDINALITY AS e(b, n) ORDER BY n
         RETURNING seq",
    )
    .bind(bodies)
    .bind(at)
    .fetch_all(&mut *tx)
    .await
    .db()?;
    let mut seqs: Vec<u64> = rows.iter().map(|r| seq(r.get::<i64, _>("seq"))).collect();
    seqs.sort_unstable();
    Ok(seqs)
}

#[async_trait]
impl EventStore for PgStore {
    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>> {
        let rows =
            sqlx::query("SELECT seq, body FROM fleet_events WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(i64::try_from(after).unwrap_or(i64::MAX))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .db()?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq = seq(get(row, "seq")?);
            // An event this version cannot read (written by a newer replica during a
            // rolling upgrade) is skipped, not allowed to stop every reader behind it.
            match serde_json::from_value(get(row, "body")?) {
                Ok(event) => events.push(StoredEvent { seq, event }),
                Err(error) => tracing::warn!(seq, %error, "skipping an unreadable fleet event"),
            }
        }
        Ok(events)
    }

    async fn last_event_seq(&self) -> Result<u64> {
        let last: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM fleet_events")
            .fetch_one(&self.pool)
            .await
            .db()?;
        Ok(last.map_or(0, seq))
    }

    async fn announce_staleness(
        &self,
        agent: AgentId,
        state: Staleness,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredEvent>> {
        let mut tx = self.pool.begin().await.db()?;
        // The row lock makes concurrent announcements of one agent take turns: the
        // second sees what the first recorded.
        let row = sqlx::query(
            "SELECT announced_staleness, announced_at FROM agent_liveness
             WHERE agent_id = $1 FOR UPDATE",
        )
        .bind(agent.0)
        .fetch_optional(&mut *tx)
        .await
        .db()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let before: Option<String> = get(&row, "announced_staleness")?;
        let before: Option<Staleness> = before
            .map(|b| parse("announced_staleness", &b))
            .transpose()?;
        let announced_at: Option<DateTime<Utc>> = get(&row, "announced_at")?;
        // A slow replica's observation must not undo a newer one.
        if announced_at.is_some_and(|known| at < known) {
            return Ok(None);
        }
        sqlx::query(
            "UPDATE agent_liveness SET announced_staleness = $2, announced_at = $3
             WHERE agent_id = $1",
        )
        .bind(agent.0)
        .bind(text(&state))
        .bind(at)
        .execute(&mut *tx)
        .await
        .db()?;
        if before == Some(state) {
            tx.commit().await.db()?;
            return Ok(None);
        }
        let stored = match before {
            None => None,
            Some(from) => {
                let event = FleetEvent::AgentStalenessChanged {
                    agent_id: agent,
                    from,
                    to: state,
                    at,
                };
                let seqs = append(&mut tx, std::slice::from_ref(&event), at).await?;
                seqs.first().map(|&seq| StoredEvent { seq, event })
            }
        };
        tx.commit().await.db()?;
        Ok(stored)
    }

    async fn claim_event_delivery(
        &self,
        webhook: WebhookId,
        seq: u64,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO webhook_event_claims (webhook_id, event_seq, claimed_at)
             SELECT id, $2, $3 FROM webhooks WHERE id = $1
             ON CONFLICT DO NOTHING",
        )
        .bind(webhook.as_uuid())
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .bind(at)
        .execute(&self.pool)
        .await;
        match done {
            Ok(done) => Ok(done.rows_affected() == 1),
            // The webhook was deleted between the SELECT and the insert, or the event
            // is past retention.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23503") => Ok(false),
            Err(other) => Err(crate::PgStoreError::Sqlx(other).into()),
        }
    }

    async fn delete_events_before(&self, before: DateTime<Utc>) -> Result<u64> {
        // Their delivery claims go with them (ON DELETE CASCADE).
        let done = sqlx::query("DELETE FROM fleet_events WHERE created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(done.rows_affected())
    }
}
