//! The agent runtime (feature `agent`): one per cluster, egress only.
//!
//! [`Agent`] runs four loops against a [`ClusterProbe`](brokkr_core::probe::ClusterProbe), an
//! optional [`Applier`](brokkr_core::probe::Applier) and a [`BrokerApi`]:
//! reconcile (target state → apply → deployment status), health (classify → report
//! changes), diagnostics (claim → collect → post) and heartbeat (liveness and the
//! cluster snapshot). The pieces that decide — delta reporting, retry backoff, bundle
//! assembly — are pure and live in their own modules.
//!
//! `brokkr_core::api::LocalBroker` is the in-process [`BrokerApi`]; `brokkr_client::Client`
//! is the HTTP one. [`SimulatedCluster`] stands in for a cluster in demos and tests.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod collect;
mod config;
mod reconcile;
mod reporting;
mod runtime;
mod simulated;

pub use brokkr_core::api::{BrokerApi, LocalBroker};
pub use config::AgentConfig;
pub use reconcile::{Backoff, Reconciler};
pub use reporting::HealthReporter;
pub use runtime::{Agent, CheckReport, DiagnosticsReport, ReconcileReport};
pub use simulated::{Fault, FaultKind, SimulatedCluster, SimulationConfig};
