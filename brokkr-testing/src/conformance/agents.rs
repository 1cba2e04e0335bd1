//! Agents, keys and heartbeats.

use std::sync::Arc;

use chrono::Duration;

use brokkr_core::Error;
use brokkr_core::health::Health;
use brokkr_core::ids::AgentId;
use brokkr_core::model::{Agent, ClusterSnapshot};
use brokkr_core::store::{HeartbeatRecord, PageRequest, Store};

use super::{agent, pak, record, secs, t0, world};

pub async fn agents_are_stored_listed_and_found_by_key(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for n in 0..5u8 {
        let a = agent(&format!("a{n}"));
        store.insert_agent(&a, &pak(n)).await.unwrap();
        ids.push(a.id);
    }
    let first = ids[0];
    assert_eq!(store.get_agent(first).await.unwrap().unwrap().name, "a0");
    assert_eq!(store.get_agent(AgentId::new()).await.unwrap(), None);
    assert_eq!(store.agent_for_pak(&pak(3)).await.unwrap(), Some(ids[3]));
    assert_eq!(store.agent_for_pak(&pak(9)).await.unwrap(), None);

    let dup = Agent {
        name: "other".into(),
        ..store.get_agent(first).await.unwrap().unwrap()
    };
    assert!(matches!(
        store.insert_agent(&dup, &pak(42)).await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        store.insert_agent(&agent("reuses-key"), &pak(2)).await,
        Err(Error::Conflict(_))
    ));

    // Pagination walks every agent once, in id order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_agents(PageRequest { limit: 2, after })
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|a| a.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    ids.sort();
    assert_eq!(seen, ids);
}

