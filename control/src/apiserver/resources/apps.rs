//! apps/v1: deployments, replicasets, daemonsets and statefulsets — upstream's defaults
//! (strategies, history limits, replicas, pod template), selector rules, and their Tables.

use serde_json::{Value, json};

use super::workloads::{
    CONTAINERS_COLUMN, IMAGES_COLUMN, SELECTOR_COLUMN, containers_and_images, int, object_at,
    selector_immutable, selector_string, set_default, template_defaults, validate_replicas,
    validate_selector, validate_template,
};
use super::{
    ResourceDef, SCALE_SUBRESOURCE, STATUS_SUBRESOURCE, Strategy, SubresourceDef, TableDef,
};
use crate::apiserver::error::FieldError;
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN, object_age, or_none};

const SUBRESOURCES: &[SubresourceDef] = &[SCALE_SUBRESOURCE, STATUS_SUBRESOURCE];

const APPS: ResourceDef = ResourceDef {
    group: "apps",
    version: "v1",
    categories: &["all"],
    tracks_generation: true,
    ..ResourceDef::BASE
};

/// A created object starts with an empty status (the controllers fill it in).
fn clear_status(obj: &mut Value) {
    obj["status"] = json!({});
}

/// A new object's status as Go serializes the zero value: the fields without `omitempty` are
/// there as 0 (clients such as the Python one reject a ReplicaSet status without `replicas`).
fn zero_replicas_status(obj: &mut Value) {
    obj["status"] = json!({"replicas": 0});
}

fn zero_daemonset_status(obj: &mut Value) {
    obj["status"] = json!({
        "currentNumberScheduled": 0,
        "desiredNumberScheduled": 0,
        "numberMisscheduled": 0,
        "numberReady": 0,
    });
}

/// Pods of the apps controllers restart for ever: `restartPolicy` is `Always`.
fn restart_always(spec: &Value, errs: &mut Vec<FieldError>) {
    if let Some(p) = spec["template"]["spec"]["restartPolicy"].as_str()
        && p != "Always"
    {
        errs.push(FieldError::not_supported(
            "spec.template.spec.restartPolicy",
            p,
            &["Always"],
        ));
    }
}

/// An int-or-percent that is zero (`0` or `"0%"`).
fn is_zero(v: &Value) -> bool {
    v.as_i64() == Some(0) || v.as_str().is_some_and(|s| s.trim_end_matches('%') == "0")
}

// ---- deployments

pub const DEPLOYMENTS: ResourceDef = ResourceDef {
    plural: "deployments",
    singular: "deployment",
    kind: "Deployment",
    short_names: &["deploy"],
    subresources: SUBRESOURCES,
    strategy: Strategy {
        defaults: deployment_defaults,
        prepare_create: clear_status,
        validate: deployment_validate,
        validate_update: selector_immutable,
        allocate: None,
    },
    table: TableDef {
        columns: DEPLOYMENT_COLUMNS,
        row: deployment_row,
    },
    ..APPS
};

fn deployment_defaults(d: &mut Value) {
    if let Some(spec) = object_at(d, &["spec"]) {
        set_default(spec, "replicas", json!(1));
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "progressDeadlineSeconds", json!(600));
        set_default(spec, "strategy", json!({}));
    }
    if let Some(strategy) = object_at(d, &["spec", "strategy"]) {
        set_default(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            set_default(strategy, "rollingUpdate", json!({}));
            if let Some(ru) = strategy["rollingUpdate"].as_object_mut() {
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
    }
    template_defaults(d, &["spec", "template"]);
}

fn deployment_validate(d: &Value) -> Vec<FieldError> {
    let spec = &d["spec"];
    let mut errs = Vec::new();
    validate_replicas(spec, &mut errs);
    validate_selector(spec, "deployment", &mut errs);
    validate_template(&spec["template"], "spec.template", &mut errs);
    restart_always(spec, &mut errs);
    if let Some(t) = spec["strategy"]["type"].as_str() {
        const OK: &[&str] = &["Recreate", "RollingUpdate"];
        if !OK.contains(&t) {
            errs.push(FieldError::not_supported("spec.strategy.type", t, OK));
        } else if t == "Recreate" && !spec["strategy"]["rollingUpdate"].is_null() {
            errs.push(FieldError::forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            ));
        }
    }
    errs
}

static DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Ready",
        "string",
        "",
        "Number of the pod with ready state",
        0,
    ),
    Column::new(
        "Up-to-date",
        "string",
        "",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
        0,
    ),
    Column::new(
        "Available",
        "string",
        "",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
        0,
    ),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    SELECTOR_COLUMN,
];

fn deployment_row(d: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (containers, images) = containers_and_images(&d["spec"]["template"]);
    let st = &d["status"];
    vec![
        d["metadata"]["name"].clone(),
        json!(format!(
            "{}/{}",
            st["readyReplicas"].as_i64().unwrap_or(0),
            d["spec"]["replicas"].as_i64().unwrap_or(0)
        )),
        int(&st["updatedReplicas"]),
        int(&st["availableReplicas"]),
        object_age(d, now),
        containers,
        images,
        json!(selector_string(&d["spec"]["selector"])),
    ]
}

