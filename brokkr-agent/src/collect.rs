//! Assembling a diagnostics bundle from what the probe saw: pod and container status,
//! the events that matter, which log tails to fetch, the owner chain, and a size cap.
//!
//! Pure functions; the runtime fetches events and logs and puts the pieces together.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use brokkr_core::health::Resource;
use brokkr_core::health::objects::{ContainerStatus, Pod};
use brokkr_core::model::{
    ContainerState, ContainerStatusReport, DiagnosticBundle, EventReport, PodConditionReport,
    PodStatusReport,
};
use brokkr_core::probe::{EventScope, LogQuery, ObservedEvent};

/// Longest owner chain list in a bundle (one entry per pod otherwise).
const MAX_CHAINS: usize = 50;

fn pods(resources: &[Resource]) -> impl Iterator<Item = &Pod> {
    resources.iter().filter_map(|r| match r {
        Resource::Pod(p) => Some(p),
        _ => None,
    })
}

fn text<T: serde::Serialize + std::fmt::Debug>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{value:?}"))
}

fn container_report(status: &ContainerStatus, init: bool) -> ContainerStatusReport {
    let s = &status.state;
    let (state, reason, message, exit_code) = if let Some(t) = &s.terminated {
        (
            ContainerState::Terminated,
            t.reason.clone(),
            t.message.clone(),
            Some(t.exit_code),
        )
    } else if let Some(w) = &s.waiting {
        (
            ContainerState::Waiting,
            w.reason.clone(),
            w.message.clone(),
            None,
        )
    } else if s.running.is_some() {
        (ContainerState::Running, None, None, None)
    } else {
        (ContainerState::Waiting, None, None, None)
    };
    let last = status.last_state.terminated.as_ref();
    ContainerStatusReport {
        name: status.name.clone(),
        init,
        ready: status.ready,
        state,
        reason,
        message,
        exit_code,
        restart_count: u32::try_from(status.restart_count).unwrap_or(0),
        last_termination_reason: last.and_then(|t| t.reason.clone()),
        last_exit_code: last.map(|t| t.exit_code),
    }
}

