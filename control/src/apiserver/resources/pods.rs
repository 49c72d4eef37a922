//! Pods: Kubernetes' defaulting (and the defaults admission plugins add), validation, update
//! restrictions, QoS class, and the `kubectl get pods` columns with kubectl's STATUS logic.

use serde_json::{Map, Value, json};

use super::{ResourceDef, Strategy, SubresourceDef, TableDef};
use crate::apiserver::error::FieldError;
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN, age, object_age, or_none};
use crate::apiserver::validation::{NameRule, dns1123_label};

pub const PODS: ResourceDef = ResourceDef {
    group: "",
    version: "v1",
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    namespaced: true,
    short_names: &["po"],
    categories: &["all"],
    subresources: &[
        SubresourceDef {
            name: "attach",
            kind: "PodAttachOptions",
            verbs: &["create", "get"],
            api: None,
        },
        SubresourceDef {
            name: "binding",
            kind: "Binding",
            verbs: &["create"],
            api: Some(("", "v1")),
        },
        SubresourceDef {
            name: "exec",
            kind: "PodExecOptions",
            verbs: &["create", "get"],
            api: None,
        },
        SubresourceDef {
            name: "log",
            kind: "Pod",
            verbs: &["get"],
            api: None,
        },
        SubresourceDef {
            name: "portforward",
            kind: "PodPortForwardOptions",
            verbs: &["create", "get"],
            api: None,
        },
        SubresourceDef {
            name: "status",
            kind: "Pod",
            verbs: &["get", "patch", "update"],
            api: None,
        },
    ],
    name_rule: NameRule::Dns1123Subdomain,
    field_selectors: &[
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ],
    tracks_generation: true,
    strategy: Strategy {
        defaults,
        prepare_create,
        validate,
        validate_update,
        allocate: None,
    },
    table: TableDef {
        columns: COLUMNS,
        row,
    },
    storage: "",
};

/// Sets `key` when it is absent, null or an empty string: Go's zero value, which is what a
/// protobuf body carries for a string field the client left unset.
pub(super) fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    if obj.get(key).is_none_or(|v| v.is_null() || v == "") {
        obj.insert(key.to_string(), value);
    }
}

/// `Always` for `:latest` or an untagged image, else `IfNotPresent` (digests count as tags).
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    let Some(c) = c.as_object_mut() else { return };
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    set_default(c, "imagePullPolicy", json!(default_pull_policy(&image)));
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
        }
    }
    // A limit without a request defaults the request to the limit.
    if let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut)
        && let Some(limits) = res.get("limits").and_then(Value::as_object).cloned()
    {
        let req = res.entry("requests").or_insert_with(|| json!({}));
        if let Some(req) = req.as_object_mut() {
            for (k, v) in limits {
                req.entry(k).or_insert(v);
            }
        }
    }
}

/// The defaults of a pod spec that pod templates (in deployments, jobs, ...) get too.
pub fn spec_defaults(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            cs.iter_mut().for_each(default_container);
        }
    }
}