// ---- replicasets

pub const REPLICASETS: ResourceDef = ResourceDef {
    plural: "replicasets",
    singular: "replicaset",
    kind: "ReplicaSet",
    short_names: &["rs"],
    subresources: SUBRESOURCES,
    strategy: Strategy {
        defaults: replicaset_defaults,
        prepare_create: zero_replicas_status,
        validate: replicaset_validate,
        validate_update: selector_immutable,
        allocate: None,
    },
    table: TableDef {
        columns: REPLICASET_COLUMNS,
        row: replicaset_row,
    },
    ..APPS
};

fn replicaset_defaults(rs: &mut Value) {
    if let Some(spec) = object_at(rs, &["spec"]) {
        set_default(spec, "replicas", json!(1));
    }
    template_defaults(rs, &["spec", "template"]);
}

fn replicaset_validate(rs: &Value) -> Vec<FieldError> {
    let spec = &rs["spec"];
    let mut errs = Vec::new();
    validate_replicas(spec, &mut errs);
    validate_selector(spec, "replicaset", &mut errs);
    if !spec["template"].is_null() {
        validate_template(&spec["template"], "spec.template", &mut errs);
    }
    errs
}

static REPLICASET_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Desired",
        "integer",
        "",
        "Replicas is the number of desired pods.",
        0,
    ),
    Column::new(
        "Current",
        "integer",
        "",
        "Replicas is the most recently observed number of replicas.",
        0,
    ),
    Column::new(
        "Ready",
        "integer",
        "",
        "The number of ready replicas for this replica set.",
        0,
    ),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    SELECTOR_COLUMN,
];

fn replicaset_row(rs: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (containers, images) = containers_and_images(&rs["spec"]["template"]);
    vec![
        rs["metadata"]["name"].clone(),
        int(&rs["spec"]["replicas"]),
        int(&rs["status"]["replicas"]),
        int(&rs["status"]["readyReplicas"]),
        object_age(rs, now),
        containers,
        images,
        json!(selector_string(&rs["spec"]["selector"])),
    ]
}

// ---- daemonsets

pub const DAEMONSETS: ResourceDef = ResourceDef {
    plural: "daemonsets",
    singular: "daemonset",
    kind: "DaemonSet",
    short_names: &["ds"],
    subresources: &[STATUS_SUBRESOURCE],
    strategy: Strategy {
        defaults: daemonset_defaults,
        prepare_create: zero_daemonset_status,
        validate: daemonset_validate,
        validate_update: selector_immutable,
        allocate: None,
    },
    table: TableDef {
        columns: DAEMONSET_COLUMNS,
        row: daemonset_row,
    },
    ..APPS
};

fn daemonset_defaults(ds: &mut Value) {
    if let Some(spec) = object_at(ds, &["spec"]) {
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "updateStrategy", json!({}));
    }
    if let Some(us) = object_at(ds, &["spec", "updateStrategy"]) {
        set_default(us, "type", json!("RollingUpdate"));
        if us["type"] == "RollingUpdate" {
            set_default(us, "rollingUpdate", json!({}));
            if let Some(ru) = us["rollingUpdate"].as_object_mut() {
                set_default(ru, "maxUnavailable", json!(1));
                set_default(ru, "maxSurge", json!(0));
            }
        }
    }
    template_defaults(ds, &["spec", "template"]);
}