/// Status of every pod, init containers first within a pod, pods by name.
pub fn pod_reports(resources: &[Resource]) -> Vec<PodStatusReport> {
    let mut out: Vec<_> = pods(resources)
        .map(|pod| PodStatusReport {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            phase: pod
                .status
                .phase
                .map_or_else(|| "Pending".to_owned(), |p| text(&p)),
            conditions: pod
                .status
                .conditions
                .iter()
                .map(|c| PodConditionReport {
                    condition_type: c.type_.clone(),
                    status: text(&c.status),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
                .collect(),
            container_statuses: pod
                .status
                .init_container_statuses
                .iter()
                .map(|c| container_report(c, true))
                .chain(
                    pod.status
                        .container_statuses
                        .iter()
                        .map(|c| container_report(c, false)),
                )
                .collect(),
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

/// Most log tails in one bundle: each is an API call, and a thousand-pod object must
/// not turn one request into a thousand calls.
pub const MAX_LOG_TAILS: usize = 40;

/// The log tails to fetch, keyed as in [`DiagnosticBundle::log_tails`]: every container
/// (init ones included) that has started, and the previous instance of every container
/// that restarted; containers that are not ready first when there are more than
/// [`MAX_LOG_TAILS`].
pub fn log_queries(
    resources: &[Resource],
    lines: u32,
    limit_bytes: usize,
) -> Vec<(String, LogQuery)> {
    let mut out = Vec::new();
    for pod in pods(resources) {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let statuses = pod
            .status
            .init_container_statuses
            .iter()
            .chain(&pod.status.container_statuses);
        for c in statuses {
            let query = |previous| LogQuery {
                namespace: namespace.clone(),
                pod: pod.metadata.name.clone(),
                container: c.name.clone(),
                previous,
                lines,
                limit_bytes,
            };
            let key = format!("{}/{}", pod.metadata.name, c.name);
            // A container still waiting for its first start has no log to read.
            let started =
                c.state.running.is_some() || c.state.terminated.is_some() || c.restart_count > 0;
            if started {
                out.push((c.ready, key.clone(), query(false)));
            }
            if c.restart_count > 0 || c.last_state.terminated.is_some() {
                out.push((c.ready, format!("{key}/previous"), query(true)));
            }
        }
    }
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    out.truncate(MAX_LOG_TAILS);
    let mut out: Vec<_> = out.into_iter().map(|(_, key, q)| (key, q)).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The events to ask for: about any of the observed objects, since `since`.
pub fn event_scope(resources: &[Resource], since: DateTime<Utc>) -> EventScope {
    let mut scope = EventScope {
        since,
        ..EventScope::default()
    };
    for r in resources {
        let meta = r.meta();
        if let Some(ns) = &meta.namespace {
            scope.namespaces.insert(ns.clone());
        }
        if let Some(uid) = &meta.uid {
            scope.uids.insert(uid.clone());
        }
    }
    scope
}

/// Events about the objects in `scope` within its window, one per object, reason and
/// message (counts added up, first and last seen widened), oldest first.
pub fn event_reports(events: Vec<ObservedEvent>, scope: &EventScope) -> Vec<EventReport> {
    let mut merged: HashMap<(Option<String>, String, String), EventReport> = HashMap::new();
    for e in events {
        let Some(last_seen) = e.last_seen.or(e.first_seen) else {
            continue;
        };
        let about_ours = e
            .involved_uid
            .as_ref()
            .is_some_and(|uid| scope.uids.contains(uid));
        if !about_ours || last_seen < scope.since {
            continue;
        }
        let first_seen = e.first_seen.unwrap_or(last_seen).min(last_seen);
        let count = e.count.unwrap_or(1).max(1);
        let key = (
            e.involved_object.clone(),
            e.reason.clone(),
            e.message.clone(),
        );
        merged
            .entry(key)
            .and_modify(|r| {
                r.first_seen = r.first_seen.min(first_seen);
                r.last_seen = r.last_seen.max(last_seen);
                r.count = r.count.saturating_add(count);
                if e.event_type == "Warning" {
                    r.event_type.clone_from(&e.event_type);
                }
            })
            .or_insert(EventReport {
                event_type: e.event_type,
                reason: e.reason,
                message: e.message,
                first_seen,
                last_seen,
                count,
                object: e.involved_object,
            });
    }
    let mut out: Vec<_> = merged.into_values().collect();
    out.sort_by(|a, b| {
        (a.last_seen, &a.object, &a.reason).cmp(&(b.last_seen, &b.object, &b.reason))
    });
    out
}

/// Owner chains from the top-level objects down to every object that owns nothing
/// (usually pods), e.g. `Deployment/web -> ReplicaSet/web-5d8f -> Pod/web-5d8f-x2k4`.
pub fn owner_chain(resources: &[Resource]) -> Vec<String> {
    let label = |r: &Resource| format!("{}/{}", r.kind(), r.meta().name);
    let by_uid: HashMap<&str, &Resource> = resources
        .iter()
        .filter_map(|r| r.meta().uid.as_deref().map(|uid| (uid, r)))
        .collect();
    let owners_of = |r: &Resource| -> Option<&Resource> {
        let refs = &r.meta().owner_references;
        let owner = refs
            .iter()
            .find(|o| o.controller == Some(true))
            .or_else(|| refs.first())?;
        by_uid.get(owner.uid.as_deref()?).copied()
    };
    let owning: std::collections::HashSet<&str> = resources
        .iter()
        .filter_map(|r| owners_of(r).and_then(|o| o.meta().uid.as_deref()))
        .collect();
    let mut chains = Vec::new();
    for leaf in resources {
        if leaf
            .meta()
            .uid
            .as_deref()
            .is_some_and(|u| owning.contains(u))
        {
            continue;
        }
        let mut chain = vec![label(leaf)];
        let mut at = leaf;
        // Bounded walk: ownership cycles in bad data must not hang the agent.
        for _ in 0..8 {
            let Some(owner) = owners_of(at) else { break };
            chain.push(label(owner));
            at = owner;
        }
        chain.reverse();
        chains.push(chain.join(" -> "));
    }
    chains.sort();
    chains.dedup();
    chains.truncate(MAX_CHAINS);
    chains
}

/// Cuts a bundle to `max_bytes` of JSON: log lines go first (oldest lines of the
/// longest tails), then events (oldest first). Marks the bundle `truncated`.
pub fn fit(bundle: &mut DiagnosticBundle, max_bytes: usize) {
    let size = |b: &DiagnosticBundle| serde_json::to_vec(b).map_or(usize::MAX, |v| v.len());
    let mut current = size(bundle);
    while current > max_bytes {
        let longest = bundle
            .log_tails
            .iter_mut()
            .filter(|(_, lines)| !lines.is_empty())
            .max_by_key(|(_, lines)| lines.iter().map(String::len).sum::<usize>());
        if let Some((_, lines)) = longest {
            let cut = lines.len().div_ceil(2);
            lines.drain(..cut);
        } else if !bundle.events.is_empty() {
            let cut = bundle.events.len().div_ceil(2);
            bundle.events.drain(..cut);
        } else if !bundle.pod_statuses.is_empty() {
            let keep = bundle.pod_statuses.len() / 2;
            bundle.pod_statuses.truncate(keep);
        } else {
            bundle.truncated = true;
            return;
        }
        bundle.truncated = true;
        current = size(bundle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brokkr_core::health::Observations;
    use chrono::Duration;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(1_000_000 + s)
    }

    fn crashing_deployment() -> Observations {
        Observations::from_values([
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop", "uid": "d1"}}),
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "web-5d8f", "namespace": "shop", "uid": "r1",
                    "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "d1", "controller": true}]}}),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-5d8f-a", "namespace": "shop", "uid": "p1",
                    "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f", "uid": "r1", "controller": true}]},
                "status": {"phase": "Running",
                    "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                    "initContainerStatuses": [{"name": "migrate", "ready": true, "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
                    "containerStatuses": [{"name": "app", "ready": false, "restartCount": 4,
                        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-5d8f-b", "namespace": "shop", "uid": "p2",
                    "ownerReferences": [{"kind": "ReplicaSet", "name": "web-5d8f", "uid": "r1", "controller": true}]},
                "status": {"phase": "Pending",
                    "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}}}]}}),
        ])
        .unwrap()
    }

    #[test]
    fn pod_reports_carry_init_containers_and_the_last_termination() {
        let obs = crashing_deployment();
        let pods = pod_reports(&obs.resources);
        assert_eq!(pods.len(), 2);
        let a = &pods[0];
        assert_eq!(
            (a.name.as_str(), a.phase.as_str()),
            ("web-5d8f-a", "Running")
        );
        assert_eq!(a.conditions[0].status, "False");
        let init = &a.container_statuses[0];
        assert!(init.init);
        assert_eq!(init.state, ContainerState::Terminated);
        let app = &a.container_statuses[1];
        assert_eq!(app.reason.as_deref(), Some("CrashLoopBackOff"));
        assert_eq!(app.restart_count, 4);
        assert_eq!(app.last_termination_reason.as_deref(), Some("OOMKilled"));
        assert_eq!(app.last_exit_code, Some(137));
    }

    #[test]
    fn logs_are_fetched_for_started_containers_and_previous_instances() {
        let obs = crashing_deployment();
        let keys: Vec<_> = log_queries(&obs.resources, 50, 4096)
            .into_iter()
            .map(|(k, q)| (k, q.previous, q.lines))
            .collect();
        assert_eq!(
            keys,
            [
                ("web-5d8f-a/app".to_owned(), false, 50),
                ("web-5d8f-a/app/previous".to_owned(), true, 50),
                ("web-5d8f-a/migrate".to_owned(), false, 50),
            ]
        );
    }

    #[test]
    fn owner_chains_run_from_the_top_to_every_pod() {
        let obs = crashing_deployment();
        assert_eq!(
            owner_chain(&obs.resources),
            [
                "Deployment/web -> ReplicaSet/web-5d8f -> Pod/web-5d8f-a",
                "Deployment/web -> ReplicaSet/web-5d8f -> Pod/web-5d8f-b",
            ]
        );
    }

    fn event(uid: &str, reason: &str, last: i64, count: u32) -> ObservedEvent {
        ObservedEvent {
            involved_uid: Some(uid.into()),
            involved_object: Some(format!("Pod/{uid}")),
            event_type: "Warning".into(),
            reason: reason.into(),
            message: format!("{reason} happened"),
            first_seen: Some(t(last - 10)),
            last_seen: Some(t(last)),
            count: Some(count),
        }
    }

    #[test]
    fn events_are_matched_by_uid_windowed_and_deduplicated() {
        let obs = crashing_deployment();
        let scope = event_scope(&obs.resources, t(0));
        assert!(scope.namespaces.contains("shop"));
        let events = vec![
            event("p1", "BackOff", 100, 3),
            event("p1", "BackOff", 200, 2),
            event("p1", "Pulled", -100, 1),    // too old
            event("other", "BackOff", 150, 1), // not ours
            ObservedEvent {
                involved_uid: None,
                ..event("p2", "Scheduled", 50, 1)
            },
        ];
        let reports = event_reports(events, &scope);
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(r.reason, "BackOff");
        assert_eq!(r.count, 5);
        assert_eq!(r.first_seen, t(90));
        assert_eq!(r.last_seen, t(200));
    }

    #[test]
    fn fitting_drops_log_lines_first_and_says_so() {
        let mut bundle = DiagnosticBundle {
            collected_at: t(0),
            pod_statuses: pod_reports(&crashing_deployment().resources),
            events: vec![],
            log_tails: BTreeMap::from([(
                "web/app".to_owned(),
                (0..1000)
                    .map(|i| format!("line {i} {}", "x".repeat(100)))
                    .collect(),
            )]),
            owner_chain: vec![],
            truncated: false,
        };
        fit(&mut bundle, 20_000);
        assert!(serde_json::to_vec(&bundle).unwrap().len() <= 20_000);
        assert!(bundle.truncated);
        assert_eq!(bundle.pod_statuses.len(), 2, "pod statuses survive");
        let tail = &bundle.log_tails["web/app"];
        assert!(!tail.is_empty());
        assert!(
            tail.last().unwrap().starts_with("line 999 "),
            "the newest lines stay"
        );
        let mut small = bundle.clone();
        small.truncated = false;
        fit(&mut small, usize::MAX);
        assert!(!small.truncated, "a bundle within the cap is left alone");
    }
}
