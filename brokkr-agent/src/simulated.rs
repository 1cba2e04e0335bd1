//! A simulated cluster: a [`ClusterProbe`] and [`Applier`] with no Kubernetes behind
//! it, for demos, tests and load experiments.
//!
//! Applying a deployment object creates one Deployment per stack (the latest applied
//! object wins; a deletion marker removes it) with `pods_per_object` pods spread over
//! the nodes. Scripted [`Fault`]s change what the probe reports from a given time on, in
//! the shapes the real API server uses, so the real classifier judges them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use brokkr_core::clock::Clock;
use brokkr_core::health::Observations;
use brokkr_core::ids::{DeploymentObjectId, StackId};
use brokkr_core::model::{DeploymentObject, FailureReason};
use brokkr_core::probe::{
    Applier, ApplyError, ClusterProbe, ClusterState, EventScope, LogQuery, ObservedEvent,
    ProbeError,
};

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// Every pod of the object waits on an image that does not exist.
    ImagePullBackOff,
    /// Every pod's container crashes right after start.
    CrashLoopBackOff,
    /// Every pod's container was recently killed for exceeding its memory limit.
    OomKilled,
    /// No node can take the object's pods.
    Unschedulable,
    /// Node `node-<n>` stops reporting (its pods become unknown).
    NodeLoss(usize),
    /// Applying the object fails with this reason.
    ApplyRejected(FailureReason),
    /// The Kubernetes API cannot be reached at all.
    ApiDown,
}

/// A fault active from `from` until `until` (for ever when `None`), on one object's
/// pods, or cluster-wide when `object` is `None` (node loss, API outage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The object whose pods are affected.
    pub object: Option<DeploymentObjectId>,
    /// What happens.
    pub kind: FaultKind,
    /// From when.
    pub from: DateTime<Utc>,
    /// Until when.
    pub until: Option<DateTime<Utc>>,
}

impl Fault {
    fn active(&self, now: DateTime<Utc>) -> bool {
        self.from <= now && self.until.is_none_or(|u| now < u)
    }
}

/// Size and shape of the simulated cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulationConfig {
    /// Namespace every workload lives in.
    pub namespace: String,
    /// Pods per applied object.
    pub pods_per_object: usize,
    /// Nodes.
    pub nodes: usize,
    /// Allocatable CPU per node, millicores.
    pub node_cpu_millis: i64,
    /// Allocatable memory per node, bytes.
    pub node_memory_bytes: i64,
    /// CPU request per pod, millicores.
    pub pod_cpu_millis: i64,
    /// Memory request per pod, bytes.
    pub pod_memory_bytes: i64,
    /// Reported API latency.
    pub api_latency_ms: i64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        Self {
            namespace: "apps".to_owned(),
            pods_per_object: 3,
            nodes: 3,
            node_cpu_millis: 4000,
            node_memory_bytes: 16 * 1024 * 1024 * 1024,
            pod_cpu_millis: 100,
            pod_memory_bytes: 128 * 1024 * 1024,
            api_latency_ms: 4,
        }
    }
}