/// Defaulting of every write.
pub fn defaults(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec_defaults(spec);
    set_default(spec, "serviceAccountName", json!("default"));
    if let Some(sa) = spec.get("serviceAccountName").cloned() {
        set_default(spec, "serviceAccount", sa);
    }
    set_default(spec, "enableServiceLinks", json!(true));
    set_default(spec, "priority", json!(0));
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    // What the DefaultTolerationSeconds admission plugin adds.
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(ts) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let present = ts
                .iter()
                .any(|t| t["key"] == key && (t["effect"] == "NoExecute" || t["effect"].is_null()));
            if !present {
                ts.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
}

/// The pod's QoS class from its containers' requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let spec = &pod["spec"];
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|l| spec[*l].as_array())
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c["resources"]["requests"].as_object();
        let lim = c["resources"]["limits"].as_object();
        let has = |m: Option<&Map<String, Value>>, k: &str| m.is_some_and(|m| m.contains_key(k));
        for r in ["cpu", "memory"] {
            if has(req, r) || has(lim, r) {
                any = true;
            }
            let l = lim.and_then(|m| m.get(r));
            let q = req.and_then(|m| m.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn prepare_create(pod: &mut Value) {
    let qos = qos_class(pod);
    pod["status"] = json!({"phase": "Pending", "qosClass": qos});
    // A pod created with spec.nodeName set is already scheduled.
    if pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
    {
        pod["status"]["conditions"] = json!([{
            "type": "PodScheduled", "status": "True", "lastProbeTime": null,
            "lastTransitionTime": pod["metadata"]["creationTimestamp"].clone(),
        }]);
    }
}

const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

fn validate_containers(
    spec: &Value,
    list: &str,
    names: &mut Vec<String>,
    errs: &mut Vec<FieldError>,
) {
    let Some(cs) = spec[list].as_array() else {
        return;
    };
    for (i, c) in cs.iter().enumerate() {
        let path = format!("spec.{list}[{i}]");
        match c["name"].as_str() {
            None | Some("") => errs.push(FieldError::required(format!("{path}.name"))),
            Some(name) => {
                for e in dns1123_label(name) {
                    errs.push(FieldError::invalid(format!("{path}.name"), name, e));
                }
                if names.iter().any(|n| n == name) {
                    errs.push(FieldError::duplicate(format!("{path}.name"), name));
                }
                names.push(name.to_string());
            }
        }
        if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
            errs.push(FieldError::required(format!("{path}.image")));
        }
        if let Some(p) = c["imagePullPolicy"].as_str()
            && !PULL_POLICIES.contains(&p)
        {
            errs.push(FieldError::not_supported(
                format!("{path}.imagePullPolicy"),
                p,
                PULL_POLICIES,
            ));
        }
        if let Some(ports) = c["ports"].as_array() {
            for (j, p) in ports.iter().enumerate() {
                let pp = format!("{path}.ports[{j}]");
                match p["containerPort"].as_i64() {
                    None => errs.push(FieldError::required(format!("{pp}.containerPort"))),
                    Some(n) if !(1..=65535).contains(&n) => errs.push(FieldError::invalid_raw(
                        format!("{pp}.containerPort"),
                        n,
                        "must be between 1 and 65535, inclusive",
                    )),
                    Some(_) => {}
                }
                if let Some(proto) = p["protocol"].as_str()
                    && !PROTOCOLS.contains(&proto)
                {
                    errs.push(FieldError::not_supported(
                        format!("{pp}.protocol"),
                        proto,
                        PROTOCOLS,
                    ));
                }
            }
        }
    }
}

/// Validation of a pod's spec.
pub fn validate(pod: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &pod["spec"];
    if spec["containers"].as_array().is_none_or(Vec::is_empty) {
        errs.push(FieldError::required("spec.containers"));
    }
    let mut names = Vec::new();
    validate_containers(spec, "initContainers", &mut names, &mut errs);
    validate_containers(spec, "containers", &mut names, &mut errs);
    if let Some(p) = spec["restartPolicy"].as_str() {
        const OK: &[&str] = &["Always", "OnFailure", "Never"];
        if !OK.contains(&p) {
            errs.push(FieldError::not_supported("spec.restartPolicy", p, OK));
        }
    }
    if let Some(p) = spec["dnsPolicy"].as_str() {
        const OK: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
        if !OK.contains(&p) {
            errs.push(FieldError::not_supported("spec.dnsPolicy", p, OK));
        }
    }
    if let Some(n) = spec["terminationGracePeriodSeconds"].as_i64()
        && n < 0
    {
        errs.push(FieldError::invalid_raw(
            "spec.terminationGracePeriodSeconds",
            n,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(n) = spec["activeDeadlineSeconds"].as_i64()
        && n <= 0
    {
        errs.push(FieldError::invalid_raw(
            "spec.activeDeadlineSeconds",
            n,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    errs
}

/// Spec with the fields a pod update may change blanked out.
fn mutable_masked(spec: &Value) -> Value {
    let mut s = spec.clone();
    if let Some(m) = s.as_object_mut() {
        m.remove("activeDeadlineSeconds");
        m.remove("tolerations");
        m.remove("terminationGracePeriodSeconds");
        for list in ["initContainers", "containers"] {
            if let Some(cs) = m.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                    c.remove("image");
                }
            }
        }
    }
    s
}

/// Kubernetes only lets an update change images, activeDeadlineSeconds, tolerations (and the
/// grace period); `spec.nodeName` is set through the binding subresource.
pub fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    if mutable_masked(&new["spec"]) == mutable_masked(&old["spec"]) {
        return Vec::new();
    }
    vec![FieldError::forbidden(
        "spec",
        "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
    )]
}

static COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Ready",
        "string",
        "",
        "The aggregate readiness state of this pod for accepting traffic.",
        0,
    ),
    Column::new(
        "Status",
        "string",
        "",
        "The aggregate status of the containers in this pod.",
        0,
    ),
    Column::new(
        "Restarts",
        "string",
        "",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        0,
    ),
    AGE_COLUMN,
    Column::new(
        "IP",
        "string",
        "",
        "The IP address assigned to this pod.",
        1,
    ),
    Column::new(
        "Node",
        "string",
        "",
        "The name of the node this pod is scheduled on.",
        1,
    ),
    Column::new(
        "Nominated Node",
        "string",
        "",
        "The name of the node this pod is nominated to run on.",
        1,
    ),
    Column::new(
        "Readiness Gates",
        "string",
        "",
        "The readiness gates of this pod.",
        1,
    ),
];

fn condition_true(pod: &Value, kind: &str) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

/// READY, STATUS and RESTARTS (with the last restart time) as kubectl's printer computes them.
pub fn pod_status_summary(pod: &Value) -> (String, String, i64, Option<String>) {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let total = spec["containers"].as_array().map_or(0, Vec::len);
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut last_restart: Option<String> = None;
    let mut note_restart = |c: &Value| {
        if let Some(t) = c["lastState"]["terminated"]["finishedAt"].as_str()
            && last_restart.as_deref().is_none_or(|l| l < t)
        {
            last_restart = Some(t.to_string());
        }
    };
    let mut reason = status["phase"].as_str().unwrap_or_default().to_string();
    if let Some(r) = status["reason"].as_str().filter(|r| !r.is_empty()) {
        reason = r.to_string();
    }
    let init_total = spec["initContainers"].as_array().map_or(0, Vec::len);
    let mut initializing = false;
    if let Some(ics) = status["initContainerStatuses"].as_array() {
        for (i, c) in ics.iter().enumerate() {
            restarts += c["restartCount"].as_i64().unwrap_or(0);
            note_restart(c);
            let term = &c["state"]["terminated"];
            let wait = &c["state"]["waiting"];
            if term.is_object() && term["exitCode"].as_i64() == Some(0) {
                continue;
            }
            if term.is_object() {
                reason = match term["reason"].as_str().filter(|r| !r.is_empty()) {
                    Some(r) => format!("Init:{r}"),
                    None => match term["signal"].as_i64().filter(|s| *s != 0) {
                        Some(s) => format!("Init:Signal:{s}"),
                        None => format!("Init:ExitCode:{}", term["exitCode"].as_i64().unwrap_or(0)),
                    },
                };
            } else if let Some(r) = wait["reason"]
                .as_str()
                .filter(|r| !r.is_empty() && *r != "PodInitializing")
            {
                reason = format!("Init:{r}");
            } else {
                reason = format!("Init:{i}/{init_total}");
            }
            initializing = true;
            break;
        }
    }
    if !initializing || condition_true(pod, "Initialized") {
        restarts = 0;
        let mut has_running = false;
        if let Some(cs) = status["containerStatuses"].as_array() {
            for c in cs.iter().rev() {
                restarts += c["restartCount"].as_i64().unwrap_or(0);
                note_restart(c);
                let st = &c["state"];
                if let Some(r) = st["waiting"]["reason"].as_str().filter(|r| !r.is_empty()) {
                    reason = r.to_string();
                } else if let Some(r) = st["terminated"]["reason"]
                    .as_str()
                    .filter(|r| !r.is_empty())
                {
                    reason = r.to_string();
                } else if st["terminated"].is_object() {
                    reason = match st["terminated"]["signal"].as_i64().filter(|s| *s != 0) {
                        Some(s) => format!("Signal:{s}"),
                        None => format!(
                            "ExitCode:{}",
                            st["terminated"]["exitCode"].as_i64().unwrap_or(0)
                        ),
                    };
                } else if c["ready"] == true && st["running"].is_object() {
                    has_running = true;
                    ready += 1;
                }
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        reason = if status["reason"] == "NodeLost" {
            "Unknown".into()
        } else {
            "Terminating".into()
        };
    }
    (format!("{ready}/{total}"), reason, restarts, last_restart)
}

fn row(pod: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (ready, reason, restarts, last) = pod_status_summary(pod);
    let restarts = match last {
        Some(t) if restarts > 0 => format!("{restarts} ({} ago)", age(&json!(t), now)),
        _ => restarts.to_string(),
    };
    let gates = pod["spec"]["readinessGates"].as_array().map_or(0, Vec::len);
    let gates = if gates == 0 {
        "<none>".to_string()
    } else {
        let conds = pod["status"]["conditions"].as_array();
        let passing = pod["spec"]["readinessGates"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| {
                conds.is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == g["conditionType"] && c["status"] == "True")
                })
            })
            .count();
        format!("{passing}/{gates}")
    };
    vec![
        pod["metadata"]["name"].clone(),
        json!(ready),
        json!(reason),
        json!(restarts),
        object_age(pod, now),
        or_none(pod["status"]["podIP"].as_str().unwrap_or_default()),
        or_none(pod["spec"]["nodeName"].as_str().unwrap_or_default()),
        or_none(
            pod["status"]["nominatedNodeName"]
                .as_str()
                .unwrap_or_default(),
        ),
        json!(gates),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "x", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn defaults_like_kubernetes() {
        let mut p = pod(
            json!({"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}),
        );
        defaults(&mut p);
        prepare_create(&mut p);
        let s = &p["spec"];
        assert_eq!(s["restartPolicy"], "Always");
        assert_eq!(s["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["terminationGracePeriodSeconds"], 30);
        assert_eq!(s["schedulerName"], "default-scheduler");
        assert_eq!(s["serviceAccountName"], "default");
        assert_eq!(s["enableServiceLinks"], true);
        assert_eq!(s["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(s["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(
            s["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        assert_eq!(s["containers"][0]["terminationMessagePolicy"], "File");
        assert_eq!(s["containers"][1]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(p["status"]["phase"], "Pending");
        assert_eq!(p["status"]["qosClass"], "BestEffort");
        // Defaulting is idempotent (it runs on every write).
        let before = p.clone();
        defaults(&mut p);
        assert_eq!(p, before);
    }

    #[test]
    fn pull_policy_defaults() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/busybox"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/busybox:1.36"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn qos_classes() {
        let g = pod(
            json!({"containers": [{"name": "a", "image": "i", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}),
        );
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = pod(
            json!({"containers": [{"name": "a", "image": "i", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        assert_eq!(qos_class(&b), "Burstable");
        let e = pod(json!({"containers": [{"name": "a", "image": "i"}]}));
        assert_eq!(qos_class(&e), "BestEffort");
    }

    #[test]
    fn validation_errors_name_fields() {
        let p = pod(
            json!({"containers": [{"name": "a"}, {"name": "a", "image": "x", "ports": [{"containerPort": 0}]}], "restartPolicy": "Sometimes"}),
        );
        let errs: Vec<String> = validate(&p).iter().map(ToString::to_string).collect();
        assert!(
            errs.contains(&"spec.containers[0].image: Required value".to_string()),
            "{errs:?}"
        );
        assert!(
            errs.contains(&"spec.containers[1].name: Duplicate value: \"a\"".to_string()),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e
                    .starts_with("spec.containers[1].ports[0].containerPort: Invalid value: 0")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.restartPolicy: Unsupported value: \"Sometimes\"")),
            "{errs:?}"
        );
        assert_eq!(
            validate(&pod(json!({})))[0].to_string(),
            "spec.containers: Required value"
        );
        assert!(validate(&pod(json!({"containers": [{"name": "a", "image": "b"}]}))).is_empty());
    }

    #[test]
    fn updates_may_only_change_images() {
        let old = pod(json!({"containers": [{"name": "a", "image": "x:1"}]}));
        let new = pod(json!({"containers": [{"name": "a", "image": "x:2"}]}));
        assert!(validate_update(&new, &old).is_empty());
        let bad = pod(json!({"containers": [{"name": "b", "image": "x:1"}]}));
        assert_eq!(validate_update(&bad, &old)[0].field, "spec");
    }

    #[test]
    fn status_column_like_kubectl() {
        let mut p =
            pod(json!({"containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}));
        p["status"] = json!({"phase": "Pending"});
        assert_eq!(pod_status_summary(&p).1, "Pending");
        p["status"]["containerStatuses"] = json!([
            {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
            {"name": "b", "ready": false, "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:00:00Z"}}}
        ]);
        let (ready, reason, restarts, last) = pod_status_summary(&p);
        assert_eq!(
            (ready.as_str(), reason.as_str(), restarts),
            ("1/2", "CrashLoopBackOff", 3)
        );
        assert_eq!(last.as_deref(), Some("2024-01-01T00:00:00Z"));
        p["status"]["containerStatuses"] = json!([
            {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "b", "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ]);
        assert_eq!(pod_status_summary(&p).1, "Completed");
        p["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "ErrImagePull"}});
        assert_eq!(pod_status_summary(&p).1, "ErrImagePull");
        p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert_eq!(pod_status_summary(&p).1, "Terminating");
        let mut init = pod(
            json!({"initContainers": [{"name": "i", "image": "i"}], "containers": [{"name": "a", "image": "i"}]}),
        );
        init["status"] = json!({"phase": "Pending", "initContainerStatuses": [{"name": "i", "restartCount": 0, "state": {"running": {}}}]});
        assert_eq!(pod_status_summary(&init).1, "Init:0/1");
    }

    #[test]
    fn row_cells() {
        let mut p = pod(json!({"containers": [{"name": "a", "image": "i"}], "nodeName": "n1"}));
        p["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
        p["status"] = json!({"phase": "Running", "podIP": "10.42.0.5"});
        let now: jiff::Timestamp = "2024-01-01T00:00:05Z".parse().unwrap();
        let cells = row(&p, now);
        assert_eq!(
            cells,
            vec![
                json!("x"),
                json!("0/1"),
                json!("Running"),
                json!("0"),
                json!("5s"),
                json!("10.42.0.5"),
                json!("n1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }
}