pub async fn keys_are_rotated_revoked_and_agents_deleted(store: Arc<dyn Store>) {
    let (a, _, o) = world(store.as_ref()).await;
    store
        .upsert_health(&[record(a.id, o.id, Health::Failing, t0())], t0())
        .await
        .unwrap();
    store.ensure_deliveries(&[(a.id, o.id)]).await.unwrap();
    assert_eq!(store.deliveries_of_object(o.id).await.unwrap().len(), 1);
    store.replace_pak(a.id, Some(&pak(50))).await.unwrap();
    assert_eq!(
        store.agent_for_pak(&pak(1)).await.unwrap(),
        None,
        "old key gone"
    );
    assert_eq!(store.agent_for_pak(&pak(50)).await.unwrap(), Some(a.id));
    store.replace_pak(a.id, None).await.unwrap();
    assert_eq!(
        store.agent_for_pak(&pak(50)).await.unwrap(),
        None,
        "revoked"
    );
    assert!(matches!(
        store.replace_pak(AgentId::new(), Some(&pak(51))).await,
        Err(Error::NotFound { .. })
    ));
    let other = agent("other");
    store.insert_agent(&other, &pak(52)).await.unwrap();
    assert!(matches!(
        store.replace_pak(a.id, Some(&pak(52))).await,
        Err(Error::Conflict(_))
    ));

    assert!(store.delete_agent(a.id).await.unwrap());
    assert!(!store.delete_agent(a.id).await.unwrap());
    assert_eq!(store.get_agent(a.id).await.unwrap(), None);
    assert!(store.health_of_object(o.id).await.unwrap().is_empty());
    assert!(store.deliveries_of_object(o.id).await.unwrap().is_empty());
    let rollup = store.fleet_rollup(t0(), t0()).await.unwrap();
    assert_eq!(
        (rollup.agents, rollup.failing),
        (1, 0),
        "counts follow the deletion"
    );
    assert_eq!(
        store.get_agent(other.id).await.unwrap().unwrap().name,
        "other"
    );
    // A request still in flight for the deleted agent cannot bring its rows back.
    let late = store
        .upsert_health(&[record(a.id, o.id, Health::Failing, t0() + secs(9))], t0())
        .await;
    assert!(matches!(late, Err(Error::NotFound { .. })), "{late:?}");
    assert!(matches!(
        store.ensure_deliveries(&[(a.id, o.id)]).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(store.fleet_rollup(t0(), t0()).await.unwrap().failing, 0);
}

pub async fn heartbeats_keep_the_latest_liveness(store: Arc<dyn Store>) {
    let a = agent("edge");
    let b = agent("edge-b");
    store.insert_agent(&a, &pak(1)).await.unwrap();
    store.insert_agent(&b, &pak(2)).await.unwrap();
    assert_eq!(
        store
            .liveness(a.id)
            .await
            .unwrap()
            .unwrap()
            .last_heartbeat_at,
        None
    );
    let snapshot = ClusterSnapshot {
        cluster_cpu_capacity: Some(8000),
        cluster_cpu_available: Some(3000),
        node_count: Some(3),
        node_ready_count: Some(3),
        ..ClusterSnapshot::default()
    };
    let beats = [
        HeartbeatRecord {
            agent_id: a.id,
            received_at: t0(),
            snapshot: snapshot.clone(),
            health_checked_at: Some(t0() - secs(5)),
        },
        HeartbeatRecord {
            agent_id: b.id,
            received_at: t0(),
            snapshot: ClusterSnapshot::default(),
            health_checked_at: None,
        },
        HeartbeatRecord {
            agent_id: AgentId::new(),
            received_at: t0(),
            snapshot: ClusterSnapshot::default(),
            health_checked_at: None,
        },
    ];
    assert_eq!(store.record_heartbeats(&beats).await.unwrap(), 2);

    // A bare heartbeat later keeps the previous snapshot; an older one changes nothing.
    let later = HeartbeatRecord {
        agent_id: a.id,
        received_at: t0() + secs(30),
        snapshot: ClusterSnapshot::default(),
        health_checked_at: None,
    };
    store.record_heartbeats(&[later]).await.unwrap();
    let older = HeartbeatRecord {
        agent_id: a.id,
        received_at: t0() - secs(30),
        snapshot: ClusterSnapshot {
            node_count: Some(99),
            ..ClusterSnapshot::default()
        },
        health_checked_at: None,
    };
    store.record_heartbeats(&[older]).await.unwrap();
    let live = store.liveness(a.id).await.unwrap().unwrap();
    assert_eq!(live.last_heartbeat_at, Some(t0() + secs(30)));
    assert_eq!(live.snapshot, Some(snapshot));
    assert_eq!(live.health_checked_at, Some(t0() - secs(5)));
    assert_eq!(store.liveness(AgentId::new()).await.unwrap(), None);
    // Many at once: the same answers, unknown agents left out.
    let many = store
        .liveness_of(&[a.id, b.id, AgentId::new()])
        .await
        .unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(many[&a.id], live);
    assert_eq!(
        Some(&many[&b.id]),
        store.liveness(b.id).await.unwrap().as_ref()
    );
    assert!(store.liveness_of(&[]).await.unwrap().is_empty());

    // In one call (a store may write them as one statement): a heartbeat older than the
    // stored one, carrying a snapshot and a check, and a newer bare one. As if written
    // one at a time in time order: the older one changes nothing.
    let older = HeartbeatRecord {
        agent_id: a.id,
        received_at: t0() + secs(20),
        snapshot: ClusterSnapshot {
            node_count: Some(77),
            ..ClusterSnapshot::default()
        },
        health_checked_at: Some(t0() + secs(19)),
    };
    let newer = HeartbeatRecord {
        agent_id: a.id,
        received_at: t0() + secs(40),
        snapshot: ClusterSnapshot::default(),
        health_checked_at: None,
    };
    assert!(store.record_heartbeats(&[older, newer]).await.unwrap() >= 1);
    let after = store.liveness(a.id).await.unwrap().unwrap();
    assert_eq!(after.last_heartbeat_at, Some(t0() + secs(40)));
    assert_eq!(
        after.snapshot, live.snapshot,
        "an older heartbeat's snapshot won"
    );
    assert_eq!(after.health_checked_at, Some(t0() - secs(5)));
}

/// Heartbeats arriving together (a store may write them as one batch) are each answered
/// with their own outcome, and only once they can be read back.
pub async fn concurrent_heartbeats_are_answered_once_stored(store: Arc<dyn Store>) {
    const AGENTS: usize = 24;
    const BEATS: i64 = 4;
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let a = agent(&format!("edge-{i}"));
        store.insert_agent(&a, &pak(i as u8 + 1)).await.unwrap();
        agents.push(a.id);
    }
    let unknown: Vec<AgentId> = (0..8).map(|_| AgentId::new()).collect();
    let everyone = agents.len() * BEATS as usize + unknown.len();
    let barrier = Arc::new(tokio::sync::Barrier::new(everyone));
    let mut tasks = tokio::task::JoinSet::new();
    let beats = agents
        .iter()
        .flat_map(|a| (1..=BEATS).map(move |n| (*a, n)))
        .chain(unknown.iter().map(|a| (*a, 1)));
    for (id, n) in beats {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.spawn(async move {
            // Clocks have nanoseconds, which a store may round away: the answer must
            // still be about this heartbeat.
            let beat = HeartbeatRecord {
                agent_id: id,
                received_at: t0() + secs(n) + Duration::nanoseconds(1_234),
                snapshot: ClusterSnapshot {
                    node_count: Some(n),
                    ..ClusterSnapshot::default()
                },
                health_checked_at: None,
            };
            barrier.wait().await;
            let recorded = store.record_heartbeats(&[beat]).await.unwrap();
            let seen = store.liveness(id).await.unwrap();
            (id, n, recorded, seen.and_then(|l| l.last_heartbeat_at))
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (id, n, recorded, seen) = done.unwrap();
        if unknown.contains(&id) {
            assert_eq!((recorded, seen), (0, None), "unknown agent {id}");
            continue;
        }
        assert!(recorded <= 1);
        if n == BEATS {
            assert_eq!(
                recorded, 1,
                "the newest heartbeat of {id} is always recorded"
            );
        }
        if recorded == 1 {
            assert!(
                seen >= Some(t0() + secs(n) + Duration::microseconds(1)),
                "answered before it was stored: {id} beat {n}, read {seen:?}"
            );
        }
    }
    for id in agents {
        let live = store.liveness(id).await.unwrap().unwrap();
        let last = live.last_heartbeat_at.unwrap();
        assert!(last > t0() + secs(BEATS) && last < t0() + secs(BEATS + 1));
        assert_eq!(live.snapshot.and_then(|s| s.node_count), Some(BEATS));
    }
}

/// A heartbeat that arrives late (received after a newer one, but carrying an older
/// health check) never moves the agent's last health check back, alone or in a batch;
/// one without a check keeps the stored one.
pub async fn health_check_times_never_run_backwards(store: Arc<dyn Store>) {
    let a = agent("edge");
    store.insert_agent(&a, &pak(1)).await.unwrap();
    let beat = |received: i64, checked: Option<i64>| HeartbeatRecord {
        agent_id: a.id,
        received_at: t0() + secs(received),
        snapshot: ClusterSnapshot::default(),
        health_checked_at: checked.map(|c| t0() + secs(c)),
    };
    let checked = |store: Arc<dyn Store>| async move {
        store
            .liveness(a.id)
            .await
            .unwrap()
            .unwrap()
            .health_checked_at
    };
    assert_eq!(
        store.record_heartbeats(&[beat(10, Some(8))]).await.unwrap(),
        1
    );
    assert_eq!(checked(store.clone()).await, Some(t0() + secs(8)));
    // Received later, checked earlier (a retried request): the time is recorded, the
    // check is not moved back.
    assert_eq!(
        store.record_heartbeats(&[beat(20, Some(3))]).await.unwrap(),
        1
    );
    assert_eq!(checked(store.clone()).await, Some(t0() + secs(8)));
    let live = store.liveness(a.id).await.unwrap().unwrap();
    assert_eq!(live.last_heartbeat_at, Some(t0() + secs(20)));
    // Without a check: kept.
    store.record_heartbeats(&[beat(30, None)]).await.unwrap();
    assert_eq!(checked(store.clone()).await, Some(t0() + secs(8)));
    // Several of one agent in one batch: the latest check wins, whatever the order.
    store
        .record_heartbeats(&[beat(41, Some(40)), beat(42, Some(35)), beat(40, Some(39))])
        .await
        .unwrap();
    assert_eq!(checked(store.clone()).await, Some(t0() + secs(40)));
    // An older heartbeat changes nothing at all.
    assert_eq!(
        store.record_heartbeats(&[beat(5, Some(90))]).await.unwrap(),
        0
    );
    assert_eq!(checked(store).await, Some(t0() + secs(40)));
}
