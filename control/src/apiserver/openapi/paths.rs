//! The operations of the served resources, derived from the resource table (collection, item,
//! all-namespaces list, `status` subresource), rendered as OpenAPI v3 or v2 path items. Each
//! operation carries `x-kubernetes-action` and `x-kubernetes-group-version-kind`; writes list the
//! `fieldValidation` parameter, which is how kubectl learns the server validates fields itself.

use serde_json::{Map, Value, json};

use super::defs::{DELETE_OPTIONS, STATUS, def_ref, names};
use crate::apiserver::resources::ResourceDef;

/// A parameter (query or path).
#[derive(Debug, Clone, Copy)]
struct Param {
    name: &'static str,
    location: &'static str,
    ty: &'static str,
    description: &'static str,
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description,
    }
}

const NAME: Param = Param {
    name: "name",
    location: "path",
    ty: "string",
    description: "name of the resource",
};
const NAMESPACE: Param = Param {
    name: "namespace",
    location: "path",
    ty: "string",
    description: "object name and auth scope, such as for teams and projects",
};
const PRETTY: Param = query(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed.",
);
const DRY_RUN: Param = query(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
);
const FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes.",
);
const FIELD_VALIDATION: Param = query(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
);
const FORCE: Param = query(
    "force",
    "boolean",
    "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people.",
);
const GRACE: Param = query(
    "gracePeriodSeconds",
    "integer",
    "The duration in seconds before the object should be deleted.",
);
const PROPAGATION: Param = query(
    "propagationPolicy",
    "string",
    "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
);
const LIST_PARAMS: &[Param] = &[
    query(
        "allowWatchBookmarks",
        "boolean",
        "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
    ),
    query(
        "continue",
        "string",
        "The continue option should be set when retrieving more results from the server.",
    ),
    query(
        "fieldSelector",
        "string",
        "A selector to restrict the list of returned objects by their fields.",
    ),
    query(
        "labelSelector",
        "string",
        "A selector to restrict the list of returned objects by their labels.",
    ),
    query(
        "limit",
        "integer",
        "limit is a maximum number of responses to return for a list call.",
    ),
    query(
        "resourceVersion",
        "string",
        "resourceVersion sets a constraint on what resource versions a request may be served from.",
    ),
    query(
        "timeoutSeconds",
        "integer",
        "Timeout for the list/watch call.",
    ),
    query(
        "watch",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.",
    ),
];

/// What an operation takes as its body.
#[derive(Debug, Clone)]
enum Body {
    None,
    Object(String),
    Patch,
    DeleteOptions,
}

#[derive(Debug, Clone)]
struct Op {
    method: &'static str,
    action: &'static str,
    id: String,
    description: String,
    params: Vec<Param>,
    body: Body,
    response: String,
}

/// One path with its operations.
#[derive(Debug, Clone)]
pub(crate) struct PathDef {
    pub path: String,
    params: Vec<Param>,
    ops: Vec<Op>,
    gvk: Value,
}

