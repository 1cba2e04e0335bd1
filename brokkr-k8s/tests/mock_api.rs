//! The probe and the applier against a mocked API server that answers like the real
//! one: lists with `resourceVersion` and `continue`, `Status` errors, discovery.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_pass_by_value
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brokkr_core::health::{HealthPolicy, Observations, classify};
use brokkr_core::ids::{DeploymentObjectId, StackId};
use brokkr_core::model::{DeploymentObject, FailureReason};
use brokkr_core::probe::{Applier, ClusterProbe, EventScope, LogQuery, ProbeError};
use brokkr_k8s::{KubeApplier, KubeApplierConfig, KubeProbe, KubeProbeConfig, OBJECT_LABEL};
use chrono::{TimeZone, Utc};
use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::{Value, json};

/// One request as the fake API server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: HashMap<String, String>,
    body: Option<Value>,
}

/// What the fake answers: status, JSON body, and how long it takes.
struct Answer {
    status: u16,
    body: Value,
    delay: Duration,
}

fn ok(body: Value) -> Answer {
    Answer {
        status: 200,
        body,
        delay: Duration::ZERO,
    }
}

fn status(code: u16, reason: &str, message: &str) -> Answer {
    Answer {
        status: code,
        body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}),
        delay: Duration::ZERO,
    }
}

fn list(kind: &str, items: Vec<Value>, next: Option<&str>) -> Answer {
    let mut metadata = json!({"resourceVersion": "48213"});
    if let Some(next) = next {
        metadata["continue"] = json!(next);
        metadata["remainingItemCount"] = json!(1);
    }
    ok(
        json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": metadata, "items": items}),
    )
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn parse_query(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

type Handler = dyn Fn(&Seen) -> Answer + Send + Sync;

/// A client whose every request goes to `handler`; returns the requests seen.
fn fake(
    handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let handler: Arc<Handler> = Arc::new(handler);
    tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await.unwrap().to_bytes();
            let seen = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parse_query(parts.uri.query()),
                body: serde_json::from_slice(&bytes).ok(),
            };
            log.lock().unwrap().push(seen.clone());
            let answer = handler(&seen);
            tokio::spawn(async move {
                tokio::time::sleep(answer.delay).await;
                let response = Response::builder()
                    .status(answer.status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer.body).unwrap()))
                    .unwrap();
                respond.send_response(response);
            });
        }
    });
    (kube::Client::new(service, "default"), seen)
}

fn object() -> DeploymentObject {
    DeploymentObject {
        id: "01a2088a-0000-7000-8000-000000000001".parse().unwrap(),
        stack_id: StackId::new(),
        sequence_id: 1,
        yaml_content: String::new(),
        is_deletion: false,
        created_at: Utc.with_ymd_and_hms(2026, 3, 1, 11, 0, 0).unwrap(),
    }
}

fn object_id() -> DeploymentObjectId {
    object().id
}

const T0: &str = "2026-03-01T11:00:00Z";

fn labelled() -> Value {
    json!({OBJECT_LABEL: object_id().to_string()})
}

fn deployment() -> Value {
    json!({"metadata": {"name": "web", "namespace": "shop", "uid": "dep-1", "generation": 2,
            "resourceVersion": "100", "creationTimestamp": T0, "labels": labelled()},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "web:2"}]}}},
        "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2,
            "availableReplicas": 2, "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "lastTransitionTime": T0, "lastUpdateTime": T0},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "lastTransitionTime": T0, "lastUpdateTime": T0}]}})
}

fn replicaset(name: &str, uid: &str, owner: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "shop", "uid": uid, "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                "uid": owner, "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
        "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": 1}})
}

fn pod(name: &str, owner_kind: &str, owner_uid: &str, waiting: Option<&str>) -> Value {
    let (ready, state) = match waiting {
        Some(reason) => (
            false,
            json!({"waiting": {"reason": reason, "message": "back-off 5m0s"}}),
        ),
        None => (true, json!({"running": {"startedAt": T0}})),
    };
    json!({"metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "labels": {"app": "web"}, "creationTimestamp": T0,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": "x",
                "uid": owner_uid, "controller": true}]},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "web:2",
            "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}}]},
        "status": {"phase": "Running", "startTime": T0,
            "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": T0}],
            "containerStatuses": [{"name": "app", "ready": ready, "restartCount": if ready {0} else {7},
                "image": "web:2", "imageID": "", "started": ready, "state": state, "lastState": {}}]}})
}

