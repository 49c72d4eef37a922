//! core/v1 services: defaulting (type, ports, traffic policies), validation, the immutable
//! clusterIP, ClusterIP and NodePort allocation from the configured ranges, and the
//! `kubectl get svc` columns.
//!
//! Allocation runs in the registry's write path under its allocation lock (see
//! [`super::Strategy::allocate`]): the used addresses and ports are derived from the stored
//! services, so nothing leaks when a service goes away and two creates never collide.

use std::collections::HashSet;
use std::net::Ipv4Addr;

mod alloc;

pub use alloc::{ServiceNetwork, ServiceNetworkError, allocate};

use serde_json::{Value, json};

use super::workloads::{object_at, set_default};
use super::{ResourceDef, STATUS_SUBRESOURCE, Strategy, TableDef};
use crate::apiserver::error::FieldError;
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN, object_age};

pub const SERVICES: ResourceDef = ResourceDef {
    plural: "services",
    singular: "service",
    kind: "Service",
    short_names: &["svc"],
    categories: &["all"],
    subresources: &[STATUS_SUBRESOURCE],
    name_rule: crate::apiserver::validation::NameRule::Dns1123Label,
    strategy: Strategy {
        defaults,
        prepare_create: no_status,
        validate,
        validate_update,
        allocate: Some(allocate),
    },
    table: TableDef {
        columns: COLUMNS,
        row,
    },
    ..ResourceDef::BASE
};

fn no_status(svc: &mut Value) {
    svc["status"] = json!({"loadBalancer": {}});
}

pub(super) fn svc_type(svc: &Value) -> &str {
    svc["spec"]["type"].as_str().unwrap_or("ClusterIP")
}

pub(super) fn needs_node_ports(svc: &Value) -> bool {
    matches!(svc_type(svc), "NodePort" | "LoadBalancer")
}

fn defaults(svc: &mut Value) {
    let Some(spec) = object_at(svc, &["spec"]) else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec["type"].as_str().unwrap_or_default().to_string();
    if ty != "ExternalName" {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_default(spec, "ipFamilies", json!(["IPv4"]));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                set_default(p, "targetPort", port);
            }
        }
    }
    // A single clusterIP and clusterIPs agree, as upstream keeps them.
    let ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let first = spec
        .get("clusterIPs")
        .and_then(|ips| ips.get(0))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if ip.is_empty() && !first.is_empty() {
        spec.insert("clusterIP".into(), json!(first));
    } else if !ip.is_empty() && first.is_empty() {
        spec.insert("clusterIPs".into(), json!([ip]));
    }
}

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

fn validate(svc: &Value) -> Vec<FieldError> {
    let spec = &svc["spec"];
    let mut errs = Vec::new();
    let ty = svc_type(svc);
    if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported("spec.type", ty, TYPES));
    }
    let headless = spec["clusterIP"] == "None";
    let ports = spec["ports"].as_array().cloned().unwrap_or_default();
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports"));
    }
    if ty == "ExternalName" && spec["externalName"].as_str().is_none_or(str::is_empty) {
        errs.push(FieldError::required("spec.externalName"));
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let name = p["name"].as_str().unwrap_or_default();
        if ports.len() > 1 && name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name")));
        } else if !name.is_empty() && !names.insert(name) {
            errs.push(FieldError::duplicate(format!("{path}.name"), name));
        }
        match p["port"].as_i64() {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => errs.push(FieldError::invalid_raw(
                format!("{path}.port"),
                n,
                "must be between 1 and 65535, inclusive",
            )),
            None => errs.push(FieldError::required(format!("{path}.port"))),
        }
        if let Some(proto) = p["protocol"].as_str()
            && !PROTOCOLS.contains(&proto)
        {
            errs.push(FieldError::not_supported(
                format!("{path}.protocol"),
                proto,
                PROTOCOLS,
            ));
        }
        if let Some(n) = p["targetPort"].as_i64()
            && !(1..=65535).contains(&n)
        {
            errs.push(FieldError::invalid_raw(
                format!("{path}.targetPort"),
                n,
                "must be between 1 and 65535, inclusive",
            ));
        }
        if p["nodePort"].as_i64().is_some_and(|n| n != 0) && !needs_node_ports(svc) {
            errs.push(FieldError::forbidden(
                format!("{path}.nodePort"),
                format!("may not be used when `type` is '{ty}'"),
            ));
        }
    }
    if let Some(ip) = spec["clusterIP"].as_str()
        && !ip.is_empty()
        && ip != "None"
        && ip.parse::<Ipv4Addr>().is_err()
    {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            ip,
            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        ));
    }
    if headless && needs_node_ports(svc) {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            "None",
            format!("may not be set to 'None' for {ty} services"),
        ));
    }
    errs
}

fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let (n, o) = (&new["spec"]["clusterIP"], &old["spec"]["clusterIP"]);
    let changed = n.as_str().is_some_and(|s| !s.is_empty())
        && o.as_str().is_some_and(|s| !s.is_empty())
        && n != o;
    if changed && svc_type(new) != "ExternalName" {
        return vec![FieldError::invalid(
            "spec.clusterIPs[0]",
            n.as_str().unwrap_or_default(),
            "may not change once set",
        )];
    }
    Vec::new()
}

static COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Type",
        "string",
        "",
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer.",
        0,
    ),
    Column::new(
        "Cluster-IP",
        "string",
        "",
        "clusterIP is the IP address of the service and is usually assigned randomly.",
        0,
    ),
    Column::new(
        "External-IP",
        "string",
        "",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
        0,
    ),
    Column::new(
        "Port(s)",
        "string",
        "",
        "The list of ports that are exposed by this service.",
        0,
    ),
    AGE_COLUMN,
    Column::new(
        "Selector",
        "string",
        "",
        "Route service traffic to pods with label keys and values matching this selector.",
        1,
    ),
];

fn external_ip(svc: &Value) -> String {
    let spec = &svc["spec"];
    let external: Vec<&str> = spec["externalIPs"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match svc_type(svc) {
        "ExternalName" => spec["externalName"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        "LoadBalancer" => {
            let mut ips: Vec<&str> = svc["status"]["loadBalancer"]["ingress"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                        .collect()
                })
                .unwrap_or_default();
            ips.extend(external);
            if ips.is_empty() {
                "<pending>".into()
            } else {
                ips.join(",")
            }
        }
        _ if external.is_empty() => "<none>".into(),
        _ => external.join(","),
    }
}

fn ports_cell(svc: &Value) -> String {
    let ports: Vec<String> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64().filter(|n| *n != 0) {
                Some(n) => format!("{}:{n}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

fn row(svc: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let cluster_ip = match svc["spec"]["clusterIP"].as_str() {
        Some(ip) if !ip.is_empty() => ip.to_string(),
        _ => "<none>".into(),
    };
    let mut selector: Vec<String> = svc["spec"]["selector"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    selector.sort();
    vec![
        svc["metadata"]["name"].clone(),
        json!(svc_type(svc)),
        json!(cluster_ip),
        json!(external_ip(svc)),
        json!(ports_cell(svc)),
        object_age(svc, now),
        json!(if selector.is_empty() {
            "<none>".to_string()
        } else {
            selector.join(",")
        }),
    ]
}

/// The `kubernetes` service the registry creates in `default` at startup.
pub fn kubernetes_service(net: &ServiceNetwork, target_port: u16) -> Value {
    json!({
        "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": net.first_ip().to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": target_port}],
            "sessionAffinity": "None",
        }
    })
}

#[cfg(test)]
mod tests;
