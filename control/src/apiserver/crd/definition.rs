//! The `customresourcedefinitions` kind (apiextensions.k8s.io/v1): defaulting, validation of
//! names, versions and structural schemas, and its status (`acceptedNames`, `storedVersions`,
//! the `NamesAccepted` and `Established` conditions), computed on every write so a CRD is
//! established as soon as it is stored.

use serde_json::{Value, json};

use super::structural;
use crate::apiserver::error::FieldError;
use crate::apiserver::registry::object;
use crate::apiserver::resources::{
    ResourceDef, STATUS_SUBRESOURCE, ServiceNetwork, Strategy, TableDef,
};
use crate::apiserver::table::{Column, NAME_COLUMN};
use crate::apiserver::validation::{dns1123_label, dns1123_subdomain};

/// The finalizer that makes deleting a CRD delete its objects first.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The resource table entry.
pub const CUSTOMRESOURCEDEFINITIONS: ResourceDef = ResourceDef {
    group: "apiextensions.k8s.io",
    plural: "customresourcedefinitions",
    singular: "customresourcedefinition",
    kind: "CustomResourceDefinition",
    namespaced: false,
    short_names: &["crd", "crds"],
    categories: &["api-extensions"],
    subresources: &[STATUS_SUBRESOURCE],
    tracks_generation: true,
    strategy: Strategy {
        defaults,
        prepare_create,
        validate,
        validate_update,
        allocate: Some(names_accepted),
    },
    table: TableDef {
        columns: COLUMNS,
        row,
    },
    ..ResourceDef::BASE
};

static COLUMNS: &[Column] = &[NAME_COLUMN, Column::new("Created At", "date", "", "", 0)];

fn row(crd: &Value, _now: jiff::Timestamp) -> Vec<Value> {
    vec![
        crd["metadata"]["name"].clone(),
        crd["metadata"]["creationTimestamp"].clone(),
    ]
}

const KIND_PATTERN: &str = "^[a-zA-Z][-_a-zA-Z0-9]*$";
const PRINTER_TYPES: &[&str] = &["integer", "number", "string", "boolean", "date"];

