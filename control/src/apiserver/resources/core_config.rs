//! The core/v1 configuration kinds: configmaps, secrets (type default, `stringData` folded into
//! `data`), serviceaccounts and endpoints, with their Tables.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::workloads::set_default;
use super::{ResourceDef, Strategy, TableDef};
use crate::apiserver::error::FieldError;
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN, object_age};

const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn check_key(field: &str, key: &str, errs: &mut Vec<FieldError>) {
    let path = format!("{field}[{key}]");
    if key.is_empty()
        || !key
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        errs.push(FieldError::invalid(&path, key, CONFIG_KEY_MSG));
    } else if key.len() > 253 {
        errs.push(FieldError::invalid(
            &path,
            key,
            "must be no more than 253 characters",
        ));
    } else if key == "." || key == ".." {
        errs.push(FieldError::invalid(
            &path,
            key,
            format!("must not be '{key}'"),
        ));
    } else if key.starts_with("..") {
        errs.push(FieldError::invalid(&path, key, "must not start with '..'"));
    }
}

fn keys(obj: &Value, field: &str) -> Vec<String> {
    obj[field]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// `immutable: true` freezes the data fields (and itself).
fn immutable_data(new: &Value, old: &Value, fields: &[&str]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if old["immutable"] == true {
        if fields.iter().any(|f| new[*f] != old[*f]) {
            errs.push(FieldError::forbidden(
                "data",
                "field is immutable when `immutable` is set",
            ));
        }
        if new["immutable"] != true {
            errs.push(FieldError::forbidden(
                "immutable",
                "field is immutable when `immutable` is set",
            ));
        }
    }
    errs
}

fn count_cell(obj: &Value, fields: &[&str]) -> Value {
    json!(
        fields
            .iter()
            .map(|f| obj[*f].as_object().map_or(0, Map::len))
            .sum::<usize>()
    )
}

// ---- configmaps

pub const CONFIGMAPS: ResourceDef = ResourceDef {
    plural: "configmaps",
    singular: "configmap",
    kind: "ConfigMap",
    short_names: &["cm"],
    strategy: Strategy {
        validate: configmap_validate,
        validate_update: configmap_update,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: CONFIGMAP_COLUMNS,
        row: configmap_row,
    },
    ..ResourceDef::BASE
};

fn configmap_validate(cm: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let data = keys(cm, "data");
    for k in &data {
        check_key("data", k, &mut errs);
    }
    for k in keys(cm, "binaryData") {
        check_key("binaryData", &k, &mut errs);
        if data.contains(&k) {
            errs.push(FieldError::invalid(
                format!("data[{k}]"),
                &k,
                "duplicate of key present in binaryData",
            ));
        }
    }
    errs
}

fn configmap_update(new: &Value, old: &Value) -> Vec<FieldError> {
    immutable_data(new, old, &["data", "binaryData"])
}

static CONFIGMAP_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Data",
        "string",
        "",
        "Data contains the configuration data.",
        0,
    ),
    AGE_COLUMN,
];

fn configmap_row(cm: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        cm["metadata"]["name"].clone(),
        count_cell(cm, &["data", "binaryData"]),
        object_age(cm, now),
    ]
}

// ---- secrets

pub const SECRETS: ResourceDef = ResourceDef {
    plural: "secrets",
    singular: "secret",
    kind: "Secret",
    strategy: Strategy {
        defaults: secret_defaults,
        validate: secret_validate,
        validate_update: secret_update,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: SECRET_COLUMNS,
        row: secret_row,
    },
    ..ResourceDef::BASE
};

/// Type `Opaque` by default; `stringData` (write-only) is base64-encoded into `data`.
fn secret_defaults(s: &mut Value) {
    let Some(obj) = s.as_object_mut() else { return };
    set_default(obj, "type", json!("Opaque"));
    if let Some(Value::Object(string_data)) = obj.remove("stringData") {
        let data = obj.entry("data").or_insert_with(|| json!({}));
        if data.is_null() {
            *data = json!({});
        }
        if let Some(data) = data.as_object_mut() {
            for (k, v) in string_data {
                let text = v.as_str().unwrap_or_default();
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(text)),
                );
            }
        }
    }
}

