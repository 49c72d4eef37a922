//! Unit tests: messages built with the k8s-pb prost types, wrapped as kubectl wraps them,
//! decoded back to the JSON the JSON path would carry; malformed bodies.

use std::collections::BTreeMap;

use k8s_pb::api::coordination::v1 as coordv1;
use k8s_pb::api::core::v1 as corev1;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as metav1;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::json;

use super::{ProtobufError, decode};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::RESOURCES;

/// The body kubectl sends: magic + `runtime.Unknown{typeMeta, raw}`.
fn body(api_version: &str, kind: &str, msg: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(msg.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn meta(name: &str) -> Option<metav1::ObjectMeta> {
    Some(metav1::ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    })
}

fn s(v: &str) -> Option<String> {
    Some(v.into())
}

#[test]
fn namespace_as_kubectl_create_sends_it() {
    let ns = corev1::Namespace {
        metadata: Some(metav1::ObjectMeta {
            name: s("team-a"),
            labels: BTreeMap::from([("team".into(), "a".into())]),
            creation_timestamp: Some(metav1::Time::default()),
            ..Default::default()
        }),
        spec: Some(corev1::NamespaceSpec::default()),
        status: Some(corev1::NamespaceStatus::default()),
    };
    let v = decode(&body("v1", "Namespace", &ns)).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "labels": {"team": "a"}, "creationTimestamp": null},
            "spec": {},
            "status": {},
        })
    );
}

