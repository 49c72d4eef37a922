//! Test helpers for the endpoint controllers: services and pods in the in-memory registry,
//! pods given an IP and readiness by hand (standing in for the agent), and readers.

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use serde_json::{Value, json};

use super::{Ctx, MAX_ENDPOINTS_PER_SLICE, endpoints::MAX_ENDPOINTS_ADDRESSES, reconcile};
use crate::apiserver::registry::{ListParams, PatchType, Registry};
use crate::controllers::runtime::watcher::Event;
use crate::controllers::runtime::{ObjectKey, reflector};
use crate::controllers::testutil::registry;

/// A context over a fresh registry (pods listed from the API); `nodes` fill the node cache.
pub async fn ctx(nodes: Vec<Node>) -> Ctx {
    let (reader, mut writer) = reflector::store::<Node>();
    writer.apply(&Event::Restarted(nodes));
    Ctx {
        registry: registry().await,
        pods: None,
        nodes: reader,
        max_per_slice: MAX_ENDPOINTS_PER_SLICE,
        max_addresses: MAX_ENDPOINTS_ADDRESSES,
    }
}

pub async fn sync(ctx: &Ctx, svc: &str) {
    reconcile(ctx, &ObjectKey::new(Some("default"), svc))
        .await
        .unwrap();
}

/// Creates service `name` in `default` with `spec` (a JSON ServiceSpec).
pub async fn service(r: &Registry, name: &str, spec: Value) -> Service {
    let s: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"team": "a"}},
        "spec": spec,
    }))
    .unwrap();
    r.create(&s).await.unwrap()
}

/// A ClusterIP service selecting `app=<app>` on port 80 → `target`.
pub async fn web_service(r: &Registry, name: &str, app: &str, target: Value) -> Service {
    service(
        r,
        name,
        json!({"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": target}]}),
    )
    .await
}

/// Creates pod `name` labelled `app=<app>` whose container has `ports` (JSON ContainerPorts).
pub async fn pod_with_ports(r: &Registry, name: &str, app: &str, ports: Value) -> Pod {
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "ports": ports}]},
    }))
    .unwrap();
    r.create(&p).await.unwrap()
}

/// Binds the pod to `node` and gives it `ip` and the Ready condition `ready`.
pub async fn run_pod(r: &Registry, name: &str, node: &str, ip: &str, ready: bool) {
    r.bind_pod("default", name, node).await.unwrap();
    set_status(r, name, ip, ready).await;
}

pub async fn set_status(r: &Registry, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": "2024-01-01T00:00:00Z"}]}});
    r.patch_status::<Pod>(Some("default"), name, PatchType::Merge, &patch)
        .await
        .unwrap();
}

/// A running pod `name` with `app=<app>`, a container port named http on 8080, on node n1.
pub async fn ready_pod(r: &Registry, name: &str, app: &str, ip: &str) {
    pod_with_ports(
        r,
        name,
        app,
        json!([{"name": "http", "containerPort": 8080}]),
    )
    .await;
    run_pod(r, name, "n1", ip, true).await;
}

/// The controller's slices of `svc`, sorted by name.
pub async fn slices(r: &Registry, svc: &str) -> Vec<EndpointSlice> {
    let mut all = r
        .list::<EndpointSlice>(
            Some("default"),
            &ListParams {
                label_selector: Some(format!("kubernetes.io/service-name={svc}")),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    all.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    all
}

/// Every endpoint of `svc`'s slices, sorted by address.
pub async fn all_endpoints(r: &Registry, svc: &str) -> Vec<Endpoint> {
    let mut all: Vec<Endpoint> = slices(r, svc)
        .await
        .into_iter()
        .flat_map(|s| s.endpoints)
        .collect();
    all.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    all
}

/// `(address, ready, serving, terminating)` of `svc`'s endpoints.
pub async fn conditions(r: &Registry, svc: &str) -> Vec<(String, bool, bool, bool)> {
    all_endpoints(r, svc)
        .await
        .into_iter()
        .map(|e| {
            let c = e.conditions.unwrap();
            (
                e.addresses[0].clone(),
                c.ready.unwrap(),
                c.serving.unwrap(),
                c.terminating.unwrap(),
            )
        })
        .collect()
}

pub async fn endpoints(r: &Registry, name: &str) -> Option<Endpoints> {
    r.get::<Endpoints>(Some("default"), name).await.ok()
}

/// The names of `slices`.
pub fn names(slices: &[EndpointSlice]) -> Vec<String> {
    slices
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect()
}
