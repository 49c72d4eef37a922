//! Custom objects against their version's structural OpenAPI v3 schema: validation with
//! upstream's messages (types, required, enum, pattern, bounds, formats, nullable), defaulting
//! from `default:`, and pruning of fields the schema does not declare.

use serde_json::{Map, Value};

use crate::apiserver::error::{FieldError, FieldErrorKind};

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The JSON type name upstream reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(want: &str, v: &Value) -> bool {
    match want {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        _ => true,
    }
}

/// A value rendered as upstream's `Invalid value:` does (strings quoted).
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn invalid(path: &str, value: &Value, detail: String) -> FieldError {
    FieldError::invalid_raw(path, render(value), detail)
}

fn is_date_time(s: &str) -> bool {
    s.parse::<jiff::Timestamp>().is_ok()
}

fn check_format(format: &str, path: &str, v: &Value, errs: &mut Vec<FieldError>) {
    let ok = match (format, v) {
        ("int32", Value::Number(n)) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        ("int64", Value::Number(n)) => n.as_i64().is_some(),
        ("date-time", Value::String(s)) => is_date_time(s),
        ("date", Value::String(s)) => s.parse::<jiff::civil::Date>().is_ok(),
        _ => true,
    };
    if !ok {
        errs.push(invalid(
            path,
            v,
            format!("{path} in body must be of type {format}: {}", render(v)),
        ));
    }
}

fn check_number(s: &Value, path: &str, v: &Value, errs: &mut Vec<FieldError>) {
    let Some(x) = v.as_f64() else { return };
    if let Some(min) = s["minimum"].as_f64() {
        let excl = s["exclusiveMinimum"] == Value::Bool(true);
        if (excl && x <= min) || (!excl && x < min) {
            let word = if excl {
                "greater than"
            } else {
                "greater than or equal to"
            };
            errs.push(invalid(
                path,
                v,
                format!("{path} in body should be {word} {}", s["minimum"]),
            ));
        }
    }
    if let Some(max) = s["maximum"].as_f64() {
        let excl = s["exclusiveMaximum"] == Value::Bool(true);
        if (excl && x >= max) || (!excl && x > max) {
            let word = if excl {
                "less than"
            } else {
                "less than or equal to"
            };
            errs.push(invalid(
                path,
                v,
                format!("{path} in body should be {word} {}", s["maximum"]),
            ));
        }
    }
    if let Some(m) = s["multipleOf"].as_f64().filter(|m| *m > 0.0)
        && (x / m).fract() != 0.0
    {
        errs.push(invalid(
            path,
            v,
            format!("{path} in body should be a multiple of {}", s["multipleOf"]),
        ));
    }
}

