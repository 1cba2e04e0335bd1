//! `Broker`: the service API that the HTTP layer and embedding hosts call.
//!
//! The broker owns policy: it authenticates keys, authorizes every call, validates
//! input, reads the time from its [`Clock`], and turns stored rows into answers
//! (staleness, worst-of rollups, queue figures). Stores only persist. A `Broker` is an
//! `Arc` inside: cheap to clone and safe to share across tasks.
//!
//! One file per concern: `credentials` (agents and their keys), `catalog` (agents as
//! operators see them, stacks, objects, targets), `reports` (what agents send),
//! `health_reads`, `fleet` (the summary snapshot), `work_orders`, `diagnostics`,
//! `events` (webhooks and the outbox); `views` holds what the calls answer.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::auth::{Principal, Role, constant_time_eq, hash_pak, looks_like};
use crate::backlog::BacklogPolicy;
use crate::clock::Clock;
use crate::diagnostics::DiagnosticPolicy;
use crate::ids::{AgentId, DeploymentObjectId};
use crate::model::{Agent, DeploymentObject, Limits};
use crate::staleness::StalenessPolicy;
use crate::store::{PakHash, Store};
use crate::{Error, Result};

/// How long fleet events stay in the outbox: a subscriber away longer than this gets a
/// gap notice instead of what it missed.
pub const EVENT_RETENTION: chrono::Duration = chrono::Duration::hours(24);

/// Policies of a broker. Defaults follow the design.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// Heartbeat age → fresh / stale / lost.
    pub staleness: StalenessPolicy,
    /// Claim deadline and retention of diagnostics.
    pub diagnostics: DiagnosticPolicy,
    /// Window of delivery latency percentiles.
    pub backlog: BacklogPolicy,
    /// Input limits.
    pub limits: Limits,
    /// How often agents re-send unchanged verdicts (5 min). An unchanged verdict is
    /// rewritten when the stored row is older than half of this.
    pub refresh_interval: Duration,
    /// An agent whose last complete health cycle is older than this (3 × the 60 s
    /// check interval) has stopped checking: its verdicts read as stale.
    pub health_ttl: Duration,
    /// Longest the fleet summary is served from a snapshot (5 s): computing it counts
    /// agents by heartbeat age and sums their capacity, a scan over every agent, so a
    /// busy dashboard or scraper must not run it per request. Zero: computed per call.
    pub fleet_snapshot_max_age: Duration,
    /// How long a verified agent key is trusted without asking the store again (30 s:
    /// an agent calls at least every 30 s by default, so most of its requests skip the
    /// key lookup).
    /// Rotating, revoking or deleting through this broker takes effect at once here;
    /// another replica sharing the store keeps accepting the old key for at most this
    /// long. Zero: every request looks its key up.
    pub key_cache_ttl: Duration,
    /// Where webhook deliveries may go (no loopback, link-local or, unless allowed,
    /// private addresses), checked at registration and on every delivery.
    pub webhook_destinations: crate::destination::DestinationPolicy,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            staleness: StalenessPolicy::default(),
            diagnostics: DiagnosticPolicy::default(),
            backlog: BacklogPolicy::default(),
            limits: Limits::default(),
            refresh_interval: Duration::minutes(5),
            health_ttl: Duration::minutes(3),
            fleet_snapshot_max_age: Duration::seconds(5),
            key_cache_ttl: Duration::seconds(30),
            webhook_destinations: crate::destination::DestinationPolicy::default(),
        }
    }
}

impl BrokerConfig {
    /// Rejects inconsistent settings.
    pub fn validate(&self) -> Result<()> {
        let mut v = crate::error::Violations::new();
        v.nest("staleness", self.staleness.validate());
        v.nest("diagnostics", self.diagnostics.validate());
        v.check(
            self.refresh_interval <= Duration::zero(),
            "refresh_interval",
            "must be positive",
        );
        v.check(
            self.health_ttl <= Duration::zero(),
            "health_ttl",
            "must be positive",
        );
        v.check(
            self.fleet_snapshot_max_age < Duration::zero(),
            "fleet_snapshot_max_age",
            "must not be negative",
        );
        v.check(
            self.key_cache_ttl < Duration::zero(),
            "key_cache_ttl",
            "must not be negative",
        );
        v.finish()
    }
}

/// The last fleet summary computed, and which computation it came from.
#[derive(Debug, Default)]
struct FleetSnapshot {
    ticket: u64,
    summary: Option<FleetSummary>,
}

/// The broker service.
pub struct Broker<S: ?Sized> {
    inner: Arc<Inner<S>>,
}

struct Inner<S: ?Sized> {
    store: Arc<S>,
    /// Everything but the store, shared by the typed broker and its `dyn Store` view
    /// ([`Broker::into_dyn`]), so both see one key cache and one fleet snapshot.
    shared: Arc<Shared>,
}

