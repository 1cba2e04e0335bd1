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
//! | `agent` | [`agent`] | agent runtime, simulated cluster |
//! | `client` | [`client`] | the agent's HTTP client (no server stack) |
//! | `webhooks` | `http::webhooks` | signed webhook deliveries of fleet events (and the `/api/v1/webhooks` routes) |
//! | `otel` | `http::otel` | OpenTelemetry (OTLP/HTTP) export of request spans |
//!
//! The names a host types most are at the top level:
//!
//! ```
//! use brokkr::{Broker, BrokerConfig, Error, Store};
//! # #[cfg(feature = "memory")]
//! use brokkr::MemoryStore;
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "agent")]
#[cfg_attr(docsrs, doc(cfg(feature = "agent")))]
pub use brokkr_agent as agent;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use brokkr_client as client;
pub use brokkr_core as core;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use brokkr_http as http;
#[cfg(feature = "k8s")]
#[cfg_attr(docsrs, doc(cfg(feature = "k8s")))]
pub use brokkr_k8s as k8s;
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use brokkr_store_memory as store_memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use brokkr_store_postgres as store_postgres;

pub use brokkr_core::broker::{Broker, BrokerConfig};
pub use brokkr_core::health;
pub use brokkr_core::store::Store;
pub use brokkr_core::{Error, Result};

#[cfg(feature = "agent")]
#[cfg_attr(docsrs, doc(cfg(feature = "agent")))]
pub use brokkr_agent::{Agent, AgentConfig};
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use brokkr_client::Client;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use brokkr_http::{BrokerTasks, HttpConfig, Routers, TaskConfig, router, router_with, routers};
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use brokkr_store_memory::MemoryStore;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use brokkr_store_postgres::PgStore;
