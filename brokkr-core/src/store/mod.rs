//! The persistence contract.
//!
//! `Store` is the sum of small traits, one per concept, so an adapter can be read (and a
//! test double written) one concern at a time. Every method is async and object safe
//! (`dyn Store` works), and writes are batch-first so a database store can write a batch
//! in one statement.
//!
//! Stores persist; they do not decide policy. Validation, authorization, staleness and
//! what a verdict means are the broker's job. Where atomicity is part
//! of the contract (the diagnostic claim, sequence numbers), the store guarantees it even
//! with several broker processes on one database.
//!
//! The conformance suite (crate `brokkr-testing`, `store_conformance_tests!`) runs every contract
//! written here against any implementation. One file per sub-trait, with the types its
//! methods take and answer.

mod agents;
mod catalog;
mod deliveries;
mod diagnostics;
mod events;
mod fleet;
mod health;
mod work_orders;

pub use agents::{AgentLiveness, AgentStore, HeartbeatRecord, Page, PageRequest, PakHash};
pub use catalog::{CatalogStore, ObjectReach};
pub use deliveries::DeliveryStore;
pub use diagnostics::{DiagnosticCounts, DiagnosticStore, ResultOutcome};
pub use events::{EventStore, WebhookStore};
pub use fleet::{FleetRollup, FleetStore};
pub use health::{HealthStore, StoredVerdict, UpsertOutcome};
pub use work_orders::WorkOrderStore;

/// Everything the broker persists.
pub trait Store:
    WebhookStore
    + EventStore
    + AgentStore
    + CatalogStore
    + DeliveryStore
    + WorkOrderStore
    + HealthStore
    + DiagnosticStore
    + FleetStore
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: WebhookStore
        + EventStore
        + AgentStore
        + CatalogStore
        + DeliveryStore
        + WorkOrderStore
        + HealthStore
        + DiagnosticStore
        + FleetStore
        + Send
        + Sync
{
}

mod metered;
pub use metered::{MeteredStore, StoreObserver};
