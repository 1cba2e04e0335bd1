//! Brokkr: fleet health for multi-cluster Kubernetes orchestrators.
//!
//! This facade re-exports the workspace crates behind features, in the manner of the
//! `kube` facade over `kube-core` / `kube-client` / `kube-runtime`:
//!
//! | feature | crate | what |
//! |---|---|---|
//! | always | [`core`] | domain model, health classifier, policies |
//! | `memory` (default) | `store_memory` | in-process store |
//! | `postgres` | `store_postgres` | PostgreSQL store |
//! | `k8s` | `k8s` | Kubernetes probe and applier |
//! | `http` (default) | `http` | broker HTTP API |
//! | `agent` (default) | [`agent`] | agent runtime, simulated cluster |
//! | `client` (default) | [`client`] | the agent's HTTP client (no server stack) |
//! | `webhooks` (default) | `http::webhooks` | signed webhook deliveries of fleet events |
//! | `otel` | `http::otel` | OpenTelemetry (OTLP/HTTP) export of request spans |
#![forbid(unsafe_code)]

#[cfg(feature = "agent")]
pub use brokkr_agent as agent;
#[cfg(feature = "client")]
pub use brokkr_client as client;
pub use brokkr_core as core;
#[cfg(feature = "http")]
pub use brokkr_http as http;
#[cfg(feature = "k8s")]
pub use brokkr_k8s as k8s;
#[cfg(feature = "memory")]
pub use brokkr_store_memory as store_memory;
#[cfg(feature = "postgres")]
pub use brokkr_store_postgres as store_postgres;

pub use brokkr_core::health;
