//! The store conformance suite: every contract of the store traits, runnable against any
//! implementation.
//!
//! Each check takes a fresh, empty store. Adapters run them all with
//! [`store_conformance_tests!`](crate::store_conformance_tests), which expands to one
//! `#[tokio::test]` per contract so failures are named.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};

use brokkr_core::Error;
use brokkr_core::diagnostics::{
    ClaimOutcome, DiagnosticPolicy, DiagnosticRequest, DiagnosticStatus,
};
use brokkr_core::health::Health;
use brokkr_core::ids::{AgentId, DeploymentObjectId, StackId, WorkOrderId};
use brokkr_core::model::{
    Agent, ClusterSnapshot, DeliveryState, DeploymentObject, DeploymentStatusEvent,
    DiagnosticBundle, DiagnosticOutcome, FailureReason, HealthRecord, HealthSummary,
    ReconcileOutcome, Stack, Target, WorkOrder, WorkOrderStatus,
};
use brokkr_core::store::{
    FleetRollup, HeartbeatRecord, ObjectReach, PageRequest, PakHash, ResultOutcome, Store,
    UpsertOutcome,
};

/// A fixed instant the checks count from.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn pak(n: u8) -> PakHash {
    [n; 32]
}

pub fn agent(name: &str) -> Agent {
    Agent {
        id: AgentId::new(),
        name: name.to_owned(),
        cluster_name: format!("{name}-cluster"),
        labels: BTreeMap::from([("env".to_owned(), "test".to_owned())]),
        created_at: t0(),
    }
}

pub fn stack(name: &str) -> Stack {
    Stack {
        id: StackId::new(),
        name: name.to_owned(),
        labels: BTreeMap::new(),
        created_at: t0(),
    }
}

pub fn object(stack: StackId) -> DeploymentObject {
    DeploymentObject {
        id: DeploymentObjectId::new(),
        stack_id: stack,
        sequence_id: 0,
        yaml_content: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n".to_owned(),
        is_deletion: false,
        created_at: t0(),
    }
}

fn record(
    agent: AgentId,
    object: DeploymentObjectId,
    status: Health,
    checked_at: DateTime<Utc>,
) -> HealthRecord {
    HealthRecord {
        agent_id: agent,
        deployment_object_id: object,
        status,
        summary: HealthSummary {
            pods_ready: 1,
            pods_total: 2,
            conditions: vec!["CrashLoopBackOff".to_owned()],
            ..HealthSummary::default()
        },
        checked_at,
        reported_at: checked_at,
    }
}

/// An agent, a stack with one object, and the agent targeting the stack.
async fn world(store: &dyn Store) -> (Agent, Stack, DeploymentObject) {
    let a = agent("edge-1");
    store.insert_agent(&a, &pak(1)).await.unwrap();
    let s = stack("shop");
    store.insert_stack(&s).await.unwrap();
    let o = store.insert_deployment_object(&object(s.id)).await.unwrap();
    store
        .insert_target(&Target {
            agent_id: a.id,
            stack_id: s.id,
            created_at: t0(),
        })
        .await
        .unwrap();
    (a, s, o)
}

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

