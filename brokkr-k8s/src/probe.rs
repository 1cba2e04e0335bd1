//! [`KubeProbe`]: the agent's read access to a real cluster.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use brokkr_core::health::Observations;
use brokkr_core::model::DeploymentObject;
use brokkr_core::probe::{
    ClusterProbe, ClusterState, EventScope, LogQuery, ObservedEvent, ProbeError,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Api, ListParams, LogParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apply::STACK_LABEL;
use crate::error::probe_error;
use crate::selector;

mod capacity;
mod convert;

use capacity::{allocatable, node_ready, requested};
use convert::{manifest_kinds, observed_event, unlisted_manifests};

/// The label that ties a Kubernetes object to its deployment object.
pub const OBJECT_LABEL: &str = "brokkr.io/deployment-object-id";

/// Limits of the probe's API calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeProbeConfig {
    /// Namespaces to look for deployment objects in; empty means every namespace.
    pub namespaces: Vec<String>,
    /// Each API call gives up after this long.
    pub call_timeout: Duration,
    /// Items per list page (`limit`; the API server hands out `continue` tokens).
    pub page_size: u32,
    /// Pages read per list at most, so one huge namespace cannot stall a cycle.
    pub max_pages: u32,
    /// Nodes are read at most this often (every object's check needs them).
    pub node_cache_ttl: Duration,
}

impl Default for KubeProbeConfig {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            call_timeout: Duration::from_secs(10),
            page_size: 500,
            max_pages: 20,
            node_cache_ttl: Duration::from_secs(15),
        }
    }
}

/// [`ClusterProbe`] over a `kube::Client`.
///
/// Finds a deployment object's resources by [`OBJECT_LABEL`] (one list per kind), then
/// what they own: ReplicaSets and pods by the workload's selector, kept only when their
/// controller owner reference points at the workload (pod templates carry no brokkr
/// label). Objects read as k8s-openapi types are handed to the classifier through their
/// JSON form, which is what its observation types parse.
pub struct KubeProbe {
    client: Client,
    config: KubeProbeConfig,
    nodes: Mutex<Option<(Instant, Vec<Node>)>>,
}

impl KubeProbe {
    /// A probe over `client`.
    pub fn new(client: Client, config: KubeProbeConfig) -> Self {
        Self {
            client,
            config,
            nodes: Mutex::new(None),
        }
    }

    /// Every page of a list, restarting once when the `continue` token expired (410).
    /// More than `max_pages` pages is an error: a verdict on part of the evidence would
    /// be a guess.
    async fn list<K>(
        &self,
        api: &Api<K>,
        what: &str,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Vec<K>, ProbeError>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        let (items, complete) = self.list_pages(api, what, labels, fields).await?;
        if !complete {
            return Err(ProbeError::Unavailable(format!(
                "listing {what}: more than {} pages of {}",
                self.config.max_pages, self.config.page_size
            )));
        }
        Ok(items)
    }

    /// Up to `max_pages` pages of a list, and whether that was all of it.
    async fn list_pages<K>(
        &self,
        api: &Api<K>,
        what: &str,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<(Vec<K>, bool), ProbeError>
    where
        K: Clone + DeserializeOwned + Debug,
    {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        let mut restarted = false;
        let mut pages = 0;
        loop {
            let mut params = ListParams::default().limit(self.config.page_size);
            if let Some(labels) = labels {
                params = params.labels(labels);
            }
            if let Some(fields) = fields {
                params = params.fields(fields);
            }
            if let Some(token) = &token {
                params = params.continue_token(token);
            }
            let page = match tokio::time::timeout(self.config.call_timeout, api.list(&params)).await
            {
                Err(_) => return Err(ProbeError::Timeout(format!("listing {what}"))),
                Ok(Err(e)) if crate::error::status_code(&e) == Some(410) && !restarted => {
                    // The snapshot behind the token is gone: read the list again whole.
                    restarted = true;
                    items.clear();
                    token = None;
                    pages = 0;
                    continue;
                }
                Ok(Err(e)) => return Err(probe_error(&format!("listing {what}"), &e)),
                Ok(Ok(page)) => page,
            };
            items.extend(page.items);
            pages += 1;
            match page.metadata.continue_ {
                Some(next) if !next.is_empty() => {
                    if pages >= self.config.max_pages {
                        return Ok((items, false));
                    }
                    token = Some(next);
                }
                _ => return Ok((items, true)),
            }
        }
    }

    /// A namespaced kind in every configured namespace (or all namespaces).
    async fn list_scoped<K>(&self, what: &str, labels: &str) -> Result<Vec<K>, ProbeError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        if self.config.namespaces.is_empty() {
            let api: Api<K> = Api::all(self.client.clone());
            return self.list(&api, what, Some(labels), None).await;
        }
        let mut items = Vec::new();
        for namespace in &self.config.namespaces {
            let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
            items.extend(self.list(&api, what, Some(labels), None).await?);
        }
        Ok(items)
    }

