//! Single kinds of other groups: discovery.k8s.io/v1 endpointslices, policy/v1
//! poddisruptionbudgets and events.k8s.io/v1 events (stored on their own, in their own shape).

use serde_json::{Value, json};

use super::core::{EVENT_COLUMNS, event_row};
use super::{ResourceDef, STATUS_SUBRESOURCE, Strategy, TableDef};
use crate::apiserver::error::FieldError;
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN, object_age};

// ---- endpointslices

pub const ENDPOINTSLICES: ResourceDef = ResourceDef {
    group: "discovery.k8s.io",
    plural: "endpointslices",
    singular: "endpointslice",
    kind: "EndpointSlice",
    tracks_generation: true,
    strategy: Strategy {
        validate: slice_validate,
        validate_update: slice_update,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: SLICE_COLUMNS,
        row: slice_row,
    },
    ..ResourceDef::BASE
};

const ADDRESS_TYPES: &[&str] = &["IPv4", "IPv6", "FQDN"];

fn slice_validate(s: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ty = s["addressType"].as_str().unwrap_or_default();
    if ty.is_empty() {
        errs.push(FieldError::required("addressType"));
    } else if !ADDRESS_TYPES.contains(&ty) {
        errs.push(FieldError::not_supported("addressType", ty, ADDRESS_TYPES));
    }
    for (i, e) in s["endpoints"].as_array().into_iter().flatten().enumerate() {
        let addrs = e["addresses"].as_array().cloned().unwrap_or_default();
        if addrs.is_empty() {
            errs.push(FieldError::required(format!("endpoints[{i}].addresses")));
        }
        for (j, a) in addrs.iter().enumerate() {
            let a = a.as_str().unwrap_or_default();
            let ok = match ty {
                "IPv4" => a.parse::<std::net::Ipv4Addr>().is_ok(),
                "IPv6" => a.parse::<std::net::Ipv6Addr>().is_ok(),
                _ => !a.is_empty(),
            };
            if !ok {
                errs.push(FieldError::invalid(
                    format!("endpoints[{i}].addresses[{j}]"),
                    a,
                    format!("must be a valid {ty} address"),
                ));
            }
        }
    }
    errs
}

fn slice_update(new: &Value, old: &Value) -> Vec<FieldError> {
    if new["addressType"] != old["addressType"] {
        return vec![FieldError::invalid(
            "addressType",
            new["addressType"].as_str().unwrap_or_default(),
            "field is immutable",
        )];
    }
    Vec::new()
}

static SLICE_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "AddressType",
        "string",
        "",
        "The IP protocol for this slice",
        0,
    ),
    Column::new("Ports", "string", "", "The ports of this slice", 0),
    Column::new("Endpoints", "string", "", "The endpoints of this slice", 0),
    AGE_COLUMN,
];

fn slice_row(s: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let ports: Vec<String> = s["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["port"].as_i64().map(|n| n.to_string()))
        .collect();
    let addrs: Vec<&str> = s["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["addresses"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let endpoints = match addrs.len() {
        0 => "<unset>".to_string(),
        n if n > 3 => format!("{} + {} more...", addrs[..3].join(","), n - 3),
        _ => addrs.join(","),
    };
    vec![
        s["metadata"]["name"].clone(),
        json!(s["addressType"].as_str().unwrap_or_default()),
        json!(if ports.is_empty() {
            "<unset>".to_string()
        } else {
            ports.join(",")
        }),
        json!(endpoints),
        object_age(s, now),
    ]
}

// ---- poddisruptionbudgets

pub const PODDISRUPTIONBUDGETS: ResourceDef = ResourceDef {
    group: "policy",
    plural: "poddisruptionbudgets",
    singular: "poddisruptionbudget",
    kind: "PodDisruptionBudget",
    short_names: &["pdb"],
    subresources: &[STATUS_SUBRESOURCE],
    tracks_generation: true,
    strategy: Strategy {
        validate: pdb_validate,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: PDB_COLUMNS,
        row: pdb_row,
    },
    ..ResourceDef::BASE
};

fn int_or_percent(v: &Value, field: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::Null => {}
        Value::Number(n) if n.as_i64().is_some_and(|n| n >= 0) => {}
        Value::Number(n) => errs.push(FieldError::invalid_raw(
            field,
            n,
            "must be greater than or equal to 0",
        )),
        Value::String(s) => {
            let pct = s.strip_suffix('%').and_then(|p| p.parse::<u32>().ok());
            match pct {
                Some(p) if p <= 100 => {}
                Some(_) => errs.push(FieldError::invalid(field, s, "must not be greater than 100%")),
                None => errs.push(FieldError::invalid(
                    field,
                    s,
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                )),
            }
        }
        other => errs.push(FieldError::invalid_raw(
            field,
            other,
            "must be an integer or percentage",
        )),
    }
}

fn pdb_validate(pdb: &Value) -> Vec<FieldError> {
    let spec = &pdb["spec"];
    let mut errs = Vec::new();
    if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
        errs.push(FieldError::invalid_raw(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    int_or_percent(&spec["minAvailable"], "spec.minAvailable", &mut errs);
    int_or_percent(&spec["maxUnavailable"], "spec.maxUnavailable", &mut errs);
    if let Some(p) = spec["unhealthyPodEvictionPolicy"].as_str() {
        const OK: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];
        if !OK.contains(&p) {
            errs.push(FieldError::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                p,
                OK,
            ));
        }
    }
    errs
}