/// `Core`, `Coordination`, `RbacAuthorization`: the group part of an operation id.
fn group_title(group: &str) -> String {
    if group.is_empty() {
        return "Core".into();
    }
    group
        .trim_end_matches(".k8s.io")
        .split(['.', '-'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The URL prefix of a group-version: `/api/v1` or `/apis/{group}/{version}`.
pub(crate) fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// The paths of one served resource.
pub(crate) fn resource_paths(r: &ResourceDef) -> Vec<PathDef> {
    let (kind_def, list_def) = names(r);
    let gv = format!("{}{}", group_title(r.group), title(r.version));
    let ns = if r.namespaced { "Namespaced" } else { "" };
    let base = prefix(r.group, r.version);
    let coll = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{base}/{}", r.plural)
    };
    let scope: Vec<Param> = if r.namespaced {
        vec![NAMESPACE, PRETTY]
    } else {
        vec![PRETTY]
    };
    let gvk = json!({"group": r.group, "kind": r.kind, "version": r.version});
    let op = |method, action, verb: &str, sub: &str, params: &[Param], body, response: &str| Op {
        method,
        action,
        id: format!("{verb}{gv}{ns}{}{sub}", r.kind),
        description: format!("{verb} {} {}", sub.to_lowercase(), r.kind).replace("  ", " "),
        params: params.to_vec(),
        body,
        response: response.to_string(),
    };
    let write = [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
    let patch = [DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE];
    let delete = [DRY_RUN, GRACE, PROPAGATION];
    let mut out = vec![
        PathDef {
            path: coll.clone(),
            params: scope.clone(),
            ops: vec![
                op(
                    "get",
                    "list",
                    "list",
                    "",
                    LIST_PARAMS,
                    Body::None,
                    &list_def,
                ),
                op(
                    "post",
                    "post",
                    "create",
                    "",
                    &write,
                    Body::Object(kind_def.clone()),
                    &kind_def,
                ),
                op(
                    "delete",
                    "deletecollection",
                    "deleteCollection",
                    "",
                    &[LIST_PARAMS, &delete].concat(),
                    Body::DeleteOptions,
                    STATUS,
                ),
            ],
            gvk: gvk.clone(),
        },
        PathDef {
            path: format!("{coll}/{{name}}"),
            params: [&[NAME][..], &scope].concat(),
            ops: vec![
                op("get", "get", "read", "", &[], Body::None, &kind_def),
                op(
                    "put",
                    "put",
                    "replace",
                    "",
                    &write,
                    Body::Object(kind_def.clone()),
                    &kind_def,
                ),
                op(
                    "patch",
                    "patch",
                    "patch",
                    "",
                    &patch,
                    Body::Patch,
                    &kind_def,
                ),
                op(
                    "delete",
                    "delete",
                    "delete",
                    "",
                    &delete,
                    Body::DeleteOptions,
                    &kind_def,
                ),
            ],
            gvk: gvk.clone(),
        },
    ];
    if r.namespaced {
        out.push(PathDef {
            path: format!("{base}/{}", r.plural),
            params: vec![PRETTY],
            ops: vec![Op {
                id: format!("list{gv}{}ForAllNamespaces", r.kind),
                ..op(
                    "get",
                    "list",
                    "list",
                    "",
                    LIST_PARAMS,
                    Body::None,
                    &list_def,
                )
            }],
            gvk: gvk.clone(),
        });
    }
    if r.has_status() {
        out.push(PathDef {
            path: format!("{coll}/{{name}}/status"),
            params: [&[NAME][..], &scope].concat(),
            ops: vec![
                op("get", "get", "read", "Status", &[], Body::None, &kind_def),
                op(
                    "put",
                    "put",
                    "replace",
                    "Status",
                    &write,
                    Body::Object(kind_def.clone()),
                    &kind_def,
                ),
                op(
                    "patch",
                    "patch",
                    "patch",
                    "Status",
                    &patch,
                    Body::Patch,
                    &kind_def,
                ),
            ],
            gvk,
        });
    }
    out
}

const PATCH_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

fn common_op(op: &Op, gvk: &Value, tag: &str) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("tags".into(), json!([tag]));
    o.insert("description".into(), json!(op.description));
    o.insert("operationId".into(), json!(op.id));
    o.insert("x-kubernetes-action".into(), json!(op.action));
    o.insert("x-kubernetes-group-version-kind".into(), gvk.clone());
    o
}

fn v3_param(p: &Param) -> Value {
    let mut v = json!({
        "name": p.name,
        "in": p.location,
        "description": p.description,
        "schema": {"type": p.ty, "uniqueItems": true},
    });
    if p.location == "path" {
        v["required"] = json!(true);
    }
    v
}

fn v2_param(p: &Param) -> Value {
    let mut v = json!({
        "name": p.name,
        "in": p.location,
        "description": p.description,
        "type": p.ty,
        "uniqueItems": true,
    });
    if p.location == "path" {
        v["required"] = json!(true);
    }
    v
}

/// The path item in OpenAPI v3 form (refs in the catalog's form).
pub(crate) fn v3_item(p: &PathDef, tag: &str) -> Value {
    let mut item = Map::new();
    for op in &p.ops {
        let mut o = common_op(op, &p.gvk, tag);
        o.insert(
            "parameters".into(),
            op.params.iter().map(v3_param).collect(),
        );
        let body_schema = match &op.body {
            Body::None => None,
            Body::Object(name) => Some((vec!["*/*"], def_ref(name))),
            Body::DeleteOptions => Some((vec!["*/*"], def_ref(DELETE_OPTIONS))),
            Body::Patch => Some((PATCH_TYPES.to_vec(), json!({"type": "object"}))),
        };
        if let Some((types, schema)) = body_schema {
            let content: Map<String, Value> = types
                .into_iter()
                .map(|t| (t.to_string(), json!({"schema": schema.clone()})))
                .collect();
            o.insert(
                "requestBody".into(),
                json!({"content": content, "required": !matches!(op.body, Body::DeleteOptions)}),
            );
        }
        let ok = json!({"schema": def_ref(&op.response)});
        o.insert(
            "responses".into(),
            json!({
                "200": {"description": "OK", "content": {"application/json": ok, "application/yaml": ok}},
                "401": {"description": "Unauthorized"},
            }),
        );
        item.insert(op.method.into(), Value::Object(o));
    }
    item.insert("parameters".into(), p.params.iter().map(v3_param).collect());
    Value::Object(item)
}

/// The path item in Swagger 2.0 form (refs in the catalog's form).
pub(crate) fn v2_item(p: &PathDef, tag: &str) -> Value {
    let mut item = Map::new();
    for op in &p.ops {
        let mut o = common_op(op, &p.gvk, tag);
        let consumes: Vec<&str> = match op.body {
            Body::Patch => PATCH_TYPES.to_vec(),
            _ => vec!["*/*"],
        };
        o.insert("consumes".into(), json!(consumes));
        o.insert(
            "produces".into(),
            json!(["application/json", "application/yaml"]),
        );
        o.insert("schemes".into(), json!(["https"]));
        let mut params: Vec<Value> = Vec::new();
        let body = match &op.body {
            Body::None => None,
            Body::Object(name) => Some((def_ref(name), true)),
            Body::DeleteOptions => Some((def_ref(DELETE_OPTIONS), false)),
            Body::Patch => Some((json!({"type": "object"}), true)),
        };
        if let Some((schema, required)) = body {
            params.push(
                json!({"name": "body", "in": "body", "required": required, "schema": schema}),
            );
        }
        params.extend(op.params.iter().map(v2_param));
        o.insert("parameters".into(), Value::Array(params));
        o.insert(
            "responses".into(),
            json!({
                "200": {"description": "OK", "schema": def_ref(&op.response)},
                "401": {"description": "Unauthorized"},
            }),
        );
        item.insert(op.method.into(), Value::Object(o));
    }
    item.insert("parameters".into(), p.params.iter().map(v2_param).collect());
    Value::Object(item)
}

/// The tag of a group-version's operations (`core_v1`, `coordination_v1`).
pub(crate) fn tag(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "core".to_string()
    } else {
        group.trim_end_matches(".k8s.io").replace('.', "_")
    };
    format!("{g}_{version}")
}
