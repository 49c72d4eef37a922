//! Server-side field validation (`fieldValidation=Strict|Warn|Ignore`): fields a kind's schema
//! does not know are dropped from the request object, and reported as a 400 (Strict), as
//! `Warning` headers (Warn, the default) or not at all (Ignore) — Kubernetes' behaviour.

use axum::response::Response;
use http::HeaderValue;
use serde_json::Value;

use super::catalog::Catalog;
use super::defs::names;
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::ResourceDef;

/// What `fieldValidation` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter (absent or empty: Warn, the Kubernetes default).
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value.unwrap_or("") {
            "" | "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            "Strict" => Ok(FieldValidation::Strict),
            other => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}: must be one of Ignore, Warn or Strict"
            ))),
        }
    }
}

/// Warnings to send with the response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct Warnings(pub Vec<String>);

impl Warnings {
    /// Adds one `Warning: 299 - "..."` header per warning.
    pub fn attach(self, mut resp: Response) -> Response {
        for w in self.0 {
            let text = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
            if let Ok(v) = HeaderValue::from_str(&text) {
                resp.headers_mut().append(http::header::WARNING, v);
            }
        }
        resp
    }
}

/// Drops the fields of `obj` (a whole object of kind `def`, or a merge/strategic/apply patch of
/// one) that the kind's schema does not know, and reports them per `directive`. Patch directives
/// (`$patch`, `$setElementOrder/...`, ...) are left alone.
pub fn check_unknown_fields(
    def: &ResourceDef,
    directive: Option<&str>,
    obj: &mut Value,
) -> Result<Warnings, ApiError> {
    let mode = FieldValidation::parse(directive)?;
    let unknown = if let Some(kind) = crate::apiserver::crd::custom_kind(def) {
        crate::apiserver::crd::schema::prune(&kind.schema, obj)
    } else {
        let (name, _) = names(def);
        let catalog = Catalog::get();
        let Some(schema) = catalog.defs.get(&name) else {
            return Ok(Warnings::default());
        };
        let mut unknown = Vec::new();
        prune(catalog, schema, obj, "", &mut unknown);
        unknown
    };
    let messages: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match mode {
        FieldValidation::Strict if !messages.is_empty() => Err(ApiError::bad_request(format!(
            "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
            messages.join(", "),
            kind = def.kind,
            v = def.version,
        ))),
        FieldValidation::Warn => Ok(Warnings(messages)),
        _ => Ok(Warnings::default()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Walks `v` along `schema`, removing and recording unknown object keys.
fn prune(catalog: &Catalog, schema: &Value, v: &mut Value, path: &str, out: &mut Vec<String>) {
    let schema = catalog.resolve(schema);
    if schema["x-kubernetes-preserve-unknown-fields"] == true
        || schema["x-kubernetes-embedded-resource"] == true
    {
        return;
    }
    match v {
        Value::Object(obj) => {
            if let Some(props) = schema["properties"].as_object() {
                let keys: Vec<String> = obj.keys().cloned().collect();
                for k in keys {
                    if k.starts_with('$') {
                        continue;
                    }
                    let p = join(path, &k);
                    match props.get(&k) {
                        Some(sub) => {
                            if let Some(child) = obj.get_mut(&k) {
                                prune(catalog, sub, child, &p, out);
                            }
                        }
                        None => {
                            obj.remove(&k);
                            out.push(p);
                        }
                    }
                }
            } else if schema["additionalProperties"].is_object() {
                let sub = &schema["additionalProperties"];
                for (k, child) in obj.iter_mut() {
                    prune(catalog, sub, child, &join(path, k), out);
                }
            }
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, child) in items.iter_mut().enumerate() {
                prune(
                    catalog,
                    &schema["items"],
                    child,
                    &format!("{path}[{i}]"),
                    out,
                );
            }
        }
        _ => {}
    }
}
