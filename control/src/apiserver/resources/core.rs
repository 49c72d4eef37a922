//! The small kinds: namespaces, nodes, events (core/v1) and leases (coordination.k8s.io/v1),
//! with their defaults and `kubectl get` columns.

use serde_json::{Value, json};

use super::{ResourceDef, Strategy, SubresourceDef, TableDef};
use crate::apiserver::error::FieldError;
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN, age, object_age, or_none};
use crate::apiserver::validation::NameRule;

const STATUS_SUB: SubresourceDef = super::STATUS_SUBRESOURCE;

// ---- namespaces

pub const NAMESPACES: ResourceDef = ResourceDef {
    group: "",
    version: "v1",
    plural: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    namespaced: false,
    short_names: &["ns"],
    categories: &[],
    subresources: &[SubresourceDef {
        kind: "Namespace",
        ..STATUS_SUB
    }],
    name_rule: NameRule::Dns1123Label,
    field_selectors: &["status.phase"],
    tracks_generation: false,
    strategy: Strategy {
        defaults: namespace_defaults,
        prepare_create: namespace_create,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: NAMESPACE_COLUMNS,
        row: namespace_row,
    },
    storage: "",
};

fn namespace_defaults(ns: &mut Value) {
    // Kubernetes labels every namespace with its own name.
    if let Some(name) = ns["metadata"]["name"].as_str().map(str::to_string) {
        if !ns["metadata"]["labels"].is_object() {
            ns["metadata"]["labels"] = json!({});
        }
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    }
}

fn namespace_create(ns: &mut Value) {
    if ns["spec"]["finalizers"].is_null() {
        ns["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    ns["status"] = json!({"phase": "Active"});
}

static NAMESPACE_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new("Status", "string", "", "The status of the namespace", 0),
    AGE_COLUMN,
];

fn namespace_row(ns: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        ns["metadata"]["name"].clone(),
        json!(ns["status"]["phase"].as_str().unwrap_or_default()),
        object_age(ns, now),
    ]
}

// ---- nodes

pub const NODES: ResourceDef = ResourceDef {
    group: "",
    version: "v1",
    plural: "nodes",
    singular: "node",
    kind: "Node",
    namespaced: false,
    short_names: &["no"],
    categories: &[],
    subresources: &[SubresourceDef {
        kind: "Node",
        ..STATUS_SUB
    }],
    name_rule: NameRule::Dns1123Subdomain,
    field_selectors: &["spec.unschedulable"],
    tracks_generation: false,
    strategy: Strategy::PLAIN,
    table: TableDef {
        columns: NODE_COLUMNS,
        row: node_row,
    },
    storage: "",
};

static NODE_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new("Status", "string", "", "The status of the node", 0),
    Column::new("Roles", "string", "", "The roles of the node", 0),
    AGE_COLUMN,
    Column::new(
        "Version",
        "string",
        "",
        "Kubelet Version reported by the node.",
        0,
    ),
    Column::new(
        "Internal-IP",
        "string",
        "",
        "List of addresses reachable to the node. Queried from cloud provider, if available.",
        1,
    ),
    Column::new(
        "External-IP",
        "string",
        "",
        "List of addresses reachable to the node. Queried from cloud provider, if available.",
        1,
    ),
    Column::new(
        "OS-Image",
        "string",
        "",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
        1,
    ),
    Column::new(
        "Kernel-Version",
        "string",
        "",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
        1,
    ),
    Column::new(
        "Container-Runtime",
        "string",
        "",
        "Container runtime version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
        1,
    ),
];

