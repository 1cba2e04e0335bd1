//! Synthetic observations: realistic, typed objects for benchmarks, tests and simulated
//! clusters, built without parsing JSON.

use chrono::{DateTime, Duration, Utc};

use super::objects::{
    Condition, ConditionStatus, ContainerSpec, ContainerState, ContainerStatus, Deployment,
    DeploymentSpec, ObjectMeta, OwnerReference, Pod, PodPhase, PodSpec, PodStatus, ReplicaSet,
    ReplicaSetSpec, StateRunning, StateWaiting, WorkloadStatus,
};
use super::resource::{Observations, Resource};

fn condition(type_: &str, status: ConditionStatus, at: DateTime<Utc>) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status,
        last_transition_time: Some(at),
        last_update_time: Some(at),
        ..Condition::default()
    }
}

/// A Deployment `name` in `namespace` with `replicas` pods, all Running and Ready since an
/// hour before `now`, owned through its ReplicaSet `<name>-5d8f7b`.
pub fn healthy_deployment(
    namespace: &str,
    name: &str,
    replicas: usize,
    now: DateTime<Utc>,
) -> Observations {
    let since = now - Duration::hours(1);
    let count = i32::try_from(replicas).unwrap_or(i32::MAX);
    let deployment_uid = format!("{name}-deployment-uid");
    let rs_name = format!("{name}-5d8f7b");
    let rs_uid = format!("{name}-replicaset-uid");
    let meta = |name: &str, uid: &str, owner: Option<OwnerReference>| ObjectMeta {
        name: name.to_owned(),
        namespace: Some(namespace.to_owned()),
        uid: Some(uid.to_owned()),
        generation: Some(1),
        creation_timestamp: Some(since),
        owner_references: owner.into_iter().collect(),
        ..ObjectMeta::default()
    };
    let rollout_done = WorkloadStatus {
        observed_generation: Some(1),
        replicas: Some(count),
        updated_replicas: Some(count),
        ready_replicas: Some(count),
        available_replicas: Some(count),
        conditions: vec![
            condition("Available", ConditionStatus::True, since),
            condition("Progressing", ConditionStatus::True, since),
        ],
        ..WorkloadStatus::default()
    };
    let mut resources = vec![
        Resource::Deployment(Deployment {
            metadata: meta(name, &deployment_uid, None),
            spec: DeploymentSpec {
                replicas: Some(count),
                ..DeploymentSpec::default()
            },
            status: rollout_done.clone(),
        }),
        Resource::ReplicaSet(ReplicaSet {
            metadata: meta(
                &rs_name,
                &rs_uid,
                Some(OwnerReference {
                    kind: "Deployment".into(),
                    name: name.to_owned(),
                    uid: Some(deployment_uid.clone()),
                    controller: Some(true),
                }),
            ),
            spec: ReplicaSetSpec {
                replicas: Some(count),
            },
            status: rollout_done,
        }),
    ];
    let owner = OwnerReference {
        kind: "ReplicaSet".into(),
        name: rs_name.clone(),
        uid: Some(rs_uid),
        controller: Some(true),
    };
    resources.extend((0..replicas).map(|i| {
        let pod_name = format!("{rs_name}-{i:05}");
        let mut pod_meta = meta(&pod_name, &format!("{pod_name}-uid"), Some(owner.clone()));
        pod_meta
            .labels
            .insert("pod-template-hash".into(), "5d8f7b".into());
        Resource::Pod(running_pod(pod_meta, since))
    }));
    Observations::new(resources)
}

/// A Running, Ready pod with one container named `app`, started at `since`.
pub fn running_pod(metadata: ObjectMeta, since: DateTime<Utc>) -> Pod {
    Pod {
        metadata,
        spec: PodSpec {
            node_name: Some("node-1".into()),
            containers: vec![ContainerSpec {
                name: "app".into(),
                restart_policy: None,
            }],
            ..PodSpec::default()
        },
        status: PodStatus {
            phase: Some(PodPhase::Running),
            start_time: Some(since),
            conditions: vec![
                condition("PodScheduled", ConditionStatus::True, since),
                condition("Initialized", ConditionStatus::True, since),
                condition("ContainersReady", ConditionStatus::True, since),
                condition("Ready", ConditionStatus::True, since),
            ],
            container_statuses: vec![ContainerStatus {
                name: "app".into(),
                ready: true,
                restart_count: 0,
                state: ContainerState {
                    running: Some(StateRunning {
                        started_at: Some(since),
                    }),
                    ..ContainerState::default()
                },
                last_state: ContainerState::default(),
            }],
            ..PodStatus::default()
        },
    }
}

/// Turns a pod into one whose container waits with `reason` (e.g. `ImagePullBackOff`),
/// not Ready.
pub fn make_waiting(pod: &mut Pod, reason: &str) {
    for status in &mut pod.status.container_statuses {
        status.ready = false;
        status.state = ContainerState {
            waiting: Some(StateWaiting {
                reason: Some(reason.to_owned()),
                message: None,
            }),
            ..ContainerState::default()
        };
    }
    for condition in &mut pod.status.conditions {
        if condition.type_ == "Ready" || condition.type_ == "ContainersReady" {
            condition.status = ConditionStatus::False;
        }
    }
}
