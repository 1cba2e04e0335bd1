//! Test support: a fresh, migrated database per test on the server at `DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`; its user needs CREATEDB).
//! Databases of test processes that have exited are dropped on the next use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::{PgStore, PgStoreOptions};

/// The server URL tests use.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, _) = url
        .rsplit_once('/')
        .expect("DATABASE_URL has a database path");
    let query = url
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{base}/{database}{query}")
}

async fn admin_connection() -> PgConnection {
    let url = server_url();
    PgConnection::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {url}: {e}.\n\
             Run the tests with scripts/test (it starts a throwaway server when the PostgreSQL \
             server binaries are installed), or set DATABASE_URL to a server whose user may \
             create databases."
        )
    })
}

/// Drops databases this suite left behind in processes that have exited.
async fn drop_leftovers(conn: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'brokkr_test_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    for name in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

/// Databases made by this process so far.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The URL of a fresh, empty database of its own.
pub async fn fresh_database() -> String {
    let mut conn = admin_connection().await;
    drop_leftovers(&mut conn).await;
    let name = format!(
        "brokkr_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .unwrap();
    with_database(&server_url(), &name)
}

/// A store over a fresh database, migrated.
pub async fn fresh_store() -> PgStore {
    PgStore::connect(&fresh_database().await, &PgStoreOptions::default())
        .await
        .expect("connecting to the fresh test database")
}
