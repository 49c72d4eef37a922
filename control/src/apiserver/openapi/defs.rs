//! The definitions a set of served resources needs: each kind's schema from the catalog, a
//! synthesized `<Kind>List`, the meta kinds (Status, DeleteOptions), all closed over `$ref`, with
//! `x-kubernetes-group-version-kind` on every top-level kind and list.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::catalog::{Catalog, DEFS_PREFIX};
use crate::apiserver::crd::custom_kind;
use crate::apiserver::resources::ResourceDef;

pub(crate) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// A `$ref` to a definition, in the catalog's form.
pub(crate) fn def_ref(name: &str) -> Value {
    json!({ "$ref": format!("{DEFS_PREFIX}{name}") })
}

/// The definition names of a served resource: (kind, list).
pub(crate) fn names(def: &ResourceDef) -> (String, String) {
    let kind = match Catalog::get().kind(def.group, def.version, def.kind) {
        Some(k) => k.name.clone(),
        None if custom_kind(def).is_some() => custom_name(def),
        None => fallback_name(def),
    };
    let list = format!("{kind}List");
    (kind, list)
}

/// The name given to a served kind k8s-openapi does not know (its schema accepts anything).
fn fallback_name(def: &ResourceDef) -> String {
    let group = if def.group.is_empty() {
        "core"
    } else {
        def.group
    };
    format!("io.k8s.skiff.{group}.{}.{}", def.version, def.kind)
}

/// A custom resource's definition name as upstream publishes it (`com.example.stable.v1.CronTab`).
fn custom_name(def: &ResourceDef) -> String {
    let reversed: Vec<&str> = def.group.rsplit('.').collect();
    format!("{}.{}.{}", reversed.join("."), def.version, def.kind)
}

/// A custom resource's schema with the fields every object has (apiVersion, kind, metadata).
fn custom_schema(schema: &Value) -> Value {
    let catalog = Catalog::get();
    let doc = |field: &str| catalog.defs[STATUS]["properties"][field]["description"].clone();
    let mut s = schema.clone();
    if !s.is_object() {
        s = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    }
    let props = s
        .as_object_mut()
        .map(|o| o.entry("properties").or_insert_with(|| json!({})));
    if let Some(Value::Object(p)) = props {
        p.insert(
            "apiVersion".into(),
            json!({"description": doc("apiVersion"), "type": "string"}),
        );
        p.insert(
            "kind".into(),
            json!({"description": doc("kind"), "type": "string"}),
        );
        p.insert(
            "metadata".into(),
            json!({"allOf": [def_ref(OBJECT_META)], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
        );
    }
    s
}

fn gvk(def: &ResourceDef, kind: &str) -> Value {
    json!({"group": def.group, "kind": kind, "version": def.version})
}

fn add_gvk(schema: &mut Value, gvk: Value) {
    let list = schema
        .as_object_mut()
        .map(|o| {
            o.entry("x-kubernetes-group-version-kind")
                .or_insert_with(|| json!([]))
        })
        .and_then(Value::as_array_mut);
    if let Some(list) = list
        && !list.contains(&gvk)
    {
        list.push(gvk);
    }
}

fn list_schema(def: &ResourceDef, item: &str) -> Value {
    let catalog = Catalog::get();
    let doc = |field: &str| catalog.defs[STATUS]["properties"][field]["description"].clone();
    json!({
        "description": format!("{} is a list of {}.", def.list_kind(), def.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": doc("apiVersion"), "type": "string"},
            "items": {
                "description": format!("List of {}.", def.plural),
                "type": "array",
                "items": def_ref(item),
            },
            "kind": {"description": doc("kind"), "type": "string"},
            "metadata": {
                "allOf": [def_ref(LIST_META)],
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
            },
        },
    })
}

/// Every definition name a schema refers to.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(name) = o
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(DEFS_PREFIX))
            {
                out.push(name.to_string());
            }
            o.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// The definitions `resources` need (refs still in the catalog's `#/$defs/` form).
pub(crate) fn definitions(resources: &[&ResourceDef]) -> BTreeMap<String, Value> {
    let catalog = Catalog::get();
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for r in resources {
        let (kind, list) = names(r);
        let custom = custom_kind(r);
        let mut schema = match catalog.defs.get(&kind) {
            Some(s) => s.clone(),
            None if custom.is_some() => {
                custom_schema(&custom.map(|k| k.schema.clone()).unwrap_or_default())
            }
            None => json!({
                "description": format!("{} (schema not published by this server).", r.kind),
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
            }),
        };
        add_gvk(&mut schema, gvk(r, r.kind));
        out.insert(kind.clone(), schema);
        let mut ls = list_schema(r, &kind);
        add_gvk(&mut ls, gvk(r, &r.list_kind()));
        out.insert(list, ls);
    }
    let mut todo: Vec<String> = vec![STATUS.into(), DELETE_OPTIONS.into()];
    for v in out.values() {
        refs(v, &mut todo);
    }
    while let Some(name) = todo.pop() {
        if out.contains_key(&name) {
            continue;
        }
        if let Some(s) = catalog.defs.get(&name) {
            refs(s, &mut todo);
            out.insert(name, s.clone());
        }
    }
    out
}