fn secret_validate(s: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let data = keys(s, "data");
    for k in &data {
        check_key("data", k, &mut errs);
        let v = &s["data"][k];
        let ok = v.is_null()
            || v.as_str()
                .is_some_and(|t| base64::engine::general_purpose::STANDARD.decode(t).is_ok());
        if !ok {
            errs.push(FieldError::invalid(
                format!("data[{k}]"),
                v.as_str().unwrap_or_default(),
                "illegal base64 data",
            ));
        }
    }
    let has = |k: &str| data.iter().any(|d| d == k);
    let ty = s["type"].as_str().unwrap_or("Opaque");
    let required: &[&str] = match ty {
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        _ => &[],
    };
    for k in required {
        if !has(k) {
            errs.push(FieldError::required(format!("data[{k}]")));
        }
    }
    if ty == "kubernetes.io/service-account-token"
        && s["metadata"]["annotations"]["kubernetes.io/service-account.name"]
            .as_str()
            .is_none_or(str::is_empty)
    {
        errs.push(FieldError::required(
            "metadata.annotations[kubernetes.io/service-account.name]",
        ));
    }
    if ty == "kubernetes.io/basic-auth" && !has("username") && !has("password") {
        errs.push(FieldError::required("data[username]"));
    }
    errs
}

fn secret_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = immutable_data(new, old, &["data"]);
    if new["type"] != old["type"] {
        errs.push(FieldError::invalid(
            "type",
            new["type"].as_str().unwrap_or_default(),
            "field is immutable",
        ));
    }
    errs
}

static SECRET_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new("Type", "string", "", "The type of the secret", 0),
    Column::new("Data", "string", "", "The number of entries in the data", 0),
    AGE_COLUMN,
];

fn secret_row(s: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        s["metadata"]["name"].clone(),
        json!(s["type"].as_str().unwrap_or("Opaque")),
        count_cell(s, &["data"]),
        object_age(s, now),
    ]
}

// ---- serviceaccounts

pub const SERVICEACCOUNTS: ResourceDef = ResourceDef {
    plural: "serviceaccounts",
    singular: "serviceaccount",
    kind: "ServiceAccount",
    short_names: &["sa"],
    table: TableDef {
        columns: SERVICEACCOUNT_COLUMNS,
        row: serviceaccount_row,
    },
    ..ResourceDef::BASE
};

static SERVICEACCOUNT_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Secrets",
        "string",
        "",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
        0,
    ),
    AGE_COLUMN,
];

fn serviceaccount_row(sa: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        sa["metadata"]["name"].clone(),
        json!(sa["secrets"].as_array().map_or(0, Vec::len)),
        object_age(sa, now),
    ]
}

// ---- endpoints

pub const ENDPOINTS: ResourceDef = ResourceDef {
    plural: "endpoints",
    singular: "endpoints",
    kind: "Endpoints",
    short_names: &["ep"],
    strategy: Strategy {
        validate: endpoints_validate,
        ..Strategy::PLAIN
    },
    table: TableDef {
        columns: ENDPOINTS_COLUMNS,
        row: endpoints_row,
    },
    ..ResourceDef::BASE
};

fn endpoints_validate(ep: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, subset) in ep["subsets"].as_array().into_iter().flatten().enumerate() {
        for list in ["addresses", "notReadyAddresses"] {
            for (j, a) in subset[list].as_array().into_iter().flatten().enumerate() {
                let ip = a["ip"].as_str().unwrap_or_default();
                if ip.parse::<std::net::IpAddr>().is_err() {
                    errs.push(FieldError::invalid(
                        format!("subsets[{i}].{list}[{j}].ip"),
                        ip,
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    ));
                }
            }
        }
        for (j, p) in subset["ports"].as_array().into_iter().flatten().enumerate() {
            if !p["port"].as_i64().is_some_and(|n| (1..=65535).contains(&n)) {
                errs.push(FieldError::invalid_raw(
                    format!("subsets[{i}].ports[{j}].port"),
                    &p["port"],
                    "must be between 1 and 65535, inclusive",
                ));
            }
        }
    }
    errs
}

static ENDPOINTS_COLUMNS: &[Column] = &[
    NAME_COLUMN,
    Column::new(
        "Endpoints",
        "string",
        "",
        "Endpoints is the list of endpoints in the service.",
        0,
    ),
    AGE_COLUMN,
];

fn endpoints_row(ep: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let mut all = Vec::new();
    for subset in ep["subsets"].as_array().into_iter().flatten() {
        let ports: Vec<i64> = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_i64())
            .collect();
        for a in subset["addresses"].as_array().into_iter().flatten() {
            let ip = a["ip"].as_str().unwrap_or_default();
            if ports.is_empty() {
                all.push(ip.to_string());
            }
            for p in &ports {
                all.push(format!("{ip}:{p}"));
            }
        }
    }
    let cell = match all.len() {
        0 => "<none>".to_string(),
        n if n > 3 => format!("{} + {} more...", all[..3].join(","), n - 3),
        _ => all.join(","),
    };
    vec![
        ep["metadata"]["name"].clone(),
        json!(cell),
        object_age(ep, now),
    ]
}

#[cfg(test)]
#[path = "core_config_tests.rs"]
mod tests;