#[derive(Debug, Clone)]
struct Workload {
    object: DeploymentObjectId,
    applied_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
struct World {
    /// One workload per stack: the latest applied object.
    workloads: BTreeMap<StackId, Workload>,
    faults: Vec<Fault>,
    applies: u64,
}

/// The simulated cluster. Cheap to share behind an `Arc` as both probe and applier.
pub struct SimulatedCluster {
    clock: Arc<dyn Clock>,
    config: SimulationConfig,
    world: Mutex<World>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl SimulatedCluster {
    /// An empty cluster reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>, config: SimulationConfig) -> Self {
        Self {
            clock,
            config,
            world: Mutex::new(World::default()),
        }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Scripts a fault.
    pub fn inject(&self, fault: Fault) {
        self.world().faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.world().faults.clear();
    }

    /// Successful and failed apply calls so far.
    pub fn apply_calls(&self) -> u64 {
        self.world().applies
    }

    /// Objects currently running, one per stack.
    pub fn running(&self) -> Vec<DeploymentObjectId> {
        self.world().workloads.values().map(|w| w.object).collect()
    }

    fn faults(&self, now: DateTime<Utc>) -> Vec<Fault> {
        self.world()
            .faults
            .iter()
            .filter(|f| f.active(now))
            .cloned()
            .collect()
    }

    /// Whether the API server answers: a fault for no object takes it all down, one
    /// for an object only the reads of that object (`object`).
    fn api_down(&self, now: DateTime<Utc>) -> Result<(), ProbeError> {
        self.api_down_for(now, None)
    }

    fn api_down_for(
        &self,
        now: DateTime<Utc>,
        object: Option<DeploymentObjectId>,
    ) -> Result<(), ProbeError> {
        if self
            .faults(now)
            .iter()
            .any(|f| f.kind == FaultKind::ApiDown && (f.object.is_none() || f.object == object))
        {
            return Err(ProbeError::Unavailable(
                "simulated API server unreachable".into(),
            ));
        }
        Ok(())
    }

    fn lost_nodes(faults: &[Fault]) -> Vec<usize> {
        faults
            .iter()
            .filter_map(|f| match f.kind {
                FaultKind::NodeLoss(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    fn name(stack: StackId) -> String {
        format!("app-{}", &stack.to_string()[..8])
    }

    fn pod_fault(faults: &[Fault], object: DeploymentObjectId) -> Option<&Fault> {
        faults.iter().find(|f| {
            f.object == Some(object)
                && matches!(
                    f.kind,
                    FaultKind::ImagePullBackOff
                        | FaultKind::CrashLoopBackOff
                        | FaultKind::OomKilled
                        | FaultKind::Unschedulable
                )
        })
    }

    fn nodes(&self, lost: &[usize], now: DateTime<Utc>) -> Vec<Value> {
        (0..self.config.nodes)
            .map(|n| {
                let gone = lost.contains(&n);
                let (status, reason) = if gone {
                    ("Unknown", "NodeStatusUnknown")
                } else {
                    ("True", "KubeletReady")
                };
                let taints = if gone {
                    json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}])
                } else {
                    json!([])
                };
                json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": format!("node-{n}"), "uid": format!("node-uid-{n}")},
                    "spec": {"taints": taints},
                    "status": {"conditions": [{"type": "Ready", "status": status, "reason": reason,
                        "lastTransitionTime": ts(now - Duration::minutes(1))}]}
                })
            })
            .collect()
    }

    /// One pod as the API server would show it, with `fault` applied.
    fn pod(
        &self,
        name: &str,
        i: usize,
        applied: DateTime<Utc>,
        fault: Option<&Fault>,
        now: DateTime<Utc>,
    ) -> (Value, bool) {
        let ns = &self.config.namespace;
        let pod_name = format!("{name}-7c9d8-{i}");
        let node = format!("node-{}", i % self.config.nodes.max(1));
        let owner = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-7c9d8"),
            "uid": format!("{name}-rs-uid"), "controller": true}]);
        let since = fault.map_or(applied, |f| f.from.max(applied));
        let restarts = ((now - since).num_seconds() / 30 + 1).clamp(1, 50);
        let running = json!({"running": {"startedAt": ts(applied)}});
        let (phase, ready, state, last_state, restart_count, scheduled) = match fault
            .map(|f| &f.kind)
        {
            Some(FaultKind::ImagePullBackOff) => (
                "Pending",
                false,
                json!({"waiting": {"reason": "ImagePullBackOff",
                    "message": "Back-off pulling image \"registry.example/shop/app:does-not-exist\""}}),
                json!({}),
                0,
                true,
            ),
            Some(FaultKind::CrashLoopBackOff) => (
                "Running",
                false,
                json!({"waiting": {"reason": "CrashLoopBackOff",
                    "message": format!("back-off 5m0s restarting failed container=app pod={pod_name}")}}),
                json!({"terminated": {"exitCode": 1, "reason": "Error",
                    "startedAt": ts(now - Duration::seconds(12)), "finishedAt": ts(now - Duration::seconds(10))}}),
                restarts,
                true,
            ),
            Some(FaultKind::OomKilled) => (
                "Running",
                true,
                json!({"running": {"startedAt": ts(now - Duration::seconds(20))}}),
                json!({"terminated": {"exitCode": 137, "reason": "OOMKilled",
                    "startedAt": ts(now - Duration::seconds(80)), "finishedAt": ts(now - Duration::seconds(21))}}),
                restarts,
                true,
            ),
            Some(FaultKind::Unschedulable) => ("Pending", false, json!({}), json!({}), 0, false),
            _ => ("Running", true, running, json!({}), 0, true),
        };
        let ready_since = if ready { applied } else { since };
        let mut conditions = vec![
            json!({"type": "Ready", "status": if ready {"True"} else {"False"},
            "lastTransitionTime": ts(ready_since)}),
        ];
        let mut spec =
            json!({"containers": [{"name": "app", "image": "registry.example/shop/app:1.4.2"}]});
        let mut status = json!({"phase": phase, "startTime": ts(since)});
        if scheduled {
            spec["nodeName"] = json!(node);
            conditions.push(
                json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(since)}),
            );
            status["containerStatuses"] = json!([{"name": "app", "ready": ready, "restartCount": restart_count,
                "state": state, "lastState": last_state}]);
        } else {
            conditions = vec![
                json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": format!("0/{} nodes are available: {} Insufficient memory.", self.config.nodes, self.config.nodes),
                "lastTransitionTime": ts(since)}),
            ];
            status.as_object_mut().map(|s| s.remove("startTime"));
        }
        status["conditions"] = json!(conditions);
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": ns, "uid": format!("{name}-pod-uid-{i}"),
                "creationTimestamp": ts(since), "ownerReferences": owner,
                "labels": {"app": name}},
            "spec": spec,
            "status": status,
        });
        (pod, ready)
    }

    fn workload(
        &self,
        stack: StackId,
        w: &Workload,
        faults: &[Fault],
        now: DateTime<Utc>,
    ) -> Vec<Value> {
        let name = Self::name(stack);
        let ns = &self.config.namespace;
        let n = self.config.pods_per_object;
        let fault = Self::pod_fault(faults, w.object);
        let mut objects = Vec::with_capacity(n + 2);
        let mut ready = 0;
        for i in 0..n {
            let (pod, is_ready) = self.pod(&name, i, w.applied_at, fault, now);
            ready += usize::from(is_ready);
            objects.push(pod);
        }
        let all = ready == n;
        let available_since = fault.map_or(w.applied_at, |f| f.from.max(w.applied_at));
        let status = json!({
            "observedGeneration": 1, "replicas": n, "updatedReplicas": n,
            "readyReplicas": ready, "availableReplicas": ready,
        });
        let mut deployment_status = status.clone();
        deployment_status["conditions"] = json!([
            {"type": "Available", "status": if all {"True"} else {"False"},
             "reason": if all {"MinimumReplicasAvailable"} else {"MinimumReplicasUnavailable"},
             "lastTransitionTime": ts(if all { w.applied_at } else { available_since }),
             "lastUpdateTime": ts(available_since)},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "lastTransitionTime": ts(w.applied_at), "lastUpdateTime": ts(w.applied_at)}
        ]);
        objects.push(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "uid": format!("{name}-uid"), "generation": 1,
                "creationTimestamp": ts(w.applied_at),
                "labels": {"brokkr.io/deployment-object-id": w.object.to_string()}},
            "spec": {"replicas": n, "progressDeadlineSeconds": 600},
            "status": deployment_status,
        }));
        objects.push(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("{name}-7c9d8"), "namespace": ns, "uid": format!("{name}-rs-uid"),
                "generation": 1, "creationTimestamp": ts(w.applied_at),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                    "uid": format!("{name}-uid"), "controller": true}]},
            "spec": {"replicas": n},
            "status": status,
        }));
        objects
    }
}

