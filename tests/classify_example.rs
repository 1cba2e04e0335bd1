//! The `classify` example as a user runs it: files in, assessment JSON out, exit 2 on bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The example binary, built next to this test by `cargo test` / `cargo nextest`.
fn classify_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join("examples").join("classify");
    assert!(
        binary.exists(),
        "{} is missing: build the examples first (cargo test builds them)",
        binary.display()
    );
    binary
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("brokkr-core/tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(classify_binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn multi_document_yaml_is_one_deployment_object() {
    let out = run(
        &[
            "--now",
            "2026-03-01T12:00:00Z",
            &fixture("yaml/deployment-crashloop.yaml"),
        ],
        None,
    );
    let assessment = json(&out);
    assert_eq!(assessment["health"], "degraded");
    assert_eq!(assessment["phase"], "stable");
    assert_eq!(assessment["pods_total"], 2);
    assert_eq!(assessment["pods_ready"], 1);
    // One of two replicas is missing with no rollout in progress: ReplicasUnavailable.
    assert_eq!(
        assessment["conditions"],
        serde_json::json!(["CrashLoopBackOff", "ReplicasUnavailable"])
    );
    let finding = &assessment["findings"][0];
    assert_eq!(finding["code"], "CrashLoopBackOff");
    assert_eq!(finding["severity"], "degraded");
    assert_eq!(finding["resource"]["kind"], "Pod");
    for key in ["display", "container", "message", "since", "count"] {
        assert!(finding.get(key).is_some(), "finding lacks {key}: {finding}");
    }
    for resource in assessment["resources"].as_array().unwrap() {
        for key in [
            "kind",
            "name",
            "namespace",
            "health",
            "phase",
            "ready",
            "message",
        ] {
            assert!(resource.get(key).is_some(), "resource lacks {key}");
        }
    }
}

#[test]
fn kind_list_and_stdin_are_read() {
    let list = std::fs::read_to_string(fixture("yaml/list.json")).unwrap();
    let out = run(&["--now", "2026-03-01T12:00:00Z", "-"], Some(&list));
    let assessment = json(&out);
    assert_eq!(assessment["health"], "healthy");
    assert_eq!(assessment["phase"], "stable");
}

#[test]
fn a_stream_of_json_objects_is_read() {
    let stream = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "status": {"phase": "Succeeded"}}
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}, "status": {"phase": "Failed", "reason": "Evicted"}}"#;
    let assessment = json(&run(&["-"], Some(stream)));
    assert_eq!(assessment["health"], "failing");
    assert_eq!(assessment["conditions"], serde_json::json!(["Evicted"]));
}

#[test]
fn several_files_make_one_deployment_object() {
    let out = run(
        &[
            "--now",
            "2026-03-01T12:00:00Z",
            &fixture("yaml/list.json"),
            &fixture("yaml/deployment-crashloop.yaml"),
        ],
        None,
    );
    let both = json(&out);
    assert_eq!(both["health"], "degraded");
    assert!(both["resources"].as_array().unwrap().len() >= 2);
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let broken = fixture("yaml/broken.yaml");
    let out = run(&[&broken], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.yaml"), "{stderr}");
    assert!(stderr.contains("invalid YAML"), "{stderr}");

    let out = run(&["/no/such/file.json"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/file.json"));

    let out = run(&["-"], Some(r#"{"apiVersion": "v1", "metadata": {}}"#));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kind"));

    let out = run(&["--now", "yesterday", "x.json"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--now"));

    let out = run(&[], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}

#[test]
fn a_pod_with_a_wrongly_typed_field_is_reported_not_guessed() {
    let pod =
        r#"{"kind": "Pod", "metadata": {"name": "p"}, "status": {"containerStatuses": "nope"}}"#;
    let out = run(&["-"], Some(pod));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Pod") && stderr.contains("\"p\""),
        "{stderr}"
    );
}

#[test]
fn explain_prints_the_rule_and_anchor_of_each_finding() {
    // The objects of a rule fixture, as `kubectl get -o json` would print them.
    let case: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("health/pod-image-pull-backoff-past-grace.json")).unwrap(),
    )
    .unwrap();
    let objects = serde_json::to_string(&case["objects"]).unwrap();
    let out = run(
        &["--now", "2026-03-01T12:00:00Z", "--explain", "-"],
        Some(&objects),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (json_part, explanation) = text.split_once("\n\n").unwrap();
    serde_json::from_str::<Value>(json_part).unwrap();
    assert!(explanation.contains("ImagePullBackOff"), "{explanation}");
    assert!(
        explanation.contains("rule container.waiting.pull"),
        "{explanation}"
    );
    assert!(explanation.contains("anchor "), "{explanation}");
}