fn node(name: &str, ready: &str) -> Value {
    json!({"metadata": {"name": name, "uid": format!("uid-{name}")},
        "status": {"allocatable": {"cpu": "3920m", "memory": "16374400Ki", "pods": "110"},
            "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                "lastHeartbeatTime": T0, "lastTransitionTime": T0}]}})
}

/// A cluster with one labelled Deployment, its ReplicaSet, two of its pods (one crash
/// looping), a pod of another ReplicaSet that matches the selector, and a node.
fn cluster(seen: &Seen) -> Answer {
    let labelled_query = format!("{OBJECT_LABEL}={}", object_id());
    let by_label = seen.query.get("labelSelector").map(String::as_str);
    match (seen.method.as_str(), seen.path.as_str(), by_label) {
        ("GET", "/apis/apps/v1/deployments", Some(q)) if q == labelled_query => {
            list("Deployment", vec![deployment()], None)
        }
        ("GET", "/apis/apps/v1/namespaces/shop/replicasets", Some("app=web")) => list(
            "ReplicaSet",
            vec![
                replicaset("web-5d8f", "rs-1", "dep-1"),
                replicaset("other-1", "rs-x", "dep-other"),
            ],
            None,
        ),
        ("GET", "/api/v1/namespaces/shop/pods", Some("app=web")) => list(
            "Pod",
            vec![
                pod("web-5d8f-a", "ReplicaSet", "rs-1", None),
                pod("web-5d8f-b", "ReplicaSet", "rs-1", Some("CrashLoopBackOff")),
                pod("stray-1", "ReplicaSet", "rs-x", Some("ImagePullBackOff")),
            ],
            None,
        ),
        ("GET", "/api/v1/nodes", _) => list("Node", vec![node("node-a", "True")], None),
        ("GET", "/version", _) => ok(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.2",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": T0, "goVersion": "go1.24",
            "compiler": "gc", "platform": "linux/amd64"})),
        ("GET", path, _) if path.ends_with('s') => list("Any", vec![], None),
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn names(observations: &Observations) -> Vec<String> {
    let mut names: Vec<_> = observations
        .resources
        .iter()
        .map(|r| format!("{}/{}", r.kind(), r.meta().name))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_deployment_is_found_with_its_replicaset_and_own_pods_only() {
    let (client, seen) = fake(cluster);
    let probe = KubeProbe::new(client, KubeProbeConfig::default());
    let observations = probe.observe(&object()).await.unwrap();
    assert_eq!(
        names(&observations),
        [
            "Deployment/web",
            "Pod/web-5d8f-a",
            "Pod/web-5d8f-b",
            "ReplicaSet/web-5d8f"
        ]
    );
    assert_eq!(observations.nodes.len(), 1);
    // Same verdict as the classifier fed the same objects directly.
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let mut direct = Observations::from_values([
        with_kind(deployment(), "apps/v1", "Deployment"),
        with_kind(
            replicaset("web-5d8f", "rs-1", "dep-1"),
            "apps/v1",
            "ReplicaSet",
        ),
        with_kind(pod("web-5d8f-a", "ReplicaSet", "rs-1", None), "v1", "Pod"),
        with_kind(
            pod("web-5d8f-b", "ReplicaSet", "rs-1", Some("CrashLoopBackOff")),
            "v1",
            "Pod",
        ),
        with_kind(node("node-a", "True"), "v1", "Node"),
    ])
    .unwrap();
    direct.deletion = false;
    let policy = HealthPolicy::default();
    let via_probe = classify(&observations, now, &policy);
    assert_eq!(via_probe, classify(&direct, now, &policy));
    assert!(via_probe.conditions.iter().any(|c| c == "CrashLoopBackOff"));
    // Lists, never one call per pod; every call by label selector or owner's selector.
    let calls = seen.lock().unwrap().clone();
    assert!(calls.iter().all(|c| c.method == "GET"));
    assert!(
        calls.iter().all(|c| !c.path.contains("/pods/")),
        "{calls:?}"
    );
}

fn with_kind(mut v: Value, api_version: &str, kind: &str) -> Value {
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    v
}

#[tokio::test]
async fn every_kind_is_read_and_cronjob_runs_are_followed() {
    let labelled_query = format!("{OBJECT_LABEL}={}", object_id());
    let (client, _) = fake(move |seen| {
        let q = seen.query.get("labelSelector").cloned().unwrap_or_default();
        let mine = q == labelled_query;
        let meta = |name: &str, uid: &str| json!({"name": name, "namespace": "shop", "uid": uid, "labels": labelled(), "creationTimestamp": T0});
        match seen.path.as_str() {
            "/apis/apps/v1/statefulsets" if mine => list(
                "StatefulSet",
                vec![json!({"metadata": meta("db", "sts-1"),
                "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"spec": {"containers": [{"name": "db"}]}}},
                "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1,
                    "currentRevision": "db-1", "updateRevision": "db-1", "observedGeneration": 1}})],
                None,
            ),
            "/apis/apps/v1/daemonsets" if mine => list(
                "DaemonSet",
                vec![json!({"metadata": meta("agent", "ds-1"),
                "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {"spec": {"containers": [{"name": "a"}]}}},
                "status": {"desiredNumberScheduled": 1, "currentNumberScheduled": 1, "numberReady": 1,
                    "numberAvailable": 1, "updatedNumberScheduled": 1, "numberMisscheduled": 0, "observedGeneration": 1}})],
                None,
            ),
            "/apis/batch/v1/cronjobs" if mine => list(
                "CronJob",
                vec![json!({"metadata": meta("nightly", "cj-1"),
                "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "j"}], "restartPolicy": "Never"}}}}},
                "status": {}})],
                None,
            ),
            "/apis/batch/v1/namespaces/shop/jobs" => list(
                "Job",
                vec![
                    json!({"metadata": {"name": "nightly-29000", "namespace": "shop", "uid": "job-1",
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "cj-1", "controller": true}]},
                "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "job-1"}},
                    "template": {"spec": {"containers": [{"name": "j"}], "restartPolicy": "Never"}}},
                "status": {"succeeded": 1, "completionTime": T0, "conditions": [{"type": "Complete", "status": "True"}]}}),
                ],
                None,
            ),
            "/api/v1/persistentvolumeclaims" if mine => list(
                "PersistentVolumeClaim",
                vec![json!({"metadata": meta("data", "pvc-1"),
                "spec": {}, "status": {"phase": "Bound"}})],
                None,
            ),
            "/api/v1/services" if mine => list(
                "Service",
                vec![json!({"metadata": meta("web", "svc-1"),
                "spec": {"type": "ClusterIP", "ports": [{"port": 80}]}, "status": {}})],
                None,
            ),
            "/api/v1/namespaces/shop/pods" => {
                let owner = match q.as_str() {
                    "app=db" => ("db-0", "StatefulSet", "sts-1"),
                    "app=agent" => ("agent-x", "DaemonSet", "ds-1"),
                    "batch.kubernetes.io/controller-uid=job-1" => {
                        ("nightly-29000-q", "Job", "job-1")
                    }
                    _ => return list("Pod", vec![], None),
                };
                list("Pod", vec![pod(owner.0, owner.1, owner.2, None)], None)
            }
            "/api/v1/nodes" => list("Node", vec![node("node-a", "True")], None),
            _ => list("Any", vec![], None),
        }
    });
    let probe = KubeProbe::new(client, KubeProbeConfig::default());
    let observations = probe.observe(&object()).await.unwrap();
    assert_eq!(
        names(&observations),
        [
            "CronJob/nightly",
            "DaemonSet/agent",
            "Job/nightly-29000",
            "PersistentVolumeClaim/data",
            "Pod/agent-x",
            "Pod/db-0",
            "Pod/nightly-29000-q",
            "Service/web",
            "StatefulSet/db",
        ]
    );
}

