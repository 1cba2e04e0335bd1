//! The store conformance suite against PostgreSQL, a fresh database per test.
//!
//! Needs a server at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! whose user may create databases; `scripts/test` starts a throwaway one when none
//! answers and the server binaries are installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use brokkr_store_postgres::testing::fresh_store;
use brokkr_store_postgres::{PgStore, PgStoreOptions};

async fn fresh() -> Arc<PgStore> {
    Arc::new(fresh_store().await)
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

brokkr_testing::store_conformance_tests!(fresh(), second_replica);

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

#[tokio::test]
async fn rows_written_before_summary_digests_are_rewritten_once() {
    use brokkr_core::health::Health;
    use brokkr_core::model::{HealthRecord, HealthSummary};
    use brokkr_core::store::{AgentStore, CatalogStore, HealthStore, UpsertOutcome};
    use brokkr_testing::conformance::{agent, object, stack, t0};
    let store = fresh().await;
    let a = agent("edge");
    store.insert_agent(&a, &[7; 32]).await.unwrap();
    let s = stack("shop");
    store.insert_stack(&s).await.unwrap();
    let o = store.insert_deployment_object(&object(s.id)).await.unwrap();
    let verdict = |minutes: i64| HealthRecord {
        agent_id: a.id,
        deployment_object_id: o.id,
        status: Health::Healthy,
        summary: HealthSummary {
            pods_ready: 2,
            pods_total: 2,
            ..HealthSummary::default()
        },
        checked_at: t0() + chrono::Duration::minutes(minutes),
        reported_at: t0() + chrono::Duration::minutes(minutes),
    };
    let first = store.upsert_health(&[verdict(0)], t0()).await.unwrap();
    assert_eq!(first, [UpsertOutcome::Accepted { previous: None }]);
    let again = store.upsert_health(&[verdict(1)], t0()).await.unwrap();
    assert_eq!(
        again,
        [UpsertOutcome::Unchanged],
        "same summary, recent row"
    );
    // As a row from before migration 0004 looks.
    sqlx::query("UPDATE deployment_health SET summary_digest = NULL")
        .execute(store.pool())
        .await
        .unwrap();
    let old_row = store.upsert_health(&[verdict(2)], t0()).await.unwrap();
    assert_eq!(
        old_row,
        [UpsertOutcome::Accepted {
            previous: Some(Health::Healthy)
        }]
    );
    let then = store.upsert_health(&[verdict(3)], t0()).await.unwrap();
    assert_eq!(then, [UpsertOutcome::Unchanged]);
}