#[test]
fn pod_with_special_types_and_inline_fields() {
    let port = |i: Option<i32>, s: Option<&str>| IntOrString {
        r#type: Some(if s.is_some() { 1 } else { 0 }),
        int_val: i,
        str_val: s.map(str::to_string),
    };
    let pod = corev1::Pod {
        metadata: Some(metav1::ObjectMeta {
            name: s("web"),
            namespace: s("default"),
            creation_timestamp: Some(metav1::Time {
                seconds: Some(1_700_000_000),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
        spec: Some(corev1::PodSpec {
            termination_grace_period_seconds: Some(30),
            host_network: Some(false),
            containers: vec![corev1::Container {
                name: s("web"),
                image: s("nginx"),
                ports: vec![corev1::ContainerPort {
                    container_port: Some(80),
                    ..Default::default()
                }],
                resources: Some(corev1::ResourceRequirements {
                    requests: BTreeMap::from([("cpu".into(), Quantity { string: s("100m") })]),
                    ..Default::default()
                }),
                liveness_probe: Some(corev1::Probe {
                    handler: Some(corev1::ProbeHandler {
                        http_get: Some(corev1::HttpGetAction {
                            path: s("/healthz"),
                            port: Some(port(Some(8080), None)),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    period_seconds: Some(5),
                    ..Default::default()
                }),
                readiness_probe: Some(corev1::Probe {
                    handler: Some(corev1::ProbeHandler {
                        tcp_socket: Some(corev1::TcpSocketAction {
                            port: Some(port(None, Some("http"))),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            volumes: vec![corev1::Volume {
                name: s("cfg"),
                volume_source: Some(corev1::VolumeSource {
                    config_map: Some(corev1::ConfigMapVolumeSource {
                        local_object_reference: Some(corev1::LocalObjectReference {
                            name: s("app-config"),
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            ..Default::default()
        }),
        status: Some(corev1::PodStatus {
            pod_ip: s("10.42.0.5"),
            host_ips: vec![corev1::HostIp { ip: s("192.0.2.1") }],
            ..Default::default()
        }),
    };
    let v = decode(&body("v1", "Pod", &pod)).unwrap();
    assert_eq!(v["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
    let c = &v["spec"]["containers"][0];
    assert_eq!(c["resources"]["requests"]["cpu"], "100m");
    assert_eq!(c["ports"], json!([{"containerPort": 80}]));
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5})
    );
    assert_eq!(c["readinessProbe"], json!({"tcpSocket": {"port": "http"}}));
    assert_eq!(
        v["spec"]["volumes"],
        json!([{"name": "cfg", "configMap": {"name": "app-config"}}])
    );
    assert_eq!(v["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(v["spec"]["hostNetwork"], false);
    assert_eq!(v["status"]["podIP"], "10.42.0.5");
    assert_eq!(v["status"]["hostIPs"], json!([{"ip": "192.0.2.1"}]));
    // The result is what k8s-openapi reads from the JSON path.
    let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(v).unwrap();
    assert_eq!(typed.status.unwrap().pod_ip.as_deref(), Some("10.42.0.5"));
}

#[test]
fn lease_micro_time_and_secret_bytes() {
    let lease = coordv1::Lease {
        metadata: meta("node-1"),
        spec: Some(coordv1::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(40),
            renew_time: Some(metav1::MicroTime {
                seconds: Some(1_700_000_000),
                nanos: Some(123_456_789),
            }),
            ..Default::default()
        }),
    };
    let v = decode(&body("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
    assert_eq!(
        v["spec"],
        json!({"holderIdentity": "node-1", "leaseDurationSeconds": 40,
               "renewTime": "2023-11-14T22:13:20.123456Z"})
    );
    assert_eq!(v["apiVersion"], "coordination.k8s.io/v1");

    let secret = corev1::Secret {
        metadata: meta("s"),
        data: BTreeMap::from([("k".into(), b"hi\0".to_vec())]),
        r#type: s("Opaque"),
        ..Default::default()
    };
    let v = decode(&body("v1", "Secret", &secret)).unwrap();
    assert_eq!(v["data"], json!({"k": "aGkA"}));
    assert_eq!(v["type"], "Opaque");
}

#[test]
fn raw_extension_carries_embedded_json() {
    let list = corev1::List {
        metadata: None,
        items: vec![RawExtension {
            raw: Some(br#"{"kind":"ConfigMap","apiVersion":"v1"}"#.to_vec()),
        }],
    };
    let v = decode(&body("v1", "List", &list)).unwrap();
    assert_eq!(
        v["items"],
        json!([{"kind": "ConfigMap", "apiVersion": "v1"}])
    );
}

#[test]
fn every_served_kind_has_a_message() {
    for def in RESOURCES {
        let gv = def.group_version();
        assert!(
            super::message_for(&gv, def.kind).is_some(),
            "{gv} {} has no protobuf message",
            def.kind
        );
    }
}

/// Whether an error is the one a case expects.
type IsExpected = fn(&ProtobufError) -> bool;

#[test]
fn malformed_bodies_are_bad_requests() {
    let ns = corev1::Namespace {
        metadata: meta("x"),
        ..Default::default()
    };
    let good = body("v1", "Namespace", &ns);
    let cases: Vec<(Vec<u8>, IsExpected)> = vec![
        (br#"{"kind":"Namespace"}"#.to_vec(), |e| {
            matches!(e, ProtobufError::NoMagic)
        }),
        (good[..good.len() - 3].to_vec(), |e| {
            matches!(e, ProtobufError::Envelope(_))
        }),
        (
            body("v1", "Namespace", &Unknown::default())[..4].to_vec(),
            |e| matches!(e, ProtobufError::NoTypeMeta),
        ),
        (body("v1", "Widget", &ns), |e| {
            matches!(e, ProtobufError::UnknownKind { .. })
        }),
        (
            body(
                "v1",
                "Namespace",
                &RawExtension {
                    raw: Some(vec![0xff; 8]),
                },
            ),
            |e| matches!(e, ProtobufError::Message { .. }),
        ),
    ];
    for (bytes, want) in cases {
        let err = decode(&bytes).unwrap_err();
        assert!(want(&err), "{err:?}");
        assert_eq!(ApiError::from(err).code(), 400);
    }
    let unknown_kind = decode(&body("v1", "Widget", &ns)).unwrap_err();
    assert_eq!(
        unknown_kind.to_string(),
        r#"no kind "Widget" is registered for version "v1""#
    );
}

#[test]
fn decode_body_routes_protobuf_here() {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        "application/vnd.kubernetes.protobuf".parse().unwrap(),
    );
    let ns = corev1::Namespace {
        metadata: meta("x"),
        ..Default::default()
    };
    let v =
        crate::apiserver::http::request::decode_body(&h, &body("v1", "Namespace", &ns)).unwrap();
    assert_eq!(v["metadata"]["name"], "x");
    let err = crate::apiserver::http::request::decode_body(&h, b"k8s\0\x0a\xff").unwrap_err();
    assert_eq!(err.code(), 400);
}
