//! The database goes away under steady agent traffic and comes back: the broker says so
//! (readiness, 503 with `Retry-After`), stays alive, recovers by itself, and everything
//! it acknowledged is still there.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brokkr::core::auth::hash_pak;
use brokkr::core::broker::{Broker, BrokerConfig};
use brokkr::core::clock::SystemClock;
use brokkr::core::store::Store;
use brokkr::http::{HttpConfig, router, serve};
use brokkr::store_postgres::{PgStore, PgStoreOptions};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{ADMIN, Caller, ThrowawayPg, register_agent, stack_for};
use crate::traffic::{Ledger, admin_traffic, agent_traffic, assert_newest_stored, until};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_is_reported_survived_and_loses_nothing_acknowledged() {
    let pg = tokio::task::spawn_blocking(ThrowawayPg::start)
        .await
        .unwrap();
    let store = PgStore::connect(&pg.url(), &PgStoreOptions::default())
        .await
        .unwrap();
    let dyn_store: Arc<dyn Store> = Arc::new(store.clone());
    let broker = Broker::new(
        dyn_store,
        Arc::new(SystemClock),
        hash_pak(ADMIN),
        BrokerConfig::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        router(broker, &HttpConfig::default()),
        std::future::pending(),
    ));
    let caller = Caller::new(&base);
    let mut agents = Vec::new();
    for i in 0..4 {
        agents.push(register_agent(&caller, &format!("edge-{i}")).await);
    }
    let objects = stack_for(&caller, &agents, 5).await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut traffic = tokio::task::JoinSet::new();
    for agent in &agents {
        traffic.spawn(agent_traffic(
            caller.clone(),
            agent.clone(),
            objects.clone(),
            ledger.clone(),
            stop.clone(),
        ));
    }
    traffic.spawn(admin_traffic(caller.clone(), ledger.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = ledger.lock().unwrap().stacks.len();
    assert!(before > 0, "no traffic got through before the outage");

    // The database stops.
    let halt = &pg;
    tokio::task::block_in_place(|| halt.halt());
    let unready = until(
        &caller,
        "/readyz",
        ADMIN,
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        unready <= Duration::from_secs(2),
        "/readyz took {unready:?} to say 503"
    );
    let ready = caller.send(Method::GET, "/readyz", ADMIN, None).await;
    assert_eq!(ready.content_type, "application/problem+json");
    assert!(ready.retry_after.is_some());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let live = caller.send(Method::GET, "/livez", ADMIN, None).await;
    assert_eq!(live.status, StatusCode::OK, "/livez during the outage");
    let during = ledger
        .lock()
        .unwrap()
        .statuses
        .get(&503)
        .copied()
        .unwrap_or(0);
    assert!(
        during > 0,
        "no call answered 503 while the database was down"
    );

    // The database comes back: the broker recovers without a restart.
    tokio::task::block_in_place(|| halt.resume());
    let restarted = Instant::now();
    until(
        &caller,
        "/readyz",
        ADMIN,
        StatusCode::OK,
        Duration::from_secs(10),
    )
    .await;
    let agent = &agents[0];
    loop {
        let beat = caller
            .send(
                Method::POST,
                &format!("/api/v1/agents/{}/heartbeat", agent.id),
                &agent.key,
                Some(json!({})),
            )
            .await;
        if beat.status == StatusCode::NO_CONTENT {
            break;
        }
        assert!(restarted.elapsed() < Duration::from_secs(10), "{beat:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = restarted.elapsed();
    assert!(
        recovered <= Duration::from_secs(5),
        "recovery took {recovered:?}"
    );
    let after_recovery = ledger.lock().unwrap().stacks.len();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // No task is stuck: every traffic loop ends soon after being told to.
    stop.store(true, Ordering::Relaxed);
    let joined = tokio::time::timeout(Duration::from_secs(20), async {
        while traffic.join_next().await.is_some() {}
    })
    .await;
    assert!(joined.is_ok(), "traffic tasks are stuck");

    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(ledger.violations.is_empty(), "{:#?}", ledger.violations);
    // The broker never went away: every request got an answer.
    assert_eq!(ledger.unanswered, 0, "requests without an answer");
    assert!(
        ledger.stacks.len() > after_recovery,
        "nothing was acknowledged after recovery"
    );
    assert!(
        ledger.slowest < Duration::from_secs(6),
        "an answer took {:?}",
        ledger.slowest
    );
    // Every acknowledged write is there.
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM stacks WHERE id = ANY($1)")
        .bind(&ledger.stacks)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(
        found,
        ledger.stacks.len() as i64,
        "acknowledged stacks lost"
    );
    for agent in &agents {
        assert_newest_stored(
            &caller,
            &agent.id,
            ledger.heartbeats[&agent.id],
            ledger.reports[&agent.id],
            objects.len(),
            "",
        )
        .await;
    }
    eprintln!(
        "outage: readyz 503 after {unready:?}, recovered in {recovered:?}; answers {:?}; \
         {} stacks acknowledged and found",
        ledger.statuses,
        ledger.stacks.len()
    );
}
