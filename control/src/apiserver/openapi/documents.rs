//! The served documents, computed once per set of served kinds: the OpenAPI v3 index and one v3 document per served
//! group-version, and the Swagger 2.0 document (JSON and gnostic protobuf), each with the hash
//! that names it (upper-case SHA-512 hex, as upstream).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prost::Message;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::catalog::DEFS_PREFIX;
use super::defs::definitions;
use super::gnostic;
use super::paths::{prefix, resource_paths, tag, v2_item, v3_item};
use crate::apiserver::crd::kinds;
use crate::apiserver::resources::{self, ResourceDef};

/// One document's bytes and hash.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub bytes: Vec<u8>,
    pub hash: String,
}

impl Doc {
    fn new(bytes: Vec<u8>) -> Doc {
        let digest = Sha512::digest(&bytes);
        let hash = digest.iter().map(|b| format!("{b:02X}")).collect();
        Doc { bytes, hash }
    }

    fn json(v: &Value) -> Doc {
        Doc::new(serde_json::to_vec(v).unwrap_or_default())
    }
}

/// Everything `/openapi/...` serves.
pub(crate) struct Documents {
    /// By `api/v1`, `apis/coordination.k8s.io/v1`.
    pub v3: BTreeMap<String, Doc>,
    pub v3_index: Doc,
    pub v2_json: Doc,
    pub v2_proto: Doc,
}

/// The `/openapi/v3` key of a group-version.
pub(crate) fn gv_key(group: &str, version: &str) -> String {
    prefix(group, version).trim_start_matches('/').to_string()
}

/// The Kubernetes version the documents claim (the one k8s-openapi's schemas come from).
const INFO_VERSION: &str = "v1.33.0";

fn served(group: &str, version: &str) -> Vec<&'static ResourceDef> {
    resources::all()
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
        .collect()
}

/// Rewrites `#/$defs/X` refs to `to` + X; for v3 a ref with siblings becomes `allOf: [ref]`
/// (OpenAPI 3.0 ignores siblings of `$ref`), for v2 int-or-string schemas get upstream's
/// `type: string, format: int-or-string`.
fn rewrite(v: &mut Value, to: &str, v3: bool) {
    match v {
        Value::Object(o) => {
            if let Some(Value::String(r)) = o.get_mut("$ref")
                && let Some(name) = r.strip_prefix(DEFS_PREFIX)
            {
                *r = format!("{to}{name}");
            }
            if v3 && o.len() > 1 && o.contains_key("$ref") {
                let r = o.remove("$ref").unwrap_or_default();
                o.insert("allOf".into(), json!([{"$ref": r}]));
            }
            if !v3 && o.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
                o.entry("type").or_insert_with(|| json!("string"));
                o.entry("format").or_insert_with(|| json!("int-or-string"));
            }
            o.values_mut().for_each(|x| rewrite(x, to, v3));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite(x, to, v3)),
        _ => {}
    }
}

fn v3_document(group: &str, version: &str) -> Value {
    let served = served(group, version);
    let t = tag(group, version);
    let mut paths = Map::new();
    for r in &served {
        for p in resource_paths(r) {
            paths.insert(p.path.clone(), v3_item(&p, &t));
        }
    }
    let schemas: Map<String, Value> = definitions(&served).into_iter().collect();
    let mut doc = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"},
            },
        },
        "security": [{"BearerToken": []}],
    });
    rewrite(&mut doc, "#/components/schemas/", true);
    doc
}

fn v2_document() -> Value {
    let all: Vec<&ResourceDef> = resources::all();
    let mut paths = Map::new();
    for r in &all {
        let t = tag(r.group, r.version);
        for p in resource_paths(r) {
            paths.insert(p.path.clone(), v2_item(&p, &t));
        }
    }
    let defs: Map<String, Value> = definitions(&all).into_iter().collect();
    let mut doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": INFO_VERSION},
        "paths": paths,
        "definitions": defs,
        "securityDefinitions": {
            "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"},
        },
        "security": [{"BearerToken": []}],
    });
    rewrite(&mut doc, "#/definitions/", false);
    doc
}

impl Documents {
    /// The documents, computed on first use and again after the custom kinds change.
    pub fn get() -> Arc<Documents> {
        static DOCS: Mutex<Option<(u64, Arc<Documents>)>> = Mutex::new(None);
        let mut cache = DOCS.lock().unwrap_or_else(|e| e.into_inner());
        let generation = kinds::generation();
        match cache.as_ref() {
            Some((g, docs)) if *g == generation => docs.clone(),
            _ => {
                let docs = Arc::new(Documents::build());
                *cache = Some((generation, docs.clone()));
                docs
            }
        }
    }

    fn build() -> Documents {
        let mut v3 = BTreeMap::new();
        let mut index = Map::new();
        for (group, version) in resources::group_versions() {
            let key = gv_key(group, version);
            let doc = Doc::json(&v3_document(group, version));
            index.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", doc.hash)}),
            );
            v3.insert(key, doc);
        }
        let v2 = v2_document();
        let v2_proto = Doc::new(gnostic::Document::from_json(&v2).encode_to_vec());
        Documents {
            v3,
            v3_index: Doc::json(&json!({"paths": index})),
            v2_json: Doc::json(&v2),
            v2_proto,
        }
    }
}