    async fn in_namespace<K>(
        &self,
        namespace: &str,
        what: &str,
        labels: Option<&str>,
    ) -> Result<Vec<K>, ProbeError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), namespace);
        self.list(&api, what, labels, None).await
    }

    async fn cluster_wide<K>(&self, what: &str) -> Result<Vec<K>, ProbeError>
    where
        K: Resource<Scope = ClusterResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let api: Api<K> = Api::all(self.client.clone());
        self.list(&api, what, None, None).await
    }

    async fn nodes(&self) -> Result<Vec<Node>, ProbeError> {
        if let Some((at, nodes)) = &*self
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            && at.elapsed() < self.config.node_cache_ttl
        {
            return Ok(nodes.clone());
        }
        let nodes: Vec<Node> = self.cluster_wide("nodes").await?;
        *self
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), nodes.clone()));
        Ok(nodes)
    }

    /// Pods in `namespace` matching `selector` whose controller is one of `owners`.
    async fn owned_pods(
        &self,
        namespace: &str,
        selector: Option<&LabelSelector>,
        owners: &HashSet<String>,
    ) -> Result<Vec<Pod>, ProbeError> {
        let Some(query) = selector.and_then(selector::to_query) else {
            return Ok(Vec::new());
        };
        let pods: Vec<Pod> = self.in_namespace(namespace, "pods", Some(&query)).await?;
        Ok(pods
            .into_iter()
            .filter(|p| controlled_by(&p.metadata, owners))
            .collect())
    }
}

fn uid(meta: &ObjectMeta) -> Option<String> {
    meta.uid.clone()
}

fn namespace(meta: &ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_default()
}

/// Whether the object's controller owner reference is one of `owners`.
fn controlled_by(meta: &ObjectMeta, owners: &HashSet<String>) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && owners.contains(&o.uid))
}

/// Adds typed objects to the observations through their JSON form.
fn push_all<K: Serialize>(observations: &mut Observations, items: &[K]) -> Result<(), ProbeError> {
    for item in items {
        let value = serde_json::to_value(item).map_err(|e| ProbeError::Invalid(e.to_string()))?;
        observations
            .push_value(value)
            .map_err(|e| ProbeError::Invalid(e.to_string()))?;
    }
    Ok(())
}

fn set_of(items: impl IntoIterator<Item = Option<String>>) -> HashSet<String> {
    items.into_iter().flatten().collect()
}