async fn assert_rollup_is_recomputed(store: &dyn Store, agents: &[AgentId], context: &str) {
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
        if let Some(snapshot) = live.snapshot {
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

pub async fn deployment_objects_get_increasing_sequence_ids(store: Arc<dyn Store>) {
    let s = stack("shop");
    store.insert_stack(&s).await.unwrap();
    assert!(matches!(
        store.insert_stack(&s).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(store.get_stack(s.id).await.unwrap(), Some(s.clone()));
    let first = store.insert_deployment_object(&object(s.id)).await.unwrap();
    let second = store.insert_deployment_object(&object(s.id)).await.unwrap();
    assert!(second.sequence_id > first.sequence_id);
    assert_eq!(
        store.get_deployment_object(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert!(matches!(
        store
            .insert_deployment_object(&object(StackId::new()))
            .await,
        Err(Error::NotFound { .. })
    ));
    let other = stack("other");
    store.insert_stack(&other).await.unwrap();
    let latest = store
        .latest_objects(&[s.id, other.id, StackId::new()])
        .await
        .unwrap();
    // What an agent may report on, in one read: the agent targets `s` only.
    let reporter = agent("reporter");
    store.insert_agent(&reporter, &pak(42)).await.unwrap();
    store
        .insert_target(&Target {
            agent_id: reporter.id,
            stack_id: s.id,
            created_at: t0(),
        })
        .await
        .unwrap();
    let elsewhere = store
        .insert_deployment_object(&object(other.id))
        .await
        .unwrap();
    let reach = |stack_id, targeted| ObjectReach { stack_id, targeted };
    assert_eq!(
        store
            .reach_of_agent(
                reporter.id,
                &[first.id, second.id, elsewhere.id, DeploymentObjectId::new()]
            )
            .await
            .unwrap(),
        Some(std::collections::HashMap::from([
            (first.id, reach(s.id, true)),
            (second.id, reach(s.id, true)),
            (elsewhere.id, reach(other.id, false)),
        ])),
        "unknown objects are left out"
    );
    assert_eq!(
        store.reach_of_agent(reporter.id, &[]).await.unwrap(),
        Some(std::collections::HashMap::default())
    );
    assert_eq!(
        store
            .reach_of_agent(AgentId::new(), &[first.id])
            .await
            .unwrap(),
        None
    );
    assert_eq!(latest, vec![second.clone()]);

    // Concurrent inserts into one stack get distinct sequence ids.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        let id = s.id;
        tasks.push(tokio::spawn(async move {
            store
                .insert_deployment_object(&object(id))
                .await
                .unwrap()
                .sequence_id
        }));
    }
    let mut seqs = HashSet::new();
    for task in tasks {
        assert!(seqs.insert(task.await.unwrap()));
    }
    assert_eq!(seqs.len(), 20);
}

pub async fn targets_are_idempotent_and_checked(store: Arc<dyn Store>) {
    let (a, s, _) = world(store.as_ref()).await;
    let again = Target {
        agent_id: a.id,
        stack_id: s.id,
        created_at: t0() + secs(1),
    };
    assert!(!store.insert_target(&again).await.unwrap());
    assert_eq!(store.targets_of_agent(a.id).await.unwrap().len(), 1);
    assert_eq!(store.agents_targeting(s.id).await.unwrap(), vec![a.id]);
    let unknown_stack = Target {
        agent_id: a.id,
        stack_id: StackId::new(),
        created_at: t0(),
    };
    assert!(matches!(
        store.insert_target(&unknown_stack).await,
        Err(Error::NotFound { .. })
    ));
    let unknown_agent = Target {
        agent_id: AgentId::new(),
        stack_id: s.id,
        created_at: t0(),
    };
    assert!(matches!(
        store.insert_target(&unknown_agent).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        store
            .targets_of_agent(AgentId::new())
            .await
            .unwrap()
            .is_empty()
    );
}

fn event(
    object: DeploymentObjectId,
    outcome: ReconcileOutcome,
    at: DateTime<Utc>,
    retry: u32,
) -> DeploymentStatusEvent {
    DeploymentStatusEvent {
        deployment_object_id: object,
        outcome,
        attempted_at: at,
        retry_count: retry,
        reconciliation_duration_ms: Some(1200),
        failure_reason: (outcome == ReconcileOutcome::Failed).then_some(FailureReason::Forbidden),
        failure_message: (outcome == ReconcileOutcome::Failed).then(|| "rbac says no".to_owned()),
    }
}

pub async fn deliveries_follow_reconcile_reports(store: Arc<dyn Store>) {
    let (a, _, o) = world(store.as_ref()).await;
    assert_eq!(store.ensure_deliveries(&[(a.id, o.id)]).await.unwrap(), 1);
    assert_eq!(store.ensure_deliveries(&[(a.id, o.id)]).await.unwrap(), 0);
    let pending = &store.deliveries_of_object(o.id).await.unwrap()[0];
    assert_eq!(pending.state, DeliveryState::Pending);
    assert_eq!(pending.acknowledged_at, None);
    let events = [
        event(o.id, ReconcileOutcome::Acknowledged, t0() + secs(1), 0),
        event(o.id, ReconcileOutcome::Failed, t0() + secs(2), 1),
    ];
    assert_eq!(store.apply_status_events(a.id, &events).await.unwrap(), 2);
    let d = &store.deliveries_of_object(o.id).await.unwrap()[0];
    assert_eq!(d.state, DeliveryState::Failed);
    assert_eq!(d.retry_count, 1);
    assert_eq!(d.failure_reason, Some(FailureReason::Forbidden));
    assert_eq!(d.acknowledged_at, Some(t0() + secs(1)));
    assert_eq!(d.last_attempt_at, Some(t0() + secs(2)));

    // A late, older report does not move the status back.
    let stale = [event(o.id, ReconcileOutcome::Applied, t0(), 0)];
    assert_eq!(store.apply_status_events(a.id, &stale).await.unwrap(), 0);
    let applied = [event(o.id, ReconcileOutcome::Applied, t0() + secs(3), 2)];
    store.apply_status_events(a.id, &applied).await.unwrap();
    let (d, created) = store.deliveries_of_agent(a.id).await.unwrap().remove(0);
    assert_eq!(d.state, DeliveryState::Applied);
    assert_eq!(d.failure_reason, None);
    assert_eq!(d.applied_at, Some(t0() + secs(3)));
    assert_eq!(created, o.created_at);

    // Unknown objects fail the whole batch.
    let bad = [
        event(o.id, ReconcileOutcome::Failed, t0() + secs(9), 3),
        event(
            DeploymentObjectId::new(),
            ReconcileOutcome::Applied,
            t0(),
            0,
        ),
    ];
    assert!(matches!(
        store.apply_status_events(a.id, &bad).await,
        Err(Error::NotFound { .. })
    ));
    let d = &store.deliveries_of_object(o.id).await.unwrap()[0];
    assert_eq!(
        d.state,
        DeliveryState::Applied,
        "the failed batch left no trace"
    );
}

pub async fn work_orders_are_claimed_once(store: Arc<dyn Store>) {
    let (a, _, _) = world(store.as_ref()).await;
    let other = agent("other");
    store.insert_agent(&other, &pak(7)).await.unwrap();
    let order = WorkOrder {
        id: WorkOrderId::new(),
        agent_id: a.id,
        kind: "restart".into(),
        payload: serde_json::json!({"deployment": "web"}),
        status: WorkOrderStatus::Pending,
        created_at: t0(),
        claimed_at: None,
        completed_at: None,
    };
    store.insert_work_order(&order).await.unwrap();
    assert!(matches!(
        store.insert_work_order(&order).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.open_work_orders(a.id).await.unwrap(),
        vec![order.clone()]
    );
    assert!(matches!(
        store.claim_work_order(order.id, other.id, t0()).await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        store.finish_work_order(order.id, a.id, true, t0()).await,
        Err(Error::Conflict(_))
    ));
    let claimed = store
        .claim_work_order(order.id, a.id, t0() + secs(1))
        .await
        .unwrap();
    assert_eq!(claimed.status, WorkOrderStatus::Claimed);
    assert!(matches!(
        store.claim_work_order(order.id, a.id, t0()).await,
        Err(Error::Conflict(_))
    ));
    let done = store
        .finish_work_order(order.id, a.id, false, t0() + secs(2))
        .await
        .unwrap();
    assert_eq!(done.status, WorkOrderStatus::Failed);
    assert_eq!(done.completed_at, Some(t0() + secs(2)));
    assert!(store.open_work_orders(a.id).await.unwrap().is_empty());
    assert!(matches!(
        store.claim_work_order(WorkOrderId::new(), a.id, t0()).await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn health_upserts_skip_unchanged_and_never_overwrite_newer(store: Arc<dyn Store>) {
    let (a, s, o) = world(store.as_ref()).await;
    let o2 = store.insert_deployment_object(&object(s.id)).await.unwrap();
    let first = record(a.id, o.id, Health::Failing, t0());
    let outcomes = store
        .upsert_health(
            &[first.clone(), record(a.id, o2.id, Health::Healthy, t0())],
            t0() - secs(150),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            UpsertOutcome::Accepted { previous: None },
            UpsertOutcome::Accepted { previous: None }
        ]
    );

    // Same verdict, recent stored row: unchanged and not rewritten.
    let same = record(a.id, o.id, Health::Failing, t0() + secs(60));
    let outcome = store.upsert_health(&[same], t0()).await.unwrap();
    assert_eq!(outcome, [UpsertOutcome::Unchanged]);
    assert_eq!(
        store.health_of_object(o.id).await.unwrap()[0].checked_at,
        t0()
    );

    // Same verdict but the stored row is old: refreshed.
    let refresh = record(a.id, o.id, Health::Failing, t0() + secs(200));
    let outcome = store
        .upsert_health(&[refresh], t0() + secs(1))
        .await
        .unwrap();
    assert_eq!(
        outcome,
        [UpsertOutcome::Accepted {
            previous: Some(Health::Failing)
        }]
    );
    assert_eq!(
        store.health_of_object(o.id).await.unwrap()[0].checked_at,
        t0() + secs(200)
    );

    // Older than stored: ignored.
    let old = record(a.id, o.id, Health::Healthy, t0() + secs(100));
    assert_eq!(
        store.upsert_health(&[old], t0()).await.unwrap(),
        [UpsertOutcome::Ignored]
    );
    let changed = record(a.id, o.id, Health::Degraded, t0() + secs(201));
    assert_eq!(
        store.upsert_health(&[changed], t0()).await.unwrap(),
        [UpsertOutcome::Accepted {
            previous: Some(Health::Failing)
        }]
    );
    let by_agent = store.health_of_agent(a.id).await.unwrap();
    assert_eq!(by_agent.len(), 2);
    let both = store.health_of_objects(&[o.id, o2.id]).await.unwrap();
    assert_eq!(both.len(), 2);

    // The rollup followed every status change without a scan.
    let rollup = store.fleet_rollup(t0(), t0()).await.unwrap();
    assert_eq!(
        (
            rollup.healthy,
            rollup.unknown,
            rollup.degraded,
            rollup.failing
        ),
        (1, 0, 1, 0)
    );
}

fn diagnostic(object: DeploymentObjectId, agent: AgentId) -> DiagnosticRequest {
    DiagnosticRequest::new(object, agent, "admin", &DiagnosticPolicy::default(), t0())
}

fn bundle() -> DiagnosticOutcome {
    DiagnosticOutcome::Bundle(DiagnosticBundle {
        collected_at: t0() + secs(30),
        pod_statuses: Vec::new(),
        events: Vec::new(),
        log_tails: BTreeMap::from([("web-0/app".to_owned(), vec!["started".to_owned()])]),
        owner_chain: Vec::new(),
        truncated: false,
    })
}

pub async fn diagnostics_are_claimed_once_and_answered_once(store: Arc<dyn Store>) {
    let (a, _, o) = world(store.as_ref()).await;
    let other = agent("other");
    store.insert_agent(&other, &pak(8)).await.unwrap();
    let request = diagnostic(o.id, a.id);
    store
        .insert_diagnostic_requests(std::slice::from_ref(&request))
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_diagnostic_requests(std::slice::from_ref(&request))
            .await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.pending_diagnostics(a.id, t0()).await.unwrap().len(),
        1
    );
    assert!(
        store
            .pending_diagnostics(other.id, t0())
            .await
            .unwrap()
            .is_empty()
    );

    assert!(matches!(
        store
            .claim_diagnostic(request.id, other.id, None, t0())
            .await,
        Err(Error::Forbidden(_))
    ));
    let (claimed, outcome) = store
        .claim_diagnostic(request.id, a.id, Some("tok"), t0() + secs(5))
        .await
        .unwrap();
    assert_eq!(outcome, ClaimOutcome::Claimed);
    assert_eq!(claimed.status, DiagnosticStatus::Claimed);
    // Retry with the holder's token is fine; anything else conflicts.
    let (_, again) = store
        .claim_diagnostic(request.id, a.id, Some("tok"), t0() + secs(6))
        .await
        .unwrap();
    assert_eq!(again, ClaimOutcome::AlreadyHeld);
    assert!(matches!(
        store
            .claim_diagnostic(request.id, a.id, None, t0() + secs(6))
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(
        store
            .pending_diagnostics(a.id, t0())
            .await
            .unwrap()
            .is_empty()
    );

    assert!(matches!(
        store
            .store_diagnostic_result(request.id, other.id, &bundle(), t0())
            .await,
        Err(Error::Forbidden(_))
    ));
    let stored = store
        .store_diagnostic_result(request.id, a.id, &bundle(), t0() + secs(40))
        .await
        .unwrap();
    assert_eq!(stored, ResultOutcome::Stored);
    assert_eq!(
        store
            .store_diagnostic_result(request.id, a.id, &bundle(), t0() + secs(41))
            .await
            .unwrap(),
        ResultOutcome::AlreadyStored
    );
    let different = DiagnosticOutcome::Failed("no pods".into());
    assert!(matches!(
        store
            .store_diagnostic_result(request.id, a.id, &different, t0() + secs(42))
            .await,
        Err(Error::Conflict(_))
    ));
    let (done, result) = store.get_diagnostic(request.id).await.unwrap().unwrap();
    assert_eq!(done.status, DiagnosticStatus::Completed);
    assert_eq!(done.completed_at, Some(t0() + secs(40)));
    assert_eq!(result, Some(bundle()));
    assert_eq!(
        store
            .get_diagnostic(brokkr_core::ids::DiagnosticId::new())
            .await
            .unwrap(),
        None
    );
}

pub async fn diagnostics_expire_and_are_cleaned_up_once(store: Arc<dyn Store>) {
    let (a, _, o) = world(store.as_ref()).await;
    let policy = DiagnosticPolicy::default();
    let unclaimed = diagnostic(o.id, a.id);
    let answered = diagnostic(o.id, a.id);
    store
        .insert_diagnostic_requests(&[unclaimed.clone(), answered.clone()])
        .await
        .unwrap();
    store
        .claim_diagnostic(answered.id, a.id, None, t0() + secs(1))
        .await
        .unwrap();
    let done_at = t0() + secs(120);
    store
        .store_diagnostic_result(answered.id, a.id, &bundle(), done_at)
        .await
        .unwrap();

    // Exactly at the claim deadline the unclaimed request is gone for claimers.
    let deadline = unclaimed.claim_deadline;
    assert!(
        store
            .pending_diagnostics(a.id, deadline)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store
            .claim_diagnostic(unclaimed.id, a.id, None, deadline)
            .await,
        Err(Error::Gone(_))
    ));

    // Counted by what a reader sees: the unclaimed request is expired from its
    // deadline on, before cleanup records anything.
    let before = store.diagnostic_counts(deadline - secs(1)).await.unwrap();
    assert_eq!(
        (before.pending, before.completed, before.expired),
        (1, 1, 0)
    );
    let after = store.diagnostic_counts(deadline).await.unwrap();
    assert_eq!(
        (
            after.pending,
            after.claimed,
            after.completed,
            after.failed,
            after.expired
        ),
        (0, 0, 1, 0, 1)
    );

    // Before retention ends nothing is deleted; then each row once, however often
    // cleanup runs.
    assert_eq!(
        store
            .delete_expired_diagnostics(t0() + secs(60))
            .await
            .unwrap(),
        0
    );
    let later = done_at + policy.retention + secs(1);
    let (first, second) = tokio::join!(
        store.delete_expired_diagnostics(later),
        store.delete_expired_diagnostics(later)
    );
    assert_eq!(first.unwrap() + second.unwrap(), 2);
    assert_eq!(store.delete_expired_diagnostics(later).await.unwrap(), 0);
    assert_eq!(store.get_diagnostic(answered.id).await.unwrap(), None);
    assert_eq!(
        store.diagnostic_counts(later).await.unwrap(),
        brokkr_core::store::DiagnosticCounts::default()
    );
}

pub async fn webhooks_are_stored_listed_and_deleted(store: Arc<dyn Store>) {
    let new = |url: &str| brokkr_core::events::NewWebhook {
        url: url.to_owned(),
        secret: "0123456789abcdef-secret".to_owned(),
        events: vec!["health.failing".to_owned(), "agent.lost".to_owned()],
    };
    let first = new("https://a.example/hook").into_webhook(t0());
    let second = new("https://b.example/hook").into_webhook(t0() + secs(1));
    store.insert_webhook(&first).await.unwrap();
    store.insert_webhook(&second).await.unwrap();
    assert!(matches!(
        store.insert_webhook(&first).await,
        Err(Error::Conflict(_))
    ));
    let listed = store.list_webhooks().await.unwrap();
    assert_eq!(listed, [first.clone(), second.clone()]);
    assert_eq!(
        listed[0].secret, "0123456789abcdef-secret",
        "kept for signing"
    );
    assert!(store.delete_webhook(first.id).await.unwrap());
    assert!(!store.delete_webhook(first.id).await.unwrap());
    assert_eq!(store.list_webhooks().await.unwrap(), [second]);
}

pub async fn health_transitions_reach_the_outbox_in_order(store: Arc<dyn Store>) {
    let (a, _, o) = world(store.as_ref()).await;
    assert_eq!(store.last_event_seq().await.unwrap(), 0);
    let write = |status, at| {
        let store = Arc::clone(&store);
        let r = record(a.id, o.id, status, at);
        async move { store.upsert_health(&[r], t0() - secs(150)).await.unwrap() }
    };
    write(Health::Failing, t0()).await; // first verdict: an event
    write(Health::Failing, t0() + secs(10)).await; // unchanged: none
    let refreshed = store
        .upsert_health(
            &[record(a.id, o.id, Health::Failing, t0() + secs(20))],
            t0() + secs(30),
        )
        .await
        .unwrap();
    assert!(
        refreshed[0].is_written(),
        "rewritten, same status: no event"
    );
    write(Health::Healthy, t0() + secs(40)).await; // a change: an event
    write(Health::Degraded, t0() + secs(5)).await; // older: ignored, none
    let events = store.events_after(0, 100).await.unwrap();
    let shapes: Vec<_> = events
        .iter()
        .map(|e| match &e.event {
            brokkr_core::events::FleetEvent::HealthChanged {
                deployment_object_id,
                agent_id,
                from,
                to,
                top_finding,
                ..
            } => {
                assert_eq!((*deployment_object_id, *agent_id), (o.id, a.id));
                assert_eq!(top_finding.as_deref(), Some("CrashLoopBackOff"));
                (*from, *to)
            }
            other @ brokkr_core::events::FleetEvent::AgentStalenessChanged { .. } => {
                panic!("unexpected {other:?}")
            }
        })
        .collect();
    assert_eq!(
        shapes,
        [
            (None, Health::Failing),
            (Some(Health::Failing), Health::Healthy)
        ]
    );
    assert!(events[0].seq > 0 && events[1].seq > events[0].seq);
    assert_eq!(store.last_event_seq().await.unwrap(), events[1].seq);
    assert_eq!(
        store.events_after(events[0].seq, 100).await.unwrap(),
        events[1..]
    );
    assert_eq!(store.events_after(0, 1).await.unwrap(), events[..1]);
    // Retention: events before a time are deleted, the rest stay.
    assert_eq!(store.delete_events_before(t0() + secs(1)).await.unwrap(), 1);
    assert_eq!(store.events_after(0, 100).await.unwrap(), events[1..]);
}

/// Several replicas announce the same staleness change and claim the same deliveries
/// at once: one event per change, one claim per delivery.
pub async fn outbox_decisions_hold_across_replicas(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    use brokkr_core::staleness::Staleness;
    let a = agent("edge-1");
    first.insert_agent(&a, &pak(1)).await.unwrap();
    // The first announcement only records the state; so does its repeat on the other
    // replica, and an unknown agent's.
    for (store, agent, state) in [
        (&first, a.id, Staleness::Fresh),
        (&second, a.id, Staleness::Fresh),
        (&first, AgentId::new(), Staleness::Lost),
    ] {
        let announced = store.announce_staleness(agent, state, t0()).await.unwrap();
        assert_eq!(announced, None, "{agent} {state:?}");
    }
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = if n % 2 == 0 {
            Arc::clone(&first)
        } else {
            Arc::clone(&second)
        };
        let agent = a.id;
        tasks.push(tokio::spawn(async move {
            store
                .announce_staleness(agent, Staleness::Stale, t0() + secs(100))
                .await
                .unwrap()
        }));
    }
    let mut announced = Vec::new();
    for task in tasks {
        announced.extend(task.await.unwrap());
    }
    assert_eq!(
        announced.len(),
        1,
        "one event for one change: {announced:?}"
    );
    assert_eq!(
        announced[0].event,
        brokkr_core::events::FleetEvent::AgentStalenessChanged {
            agent_id: a.id,
            from: Staleness::Fresh,
            to: Staleness::Stale,
            at: t0() + secs(100),
        }
    );
    assert_eq!(first.events_after(0, 10).await.unwrap(), announced);
    // A slow replica's older observation does not undo the newer one.
    assert_eq!(
        first
            .announce_staleness(a.id, Staleness::Fresh, t0() + secs(50))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        second
            .announce_staleness(a.id, Staleness::Stale, t0() + secs(150))
            .await
            .unwrap(),
        None,
        "still stale: no change"
    );
    let back = second
        .announce_staleness(a.id, Staleness::Fresh, t0() + secs(200))
        .await
        .unwrap()
        .expect("a change back is a change");
    assert!(back.seq > announced[0].seq);

    let hook = brokkr_core::events::NewWebhook {
        url: "https://a.example/hook".to_owned(),
        secret: "0123456789abcdef-secret".to_owned(),
        events: vec!["agent.stale".to_owned()],
    }
    .into_webhook(t0());
    first.insert_webhook(&hook).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..20 {
        let store = if n % 2 == 0 {
            Arc::clone(&first)
        } else {
            Arc::clone(&second)
        };
        let (id, seq) = (hook.id, announced[0].seq);
        tasks.push(tokio::spawn(async move {
            store.claim_event_delivery(id, seq, t0()).await.unwrap()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap());
    }
    assert_eq!(won, 1, "one replica delivers");
    assert!(
        first
            .claim_event_delivery(hook.id, back.seq, t0())
            .await
            .unwrap()
    );
    assert!(
        !first
            .claim_event_delivery(brokkr_core::ids::WebhookId::new(), back.seq, t0())
            .await
            .unwrap(),
        "no such webhook: nothing to deliver"
    );
    assert!(
        !first
            .claim_event_delivery(hook.id, back.seq + 1000, t0())
            .await
            .unwrap(),
        "no such event: nothing to deliver"
    );
    // Retention takes the events and their claims.
    assert_eq!(
        first.delete_events_before(t0() + secs(1000)).await.unwrap(),
        2
    );
    assert!(
        !second
            .claim_event_delivery(hook.id, back.seq, t0())
            .await
            .unwrap()
    );
}

/// Writers racing on the same rows through two handles, mixing status changes with
/// same-status updates and out-of-order checks: every row ends with its newest check,
/// the maintained counts equal a recount, and each row's status events form an unbroken
/// chain (each `from` is the previous `to`) ending in its stored status.
pub async fn racing_reports_keep_the_newest_and_exact_counts(
    first: Arc<dyn Store>,
    second: Arc<dyn Store>,
) {
    let s = stack("race");
    first.insert_stack(&s).await.unwrap();
    let mut objects = Vec::new();
    for _ in 0..3 {
        objects.push(
            first
                .insert_deployment_object(&object(s.id))
                .await
                .unwrap()
                .id,
        );
    }
    let mut agents = Vec::new();
    for n in 0..2u8 {
        let a = agent(&format!("racer-{n}"));
        first.insert_agent(&a, &pak(100 + n)).await.unwrap();
        agents.push(a.id);
    }
    let statuses = [
        Health::Healthy,
        Health::Healthy,
        Health::Degraded,
        Health::Failing,
    ];
    // Every report is distinct (its own summary and check time), so each one that is
    // not older than the stored row is written.
    let mut sent: Vec<HealthRecord> = Vec::new();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..6u32 {
        let store = if w % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let mut batches = Vec::new();
        for round in 0..12u32 {
            let n = w * 100 + round;
            let agent_id = agents[(n % 2) as usize];
            let batch: Vec<HealthRecord> = objects
                .iter()
                .enumerate()
                .map(|(k, o)| {
                    // Out of order on purpose: later rounds are not always newer.
                    let at = i64::from((n * 7 + k as u32 * 13) % 97);
                    let mut r = record(
                        agent_id,
                        *o,
                        statuses[((n + k as u32) % 4) as usize],
                        t0() + secs(at),
                    );
                    r.summary.pods_ready = n;
                    r
                })
                .collect();
            sent.extend(batch.iter().cloned());
            batches.push(batch);
        }
        writers.spawn(async move {
            for batch in batches {
                store.upsert_health(&batch, t0()).await.unwrap();
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    for a in &agents {
        let rows = first.health_of_agent(*a).await.unwrap();
        assert_eq!(rows.len(), objects.len());
        for row in rows {
            let newest = sent
                .iter()
                .filter(|r| {
                    r.agent_id == row.agent_id && r.deployment_object_id == row.deployment_object_id
                })
                .map(|r| r.checked_at)
                .max()
                .unwrap();
            assert_eq!(row.checked_at, newest, "a newer check was overwritten");
            let mut last = None;
            for event in first.events_after(0, 10_000).await.unwrap() {
                if let brokkr_core::events::FleetEvent::HealthChanged {
                    deployment_object_id,
                    agent_id,
                    from,
                    to,
                    ..
                } = event.event
                    && (agent_id, deployment_object_id) == (row.agent_id, row.deployment_object_id)
                {
                    assert_eq!(from, last, "event {} breaks the chain", event.seq);
                    last = Some(to);
                }
            }
            assert_eq!(
                last,
                Some(row.status),
                "the last event is the stored status"
            );
        }
    }
    assert_rollup_is_recomputed(&*first, &agents, "after the race").await;
}

/// Writers on two handles add events concurrently while a reader polls after its cursor:
/// the reader never finds an event below a cursor it has passed (sequence numbers become
/// visible in order), and in the end has seen every event once.
pub async fn outbox_readers_never_skip_an_event(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    let s = stack("shop");
    first.insert_stack(&s).await.unwrap();
    let mut writers = Vec::new();
    for n in 0..8u8 {
        let a = agent(&format!("edge-{n}"));
        first.insert_agent(&a, &pak(n)).await.unwrap();
        let o = first.insert_deployment_object(&object(s.id)).await.unwrap();
        let store = if n % 2 == 0 {
            Arc::clone(&first)
        } else {
            Arc::clone(&second)
        };
        writers.push(tokio::spawn(async move {
            for round in 0..25i64 {
                // Every write flips the status: every write is an event.
                let status = if round % 2 == 0 {
                    Health::Failing
                } else {
                    Health::Healthy
                };
                let at = t0() + secs(round);
                store
                    .upsert_health(&[record(a.id, o.id, status, at)], at)
                    .await
                    .unwrap();
            }
        }));
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let store = Arc::clone(&second);
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = 0;
            loop {
                // Checked before reading: a page read after the writers finished is final.
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let page = store.events_after(cursor, 7).await.unwrap();
                if page.is_empty() {
                    if finished {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    continue;
                }
                for event in page {
                    assert!(
                        event.seq > cursor,
                        "out of order after {cursor}: {}",
                        event.seq
                    );
                    cursor = event.seq;
                    seen.push(event.seq);
                }
            }
            seen
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let seen = reader.await.unwrap();
    let all: Vec<u64> = first
        .events_after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(all.len(), 200, "8 writers × 25 transitions");
    assert_eq!(seen, all, "the polling reader skipped events");
}

/// 50 claimers through two handles of one store race for 100 requests: every request is
/// claimed exactly once.
pub async fn concurrent_claims_have_one_winner(first: Arc<dyn Store>, second: Arc<dyn Store>) {
    let (a, _, o) = world(first.as_ref()).await;
    let requests: Vec<DiagnosticRequest> = (0..100).map(|_| diagnostic(o.id, a.id)).collect();
    first.insert_diagnostic_requests(&requests).await.unwrap();
    let ids: Arc<Vec<_>> = Arc::new(requests.iter().map(|r| r.id).collect());
    let mut tasks = Vec::new();
    for claimer in 0..50usize {
        let store = if claimer % 2 == 0 {
            Arc::clone(&first)
        } else {
            Arc::clone(&second)
        };
        let ids = Arc::clone(&ids);
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            // Each claimer walks the requests from its own offset.
            for k in 0..ids.len() {
                let id = ids[(k + claimer * 7) % ids.len()];
                match store.claim_diagnostic(id, a.id, None, t0() + secs(1)).await {
                    Ok((_, ClaimOutcome::Claimed)) => won.push(id),
                    Ok((_, ClaimOutcome::AlreadyHeld)) => panic!("no token, no AlreadyHeld"),
                    Err(Error::Conflict(_)) => {}
                    Err(other) => panic!("unexpected {other}"),
                }
            }
            won
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        winners.extend(task.await.unwrap());
    }
    let distinct: HashSet<_> = winners.iter().copied().collect();
    assert_eq!(winners.len(), 100, "every request claimed exactly once");
    assert_eq!(distinct.len(), 100);
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
    assert_eq!(rollup.cpu_capacity, 7000);
    assert_eq!(rollup.cpu_available, 3500);
    assert_eq!((rollup.nodes, rollup.nodes_ready), (6, 3));
    store.ping().await.unwrap();
}

/// Expands to one `#[tokio::test]` per store contract.
///
/// `$factory` is an async expression evaluating to a fresh `Arc<S>` of an empty store;
/// `$second` (for the contracts across replicas) maps that store to a second, independent
/// handle on the same data (for Postgres: another pool).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr, $second:expr) => {
        mod store_conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance as c;

            macro_rules! contract {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let store = $factory.await;
                        c::$name(store).await;
                    }
                };
            }

            contract!(agents_are_stored_listed_and_found_by_key);
            contract!(heartbeats_keep_the_latest_liveness);
            contract!(concurrent_heartbeats_are_answered_once_stored);
            contract!(keys_are_rotated_revoked_and_agents_deleted);
            contract!(deployment_objects_get_increasing_sequence_ids);
            contract!(targets_are_idempotent_and_checked);
            contract!(deliveries_follow_reconcile_reports);
            contract!(work_orders_are_claimed_once);
            contract!(health_upserts_skip_unchanged_and_never_overwrite_newer);
            contract!(diagnostics_are_claimed_once_and_answered_once);
            contract!(diagnostics_expire_and_are_cleaned_up_once);
            contract!(fleet_rollup_counts_staleness_and_capacity);
            contract!(fleet_rollup_matches_a_full_recompute);
            contract!(webhooks_are_stored_listed_and_deleted);
            contract!(health_transitions_reach_the_outbox_in_order);

            /// A contract over two independent handles on the same data.
            macro_rules! across_replicas {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let first = $factory.await;
                        let second = $second(&first).await;
                        c::$name(first, second).await;
                    }
                };
            }

            across_replicas!(outbox_readers_never_skip_an_event);
            across_replicas!(racing_reports_keep_the_newest_and_exact_counts);
            across_replicas!(outbox_decisions_hold_across_replicas);
            across_replicas!(concurrent_claims_have_one_winner);
        }
    };
}
