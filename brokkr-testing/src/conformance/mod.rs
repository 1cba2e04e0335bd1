//! The store conformance suite: every contract of the store traits, runnable against any
//! implementation.
//!
//! Each check takes a fresh, empty store. Adapters run them all with
//! [`store_conformance_tests!`](crate::store_conformance_tests), which expands to one
//! `#[tokio::test]` per contract so failures are named.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};

use brokkr_core::diagnostics::{DiagnosticPolicy, DiagnosticRequest};
use brokkr_core::health::Health;
use brokkr_core::ids::{AgentId, DeploymentObjectId, StackId};
use brokkr_core::model::{
    Agent, DeploymentObject, DeploymentStatusEvent, DiagnosticBundle, DiagnosticOutcome,
    FailureReason, HealthRecord, HealthSummary, ReconcileOutcome, Stack, Target,
};
use brokkr_core::store::{PakHash, Store};

mod agents;
mod catalog;
mod events;
mod races;
mod rollup;
mod work;

pub use agents::{
    agents_are_stored_listed_and_found_by_key, concurrent_heartbeats_are_answered_once_stored,
    health_check_times_never_run_backwards, heartbeats_keep_the_latest_liveness,
    keys_are_rotated_revoked_and_agents_deleted,
};
pub use catalog::{
    deliveries_follow_reconcile_reports, deployment_objects_get_increasing_sequence_ids,
    targets_are_idempotent_and_checked,
};
pub use events::{
    health_transitions_reach_the_outbox_in_order, outbox_decisions_hold_across_replicas,
    webhooks_are_stored_listed_and_deleted,
};
pub use races::{
    concurrent_claims_have_one_winner, outbox_readers_never_skip_an_event,
    racing_reports_keep_the_newest_and_exact_counts,
};
pub use rollup::{
    FleetStep, ROLLUP_AGENTS, ROLLUP_OBJECTS, fleet_history,
    fleet_rollup_counts_staleness_and_capacity, fleet_rollup_matches_a_full_recompute,
    fleet_rollup_matches_a_full_recompute_after, queue_depth_skips_superseded_deliveries,
};
pub use work::{
    diagnostics_are_claimed_once_and_answered_once, diagnostics_expire_and_are_cleaned_up_once,
    health_upserts_skip_unchanged_and_never_overwrite_newer, work_orders_are_claimed_once,
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
            contract!(health_check_times_never_run_backwards);
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
            contract!(queue_depth_skips_superseded_deliveries);
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
