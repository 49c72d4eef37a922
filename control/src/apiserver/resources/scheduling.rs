//! scheduling.k8s.io/v1 PriorityClasses: the kind, the built-in `system-cluster-critical` and
//! `system-node-critical` classes, and the Priority admission step that resolves a pod's
//! `spec.priority` (and `preemptionPolicy`) from its `priorityClassName` or the global default.

use serde_json::{Value, json};

use super::{ResourceDef, Strategy, TableDef};
use crate::apiserver::error::{ApiError, FieldError, Subject};
use crate::apiserver::registry::{ListParams, Registry, WriteParams};
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN, object_age};

pub const PRIORITYCLASSES: ResourceDef = ResourceDef {
    group: "scheduling.k8s.io",
    plural: "priorityclasses",
    singular: "priorityclass",
    kind: "PriorityClass",
    namespaced: false,
    short_names: &["pc"],
    strategy: Strategy {
        defaults,
        validate,
        validate_update,
        allocate: Some(one_global_default),
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: COLUMNS,
        row,
    },
    ..ResourceDef::BASE
};

/// The largest value a user-defined class may have (larger ones are reserved for the system).
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i64 = 1_000_000_000;
/// `system-cluster-critical`'s value.
pub const SYSTEM_CLUSTER_CRITICAL: i64 = 2 * HIGHEST_USER_DEFINABLE_PRIORITY;
/// `system-node-critical`'s value.
pub const SYSTEM_NODE_CRITICAL: i64 = SYSTEM_CLUSTER_CRITICAL + 1000;

const PREEMPTION_POLICIES: &[&str] = &["PreemptLowerPriority", "Never"];

/// The classes every cluster has: `(name, value, description)`.
pub const SYSTEM_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        SYSTEM_NODE_CRITICAL,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        SYSTEM_CLUSTER_CRITICAL,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

fn defaults(pc: &mut Value) {
    if pc["preemptionPolicy"].as_str().is_none_or(str::is_empty) {
        pc["preemptionPolicy"] = json!("PreemptLowerPriority");
    }
}

fn validate(pc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let name = pc["metadata"]["name"].as_str().unwrap_or_default();
    let builtin = SYSTEM_CLASSES.iter().find(|(n, _, _)| *n == name);
    match pc["value"].as_i64() {
        None => errs.push(FieldError::required("value")),
        Some(v) if i32::try_from(v).is_err() => errs.push(FieldError::invalid_raw(
            "value",
            v,
            "must be a 32-bit integer",
        )),
        Some(v) => match builtin {
            Some((_, want, _)) if v != *want => errs.push(FieldError::invalid_raw(
                "value",
                v,
                format!("value of {name} must be {want}"),
            )),
            None if name.starts_with("system-") => errs.push(FieldError::forbidden(
                "metadata.name",
                "priority class names with 'system-' prefix are reserved for system use only",
            )),
            None if v > HIGHEST_USER_DEFINABLE_PRIORITY => errs.push(FieldError::forbidden(
                "value",
                format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"
                ),
            )),
            _ => {}
        },
    }
    if let Some(p) = pc["preemptionPolicy"].as_str()
        && !PREEMPTION_POLICIES.contains(&p)
    {
        errs.push(FieldError::not_supported(
            "preemptionPolicy",
            p,
            PREEMPTION_POLICIES,
        ));
    }
    errs
}

fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for f in ["value", "preemptionPolicy"] {
        if new[f] != old[f] {
            errs.push(FieldError::forbidden(f, "may not be changed in an update."));
        }
    }
    errs
}

/// Only one class may be the global default (checked against every other stored class).
fn one_global_default(
    pc: &mut Value,
    _old: Option<&Value>,
    others: &[Value],
    _net: &super::ServiceNetwork,
) -> Vec<FieldError> {
    if pc["globalDefault"] != true {
        return Vec::new();
    }
    match others.iter().find(|o| o["globalDefault"] == true) {
        Some(o) => vec![FieldError::forbidden(
            "globalDefault",
            format!(
                "PriorityClass {} is already marked as default. Only one default can exist",
                o["metadata"]["name"].as_str().unwrap_or_default()
            ),
        )],
        None => Vec::new(),
    }
}

static COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Value",
        "integer",
        "",
        "value represents the integer value of this priority class.",
        0,
    ),
    Column::new(
        "Global-Default",
        "boolean",
        "",
        "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class.",
        0,
    ),
    AGE_COLUMN,
    Column::new(
        "PreemptionPolicy",
        "string",
        "",
        "preemptionPolicy is the Policy for preempting pods with lower priority.",
        0,
    ),
];

fn row(pc: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        pc["metadata"]["name"].clone(),
        json!(pc["value"].as_i64().unwrap_or(0)),
        json!(pc["globalDefault"].as_bool().unwrap_or(false)),
        object_age(pc, now),
        json!(pc["preemptionPolicy"].as_str().unwrap_or_default()),
    ]
}

/// Creates the built-in classes that are missing (as the API server's start-up hook does).
pub async fn ensure_system_classes(registry: &Registry) -> Result<(), ApiError> {
    for (name, value, description) in SYSTEM_CLASSES {
        if registry
            .get_json(&PRIORITYCLASSES, None, name)
            .await
            .is_ok()
        {
            continue;
        }
        let pc = json!({"metadata": {"name": name}, "value": value, "description": description});
        match registry
            .create_json(&PRIORITYCLASSES, None, pc, WriteParams::default())
            .await
        {
            Ok(_) => tracing::info!(class = name, "created system priority class"),
            Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn forbidden(pod: &Value, why: String) -> ApiError {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    ApiError::Forbidden {
        message: format!("pods \"{name}\" is forbidden: {why}"),
        subject: Subject {
            group: String::new(),
            kind: "pods".into(),
            name: name.into(),
        },
    }
}

/// The Priority admission plugin on pod create: resolves `spec.priority` and
/// `spec.preemptionPolicy` from `spec.priorityClassName` (or the global default class, whose
/// name the pod then carries). A missing class, or a priority / policy in the spec that differs
/// from the class's, is 403 Forbidden as upstream.
pub async fn admit_pod_priority(registry: &Registry, pod: &mut Value) -> Result<(), ApiError> {
    let class_name = pod["spec"]["priorityClassName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let class = if class_name.is_empty() {
        let all = registry
            .list_json(&PRIORITYCLASSES, None, &ListParams::default())
            .await?;
        all.items
            .into_iter()
            .filter(|pc| pc["globalDefault"] == true)
            .min_by_key(|pc| pc["value"].as_i64().unwrap_or(0))
    } else {
        match registry.get_json(&PRIORITYCLASSES, None, &class_name).await {
            Ok(pc) => Some(pc),
            Err(ApiError::NotFound { .. }) => {
                return Err(forbidden(
                    pod,
                    format!("no PriorityClass with name {class_name} was found"),
                ));
            }
            Err(e) => return Err(e),
        }
    };
    let (name, priority, policy) = match &class {
        Some(pc) => (
            pc["metadata"]["name"].as_str().unwrap_or_default(),
            pc["value"].as_i64().unwrap_or(0),
            pc["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority"),
        ),
        None => ("", 0, "PreemptLowerPriority"),
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != priority
    {
        return Err(forbidden(
            pod,
            format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            ),
        ));
    }
    if let Some(given) = spec
        .get("preemptionPolicy")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        && class.is_some()
        && given != policy
    {
        let given = given.to_string();
        return Err(forbidden(
            pod,
            format!(
                "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
            ),
        ));
    }
    if !name.is_empty() {
        spec.insert("priorityClassName".into(), json!(name));
    }
    spec.insert("priority".into(), json!(priority));
    spec.insert("preemptionPolicy".into(), json!(policy));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::registry::memstore::MemStore;

    mod testutil {
        use super::*;
        pub async fn registry() -> Registry {
            Registry::new(std::sync::Arc::new(MemStore::new()))
                .await
                .unwrap()
        }
    }

    fn pod(extra: Value) -> Value {
        let mut p = json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        for (k, v) in extra.as_object().unwrap() {
            p["spec"][k] = v.clone();
        }
        p
    }

    #[tokio::test]
    async fn system_classes_exist_and_resolve() {
        let r = testutil::registry().await;
        let pc = r
            .get_json(&PRIORITYCLASSES, None, "system-node-critical")
            .await
            .unwrap();
        assert_eq!(pc["value"], SYSTEM_NODE_CRITICAL);
        assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
        let mut p = pod(json!({"priorityClassName": "system-cluster-critical"}));
        admit_pod_priority(&r, &mut p).await.unwrap();
        assert_eq!(p["spec"]["priority"], SYSTEM_CLUSTER_CRITICAL);
        // Without a class and without a default: 0.
        let mut p = pod(json!({}));
        admit_pod_priority(&r, &mut p).await.unwrap();
        assert_eq!(p["spec"]["priority"], 0);
        assert!(p["spec"]["priorityClassName"].is_null());
    }

    #[tokio::test]
    async fn unknown_class_and_wrong_priority_are_forbidden() {
        let r = testutil::registry().await;
        let mut p = pod(json!({"priorityClassName": "nope"}));
        let err = admit_pod_priority(&r, &mut p).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "pods \"p\" is forbidden: no PriorityClass with name nope was found"
        );
        let mut p = pod(json!({"priorityClassName": "system-node-critical", "priority": 5}));
        let err = admit_pod_priority(&r, &mut p).await.unwrap_err();
        assert!(
            err.to_string()
                .contains("the integer value of priority (5) must not be provided"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn kubectl_sees_classes_and_pods_get_their_priority() {
        use crate::apiserver::test_server::TestServer;
        let s = TestServer::start(33).await;
        let out = s.ok(&["get", "priorityclasses"]).await;
        let rows: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0],
            ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
        );
        assert!(
            rows.iter()
                .any(|r| r[..3] == ["system-node-critical", "2000001000", "false"]),
            "{out}"
        );
        s.ok(&["create", "priorityclass", "high", "--value=1000"])
            .await;
        let pod = s.file(
            "pod.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  priorityClassName: high\n  containers: [{name: c, image: busybox}]\n",
        );
        s.ok(&["apply", "-f", &pod]).await;
        let prio = s
            .ok(&["get", "pod", "p", "-o", "jsonpath={.spec.priority}"])
            .await;
        assert_eq!(prio.trim(), "1000");
        let bad = s.file(
            "bad.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec:\n  priorityClassName: nope\n  containers: [{name: c, image: busybox}]\n",
        );
        let err = s.fails(&["create", "-f", &bad]).await;
        assert!(
            err.contains("Error from server (Forbidden): error when creating \"")
                && err
                    .contains("pods \"q\" is forbidden: no PriorityClass with name nope was found"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn global_default_applies_and_is_unique() {
        let r = testutil::registry().await;
        let high = json!({"metadata": {"name": "high"}, "value": 1000, "globalDefault": true, "preemptionPolicy": "Never"});
        r.create_json(&PRIORITYCLASSES, None, high, WriteParams::default())
            .await
            .unwrap();
        let other = json!({"metadata": {"name": "other"}, "value": 5, "globalDefault": true});
        let err = r
            .create_json(&PRIORITYCLASSES, None, other, WriteParams::default())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("already marked as default"),
            "{err}"
        );
        let mut p = pod(json!({}));
        admit_pod_priority(&r, &mut p).await.unwrap();
        assert_eq!(p["spec"]["priority"], 1000);
        assert_eq!(p["spec"]["priorityClassName"], "high");
        assert_eq!(p["spec"]["preemptionPolicy"], "Never");
        // Reserved names and values.
        let bad = json!({"metadata": {"name": "system-mine"}, "value": 1});
        assert!(
            r.create_json(&PRIORITYCLASSES, None, bad, WriteParams::default())
                .await
                .is_err()
        );
        let bad = json!({"metadata": {"name": "huge"}, "value": 1_500_000_000});
        assert!(
            r.create_json(&PRIORITYCLASSES, None, bad, WriteParams::default())
                .await
                .is_err()
        );
    }
}
