//! Properties of the classifier that must hold for any input: order independence,
//! monotonicity, determinism (also across a serialization round trip) and no panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use brokkr_core::health::{Health, HealthPolicy, Observations, Resource, classify};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn at(offset_s: i64) -> String {
    (now() + Duration::seconds(offset_s)).to_rfc3339()
}

/// A time from two hours ago to a minute ahead (skewed clocks exist).
fn offset() -> impl Strategy<Value = i64> {
    -7200i64..60
}

/// Owners a generated pod may point at: none, a ReplicaSet of the Deployment, the
/// Deployment's ReplicaSet without its uid, a StatefulSet, a Job, a missing owner.
fn owner() -> impl Strategy<Value = Value> {
    select(vec![
        Value::Null,
        json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5f6d", "uid": "rs-1", "controller": true}]),
        json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5f6d", "controller": true}]),
        json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "sts-1", "controller": true}]),
        json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "migrate", "uid": "job-1", "controller": true}]),
        json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone-1", "uid": "rs-gone", "controller": true}]),
    ])
}

fn container_state() -> impl Strategy<Value = Value> {
    let waiting = select(vec![
        "ContainerCreating",
        "PodInitializing",
        "ErrImagePull",
        "ImagePullBackOff",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "InvalidImageName",
        "RunContainerError",
        "SomethingNew",
    ])
    .prop_map(|reason| json!({"waiting": {"reason": reason, "message": "m"}}));
    let running = offset().prop_map(|o| json!({"running": {"startedAt": at(o)}}));
    let terminated = (
        select(vec![0, 1, 137, 143]),
        select(vec!["Completed", "Error", "OOMKilled", ""]),
        offset(),
    )
        .prop_map(|(code, reason, o)| {
            json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": at(o - 60), "finishedAt": at(o)}})
        });
    prop_oneof![waiting, running, terminated, Just(json!({}))]
}

fn container_status(name: &'static str) -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        0i32..12,
        container_state(),
        prop_oneof![Just(json!({})), container_state()],
    )
        .prop_map(move |(ready, restarts, state, last)| {
            json!({"name": name, "ready": ready, "restartCount": restarts, "state": state, "lastState": last})
        })
}

fn pod() -> impl Strategy<Value = Value> {
    (
        0u32..1000,
        owner(),
        select(vec![Value::Null, json!("Pending"), json!("Running"), json!("Succeeded"), json!("Failed"), json!("Unknown")]),
        prop::collection::vec(container_status("app"), 0..2),
        prop::collection::vec(container_status("init"), 0..2),
        (any::<bool>(), offset(), any::<bool>(), offset()),
        (prop::option::of(offset()), select(vec![Value::Null, json!("n1"), json!("n2")]), any::<bool>()),
    )
        .prop_map(
            |(id, owners, phase, containers, inits, (ready, ready_at, unschedulable, start), (deleted, node, never))| {
                let mut conditions = vec![json!({"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": at(ready_at)})];
                if unschedulable {
                    conditions.push(json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "lastTransitionTime": at(start)}));
                }
                json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {
                        "name": format!("web-5f6d-{id}"), "namespace": "shop", "uid": format!("pod-{id}"),
                        "creationTimestamp": at(start - 5),
                        "deletionTimestamp": deleted.map(at),
                        "labels": {"pod-template-hash": "5f6d"},
                        "ownerReferences": owners,
                    },
                    "spec": {
                        "nodeName": node,
                        "restartPolicy": if never {"Never"} else {"Always"},
                        "initContainers": [{"name": "init"}],
                        "containers": [{"name": "app"}],
                    },
                    "status": {
                        "phase": phase, "startTime": at(start), "conditions": conditions,
                        "containerStatuses": containers, "initContainerStatuses": inits,
                    }
                })
            },
        )
}

fn condition(type_: &'static str) -> impl Strategy<Value = Value> {
    (select(vec!["True", "False", "Unknown"]), select(vec!["", "ProgressDeadlineExceeded", "MinimumReplicasAvailable", "FailedCreate"]), offset())
        .prop_map(move |(status, reason, o)| {
            json!({"type": type_, "status": status, "reason": reason, "lastTransitionTime": at(o), "lastUpdateTime": at(o)})
        })
}

