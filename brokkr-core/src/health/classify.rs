//! From observations to one [`Assessment`]: who owns what, which rules run, and how the
//! verdicts of many resources become one.
//!
//! Order independence: every aggregate is a max, a count or a sort, and ties between
//! owners are broken by identity, so shuffling the input never changes the output.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::autoscaler::assess_autoscaler;
use super::batch::{assess_cronjob, assess_job, job_outcome};
use super::context::Ctx;
use super::custom::assess_other;
use super::network::{assess_ingress, assess_pvc, assess_service};
use super::objects::{ConditionStatus, ObjectMeta, OwnerReference, Pod, find_condition};
use super::pod::{PodVerdict, assess_pod};
use super::policy::HealthPolicy;
use super::resource::{Observations, Resource};
use super::verdict::{
    Affected, Assessment, Finding, FindingCode, Health, Persistence, Phase, ResourceRef,
    ResourceStatus, Severity,
};
use super::workload::{
    PodEvidence, WorkloadVerdict, apply_deletion, assess_daemonset, assess_deployment,
    assess_replicaset, assess_statefulset,
};

/// Classifies the observations of one deployment object at `now`.
///
/// A pure function: the same observations, time and policy always give the same
/// assessment, whatever the order of the resources.
pub fn classify(
    observations: &Observations,
    now: DateTime<Utc>,
    policy: &HealthPolicy,
) -> Assessment {
    let ctx = Ctx { now, policy };
    let resources = &observations.resources;
    if resources.is_empty() {
        return absent(observations.deletion);
    }
    let owners = Owners::new(resources);
    let parent: Vec<Option<usize>> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| owners.controller_of(i, r.meta()))
        .collect();
    let top: Vec<Option<usize>> = (0..resources.len()).map(|i| top_of(i, &parent)).collect();
    let lost_nodes: Vec<&str> = observations
        .nodes
        .iter()
        .filter(|n| n.is_lost())
        .map(|n| n.metadata.name.as_str())
        .collect();

    // Pods first, on their own: the hot path, with no allocation for a healthy pod.
    // Their raw verdicts do not depend on any controller; controllers are applied below.
    let mut pod_findings: Vec<Finding> = Vec::new();
    let pod_count = resources
        .iter()
        .filter(|r| matches!(r, Resource::Pod(_)))
        .count();
    let mut pods: Vec<(usize, PodVerdict, usize, usize)> = Vec::with_capacity(pod_count);
    // Evidence of progress per controller: its healthy pods' creation or Ready transition.
    // Pods in trouble are no evidence, so adding a failing pod never makes a stalled
    // controller look alive.
    let mut evidence: Vec<PodEvidence> = vec![PodEvidence::default(); resources.len()];
    // The newest finished Job per CronJob, and whether it failed.
    let mut last_run: Vec<Option<(DateTime<Utc>, bool)>> = vec![None; resources.len()];
    for (i, resource) in resources.iter().enumerate() {
        match resource {
            Resource::Pod(pod) => {
                let start = pod_findings.len();
                let node_lost = !lost_nodes.is_empty()
                    && pod
                        .spec
                        .node_name
                        .as_deref()
                        .is_some_and(|n| lost_nodes.contains(&n));
                let verdict = assess_pod(pod, node_lost, &ctx, &mut pod_findings);
                if verdict.health == Health::Healthy {
                    let seen = pod_progress(pod);
                    // A healthy pod created within start_grace that is not Ready yet is
                    // a replica on its way (a scale-up, a replacement).
                    let arriving = !verdict.ready
                        && verdict.phase == Phase::Progressing
                        && ctx.recent(pod.metadata.creation_timestamp, policy.start_grace);
                    for ancestor in [parent[i], top[i]].into_iter().flatten() {
                        let e = &mut evidence[ancestor];
                        e.progress = e.progress.max(seen);
                        e.arriving |= arriving;
                    }
                }
                pods.push((i, verdict, start, pod_findings.len()));
            }
            Resource::Job(job) => {
                if let (Some(owner), Some((failed, at))) = (parent[i], job_outcome(job)) {
                    let at = at
                        .or(job.metadata.creation_timestamp)
                        .unwrap_or(DateTime::<Utc>::MIN_UTC);
                    // Newest run wins; at equal times a failure wins (order independence).
                    last_run[owner] = last_run[owner].max(Some((at, failed)));
                }
            }
            _ => {}
        }
    }

    let mut findings: Vec<Finding> = Vec::new();
    // Per resource: its verdict and the range of its findings in `findings`.
    let mut verdicts: Vec<Option<(WorkloadVerdict, usize, usize)>> = vec![None; resources.len()];
    for (i, resource) in resources.iter().enumerate() {
        let start = findings.len();
        let out = &mut findings;
        let hint = resource
            .meta()
            .uid
            .as_ref()
            .and_then(|u| observations.progress_hints.get(u).copied());
        let seen = PodEvidence {
            progress: evidence[i].progress.max(hint),
            ..evidence[i]
        };
        let verdict = match resource {
            Resource::Pod(_) => continue,
            Resource::Deployment(d) => assess_deployment(d, seen.arriving, &ctx, out),
            Resource::StatefulSet(s) => assess_statefulset(s, seen, &ctx, out),
            Resource::DaemonSet(d) => assess_daemonset(d, seen, &ctx, out),
            Resource::ReplicaSet(rs) => {
                let managed =
                    parent[i].is_some_and(|p| matches!(resources[p], Resource::Deployment(_)));
                assess_replicaset(rs, managed, seen, &ctx, out)
            }
            Resource::Job(job) => assess_job(job, &ctx, out),
            Resource::CronJob(cj) => {
                assess_cronjob(cj, last_run[i].map(|(_, failed)| failed), &ctx, out)
            }
            Resource::PersistentVolumeClaim(pvc) => assess_pvc(pvc, &ctx, out),
            Resource::Service(svc) => assess_service(svc, &ctx, out),
            Resource::Ingress(ing) => assess_ingress(ing, &ctx, out),
            Resource::HorizontalPodAutoscaler(hpa) => assess_autoscaler(hpa, &ctx, out),
            Resource::Other(o) => assess_other(o, &ctx, out),
        };
        let mut verdict = verdict;
        apply_deletion(
            resource.kind(),
            resource.meta(),
            &mut verdict,
            &ctx,
            &mut findings,
        );
        verdicts[i] = Some((verdict, start, findings.len()));
    }

    let mut acc = Accumulator::default();
    // Owned workloads (ReplicaSets of a Deployment, Jobs of a CronJob) answer to their top.
    for i in 0..resources.len() {
        let Some((mut verdict, start, end)) = verdicts[i].clone() else {
            continue;
        };
        if let Some(t) = top[i].and_then(|t| verdicts[t].as_ref()) {
            verdict.health = govern(
                &t.0,
                verdict.failed,
                verdict.health,
                &mut findings[start..end],
            );
        }
        acc.add_resource(
            &resources[i],
            &verdict,
            top[i].is_none(),
            &findings[start..end],
        );
    }

    let mut grouped: Vec<(usize, Finding)> = Vec::new();
    let mut pods_per_top: HashMap<usize, u32> = HashMap::new();
    for (i, mut verdict, start, end) in pods {
        let Resource::Pod(pod) = &resources[i] else {
            continue;
        };
        let own = &mut pod_findings[start..end];
        let governor = top[i].and_then(|t| verdicts[t].as_ref().map(|v| &v.0));
        let mut superseded = false;
        if let Some(controller) = governor {
            superseded = verdict.failed && controller.supersedes_failed;
            verdict.health = govern(controller, verdict.failed, verdict.health, own);
        }
        let counted = verdict.counted && !superseded;
        if counted {
            acc.pods_total += 1;
            acc.pods_ready += u32::from(verdict.ready);
            if let Some(t) = top[i] {
                *pods_per_top.entry(t).or_default() += 1;
            }
        }
        acc.health = acc.health.max(verdict.health);
        if governor.is_none() || verdict.health != Health::Healthy || (counted && !verdict.ready) {
            acc.resources.push(ResourceStatus {
                kind: "Pod".to_owned(),
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                health: verdict.health,
                phase: verdict.phase,
                ready: verdict.health == Health::Healthy
                    && (verdict.ready || verdict.phase == Phase::Completed),
                message: own
                    .iter()
                    .max_by_key(|f| f.severity)
                    .map(|f| f.display.clone()),
            });
        }
        if governor.is_none() {
            acc.add_phase(verdict.phase);
        }
        match top[i] {
            Some(t) => grouped.extend(own.iter().cloned().map(|f| (t, f))),
            None => acc.findings.extend_from_slice(own),
        }
    }
    acc.findings
        .extend(group_pod_findings(grouped, &pods_per_top));
    acc.finish()
}