#[tokio::test]
async fn lists_follow_continue_tokens_and_restart_when_one_expired() {
    let labelled_query = format!("{OBJECT_LABEL}={}", object_id());
    let expired_once = Arc::new(Mutex::new(false));
    let (client, seen) = fake(move |seen| {
        let mine = seen.query.get("labelSelector") == Some(&labelled_query);
        if seen.path != "/api/v1/pods" || !mine {
            return list("Any", vec![], None);
        }
        let standalone = |n: &str| {
            let mut p = pod(n, "ReplicaSet", "none", None);
            p["metadata"]["labels"] = labelled();
            p["metadata"]["ownerReferences"] = json!([]);
            p
        };
        match seen.query.get("continue").map(String::as_str) {
            None => list("Pod", vec![standalone("p1")], Some("tok-1")),
            Some("tok-1") => {
                let mut expired = expired_once.lock().unwrap();
                if *expired {
                    list("Pod", vec![standalone("p2")], Some("tok-2"))
                } else {
                    *expired = true;
                    status(410, "Expired", "The provided continue parameter is too old")
                }
            }
            Some("tok-2") => list("Pod", vec![standalone("p3")], None),
            Some(_) => status(400, "BadRequest", "bad token"),
        }
    });
    let probe = KubeProbe::new(
        client,
        KubeProbeConfig {
            page_size: 1,
            ..KubeProbeConfig::default()
        },
    );
    let observations = probe.observe(&object()).await.unwrap();
    assert_eq!(names(&observations), ["Pod/p1", "Pod/p2", "Pod/p3"]);
    let pod_lists: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.path == "/api/v1/pods")
        .map(|s| s.query.get("limit").cloned())
        .collect();
    assert_eq!(pod_lists.len(), 5, "p1, expired, p1 again, p2, p3");
    assert!(pod_lists.iter().all(|l| l.as_deref() == Some("1")));
}

#[tokio::test]
async fn a_forbidden_kind_makes_the_object_not_assessed_instead_of_failing() {
    let (client, _) = fake(|seen| {
        if seen.path == "/apis/batch/v1/cronjobs" {
            return status(
                403,
                "Forbidden",
                "cronjobs.batch is forbidden: User \"system:serviceaccount:brokkr:agent\" cannot list resource \"cronjobs\"",
            );
        }
        list("Any", vec![], None)
    });
    let probe = KubeProbe::new(client, KubeProbeConfig::default());
    let err = probe.observe(&object()).await.unwrap_err();
    let ProbeError::Forbidden(message) = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("cronjobs"), "{message}");
}