fn check_string(s: &Value, path: &str, text: &str, v: &Value, errs: &mut Vec<FieldError>) {
    let len = text.chars().count() as u64;
    if let Some(min) = s["minLength"].as_u64().filter(|m| len < *m) {
        errs.push(invalid(
            path,
            v,
            format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(max) = s["maxLength"].as_u64().filter(|m| len > *m) {
        errs.push(FieldError {
            field: path.to_string(),
            kind: FieldErrorKind::TooLong,
            value: None,
            detail: format!("may not be more than {max} bytes"),
        });
    }
    if let Some(p) = s["pattern"].as_str() {
        match regex::Regex::new(p) {
            Ok(re) if re.is_match(text) => {}
            _ => errs.push(invalid(
                path,
                v,
                format!("{path} in body should match '{p}'"),
            )),
        }
    }
}

/// Validates `v` (at `path`) against `s`, appending upstream-style errors.
pub fn validate(s: &Value, v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if !s.is_object() {
        return;
    }
    if v.is_null() {
        if s["nullable"] == Value::Bool(true) || s.get("type").is_none() {
            return;
        }
        errs.push(invalid(
            path,
            &Value::String("null".into()),
            format!(
                "{path} in body must be of type {}: \"null\"",
                s["type"].as_str().unwrap_or_default()
            ),
        ));
        return;
    }
    if s["x-kubernetes-int-or-string"] == Value::Bool(true) {
        if !(v.is_string() || v.is_i64() || v.is_u64()) {
            errs.push(invalid(
                path,
                &Value::String(type_name(v).into()),
                format!(
                    "{path} in body must be of type integer,string: \"{}\"",
                    type_name(v)
                ),
            ));
        }
        return;
    }
    if let Some(t) = s["type"].as_str()
        && !type_matches(t, v)
    {
        let got = type_name(v);
        errs.push(invalid(
            path,
            &Value::String(got.into()),
            format!("{path} in body must be of type {t}: \"{got}\""),
        ));
        return;
    }
    if let Some(allowed) = s["enum"].as_array()
        && !allowed.contains(v)
    {
        let list: Vec<String> = allowed.iter().map(render).collect();
        errs.push(FieldError {
            field: path.to_string(),
            kind: FieldErrorKind::NotSupported,
            value: Some(render(v)),
            detail: format!("supported values: {}", list.join(", ")),
        });
    }
    if let Some(f) = s["format"].as_str() {
        check_format(f, path, v, errs);
    }
    match v {
        Value::Number(_) => check_number(s, path, v, errs),
        Value::String(text) => check_string(s, path, text, v, errs),
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(min) = s["minItems"].as_u64().filter(|m| n < *m) {
                errs.push(invalid(
                    path,
                    v,
                    format!("{path} in body should have at least {min} items"),
                ));
            }
            if let Some(max) = s["maxItems"].as_u64().filter(|m| n > *m) {
                errs.push(invalid(
                    path,
                    v,
                    format!("{path} in body should have at most {max} items"),
                ));
            }
            if s["uniqueItems"] == Value::Bool(true) {
                for (i, x) in items.iter().enumerate() {
                    if items[..i].contains(x) {
                        errs.push(FieldError::duplicate(format!("{path}[{i}]"), &render(x)));
                    }
                }
            }
            for (i, x) in items.iter().enumerate() {
                validate(&s["items"], x, &format!("{path}[{i}]"), errs);
            }
        }
        Value::Object(o) => {
            let n = o.len() as u64;
            if let Some(min) = s["minProperties"].as_u64().filter(|m| n < *m) {
                errs.push(invalid(
                    path,
                    v,
                    format!("{path} in body should have at least {min} properties"),
                ));
            }
            if let Some(max) = s["maxProperties"].as_u64().filter(|m| n > *m) {
                errs.push(invalid(
                    path,
                    v,
                    format!("{path} in body should have at most {max} properties"),
                ));
            }
            for r in s["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !o.contains_key(r) {
                    errs.push(FieldError::required(join(path, r)));
                }
            }
            let props = s["properties"].as_object();
            for (k, x) in o {
                if let Some(sub) = props.and_then(|p| p.get(k)) {
                    validate(sub, x, &join(path, k), errs);
                } else if s["additionalProperties"].is_object() {
                    validate(&s["additionalProperties"], x, &join(path, k), errs);
                }
            }
        }
        _ => {}
    }
}

/// Fills in `default:` values of missing properties, recursively; a `null` where the schema
/// does not allow one is defaulted or dropped (upstream's handling of non-nullable nulls).
pub fn default(s: &Value, v: &mut Value) {
    match v {
        Value::Object(o) => {
            if let Some(props) = s["properties"].as_object() {
                for (k, sub) in props {
                    let nullable = sub["nullable"] == Value::Bool(true);
                    let missing = match o.get(k) {
                        None => true,
                        Some(Value::Null) if !nullable => {
                            o.remove(k);
                            true
                        }
                        Some(_) => false,
                    };
                    if missing && let Some(d) = sub.get("default") {
                        o.insert(k.clone(), d.clone());
                    }
                }
                for (k, x) in o.iter_mut() {
                    if let Some(sub) = props.get(k) {
                        default(sub, x);
                    }
                }
            } else if s["additionalProperties"].is_object() {
                for x in o.values_mut() {
                    default(&s["additionalProperties"], x);
                }
            }
        }
        Value::Array(items) if s["items"].is_object() => {
            for x in items {
                default(&s["items"], x);
            }
        }
        _ => {}
    }
}

/// The fields every object (and embedded resource) has beyond its schema.
const TYPE_META: &[&str] = &["apiVersion", "kind", "metadata"];

fn prune_object(
    s: &Value,
    o: &mut Map<String, Value>,
    path: &str,
    root: bool,
    out: &mut Vec<String>,
) {
    let embedded = root || s["x-kubernetes-embedded-resource"] == Value::Bool(true);
    let preserve = s["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true);
    let props = s["properties"].as_object();
    let additional = &s["additionalProperties"];
    let keys: Vec<String> = o.keys().cloned().collect();
    for k in keys {
        if embedded && TYPE_META.contains(&k.as_str()) {
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        let p = join(path, &k);
        let sub = props
            .and_then(|p| p.get(&k))
            .or(additional.is_object().then_some(additional));
        match sub {
            Some(sub) => {
                if let Some(child) = o.get_mut(&k) {
                    prune_value(sub, child, &p, out);
                }
            }
            None if preserve || *additional == Value::Bool(true) => {}
            None => {
                o.remove(&k);
                out.push(p);
            }
        }
    }
}

fn prune_value(s: &Value, v: &mut Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(o) if s["x-kubernetes-int-or-string"] != Value::Bool(true) => {
            if s.get("type").is_none()
                && s.get("properties").is_none()
                && s["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
            {
                return;
            }
            prune_object(s, o, path, false, out);
        }
        Value::Array(items) if s["items"].is_object() => {
            for (i, x) in items.iter_mut().enumerate() {
                prune_value(&s["items"], x, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Removes the fields of a whole object the schema does not declare (apiVersion, kind and
/// metadata are always kept) and returns their paths (`spec.foo`).
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Object(o) = obj {
        prune_object(schema, o, "", true, &mut out);
    }
    out
}

/// Evaluates a printer column's JSONPath (`.spec.replicas`, `.metadata.labels['a']`,
/// `.spec.items[0].name`, optionally in `{}`) on an object.
pub fn json_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let mut cur = obj;
    let mut rest = path.trim_start_matches('$');
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            cur = cur.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim_matches(|c| c == '\'' || c == '"');
            cur = match inner.parse::<usize>() {
                Ok(i) if cur.is_array() => cur.get(i)?,
                _ => cur.get(inner)?,
            };
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(cur)
}

/// Splits a simple `.a.b.c` path into its fields (the scale subresource's paths).
pub fn path_fields(path: &str) -> Vec<&str> {
    path.split('.').filter(|s| !s.is_empty()).collect()
}
