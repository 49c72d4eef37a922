//! The dynamic kinds: one leaked `ResourceDef` per served version of an established CRD, kept
//! in a process-wide table that the resource lookups consult after the static table, with the
//! version's schema, printer columns and scale paths for the generic custom-object hooks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use super::objects;
use crate::apiserver::resources::{
    ResourceDef, SCALE_SUBRESOURCE, STATUS_SUBRESOURCE, Strategy, SubresourceDef, TableDef,
};
use crate::apiserver::table::{AGE_COLUMN, Column, NAME_COLUMN};

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub kind: String,
    pub json_path: String,
}

/// The scale subresource's paths (`.spec.replicas`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One served version of a custom resource.
#[derive(Debug)]
pub struct CustomKind {
    pub def: &'static ResourceDef,
    /// The CRD's name and uid (the table is keyed by uid).
    pub crd_name: String,
    pub crd_uid: String,
    /// The CRD's resourceVersion this entry was built from.
    pub crd_revision: String,
    /// Which registry (store) registered it, so one process can host several.
    pub owner: usize,
    /// `openAPIV3Schema` of the version.
    pub schema: Value,
    pub columns: Vec<PrinterColumn>,
    pub scale: Option<ScalePaths>,
    pub storage: bool,
}

static KINDS: RwLock<Vec<Arc<CustomKind>>> = RwLock::new(Vec::new());
static GENERATION: AtomicU64 = AtomicU64::new(0);

fn read() -> std::sync::RwLockReadGuard<'static, Vec<Arc<CustomKind>>> {
    KINDS.read().unwrap_or_else(|e| e.into_inner())
}

/// Bumped on every change of the table (discovery and OpenAPI caches key on it).
pub fn generation() -> u64 {
    GENERATION.load(Ordering::SeqCst)
}

/// Every served custom kind version.
pub fn all() -> Vec<Arc<CustomKind>> {
    read().clone()
}

/// The kind served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    read()
        .iter()
        .find(|k| k.def.group == group && k.def.version == version && k.def.plural == plural)
        .map(|k| k.def)
}

/// The storage version's definition of `group/plural` (any served version as a fallback).
pub fn find_plural(group: &str, plural: &str) -> Option<&'static ResourceDef> {
    let kinds = read();
    let mut matching = kinds
        .iter()
        .filter(|k| k.def.group == group && k.def.plural == plural);
    let first = matching.next()?;
    Some(
        std::iter::once(first)
            .chain(matching)
            .find(|k| k.storage)
            .unwrap_or(first)
            .def,
    )
}

/// The custom kind behind a definition, if it is one.
pub fn by_def(def: &ResourceDef) -> Option<Arc<CustomKind>> {
    read()
        .iter()
        .find(|k| {
            k.def.group == def.group && k.def.version == def.version && k.def.plural == def.plural
        })
        .cloned()
}

/// The custom kind of an object (by its `apiVersion` and `kind`).
pub fn of_object(obj: &Value) -> Option<Arc<CustomKind>> {
    let api_version = obj["apiVersion"].as_str()?;
    let kind = obj["kind"].as_str()?;
    let (group, version) = api_version.split_once('/')?;
    read()
        .iter()
        .find(|k| k.def.group == group && k.def.version == version && k.def.kind == kind)
        .cloned()
}

/// The served group-versions of custom kinds, in first-seen order.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for k in read().iter() {
        if !out.contains(&(k.def.group, k.def.version)) {
            out.push((k.def.group, k.def.version));
        }
    }
    out
}

/// The CRD uids `owner` has registered, with the revision each was built from.
pub(crate) fn registered(owner: usize) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for k in read().iter().filter(|k| k.owner == owner) {
        if !out.iter().any(|(u, _)| *u == k.crd_uid) {
            out.push((k.crd_uid.clone(), k.crd_revision.clone()));
        }
    }
    out
}

/// Replaces the kinds of one CRD (by uid) with `kinds` (empty: stops serving it).
pub(crate) fn replace(crd_uid: &str, kinds: Vec<CustomKind>) {
    let mut table = KINDS.write().unwrap_or_else(|e| e.into_inner());
    table.retain(|k| k.crd_uid != crd_uid);
    table.extend(kinds.into_iter().map(Arc::new));
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_strings(v: &Value) -> &'static [&'static str] {
    let list: Vec<&'static str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(leak).collect())
        .unwrap_or_default();
    Box::leak(list.into_boxed_slice())
}

