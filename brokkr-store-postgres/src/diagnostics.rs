//! `diagnostic_requests` and `diagnostic_results`.

use async_trait::async_trait;
use brokkr_core::diagnostics::{ClaimOutcome, DiagnosticRequest};
use brokkr_core::ids::{AgentId, DeploymentObjectId, DiagnosticId};
use brokkr_core::model::DiagnosticOutcome;
use brokkr_core::store::{DiagnosticCounts, DiagnosticStore, ResultOutcome};
use brokkr_core::{Error, Result};
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use crate::PgStore;
use crate::error::Db;
use crate::rows::{corrupt, get, json, parse};

const COLUMNS: &str = "id, deployment_object_id, agent_id, requested_by, status, created_at,
    claim_deadline, claimed_at, claim_token, completed_at, expires_at, failure_reason";

fn request(row: &PgRow) -> Result<DiagnosticRequest> {
    Ok(DiagnosticRequest {
        id: DiagnosticId(get(row, "id")?),
        deployment_object_id: DeploymentObjectId(get(row, "deployment_object_id")?),
        agent_id: AgentId(get(row, "agent_id")?),
        requested_by: get(row, "requested_by")?,
        status: parse("status", &get::<String>(row, "status")?)?,
        created_at: get(row, "created_at")?,
        claim_deadline: get(row, "claim_deadline")?,
        claimed_at: get(row, "claimed_at")?,
        claim_token: get(row, "claim_token")?,
        completed_at: get(row, "completed_at")?,
        expires_at: get(row, "expires_at")?,
        failure_reason: get(row, "failure_reason")?,
    })
}

impl PgStore {
    async fn load_request(
        &self,
        executor: impl sqlx::PgExecutor<'_>,
        id: DiagnosticId,
        lock: bool,
    ) -> Result<DiagnosticRequest> {
        let suffix = if lock { " FOR UPDATE" } else { "" };
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM diagnostic_requests WHERE id = $1{suffix}"
        )))
        .bind(id.0)
        .fetch_optional(executor)
        .await
        .db()?;
        row.as_ref()
            .map(request)
            .transpose()?
            .ok_or_else(|| Error::not_found("diagnostics request", id))
    }
}