fn node_address(node: &Value, kind: &str) -> Value {
    let addr = node["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == kind))
        .and_then(|a| a["address"].as_str())
        .unwrap_or_default();
    or_none(addr)
}

fn unknown_if_empty(v: &Value) -> Value {
    match v.as_str() {
        Some(s) if !s.is_empty() => json!(s),
        _ => json!("<unknown>"),
    }
}

/// `Ready`, `NotReady` or `Unknown`, plus `,SchedulingDisabled` when cordoned.
pub fn node_status(node: &Value) -> String {
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let mut s = match ready {
        Some(c) if c["status"] == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node["spec"]["unschedulable"] == true {
        s.push_str(",SchedulingDisabled");
    }
    s
}

/// Roles from `node-role.kubernetes.io/<role>` and `kubernetes.io/role` labels.
pub fn node_roles(node: &Value) -> String {
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = node["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                if !r.is_empty() {
                    roles.push(r.to_string());
                }
            } else if k == "kubernetes.io/role"
                && let Some(v) = v.as_str().filter(|v| !v.is_empty())
            {
                roles.push(v.to_string());
            }
        }
    }
    roles.sort();
    roles.dedup();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

fn node_row(node: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let info = &node["status"]["nodeInfo"];
    vec![
        node["metadata"]["name"].clone(),
        json!(node_status(node)),
        json!(node_roles(node)),
        object_age(node, now),
        json!(info["kubeletVersion"].as_str().unwrap_or_default()),
        node_address(node, "InternalIP"),
        node_address(node, "ExternalIP"),
        unknown_if_empty(&info["osImage"]),
        unknown_if_empty(&info["kernelVersion"]),
        unknown_if_empty(&info["containerRuntimeVersion"]),
    ]
}

// ---- events

pub const EVENTS: ResourceDef = ResourceDef {
    group: "",
    version: "v1",
    plural: "events",
    singular: "event",
    kind: "Event",
    namespaced: true,
    short_names: &["ev"],
    categories: &[],
    subresources: &[],
    name_rule: NameRule::Dns1123Subdomain,
    field_selectors: &[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ],
    tracks_generation: false,
    strategy: Strategy {
        validate: event_validate,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: EVENT_COLUMNS,
        row: event_row,
    },
    storage: "",
};

pub(super) fn event_validate(ev: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if ev["involvedObject"].is_null() {
        errs.push(FieldError::required("involvedObject"));
    }
    if let Some(t) = ev["type"].as_str()
        && !t.is_empty()
        && t != "Normal"
        && t != "Warning"
    {
        errs.push(FieldError::not_supported("type", t, &["Normal", "Warning"]));
    }
    errs
}

pub(super) static EVENT_COLUMNS: &[Column] = &[
    Column::new(
        "Last Seen",
        "string",
        "",
        "Time when last event occurred",
        0,
    ),
    Column::new(
        "Type",
        "string",
        "",
        "Type of this event (Normal, Warning), new types could be added in the future.",
        0,
    ),
    Column::new(
        "Reason",
        "string",
        "",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
        0,
    ),
    Column::new(
        "Object",
        "string",
        "",
        "The object that this event is about.",
        0,
    ),
    Column::new(
        "Subobject",
        "string",
        "",
        "The subobject that this event is about.",
        1,
    ),
    Column::new(
        "Source",
        "string",
        "",
        "The component reporting this event. Should be a short machine understandable string.",
        1,
    ),
    Column::new(
        "Message",
        "string",
        "",
        "A human-readable description of the status of this operation.",
        0,
    ),
    Column::new(
        "First Seen",
        "string",
        "",
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
        1,
    ),
    Column::new(
        "Count",
        "string",
        "",
        "The number of times this event has occurred.",
        1,
    ),
    Column::new("Name", "string", "name", "Name of the event.", 1),
];