/// The printer columns of a CRD version (upstream shows Age when none are declared).
fn printer_columns(version: &Value) -> Vec<PrinterColumn> {
    let declared: Vec<PrinterColumn> = version["additionalPrinterColumns"]
        .as_array()
        .map(|cols| {
            cols.iter()
                .map(|c| PrinterColumn {
                    name: c["name"].as_str().unwrap_or_default().to_string(),
                    kind: c["type"].as_str().unwrap_or("string").to_string(),
                    json_path: c["jsonPath"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if declared.is_empty() {
        vec![PrinterColumn {
            name: "Age".into(),
            kind: "date".into(),
            json_path: ".metadata.creationTimestamp".into(),
        }]
    } else {
        declared
    }
}

fn table_columns(version: &Value, columns: &[PrinterColumn]) -> &'static [Column] {
    let declared = version["additionalPrinterColumns"].as_array();
    let mut out = vec![NAME_COLUMN];
    for (i, c) in columns.iter().enumerate() {
        let spec = declared
            .and_then(|d| d.get(i))
            .cloned()
            .unwrap_or(Value::Null);
        if c.name == "Age" && c.kind == "date" && spec.is_null() {
            out.push(AGE_COLUMN);
            continue;
        }
        out.push(Column::new(
            leak(&c.name),
            leak(&c.kind),
            leak(spec["format"].as_str().unwrap_or_default()),
            leak(spec["description"].as_str().unwrap_or_default()),
            spec["priority"].as_i64().unwrap_or(0) as i32,
        ));
    }
    Box::leak(out.into_boxed_slice())
}

/// The kinds an established CRD serves (one per served version), owned by `owner`.
pub(crate) fn build(crd: &Value, owner: usize) -> Vec<CustomKind> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let group = leak(spec["group"].as_str().unwrap_or_default());
    let plural = leak(names["plural"].as_str().unwrap_or_default());
    let storage = leak(&format!("{group}/{plural}"));
    let singular = leak(names["singular"].as_str().unwrap_or_default());
    let kind = leak(names["kind"].as_str().unwrap_or_default());
    let short_names = leak_strings(&names["shortNames"]);
    let categories = leak_strings(&names["categories"]);
    let namespaced = spec["scope"] != "Cluster";
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"] != json!(true) {
            continue;
        }
        let subs = &v["subresources"];
        let scale = subs
            .get("scale")
            .filter(|s| s.is_object())
            .map(|s| ScalePaths {
                spec_replicas: s["specReplicasPath"]
                    .as_str()
                    .unwrap_or(".spec.replicas")
                    .into(),
                status_replicas: s["statusReplicasPath"]
                    .as_str()
                    .unwrap_or(".status.replicas")
                    .into(),
                label_selector: s["labelSelectorPath"].as_str().map(str::to_string),
            });
        let mut subresources: Vec<SubresourceDef> = Vec::new();
        if subs.get("scale").is_some_and(Value::is_object) {
            subresources.push(SCALE_SUBRESOURCE);
        }
        if subs.get("status").is_some_and(Value::is_object) {
            subresources.push(STATUS_SUBRESOURCE);
        }
        let columns = printer_columns(v);
        let def = ResourceDef {
            group,
            version: leak(v["name"].as_str().unwrap_or_default()),
            plural,
            singular,
            kind,
            namespaced,
            short_names,
            categories,
            subresources: Box::leak(subresources.into_boxed_slice()),
            tracks_generation: true,
            strategy: Strategy {
                defaults: objects::defaults,
                prepare_create: objects::prepare_create,
                validate: objects::validate,
                ..Strategy::PLAIN
            },
            table: TableDef {
                columns: table_columns(v, &columns),
                row: objects::row,
            },
            storage,
            ..ResourceDef::BASE
        };
        out.push(CustomKind {
            def: Box::leak(Box::new(def)),
            crd_name: crd["metadata"]["name"].as_str().unwrap_or_default().into(),
            crd_uid: crd["metadata"]["uid"].as_str().unwrap_or_default().into(),
            crd_revision: crd["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .into(),
            owner,
            schema: v["schema"]["openAPIV3Schema"].clone(),
            columns,
            scale,
            storage: v["storage"] == json!(true),
        });
    }
    out
}
