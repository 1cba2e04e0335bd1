//! `webhooks`.

use async_trait::async_trait;
use brokkr_core::Result;
use brokkr_core::events::Webhook;
use brokkr_core::ids::WebhookId;
use brokkr_core::store::WebhookStore;

use crate::PgStore;
use crate::error::Db;
use crate::rows::get;

#[async_trait]
impl WebhookStore for PgStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhooks (id, url, secret, events, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(webhook.id.as_uuid())
        .bind(&webhook.url)
        .bind(&webhook.secret)
        .bind(&webhook.events)
        .bind(webhook.created_at)
        .execute(&self.pool)
        .await
        .db()?;
        Ok(())
    }

    async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let rows =
            sqlx::query("SELECT id, url, secret, events, created_at FROM webhooks ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .db()?;
        rows.iter()
            .map(|row| {
                Ok(Webhook {
                    id: WebhookId(get(row, "id")?),
                    url: get(row, "url")?,
                    secret: get(row, "secret")?,
                    events: get(row, "events")?,
                    created_at: get(row, "created_at")?,
                })
            })
            .collect()
    }

    async fn delete_webhook(&self, id: WebhookId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await
            .db()?;
        Ok(done.rows_affected() > 0)
    }
}