fn workloads() -> impl Strategy<Value = Vec<Value>> {
    let counts = || (0i32..4, 0i32..4, 0i32..4, 0i32..4);
    let deployment = (counts(), condition("Available"), condition("Progressing"), any::<bool>(), 1i64..3).prop_map(
        |((desired, updated, ready, available), a, p, paused, generation)| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "shop", "uid": "dep-1", "generation": generation, "creationTimestamp": at(-7200)},
                "spec": {"replicas": desired, "paused": paused},
                "status": {"observedGeneration": 2, "replicas": updated, "updatedReplicas": updated, "readyReplicas": ready,
                           "availableReplicas": available, "conditions": [a, p]}})
        },
    );
    let replicaset = (0i32..4, 0i32..4).prop_map(|(desired, ready)| {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-5f6d", "namespace": "shop", "uid": "rs-1", "creationTimestamp": at(-3600),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "dep-1", "controller": true}]},
            "spec": {"replicas": desired},
            "status": {"replicas": desired, "readyReplicas": ready, "availableReplicas": ready}})
    });
    let statefulset = (counts(), select(vec!["RollingUpdate", "OnDelete"]), 0i32..3).prop_map(
        |((desired, updated, ready, available), strategy, partition)| {
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "db", "namespace": "shop", "uid": "sts-1", "generation": 1, "creationTimestamp": at(-7000)},
                "spec": {"replicas": desired, "updateStrategy": {"type": strategy, "rollingUpdate": {"partition": partition}}},
                "status": {"observedGeneration": 1, "replicas": desired, "updatedReplicas": updated, "readyReplicas": ready,
                           "availableReplicas": available, "currentRevision": "a", "updateRevision": "b"}})
        },
    );
    let job = (condition("Complete"), condition("Failed"), 0i32..2).prop_map(|(complete, failed, active)| {
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "shop", "uid": "job-1", "creationTimestamp": at(-600)},
            "spec": {"completions": 1},
            "status": {"active": active, "conditions": [complete, failed]}})
    });
    let pvc = select(vec!["Bound", "Pending", "Lost"]).prop_map(|phase| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "shop", "uid": "pvc-1", "creationTimestamp": at(-900)},
            "status": {"phase": phase}})
    });
    let node = |name: &'static str| {
        select(vec!["True", "False", "Unknown"]).prop_map(move |status| {
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                   "status": {"conditions": [{"type": "Ready", "status": status}]}})
        })
    };
    (
        prop::option::of(deployment),
        prop::option::of(replicaset),
        prop::option::of(statefulset),
        prop::option::of(job),
        prop::option::of(pvc),
        node("n1"),
        node("n2"),
    )
        .prop_map(|(d, rs, sts, job, pvc, n1, n2)| {
            [d, rs, sts, job, pvc, Some(n1), Some(n2)]
                .into_iter()
                .flatten()
                .collect()
        })
}

fn objects() -> impl Strategy<Value = Vec<Value>> {
    (workloads(), prop::collection::vec(pod(), 0..8)).prop_map(|(mut w, pods)| {
        w.extend(pods);
        w
    })
}

fn assess(values: &[Value]) -> brokkr_core::health::Assessment {
    let observations = Observations::from_values(values.iter().cloned()).unwrap();
    classify(&observations, now(), &HealthPolicy::default())
}