/// Applies a controller's verdict to what it owns: failures it has replaced become info,
/// and while it keeps minimum availability within its deadline, its parts cap at degraded.
fn govern(
    controller: &WorkloadVerdict,
    failed: bool,
    health: Health,
    findings: &mut [Finding],
) -> Health {
    let cap = if failed && controller.supersedes_failed {
        Severity::Info
    } else if controller.shields {
        Severity::Degraded
    } else {
        return health;
    };
    for finding in findings.iter_mut() {
        finding.severity = finding.severity.min(cap);
    }
    health.min(cap.health())
}

/// The last sign that a controller made progress with this pod: its creation, or its
/// Ready condition turning True.
fn pod_progress(pod: &Pod) -> Option<DateTime<Utc>> {
    let became_ready = find_condition(&pod.status.conditions, "Ready")
        .filter(|c| c.status == ConditionStatus::True)
        .and_then(|c| c.last_transition_time);
    pod.metadata.creation_timestamp.max(became_ready)
}

fn top_of(i: usize, parent: &[Option<usize>]) -> Option<usize> {
    let mut current = parent[i]?;
    // Owner chains are short (Pod → ReplicaSet → Deployment, Pod → Job → CronJob);
    // the bound also guards against cyclic owner references in hostile input.
    for _ in 0..4 {
        match parent[current] {
            Some(next) if next != i => current = next,
            _ => break,
        }
    }
    Some(current)
}

