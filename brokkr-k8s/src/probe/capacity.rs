//! Cluster capacity from nodes and pods: what is allocatable, what pods request.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::quantity;

pub(super) fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Allocatable CPU (millicores) and memory (bytes) of all nodes.
pub(super) fn allocatable(nodes: &[Node]) -> (i64, i64) {
    let mut cpu = 0_i64;
    let mut memory = 0_i64;
    for node in nodes {
        let Some(alloc) = node.status.as_ref().and_then(|s| s.allocatable.as_ref()) else {
            continue;
        };
        if let Some(q) = alloc.get("cpu").and_then(|q| quantity::cpu_millis(&q.0)) {
            cpu = cpu.saturating_add(q);
        }
        if let Some(q) = alloc.get("memory").and_then(|q| quantity::bytes(&q.0)) {
            memory = memory.saturating_add(q);
        }
    }
    (cpu, memory)
}

/// Requested CPU and memory of running pods: per pod the larger of its containers' sum
/// and its largest init container, as the scheduler counts it.
pub(super) fn requested(pods: &[Pod]) -> (i64, i64) {
    let mut cpu = 0_i64;
    let mut memory = 0_i64;
    for pod in pods {
        let Some(spec) = &pod.spec else { continue };
        // Requests count against a node only once the pod is bound to one.
        if spec.node_name.is_none() {
            continue;
        }
        let requests = |c: &k8s_openapi::api::core::v1::Container| -> (i64, i64) {
            let r: Option<
                &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
            > = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            let get = |key: &str, parse: fn(&str) -> Option<i64>| {
                r.and_then(|r| r.get(key))
                    .and_then(|q| parse(&q.0))
                    .unwrap_or(0)
            };
            (
                get("cpu", quantity::cpu_millis),
                get("memory", quantity::bytes),
            )
        };
        let (mut pod_cpu, mut pod_memory) = spec
            .containers
            .iter()
            .map(requests)
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        for init in spec.init_containers.iter().flatten() {
            let (c, m) = requests(init);
            if init.restart_policy.as_deref() == Some("Always") {
                // A native sidecar runs next to the containers: it adds up.
                pod_cpu += c;
                pod_memory += m;
            } else {
                pod_cpu = pod_cpu.max(c);
                pod_memory = pod_memory.max(m);
            }
        }
        cpu = cpu.saturating_add(pod_cpu);
        memory = memory.saturating_add(pod_memory);
    }
    (cpu, memory)
}
