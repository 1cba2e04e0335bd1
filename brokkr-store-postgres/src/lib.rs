//! PostgreSQL [`Store`](brokkr_core::store::Store) for Brokkr.
//!
//! sqlx (runtime-checked queries only: building never needs a database) with sea-query
//! for the simple reads, plain SQL for the batch statements (`UNNEST`) sea-query cannot
//! express. Migrations are embedded and applied by [`PgStore::connect`] unless disabled.
//!
//! Correctness never relies on in-process locks, so several broker processes can share
//! one database: the diagnostic claim is one conditional `UPDATE ... RETURNING`,
//! sequence numbers come from a row update, and read-decide-write batches (health,
//! deliveries) run in a transaction holding a per-agent advisory lock.
//!
//! One module per table family: `agents`, `catalog`, `deliveries`,
//! `work_orders`, `health`, `diagnostics`, `fleet`, `webhooks`, `events` (the outbox).
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

#[macro_use]
mod locks;

mod agents;
mod catalog;
mod deliveries;
mod diagnostics;
mod error;
mod events;
mod fleet;
mod health;
mod heartbeats;
mod rows;
#[cfg(feature = "testing")]
pub mod testing;
mod webhooks;
mod work_orders;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use error::PgStoreError;

/// Connection pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgStoreOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a call waits for a free connection before the store reports unavailable.
    pub acquire_timeout: Duration,
    /// Server-side limit for any one statement.
    pub statement_timeout: Duration,
    /// Apply the embedded migrations on connect.
    pub migrate: bool,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(15),
            migrate: true,
        }
    }
}

/// The Postgres store. Clones share the pool.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Concurrent heartbeats are written together (group commit).
    heartbeats: Arc<heartbeats::GroupCommit>,
}

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl PgStore {
    /// Connects to `url` (a `postgres://` URL) and, unless `options.migrate` is off,
    /// applies the migrations.
    pub async fn connect(url: &str, options: &PgStoreOptions) -> Result<Self, PgStoreError> {
        let connect: PgConnectOptions = url.parse().map_err(PgStoreError::Config)?;
        let timeout_ms = options.statement_timeout.as_millis().to_string();
        let connect = connect.options([("statement_timeout", timeout_ms.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        let store = Self::from_pool(pool);
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// A store over an existing pool (migrations are the caller's business).
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            heartbeats: Arc::default(),
        }
    }

    /// Applies the embedded migrations (idempotent).
    pub async fn migrate(&self) -> Result<(), PgStoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}