/// Finds the owner of a resource among the given resources.
struct Owners<'a> {
    resources: &'a [Resource],
    by_uid: HashMap<&'a str, usize>,
    by_name: HashMap<(&'a str, &'a str), Vec<usize>>,
}

impl<'a> Owners<'a> {
    fn new(resources: &'a [Resource]) -> Self {
        let mut by_uid = HashMap::new();
        let mut by_name: HashMap<(&str, &str), Vec<usize>> = HashMap::new();
        for (i, r) in resources.iter().enumerate() {
            if matches!(r, Resource::Pod(_)) {
                continue;
            }
            let meta = r.meta();
            if let Some(uid) = meta.uid.as_deref() {
                // Duplicate uids: keep the smallest identity, not the first seen.
                by_uid
                    .entry(uid)
                    .and_modify(|j: &mut usize| {
                        if identity(&resources[i]) < identity(&resources[*j]) {
                            *j = i;
                        }
                    })
                    .or_insert(i);
            }
            by_name
                .entry((r.kind(), meta.name.as_str()))
                .or_default()
                .push(i);
        }
        Self {
            resources,
            by_uid,
            by_name,
        }
    }

    fn controller_of(&self, i: usize, meta: &ObjectMeta) -> Option<usize> {
        let owner = meta.controller()?;
        let found = self
            .lookup(owner, meta.namespace.as_deref())
            .or_else(|| self.deployment_of_missing_replicaset(owner, meta));
        found.filter(|&j| j != i)
    }

    fn lookup(&self, owner: &OwnerReference, namespace: Option<&str>) -> Option<usize> {
        if let Some(&j) = owner.uid.as_deref().and_then(|uid| self.by_uid.get(uid)) {
            return Some(j);
        }
        self.by_name(&owner.kind, &owner.name, namespace)
    }

    fn by_name(&self, kind: &str, name: &str, namespace: Option<&str>) -> Option<usize> {
        self.by_name
            .get(&(kind, name))?
            .iter()
            .copied()
            .filter(|&j| {
                let ns = self.resources[j].meta().namespace.as_deref();
                ns.is_none() || namespace.is_none() || ns == namespace
            })
            .min_by(|&a, &b| identity(&self.resources[a]).cmp(&identity(&self.resources[b])))
    }

    /// A pod's ReplicaSet may be missing from the input while its Deployment is there:
    /// the ReplicaSet is named `<deployment>-<pod-template-hash>`.
    fn deployment_of_missing_replicaset(
        &self,
        owner: &OwnerReference,
        meta: &ObjectMeta,
    ) -> Option<usize> {
        if owner.kind != "ReplicaSet" {
            return None;
        }
        let hash = meta.labels.get("pod-template-hash")?;
        let deployment = owner.name.strip_suffix(hash.as_str())?.strip_suffix('-')?;
        self.by_name("Deployment", deployment, meta.namespace.as_deref())
    }
}

fn identity(r: &Resource) -> (&str, Option<&str>, &str, Option<&str>) {
    let meta = r.meta();
    (
        r.kind(),
        meta.namespace.as_deref(),
        meta.name.as_str(),
        meta.uid.as_deref(),
    )
}

