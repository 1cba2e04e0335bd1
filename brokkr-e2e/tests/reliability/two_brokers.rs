//! Two brokers on one database: claims are exclusive across them, and cleanup running on
//! both deletes each expired row once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use brokkr::core::auth::hash_pak;
use brokkr::core::broker::{Broker, BrokerConfig};
use brokkr::core::clock::ManualClock;
use brokkr::core::store::Store;
use brokkr::store_postgres::testing::fresh_database;
use brokkr::store_postgres::{PgStore, PgStoreOptions};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{ADMIN, BrokerProcess, Caller, register_agent, stack_for};

/// Per diagnostic request: how often each status was answered to a claim and to a result.
#[derive(Default, Debug)]
struct Tally {
    claims: BTreeMap<u16, u32>,
    results: BTreeMap<u16, u32>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_brokers_on_one_database_claim_each_request_once_and_clean_up_once() {
    let database = fresh_database().await;
    let (first, second) = tokio::join!(
        BrokerProcess::start(&database),
        BrokerProcess::start(&database)
    );
    let brokers = [Caller::new(&first.base), Caller::new(&second.base)];
    let agents = [
        register_agent(&brokers[0], "edge-a").await,
        register_agent(&brokers[1], "edge-b").await,
    ];
    let objects = stack_for(&brokers[0], &agents, 1).await;
    let mut requests = Vec::new();
    for i in 0..100 {
        let agent = &agents[i % 2];
        let requested = brokers[i % 2]
            .ok(
                Method::POST,
                &format!("/api/v1/deployment-objects/{}/diagnostics", objects[0]),
                ADMIN,
                Some(json!({"agent_id": agent.id})),
            )
            .await;
        requests.push(requested["request_id"].as_str().unwrap().to_owned());
    }

    let tallies: Arc<Mutex<BTreeMap<String, Tally>>> = Arc::default();
    let mut claimers = tokio::task::JoinSet::new();
    // All 50 claimers go for the same request at the same moment (a barrier per request),
    // half through each broker; the winner posts its result through the other broker.
    let start = Arc::new(tokio::sync::Barrier::new(50));
    for claimer in 0..50 {
        let agent = agents[claimer % 2].clone();
        let brokers = brokers.clone();
        let requests = requests.clone();
        let tallies = tallies.clone();
        let start = start.clone();
        claimers.spawn(async move {
            for (step, id) in requests.iter().enumerate() {
                start.wait().await;
                let via = (claimer / 2 + step) % 2;
                let claim = brokers[via]
                    .send(
                        Method::POST,
                        &format!("/api/v1/diagnostics/{id}/claim"),
                        &agent.key,
                        None,
                    )
                    .await;
                let won = claim.status == StatusCode::OK;
                *tallies
                    .lock()
                    .unwrap()
                    .entry(id.clone())
                    .or_default()
                    .claims
                    .entry(claim.status.as_u16())
                    .or_default() += 1;
                if won {
                    let result = brokers[1 - via]
                        .send(
                            Method::POST,
                            &format!("/api/v1/diagnostics/{id}/result"),
                            &agent.key,
                            Some(json!({"collected_at": chrono::Utc::now().to_rfc3339(),
                                        "pod_statuses": [], "events": [], "log_tails": {}})),
                        )
                        .await;
                    *tallies
                        .lock()
                        .unwrap()
                        .entry(id.clone())
                        .or_default()
                        .results
                        .entry(result.status.as_u16())
                        .or_default() += 1;
                }
            }
        });
    }
    while let Some(done) = claimers.join_next().await {
        done.unwrap();
    }

    let tallies = std::mem::take(&mut *tallies.lock().unwrap());
    assert_eq!(tallies.len(), 100);
    for (id, tally) in &tallies {
        assert_eq!(tally.claims.get(&200), Some(&1), "{id}: {tally:?}");
        assert_eq!(tally.results, BTreeMap::from([(201, 1)]), "{id}: {tally:?}");
        // The other 49 claimers: 24 of the owner's key lose (409), 25 of the other
        // agent's key are refused (403). Nothing else.
        assert_eq!(tally.claims.get(&409), Some(&24), "{id}: {tally:?}");
        assert_eq!(tally.claims.get(&403), Some(&25), "{id}: {tally:?}");
    }
    for (i, id) in requests.iter().enumerate() {
        let request = brokers[i % 2]
            .ok(
                Method::GET,
                &format!("/api/v1/diagnostics/{id}"),
                ADMIN,
                None,
            )
            .await;
        assert_eq!(request["status"], "completed", "{request}");
    }

    // Cleanup on two brokers at once (their own pools on the same database), both at a
    // time when every request has expired.
    let later = chrono::Utc::now() + chrono::Duration::hours(3);
    let mut cleaners = Vec::new();
    for _ in 0..2 {
        let store: Arc<dyn Store> = Arc::new(
            PgStore::connect(&database, &PgStoreOptions::default())
                .await
                .unwrap(),
        );
        cleaners.push(
            Broker::new(
                store,
                Arc::new(ManualClock::new(later)),
                hash_pak(ADMIN),
                BrokerConfig::default(),
            )
            .unwrap(),
        );
    }
    let (a, b) = tokio::join!(cleaners[0].cleanup(), cleaners[1].cleanup());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, 100, "deleted {a} + {b}");
    let again = cleaners[0].cleanup().await.unwrap();
    assert_eq!(again, 0);
    let gone = brokers[0]
        .send(
            Method::GET,
            &format!("/api/v1/diagnostics/{}", requests[0]),
            ADMIN,
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}
