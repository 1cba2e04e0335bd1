//! Real-world object shapes the classifier must read rather than reject.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use brokkr_core::health::objects::ConditionStatus;
use brokkr_core::health::{Health, HealthPolicy, Observations, Phase, Resource, classify};
use chrono::{TimeZone, Utc};
use serde_json::json;

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

#[test]
fn api_lists_give_their_items_the_list_kind() {
    let list = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "123"},
        "items": [{"metadata": {"name": "a"}, "status": {"phase": "Succeeded"}},
                  {"metadata": {"name": "b"}, "status": {"phase": "Succeeded"}}]});
    let obs = Observations::from_values([list]).unwrap();
    assert_eq!(obs.resources.len(), 2);
    assert!(obs.resources.iter().all(|r| matches!(r, Resource::Pod(_))));
    let bare = json!({"apiVersion": "v1", "items": [{"kind": "Pod", "metadata": {"name": "c"}}]});
    assert_eq!(
        Observations::from_values([bare]).unwrap().resources.len(),
        1
    );
    let empty = json!({"apiVersion": "v1", "kind": "List", "items": null});
    let obs = Observations::from_values([empty]).unwrap();
    assert!(obs.resources.is_empty());
    assert_eq!(
        classify(&obs, now(), &HealthPolicy::default()).phase,
        Phase::Absent
    );
}

#[test]
fn yaml_scalars_of_other_types_are_read_for_what_they_mean() {
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "generation": 2.0,
                     "labels": {"pod-template-hash": 2_279_996_225_u64, "enabled": true, "gone": null}},
        "spec": {"replicas": "3"},
        "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
                   "conditions": [{"type": "Available", "status": true},
                                  {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}});
    let obs = Observations::from_values([deployment]).unwrap();
    let Resource::Deployment(d) = &obs.resources[0] else {
        panic!("not a deployment")
    };
    assert_eq!(d.metadata.generation, Some(2));
    assert_eq!(d.spec.replicas, Some(3));
    assert_eq!(d.metadata.labels["pod-template-hash"], "2279996225");
    assert_eq!(d.metadata.labels["enabled"], "true");
    assert!(!d.metadata.labels.contains_key("gone"));
    assert_eq!(d.status.conditions[0].status, ConditionStatus::True);
    let a = classify(&obs, now(), &HealthPolicy::default());
    assert_eq!((a.health, a.phase), (Health::Healthy, Phase::Stable));
}

#[test]
fn kinds_are_built_in_only_in_their_own_api_group() {
    let knative = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "hello"}});
    let volcano = json!({"apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job", "metadata": {"name": "train"}});
    let core = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}});
    let legacy = json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment", "metadata": {"name": "old"}});
    let obs = Observations::from_values([knative, volcano, core, legacy]).unwrap();
    let kinds: Vec<&str> = obs
        .resources
        .iter()
        .map(|r| match r {
            Resource::Other(_) => "other",
            Resource::Service(_) => "service",
            Resource::Deployment(_) => "deployment",
            _ => "?",
        })
        .collect();
    assert_eq!(kinds, ["other", "other", "service", "deployment"]);
    assert_eq!(obs.resources[0].kind(), "Service");
}

#[test]
fn odd_custom_statuses_are_not_assessed_rather_than_rejected() {
    let odd = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "status": {"conditions": "all good", "observedGeneration": "soon"}});
    let obs = Observations::from_values([odd]).unwrap();
    let a = classify(&obs, now(), &HealthPolicy::default());
    assert_eq!((a.health, a.phase), (Health::Healthy, Phase::Stable));
}

#[test]
fn a_wrongly_typed_field_of_a_built_in_kind_is_an_error_naming_it() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "status": {"containerStatuses": [{"name": "c", "restartCount": "many"}]}});
    let err = Observations::from_values([pod]).unwrap_err().to_string();
    assert!(
        err.contains("Pod") && err.contains("\"p\"") && err.contains("integer"),
        "{err}"
    );
}