#[tokio::test]
async fn a_slow_api_server_times_out() {
    let (client, _) = fake(|_| Answer {
        delay: Duration::from_secs(5),
        ..list("Any", vec![], None)
    });
    let probe = KubeProbe::new(
        client,
        KubeProbeConfig {
            call_timeout: Duration::from_millis(100),
            ..KubeProbeConfig::default()
        },
    );
    let started = std::time::Instant::now();
    assert!(matches!(
        probe.observe(&object()).await,
        Err(ProbeError::Timeout(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(
        probe.cluster_state().await,
        Err(ProbeError::Timeout(_))
    ));
}

#[tokio::test]
async fn an_unavailable_api_server_is_unavailable() {
    let (client, _) = fake(|_| status(503, "ServiceUnavailable", "etcd leader changed"));
    let probe = KubeProbe::new(client, KubeProbeConfig::default());
    assert!(matches!(
        probe.observe(&object()).await,
        Err(ProbeError::Unavailable(_))
    ));
}

#[tokio::test]
async fn the_snapshot_counts_nodes_capacity_and_requests() {
    let (client, seen) = fake(|seen| match seen.path.as_str() {
        "/version" => ok(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.2",
            "gitCommit": "", "gitTreeState": "clean", "buildDate": T0, "goVersion": "go1.24",
            "compiler": "gc", "platform": "linux/amd64"})),
        "/api/v1/nodes" => list(
            "Node",
            vec![node("node-a", "True"), node("node-b", "Unknown")],
            None,
        ),
        "/api/v1/pods" => list(
            "Pod",
            vec![
                pod("a", "ReplicaSet", "r", None),
                pod("b", "ReplicaSet", "r", None),
            ],
            None,
        ),
        _ => status(404, "NotFound", "no"),
    });
    let probe = KubeProbe::new(client, KubeProbeConfig::default());
    let state = probe.cluster_state().await.unwrap();
    assert_eq!(state.node_count, Some(2));
    assert_eq!(state.node_ready_count, Some(1));
    assert_eq!(state.cpu_capacity_millis, Some(2 * 3920));
    assert_eq!(state.cpu_available_millis, Some(2 * 3920 - 2 * 250));
    assert_eq!(state.memory_capacity_bytes, Some(2 * 16_374_400 * 1024));
    assert_eq!(
        state.memory_available_bytes,
        Some(2 * 16_374_400 * 1024 - 2 * 128 * 1024 * 1024)
    );
    assert!(state.api_latency_ms.is_some());
    let pods = seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.path == "/api/v1/pods")
        .cloned()
        .unwrap();
    assert_eq!(
        pods.query.get("fieldSelector").map(String::as_str),
        Some("status.phase!=Succeeded,status.phase!=Failed")
    );
}

#[tokio::test]
async fn events_are_read_per_namespace_and_kept_for_our_objects() {
    let (client, _) = fake(|seen| match seen.path.as_str() {
        "/apis/events.k8s.io/v1/namespaces/shop/events" => list(
            "Event",
            vec![
                json!({"metadata": {"name": "web.1", "namespace": "shop"}, "eventTime": null,
                    "reason": "BackOff", "note": "Back-off restarting failed container app", "type": "Warning",
                    "regarding": {"kind": "Pod", "name": "web-5d8f-b", "namespace": "shop", "uid": "uid-web-5d8f-b"},
                    "deprecatedFirstTimestamp": "2026-03-01T11:50:00Z", "deprecatedLastTimestamp": "2026-03-01T11:58:00Z",
                    "deprecatedCount": 9, "reportingController": "kubelet"}),
                json!({"metadata": {"name": "other.1", "namespace": "shop"}, "eventTime": "2026-03-01T11:59:00.000000Z",
                    "reason": "Pulled", "note": "pulled", "type": "Normal", "action": "Pulling",
                    "regarding": {"kind": "Pod", "name": "someone-else", "uid": "uid-else"},
                    "reportingController": "kubelet", "reportingInstance": "node-a"}),
                json!({"metadata": {"name": "web.2", "namespace": "shop"}, "eventTime": "2026-03-01T11:59:30.000000Z",
                    "series": {"count": 4, "lastObservedTime": "2026-03-01T11:59:45.000000Z"},
                    "reason": "Unhealthy", "note": "Readiness probe failed", "type": "Warning", "action": "Probe",
                    "regarding": {"kind": "Pod", "name": "web-5d8f-b", "uid": "uid-web-5d8f-b"},
                    "reportingController": "kubelet", "reportingInstance": "node-a"}),
            ],
            None,
        ),
        _ => status(404, "NotFound", "no"),
    });
    let probe = KubeProbe::new(client, KubeProbeConfig::default());
    let scope = EventScope {
        namespaces: ["shop".to_owned()].into(),
        uids: ["uid-web-5d8f-b".to_owned()].into(),
        since: Utc.with_ymd_and_hms(2026, 3, 1, 11, 30, 0).unwrap(),
    };
    let events = probe.events(&scope).await.unwrap();
    assert_eq!(events.len(), 2);
    let backoff = &events[0];
    assert_eq!(backoff.reason, "BackOff");
    assert_eq!(backoff.count, Some(9));
    assert_eq!(backoff.involved_object.as_deref(), Some("Pod/web-5d8f-b"));
    assert_eq!(
        backoff.last_seen,
        Some(Utc.with_ymd_and_hms(2026, 3, 1, 11, 58, 0).unwrap())
    );
    let probe_failed = &events[1];
    assert_eq!(probe_failed.count, Some(4));
    assert_eq!(
        probe_failed.last_seen,
        Some(Utc.with_ymd_and_hms(2026, 3, 1, 11, 59, 45).unwrap())
    );
}

