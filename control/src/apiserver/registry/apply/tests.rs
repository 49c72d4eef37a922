//! Unit tests of server-side apply and managedFields on upstream-like examples.

use serde_json::{Value, json};

use super::managed::{apply, read, record_update};
use crate::apiserver::registry::Subresource;
use crate::apiserver::resources::{ResourceDef, find};

fn deployments() -> &'static ResourceDef {
    find("apps", "v1", "deployments").unwrap()
}

fn deploy(replicas: i64, containers: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers},
            },
        },
    })
}

fn fields_of(obj: &Value, manager: &str) -> Value {
    read(obj)
        .into_iter()
        .find(|e| e.manager == manager)
        .map(|e| e.fields.to_fields_v1())
        .unwrap_or(Value::Null)
}

#[test]
fn apply_creates_with_upstream_fields_v1() {
    let d = deployments();
    let config = deploy(
        2,
        json!([{"name": "c", "image": "busybox:1", "ports": [{"containerPort": 80}]}]),
    );
    let obj = apply(d, None, &config, "kubectl", false, Subresource::Main).unwrap();
    let e = &obj["metadata"]["managedFields"][0];
    assert_eq!(e["manager"], "kubectl");
    assert_eq!(e["operation"], "Apply");
    assert_eq!(e["apiVersion"], "apps/v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e["time"].is_string());
    assert_eq!(
        e["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}
                        }},
                    }}},
                },
            },
        })
    );
}

#[test]
fn containers_merge_by_name_and_dropped_ones_go() {
    let d = deployments();
    let two = deploy(
        1,
        json!([{"name": "a", "image": "busybox:1"}, {"name": "b", "image": "busybox:1"}]),
    );
    let live = apply(d, None, &two, "kubectl", false, Subresource::Main).unwrap();
    // Another manager sets an env var on container a.
    let mut edited = live.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["env"] =
        json!([{"name": "X", "value": "1"}]);
    record_update(
        d,
        Some(&live),
        &mut edited,
        "kubectl-edit",
        (Subresource::Main, ""),
    );
    assert_eq!(
        fields_of(&edited, "kubectl-edit"),
        json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {
            "f:env": {"k:{\"name\":\"X\"}": {".": {}, "f:name": {}, "f:value": {}}}
        }}}}}})
    );
    // Re-applying without b and with a new image for a: b is removed, a's env stays.
    let one = deploy(1, json!([{"name": "a", "image": "busybox:2"}]));
    let after = apply(d, Some(&edited), &one, "kubectl", false, Subresource::Main).unwrap();
    let cs = &after["spec"]["template"]["spec"]["containers"];
    assert_eq!(cs.as_array().unwrap().len(), 1, "{cs}");
    assert_eq!(cs[0]["image"], "busybox:2");
    assert_eq!(cs[0]["env"], json!([{"name": "X", "value": "1"}]));
}