#[async_trait]
impl ClusterProbe for KubeProbe {
    async fn observe(&self, object: &DeploymentObject) -> Result<Observations, ProbeError> {
        // What a deletion marker removes was applied by an earlier object of the stack:
        // look for anything of the stack that is still there (or still terminating).
        let labels = if object.is_deletion {
            format!("{STACK_LABEL}={}", object.stack_id)
        } else {
            format!("{OBJECT_LABEL}={}", object.id)
        };
        let deployments: Vec<Deployment> = self.list_scoped("deployments", &labels).await?;
        let statefulsets: Vec<StatefulSet> = self.list_scoped("statefulsets", &labels).await?;
        let daemonsets: Vec<DaemonSet> = self.list_scoped("daemonsets", &labels).await?;
        let replicasets: Vec<ReplicaSet> = self.list_scoped("replicasets", &labels).await?;
        let jobs: Vec<Job> = self.list_scoped("jobs", &labels).await?;
        let cronjobs: Vec<CronJob> = self.list_scoped("cronjobs", &labels).await?;
        let claims: Vec<PersistentVolumeClaim> =
            self.list_scoped("persistentvolumeclaims", &labels).await?;
        let services: Vec<Service> = self.list_scoped("services", &labels).await?;
        // Kinds with health of their own that few objects contain: listed only when the
        // manifests name them, so objects without them cost no extra calls.
        let named = manifest_kinds(&object.yaml_content);
        let ingresses: Vec<Ingress> = if named.contains("Ingress") {
            self.list_scoped("ingresses", &labels).await?
        } else {
            Vec::new()
        };
        let autoscalers: Vec<HorizontalPodAutoscaler> = if named.contains("HorizontalPodAutoscaler")
        {
            self.list_scoped("horizontalpodautoscalers", &labels)
                .await?
        } else {
            Vec::new()
        };
        let mut pods: Vec<Pod> = self.list_scoped("pods", &labels).await?;
        let mut owned_sets: Vec<ReplicaSet> = Vec::new();
        let mut owned_jobs: Vec<Job> = Vec::new();

        // Deployments own ReplicaSets, which own the pods.
        for d in &deployments {
            let ns = namespace(&d.metadata);
            let selector = d.spec.as_ref().map(|s| &s.selector);
            let Some(query) = selector.and_then(selector::to_query) else {
                continue;
            };
            let owner = set_of([uid(&d.metadata)]);
            let sets: Vec<ReplicaSet> = self
                .in_namespace::<ReplicaSet>(&ns, "replicasets", Some(&query))
                .await?
                .into_iter()
                .filter(|rs| controlled_by(&rs.metadata, &owner))
                .collect();
            let set_uids = set_of(sets.iter().map(|rs| uid(&rs.metadata)));
            pods.extend(self.owned_pods(&ns, selector, &set_uids).await?);
            owned_sets.extend(sets);
        }
        for s in &statefulsets {
            let selector = s.spec.as_ref().map(|s| &s.selector);
            let owner = set_of([uid(&s.metadata)]);
            pods.extend(
                self.owned_pods(&namespace(&s.metadata), selector, &owner)
                    .await?,
            );
        }
        for d in &daemonsets {
            let selector = d.spec.as_ref().map(|s| &s.selector);
            let owner = set_of([uid(&d.metadata)]);
            pods.extend(
                self.owned_pods(&namespace(&d.metadata), selector, &owner)
                    .await?,
            );
        }
        for rs in &replicasets {
            let selector = rs.spec.as_ref().map(|s| &s.selector);
            let owner = set_of([uid(&rs.metadata)]);
            pods.extend(
                self.owned_pods(&namespace(&rs.metadata), selector, &owner)
                    .await?,
            );
        }
        // CronJobs own Jobs (found by owner reference: their labels are the template's).
        for c in &cronjobs {
            let ns = namespace(&c.metadata);
            let owner = set_of([uid(&c.metadata)]);
            let runs: Vec<Job> = self.in_namespace::<Job>(&ns, "jobs", None).await?;
            owned_jobs.extend(
                runs.into_iter()
                    .filter(|j| controlled_by(&j.metadata, &owner)),
            );
        }
        for j in jobs.iter().chain(&owned_jobs) {
            let selector = j.spec.as_ref().and_then(|s| s.selector.as_ref());
            let owner = set_of([uid(&j.metadata)]);
            pods.extend(
                self.owned_pods(&namespace(&j.metadata), selector, &owner)
                    .await?,
            );
        }
        // A pod can be both labelled and owned: keep one.
        let mut seen = HashSet::new();
        pods.retain(|p| uid(&p.metadata).is_none_or(|u| seen.insert(u)));

        let mut observations = Observations::default();
        push_all(&mut observations, &deployments)?;
        push_all(&mut observations, &statefulsets)?;
        push_all(&mut observations, &daemonsets)?;
        push_all(&mut observations, &replicasets)?;
        push_all(&mut observations, &owned_sets)?;
        push_all(&mut observations, &jobs)?;
        push_all(&mut observations, &owned_jobs)?;
        push_all(&mut observations, &cronjobs)?;
        push_all(&mut observations, &claims)?;
        push_all(&mut observations, &services)?;
        push_all(&mut observations, &ingresses)?;
        push_all(&mut observations, &autoscalers)?;
        push_all(&mut observations, &pods)?;
        if !object.is_deletion && observations.resources.is_empty() {
            // Kinds the probe does not list (ConfigMaps, Ingresses, ...) have no health
            // beyond existing; an object made only of them counts as present once
            // applied rather than as absent.
            for manifest in unlisted_manifests(&object.yaml_content) {
                observations
                    .push_value(manifest)
                    .map_err(|e| ProbeError::Invalid(e.to_string()))?;
            }
        }
        if !pods.is_empty() {
            // Pods on a node that stopped reporting are unknown, not healthy.
            push_all(&mut observations, &self.nodes().await?)?;
        }
        Ok(observations)
    }

