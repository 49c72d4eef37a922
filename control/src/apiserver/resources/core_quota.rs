//! core/v1 limitranges and resourcequotas (stored and validated; enforcement comes later), the
//! quantity syntax they share, and the NAME / CREATED AT Table (also used by RBAC roles).

use serde_json::{Value, json};

use super::{ResourceDef, STATUS_SUBRESOURCE, Strategy, TableDef};
use crate::apiserver::error::FieldError;
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN, object_age};

// ---- limitranges

pub const LIMITRANGES: ResourceDef = ResourceDef {
    plural: "limitranges",
    singular: "limitrange",
    kind: "LimitRange",
    short_names: &["limits"],
    strategy: Strategy {
        validate: limitrange_validate,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: CREATED_AT_COLUMNS,
        row: created_at_row,
    },
    ..ResourceDef::BASE
};

fn limitrange_validate(lr: &Value) -> Vec<FieldError> {
    const TYPES: &[&str] = &["Container", "Pod", "PersistentVolumeClaim"];
    let mut errs = Vec::new();
    for (i, l) in lr["spec"]["limits"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        match l["type"].as_str() {
            None | Some("") => errs.push(FieldError::required(format!("spec.limits[{i}].type"))),
            Some(t) if !TYPES.contains(&t) => errs.push(FieldError::not_supported(
                format!("spec.limits[{i}].type"),
                t,
                TYPES,
            )),
            Some(_) => {}
        }
        for f in [
            "max",
            "min",
            "default",
            "defaultRequest",
            "maxLimitRequestRatio",
        ] {
            quantities(&l[f], &format!("spec.limits[{i}].{f}"), &mut errs);
        }
    }
    errs
}

/// Every value of a resource list is a valid quantity.
fn quantities(list: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for (k, v) in list.as_object().into_iter().flatten() {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        if !quantity_ok(&text) {
            errs.push(FieldError::invalid(
                format!("{path}[{k}]"),
                &text,
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            ));
        }
    }
}

fn quantity_ok(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let num_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(num_len);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return false;
    }
    const SUFFIXES: &[&str] = &[
        "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    ];
    if SUFFIXES.contains(&suffix) {
        return true;
    }
    // Decimal exponent: e3, E-2.
    suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e))
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
}

pub(super) static CREATED_AT_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Created At",
        "date",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    ),
];

/// NAME and CREATED AT (the RFC 3339 creation time), as kubectl shows limitranges and roles.
pub(super) fn created_at_row(obj: &Value, _now: jiff::Timestamp) -> Vec<Value> {
    vec![
        obj["metadata"]["name"].clone(),
        obj["metadata"]["creationTimestamp"].clone(),
    ]
}

// ---- resourcequotas

pub const RESOURCEQUOTAS: ResourceDef = ResourceDef {
    plural: "resourcequotas",
    singular: "resourcequota",
    kind: "ResourceQuota",
    short_names: &["quota"],
    subresources: &[STATUS_SUBRESOURCE],
    strategy: Strategy {
        validate: quota_validate,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: QUOTA_COLUMNS,
        row: quota_row,
    },
    ..ResourceDef::BASE
};

fn quota_validate(q: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    quantities(&q["spec"]["hard"], "spec.hard", &mut errs);
    const SCOPES: &[&str] = &[
        "Terminating",
        "NotTerminating",
        "BestEffort",
        "NotBestEffort",
        "PriorityClass",
        "CrossNamespacePodAffinity",
    ];
    for (i, s) in q["spec"]["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let s = s.as_str().unwrap_or_default();
        if !SCOPES.contains(&s) {
            errs.push(FieldError::not_supported(
                format!("spec.scopes[{i}]"),
                s,
                SCOPES,
            ));
        }
    }
    errs
}

static QUOTA_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    AGE_COLUMN,
    Column::new(
        "Request",
        "string",
        "",
        "Request represents a minimum amount of cpu/memory that a container may consume.",
        0,
    ),
    Column::new(
        "Limit",
        "string",
        "",
        "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node.",
        0,
    ),
];

fn quota_row(q: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let hard = q["status"]["hard"]
        .as_object()
        .or(q["spec"]["hard"].as_object());
    let used = &q["status"]["used"];
    let mut request = Vec::new();
    let mut limit = Vec::new();
    let mut names: Vec<&String> = hard.map(|h| h.keys().collect()).unwrap_or_default();
    names.sort();
    for k in names {
        let h = hard.map(|h| quantity_text(&h[k])).unwrap_or_default();
        let u = match &used[k] {
            Value::Null => "0".to_string(),
            v => quantity_text(v),
        };
        let cell = format!("{k}: {u}/{h}");
        if k.starts_with("limits.") {
            limit.push(cell);
        } else {
            request.push(cell);
        }
    }
    vec![
        q["metadata"]["name"].clone(),
        object_age(q, now),
        json!(request.join(", ")),
        json!(limit.join(", ")),
    ]
}

fn quantity_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bodies(errs: &[FieldError]) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn limits_and_quotas() {
        let lr = json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2", "memory": "1Gi"}}, {"type": "Node", "min": {"cpu": "lots"}}]}});
        let m = bodies(&limitrange_validate(&lr));
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(m[0].starts_with(r#"spec.limits[1].type: Unsupported value: "Node""#));
        assert!(m[1].starts_with(
            r#"spec.limits[1].min[cpu]: Invalid value: "lots": quantities must match"#
        ));
        for ok in ["1", "100m", "1.5Gi", "2e3", "0.5", "+1k"] {
            assert!(quantity_ok(ok), "{ok}");
        }
        for bad in ["", "Gi", "1.2.3", "1x", "1e"] {
            assert!(!quantity_ok(bad), "{bad}");
        }
        let q = json!({"metadata": {"name": "q"}, "spec": {"hard": {"requests.cpu": "1", "limits.memory": "1Gi", "pods": 10}}, "status": {"used": {"pods": "2"}}});
        assert!(quota_validate(&q).is_empty());
        let row = quota_row(&q, jiff::Timestamp::now());
        assert_eq!(row[2], "pods: 2/10, requests.cpu: 0/1");
        assert_eq!(row[3], "limits.memory: 0/1Gi");
        let bad = json!({"spec": {"scopes": ["Everything"]}});
        assert_eq!(quota_validate(&bad).len(), 1);
    }
}