#[async_trait]
impl DiagnosticStore for PgStore {
    async fn insert_diagnostic_requests(&self, requests: &[DiagnosticRequest]) -> Result<()> {
        if requests.is_empty() {
            return Ok(());
        }
        let status = |r: &DiagnosticRequest| r.status.as_str().to_owned();
        sqlx::query(
            "INSERT INTO diagnostic_requests (id, deployment_object_id, agent_id, requested_by, status,
                 created_at, claim_deadline, claimed_at, claim_token, completed_at, expires_at, failure_reason)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                 $6::timestamptz[], $7::timestamptz[], $8::timestamptz[], $9::text[], $10::timestamptz[],
                 $11::timestamptz[], $12::text[])",
        )
        .bind(requests.iter().map(|r| r.id.0).collect::<Vec<Uuid>>())
        .bind(requests.iter().map(|r| r.deployment_object_id.0).collect::<Vec<Uuid>>())
        .bind(requests.iter().map(|r| r.agent_id.0).collect::<Vec<Uuid>>())
        .bind(requests.iter().map(|r| r.requested_by.clone()).collect::<Vec<_>>())
        .bind(requests.iter().map(status).collect::<Vec<_>>())
        .bind(requests.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(requests.iter().map(|r| r.claim_deadline).collect::<Vec<_>>())
        .bind(requests.iter().map(|r| r.claimed_at).collect::<Vec<_>>())
        .bind(requests.iter().map(|r| r.claim_token.clone()).collect::<Vec<_>>())
        .bind(requests.iter().map(|r| r.completed_at).collect::<Vec<_>>())
        .bind(requests.iter().map(|r| r.expires_at).collect::<Vec<_>>())
        .bind(requests.iter().map(|r| r.failure_reason.clone()).collect::<Vec<_>>())
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    async fn get_diagnostic(
        &self,
        id: DiagnosticId,
    ) -> Result<Option<(DiagnosticRequest, Option<DiagnosticOutcome>)>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {}, res.outcome FROM diagnostic_requests r
             LEFT JOIN diagnostic_results res ON res.request_id = r.id WHERE r.id = $1",
            COLUMNS
                .split(',')
                .map(|c| format!("r.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        let Some(row) = row else { return Ok(None) };
        let outcome: Option<serde_json::Value> = get(&row, "outcome")?;
        let outcome = match outcome {
            Some(_) => Some(json::<DiagnosticOutcome>(&row, "outcome")?),
            None => None,
        };
        Ok(Some((request(&row)?, outcome)))
    }

    async fn pending_diagnostics(
        &self,
        agent: AgentId,
        now: DateTime<Utc>,
    ) -> Result<Vec<DiagnosticRequest>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM diagnostic_requests
             WHERE agent_id = $1 AND status = 'pending' AND claim_deadline > $2
             ORDER BY created_at, id"
        )))
        .bind(agent.0)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .db()?;
        rows.iter().map(request).collect()
    }

    async fn claim_diagnostic(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(DiagnosticRequest, ClaimOutcome)> {
        let token = token.filter(|t| !t.is_empty());
        // The claim: one conditional update. Of concurrent claimers, on any number of
        // broker processes, exactly one matches `status = 'pending'`.
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE diagnostic_requests
             SET status = 'claimed', claimed_at = GREATEST($3, created_at), claim_token = $4
             WHERE id = $1 AND agent_id = $2 AND status = 'pending' AND $3 < claim_deadline
             RETURNING {COLUMNS}"
        )))
        .bind(id.0)
        .bind(agent.0)
        .bind(now)
        .bind(token)
        .fetch_optional(&self.pool)
        .await
        .db()?;
        if let Some(row) = row {
            return Ok((request(&row)?, ClaimOutcome::Claimed));
        }
        // Refused: the state machine, run on the current row, says why (not the owner,
        // expired, already claimed) or recognises the holder's retry.
        let mut current = self.load_request(&self.pool, id, false).await?;
        let outcome = current.claim(agent, token, now)?;
        if outcome == ClaimOutcome::Claimed {
            // The row turned claimable between the two statements: it cannot, as
            // nothing moves a request back to pending.
            return Err(Error::Conflict(format!(
                "diagnostics request {id} changed concurrently"
            )));
        }
        Ok((current, outcome))
    }

    async fn store_diagnostic_result(
        &self,
        id: DiagnosticId,
        agent: AgentId,
        outcome: &DiagnosticOutcome,
        now: DateTime<Utc>,
    ) -> Result<ResultOutcome> {
        let encoded = serde_json::to_value(outcome).map_err(|e| corrupt("outcome", e))?;
        let mut tx = self.pool.begin().await.db()?;
        let mut request = self.load_request(&mut *tx, id, true).await?;
        if request.agent_id != agent {
            return Err(Error::Forbidden(format!(
                "diagnostics request {id} belongs to another agent"
            )));
        }
        let previous: Option<serde_json::Value> =
            sqlx::query_scalar("SELECT outcome FROM diagnostic_results WHERE request_id = $1")
                .bind(id.0)
                .fetch_optional(&mut *tx)
                .await
                .db()?;
        if let Some(previous) = previous {
            let previous: DiagnosticOutcome =
                serde_json::from_value(previous).map_err(|e| corrupt("outcome", e))?;
            return if &previous == outcome {
                Ok(ResultOutcome::AlreadyStored)
            } else {
                Err(Error::Conflict(format!(
                    "diagnostics request {id} already has a different result"
                )))
            };
        }
        match outcome {
            DiagnosticOutcome::Bundle(_) => request.complete(agent, now)?,
            DiagnosticOutcome::Failed(reason) => request.fail(agent, reason.clone(), now)?,
        }
        sqlx::query(
            "UPDATE diagnostic_requests SET status = $2, completed_at = $3, expires_at = $4,
                 failure_reason = $5 WHERE id = $1",
        )
        .bind(id.0)
        .bind(request.status.as_str())
        .bind(request.completed_at)
        .bind(request.expires_at)
        .bind(&request.failure_reason)
        .execute(&mut *tx)
        .await
        .db()?;
        sqlx::query(
            "INSERT INTO diagnostic_results (request_id, outcome, stored_at) VALUES ($1, $2, $3)",
        )
        .bind(id.0)
        .bind(encoded)
        .bind(now)
        .execute(&mut *tx)
        .await
        .db()?;
        tx.commit().await.db()?;
        Ok(ResultOutcome::Stored)
    }

    async fn delete_expired_diagnostics(&self, now: DateTime<Utc>) -> Result<u64> {
        // Past `expires_at` every request is finished or expired (the claim deadline
        // comes before it), so this is exactly `DiagnosticRequest::should_delete`. Each
        // row is deleted by one statement only, however many replicas run cleanup.
        let done = sqlx::query("DELETE FROM diagnostic_requests WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await
            .db()?;
        Ok(done.rows_affected())
    }

    async fn diagnostic_counts(&self, now: DateTime<Utc>) -> Result<DiagnosticCounts> {
        // Overdue requests count as expired, as `DiagnosticRequest::status_at` says. The
        // table holds at most an hour of requests (retention), so a scan is cheap.
        let row = sqlx::query(
            "SELECT \
               count(*) FILTER (WHERE status = 'pending' AND $1 < claim_deadline) AS pending, \
               count(*) FILTER (WHERE status = 'claimed' AND $1 < expires_at) AS claimed, \
               count(*) FILTER (WHERE status = 'completed') AS completed, \
               count(*) FILTER (WHERE status = 'failed') AS failed, \
               count(*) FILTER (WHERE status = 'expired' \
                   OR (status = 'pending' AND $1 >= claim_deadline) \
                   OR (status = 'claimed' AND $1 >= expires_at)) AS expired \
             FROM diagnostic_requests",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .db()?;
        let count = |column: &str| -> Result<u64> {
            let n: i64 = get(&row, column)?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(DiagnosticCounts {
            pending: count("pending")?,
            claimed: count("claimed")?,
            completed: count("completed")?,
            failed: count("failed")?,
            expired: count("expired")?,
        })
    }
}
