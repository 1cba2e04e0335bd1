//! The Kubernetes permissions the agent uses, as data: the shipped RBAC manifests
//! (`deploy/agent/`) are checked against these tables, and the mocked API server in the
//! tests checks every request the probe and applier make against them.

/// One RBAC rule: verbs on a resource of an API group (`""` is the core group).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// API group.
    pub group: &'static str,
    /// Resource (plural), with a subresource as `pods/log`.
    pub resource: &'static str,
    /// Verbs.
    pub verbs: &'static [&'static str],
}

const LIST: &[&str] = &["list"];

/// What [`crate::KubeProbe`] reads: lists of every assessed kind, nodes for the
/// snapshot and lost-node detection, events for diagnostics, and pod logs.
pub const READ: &[Permission] = &[
    Permission {
        group: "",
        resource: "pods",
        verbs: LIST,
    },
    Permission {
        group: "",
        resource: "pods/log",
        verbs: &["get"],
    },
    Permission {
        group: "",
        resource: "services",
        verbs: LIST,
    },
    Permission {
        group: "",
        resource: "persistentvolumeclaims",
        verbs: LIST,
    },
    Permission {
        group: "",
        resource: "nodes",
        verbs: LIST,
    },
    Permission {
        group: "apps",
        resource: "deployments",
        verbs: LIST,
    },
    Permission {
        group: "apps",
        resource: "statefulsets",
        verbs: LIST,
    },
    Permission {
        group: "apps",
        resource: "daemonsets",
        verbs: LIST,
    },
    Permission {
        group: "apps",
        resource: "replicasets",
        verbs: LIST,
    },
    Permission {
        group: "batch",
        resource: "jobs",
        verbs: LIST,
    },
    Permission {
        group: "batch",
        resource: "cronjobs",
        verbs: LIST,
    },
    Permission {
        group: "networking.k8s.io",
        resource: "ingresses",
        verbs: LIST,
    },
    Permission {
        group: "autoscaling",
        resource: "horizontalpodautoscalers",
        verbs: LIST,
    },
    Permission {
        group: "events.k8s.io",
        resource: "events",
        verbs: LIST,
    },
];

/// What [`crate::KubeApplier`] does to the kinds a stack contains: server-side apply
/// (`patch`, and `create` for objects that do not exist yet) and `delete` for deletion
/// markers. Which kinds is the operator's choice (the `brokkr-agent-apply` ClusterRole
/// in `deploy/agent/agent.yaml`).
pub const APPLY_VERBS: &[&str] = &["create", "patch", "delete"];

/// Whether `verb` on `group`/`resource` is among [`READ`].
pub fn reads(group: &str, resource: &str, verb: &str) -> bool {
    READ.iter()
        .any(|p| p.group == group && p.resource == resource && p.verbs.contains(&verb))
}
