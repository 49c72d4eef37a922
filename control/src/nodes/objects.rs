//! `GetObject`: a node reads the ConfigMaps and Secrets its pods reference, and nothing else
//! (the Node authorizer's rule: the object must be referenced by a pod bound to that node).

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use skiff_proto::node::{ObjectReply, ObjectRequest};
use skiff_proto::refs::{ObjectKind, pod_references};
use tonic::Status;

use super::to_status;
use crate::apiserver::registry::{ListParams, Registry};

/// Whether a pod in `pods` that is bound to `node` references `kind`/`name` in `namespace`.
pub(crate) fn node_may_read(
    pods: &[Pod],
    node: &str,
    kind: ObjectKind,
    namespace: &str,
    name: &str,
) -> bool {
    pods.iter().any(|p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
            && p.metadata.namespace.as_deref() == Some(namespace)
            && pod_references(p, kind, name)
    })
}

/// Answers one `GetObject` call.
pub(crate) async fn get(registry: &Registry, req: &ObjectRequest) -> Result<ObjectReply, Status> {
    let kind = ObjectKind::parse(&req.kind).ok_or_else(|| {
        Status::invalid_argument(format!(
            "kind {:?}: only ConfigMap and Secret can be read",
            req.kind
        ))
    })?;
    if req.node_name.is_empty() || req.namespace.is_empty() || req.name.is_empty() {
        return Err(Status::invalid_argument(
            "node_name, namespace and name are required",
        ));
    }
    let params = ListParams {
        field_selector: Some(format!("spec.nodeName={}", req.node_name)),
        ..Default::default()
    };
    let pods = registry
        .list::<Pod>(Some(&req.namespace), &params)
        .await
        .map_err(to_status)?;
    // Refuse before looking the object up, so a node cannot learn what exists elsewhere.
    if !node_may_read(&pods.items, &req.node_name, kind, &req.namespace, &req.name) {
        return Err(Status::permission_denied(format!(
            "node {:?} may not read {} {}/{}: no pod bound to it references it",
            req.node_name,
            kind.as_str(),
            req.namespace,
            req.name
        )));
    }
    let object_json = match kind {
        ObjectKind::ConfigMap => registry
            .get::<ConfigMap>(Some(&req.namespace), &req.name)
            .await
            .map(|o| skiff_proto::to_json(&o)),
        ObjectKind::Secret => registry
            .get::<Secret>(Some(&req.namespace), &req.name)
            .await
            .map(|o| skiff_proto::to_json(&o)),
    }
    .map_err(to_status)?;
    Ok(ObjectReply { object_json })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: &str, namespace: &str, cm: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": namespace},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "c"}],
                "volumes": [{"name": "v", "configMap": {"name": cm}}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn only_objects_referenced_by_the_nodes_own_pods_are_readable() {
        let pods = vec![pod("n1", "default", "mine"), pod("n2", "default", "theirs")];
        let cm = ObjectKind::ConfigMap;
        assert!(node_may_read(&pods, "n1", cm, "default", "mine"));
        // Another node's pod references it, not ours.
        assert!(!node_may_read(&pods, "n1", cm, "default", "theirs"));
        // Same name in another namespace.
        assert!(!node_may_read(&pods, "n1", cm, "other", "mine"));
        // Same name, other kind.
        assert!(!node_may_read(
            &pods,
            "n1",
            ObjectKind::Secret,
            "default",
            "mine"
        ));
        assert!(!node_may_read(&pods, "n3", cm, "default", "mine"));
    }
}
