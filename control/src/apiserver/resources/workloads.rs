//! What the controller kinds share (apps/v1 and batch/v1): pod template defaulting and
//! validation through the pod rules, label selectors (required, matching the template, immutable),
//! and the CONTAINERS / IMAGES / SELECTOR cells of their Tables.

use serde_json::{Map, Value, json};

use super::pods;
use crate::apiserver::error::FieldError;
use crate::apiserver::table::Column;

/// Sets `key` when it is absent or null.
pub fn set_default(obj: &mut Map<String, Value>, key: &str, value: Value) {
    pods::set_default(obj, key, value);
}

/// The object at `path` (creating empty objects on the way), if it is an object.
pub fn object_at<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Map<String, Value>> {
    let mut cur = v;
    for key in path {
        let m = cur.as_object_mut()?;
        cur = m.entry(key.to_string()).or_insert_with(|| json!({}));
        if cur.is_null() {
            *cur = json!({});
        }
    }
    cur.as_object_mut()
}

/// Pod-spec defaulting of the template at `path` (e.g. `["spec", "template"]`).
pub fn template_defaults(obj: &mut Value, path: &[&str]) {
    let mut p = path.to_vec();
    p.push("spec");
    if let Some(spec) = object_at(obj, &p) {
        pods::spec_defaults(spec);
    }
}

/// The pod rules applied to a template; `prefix` is the template's path (`spec.template`).
pub fn validate_template(template: &Value, prefix: &str, errs: &mut Vec<FieldError>) {
    if template.is_null() {
        errs.push(FieldError::required(prefix));
        return;
    }
    let pod = json!({"spec": template["spec"].clone()});
    for mut e in pods::validate(&pod) {
        e.field = format!("{prefix}.{}", e.field);
        errs.push(e);
    }
}

/// Whether a `LabelSelector` (matchLabels + matchExpressions) selects `labels`.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(ml) = selector["matchLabels"].as_object()
        && !ml.iter().all(|(k, v)| get(k) == v.as_str())
    {
        return false;
    }
    let exprs = selector["matchExpressions"].as_array();
    exprs.into_iter().flatten().all(|e| {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match e["operator"].as_str().unwrap_or_default() {
            "In" => get(key).is_some_and(|v| values.contains(&v)),
            "NotIn" => get(key).is_none_or(|v| !values.contains(&v)),
            "Exists" => get(key).is_some(),
            "DoesNotExist" => get(key).is_none(),
            _ => false,
        }
    })
}

fn selector_is_empty(selector: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_none_or(Map::is_empty)
        && selector["matchExpressions"]
            .as_array()
            .is_none_or(Vec::is_empty)
}

/// Go's `%#v` of a `map[string]string`, as Kubernetes prints the value of a labels error.
pub fn go_map(labels: &Value) -> String {
    let mut parts: Vec<String> = labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    format!("map[string]string{{{}}}", parts.join(", "))
}

/// `spec.selector` is required, non-empty and selects `spec.template.metadata.labels`.
pub fn validate_selector(spec: &Value, kind: &str, errs: &mut Vec<FieldError>) {
    let selector = &spec["selector"];
    if selector.is_null() {
        errs.push(FieldError::required("spec.selector"));
        return;
    }
    if selector_is_empty(selector) {
        errs.push(FieldError::invalid_raw(
            "spec.selector",
            selector,
            format!("empty selector is invalid for {kind}"),
        ));
        return;
    }
    let labels = &spec["template"]["metadata"]["labels"];
    if !spec["template"].is_null() && !selector_matches(selector, labels) {
        errs.push(FieldError::invalid_raw(
            "spec.template.metadata.labels",
            go_map(labels),
            "`selector` does not match template `labels`",
        ));
    }
}

/// `spec.selector` may not change.
pub fn selector_immutable(new: &Value, old: &Value) -> Vec<FieldError> {
    let (n, o) = (&new["spec"]["selector"], &old["spec"]["selector"]);
    if n != o {
        return vec![FieldError::invalid_raw(
            "spec.selector",
            n,
            "field is immutable",
        )];
    }
    Vec::new()
}

/// `spec.replicas` (when set) is not negative.
pub fn validate_replicas(spec: &Value, errs: &mut Vec<FieldError>) {
    if let Some(n) = spec["replicas"].as_i64()
        && n < 0
    {
        errs.push(FieldError::invalid_raw(
            "spec.replicas",
            n,
            "must be greater than or equal to 0",
        ));
    }
}

/// kubectl's rendering of a label selector: `app=web,tier in (a,b)`, `<none>` when empty.
pub fn selector_string(selector: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(ml) = selector["matchLabels"].as_object() {
        let mut keys: Vec<&String> = ml.keys().collect();
        keys.sort();
        for k in keys {
            parts.push(format!("{k}={}", ml[k].as_str().unwrap_or_default()));
        }
    }
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op}"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// The CONTAINERS and IMAGES cells of a pod template.
pub fn containers_and_images(template: &Value) -> (Value, Value) {
    let cs = template["spec"]["containers"].as_array();
    let names: Vec<&str> = cs
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    let images: Vec<&str> = cs
        .into_iter()
        .flatten()
        .filter_map(|c| c["image"].as_str())
        .collect();
    (json!(names.join(",")), json!(images.join(",")))
}

/// An integer cell (0 when absent).
pub fn int(v: &Value) -> Value {
    json!(v.as_i64().unwrap_or(0))
}

/// The wide columns every workload Table ends with.
pub const CONTAINERS_COLUMN: Column = Column::new(
    "Containers",
    "string",
    "",
    "Names of each container in the template.",
    1,
);
pub const IMAGES_COLUMN: Column = Column::new(
    "Images",
    "string",
    "",
    "Images referenced by each container in the template.",
    1,
);
pub const SELECTOR_COLUMN: Column = Column::new(
    "Selector",
    "string",
    "",
    "Selector is a label query over pods that should match the replica count.",
    1,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_and_render() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]});
        assert!(selector_matches(&sel, &json!({"app": "web", "tier": "a"})));
        assert!(!selector_matches(&sel, &json!({"app": "web", "tier": "c"})));
        assert!(!selector_matches(&sel, &json!({"tier": "a"})));
        assert_eq!(selector_string(&sel), "app=web,tier in (a,b)");
        assert_eq!(selector_string(&Value::Null), "<none>");
        assert_eq!(
            go_map(&json!({"b": "2", "a": "1"})),
            r#"map[string]string{"a":"1", "b":"2"}"#
        );
    }

    #[test]
    fn selector_rules() {
        let mut errs = Vec::new();
        validate_selector(
            &json!({"template": {"metadata": {"labels": {"app": "x"}}}}),
            "deployment",
            &mut errs,
        );
        assert_eq!(errs[0].field, "spec.selector");
        errs.clear();
        validate_selector(
            &json!({"selector": {"matchLabels": {"app": "y"}}, "template": {"metadata": {"labels": {"app": "x"}}}}),
            "deployment",
            &mut errs,
        );
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
        assert!(errs[0].detail.contains("does not match template"));
    }
}