fn daemonset_validate(ds: &Value) -> Vec<FieldError> {
    let spec = &ds["spec"];
    let mut errs = Vec::new();
    validate_selector(spec, "daemonset", &mut errs);
    validate_template(&spec["template"], "spec.template", &mut errs);
    restart_always(spec, &mut errs);
    if let Some(t) = spec["updateStrategy"]["type"].as_str() {
        const OK: &[&str] = &["OnDelete", "RollingUpdate"];
        if !OK.contains(&t) {
            errs.push(FieldError::not_supported("spec.updateStrategy.type", t, OK));
        }
    }
    let ru = &spec["updateStrategy"]["rollingUpdate"];
    let (unavailable, surge) = (&ru["maxUnavailable"], &ru["maxSurge"]);
    if spec["updateStrategy"]["type"] == "RollingUpdate"
        && is_zero(unavailable)
        && (surge.is_null() || is_zero(surge))
    {
        errs.push(FieldError::invalid_raw(
            "spec.updateStrategy.rollingUpdate.maxUnavailable",
            unavailable,
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    errs
}

static DAEMONSET_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Desired",
        "integer",
        "",
        "The total number of nodes that should be running the daemon pod.",
        0,
    ),
    Column::new(
        "Current",
        "integer",
        "",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
        0,
    ),
    Column::new(
        "Ready",
        "integer",
        "",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
        0,
    ),
    Column::new(
        "Up-to-date",
        "integer",
        "",
        "The total number of nodes that are running updated daemon pod",
        0,
    ),
    Column::new(
        "Available",
        "integer",
        "",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
        0,
    ),
    Column::new(
        "Node Selector",
        "string",
        "",
        "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node.",
        0,
    ),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
    SELECTOR_COLUMN,
];

fn daemonset_row(ds: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (containers, images) = containers_and_images(&ds["spec"]["template"]);
    let st = &ds["status"];
    let mut node_sel: Vec<String> = ds["spec"]["template"]["spec"]["nodeSelector"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    node_sel.sort();
    vec![
        ds["metadata"]["name"].clone(),
        int(&st["desiredNumberScheduled"]),
        int(&st["currentNumberScheduled"]),
        int(&st["numberReady"]),
        int(&st["updatedNumberScheduled"]),
        int(&st["numberAvailable"]),
        or_none(&node_sel.join(",")),
        object_age(ds, now),
        containers,
        images,
        json!(selector_string(&ds["spec"]["selector"])),
    ]
}

// ---- statefulsets

pub const STATEFULSETS: ResourceDef = ResourceDef {
    plural: "statefulsets",
    singular: "statefulset",
    kind: "StatefulSet",
    short_names: &["sts"],
    subresources: SUBRESOURCES,
    strategy: Strategy {
        defaults: statefulset_defaults,
        prepare_create: zero_replicas_status,
        validate: statefulset_validate,
        validate_update: statefulset_update,
        allocate: None,
    },
    table: TableDef {
        columns: STATEFULSET_COLUMNS,
        row: statefulset_row,
    },
    ..APPS
};

fn statefulset_defaults(sts: &mut Value) {
    if let Some(spec) = object_at(sts, &["spec"]) {
        set_default(spec, "replicas", json!(1));
        set_default(spec, "revisionHistoryLimit", json!(10));
        set_default(spec, "podManagementPolicy", json!("OrderedReady"));
        set_default(
            spec,
            "persistentVolumeClaimRetentionPolicy",
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
        );
        set_default(spec, "updateStrategy", json!({}));
    }
    if let Some(us) = object_at(sts, &["spec", "updateStrategy"]) {
        set_default(us, "type", json!("RollingUpdate"));
        if us["type"] == "RollingUpdate" {
            set_default(us, "rollingUpdate", json!({"partition": 0}));
        }
    }
    template_defaults(sts, &["spec", "template"]);
}

fn statefulset_validate(sts: &Value) -> Vec<FieldError> {
    let spec = &sts["spec"];
    let mut errs = Vec::new();
    validate_replicas(spec, &mut errs);
    validate_selector(spec, "statefulset", &mut errs);
    validate_template(&spec["template"], "spec.template", &mut errs);
    restart_always(spec, &mut errs);
    if let Some(p) = spec["podManagementPolicy"].as_str() {
        const OK: &[&str] = &["OrderedReady", "Parallel"];
        if !OK.contains(&p) {
            errs.push(FieldError::not_supported("spec.podManagementPolicy", p, OK));
        }
    }
    let us = &spec["updateStrategy"];
    match us["type"].as_str() {
        Some("RollingUpdate") | None => {}
        Some("OnDelete") => {
            if !us["rollingUpdate"].is_null() {
                errs.push(FieldError::invalid_raw(
                    "spec.updateStrategy.rollingUpdate",
                    &us["rollingUpdate"],
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        Some(t) => errs.push(FieldError::not_supported(
            "spec.updateStrategy.type",
            t,
            &["OnDelete", "RollingUpdate"],
        )),
    }
    if let Some(n) = us["rollingUpdate"]["partition"].as_i64()
        && n < 0
    {
        errs.push(FieldError::invalid_raw(
            "spec.updateStrategy.rollingUpdate.partition",
            n,
            "must be greater than or equal to 0",
        ));
    }
    errs
}

/// Only some of a StatefulSet's spec may change (upstream's ValidateStatefulSetUpdate).
fn statefulset_update(new: &Value, old: &Value) -> Vec<FieldError> {
    const MUTABLE: &[&str] = &[
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ];
    let rest = |v: &Value| {
        let mut spec = v["spec"].as_object().cloned().unwrap_or_default();
        spec.retain(|k, _| !MUTABLE.contains(&k.as_str()));
        spec
    };
    if rest(new) != rest(old) {
        return vec![FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', \
             'template', 'updateStrategy', 'revisionHistoryLimit', \
             'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        )];
    }
    Vec::new()
}

static STATEFULSET_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Ready",
        "string",
        "",
        "Number of the pod with ready state",
        0,
    ),
    AGE_COLUMN,
    CONTAINERS_COLUMN,
    IMAGES_COLUMN,
];

fn statefulset_row(sts: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (containers, images) = containers_and_images(&sts["spec"]["template"]);
    vec![
        sts["metadata"]["name"].clone(),
        json!(format!(
            "{}/{}",
            sts["status"]["readyReplicas"].as_i64().unwrap_or(0),
            sts["spec"]["replicas"].as_i64().unwrap_or(0)
        )),
        object_age(sts, now),
        containers,
        images,
    ]
}

#[cfg(test)]
#[path = "apps_tests.rs"]
mod tests;
