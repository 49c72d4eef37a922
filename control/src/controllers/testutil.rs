//! Test helpers: a registry over the in-memory store and pods made ready by hand (standing in
//! for the scheduler and the agent).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use crate::apiserver::registry::memstore::MemStore;
use crate::apiserver::registry::{ListParams, PatchType, Registry};

pub async fn registry() -> Registry {
    Registry::new(Arc::new(MemStore::new())).await.unwrap()
}

pub fn template(image: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": image}]}
    })
}

pub async fn create_rs(r: &Registry, name: &str, replicas: i32) -> ReplicaSet {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": template("busybox")}
    }))
    .unwrap();
    r.create(&rs).await.unwrap()
}

pub async fn create_deployment(
    r: &Registry,
    name: &str,
    replicas: i32,
    strategy: serde_json::Value,
) -> Deployment {
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": template("busybox"), "strategy": strategy}
    }))
    .unwrap();
    r.create(&d).await.unwrap()
}

pub async fn pods(r: &Registry) -> Vec<Pod> {
    r.list::<Pod>(Some("default"), &ListParams::default())
        .await
        .unwrap()
        .items
}

/// Binds `pod` to a node and marks it Running and Ready.
pub async fn make_ready(r: &Registry, pod: &Pod) {
    let name = pod.metadata.name.clone().unwrap();
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_none()
    {
        r.bind_pod("default", &name, "n1").await.unwrap();
    }
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}
    ]}});
    r.patch_status::<Pod>(Some("default"), &name, PatchType::Merge, &status)
        .await
        .unwrap();
}

/// Makes every pod ready.
pub async fn all_ready(r: &Registry) {
    for p in pods(r).await {
        if p.metadata.deletion_timestamp.is_none() {
            make_ready(r, &p).await;
        }
    }
}