/// A pod that is failing by its own rules wherever it runs: crash-looping, not on a lost
/// node, not being deleted.
fn crashlooping_pod(owners: &Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-5f6d-added", "namespace": "shop", "uid": "pod-added",
                     "creationTimestamp": at(-600), "labels": {"pod-template-hash": "5f6d"}, "ownerReferences": owners},
        "spec": {"containers": [{"name": "app"}]},
        "status": {"phase": "Running", "startTime": at(-600),
                   "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": at(-600)}],
                   "containerStatuses": [{"name": "app", "ready": false, "restartCount": 7,
                       "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                       "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": at(-30)}}}]}
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn verdict_does_not_depend_on_input_order(values in objects(), seed in any::<u64>()) {
        let mut shuffled = values.clone();
        // Deterministic Fisher-Yates from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            let j = (state % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        prop_assert_eq!(assess(&values), assess(&shuffled));
    }

    #[test]
    fn adding_a_failing_pod_never_improves_the_verdict(values in objects(), owners in owner()) {
        let before = assess(&values);
        let mut more = values.clone();
        more.push(crashlooping_pod(&owners));
        let after = assess(&more);
        prop_assert!(after.health >= before.health, "{:?} -> {:?}", before.health, after.health);
        prop_assert!(after.health >= Health::Degraded);
    }

    #[test]
    fn classification_is_deterministic_across_a_serialization_round_trip(values in objects()) {
        let observations = Observations::from_values(values.iter().cloned()).unwrap();
        let first = classify(&observations, now(), &HealthPolicy::default());
        prop_assert_eq!(&first, &classify(&observations, now(), &HealthPolicy::default()));
        let round_trip: Vec<Value> = observations
            .resources
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .chain(observations.nodes.iter().map(|n| {
                let mut v = serde_json::to_value(n).unwrap();
                v["kind"] = json!("Node");
                v
            }))
            .collect();
        prop_assert_eq!(first, assess(&round_trip));
    }

    #[test]
    fn arbitrary_values_never_panic(value in arbitrary_object(), shift in -1_000_000_000i64..1_000_000_000) {
        let mut observations = Observations::default();
        if observations.push_value(value).is_ok() {
            let when = now() + Duration::seconds(shift);
            let assessment = classify(&observations, when, &HealthPolicy::default());
            prop_assert!(assessment.pods_ready <= assessment.pods_total);
        }
    }
}

/// Kubernetes-shaped objects with random values in the fields the classifier reads.
fn arbitrary_object() -> impl Strategy<Value = Value> {
    let keys = select(vec![
        "metadata",
        "spec",
        "status",
        "name",
        "namespace",
        "uid",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "ownerReferences",
        "controller",
        "phase",
        "reason",
        "conditions",
        "type",
        "status",
        "lastTransitionTime",
        "containerStatuses",
        "initContainerStatuses",
        "state",
        "lastState",
        "waiting",
        "running",
        "terminated",
        "exitCode",
        "restartCount",
        "replicas",
        "readyReplicas",
        "availableReplicas",
        "updatedReplicas",
        "observedGeneration",
        "startTime",
        "finishedAt",
        "items",
        "nodeName",
        "restartPolicy",
        "containers",
        "initContainers",
        "suspend",
        "paused",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        select(vec![
            "True",
            "False",
            "Running",
            "Failed",
            "Always",
            "Never",
            "CrashLoopBackOff",
            "ImagePullBackOff",
            "OOMKilled",
            "9999-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            "not a time",
            "",
            "Unschedulable",
            "NodeLost"
        ])
        .prop_map(Value::from),
    ];
    let tree = leaf.prop_recursive(4, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    });
    (
        select(vec![
            "Pod",
            "Deployment",
            "StatefulSet",
            "DaemonSet",
            "ReplicaSet",
            "Job",
            "CronJob",
            "PersistentVolumeClaim",
            "Service",
            "Node",
            "List",
            "Widget",
        ]),
        tree,
    )
        .prop_map(|(kind, tree)| {
            let mut object = match tree {
                Value::Object(map) => map,
                other => {
                    let mut map = serde_json::Map::new();
                    map.insert("status".into(), other);
                    map
                }
            };
            object.insert("kind".into(), json!(kind));
            Value::Object(object)
        })
}

#[test]
fn resources_round_trip_through_json() {
    let pod = json!({"kind": "Pod", "metadata": {"name": "a"}, "status": {"phase": "Running"}});
    let resource = Resource::from_value(pod).unwrap();
    let again = Resource::from_value(serde_json::to_value(&resource).unwrap()).unwrap();
    assert_eq!(resource, again);
}
