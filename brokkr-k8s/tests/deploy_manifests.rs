//! The agent's Kubernetes manifests (`deploy/agent/`): every document parses, RBAC
//! grants exactly what the code uses, and the Deployment is locked down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

fn documents(file: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/agent")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// (group, resource, verb) of every rule of a ClusterRole.
fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb));
                }
            }
        }
    }
    out
}

#[test]
fn every_document_parses_and_names_its_kind() {
    let docs = documents("agent.yaml");
    let kinds: Vec<_> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment"
        ]
    );
    for doc in &docs {
        assert!(doc["apiVersion"].is_string());
        assert!(doc["metadata"]["name"].is_string());
    }
}

#[test]
fn the_read_role_grants_exactly_what_the_probe_uses() {
    let docs = documents("agent.yaml");
    let granted = grants(find(&docs, "ClusterRole", "brokkr-agent-read"));
    let declared: BTreeSet<_> = brokkr_k8s::rbac::READ
        .iter()
        .flat_map(|p| {
            p.verbs
                .iter()
                .map(|v| (p.group.to_owned(), p.resource.to_owned(), (*v).to_owned()))
        })
        .collect();
    assert_eq!(granted, declared);
    assert!(
        granted.iter().all(|(_, _, verb)| verb != "*"),
        "no wildcards"
    );
}

#[test]
fn the_apply_role_grants_only_apply_verbs() {
    let docs = documents("agent.yaml");
    let role = find(&docs, "ClusterRole", "brokkr-agent-apply");
    for rule in role["rules"].as_array().unwrap() {
        let verbs: BTreeSet<_> = strings(&rule["verbs"]).into_iter().collect();
        let expected: BTreeSet<_> = brokkr_k8s::rbac::APPLY_VERBS
            .iter()
            .map(|v| (*v).to_owned())
            .collect();
        assert_eq!(verbs, expected, "{rule}");
        assert!(!strings(&rule["resources"]).contains(&"*".to_owned()));
        // Granting RBAC kinds would let a stack escalate the agent's own rights.
        assert!(!strings(&rule["apiGroups"]).contains(&"rbac.authorization.k8s.io".to_owned()));
    }
}

#[test]
fn the_bindings_tie_the_roles_to_the_service_account() {
    let docs = documents("agent.yaml");
    let account = find(&docs, "ServiceAccount", "brokkr-agent");
    for name in ["brokkr-agent-read", "brokkr-agent-apply"] {
        let binding = find(&docs, "ClusterRoleBinding", name);
        assert_eq!(binding["roleRef"]["name"], name);
        assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
        let subject = &binding["subjects"][0];
        assert_eq!(subject["kind"], "ServiceAccount");
        assert_eq!(subject["name"], account["metadata"]["name"]);
        assert_eq!(subject["namespace"], account["metadata"]["namespace"]);
    }
}

#[test]
fn the_deployment_is_single_recreated_probed_and_locked_down() {
    let docs = documents("agent.yaml");
    let d = find(&docs, "Deployment", "brokkr-agent");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "brokkr-agent");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "brokkr-agent");
    // The probe port is the one the agent is told to serve on.
    let args = strings(&c["args"]);
    assert_eq!(args, ["--probe-listen", "0.0.0.0:8080"]);
    assert_eq!(c["ports"][0]["containerPort"], 8080);
}

#[test]
fn the_secret_template_carries_what_the_agent_reads() {
    let docs = documents("secret.example.yaml");
    let secret = find(&docs, "Secret", "brokkr-agent");
    let keys: BTreeSet<_> = secret["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        ["BROKKR_AGENT_ID", "BROKKR_AGENT_PAK", "BROKKR_BROKER_URL"]
            .map(str::to_owned)
            .into()
    );
    assert_eq!(secret["metadata"]["namespace"], "brokkr-system");
}
