//! The Kubernetes health classifier: observations in, [`Assessment`] out.
//!
//! Two axes describe every resource and every deployment object: [`Health`] (how well
//! it works; aggregation takes the worst) and [`Phase`] (where it is in its life cycle).
//! Findings say why, with stable [`FindingCode`]s and kubectl-style display strings.
//!
//! The rules, one module each:
//!
//! * [`pod`](self) rules — container waiting reasons, terminations, OOM kills, restarts,
//!   scheduling, readiness, deletion, lost nodes (`pod.rs`);
//! * workload rules — Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, PVC,
//!   Service (`workload.rs`);
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
mod classify;
mod context;
pub mod objects;
mod pod;
mod policy;
mod resource;
pub mod synthetic;
mod verdict;
mod workload;

pub use antiflap::AntiFlap;
pub use classify::classify;
pub use policy::HealthPolicy;
pub use resource::{ObjectError, Observations, Resource};
pub use verdict::{
    Affected, Assessment, ContainerRef, ContainerRole, Finding, FindingCode, Health, Persistence,
    Phase, ResourceRef, ResourceStatus, Severity,
};