struct Shared {
    config: BrokerConfig,
    clock: Arc<dyn Clock>,
    admin: PakHash,
    /// The last fleet summary computed ([`Broker::fleet_summary`]).
    fleet_snapshot: std::sync::Mutex<FleetSnapshot>,
    /// Numbers the fleet summary computations in the order they started.
    fleet_tickets: std::sync::atomic::AtomicU64,
    /// Agent keys verified recently.
    keys: crate::key_cache::KeyCache,
}

impl<S: Store + 'static> Broker<S> {
    /// The same broker over `Arc<dyn Store>`, as the HTTP router takes it: one key
    /// cache, one fleet snapshot and one configuration for both (never build a second
    /// broker over the same store for this; its key cache would not learn of rotations
    /// made through the first).
    pub fn into_dyn(self) -> Broker<dyn Store> {
        Broker {
            inner: Arc::new(Inner {
                store: self.inner.store.clone() as Arc<dyn Store>,
                shared: self.inner.shared.clone(),
            }),
        }
    }
}

impl<S: Store + 'static> From<Broker<S>> for Broker<dyn Store> {
    fn from(broker: Broker<S>) -> Self {
        broker.into_dyn()
    }
}

impl<S: ?Sized> Clone for Broker<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

mod catalog;
mod credentials;
mod diagnostics;
mod events;
mod fleet;
mod health_reads;
mod reports;
mod views;
mod work_orders;

pub use views::{
    AgentHealth, AgentHealthEntry, AgentObjectHealth, AgentView, DeploymentObjectView,
    DiagnosticView, FleetAgents, FleetCapacity, FleetHealth, FleetQueue, FleetSummary,
    HealthReportResult, ObjectHealth, OperationalStatus, ReconcileStats, RegisteredAgent, Rejected,
    StackHealth, StackObjectHealth, StatusReportResult,
};

impl<S: Store + ?Sized> Broker<S> {
    /// A broker over `store`, reading time from `clock`, accepting the admin key whose
    /// hash is `admin_pak_hash`.
    pub fn new(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        admin_pak_hash: PakHash,
        config: BrokerConfig,
    ) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                shared: Arc::new(Shared {
                    config,
                    clock,
                    admin: admin_pak_hash,
                    fleet_snapshot: std::sync::Mutex::default(),
                    fleet_tickets: std::sync::atomic::AtomicU64::new(0),
                    keys: crate::key_cache::KeyCache::default(),
                }),
            }),
        })
    }

    /// The store (for hosts that need direct access, and for readiness checks).
    pub fn store(&self) -> &Arc<S> {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.inner.shared.config
    }

    /// The time by the broker's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.shared.clock.now()
    }

    fn store_ref(&self) -> &S {
        &self.inner.store
    }

    /// [`Self::authenticate`] from memory only: the admin key, or an agent key verified
    /// within `key_cache_ttl`; `None` for anything that would need the store. The HTTP
    /// layer uses it for addresses over their failed-authentication limit, so a guesser
    /// costs no store round trip while agents behind the same address keep working.
    pub fn authenticate_cached(&self, key: &str) -> Option<Principal> {
        if looks_like(key, Role::Admin) {
            return constant_time_eq(&hash_pak(key), &self.inner.shared.admin)
                .then_some(Principal::Admin);
        }
        if !looks_like(key, Role::Agent) {
            return None;
        }
        let (now, ttl) = (self.now(), self.inner.shared.config.key_cache_ttl);
        self.inner
            .shared
            .keys
            .get(&hash_pak(key), now, ttl)
            .map(Principal::Agent)
    }

    /// Who presents `key`: the admin, an agent, or nobody (`Unauthorized`).
    pub async fn authenticate(&self, key: &str) -> Result<Principal> {
        if let Some(principal) = self.authenticate_cached(key) {
            return Ok(principal);
        }
        // Only an agent key not verified recently needs the store.
        if looks_like(key, Role::Agent) {
            let hash = hash_pak(key);
            let (now, ttl) = (self.now(), self.inner.shared.config.key_cache_ttl);
            let generation = self.inner.shared.keys.generation();
            if let Some(agent) = self.store_ref().agent_for_pak(&hash).await? {
                if ttl > Duration::zero() {
                    self.inner
                        .shared
                        .keys
                        .put(hash, agent, now, ttl, generation);
                }
                return Ok(Principal::Agent(agent));
            }
        }
        Err(Error::Unauthorized)
    }

    async fn existing_agent(&self, id: AgentId) -> Result<Agent> {
        self.store_ref()
            .get_agent(id)
            .await?
            .ok_or_else(|| Error::not_found("agent", id))
    }

    async fn existing_object(&self, id: DeploymentObjectId) -> Result<DeploymentObject> {
        self.store_ref()
            .get_deployment_object(id)
            .await?
            .ok_or_else(|| Error::not_found("deployment object", id))
    }
}