/// Merges the same finding on many pods of one controller into one, with `affected`.
fn group_pod_findings(
    mut items: Vec<(usize, Finding)>,
    pods_per_top: &HashMap<usize, u32>,
) -> Vec<Finding> {
    let key = |(top, f): &(usize, Finding)| {
        (
            *top,
            f.code,
            f.severity,
            f.display.clone(),
            f.container.clone(),
        )
    };
    items.sort_by(|a, b| {
        key(a)
            .cmp(&key(b))
            .then_with(|| a.1.resource.cmp(&b.1.resource))
            .then_with(|| a.1.cmp(&b.1))
    });
    let mut merged: Vec<Finding> = Vec::new();
    let mut previous_key = None;
    for item in items {
        let k = key(&item);
        let (top, finding) = item;
        if previous_key.as_ref() == Some(&k) {
            if let Some(last) = merged.last_mut() {
                last.since = match (last.since, finding.since) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                last.count = last.count.max(finding.count);
                if let Some(affected) = last.affected.as_mut() {
                    affected.n += 1;
                }
            }
            continue;
        }
        let of = pods_per_top.get(&top).copied().unwrap_or(1);
        let mut finding = finding;
        finding.affected = Some(Affected {
            n: 1,
            of: of.max(1),
        });
        merged.push(finding);
        previous_key = Some(k);
    }
    for finding in &mut merged {
        if let Some(a) = finding.affected.as_mut() {
            a.of = a.of.max(a.n);
        }
    }
    merged
}

fn absent(deletion: bool) -> Assessment {
    let (health, findings) = if deletion {
        // A deletion marker whose objects are gone has done its job.
        (Health::Healthy, Vec::new())
    } else {
        let finding = Finding {
            code: FindingCode::Absent,
            severity: Severity::Failing,
            persistence: Persistence::Transient,
            resource: ResourceRef {
                kind: "DeploymentObject".to_owned(),
                name: String::new(),
                namespace: None,
            },
            container: None,
            display: "Absent".to_owned(),
            message: Some(
                "none of the deployment object's resources exists in the cluster".to_owned(),
            ),
            since: None,
            count: None,
            affected: None,
            rule: "object.absent",
            anchor: None,
        };
        (Health::Failing, vec![finding])
    };
    Assessment {
        health,
        phase: Phase::Absent,
        pods_ready: 0,
        pods_total: 0,
        conditions: findings.iter().map(|f| f.display.clone()).collect(),
        resources: Vec::new(),
        findings,
    }
}

#[derive(Default)]
struct Accumulator {
    health: Health,
    phase: Option<Phase>,
    pods_ready: u32,
    pods_total: u32,
    resources: Vec<ResourceStatus>,
    findings: Vec<Finding>,
}

impl Accumulator {
    fn add_phase(&mut self, phase: Phase) {
        if self
            .phase
            .is_none_or(|p| phase.precedence() > p.precedence())
        {
            self.phase = Some(phase);
        }
    }

    fn add_resource(
        &mut self,
        resource: &Resource,
        verdict: &WorkloadVerdict,
        top_level: bool,
        findings: &[Finding],
    ) {
        self.health = self.health.max(verdict.health);
        if top_level {
            self.add_phase(verdict.phase);
        }
        let ready = verdict.health == Health::Healthy
            && matches!(
                verdict.phase,
                Phase::Stable | Phase::Completed | Phase::Suspended
            );
        if top_level || !ready {
            let meta = resource.meta();
            self.resources.push(ResourceStatus {
                kind: resource.kind().to_owned(),
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                health: verdict.health,
                phase: verdict.phase,
                ready,
                message: verdict.message.clone(),
            });
        }
        self.findings.extend_from_slice(findings);
    }

    fn finish(mut self) -> Assessment {
        // Total orders (ties broken by every field) keep the output independent of input order.
        self.resources.sort_by(|a, b| {
            (&a.kind, &a.namespace, &a.name)
                .cmp(&(&b.kind, &b.namespace, &b.name))
                .then_with(|| a.cmp(b))
        });
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.code.cmp(&b.code))
                .then_with(|| a.cmp(b))
        });
        let mut conditions: Vec<String> = self
            .findings
            .iter()
            .filter(|f| f.severity != Severity::Info)
            .map(|f| f.display.clone())
            .collect();
        conditions.sort();
        conditions.dedup();
        Assessment {
            health: self.health,
            phase: self.phase.unwrap_or(Phase::Stable),
            pods_ready: self.pods_ready,
            pods_total: self.pods_total,
            conditions,
            resources: self.resources,
            findings: self.findings,
        }
    }
}
