//! In-process [`Store`](brokkr_core::store::Store) for Brokkr.
//!
//! Everything lives in maps behind one lock. Every method takes the lock once, does its
//! work without awaiting, and releases it, so each call is atomic: a batch is all or
//! nothing, and of several concurrent diagnostic claims exactly one wins, the same
//! semantics the Postgres store gives across processes. It is the default store of the
//! examples and tests, and suits a single broker process whose state may be lost on
//! restart.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use brokkr_core::diagnostics::DiagnosticRequest;
use brokkr_core::events::{FleetEvent, StoredEvent};
use brokkr_core::ids::{
    AgentId, DeploymentObjectId, DiagnosticId, StackId, WebhookId, WorkOrderId,
};
use brokkr_core::model::{
    Agent, Delivery, DeploymentObject, DiagnosticOutcome, HealthRecord, Stack, Target, WorkOrder,
};
use brokkr_core::staleness::Staleness;
use brokkr_core::store::{AgentLiveness, FleetRollup, PakHash};
use chrono::{DateTime, Utc};

mod agents;
mod catalog;
mod deliveries;
mod diagnostics;
mod events;
mod fleet;
mod health;
mod work_orders;

/// The in-memory store. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    agents: BTreeMap<AgentId, Agent>,
    paks: HashMap<PakHash, AgentId>,
    liveness: HashMap<AgentId, AgentLiveness>,
    stacks: HashMap<StackId, Stack>,
    objects: HashMap<DeploymentObjectId, DeploymentObject>,
    /// Highest sequence number and its object, per stack.
    latest: HashMap<StackId, (i64, DeploymentObjectId)>,
    targets: BTreeMap<(AgentId, StackId), Target>,
    deliveries: BTreeMap<(AgentId, DeploymentObjectId), Delivery>,
    work_orders: BTreeMap<WorkOrderId, WorkOrder>,
    health: BTreeMap<(AgentId, DeploymentObjectId), HealthRecord>,
    /// Health rows by status, maintained on every write.
    health_counts: FleetRollup,
    diagnostics: BTreeMap<DiagnosticId, (DiagnosticRequest, Option<DiagnosticOutcome>)>,
    webhooks: BTreeMap<brokkr_core::ids::WebhookId, brokkr_core::events::Webhook>,
    /// The events outbox, oldest first, with when each was written.
    events: std::collections::VecDeque<(StoredEvent, DateTime<Utc>)>,
    /// The last sequence number handed out.
    event_seq: u64,
    /// Staleness last announced per agent, and as of when.
    announced: HashMap<AgentId, (Staleness, DateTime<Utc>)>,
    /// Claimed event deliveries per webhook and event, with when.
    event_claims: HashMap<(WebhookId, u64), DateTime<Utc>>,
}

impl State {
    fn append_event(&mut self, event: FleetEvent, at: DateTime<Utc>) -> StoredEvent {
        self.event_seq += 1;
        let stored = StoredEvent {
            seq: self.event_seq,
            event,
        };
        self.events.push_back((stored.clone(), at));
        stored
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while holding the lock cannot leave the maps half-updated (every method
    // validates before it mutates), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryStore;

    // The conformance macro takes async factories (a database store needs them).
    #[allow(clippy::unused_async)]
    async fn fresh() -> Arc<MemoryStore> {
        Arc::new(MemoryStore::new())
    }

    /// The memory store's "second replica" is another handle on the same maps.
    #[allow(clippy::unused_async)]
    async fn same(store: &Arc<MemoryStore>) -> Arc<MemoryStore> {
        Arc::clone(store)
    }

    brokkr_testing::store_conformance_tests!(fresh(), same);

    mod rollup_property {
        use brokkr_core::health::Health;
        use brokkr_testing::conformance::{
            FleetStep, ROLLUP_AGENTS, ROLLUP_OBJECTS, fleet_rollup_matches_a_full_recompute_after,
        };
        use proptest::prelude::*;

        use super::fresh;

        fn step() -> impl Strategy<Value = FleetStep> {
            let status = prop_oneof![
                Just(Health::Healthy),
                Just(Health::Unknown),
                Just(Health::Degraded),
                Just(Health::Failing)
            ];
            prop_oneof![
                6 => (0..ROLLUP_AGENTS, 0..ROLLUP_OBJECTS, status, 0i64..300)
                    .prop_map(|(agent, object, status, at)| FleetStep::Report { agent, object, status, at }),
                3 => (0..ROLLUP_AGENTS, 0i64..300, prop::option::of(0i64..8000))
                    .prop_map(|(agent, at, cpu)| FleetStep::Heartbeat { agent, at, cpu }),
                1 => (0..ROLLUP_AGENTS).prop_map(|agent| FleetStep::Delete { agent }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

            /// Whatever the history, the maintained rollup equals a full recompute.
            #[test]
            fn the_rollup_equals_a_full_recompute(steps in prop::collection::vec(step(), 1..40)) {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                runtime.block_on(async {
                    fleet_rollup_matches_a_full_recompute_after(fresh().await, &steps).await;
                });
            }
        }
    }
}
