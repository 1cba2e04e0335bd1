//! The Kubernetes health classifier: observations in, [`Assessment`] out.
//!
//! Two axes describe every resource and every deployment object: [`Health`] (how well
//! it works; aggregation takes the worst) and [`Phase`] (where it is in its life cycle).
//! Findings say why, with stable [`FindingCode`]s and kubectl-style display strings.
//!
//! The rules, one module each:
//!
//! * pod rules — scheduling, readiness, deletion, lost nodes (`pod.rs`), and container
//!   rules — waiting reasons, terminations, OOM kills, restarts (`container.rs`);
//! * workload rules — Deployment, StatefulSet, DaemonSet, ReplicaSet (`workload.rs`);
//! * batch rules — Job, CronJob and its schedule (`batch.rs`, `cron.rs`);
//! * Services, Ingresses, PersistentVolumeClaims (`network.rs`);
//! * HorizontalPodAutoscalers (`autoscaler.rs`);
//! * custom resources and other kinds: a host's [`CustomKindRule`]s, well-known kinds,
//!   then the common status conventions (`custom.rs`);
//! * ownership and aggregation — owners decide for what they control (`classify.rs`).
//!
//! ```
//! use brokkr_core::health::{classify, HealthPolicy, Observations, Health};
//! use chrono::{TimeZone, Utc};
//!
//! let pod = serde_json::json!({
//!     "apiVersion": "v1", "kind": "Pod",
//!     "metadata": {"name": "web-0", "namespace": "shop"},
//!     "status": {"phase": "Pending", "startTime": "2026-03-01T11:50:00Z",
//!         "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
//!             "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
//! });
//! let observations = Observations::from_values([pod]).unwrap();
//! let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
//! let assessment = classify(&observations, now, &HealthPolicy::default());
//! assert_eq!(assessment.health, Health::Failing);
//! assert_eq!(assessment.conditions, ["ImagePullBackOff"]);
//! ```

mod antiflap;
mod autoscaler;
mod batch;
mod classify;
mod container;
mod context;
mod cron;
mod custom;
mod explain;
mod network;
pub mod objects;
mod pod;
mod policy;
mod resource;
pub mod synthetic;
mod verdict;
mod workload;

pub use antiflap::AntiFlap;
pub use classify::classify;
pub use custom::{ConditionRule, CustomKindRule, PhaseRule};
pub use explain::explain;
pub use policy::HealthPolicy;
pub use resource::{ObjectError, Observations, Resource};
pub use verdict::{
    Affected, Anchor, Assessment, ContainerRef, ContainerRole, Finding, FindingCode, Health,
    Persistence, Phase, ResourceRef, ResourceStatus, Severity,
};