fn condition(kind: &str, status: &str, reason: &str, message: &str, old: &Value) -> Value {
    let previous = old["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind));
    let since = match previous {
        Some(p) if p["status"] == status => p["lastTransitionTime"].clone(),
        _ => json!(object::now()),
    };
    json!({"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since})
}

/// Sets `status`: the accepted names, the stored versions, and the conditions.
fn set_status(crd: &mut Value, conflict: Option<String>) {
    let old = crd.clone();
    let mut stored: Vec<Value> = old["status"]["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for v in crd["spec"]["versions"].as_array().into_iter().flatten() {
        if v["storage"] == json!(true) && !stored.contains(&v["name"]) {
            stored.push(v["name"].clone());
        }
    }
    let (accepted, names) = match &conflict {
        None => (
            condition(
                "NamesAccepted",
                "True",
                "NoConflicts",
                "no conflicts found",
                &old,
            ),
            crd["spec"]["names"].clone(),
        ),
        Some(why) => (
            condition("NamesAccepted", "False", "NameConflict", why, &old),
            old["status"]["acceptedNames"].clone(),
        ),
    };
    let established = if conflict.is_none() {
        condition(
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted",
            &old,
        )
    } else {
        condition(
            "Established",
            "False",
            "NotAccepted",
            "not all names are accepted",
            &old,
        )
    };
    crd["status"] = json!({
        "conditions": [accepted, established],
        "acceptedNames": if names.is_null() { json!({"plural": "", "kind": ""}) } else { names },
        "storedVersions": stored,
    });
}

/// Whether a CRD is established (its kinds are served).
pub fn is_established(crd: &Value) -> bool {
    crd["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    })
}

fn defaults(crd: &mut Value) {
    let spec = &mut crd["spec"];
    if !spec.is_object() {
        return;
    }
    let kind = spec["names"]["kind"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let names = &mut spec["names"];
    if names.is_object() && !kind.is_empty() {
        if names["singular"].as_str().unwrap_or_default().is_empty() {
            names["singular"] = json!(kind.to_lowercase());
        }
        if names["listKind"].as_str().unwrap_or_default().is_empty() {
            names["listKind"] = json!(format!("{kind}List"));
        }
    }
    if !spec["conversion"].is_object() {
        spec["conversion"] = json!({"strategy": "None"});
    }
    set_status(crd, None);
}

fn prepare_create(crd: &mut Value) {
    let m = &mut crd["metadata"];
    let mut fins: Vec<Value> = m["finalizers"].as_array().cloned().unwrap_or_default();
    if !fins.contains(&json!(CLEANUP_FINALIZER)) {
        fins.push(json!(CLEANUP_FINALIZER));
    }
    m["finalizers"] = json!(fins);
}

fn label_errors(path: String, value: &Value, errs: &mut Vec<FieldError>, required: bool) {
    match value.as_str() {
        None | Some("") if required => errs.push(FieldError::required(path)),
        None | Some("") => {}
        Some(s) => {
            for e in dns1123_label(s) {
                errs.push(FieldError::invalid(path.clone(), s, e));
            }
        }
    }
}

fn kind_errors(path: &str, value: &Value, errs: &mut Vec<FieldError>) {
    match value.as_str().unwrap_or_default() {
        "" => errs.push(FieldError::required(path)),
        k if !regex::Regex::new(KIND_PATTERN).is_ok_and(|re| re.is_match(k)) => {
            errs.push(FieldError::invalid(
                path,
                k,
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    KIND_PATTERN.trim_matches(['^', '$'])
                ),
            ));
        }
        _ => {}
    }
}

fn validate_names(names: &Value, errs: &mut Vec<FieldError>) {
    label_errors("spec.names.plural".into(), &names["plural"], errs, true);
    label_errors(
        "spec.names.singular".into(),
        &names["singular"],
        errs,
        false,
    );
    kind_errors("spec.names.kind", &names["kind"], errs);
    if names.get("listKind").is_some() {
        kind_errors("spec.names.listKind", &names["listKind"], errs);
    }
    for (field, list) in [
        ("shortNames", &names["shortNames"]),
        ("categories", &names["categories"]),
    ] {
        for (i, v) in list.as_array().into_iter().flatten().enumerate() {
            label_errors(format!("spec.names.{field}[{i}]"), v, errs, true);
        }
    }
}

fn validate_version(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    label_errors(format!("{path}.name"), &v["name"], errs, true);
    let schema = &v["schema"]["openAPIV3Schema"];
    if schema.is_object() {
        structural::check(
            schema,
            &format!("{path}.schema.openAPIV3Schema"),
            true,
            errs,
        );
    } else {
        errs.push(FieldError::required(format!(
            "{path}.schema.openAPIV3Schema"
        )));
    }
    if let Some(scale) = v["subresources"].get("scale").filter(|s| s.is_object()) {
        for (field, prefix, required) in [
            ("specReplicasPath", ".spec.", true),
            ("statusReplicasPath", ".status.", true),
            ("labelSelectorPath", ".", false),
        ] {
            let p = format!("{path}.subresources.scale.{field}");
            match scale[field].as_str() {
                None | Some("") if required => errs.push(FieldError::required(p)),
                Some(s) if !s.starts_with(prefix) || s.ends_with('.') => {
                    errs.push(FieldError::invalid(
                        p,
                        s,
                        format!(
                            "should be a json path under {}",
                            prefix.trim_end_matches('.')
                        ),
                    ))
                }
                _ => {}
            }
        }
    }
    for (i, c) in v["additionalPrinterColumns"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let p = format!("{path}.additionalPrinterColumns[{i}]");
        if c["name"].as_str().unwrap_or_default().is_empty() {
            errs.push(FieldError::required(format!("{p}.name")));
        }
        match c["type"].as_str().unwrap_or_default() {
            "" => errs.push(FieldError::required(format!("{p}.type"))),
            t if !PRINTER_TYPES.contains(&t) => {
                errs.push(FieldError::not_supported(
                    format!("{p}.type"),
                    t,
                    PRINTER_TYPES,
                ));
            }
            _ => {}
        }
        if c["jsonPath"].as_str().unwrap_or_default().is_empty() {
            errs.push(FieldError::required(format!("{p}.jsonPath")));
        }
    }
}

fn validate(crd: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    if group.is_empty() {
        errs.push(FieldError::required("spec.group"));
    } else if !group.contains('.') {
        errs.push(FieldError::invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    } else {
        for e in dns1123_subdomain(group) {
            errs.push(FieldError::invalid("spec.group", group, e));
        }
    }
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let name = object::name(crd);
    if name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    validate_names(&spec["names"], &mut errs);
    match spec["scope"].as_str().unwrap_or_default() {
        "" => errs.push(FieldError::required("spec.scope")),
        "Cluster" | "Namespaced" => {}
        s => errs.push(FieldError::not_supported(
            "spec.scope",
            s,
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        errs.push(FieldError::required("spec.versions"));
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}]");
        let vname = v["name"].as_str().unwrap_or_default();
        if seen.contains(&vname) {
            errs.push(FieldError::duplicate(format!("{path}.name"), vname));
        }
        seen.push(vname);
        validate_version(v, &path, &mut errs);
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count();
    if !versions.is_empty() && storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            &format!("{storage}"),
            "must have exactly one version marked as storage version",
        ));
    }
    if versions
        .iter()
        .any(|v| v["storage"] == json!(true) && v["served"] != json!(true))
    {
        errs.push(FieldError::invalid(
            "spec.versions",
            "",
            "the storage version must be served",
        ));
    }
    errs
}

fn validate_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for field in ["group", "scope"] {
        if new["spec"][field] != old["spec"][field] {
            let v = new["spec"][field].as_str().unwrap_or_default();
            errs.push(FieldError::invalid(
                format!("spec.{field}"),
                v,
                "field is immutable",
            ));
        }
    }
    let names: Vec<&Value> = new["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| &v["name"])
        .collect();
    for (i, v) in new["status"]["storedVersions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !names.contains(&v) {
            errs.push(FieldError::invalid(
                format!("status.storedVersions[{i}]"),
                v.as_str().unwrap_or_default(),
                "must appear in spec.versions",
            ));
        }
    }
    errs
}

/// Another CRD of the same group already using one of this CRD's names, if any.
fn conflict(crd: &Value, others: &[Value]) -> Option<String> {
    let group = &crd["spec"]["group"];
    let names = &crd["spec"]["names"];
    let mine = |n: &Value| -> Vec<String> {
        let mut out: Vec<String> = ["plural", "singular"]
            .iter()
            .filter_map(|f| n[*f].as_str())
            .map(str::to_string)
            .collect();
        out.extend(
            n["shortNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string),
        );
        out
    };
    let my_names = mine(names);
    for o in others.iter().filter(|o| o["spec"]["group"] == *group) {
        let accepted = &o["status"]["acceptedNames"];
        if let Some(n) = mine(accepted).into_iter().find(|n| my_names.contains(n)) {
            return Some(format!("{n:?} is already in use"));
        }
        if accepted["kind"] == names["kind"] {
            return Some(format!("{} is already in use", names["kind"]));
        }
    }
    None
}

fn names_accepted(
    crd: &mut Value,
    _old: Option<&Value>,
    others: &[Value],
    _: &ServiceNetwork,
) -> Vec<FieldError> {
    if let Some(why) = conflict(crd, others) {
        set_status(crd, Some(why));
    }
    Vec::new()
}
