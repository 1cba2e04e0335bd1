//! [`KubeApplier`]: server-side apply of a deployment object's manifests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use brokkr_core::model::{DeploymentObject, FailureReason};
use brokkr_core::probe::{Applier, ApplyError};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{apply_error, status_code};
use crate::probe::OBJECT_LABEL;

/// The label naming the stack an object belongs to.
pub const STACK_LABEL: &str = "brokkr.io/stack-id";

/// How the applier writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeApplierConfig {
    /// Server-side apply field manager.
    pub field_manager: String,
    /// Namespace for namespaced objects that name none.
    pub default_namespace: String,
    /// Take over fields another manager owns instead of reporting a conflict.
    pub force_conflicts: bool,
    /// Each API call gives up after this long.
    pub call_timeout: Duration,
}

impl Default for KubeApplierConfig {
    fn default() -> Self {
        Self {
            field_manager: "brokkr-agent".to_owned(),
            default_namespace: "default".to_owned(),
            force_conflicts: false,
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// [`Applier`] over a `kube::Client`: every document of the object's YAML is applied
/// with server-side apply, its kind resolved through discovery (cached), its top-level
/// labels extended with [`OBJECT_LABEL`] and [`STACK_LABEL`] (never pod templates or
/// selectors, which would make workloads roll or orphan their pods). A deletion marker
/// deletes the objects its YAML names. Namespaces and CRDs go first (last on deletion).
pub struct KubeApplier {
    client: Client,
    config: KubeApplierConfig,
    kinds: Mutex<HashMap<GroupVersionKind, (ApiResource, ApiCapabilities)>>,
}

/// One manifest with what it takes to address it.
struct Manifest {
    gvk: GroupVersionKind,
    name: String,
    namespace: Option<String>,
    body: Value,
}

fn invalid(message: impl Into<String>) -> ApplyError {
    ApplyError::new(FailureReason::InvalidManifest, message)
}

/// Apply order: what others need comes first.
fn rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "CustomResourceDefinition" => 1,
        "ServiceAccount" | "ClusterRole" | "Role" => 2,
        "ClusterRoleBinding" | "RoleBinding" => 3,
        "ConfigMap" | "Secret" | "PersistentVolumeClaim" => 4,
        _ => 5,
    }
}

/// The documents of a multi-document YAML (`kind: List` flattened), in apply order.
fn manifests(yaml: &str) -> Result<Vec<Manifest>, ApplyError> {
    // Walked once within the broker's budget before anything is built: an alias bomb
    // fails its own apply instead of taking the agent's memory.
    brokkr_core::yaml_budget::check(yaml, brokkr_core::yaml_budget::YamlBudget::default())
        .map_err(|e| invalid(format!("the YAML is refused: {e}")))?;
    let mut docs = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(yaml) {
        let value = Value::deserialize(document)
            .map_err(|e| invalid(format!("the YAML does not parse: {e}")))?;
        match value {
            Value::Null => {}
            Value::Object(ref map) if map.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = map.get("items").and_then(Value::as_array).cloned();
                docs.extend(items.unwrap_or_default());
            }
            other => docs.push(other),
        }
    }
    let mut out = Vec::with_capacity(docs.len());
    for (i, body) in docs.into_iter().enumerate() {
        let text = |path: &[&str]| {
            let mut v = &body;
            for key in path {
                v = v.get(key)?;
            }
            v.as_str().map(str::to_owned)
        };
        let (Some(api_version), Some(kind), Some(name)) = (
            text(&["apiVersion"]),
            text(&["kind"]),
            text(&["metadata", "name"]),
        ) else {
            return Err(invalid(format!(
                "document {} needs apiVersion, kind and metadata.name",
                i + 1
            )));
        };
        let (group, version) = api_version
            .rsplit_once('/')
            .map_or((String::new(), api_version.clone()), |(g, v)| {
                (g.to_owned(), v.to_owned())
            });
        out.push(Manifest {
            gvk: GroupVersionKind::gvk(&group, &version, &kind),
            name,
            namespace: text(&["metadata", "namespace"]),
            body,
        });
    }
    if out.is_empty() {
        return Err(invalid("the deployment object holds no manifest"));
    }
    out.sort_by_key(|m| rank(&m.gvk.kind));
    Ok(out)
}

