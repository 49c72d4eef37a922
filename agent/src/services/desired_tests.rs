//! Tests of the desired state: Services × EndpointSlices → map entries.

use std::net::SocketAddrV4;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;

use super::desired::*;
use crate::lb::{L4Proto, Vip};

fn service(name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec
    }))
    .unwrap()
}

fn web() -> Service {
    service(
        "web",
        json!({
            "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http"},
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}
            ]
        }),
    )
}

fn slice(name: &str, service: &str, endpoints: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default",
                     "labels": {SERVICE_NAME_LABEL: service}},
        "addressType": "IPv4",
        "ports": [
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "dns", "port": 5353, "protocol": "UDP"}
        ],
        "endpoints": endpoints
    }))
    .unwrap()
}

fn ep(ip: &str, ready: bool, serving: bool, terminating: bool) -> serde_json::Value {
    json!({"addresses": [ip], "conditions":
        {"ready": ready, "serving": serving, "terminating": terminating}})
}

fn vip(ip: [u8; 4], port: u16, proto: L4Proto) -> Vip {
    Vip::new(SocketAddrV4::new(ip.into(), port), proto)
}

fn backends(ips: &[[u8; 4]], port: u16) -> Vec<SocketAddrV4> {
    ips.iter()
        .map(|ip| SocketAddrV4::new((*ip).into(), port))
        .collect()
}

fn key(name: &str) -> NsName {
    NsName::new("default", name)
}

#[test]
fn named_target_ports_resolve_through_the_slice_and_only_ready_endpoints_count() {
    let mut d = Desired::default();
    d.upsert_service(web());
    let affected = d.upsert_slice(slice(
        "web-abc",
        "web",
        json!([
            ep("10.42.0.7", true, true, false),
            ep("10.42.0.5", true, true, false),
            ep("10.42.0.9", false, false, false),
            {"addresses": ["10.42.0.11"]}
        ]),
    ));
    assert_eq!(affected, [key("web")]);
    let e = d.entries(&key("web"));
    let ready = [[10, 42, 0, 5], [10, 42, 0, 7], [10, 42, 0, 11]];
    assert_eq!(
        e[&vip([10, 43, 0, 10], 80, L4Proto::Tcp)],
        backends(&ready, 8080)
    );
    assert_eq!(
        e[&vip([10, 43, 0, 10], 53, L4Proto::Udp)],
        backends(&ready, 5353)
    );
    assert_eq!(e.len(), 2);
}

#[test]
fn terminating_serving_endpoints_are_the_fallback_only() {
    let mut d = Desired::default();
    d.upsert_service(web());
    d.upsert_slice(slice(
        "a",
        "web",
        json!([
            ep("10.42.0.1", false, true, true),
            ep("10.42.0.2", false, false, true)
        ]),
    ));
    let http = vip([10, 43, 0, 10], 80, L4Proto::Tcp);
    assert_eq!(
        d.entries(&key("web"))[&http],
        backends(&[[10, 42, 0, 1]], 8080)
    );
    // A ready endpoint in another slice wins over the fallback.
    d.upsert_slice(slice(
        "b",
        "web",
        json!([ep("10.42.0.3", true, true, false)]),
    ));
    assert_eq!(
        d.entries(&key("web"))[&http],
        backends(&[[10, 42, 0, 3]], 8080)
    );
    // Nothing serving at all: the entry stays, with no backend (connects are refused).
    d.remove_slice(&key("b"));
    d.upsert_slice(slice(
        "a",
        "web",
        json!([ep("10.42.0.2", false, false, true)]),
    ));
    assert_eq!(d.entries(&key("web"))[&http], Vec::<SocketAddrV4>::new());
}

#[test]
fn headless_external_name_and_unknown_services_get_no_entries() {
    let mut d = Desired::default();
    d.upsert_service(service(
        "headless",
        json!({"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}),
    ));
    d.upsert_service(service(
        "ext",
        json!({"type": "ExternalName", "externalName": "example.org",
               "ports": [{"name": "http", "port": 80}]}),
    ));
    d.upsert_slice(slice(
        "h",
        "headless",
        json!([ep("10.42.0.1", true, true, false)]),
    ));
    assert!(d.entries(&key("headless")).is_empty());
    assert!(d.entries(&key("ext")).is_empty());
    // Slices for a service not (yet) known.
    d.upsert_slice(slice(
        "o",
        "orphan",
        json!([ep("10.42.0.1", true, true, false)]),
    ));
    assert!(d.entries(&key("orphan")).is_empty());
    assert!(d.service_names().contains(&key("orphan")));
}

#[test]
fn a_relabelled_slice_changes_both_services() {
    let mut d = Desired::default();
    d.upsert_service(web());
    let mut other = web();
    other.metadata.name = Some("other".into());
    other.spec.as_mut().unwrap().cluster_ips = Some(vec!["10.43.0.11".into()]);
    d.upsert_service(other);
    d.upsert_slice(slice(
        "s",
        "web",
        json!([ep("10.42.0.1", true, true, false)]),
    ));
    let affected = d.upsert_slice(slice(
        "s",
        "other",
        json!([ep("10.42.0.1", true, true, false)]),
    ));
    assert_eq!(affected, [key("web"), key("other")]);
    assert_eq!(
        d.entries(&key("web"))[&vip([10, 43, 0, 10], 80, L4Proto::Tcp)],
        Vec::<SocketAddrV4>::new()
    );
    assert_eq!(
        d.entries(&key("other"))[&vip([10, 43, 0, 11], 80, L4Proto::Tcp)],
        backends(&[[10, 42, 0, 1]], 8080)
    );
    assert_eq!(d.remove_slice(&key("s")), [key("other")]);
    assert_eq!(d.remove_service(&key("web")), key("web"));
    assert!(d.entries(&key("web")).is_empty());
}
