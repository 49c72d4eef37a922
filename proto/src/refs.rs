//! Which ConfigMaps and Secrets a pod uses (env, envFrom, configMap/secret/projected volumes).
//! The control plane authorizes a node's reads with it; the agent fetches exactly these.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Pod};

/// The kinds a node may read through `GetObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectKind {
    ConfigMap,
    Secret,
}

impl ObjectKind {
    /// The Kind name on the wire (`ObjectRequest.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::ConfigMap => "ConfigMap",
            ObjectKind::Secret => "Secret",
        }
    }

    /// Parses `ObjectRequest.kind`.
    pub fn parse(kind: &str) -> Option<ObjectKind> {
        match kind {
            "ConfigMap" => Some(ObjectKind::ConfigMap),
            "Secret" => Some(ObjectKind::Secret),
            _ => None,
        }
    }
}

fn container_refs(c: &Container, out: &mut BTreeSet<(ObjectKind, String)>) {
    for var in c.env.iter().flatten() {
        let Some(src) = &var.value_from else { continue };
        if let Some(r) = &src.config_map_key_ref {
            out.insert((ObjectKind::ConfigMap, r.name.clone()));
        }
        if let Some(r) = &src.secret_key_ref {
            out.insert((ObjectKind::Secret, r.name.clone()));
        }
    }
    for from in c.env_from.iter().flatten() {
        if let Some(r) = &from.config_map_ref {
            out.insert((ObjectKind::ConfigMap, r.name.clone()));
        }
        if let Some(r) = &from.secret_ref {
            out.insert((ObjectKind::Secret, r.name.clone()));
        }
    }
}

/// Every (kind, name) in the pod's namespace that the pod references.
pub fn referenced_objects(pod: &Pod) -> BTreeSet<(ObjectKind, String)> {
    let mut out = BTreeSet::new();
    let Some(spec) = &pod.spec else { return out };
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        container_refs(c, &mut out);
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            out.insert((ObjectKind::ConfigMap, cm.name.clone()));
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            out.insert((ObjectKind::Secret, name));
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                out.insert((ObjectKind::ConfigMap, cm.name.clone()));
            }
            if let Some(s) = &source.secret {
                out.insert((ObjectKind::Secret, s.name.clone()));
            }
        }
    }
    for s in spec.image_pull_secrets.iter().flatten() {
        out.insert((ObjectKind::Secret, s.name.clone()));
    }
    out.retain(|(_, name)| !name.is_empty());
    out
}

/// Whether `pod` references the object `kind`/`name` (in the pod's own namespace).
pub fn pod_references(pod: &Pod, kind: ObjectKind, name: &str) -> bool {
    referenced_objects(pod).contains(&(kind, name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: serde_json::Value) -> Pod {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn finds_every_kind_of_reference() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-s"}}]}],
                "containers": [{"name": "c", "env": [
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-s", "key": "k"}}},
                    {"name": "C", "value": "plain"}
                ], "envFrom": [{"configMapRef": {"name": "from-cm"}}]}],
                "volumes": [
                    {"name": "v1", "configMap": {"name": "vol-cm"}},
                    {"name": "v2", "secret": {"secretName": "vol-s"}},
                    {"name": "v3", "projected": {"sources": [
                        {"configMap": {"name": "proj-cm"}}, {"secret": {"name": "proj-s"}},
                        {"serviceAccountToken": {"path": "token"}}
                    ]}},
                    {"name": "v4", "emptyDir": {}}
                ],
                "imagePullSecrets": [{"name": "pull"}]
            }
        }));
        let refs = referenced_objects(&p);
        let names = |k: ObjectKind| -> Vec<&str> {
            refs.iter()
                .filter(|(kind, _)| *kind == k)
                .map(|(_, n)| n.as_str())
                .collect()
        };
        assert_eq!(
            names(ObjectKind::ConfigMap),
            ["env-cm", "from-cm", "proj-cm", "vol-cm"]
        );
        assert_eq!(
            names(ObjectKind::Secret),
            ["env-s", "init-s", "proj-s", "pull", "vol-s"]
        );
        assert!(pod_references(&p, ObjectKind::Secret, "vol-s"));
        // A ConfigMap and a Secret with the same name are different objects.
        assert!(!pod_references(&p, ObjectKind::Secret, "vol-cm"));
        assert!(!pod_references(&p, ObjectKind::ConfigMap, "other"));
    }
}
