//! The maintained fleet rollup: staleness, capacity, and equality with a full recompute.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use brokkr_core::health::Health;
use brokkr_core::ids::AgentId;
use brokkr_core::model::{Agent, ClusterSnapshot};
use brokkr_core::store::{FleetRollup, HeartbeatRecord, Store};

use super::{agent, object, pak, record, secs, stack, t0, world};

/// One step of a fleet's history, for the rollup property: the maintained rollup must
/// equal a full recompute after every step.
#[derive(Debug, Clone)]
pub enum FleetStep {
    /// Agent slot `agent` (registered on first use) reports `status` for object slot
    /// `object`, checked `at` seconds after [`t0`].
    Report {
        /// Agent slot, below [`ROLLUP_AGENTS`].
        agent: u8,
        /// Object slot, below [`ROLLUP_OBJECTS`].
        object: u8,
        /// The verdict.
        status: Health,
        /// Seconds after `t0`.
        at: i64,
    },
    /// A heartbeat of agent slot `agent` at `at` seconds, with a CPU capacity or none.
    Heartbeat {
        /// Agent slot.
        agent: u8,
        /// Seconds after `t0`.
        at: i64,
        /// Reported CPU capacity (millicores).
        cpu: Option<i64>,
    },
    /// The agent of slot `agent` is deleted (its rows go with it).
    Delete {
        /// Agent slot.
        agent: u8,
    },
}

/// Agent slots of [`FleetStep`].
pub const ROLLUP_AGENTS: u8 = 4;
/// Object slots of [`FleetStep`].
pub const ROLLUP_OBJECTS: u8 = 3;

/// A fixed pseudo-random history of `n` steps (the same on every store).
pub fn fleet_history(mut seed: u64, n: usize) -> Vec<FleetStep> {
    let mut next = move |bound: u64| {
        // xorshift64: reproducible without a dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let statuses = [
        Health::Healthy,
        Health::Unknown,
        Health::Degraded,
        Health::Failing,
    ];
    (0..n)
        .map(|_| {
            let agent = next(u64::from(ROLLUP_AGENTS)) as u8;
            let at = next(300) as i64;
            match next(10) {
                0 => FleetStep::Delete { agent },
                1..=3 => FleetStep::Heartbeat {
                    agent,
                    at,
                    cpu: (next(3) > 0).then(|| next(8000) as i64),
                },
                _ => FleetStep::Report {
                    agent,
                    object: next(u64::from(ROLLUP_OBJECTS)) as u8,
                    status: statuses[next(4) as usize],
                    at,
                },
            }
        })
        .collect()
}

/// Applies `steps` and, after each, compares the maintained rollup with one computed
/// from the stored rows.
pub async fn fleet_rollup_matches_a_full_recompute_after(
    store: Arc<dyn Store>,
    steps: &[FleetStep],
) {
    let s = stack("rollup");
    store.insert_stack(&s).await.unwrap();
    let mut objects = Vec::new();
    for _ in 0..ROLLUP_OBJECTS {
        objects.push(
            store
                .insert_deployment_object(&object(s.id))
                .await
                .unwrap()
                .id,
        );
    }
    let mut agents: Vec<Option<AgentId>> = vec![None; usize::from(ROLLUP_AGENTS)];
    let mut registered = 0u8;
    for (n, step) in steps.iter().enumerate() {
        let slot = match step {
            FleetStep::Report { agent, .. }
            | FleetStep::Heartbeat { agent, .. }
            | FleetStep::Delete { agent } => usize::from(*agent % ROLLUP_AGENTS),
        };
        if agents[slot].is_none() && !matches!(step, FleetStep::Delete { .. }) {
            registered = registered.wrapping_add(1);
            let a = agent(&format!("rollup-{registered}"));
            store.insert_agent(&a, &pak(registered)).await.unwrap();
            agents[slot] = Some(a.id);
        }
        match step {
            FleetStep::Report {
                object, status, at, ..
            } => {
                let id = agents[slot].unwrap();
                let o = objects[usize::from(*object % ROLLUP_OBJECTS)];
                let mut r = record(id, o, *status, t0() + secs(*at));
                // Some reports repeat the summary, some change it.
                r.summary.pods_ready = u32::try_from(at % 3).unwrap_or_default();
                store.upsert_health(&[r], t0()).await.unwrap();
            }
            FleetStep::Heartbeat { at, cpu, .. } => {
                let beat = HeartbeatRecord {
                    agent_id: agents[slot].unwrap(),
                    received_at: t0() + secs(*at),
                    snapshot: ClusterSnapshot {
                        cluster_cpu_capacity: *cpu,
                        node_count: cpu.map(|_| 2),
                        ..ClusterSnapshot::default()
                    },
                    health_checked_at: None,
                };
                store.record_heartbeats(&[beat]).await.unwrap();
            }
            FleetStep::Delete { .. } => {
                if let Some(id) = agents[slot].take() {
                    assert!(store.delete_agent(id).await.unwrap());
                }
            }
        }
        let live: Vec<AgentId> = agents.iter().flatten().copied().collect();
        assert_rollup_is_recomputed(&*store, &live, &format!("after step {n}: {step:?}")).await;
    }
}

