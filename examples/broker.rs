//! The example broker.
//!
//! Until the HTTP API lands this prints what the broker's heart does: it classifies a
//! small, built-in deployment object (a Deployment mid-rollout with one crash-looping
//! pod) and prints the assessment as JSON. Run `cargo run --example classify -- FILE`
//! to classify your own objects.

use brokkr::health::{HealthPolicy, Observations, classify};
use chrono::{DateTime, Utc};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now: DateTime<Utc> = "2026-03-01T12:00:00Z".parse()?;
    let objects = json!({"kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": "shop", "uid": "d-1", "generation": 2,
                      "creationTimestamp": "2026-02-01T00:00:00Z"},
         "spec": {"replicas": 2},
         "status": {"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
                    "readyReplicas": 2, "availableReplicas": 2,
                    "conditions": [
                      {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                       "lastTransitionTime": "2026-02-01T00:01:00Z"},
                      {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                       "lastUpdateTime": "2026-03-01T11:57:00Z",
                       "lastTransitionTime": "2026-02-01T00:00:00Z"}]}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "web-7c9f-x2k4p", "namespace": "shop",
                      "labels": {"app": "web", "pod-template-hash": "7c9f"},
                      "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                           "name": "web-7c9f", "uid": "rs-2", "controller": true}]},
         "spec": {"containers": [{"name": "web"}]},
         "status": {"phase": "Running", "startTime": "2026-03-01T11:57:00Z",
                    "conditions": [{"type": "Ready", "status": "False",
                                    "lastTransitionTime": "2026-03-01T11:57:00Z"}],
                    "containerStatuses": [{"name": "web", "ready": false, "restartCount": 4,
                      "state": {"waiting": {"reason": "CrashLoopBackOff",
                                            "message": "back-off 1m20s restarting failed container"}},
                      "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                                   "finishedAt": "2026-03-01T11:59:10Z"}}}]}}
    ]});
    let observations = Observations::from_values([objects])?;
    let assessment = classify(&observations, now, &HealthPolicy::default());
    println!("{}", serde_json::to_string_pretty(&assessment)?);
    eprintln!(
        "\nThe broker's HTTP API is not built yet; this shows the health classifier at its heart.\n\
         Classify your own objects: cargo run --example classify -- FILE.yaml"
    );
    Ok(())
}