#[test]
fn conflicts_name_the_manager_and_force_takes_over() {
    let d = deployments();
    let config = deploy(3, json!([{"name": "a", "image": "busybox:1"}]));
    let live = apply(d, None, &config, "kubectl", false, Subresource::Main).unwrap();
    let mut scaled = live.clone();
    scaled["spec"]["replicas"] = json!(5);
    record_update(
        d,
        Some(&live),
        &mut scaled,
        "kubectl-scale",
        (Subresource::Main, "scale"),
    );
    assert_eq!(
        fields_of(&scaled, "kubectl-scale"),
        json!({"f:spec": {"f:replicas": {}}})
    );
    // The applier lost the field.
    assert_eq!(
        fields_of(&scaled, "kubectl")["f:spec"].get("f:replicas"),
        None
    );
    // Same value as live: no conflict, shared ownership.
    let same = deploy(5, json!([{"name": "a", "image": "busybox:1"}]));
    apply(d, Some(&scaled), &same, "kubectl", false, Subresource::Main).unwrap();
    let err = apply(
        d,
        Some(&scaled),
        &config,
        "kubectl",
        false,
        Subresource::Main,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
    let status = err.status();
    assert_eq!(
        (status.code, status.reason.as_deref()),
        (Some(409), Some("Conflict"))
    );
    let cause = &status.details.unwrap().causes.unwrap()[0];
    assert_eq!(cause.reason.as_deref(), Some("FieldManagerConflict"));
    assert_eq!(cause.field.as_deref(), Some(".spec.replicas"));
    assert_eq!(
        cause.message.as_deref(),
        Some("conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1")
    );
    let forced = apply(
        d,
        Some(&scaled),
        &config,
        "kubectl",
        true,
        Subresource::Main,
    )
    .unwrap();
    assert_eq!(forced["spec"]["replicas"], 3);
    assert_eq!(fields_of(&forced, "kubectl-scale"), Value::Null);
    // Applying without replicas leaves the scaled value alone (kubectl-scale owns it).
    let no_replicas = {
        let mut c = config.clone();
        c["spec"].as_object_mut().unwrap().remove("replicas");
        c
    };
    let kept = apply(
        d,
        Some(&scaled),
        &no_replicas,
        "kubectl",
        false,
        Subresource::Main,
    )
    .unwrap();
    assert_eq!(kept["spec"]["replicas"], 5);
}

#[test]
fn set_lists_like_finalizers() {
    let d = deployments();
    let mut config = deploy(1, json!([{"name": "a", "image": "x"}]));
    config["metadata"]["finalizers"] = json!(["example.com/a", "example.com/b"]);
    let live = apply(d, None, &config, "one", false, Subresource::Main).unwrap();
    assert_eq!(
        fields_of(&live, "one")["f:metadata"]["f:finalizers"],
        json!({"v:\"example.com/a\"": {}, "v:\"example.com/b\"": {}})
    );
    let mut other = deploy(1, json!([{"name": "a", "image": "x"}]));
    other["metadata"]["finalizers"] = json!(["example.com/c"]);
    let both = apply(d, Some(&live), &other, "two", false, Subresource::Main).unwrap();
    assert_eq!(
        both["metadata"]["finalizers"],
        json!(["example.com/a", "example.com/b", "example.com/c"])
    );
    config["metadata"]["finalizers"] = json!(["example.com/a"]);
    let fewer = apply(d, Some(&both), &config, "one", false, Subresource::Main).unwrap();
    assert_eq!(
        fewer["metadata"]["finalizers"],
        json!(["example.com/a", "example.com/c"])
    );
}

#[test]
fn updates_record_changed_fields_and_resets() {
    let d = deployments();
    let obj = deploy(1, json!([{"name": "a", "image": "x"}]));
    let mut created = obj.clone();
    record_update(
        d,
        None,
        &mut created,
        "kubectl-create",
        (Subresource::Main, ""),
    );
    let f = fields_of(&created, "kubectl-create");
    assert_eq!(f["f:metadata"]["f:labels"], json!({".": {}, "f:app": {}}));
    assert_eq!(f["f:spec"]["f:selector"], json!({}));
    assert_eq!(
        created["metadata"]["managedFields"][0]["operation"],
        "Update"
    );
    // A no-op update changes nothing, timestamps included.
    let mut same = created.clone();
    record_update(
        d,
        Some(&created),
        &mut same,
        "kubectl-edit",
        (Subresource::Main, ""),
    );
    assert_eq!(same, created);
    // Clients can't write entries, but can clear them.
    let mut forged = created.clone();
    forged["metadata"]["managedFields"] = json!([{"manager": "me", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]);
    record_update(d, Some(&created), &mut forged, "x", (Subresource::Main, ""));
    assert_eq!(forged, created);
    let mut reset = created.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    record_update(d, Some(&created), &mut reset, "x", (Subresource::Main, ""));
    assert!(reset["metadata"].get("managedFields").is_none());
    // Status writes are recorded with their subresource.
    let mut status = created.clone();
    status["status"] = json!({"replicas": 1});
    record_update(
        d,
        Some(&created),
        &mut status,
        "ctrl",
        (Subresource::Status, "status"),
    );
    let e = read(&status)
        .into_iter()
        .find(|e| e.manager == "ctrl")
        .unwrap();
    assert_eq!(e.subresource, "status");
    assert_eq!(
        e.fields.to_fields_v1(),
        json!({"f:status": {"f:replicas": {}}})
    );
}

#[test]
fn unknown_kinds_have_granular_maps_and_atomic_lists() {
    let widgets = ResourceDef {
        group: "example.com",
        version: "v1",
        plural: "widgets",
        kind: "Widget",
        ..*deployments()
    };
    let config = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"a": 1, "list": [1, 2]}});
    let obj = apply(&widgets, None, &config, "m", false, Subresource::Main).unwrap();
    assert_eq!(
        fields_of(&obj, "m"),
        json!({"f:spec": {"f:a": {}, "f:list": {}}})
    );
}