pub(super) async fn assert_rollup_is_recomputed(
    store: &dyn Store,
    agents: &[AgentId],
    context: &str,
) {
    let (stale_before, lost_before) = (t0() + secs(200), t0() + secs(100));
    let mut expected = FleetRollup::default();
    for id in agents {
        expected.agents += 1;
        let live = store.liveness(*id).await.unwrap().unwrap();
        match live.last_heartbeat_at {
            Some(at) if at >= stale_before => expected.fresh += 1,
            Some(at) if at >= lost_before => expected.stale += 1,
            _ => expected.lost += 1,
        }
        // Capacity is what live clusters have: a lost agent's last snapshot is history.
        let alive = live.last_heartbeat_at.is_some_and(|at| at >= lost_before);
        if let Some(snapshot) = live.snapshot.filter(|_| alive) {
            expected.capacity_clusters += 1;
            expected.cpu_capacity += snapshot.cluster_cpu_capacity.unwrap_or(0);
            expected.nodes += snapshot.node_count.unwrap_or(0);
        }
        for row in store.health_of_agent(*id).await.unwrap() {
            expected.count_health(row.status, 1);
        }
    }
    let maintained = store.fleet_rollup(stale_before, lost_before).await.unwrap();
    assert_eq!(maintained, expected, "{context}");
}

/// The rollup property over a fixed 80-step history.
pub async fn fleet_rollup_matches_a_full_recompute(store: Arc<dyn Store>) {
    fleet_rollup_matches_a_full_recompute_after(store, &fleet_history(0x5eed_f1ee7, 80)).await;
}

pub async fn fleet_rollup_counts_staleness_and_capacity(store: Arc<dyn Store>) {
    let agents: Vec<Agent> = (0..4).map(|n| agent(&format!("a{n}"))).collect();
    for (n, a) in agents.iter().enumerate() {
        store.insert_agent(a, &pak(n as u8)).await.unwrap();
    }
    let beat = |a: &Agent, at: DateTime<Utc>, cpu: i64| HeartbeatRecord {
        agent_id: a.id,
        received_at: at,
        snapshot: ClusterSnapshot {
            cluster_cpu_capacity: Some(cpu),
            cluster_cpu_available: Some(cpu / 2),
            node_count: Some(2),
            node_ready_count: Some(1),
            ..ClusterSnapshot::default()
        },
        health_checked_at: None,
    };
    store
        .record_heartbeats(&[
            beat(&agents[0], t0(), 1000),
            beat(&agents[1], t0() - secs(100), 2000),
            beat(&agents[2], t0() - secs(400), 4000),
        ])
        .await
        .unwrap();
    let rollup = store
        .fleet_rollup(t0() - secs(90), t0() - secs(300))
        .await
        .unwrap();
    assert_eq!(rollup.agents, 4);
    assert_eq!((rollup.fresh, rollup.stale, rollup.lost), (1, 1, 2));
    // The lost agent's last snapshot (4000 millicores) is not capacity anyone has.
    assert_eq!(rollup.capacity_clusters, 2);
    assert_eq!(rollup.cpu_capacity, 3000);
    assert_eq!(rollup.cpu_available, 1500);
    assert_eq!((rollup.nodes, rollup.nodes_ready), (4, 2));
    store.ping().await.unwrap();
}

/// The queue counts deliveries of each stack's latest object only: once a newer object
/// exists, the older one's pending delivery never will be acknowledged and must not
/// count.
pub async fn queue_depth_skips_superseded_deliveries(store: Arc<dyn Store>) {
    let (a, s, first) = world(&*store).await;
    store.ensure_deliveries(&[(a.id, first.id)]).await.unwrap();
    let depth = |store: Arc<dyn Store>| async move {
        store
            .fleet_rollup(t0() - secs(90), t0() - secs(300))
            .await
            .unwrap()
            .queue_depth
    };
    assert_eq!(depth(store.clone()).await, 1);
    let second = store.insert_deployment_object(&object(s.id)).await.unwrap();
    assert_eq!(depth(store.clone()).await, 0, "the first one is superseded");
    store.ensure_deliveries(&[(a.id, second.id)]).await.unwrap();
    assert_eq!(depth(store).await, 1);
}
