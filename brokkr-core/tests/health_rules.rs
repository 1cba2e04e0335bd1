//! Table-driven rule tests: every file in `fixtures/health/` holds realistic Kubernetes
//! objects, the time to judge them at, and the verdict the rule table demands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

use brokkr_core::health::{Assessment, HealthPolicy, Observations, Severity, classify};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Case {
    description: String,
    now: DateTime<Utc>,
    expect: Expect,
    objects: Vec<Value>,
    /// The deployment object is a deletion marker.
    #[serde(default)]
    deletion: bool,
}

#[derive(Deserialize)]
struct Expect {
    health: String,
    phase: String,
    codes: Vec<String>,
    conditions: Option<Vec<String>>,
    pods_ready: Option<u32>,
    pods_total: Option<u32>,
}

fn as_json_str<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn mismatches(case: &Case, got: &Assessment) -> Vec<String> {
    let mut problems = Vec::new();
    let health = as_json_str(&got.health);
    if health != case.expect.health {
        problems.push(format!("health {health}, expected {}", case.expect.health));
    }
    let phase = as_json_str(&got.phase);
    if phase != case.expect.phase {
        problems.push(format!("phase {phase}, expected {}", case.expect.phase));
    }
    let codes: BTreeSet<String> = got
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .map(|f| as_json_str(&f.code))
        .collect();
    let expected: BTreeSet<String> = case.expect.codes.iter().cloned().collect();
    if codes != expected {
        problems.push(format!("codes {codes:?}, expected {expected:?}"));
    }
    if let Some(conditions) = &case.expect.conditions
        && &got.conditions != conditions
    {
        problems.push(format!(
            "conditions {:?}, expected {conditions:?}",
            got.conditions
        ));
    }
    if let Some(ready) = case.expect.pods_ready
        && got.pods_ready != ready
    {
        problems.push(format!("pods_ready {}, expected {ready}", got.pods_ready));
    }
    if let Some(total) = case.expect.pods_total
        && got.pods_total != total
    {
        problems.push(format!("pods_total {}, expected {total}", got.pods_total));
    }
    problems
}

#[test]
fn every_rule_fixture_gets_its_verdict() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/health");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "expected the rule fixtures in {dir:?}");
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let case: Case = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut observations = Observations::from_values(case.objects.iter().cloned())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        observations.deletion = case.deletion;
        let got = classify(&observations, case.now, &HealthPolicy::default());
        let mut problems = mismatches(&case, &got);
        // `classify --explain` must be able to name the rule behind every finding.
        problems.extend(
            got.findings
                .iter()
                .filter(|f| f.rule.is_empty())
                .map(|f| format!("finding {:?} names no rule", f.code)),
        );
        if !problems.is_empty() {
            failures.push(format!(
                "{name} ({}):\n    {}\n    findings: {:?}",
                case.description,
                problems.join("\n    "),
                got.findings
                    .iter()
                    .map(|f| format!("{:?}/{:?}/{}", f.code, f.severity, f.display))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures disagree:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
