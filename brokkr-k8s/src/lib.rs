//! Kubernetes adapter for Brokkr: the agent's [`KubeProbe`] (reads) and
//! [`KubeApplier`] (server-side apply) over a `kube::Client`.
//!
//! This crate picks no k8s-openapi version feature (binaries do, e.g. `v1_33`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use brokkr_k8s::{KubeApplier, KubeApplierConfig, KubeProbe, KubeProbeConfig};
//! let client = brokkr_k8s::connect().await?; // kubeconfig or in-cluster
//! let probe = KubeProbe::new(client.clone(), KubeProbeConfig::default());
//! let applier = KubeApplier::new(client, KubeApplierConfig::default());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod apply;
mod error;
mod probe;
mod quantity;
pub mod rbac;
mod selector;

pub use apply::{KubeApplier, KubeApplierConfig, STACK_LABEL};
pub use error::{Error, Result};
/// The kube client this crate is built on, for callers that make the `Client`.
pub use kube;
pub use probe::{KubeProbe, KubeProbeConfig, OBJECT_LABEL};

/// A client for the cluster this process runs in, or the one `KUBECONFIG` (or
/// `~/.kube/config`) names.
///
/// # Errors
/// [`Error::Config`] when there is neither, or the configuration is unusable.
pub async fn connect() -> Result<kube::Client> {
    kube::Client::try_default().await.map_err(Error::Config)
}
