//! A host's own kinds: declarative rules decide before the built-in conventions, and
//! `explain` names the rule and anchor behind every finding.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use brokkr_core::health::{
    CustomKindRule, FindingCode, Health, HealthPolicy, Observations, Phase, classify, explain,
};
use chrono::{DateTime, Utc};
use serde_json::json;

fn now() -> DateTime<Utc> {
    "2026-03-01T12:00:00Z".parse().unwrap()
}

fn database(status: &serde_json::Value) -> Observations {
    Observations::from_values([json!({
        "apiVersion": "db.acme.example/v1", "kind": "Database",
        "metadata": {"name": "orders", "namespace": "shop", "generation": 2,
            "creationTimestamp": "2026-02-01T00:00:00Z"},
        "spec": {"engine": "postgres"},
        "status": status,
    })])
    .unwrap()
}

fn rule() -> CustomKindRule {
    serde_json::from_value(json!({
        "group": "db.acme.example", "kind": "Database",
        "phases": [
            {"value": "Provisioning", "health": "healthy", "phase": "progressing"},
            {"value": "Broken", "health": "failing", "phase": "stable"}
        ],
        "conditions": [
            {"type": "BackupsHealthy", "status": "False", "health": "degraded",
             "phase": "stable", "grace_seconds": 600}
        ]
    }))
    .unwrap()
}

#[test]
fn a_host_rule_decides_its_kind() {
    let policy = HealthPolicy {
        custom_kinds: vec![rule()],
        ..HealthPolicy::default()
    };
    // The host's own word: `Broken` is failing (the conventions know nothing of it).
    let broken = database(&json!({"phase": "Broken", "observedGeneration": 2}));
    assert_eq!(
        classify(&broken, now(), &HealthPolicy::default()).health,
        Health::Healthy
    );
    let verdict = classify(&broken, now(), &policy);
    assert_eq!(verdict.health, Health::Failing);
    assert_eq!(verdict.findings[0].code, FindingCode::ReconcileFailed);

    // A condition with a grace: progressing within it, degraded after.
    let backups = |since: &str| {
        database(
            &json!({"phase": "Ready", "observedGeneration": 2, "conditions": [
            {"type": "BackupsHealthy", "status": "False", "reason": "BucketDenied",
             "lastTransitionTime": since}]}),
        )
    };
    let young = classify(&backups("2026-03-01T11:55:00Z"), now(), &policy);
    assert_eq!(
        (young.health, young.phase),
        (Health::Healthy, Phase::Progressing)
    );
    let old = classify(&backups("2026-03-01T11:00:00Z"), now(), &policy);
    assert_eq!(
        (old.health, old.conditions.clone()),
        (Health::Degraded, vec!["BucketDenied".to_owned()])
    );

    // Still not observed without a status, unless declared status-less.
    let bare = database(&serde_json::Value::Null);
    assert_eq!(classify(&bare, now(), &policy).health, Health::Unknown);
    let status_less = HealthPolicy {
        custom_kinds: vec![CustomKindRule {
            status_less: true,
            ..rule()
        }],
        ..HealthPolicy::default()
    };
    assert_eq!(classify(&bare, now(), &status_less).health, Health::Healthy);
}

#[test]
fn explain_names_the_rule_and_its_anchor() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "shop"},
        "status": {"phase": "Pending", "startTime": "2026-03-01T11:50:00Z",
            "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
    });
    let observations = Observations::from_values([pod]).unwrap();
    let text = explain(
        &classify(&observations, now(), &HealthPolicy::default()),
        now(),
    );
    assert!(text.contains("ImagePullBackOff"), "{text}");
    assert!(text.contains("rule container.waiting.pull"), "{text}");
    assert!(
        text.contains("anchor status.startTime = 2026-03-01T11:50:00+00:00 (600 s before now)"),
        "{text}"
    );
    // Nothing found, nothing to explain.
    let healthy = Observations::from_values([json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c"}})])
    .unwrap();
    assert_eq!(
        explain(&classify(&healthy, now(), &HealthPolicy::default()), now()),
        ""
    );
}