pub(super) fn event_row(ev: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let first = [
        &ev["firstTimestamp"],
        &ev["eventTime"],
        &ev["metadata"]["creationTimestamp"],
    ]
    .into_iter()
    .find(|t| t.is_string())
    .cloned()
    .unwrap_or(Value::Null);
    let last = [
        &ev["lastTimestamp"],
        &ev["series"]["lastObservedTime"],
        &ev["eventTime"],
        &first,
    ]
    .into_iter()
    .find(|t| t.is_string())
    .cloned()
    .unwrap_or(Value::Null);
    let obj = &ev["involvedObject"];
    let object = format!(
        "{}/{}",
        obj["kind"].as_str().unwrap_or_default().to_lowercase(),
        obj["name"].as_str().unwrap_or_default()
    );
    let source = ev["source"]["component"]
        .as_str()
        .or(ev["reportingComponent"].as_str())
        .unwrap_or_default();
    let source = match ev["source"]["host"].as_str() {
        Some(h) if !h.is_empty() => format!("{source}, {h}"),
        _ => source.to_string(),
    };
    vec![
        json!(age(&last, now)),
        json!(ev["type"].as_str().unwrap_or_default()),
        json!(ev["reason"].as_str().unwrap_or_default()),
        json!(object),
        json!(obj["fieldPath"].as_str().unwrap_or_default()),
        json!(source),
        json!(ev["message"].as_str().unwrap_or_default().trim()),
        json!(age(&first, now)),
        json!(ev["count"].as_i64().unwrap_or(1).to_string()),
        ev["metadata"]["name"].clone(),
    ]
}

// ---- leases

pub const LEASES: ResourceDef = ResourceDef {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    singular: "lease",
    kind: "Lease",
    namespaced: true,
    short_names: &[],
    categories: &[],
    subresources: &[],
    name_rule: NameRule::Dns1123Subdomain,
    field_selectors: &[],
    tracks_generation: false,
    strategy: Strategy::PLAIN,
    table: TableDef {
        columns: LEASE_COLUMNS,
        row: lease_row,
    },
    storage: "",
};

static LEASE_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new("Holder", "string", "", "The holder of the lease", 0),
    AGE_COLUMN,
];

fn lease_row(lease: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        lease["metadata"]["name"].clone(),
        or_none(lease["spec"]["holderIdentity"].as_str().unwrap_or_default()),
        object_age(lease, now),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_columns() {
        let node = json!({
            "metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": ""}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0-skiff", "osImage": "Debian", "kernelVersion": "6.18", "containerRuntimeVersion": ""}
            }
        });
        let cells = node_row(&node, jiff::Timestamp::now());
        assert_eq!(cells[1], "Ready,SchedulingDisabled");
        assert_eq!(cells[2], "control-plane,worker");
        assert_eq!(cells[4], "v1.33.0-skiff");
        assert_eq!(cells[5], "10.0.0.1");
        assert_eq!(cells[6], "<none>");
        assert_eq!(cells[9], "<unknown>");
        let bare = json!({"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
        assert_eq!(node_status(&bare), "NotReady");
        assert_eq!(node_roles(&bare), "<none>");
    }

    #[test]
    fn event_columns() {
        let now: jiff::Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
        let ev = json!({
            "metadata": {"name": "x.1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "involvedObject": {"kind": "Pod", "name": "x"},
            "type": "Normal", "reason": "Scheduled", "message": "Successfully assigned default/x to n1",
            "lastTimestamp": "2024-01-01T00:00:30Z", "count": 2, "source": {"component": "default-scheduler"}
        });
        let cells = event_row(&ev, now);
        assert_eq!(cells[0], "30s");
        assert_eq!(cells[3], "pod/x");
        assert_eq!(cells[5], "default-scheduler");
        assert_eq!(cells[7], "60s");
        assert_eq!(cells[8], "2");
        assert!(event_validate(&json!({"type": "Bad"})).len() == 2);
    }

    #[test]
    fn namespace_defaults_and_row() {
        let mut ns = json!({"metadata": {"name": "team-a"}});
        namespace_defaults(&mut ns);
        namespace_create(&mut ns);
        assert_eq!(
            ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "team-a"
        );
        assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(namespace_row(&ns, jiff::Timestamp::now())[1], "Active");
    }
}
