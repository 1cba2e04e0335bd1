//! The store conformance suite against PostgreSQL, a fresh database per test.
//!
//! Needs a server at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! whose user may create databases; `scripts/test` starts a throwaway one when none
//! answers and the server binaries are installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use brokkr_store_postgres::{PgStore, PgStoreOptions};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn with_database(url: &str, database: &str) -> String {
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

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh, migrated database of its own.
async fn fresh() -> Arc<PgStore> {
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
    let url = with_database(&server_url(), &name);
    let store = PgStore::connect(&url, &PgStoreOptions::default())
        .await
        .unwrap();
    Arc::new(store)
}

/// A second broker replica: its own pool on the same database.
async fn second_replica(store: &Arc<PgStore>) -> Arc<PgStore> {
    let options = store.pool().connect_options();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with((*options).clone())
        .await
        .unwrap();
    Arc::new(PgStore::from_pool(pool))
}

brokkr_core::store_conformance_tests!(fresh(), second_replica);

#[tokio::test]
async fn migrations_are_idempotent_and_readiness_follows_them() {
    use brokkr_core::store::FleetStore;
    let store = fresh().await;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(store.pool())
        .await
        .unwrap();
    assert!(matches!(
        store.ping().await,
        Err(brokkr_core::Error::Unavailable(_))
    ));
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_not_a_crash() {
    let options = PgStoreOptions {
        acquire_timeout: std::time::Duration::from_millis(500),
        ..PgStoreOptions::default()
    };
    let err = PgStore::connect("postgres://postgres@127.0.0.1:1/none", &options)
        .await
        .unwrap_err();
    let core: brokkr_core::Error = err.into();
    assert!(matches!(core, brokkr_core::Error::Unavailable(_)), "{core}");
}