#[tokio::test]
async fn log_tails_ask_for_lines_and_the_previous_instance() {
    let (client, seen) = fake(|seen| {
        let previous = seen.query.get("previous").map(String::as_str) == Some("true");
        match (seen.path.as_str(), previous) {
            ("/api/v1/namespaces/shop/pods/web-5d8f-b/log", false) => Answer {
                status: 200,
                body: Value::String(String::new()),
                delay: Duration::ZERO,
            },
            ("/api/v1/namespaces/shop/pods/web-5d8f-b/log", true) => status(
                400,
                "BadRequest",
                "previous terminated container \"app\" in pod \"web-5d8f-b\" not found",
            ),
            _ => status(404, "NotFound", "pods \"gone\" not found"),
        }
    });
    let probe = KubeProbe::new(client, KubeProbeConfig::default());
    let query = |pod: &str, previous| LogQuery {
        namespace: "shop".into(),
        pod: pod.into(),
        container: "app".into(),
        previous,
        lines: 50,
        limit_bytes: 65536,
    };
    probe.log_tail(&query("web-5d8f-b", false)).await.unwrap();
    assert!(matches!(
        probe.log_tail(&query("web-5d8f-b", true)).await,
        Err(ProbeError::NotFound(_))
    ));
    assert!(matches!(
        probe.log_tail(&query("gone", false)).await,
        Err(ProbeError::NotFound(_))
    ));
    let first = seen.lock().unwrap()[0].clone();
    assert_eq!(first.query.get("tailLines").map(String::as_str), Some("50"));
    // Not sent: the kubelet would count it from the first tail line and cut the newest.
    assert_eq!(first.query.get("limitBytes"), None);
    assert_eq!(
        first.query.get("container").map(String::as_str),
        Some("app")
    );
}

// ------------------------------------------------------------------ applier

fn discovery(seen: &Seen) -> Option<Answer> {
    let resources = match seen.path.as_str() {
        "/apis/apps/v1" => json!([{"name": "deployments", "singularName": "deployment",
            "namespaced": true, "kind": "Deployment",
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]),
        "/api/v1" => json!([
            {"name": "namespaces", "singularName": "namespace", "namespaced": false,
             "kind": "Namespace", "verbs": ["create", "delete", "get", "list", "patch"]},
            {"name": "configmaps", "singularName": "configmap", "namespaced": true,
             "kind": "ConfigMap", "verbs": ["create", "delete", "get", "list", "patch"]}]),
        "/apis/example.com/v1" => {
            return Some(status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        _ => return None,
    };
    let group_version = seen
        .path
        .trim_start_matches("/apis/")
        .trim_start_matches("/api/");
    Some(ok(json!({"kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": group_version, "resources": resources})))
}

const STACK_YAML: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers: [{name: app, image: 'web:2'}]\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  level: info\n";

fn applied_object(yaml: &str, deletion: bool) -> DeploymentObject {
    DeploymentObject {
        yaml_content: yaml.to_owned(),
        is_deletion: deletion,
        ..object()
    }
}

#[tokio::test]
async fn manifests_are_server_side_applied_in_order_with_labels_on_top_level_only() {
    let (client, seen) = fake(|seen| {
        if let Some(answer) = discovery(seen) {
            return answer;
        }
        match seen.method.as_str() {
            "PATCH" => ok(seen.body.clone().unwrap_or(Value::Null)),
            _ => status(404, "NotFound", "no"),
        }
    });
    let applier = KubeApplier::new(client, KubeApplierConfig::default());
    let object = applied_object(STACK_YAML, false);
    applier.apply(&object).await.unwrap();
    let patches: Vec<Seen> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == "PATCH")
        .cloned()
        .collect();
    let paths: Vec<_> = patches.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/shop",
            "/api/v1/namespaces/default/configmaps/web-config",
            "/apis/apps/v1/namespaces/shop/deployments/web",
        ]
    );
    for patch in &patches {
        assert_eq!(
            patch.query.get("fieldManager").map(String::as_str),
            Some("brokkr-agent")
        );
        assert!(!patch.query.contains_key("force"));
        let labels = &patch.body.as_ref().unwrap()["metadata"]["labels"];
        assert_eq!(labels[OBJECT_LABEL], json!(object.id.to_string()));
        assert_eq!(
            labels["brokkr.io/stack-id"],
            json!(object.stack_id.to_string())
        );
    }
    let deployment = patches[2].body.as_ref().unwrap();
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["labels"],
        json!({"app": "web"}),
        "pod templates are left alone"
    );
    assert_eq!(
        deployment["spec"]["selector"],
        json!({"matchLabels": {"app": "web"}})
    );
    // Discovery is cached: one lookup per group/version.
    let lookups = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == "GET")
        .count();
    applier.apply(&object).await.unwrap();
    let again = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == "GET")
        .count();
    assert_eq!(lookups, again);
}

#[tokio::test]
async fn a_deletion_marker_deletes_in_reverse_order_and_gone_is_fine() {
    let (client, seen) = fake(|seen| {
        if let Some(answer) = discovery(seen) {
            return answer;
        }
        match (seen.method.as_str(), seen.path.as_str()) {
            ("DELETE", "/api/v1/namespaces/default/configmaps/web-config") => {
                status(404, "NotFound", "configmaps \"web-config\" not found")
            }
            ("DELETE", _) => ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
            _ => status(404, "NotFound", "no"),
        }
    });
    let applier = KubeApplier::new(client, KubeApplierConfig::default());
    applier
        .apply(&applied_object(STACK_YAML, true))
        .await
        .unwrap();
    let deletes: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        deletes,
        [
            "/apis/apps/v1/namespaces/shop/deployments/web",
            "/api/v1/namespaces/default/configmaps/web-config",
            "/api/v1/namespaces/shop",
        ]
    );
}

