//! The agent runtime (feature `agent`): one per cluster, egress only.
//!
//! [`Agent`] runs four loops against a [`ClusterProbe`](crate::probe::ClusterProbe), an
//! optional [`Applier`](crate::probe::Applier) and a [`BrokerApi`]:
//! reconcile (target state → apply → deployment status), health (classify → report
//! changes), diagnostics (claim → collect → post) and heartbeat (liveness and the
//! cluster snapshot). The pieces that decide — delta reporting, retry backoff, bundle
//! assembly — are pure and live in their own modules.
//!
//! [`LocalBroker`] is the in-process [`BrokerApi`]; `brokkr_http::Client` is the HTTP
//! one. [`SimulatedCluster`] stands in for a cluster in demos and tests.

mod api;
pub mod collect;
mod config;
mod reconcile;
mod reporting;
mod runtime;
mod simulated;

pub use api::{BrokerApi, LocalBroker};
pub use config::AgentConfig;
pub use reconcile::{Backoff, Reconciler};
pub use reporting::HealthReporter;
pub use runtime::{Agent, CheckReport, DiagnosticsReport, ReconcileReport};
pub use simulated::{Fault, FaultKind, SimulatedCluster, SimulationConfig};
