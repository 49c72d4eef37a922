//! The structural-schema rules a CRD version's `openAPIV3Schema` must follow (as upstream
//! requires for apiextensions.k8s.io/v1): a `type` on every node (unless int-or-string or
//! preserve-unknown-fields), an object at the root, no `additionalProperties` next to
//! `properties`, and the `x-kubernetes-*` extensions used where they make sense.

use serde_json::Value;

use crate::apiserver::error::FieldError;

const TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];

/// Checks one schema node (and its children) at `path`.
pub fn check(s: &Value, path: &str, root: bool, errs: &mut Vec<FieldError>) {
    let Some(o) = s.as_object() else {
        errs.push(FieldError::invalid(
            path,
            &s.to_string(),
            "must be a schema object",
        ));
        return;
    };
    let int_or_string = s["x-kubernetes-int-or-string"] == Value::Bool(true);
    let preserve = s["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true);
    match s.get("type") {
        None if !int_or_string && !preserve => errs.push(FieldError {
            detail: "must not be empty for specified object fields".into(),
            ..FieldError::required(format!("{path}.type"))
        }),
        None => {}
        Some(Value::String(t)) if !TYPES.contains(&t.as_str()) => {
            errs.push(FieldError::not_supported(format!("{path}.type"), t, TYPES));
        }
        Some(Value::String(t)) if root && t != "object" => {
            errs.push(FieldError::invalid(
                format!("{path}.type"),
                t,
                "must be object at the root",
            ));
        }
        Some(Value::String(t)) if int_or_string => {
            errs.push(FieldError::invalid(
                format!("{path}.type"),
                t,
                "must be empty to be structural with x-kubernetes-int-or-string",
            ));
        }
        Some(Value::String(_)) => {}
        Some(other) => errs.push(FieldError::invalid_raw(
            format!("{path}.type"),
            other,
            "must be a string",
        )),
    }
    if root && s.get("type").is_none() {
        errs.push(FieldError::invalid(
            format!("{path}.type"),
            "",
            "must be object at the root",
        ));
    }
    if let Some(p) = o.get("x-kubernetes-preserve-unknown-fields")
        && *p != Value::Bool(true)
    {
        errs.push(FieldError::invalid_raw(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            p,
            "must be true or undefined",
        ));
    }
    if s["x-kubernetes-embedded-resource"] == Value::Bool(true) {
        if s["type"] != "object" {
            errs.push(FieldError::invalid_raw(
                format!("{path}.x-kubernetes-embedded-resource"),
                true,
                "must be used with type: object",
            ));
        }
        if s.get("properties").is_none() && !preserve {
            errs.push(FieldError::required(format!("{path}.properties")));
        }
    }
    if o.contains_key("$ref") {
        errs.push(FieldError::forbidden(
            format!("{path}.$ref"),
            "$ref is not supported",
        ));
    }
    if s["uniqueItems"] == Value::Bool(true) {
        errs.push(FieldError::forbidden(
            format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(props) = s["properties"].as_object() {
        if o.contains_key("additionalProperties") && s["additionalProperties"] != Value::Bool(false)
        {
            errs.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        for (name, sub) in props {
            check(sub, &format!("{path}.properties[{name}]"), false, errs);
        }
    }
    if s["additionalProperties"].is_object() {
        check(
            &s["additionalProperties"],
            &format!("{path}.additionalProperties"),
            false,
            errs,
        );
    }
    match s.get("items") {
        Some(items) if items.is_object() => check(items, &format!("{path}.items"), false, errs),
        Some(_) => errs.push(FieldError::forbidden(
            format!("{path}.items"),
            "items must be a schema object and not an array",
        )),
        None if s["type"] == "array" => errs.push(FieldError {
            detail: "must be specified".into(),
            ..FieldError::required(format!("{path}.items"))
        }),
        None => {}
    }
}
