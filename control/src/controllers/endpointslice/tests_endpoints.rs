//! The legacy Endpoints object and the `kubernetes` Service's endpoints, against the
//! registry over the in-memory store.

use k8s_openapi::api::core::v1::{Endpoints, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::endpoints::{ENDPOINTS_CONTROLLER, ENDPOINTS_MANAGED_BY, OVER_CAPACITY};
use super::testutil::*;
use super::*;

fn ips(list: &Option<Vec<k8s_openapi::api::core::v1::EndpointAddress>>) -> Vec<String> {
    list.iter().flatten().map(|a| a.ip.clone()).collect()
}

#[tokio::test]
async fn endpoints_hold_ready_and_not_ready_addresses_with_ports() {
    let ctx = ctx(vec![]).await;
    let r = &ctx.registry;
    web_service(r, "web", "web", json!("http")).await;
    ready_pod(r, "a", "web", "10.42.0.10").await;
    ready_pod(r, "b", "web", "10.42.0.9").await;
    pod_with_ports(
        r,
        "c",
        "web",
        json!([{"name": "http", "containerPort": 8080}]),
    )
    .await;
    run_pod(r, "c", "n2", "10.42.0.3", false).await;
    // Terminating pods leave the Endpoints object (they stay in the slices).
    ready_pod(r, "d", "web", "10.42.0.4").await;
    r.delete::<Pod>(Some("default"), "d", &Default::default())
        .await
        .unwrap();
    sync(&ctx, "web").await;

    let ep = endpoints(r, "web").await.unwrap();
    let labels = ep.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[ENDPOINTS_MANAGED_BY], ENDPOINTS_CONTROLLER);
    assert_eq!(labels["team"], "a");
    let subsets = ep.subsets.unwrap();
    assert_eq!(subsets.len(), 1);
    let s = &subsets[0];
    assert_eq!(ips(&s.addresses), ["10.42.0.9", "10.42.0.10"]);
    assert_eq!(ips(&s.not_ready_addresses), ["10.42.0.3"]);
    let c = &s.not_ready_addresses.as_ref().unwrap()[0];
    assert_eq!(c.node_name.as_deref(), Some("n2"));
    let target = c.target_ref.as_ref().unwrap();
    assert_eq!(
        (target.kind.as_deref(), target.name.as_deref()),
        (Some("Pod"), Some("c"))
    );
    let port = &s.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("http"), 8080, Some("TCP"))
    );
    assert_eq!(all_endpoints(r, "web").await.len(), 4);

    // c becomes ready: it moves to addresses; a pass without change writes nothing.
    set_status(r, "c", "10.42.0.3", true).await;
    sync(&ctx, "web").await;
    let ep = endpoints(r, "web").await.unwrap();
    let s = &ep.subsets.as_ref().unwrap()[0];
    assert_eq!(ips(&s.addresses), ["10.42.0.3", "10.42.0.9", "10.42.0.10"]);
    assert!(s.not_ready_addresses.is_none());
    sync(&ctx, "web").await;
    assert_eq!(
        endpoints(r, "web").await.unwrap().metadata.resource_version,
        ep.metadata.resource_version
    );
}

#[tokio::test]
async fn endpoints_are_capped_with_the_over_capacity_annotation() {
    let mut ctx = ctx(vec![]).await;
    ctx.max_addresses = 3;
    let r = ctx.registry.clone();
    web_service(&r, "web", "web", json!(8080)).await;
    for i in 0..3 {
        ready_pod(&r, &format!("r{i}"), "web", &format!("10.42.0.{}", 10 + i)).await;
    }
    pod_with_ports(&r, "u", "web", json!([])).await;
    run_pod(&r, "u", "n1", "10.42.0.2", false).await;
    sync(&ctx, "web").await;
    let ep = endpoints(&r, "web").await.unwrap();
    assert_eq!(
        ep.metadata.annotations.as_ref().unwrap()[OVER_CAPACITY],
        "truncated"
    );
    let s = &ep.subsets.unwrap()[0];
    // Ready addresses are kept first.
    assert_eq!(
        ips(&s.addresses),
        ["10.42.0.10", "10.42.0.11", "10.42.0.12"]
    );
    assert!(s.not_ready_addresses.is_none());

    r.delete::<Pod>(
        Some("default"),
        "r0",
        &crate::apiserver::registry::DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    sync(&ctx, "web").await;
    let ep = endpoints(&r, "web").await.unwrap();
    assert!(
        ep.metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(OVER_CAPACITY))
    );
    assert_eq!(
        ips(&ep.subsets.unwrap()[0].not_ready_addresses),
        ["10.42.0.2"]
    );
}

#[tokio::test]
async fn endpoints_of_a_service_without_selector_are_left_alone() {
    let ctx = ctx(vec![]).await;
    let r = &ctx.registry;
    service(r, "manual", json!({"ports": [{"port": 80}]})).await;
    let mine: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "manual", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "192.168.1.5"}], "ports": [{"port": 80}]}],
    }))
    .unwrap();
    let mine = r.create(&mine).await.unwrap();
    sync(&ctx, "manual").await;
    assert_eq!(endpoints(r, "manual").await.unwrap(), mine);
}

#[tokio::test]
async fn the_kubernetes_service_gets_the_api_server_address() {
    let ctx = ctx(vec![]).await;
    let r = &ctx.registry;
    let ip: std::net::IpAddr = "10.99.0.1".parse().unwrap();
    apiserver::publish(r, ip, 6443).await.unwrap();
    // Reconciling the selector-less kubernetes service does not disturb them.
    sync(&ctx, "kubernetes").await;
    let ep = endpoints(r, "kubernetes").await.unwrap();
    let s = &ep.subsets.as_ref().unwrap()[0];
    assert_eq!(ips(&s.addresses), ["10.99.0.1"]);
    assert_eq!(s.ports.as_ref().unwrap()[0].port, 6443);
    let slice = r
        .get::<EndpointSlice>(Some("default"), "kubernetes")
        .await
        .unwrap();
    assert_eq!(slice.endpoints[0].addresses, ["10.99.0.1"]);
    assert_eq!(
        slice.metadata.labels.as_ref().unwrap()[SERVICE_NAME],
        "kubernetes"
    );
    assert_eq!(slice.ports.as_ref().unwrap()[0].port, Some(6443));

    // Unchanged: no write. Moved: rewritten in place.
    apiserver::publish(r, ip, 6443).await.unwrap();
    let again = endpoints(r, "kubernetes").await.unwrap();
    assert_eq!(
        again.metadata.resource_version,
        ep.metadata.resource_version
    );
    apiserver::publish(r, "10.99.0.2".parse().unwrap(), 6443)
        .await
        .unwrap();
    let moved = endpoints(r, "kubernetes").await.unwrap();
    assert_eq!(ips(&moved.subsets.unwrap()[0].addresses), ["10.99.0.2"]);
    assert_eq!(apiserver::advertised("0.0.0.0:6443".parse().unwrap()), None);
    assert!(apiserver::advertised("127.0.0.1:6443".parse().unwrap()).is_some());
}
