//! The generic strategy hooks every custom kind shares: they find the object's kind by its
//! `apiVersion`/`kind` in the dynamic table and apply that version's schema (pruning,
//! defaulting, validation), drop `status` on create when it is a subresource, and render Table
//! rows from `additionalPrinterColumns`.

use serde_json::{Value, json};

use super::kinds::of_object;
use super::schema;
use crate::apiserver::error::FieldError;
use crate::apiserver::table::{age, object_age};

/// Prunes unknown fields and applies the schema's defaults.
pub fn defaults(obj: &mut Value) {
    let Some(kind) = of_object(obj) else { return };
    schema::prune(&kind.schema, obj);
    schema::default(&kind.schema, obj);
}

/// On create, `status` is ignored when it is a subresource (as upstream).
pub fn prepare_create(obj: &mut Value) {
    let Some(kind) = of_object(obj) else { return };
    if kind.def.has_status()
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
}

/// Validates the object against its version's schema (metadata is checked generically).
pub fn validate(obj: &Value) -> Vec<FieldError> {
    let Some(kind) = of_object(obj) else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let mut s = kind.schema.clone();
    // metadata is validated by the registry; its schema here is only `type: object`.
    if let Some(props) = s["properties"].as_object_mut() {
        props.remove("metadata");
        props.remove("apiVersion");
        props.remove("kind");
    }
    schema::validate(&s, obj, "", &mut errs);
    errs
}

/// One Table row: the name, then each printer column's value.
pub fn row(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let mut cells = vec![obj["metadata"]["name"].clone()];
    let Some(kind) = of_object(obj) else {
        cells.push(object_age(obj, now));
        return cells;
    };
    for c in &kind.columns {
        let v = schema::json_path(obj, &c.json_path).cloned();
        cells.push(match (c.kind.as_str(), v) {
            (_, None) | (_, Some(Value::Null)) => Value::Null,
            ("date", Some(v)) => json!(age(&v, now)),
            ("string", Some(Value::String(s))) => json!(s),
            ("string", Some(other)) => json!(other.to_string()),
            ("integer", Some(v)) if v.is_i64() || v.is_u64() => v,
            ("number", Some(v)) if v.is_number() => v,
            ("boolean", Some(v)) if v.is_boolean() => v,
            (_, Some(v)) => v,
        });
    }
    cells
}