#[async_trait]
impl ClusterProbe for SimulatedCluster {
    async fn observe(&self, object: &DeploymentObject) -> Result<Observations, ProbeError> {
        let now = self.clock.now();
        self.api_down_for(now, Some(object.id))?;
        let faults = self.faults(now);
        let workload = self.world().workloads.get(&object.stack_id).cloned();
        let mut values = Vec::new();
        if let Some(w) = workload {
            values = self.workload(object.stack_id, &w, &faults, now);
        }
        values.extend(self.nodes(&Self::lost_nodes(&faults), now));
        Observations::from_values(values).map_err(|e| ProbeError::Invalid(e.to_string()))
    }

    async fn cluster_state(&self) -> Result<ClusterState, ProbeError> {
        let now = self.clock.now();
        self.api_down(now)?;
        let c = &self.config;
        let nodes = i64::try_from(c.nodes).unwrap_or(i64::MAX);
        let lost = i64::try_from(Self::lost_nodes(&self.faults(now)).len()).unwrap_or(0);
        let pods = i64::try_from(self.world().workloads.len() * c.pods_per_object).unwrap_or(0);
        Ok(ClusterState {
            node_count: Some(nodes),
            node_ready_count: Some((nodes - lost).max(0)),
            cpu_capacity_millis: Some(nodes * c.node_cpu_millis),
            cpu_available_millis: Some(nodes * c.node_cpu_millis - pods * c.pod_cpu_millis),
            memory_capacity_bytes: Some(nodes * c.node_memory_bytes),
            memory_available_bytes: Some(nodes * c.node_memory_bytes - pods * c.pod_memory_bytes),
            api_latency_ms: Some(c.api_latency_ms),
        })
    }