#[tokio::test]
async fn apply_failures_are_categorized() {
    for (code, reason, expected) in [
        (403, "Forbidden", FailureReason::Forbidden),
        (409, "Conflict", FailureReason::Conflict),
        (422, "Invalid", FailureReason::InvalidManifest),
        (503, "ServiceUnavailable", FailureReason::ApiUnavailable),
        (500, "InternalError", FailureReason::ApiUnavailable),
    ] {
        let (client, _) =
            fake(move |seen| discovery(seen).unwrap_or_else(|| status(code, reason, "refused")));
        let applier = KubeApplier::new(client, KubeApplierConfig::default());
        let err = applier
            .apply(&applied_object(STACK_YAML, false))
            .await
            .unwrap_err();
        assert_eq!(err.reason, expected, "{code}: {err}");
    }
}

#[tokio::test]
async fn unknown_kinds_bad_yaml_and_slow_servers_fail_with_a_reason() {
    let (client, _) = fake(|seen| {
        discovery(seen).unwrap_or_else(|| Answer {
            delay: Duration::from_secs(5),
            ..ok(json!({}))
        })
    });
    let applier = KubeApplier::new(
        client,
        KubeApplierConfig {
            call_timeout: Duration::from_millis(100),
            ..KubeApplierConfig::default()
        },
    );
    let crd = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n";
    let err = applier
        .apply(&applied_object(crd, false))
        .await
        .unwrap_err();
    assert_eq!(err.reason, FailureReason::InvalidManifest, "{err}");
    let err = applier
        .apply(&applied_object("kind: [", false))
        .await
        .unwrap_err();
    assert_eq!(err.reason, FailureReason::InvalidManifest);
    let err = applier
        .apply(&applied_object(STACK_YAML, false))
        .await
        .unwrap_err();
    assert_eq!(err.reason, FailureReason::Timeout, "{err}");
}

// ------------------------------------------------------------------ permissions

