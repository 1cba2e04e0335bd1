//! Brokkr core: the domain of fleet health, with no I/O.
//!
//! Everything the broker and the agent decide lives here, behind plain types and traits:
//!
//! * [`ids`] and [`model`]: agents, stacks, deployment objects, deliveries, work orders,
//!   heartbeats with their cluster snapshot, health reports and diagnostics, with
//!   validation that returns typed errors.
//! * [`health`]: the pure Kubernetes health classifier (observations in, [`health::Assessment`] out).
//! * [`staleness`], [`backlog`], [`diagnostics`]: the small policies the broker applies.
//! * [`store`]: the persistence contract every store adapter implements.
//! * [`redact`]: secrets out of log tails and messages.
//! * [`probe`]: the cluster side of an agent ([`probe::ClusterProbe`], [`probe::Applier`]).
//! * [`api`]: the broker's API as the agent sees it ([`api::BrokerApi`]), with the
//!   in-process implementation ([`api::LocalBroker`]); the runtime is `brokkr-agent`.
//! * [`events`]: what changed in the fleet, for live feeds.
//! * [`clock`]: the only way the library reads the time.
//! * [`error`]: the error type whose variants map one to one to API outcomes.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod auth;
pub mod backlog;
pub mod broker;
pub mod clock;
pub mod cluster_text;
pub mod destination;
pub mod diagnostics;
pub mod error;
pub mod events;
pub mod health;
pub mod ids;
mod key_cache;
pub mod model;
pub mod probe;
pub mod redact;
pub mod retry;
pub mod staleness;
pub mod store;
pub mod yaml_budget;

pub use error::{Error, Result};