    async fn events(&self, scope: &EventScope) -> Result<Vec<ObservedEvent>, ProbeError> {
        let now = self.clock.now();
        self.api_down(now)?;
        let faults = self.faults(now);
        let workloads = self.world().workloads.clone();
        let mut out = Vec::new();
        for (stack, w) in &workloads {
            let name = Self::name(*stack);
            let lost = Self::lost_nodes(&faults);
            let fault = Self::pod_fault(&faults, w.object);
            for i in 0..self.config.pods_per_object {
                let uid = format!("{name}-pod-uid-{i}");
                if !scope.uids.contains(&uid) {
                    continue;
                }
                let pod = format!("Pod/{name}-7c9d8-{i}");
                let mut push = |kind: &str, reason: &str, message: String, from: DateTime<Utc>| {
                    let count = u32::try_from((now - from).num_seconds() / 30 + 1).unwrap_or(1);
                    out.push(ObservedEvent {
                        involved_uid: Some(uid.clone()),
                        involved_object: Some(pod.clone()),
                        event_type: kind.to_owned(),
                        reason: reason.to_owned(),
                        message,
                        first_seen: Some(from),
                        last_seen: Some(now.max(from)),
                        count: Some(count),
                    });
                };
                push(
                    "Normal",
                    "Scheduled",
                    format!(
                        "Successfully assigned {}/{name}-7c9d8-{i} to node-{}",
                        self.config.namespace,
                        i % self.config.nodes.max(1)
                    ),
                    w.applied_at,
                );
                if let Some(f) = fault {
                    let (reason, message) = match f.kind {
                        FaultKind::ImagePullBackOff => ("Failed", "Failed to pull image \"registry.example/shop/app:does-not-exist\": not found".to_owned()),
                        FaultKind::CrashLoopBackOff => ("BackOff", "Back-off restarting failed container app".to_owned()),
                        FaultKind::OomKilled => ("OOMKilling", "Memory cgroup out of memory: Killed process (app)".to_owned()),
                        _ => ("FailedScheduling", format!("0/{} nodes are available: {} Insufficient memory.", self.config.nodes, self.config.nodes)),
                    };
                    push("Warning", reason, message, f.from);
                }
                if lost.contains(&(i % self.config.nodes.max(1))) {
                    push(
                        "Warning",
                        "NodeNotReady",
                        "Node is not ready".to_owned(),
                        now - Duration::minutes(1),
                    );
                }
            }
        }
        Ok(out)
    }

    async fn log_tail(&self, query: &LogQuery) -> Result<Vec<String>, ProbeError> {
        let now = self.clock.now();
        self.api_down(now)?;
        let faults = self.faults(now);
        let crashing = self.world().workloads.iter().any(|(stack, w)| {
            query.pod.starts_with(&Self::name(*stack))
                && Self::pod_fault(&faults, w.object).is_some_and(|f| {
                    matches!(f.kind, FaultKind::CrashLoopBackOff | FaultKind::OomKilled)
                })
        });
        if query.previous && !crashing {
            return Err(ProbeError::NotFound(format!(
                "previous terminated container \"{}\" in pod \"{}\" not found",
                query.container, query.pod
            )));
        }
        let mut lines = vec![
            "starting app version=1.4.2".to_owned(),
            "connecting to postgres://orders:s3cr3t-pa55@db.internal:5432/orders".to_owned(),
            "calling billing with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2lnbmF0dXJl".to_owned(),
        ];
        if crashing {
            lines.push("loading catalog cache (2.1 GiB)".to_owned());
            lines.push("fatal: out of memory while loading catalog".to_owned());
        } else {
            lines.extend((0..60).map(|i| format!("GET /healthz 200 {}µs", 180 + i)));
        }
        let skip = lines.len().saturating_sub(query.lines as usize);
        Ok(lines.split_off(skip))
    }
}

#[async_trait]
impl Applier for SimulatedCluster {
    async fn apply(&self, object: &DeploymentObject) -> Result<(), ApplyError> {
        let now = self.clock.now();
        let faults = self.faults(now);
        let mut world = self.world();
        world.applies += 1;
        if faults.iter().any(|f| f.kind == FaultKind::ApiDown) {
            return Err(ApplyError::new(
                FailureReason::ApiUnavailable,
                "simulated API server unreachable",
            ));
        }
        if let Some(FaultKind::ApplyRejected(reason)) = faults
            .iter()
            .find(|f| f.object == Some(object.id) && matches!(f.kind, FaultKind::ApplyRejected(_)))
            .map(|f| &f.kind)
        {
            return Err(ApplyError::new(
                *reason,
                format!("simulated rejection of deployment object {}", object.id),
            ));
        }
        if object.is_deletion {
            world.workloads.remove(&object.stack_id);
        } else {
            world.workloads.insert(
                object.stack_id,
                Workload {
                    object: object.id,
                    applied_at: now,
                },
            );
        }
        Ok(())
    }
}