static PDB_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Min Available",
        "string",
        "",
        "The minimum number of pods that must be available.",
        0,
    ),
    Column::new(
        "Max Unavailable",
        "string",
        "",
        "The maximum number of pods that may be unavailable.",
        0,
    ),
    Column::new(
        "Allowed Disruptions",
        "integer",
        "",
        "Calculated number of pods that may be disrupted at this time.",
        0,
    ),
    AGE_COLUMN,
];

fn int_or_string_cell(v: &Value) -> Value {
    match v {
        Value::Null => json!("N/A"),
        Value::String(s) => json!(s),
        other => json!(other.to_string()),
    }
}

fn pdb_row(pdb: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        pdb["metadata"]["name"].clone(),
        int_or_string_cell(&pdb["spec"]["minAvailable"]),
        int_or_string_cell(&pdb["spec"]["maxUnavailable"]),
        json!(pdb["status"]["disruptionsAllowed"].as_i64().unwrap_or(0)),
        object_age(pdb, now),
    ]
}

// ---- events.k8s.io/v1 events

pub const EVENTS_V1: ResourceDef = ResourceDef {
    group: "events.k8s.io",
    plural: "events",
    singular: "event",
    kind: "Event",
    short_names: &["ev"],
    field_selectors: &[
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "reason",
        "reportingController",
        "type",
    ],
    strategy: Strategy {
        validate: event_v1_validate,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: EVENT_COLUMNS,
        row: event_v1_row,
    },
    storage: "events.k8s.io-events",
    ..ResourceDef::BASE
};

fn event_v1_validate(ev: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if ev["eventTime"].is_null() {
        errs.push(FieldError::required("eventTime"));
    }
    for f in [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ] {
        if ev[f].as_str().is_none_or(str::is_empty) {
            errs.push(FieldError::required(f));
        }
    }
    if let Some(t) = ev["type"].as_str()
        && t != "Normal"
        && t != "Warning"
    {
        errs.push(FieldError::not_supported("type", t, &["Normal", "Warning"]));
    }
    if ev["note"].as_str().is_some_and(|n| n.len() > 1024) {
        errs.push(FieldError::invalid(
            "note",
            "",
            "can have at most 1024 characters",
        ));
    }
    errs
}

/// The core/v1 view of an events.k8s.io/v1 event, for the shared Table columns.
fn as_core_event(ev: &Value) -> Value {
    json!({
        "metadata": ev["metadata"].clone(),
        "involvedObject": ev["regarding"].clone(),
        "reason": ev["reason"].clone(),
        "message": ev["note"].clone(),
        "type": ev["type"].clone(),
        "eventTime": ev["eventTime"].clone(),
        "series": ev["series"].clone(),
        "firstTimestamp": ev["deprecatedFirstTimestamp"].clone(),
        "lastTimestamp": ev["deprecatedLastTimestamp"].clone(),
        "count": ev["deprecatedCount"].as_i64().or(ev["series"]["count"].as_i64()).unwrap_or(1),
        "source": ev["deprecatedSource"].clone(),
        "reportingComponent": ev["reportingController"].clone(),
    })
}

fn event_v1_row(ev: &Value, now: jiff::Timestamp) -> Vec<Value> {
    event_row(&as_core_event(ev), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpointslices() {
        let s = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4", "ports": [{"port": 8080}], "endpoints": [{"addresses": ["10.42.0.5"]}]});
        assert!(slice_validate(&s).is_empty());
        let cells = slice_row(&s, jiff::Timestamp::now());
        assert_eq!(cells[1], "IPv4");
        assert_eq!(cells[2], "8080");
        assert_eq!(cells[3], "10.42.0.5");
        let bad = json!({"addressType": "IPv4", "endpoints": [{"addresses": ["fe80::1"]}, {}]});
        let errs = slice_validate(&bad);
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].field, "endpoints[0].addresses[0]");
        assert_eq!(errs[1].field, "endpoints[1].addresses");
        let mut v6 = s.clone();
        v6["addressType"] = json!("IPv6");
        assert_eq!(slice_update(&v6, &s)[0].field, "addressType");
    }

    #[test]
    fn pdbs() {
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
        assert!(pdb_validate(&pdb).is_empty());
        let cells = pdb_row(&pdb, jiff::Timestamp::now());
        assert_eq!(cells[1], "50%");
        assert_eq!(cells[2], "N/A");
        assert_eq!(cells[3], 1);
        let both = json!({"spec": {"minAvailable": 1, "maxUnavailable": "150%"}});
        let errs = pdb_validate(&both);
        assert_eq!(errs.len(), 2);
        assert_eq!(
            errs[0].detail,
            "minAvailable and maxUnavailable cannot be both set"
        );
        assert_eq!(errs[1].field, "spec.maxUnavailable");
    }

    #[test]
    fn events_v1() {
        let ev = json!({
            "metadata": {"name": "x.1", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "regarding": {"kind": "Pod", "name": "x"},
            "reason": "Scheduled", "action": "Binding", "note": "assigned", "type": "Normal",
            "reportingController": "default-scheduler", "reportingInstance": "skiff"
        });
        assert!(event_v1_validate(&ev).is_empty());
        let now: jiff::Timestamp = "2024-01-01T00:00:20Z".parse().unwrap();
        let cells = event_v1_row(&ev, now);
        assert_eq!(cells[0], "20s");
        assert_eq!(cells[3], "pod/x");
        assert_eq!(cells[5], "default-scheduler");
        assert_eq!(cells[6], "assigned");
        let errs = event_v1_validate(&json!({"type": "Odd"}));
        assert_eq!(errs.len(), 6);
        // Its own store: a core event of the same name does not collide.
        assert_ne!(
            EVENTS_V1.key(Some("default"), "x.1"),
            super::super::core::EVENTS.key(Some("default"), "x.1")
        );
    }
}