    async fn cluster_state(&self) -> Result<ClusterState, ProbeError> {
        let started = Instant::now();
        tokio::time::timeout(self.config.call_timeout, self.client.apiserver_version())
            .await
            .map_err(|_| ProbeError::Timeout("asking the API server's version".into()))?
            .map_err(|e| probe_error("asking the API server's version", &e))?;
        let latency = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let nodes: Vec<Node> = self.cluster_wide("nodes").await?;
        let all_pods: Api<Pod> = Api::all(self.client.clone());
        let (running, complete): (Vec<Pod>, bool) = self
            .list_pages(
                &all_pods,
                "pods",
                None,
                Some("status.phase!=Succeeded,status.phase!=Failed"),
            )
            .await?;
        let (cpu, memory) = allocatable(&nodes);
        let (cpu_requested, memory_requested) = requested(&running);
        let ready = nodes.iter().filter(|n| node_ready(n)).count();
        // Headroom from part of the pods would overstate it: leave it out instead.
        let available =
            |capacity: i64, requested: i64| complete.then_some(capacity.saturating_sub(requested));
        Ok(ClusterState {
            node_count: i64::try_from(nodes.len()).ok(),
            node_ready_count: i64::try_from(ready).ok(),
            cpu_capacity_millis: Some(cpu),
            cpu_available_millis: available(cpu, cpu_requested),
            memory_capacity_bytes: Some(memory),
            memory_available_bytes: available(memory, memory_requested),
            api_latency_ms: Some(latency),
        })
    }

    async fn events(&self, scope: &EventScope) -> Result<Vec<ObservedEvent>, ProbeError> {
        let mut out = Vec::new();
        for namespace in &scope.namespaces {
            // Events are bounded work: a namespace with more than `max_pages` pages of
            // them gives what was read.
            let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
            let (events, _) = self.list_pages(&api, "events", None, None).await?;
            for event in events {
                let observed = observed_event(&event);
                if observed
                    .involved_uid
                    .as_ref()
                    .is_some_and(|u| scope.uids.contains(u))
                {
                    out.push(observed);
                }
            }
        }
        Ok(out)
    }

    async fn log_tail(&self, query: &LogQuery) -> Result<Vec<String>, ProbeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &query.namespace);
        // No `limitBytes`: the kubelet counts it forward from the first tail line, so it
        // would cut off the newest lines (the crash). `tailLines` bounds the answer; a
        // hard cap guards against pathological lines, keeping the end.
        let params = LogParams {
            container: Some(query.container.clone()),
            previous: query.previous,
            tail_lines: Some(i64::from(query.lines)),
            ..LogParams::default()
        };
        let what = format!("logs of {}/{}", query.pod, query.container);
        let read = async {
            let mut stream = api.log_stream(&query.pod, &params).await?;
            let mut bytes = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                let n = futures_util::AsyncReadExt::read(&mut stream, &mut chunk)
                    .await
                    .map_err(kube::Error::ReadEvents)?;
                if n == 0 {
                    break;
                }
                bytes.extend_from_slice(&chunk[..n]);
                let cap = query.limit_bytes.max(1) * 4;
                if bytes.len() > cap {
                    // Keep the end: the newest lines matter most.
                    bytes.drain(..bytes.len() - cap);
                }
            }
            Ok::<_, kube::Error>(bytes)
        };
        let bytes = tokio::time::timeout(self.config.call_timeout, read)
            .await
            .map_err(|_| ProbeError::Timeout(what.clone()))?
            .map_err(|e| match crate::error::status_code(&e) {
                // "previous terminated container ... not found" comes as a 400.
                Some(400) if query.previous => ProbeError::NotFound(format!("{what}: {e}")),
                _ => probe_error(&what, &e),
            })?;
        // Logs are not always UTF-8; a cut may split a character.
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let skip = lines.len().saturating_sub(query.lines as usize);
        Ok(lines.into_iter().skip(skip).collect())
    }
}