/// (group, resource, verb) of a request path, as RBAC sees it.
fn rbac_of(seen: &Seen) -> Option<(String, String, String)> {
    let parts: Vec<&str> = seen.path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None, // /version, discovery: non-resource URLs
    };
    let rest = match rest {
        ["namespaces", _ns, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, named) = match rest {
        [resource] => ((*resource).to_owned(), false),
        [resource, _name] => ((*resource).to_owned(), true),
        [resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let verb = match (seen.method.as_str(), named) {
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        ("POST", _) => "create",
        _ => "?",
    };
    Some((group.to_owned(), resource, verb.to_owned()))
}

#[tokio::test]
async fn the_probe_uses_only_the_permissions_it_declares() {
    let (client, seen) = fake(cluster);
    let probe = KubeProbe::new(client, KubeProbeConfig::default());
    // Manifests naming every kind the probe may list (some only when named).
    let every_kind = DeploymentObject {
        yaml_content: "kind: Deployment\n---\nkind: Ingress\n---\nkind: HorizontalPodAutoscaler\n"
            .into(),
        ..object()
    };
    probe.observe(&every_kind).await.unwrap();
    let _ = probe.cluster_state().await;
    let scope = EventScope {
        namespaces: ["shop".to_owned()].into(),
        uids: ["x".to_owned()].into(),
        since: Utc::now(),
    };
    let _ = probe.events(&scope).await;
    let _ = probe
        .log_tail(&LogQuery {
            namespace: "shop".into(),
            pod: "web-5d8f-a".into(),
            container: "app".into(),
            previous: false,
            lines: 10,
            limit_bytes: 1024,
        })
        .await;
    let calls = seen.lock().unwrap().clone();
    assert!(
        calls.iter().any(|c| c.path == "/api/v1/pods"),
        "the snapshot's pod list was made"
    );
    let mut used = std::collections::BTreeSet::new();
    for call in &calls {
        if let Some((group, resource, verb)) = rbac_of(call) {
            assert!(
                brokkr_k8s::rbac::reads(&group, &resource, &verb),
                "{verb} {group}/{resource} is not declared ({})",
                call.path
            );
            used.insert((group, resource, verb));
        }
    }
    // Every declared read permission is used (none granted for nothing).
    for p in brokkr_k8s::rbac::READ {
        for verb in p.verbs {
            assert!(
                used.contains(&(
                    p.group.to_owned(),
                    p.resource.to_owned(),
                    (*verb).to_owned()
                )),
                "{verb} {}/{} declared but not used",
                p.group,
                p.resource
            );
        }
    }
}

#[tokio::test]
async fn a_deletion_marker_looks_for_what_its_stack_left_behind() {
    let marker = DeploymentObject {
        is_deletion: true,
        ..object()
    };
    let stack_query = format!("brokkr.io/stack-id={}", marker.stack_id);
    let (client, _) = fake(move |seen| {
        let mine = seen.query.get("labelSelector") == Some(&stack_query);
        match seen.path.as_str() {
            "/api/v1/persistentvolumeclaims" if mine => list(
                "PersistentVolumeClaim",
                vec![
                    json!({"metadata": {"name": "data", "namespace": "shop", "uid": "pvc-1",
                    "deletionTimestamp": "2026-03-01T11:00:00Z",
                    "finalizers": ["kubernetes.io/pvc-protection"]},
                    "spec": {}, "status": {"phase": "Bound"}}),
                ],
                None,
            ),
            _ => list("Any", vec![], None),
        }
    });
    let probe = KubeProbe::new(client, KubeProbeConfig::default());
    let mut observations = probe.observe(&marker).await.unwrap();
    assert_eq!(names(&observations), ["PersistentVolumeClaim/data"]);
    observations.deletion = true;
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let verdict = classify(&observations, now, &HealthPolicy::default());
    assert_eq!(
        verdict.health,
        brokkr_core::health::Health::Degraded,
        "stuck terminating: {verdict:?}"
    );
}

#[tokio::test]
async fn an_object_of_unlisted_kinds_only_counts_as_present() {
    let (client, _) = fake(|_| list("Any", vec![], None));
    let probe = KubeProbe::new(client, KubeProbeConfig::default());
    let config_only = DeploymentObject {
        yaml_content:
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: shop\n".into(),
        ..object()
    };
    let observations = probe.observe(&config_only).await.unwrap();
    assert_eq!(names(&observations), ["ConfigMap/cfg"]);
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let verdict = classify(&observations, now, &HealthPolicy::default());
    assert_eq!(verdict.health, brokkr_core::health::Health::Healthy);
    // A Deployment that is missing is still absent, not excused.
    let missing = DeploymentObject {
        yaml_content: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n".into(),
        ..object()
    };
    let observations = probe.observe(&missing).await.unwrap();
    assert!(observations.resources.is_empty());
}

#[tokio::test]
async fn ingresses_and_autoscalers_are_listed_when_the_manifests_name_them() {
    let (client, seen) = fake(|seen| {
        let ingress = json!({"metadata": {"name": "web", "namespace": "shop", "uid": "ing-1",
            "creationTimestamp": "2026-03-01T10:00:00Z", "labels": labelled()},
            "spec": {"rules": [{"host": "shop.example.com"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}});
        match seen.path.as_str() {
            "/apis/networking.k8s.io/v1/ingresses" => list("IngressList", vec![ingress], None),
            "/apis/autoscaling/v2/horizontalpodautoscalers" => {
                list("HorizontalPodAutoscalerList", vec![], None)
            }
            _ => list("Any", vec![], None),
        }
    });
    let probe = KubeProbe::new(client, KubeProbeConfig::default());
    let exposed = DeploymentObject {
        yaml_content: "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: shop\n"
            .into(),
        ..object()
    };
    let observations = probe.observe(&exposed).await.unwrap();
    assert_eq!(names(&observations), ["Ingress/web"]);
    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    assert_eq!(
        classify(&observations, now, &HealthPolicy::default()).health,
        brokkr_core::health::Health::Healthy
    );
    let paths: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert!(paths.iter().any(|p| p.ends_with("/ingresses")), "{paths:?}");
    assert!(
        !paths
            .iter()
            .any(|p| p.ends_with("/horizontalpodautoscalers")),
        "autoscalers are not listed for an object without one: {paths:?}"
    );
}

#[tokio::test]
async fn a_list_longer_than_the_page_limit_is_not_judged() {
    let (client, _) = fake(|seen| {
        if seen.path == "/apis/apps/v1/deployments" {
            return list("Deployment", vec![deployment()], Some("more"));
        }
        list("Any", vec![], None)
    });
    let probe = KubeProbe::new(
        client,
        KubeProbeConfig {
            max_pages: 3,
            ..KubeProbeConfig::default()
        },
    );
    let err = probe.observe(&object()).await.unwrap_err();
    assert!(
        matches!(err, ProbeError::Unavailable(ref m) if m.contains("more than 3 pages")),
        "{err:?}"
    );
}

#[tokio::test]
async fn log_tails_keep_the_newest_lines_and_survive_bad_utf8() {
    // Log bodies are raw text, not JSON: a fake of their own.
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((_request, respond)) = handle.next_request().await {
            let mut body = Vec::new();
            for i in 0..80 {
                body.extend_from_slice(format!("line {i}\n").as_bytes());
            }
            body.extend_from_slice(b"bad \xff\xfe bytes\n");
            respond.send_response(
                Response::builder()
                    .status(200)
                    .header("content-type", "text/plain")
                    .body(Body::from(body))
                    .unwrap(),
            );
        }
    });
    let probe = KubeProbe::new(
        kube::Client::new(service, "default"),
        KubeProbeConfig::default(),
    );
    let lines = probe
        .log_tail(&LogQuery {
            namespace: "shop".into(),
            pod: "web".into(),
            container: "app".into(),
            previous: false,
            lines: 5,
            limit_bytes: 65536,
        })
        .await
        .unwrap();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[3], "line 79");
    assert!(lines[4].starts_with("bad "), "{lines:?}");
}

#[tokio::test]
async fn an_empty_labels_map_in_a_manifest_is_fine() {
    let (client, seen) = fake(|seen| {
        discovery(seen).unwrap_or_else(|| ok(seen.body.clone().unwrap_or(Value::Null)))
    });
    let applier = KubeApplier::new(client, KubeApplierConfig::default());
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  labels:\n";
    applier.apply(&applied_object(yaml, false)).await.unwrap();
    let patch = seen
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.method == "PATCH")
        .cloned()
        .unwrap();
    assert!(patch.body.unwrap()["metadata"]["labels"][OBJECT_LABEL].is_string());
}

#[tokio::test]
async fn deleting_a_kind_the_cluster_no_longer_serves_is_done() {
    let (client, _) = fake(|seen| discovery(seen).unwrap_or_else(|| status(404, "NotFound", "no")));
    let applier = KubeApplier::new(client, KubeApplierConfig::default());
    let crd = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n";
    applier.apply(&applied_object(crd, true)).await.unwrap();
}