impl KubeApplier {
    /// An applier over `client`.
    pub fn new(client: Client, config: KubeApplierConfig) -> Self {
        Self {
            client,
            config,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    async fn timed<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ApplyError> {
        tokio::time::timeout(self.config.call_timeout, call)
            .await
            .map_err(|_| ApplyError::new(FailureReason::Timeout, format!("{what}: timed out")))?
            .map_err(|e| apply_error(what, &e))
    }

    async fn resolve(
        &self,
        gvk: &GroupVersionKind,
    ) -> Result<(ApiResource, ApiCapabilities), ApplyError> {
        if let Some(found) = self
            .kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(gvk)
        {
            return Ok(found.clone());
        }
        let what = format!("resolving {}/{} {}", gvk.group, gvk.version, gvk.kind);
        let call = kube::discovery::pinned_kind(&self.client, gvk);
        let found = match tokio::time::timeout(self.config.call_timeout, call).await {
            Err(_) => {
                return Err(ApplyError::new(
                    FailureReason::Timeout,
                    format!("{what}: timed out"),
                ));
            }
            Ok(Ok(found)) => found,
            // The group/version is not served, or does not have the kind.
            Ok(Err(e)) if not_served(&e) => {
                return Err(invalid(format!(
                    "{}/{} {} is not served by this cluster",
                    gvk.group, gvk.version, gvk.kind
                )));
            }
            Ok(Err(e)) => return Err(apply_error(&what, &e)),
        };
        self.kinds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(gvk.clone(), found.clone());
        Ok(found)
    }

    fn api(
        &self,
        manifest: &Manifest,
        resource: &ApiResource,
        caps: &ApiCapabilities,
    ) -> Api<DynamicObject> {
        match caps.scope {
            Scope::Namespaced => Api::namespaced_with(
                self.client.clone(),
                manifest
                    .namespace
                    .as_deref()
                    .unwrap_or(&self.config.default_namespace),
                resource,
            ),
            Scope::Cluster => Api::all_with(self.client.clone(), resource),
        }
    }
}

/// Whether discovery said the kind does not exist (a 404 for the group/version, or a
/// group/version without the kind), as opposed to any other failure.
fn not_served(error: &kube::Error) -> bool {
    status_code(error) == Some(404)
        || matches!(
            error,
            kube::Error::Discovery(
                kube::error::DiscoveryError::MissingKind(_)
                    | kube::error::DiscoveryError::MissingApiGroup(_)
                    | kube::error::DiscoveryError::InvalidGroupVersion(_)
            )
        )
}

#[async_trait]
impl Applier for KubeApplier {
    async fn apply(&self, object: &DeploymentObject) -> Result<(), ApplyError> {
        let mut manifests = manifests(&object.yaml_content)?;
        if object.is_deletion {
            manifests.reverse();
        }
        for mut manifest in manifests {
            let (resource, caps) = match self.resolve(&manifest.gvk).await {
                // A kind the cluster no longer serves (its CRD went first) has nothing
                // left to delete.
                Err(e) if object.is_deletion && e.reason == FailureReason::InvalidManifest => {
                    continue;
                }
                other => other?,
            };
            let api = self.api(&manifest, &resource, &caps);
            let what = format!("{} {}", manifest.gvk.kind, manifest.name);
            if object.is_deletion {
                match tokio::time::timeout(
                    self.config.call_timeout,
                    api.delete(&manifest.name, &DeleteParams::background()),
                )
                .await
                {
                    Err(_) => {
                        return Err(ApplyError::new(
                            FailureReason::Timeout,
                            format!("deleting {what}: timed out"),
                        ));
                    }
                    // Already gone is what a deletion wants.
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) if status_code(&e) == Some(404) => {}
                    Ok(Err(e)) => return Err(apply_error(&format!("deleting {what}"), &e)),
                }
                continue;
            }
            let metadata = manifest
                .body
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| invalid(format!("{what}: metadata is not a map")))?;
            if caps.scope == Scope::Namespaced && !metadata.contains_key("namespace") {
                metadata.insert(
                    "namespace".to_owned(),
                    Value::String(self.config.default_namespace.clone()),
                );
            }
            let labels = metadata
                .entry("labels")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            // A bare `labels:` is YAML null: no labels yet.
            if labels.is_null() {
                *labels = Value::Object(serde_json::Map::new());
            }
            let labels = labels
                .as_object_mut()
                .ok_or_else(|| invalid(format!("{what}: metadata.labels is not a map")))?;
            labels.insert(
                OBJECT_LABEL.to_owned(),
                Value::String(object.id.to_string()),
            );
            labels.insert(
                STACK_LABEL.to_owned(),
                Value::String(object.stack_id.to_string()),
            );
            let mut params = PatchParams::apply(&self.config.field_manager);
            if self.config.force_conflicts {
                params = params.force();
            }
            self.timed(
                &format!("applying {what}"),
                api.patch(&manifest.name, &params, &Patch::Apply(&manifest.body)),
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_bomb_fails_its_own_apply() {
        use std::fmt::Write as _;
        let mut yaml = String::from("a0: &a0 [lol]\n");
        for level in 1..=9 {
            let aliases = vec![format!("*a{}", level - 1); 10].join(", ");
            let _ = writeln!(yaml, "a{level}: &a{level} [{aliases}]");
        }
        let Err(error) = manifests(&yaml) else {
            panic!("a billion laughs was accepted");
        };
        assert_eq!(error.reason, FailureReason::InvalidManifest);
        assert!(
            error.message.contains("expands to more than"),
            "{}",
            error.message
        );
    }

    #[test]
    fn documents_are_ordered_and_lists_flattened() {
        let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}\n\
                    - {apiVersion: v1, kind: ConfigMap, metadata: {name: cfg, namespace: shop}}\n---\n";
        let m = manifests(yaml).unwrap();
        let kinds: Vec<_> = m.iter().map(|m| m.gvk.kind.as_str()).collect();
        assert_eq!(kinds, ["Namespace", "ConfigMap", "Deployment"]);
        assert_eq!(m[2].gvk.group, "apps");
        assert_eq!(m[0].gvk.group, "");
        assert_eq!(m[1].namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn bad_manifests_are_invalid_with_a_reason() {
        for yaml in [
            "kind: [unclosed",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
            "",
            "---\n---\n",
        ] {
            let err = manifests(yaml).err().unwrap();
            assert_eq!(err.reason, FailureReason::InvalidManifest, "{yaml:?}");
            assert!(!err.message.is_empty());
        }
    }
}
