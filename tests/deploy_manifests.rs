//! The Kubernetes manifests (`deploy/`) against the code they run: every environment
//! variable and flag they set is one the example broker or agent reads, probe paths and
//! ports are the ones the binaries serve, selectors meet their pods, the broker is highly
//! available and locked down, the PrometheusRule carries exactly the rule files, and the
//! overlay's patch still lands on the database URL. Schemas and security policies are
//! checked by `scripts/check-deploy`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{Running, example, free_port};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_docs(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn one(path: &str) -> Value {
    let mut docs = yaml_docs(path);
    assert_eq!(docs.len(), 1, "{path}");
    docs.remove(0)
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

/// The environment variables a binary reads, from its `--help`: flags' `[env: NAME=]`
/// and the "Environment only" list after the options (keys are never flags).
fn env_names(binary: &Path) -> Vec<String> {
    let help = help(binary);
    let flags = help
        .split("[env: ")
        .skip(1)
        .map(|rest| rest.split(['=', ']']).next().unwrap().to_owned());
    let env_only = help
        .split_once("Environment only")
        .map(|(_, rest)| rest)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| word.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_owned);
    flags.chain(env_only).collect()
}

fn help(binary: &Path) -> String {
    let out = Command::new(binary).arg("--help").output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// The status code of `GET path`, once something answers on `port` (10 s at most).
fn status_of(port: u16, path: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if let Some(code) = answer.split(' ').nth(1).and_then(|c| c.parse().ok()) {
                return code;
            }
        }
        assert!(
            Instant::now() < deadline,
            "nothing answered GET {path} on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

fn port_named(container: &Value, name: &str) -> u64 {
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port {name}"))["containerPort"]
        .as_u64()
        .unwrap()
}

fn probe_paths(container: &Value) -> Vec<(String, String)> {
    ["startupProbe", "livenessProbe", "readinessProbe"]
        .iter()
        .filter_map(|p| container[p]["httpGet"].as_object())
        .map(|get| {
            (
                get["path"].as_str().unwrap().to_owned(),
                get["port"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn broker_deployment() -> Value {
    one("deploy/broker/deployment.yaml")
}

#[test]
fn the_broker_manifests_set_only_what_the_broker_reads_and_probe_what_it_serves() {
    let deployment = broker_deployment();
    let c = container(&deployment);
    let binary = example("broker");
    let reads = env_names(&binary);
    let env = c["env"].as_array().unwrap();
    for var in env {
        let name = var["name"].as_str().unwrap();
        assert!(
            reads.iter().any(|r| r == name),
            "{name} is not read by the broker: {reads:?}"
        );
    }
    // The listen address's port is the container port the probes and Service use.
    let listen = env.iter().find(|v| v["name"] == "BROKKR_LISTEN").unwrap()["value"]
        .as_str()
        .unwrap();
    let port = port_named(c, "http");
    assert_eq!(listen, format!("0.0.0.0:{port}"));
    let service = one("deploy/broker/service.yaml");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let monitor = one("deploy/broker/servicemonitor.yaml");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "http");

    // Start the example broker the way the Deployment does and ask the probes' paths.
    let local = free_port();
    let admin = format!(
        "brokkr_admin_{}",
        "Q7x2Lp9Vd4Mz8Rk1Tw6Yb3Nf5Hs0Jc2Gu7Ea9Kq1Po4"
    );
    let _broker = Running(
        Command::new(&binary)
            .env("BROKKR_LISTEN", format!("127.0.0.1:{local}"))
            .env("BROKKR_ADMIN_PAK", admin)
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut paths = probe_paths(c);
    paths.push((
        monitor["spec"]["endpoints"][0]["path"]
            .as_str()
            .unwrap()
            .to_owned(),
        "http".to_owned(),
    ));
    assert!(
        paths.len() >= 4,
        "startup, liveness, readiness and scrape: {paths:?}"
    );
    for (path, port_name) in paths {
        assert_eq!(port_name, "http");
        assert_eq!(status_of(local, &path), 200, "GET {path}");
    }
}

#[test]
fn the_agent_manifests_set_only_what_the_agent_reads_and_probe_what_it_serves() {
    let docs = yaml_docs("deploy/agent/agent.yaml");
    let deployment = of_kind(&docs, "Deployment");
    let c = container(deployment);
    let binary = example("agent");
    let reads = env_names(&binary);
    let secret = one("deploy/agent/secret.example.yaml");
    let from_secret = secret["stringData"].as_object().unwrap().keys().cloned();
    let set = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned());
    for name in from_secret.chain(set) {
        assert!(
            reads.contains(&name),
            "{name} is not read by the agent: {reads:?}"
        );
    }
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let help = help(&binary);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(flag), "{flag} is not a flag of the agent");
    }
    let listen = args[args.iter().position(|a| *a == "--probe-listen").unwrap() + 1];
    let port = port_named(c, "probes");
    assert_eq!(listen, format!("0.0.0.0:{port}"));

    // The agent serves the probes' paths: alive at once, not ready without a broker.
    let local = free_port();
    let nowhere = free_port();
    let _agent = Running(
        Command::new(&binary)
            .args([
                "--simulate",
                "--probe-listen",
                &format!("127.0.0.1:{local}"),
            ])
            .args(["--broker-url", &format!("http://127.0.0.1:{nowhere}")])
            .env("BROKKR_AGENT_ID", "01a2088a-0000-7000-8000-000000000009")
            .env(
                "BROKKR_AGENT_PAK",
                "brokkr_agent_Q7x2Lp9Vd4Mz8Rk1Tw6Yb3Nf5Hs0Jc2Gu7Ea9Kq1Po4",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let probes = probe_paths(c);
    assert_eq!(probes.len(), 2);
    for (path, port_name) in probes {
        assert_eq!(port_name, "probes");
        let expected = if path == "/readyz" { 503 } else { 200 };
        assert_eq!(status_of(local, &path), expected, "GET {path}");
    }
}

#[test]
fn the_broker_is_highly_available_and_locked_down() {
    let d = broker_deployment();
    let spec = &d["spec"];
    assert!(spec["replicas"].as_u64().unwrap() >= 2);
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(pod["affinity"]["podAntiAffinity"].is_object());
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = container(&d);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert!(c["resources"]["limits"]["memory"].is_string());
    // Secrets by reference only: no literal value for the database or the admin key.
    for var in c["env"].as_array().unwrap() {
        if ["DATABASE_URL", "BROKKR_ADMIN_PAK"].contains(&var["name"].as_str().unwrap()) {
            assert!(var.get("value").is_none(), "{var}");
            assert!(
                var["valueFrom"]["secretKeyRef"]["name"].is_string(),
                "{var}"
            );
        }
    }
    // Every selector meets the pods.
    let labels = &spec["template"]["metadata"]["labels"];
    for (file, selector) in [
        ("deploy/broker/service.yaml", "/spec/selector"),
        (
            "deploy/broker/poddisruptionbudget.yaml",
            "/spec/selector/matchLabels",
        ),
        (
            "deploy/broker/networkpolicy.yaml",
            "/spec/podSelector/matchLabels",
        ),
    ] {
        let doc = one(file);
        for (k, v) in doc.pointer(selector).unwrap().as_object().unwrap() {
            assert_eq!(&labels[k], v, "{file} selects {k}={v}");
        }
    }
    let pdb = one("deploy/broker/poddisruptionbudget.yaml");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    let policy = one("deploy/broker/networkpolicy.yaml");
    assert_eq!(
        policy["spec"]["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
}

#[test]
fn every_kustomization_names_existing_files_and_the_overlay_patches_the_database_secret() {
    for dir in ["deploy/broker", "deploy/agent", "deploy/overlays/example"] {
        let k = one(&format!("{dir}/kustomization.yaml"));
        for r in k["resources"].as_array().unwrap() {
            let path = root().join(dir).join(r.as_str().unwrap());
            assert!(path.exists(), "{dir}: {} is missing", path.display());
        }
    }
    let overlay = one("deploy/overlays/example/kustomization.yaml");
    let patch: Vec<Value> =
        serde_yaml_ng::from_str(overlay["patches"][0]["patch"].as_str().unwrap()).unwrap();
    let path = patch[0]["path"].as_str().unwrap();
    let d = broker_deployment();
    let target = path.strip_suffix("/valueFrom/secretKeyRef/name").unwrap();
    assert_eq!(d.pointer(target).unwrap()["name"], "DATABASE_URL", "{path}");
    let image = container(&d)["image"].as_str().unwrap();
    assert!(image.starts_with(&format!(
        "{}:",
        overlay["images"][0]["name"].as_str().unwrap()
    )));
}

#[test]
fn the_prometheus_rule_carries_exactly_the_rule_files() {
    let rule = one("deploy/broker/prometheusrule.yaml");
    let mut groups = Vec::new();
    for file in ["deploy/prometheus/alerts.yml", "deploy/prometheus/slo.yml"] {
        groups.extend(one(file)["groups"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(
        rule["spec"]["groups"].as_array().unwrap(),
        &groups,
        "run scripts/gen-prometheus-rule"
    );
}

#[test]
fn broker_and_agent_declare_the_same_namespace() {
    // Both sides in one cluster (a management cluster that also runs an agent) apply
    // both Namespaces: the last applied must not relabel the first.
    let broker = one("deploy/broker/namespace.yaml");
    let agent = yaml_docs("deploy/agent/agent.yaml");
    let agent_ns = of_kind(&agent, "Namespace");
    assert_eq!(&broker, agent_ns);
    assert_eq!(
        broker["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn the_broker_refuses_a_weak_admin_key_at_start() {
    let weak = format!("brokkr_admin_{}", "A".repeat(43));
    let child = std::process::Command::new(example("broker"))
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .env("BROKKR_ADMIN_PAK", weak)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the broker started with a weak admin key"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(running.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("too weak"), "{stderr}");
}