// ------------------------------------------------------------------ a whole check cycle

/// A broker that hands out a fixed target state and keeps the health reports.
struct Recorder {
    objects: Vec<DeploymentObject>,
    reports: Mutex<Vec<brokkr_core::model::HealthReport>>,
}

#[async_trait::async_trait]
impl brokkr_core::api::BrokerApi for Recorder {
    fn agent_id(&self) -> brokkr_core::ids::AgentId {
        brokkr_core::ids::AgentId::from(uuid::Uuid::nil())
    }
    async fn heartbeat(&self, _: &brokkr_core::model::Heartbeat) -> brokkr_core::Result<()> {
        Ok(())
    }
    async fn target_state(&self) -> brokkr_core::Result<Vec<DeploymentObject>> {
        Ok(self.objects.clone())
    }
    async fn report_deployment_status(
        &self,
        _: &[brokkr_core::model::DeploymentStatusEvent],
    ) -> brokkr_core::Result<brokkr_core::broker::StatusReportResult> {
        Ok(brokkr_core::broker::StatusReportResult::default())
    }
    async fn report_health(
        &self,
        report: &brokkr_core::model::HealthReport,
    ) -> brokkr_core::Result<brokkr_core::broker::HealthReportResult> {
        self.reports.lock().unwrap().push(report.clone());
        Ok(brokkr_core::broker::HealthReportResult::default())
    }
    async fn pending_diagnostics(
        &self,
    ) -> brokkr_core::Result<Vec<brokkr_core::diagnostics::PendingDiagnostic>> {
        Ok(Vec::new())
    }
    async fn claim_diagnostic(
        &self,
        _: brokkr_core::ids::DiagnosticId,
        _: &str,
    ) -> brokkr_core::Result<()> {
        Ok(())
    }
    async fn post_diagnostic_result(
        &self,
        _: brokkr_core::ids::DiagnosticId,
        _: &brokkr_core::model::DiagnosticOutcome,
    ) -> brokkr_core::Result<()> {
        Ok(())
    }
    async fn open_work_orders(&self) -> brokkr_core::Result<Vec<brokkr_core::model::WorkOrder>> {
        Ok(Vec::new())
    }
    async fn claim_work_order(
        &self,
        id: brokkr_core::ids::WorkOrderId,
    ) -> brokkr_core::Result<brokkr_core::model::WorkOrder> {
        Err(brokkr_core::Error::not_found("work order", id))
    }
    async fn complete_work_order(
        &self,
        id: brokkr_core::ids::WorkOrderId,
        _: bool,
    ) -> brokkr_core::Result<brokkr_core::model::WorkOrder> {
        Err(brokkr_core::Error::not_found("work order", id))
    }
}

#[tokio::test]
async fn a_check_cycle_reports_what_the_classifier_says_of_the_same_objects() {
    use brokkr_agent::{Agent, AgentConfig};
    use brokkr_core::clock::ManualClock;
    use brokkr_core::model::HealthSummary;

    let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
    let forbidden_object = DeploymentObject {
        id: "01a2088a-0000-7000-8000-0000000000ff".parse().unwrap(),
        ..object()
    };
    let recorder = Arc::new(Recorder {
        objects: vec![object(), forbidden_object.clone()],
        reports: Mutex::new(Vec::new()),
    });
    // The second object's kinds may not be listed: it must come back NotAssessed.
    let forbidden_query = format!("{OBJECT_LABEL}={}", forbidden_object.id);
    let (client, _) = fake(move |seen| {
        if seen.query.get("labelSelector") == Some(&forbidden_query) {
            return status(403, "Forbidden", "deployments.apps is forbidden");
        }
        cluster(seen)
    });
    let agent = Agent::new(
        KubeProbe::new(client, KubeProbeConfig::default()),
        recorder.clone(),
        ManualClock::new(now),
        AgentConfig::default(),
    )
    .unwrap();
    let cycle = agent.check_once().await.unwrap();
    assert_eq!(
        (cycle.observed, cycle.unreadable, cycle.reported),
        (2, 0, 2)
    );

    let direct = Observations::from_values([
        with_kind(deployment(), "apps/v1", "Deployment"),
        with_kind(
            replicaset("web-5d8f", "rs-1", "dep-1"),
            "apps/v1",
            "ReplicaSet",
        ),
        with_kind(pod("web-5d8f-a", "ReplicaSet", "rs-1", None), "v1", "Pod"),
        with_kind(
            pod("web-5d8f-b", "ReplicaSet", "rs-1", Some("CrashLoopBackOff")),
            "v1",
            "Pod",
        ),
        with_kind(node("node-a", "True"), "v1", "Node"),
    ])
    .unwrap();
    let expected = classify(&direct, now, &HealthPolicy::default());
    let reports = recorder.reports.lock().unwrap().clone();
    let items = &reports[0].deployment_objects;
    let judged = items.iter().find(|i| i.id == object().id).unwrap();
    assert_eq!(judged.status, expected.health);
    assert_eq!(judged.summary, HealthSummary::from_assessment(&expected));
    let blocked = items.iter().find(|i| i.id == forbidden_object.id).unwrap();
    assert_eq!(blocked.status, brokkr_core::health::Health::Unknown);
    assert_eq!(blocked.summary.conditions, ["NotAssessed"]);
}
