//! Unit tests of env resolution (`env.rs`): references, optional, envFrom, resource fields and
//! the kubelet's error messages.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

use super::*;
use crate::images::{Image, ImageConfig};
use crate::pods::objects::PodObjects;

pub(crate) fn objects() -> PodObjects {
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app-config", "namespace": "default"},
        "data": {"mode": "fast", "level": "3", "bad key": "x"},
        "binaryData": {"bin": "aGk="}
    }))
    .unwrap();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "creds", "namespace": "default"},
        "data": {"password": "czNjcjN0"}
    }))
    .unwrap();
    let mut o = PodObjects {
        namespace: "default".into(),
        ..Default::default()
    };
    o.config_maps.insert("app-config".into(), Some(cm));
    o.config_maps.insert("missing".into(), None);
    o.secrets.insert("creds".into(), Some(secret));
    o.secrets.insert("gone".into(), None);
    o
}

pub(crate) fn pod(containers: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1",
                     "labels": {"app": "web", "tier": "front"},
                     "annotations": {"note": "say \"hi\""}},
        "spec": {"containers": containers}
    }))
    .unwrap()
}

pub(crate) fn ctx<'a>(
    pod: &'a Pod,
    objects: &'a PodObjects,
    volumes: &'a HashMap<String, crate::pods::volumes::MountedVolume>,
) -> PodContext<'a> {
    PodContext {
        pod,
        node_name: "n1",
        pod_ip: Some("10.42.0.7"),
        host_ip: "192.0.2.1",
        netns_path: None,
        pod_cgroup: "/",
        etc_dir: std::path::Path::new("/nonexistent"),
        objects,
        volumes,
    }
}

fn image() -> Image {
    Image {
        name: "busybox".into(),
        digest: "sha256:x".into(),
        layers: Vec::new(),
        config: ImageConfig {
            env: vec!["PATH=/bin".into(), "LEVEL=image".into()],
            ..Default::default()
        },
        size: 0,
    }
}

fn env_of(container: serde_json::Value) -> Result<Vec<(String, String)>, ContainerConfigError> {
    let p = pod(serde_json::json!([container]));
    let objects = objects();
    let volumes = HashMap::new();
    let c: &Container = &p.spec.as_ref().unwrap().containers[0];
    environment(&ctx(&p, &objects, &volumes), c, &image())
}

fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.as_str())
}

#[test]
fn key_refs_and_env_from_resolve_with_env_winning() {
    let env = env_of(serde_json::json!({
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "app-config"}, "prefix": "CFG_"},
                    {"secretRef": {"name": "creds"}}],
        "env": [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "mode"}}},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "password", "value": "overridden"},
            {"name": "COMBINED", "value": "$(MODE)-$(PASS)"},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k", "optional": true}}},
            {"name": "OPTKEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": true}}}
        ]
    }))
    .unwrap();
    assert_eq!(get(&env, "MODE"), Some("fast"));
    assert_eq!(get(&env, "PASS"), Some("s3cr3t"));
    assert_eq!(get(&env, "CFG_level"), Some("3"));
    assert_eq!(get(&env, "CFG_bin"), Some("hi"));
    // Keys that are not valid variable names are skipped.
    assert_eq!(get(&env, "CFG_bad key"), None);
    assert_eq!(get(&env, "password"), Some("overridden"));
    assert_eq!(get(&env, "COMBINED"), Some("fast-s3cr3t"));
    assert_eq!(get(&env, "OPT"), None);
    assert_eq!(get(&env, "OPTKEY"), None);
    assert_eq!(get(&env, "LEVEL"), Some("image"));
}

#[test]
fn missing_references_fail_with_the_kubelets_messages() {
    let cases = [
        (
            serde_json::json!({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k"}}}),
            "configmap \"missing\" not found",
        ),
        (
            serde_json::json!({"name": "X", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "k"}}}),
            "couldn't find key k in ConfigMap default/app-config",
        ),
        (
            serde_json::json!({"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}),
            "secret \"gone\" not found",
        ),
        (
            serde_json::json!({"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}),
            "couldn't find key user in Secret default/creds",
        ),
    ];
    for (var, want) in cases {
        let err = env_of(serde_json::json!({"name": "c", "env": [var]})).unwrap_err();
        assert_eq!(err.to_string(), want);
    }
    let err = env_of(
        serde_json::json!({"name": "c", "envFrom": [{"configMapRef": {"name": "missing"}}]}),
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "configmap \"missing\" not found");
    let ok = env_of(
        serde_json::json!({"name": "c", "envFrom": [{"secretRef": {"name": "gone", "optional": true}}]}),
    );
    assert!(ok.is_ok());
}

#[test]
fn resource_fields_divide_and_round_up() {
    let env = env_of(serde_json::json!({
        "name": "c",
        "resources": {"limits": {"cpu": "1500m", "memory": "100Mi"}, "requests": {"cpu": "250m", "memory": "64Mi"}},
        "env": [
            {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "CPU_LIMIT_M", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}},
            {"name": "MEM_LIMIT_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "MEM_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.memory"}}}
        ]
    }))
    .unwrap();
    assert_eq!(get(&env, "CPU_LIMIT"), Some("2"));
    assert_eq!(get(&env, "CPU_LIMIT_M"), Some("1500"));
    assert_eq!(get(&env, "CPU_REQ"), Some("1"));
    assert_eq!(get(&env, "MEM_LIMIT_MI"), Some("100"));
    assert_eq!(
        get(&env, "MEM_REQ"),
        Some((64u64 << 20).to_string().as_str())
    );
    // No limit: the node's capacity.
    let env = env_of(serde_json::json!({"name": "c", "env": [
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}}
    ]}))
    .unwrap();
    let cpus = std::thread::available_parallelism().unwrap().get() * 1000;
    assert_eq!(get(&env, "CPU"), Some(cpus.to_string().as_str()));
    let err = env_of(serde_json::json!({"name": "c", "env": [
        {"name": "X", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}
    ]}))
    .unwrap_err();
    assert!(err.to_string().contains("limits.gpu"), "{err}");
}

#[test]
fn field_refs_and_label_format() {
    let env = env_of(serde_json::json!({"name": "c", "env": [
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    ]}))
    .unwrap();
    assert_eq!(get(&env, "NAME"), Some("web"));
    assert_eq!(get(&env, "APP"), Some("web"));
    assert_eq!(get(&env, "IP"), Some("10.42.0.7"));
    let p = pod(serde_json::json!([{"name": "c"}]));
    let (o, v) = (objects(), HashMap::new());
    let ctx = ctx(&p, &o, &v);
    assert_eq!(
        field_value(&ctx, "x", "metadata.labels").unwrap(),
        "app=\"web\"\ntier=\"front\""
    );
    assert_eq!(
        field_value(&ctx, "x", "metadata.annotations").unwrap(),
        "note=\"say \\\"hi\\\"\""
    );
}

#[test]
fn dollar_expansion_follows_kubernetes() {
    let env = vec![("A".to_string(), "x".to_string())];
    assert_eq!(expand("$(A)-$(B)-$$(A)", &env), "x-$(B)-$(A)");
    assert_eq!(expand("plain", &env), "plain");
    assert_eq!(expand("end$", &env), "end$");
}
