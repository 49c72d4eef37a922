//! Resource verbs over HTTP: get, list (JSON or Table), create, update, patch, delete,
//! deletecollection, status, binding; watch and log are delegated to their modules.

use axum::body::Bytes;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use super::request::{Query, Representation, ResourcePath, decode_body, negotiate};
use super::{ApiState, json_response, logs, scale, watch};
use crate::apiserver::error::ApiError;
use crate::apiserver::openapi::{Warnings, check_unknown_fields};
use crate::apiserver::registry::{
    FieldManager, JsonList, PatchType, Subresource, WriteParams, apply::manager_required,
    is_apply_content_type,
};
use crate::apiserver::resources::ResourceDef;
use crate::apiserver::table::table;

fn not_allowed() -> ApiError {
    ApiError::method_not_allowed("the server does not allow this method on the requested resource")
}

/// Renders a single object as JSON or a one-row Table.
fn object_response(
    code: StatusCode,
    def: &ResourceDef,
    obj: &Value,
    repr: Representation,
) -> Response {
    match repr {
        Representation::Json => json_response(code, obj),
        Representation::Table(v, include) => {
            let mut t = table(
                def,
                std::slice::from_ref(obj),
                json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                include,
                true,
            );
            t["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
            json_response(code, &t)
        }
    }
}

fn list_meta(list: &JsonList) -> Value {
    let mut meta = json!({"resourceVersion": list.resource_version.to_string()});
    if let Some(c) = &list.continue_token {
        meta["continue"] = json!(c);
    }
    meta
}

fn list_response(def: &ResourceDef, list: JsonList, repr: Representation) -> Response {
    match repr {
        Representation::Json => json_response(
            StatusCode::OK,
            &json!({
                "kind": def.list_kind(),
                "apiVersion": def.group_version(),
                "metadata": list_meta(&list),
                "items": list.items,
            }),
        ),
        Representation::Table(v, include) => {
            let mut t = table(def, &list.items, list_meta(&list), include, true);
            t["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
            json_response(StatusCode::OK, &t)
        }
    }
}

fn write_params(q: &Query) -> Result<WriteParams, ApiError> {
    Ok(WriteParams {
        dry_run: q.dry_run()?,
    })
}

/// The writer recorded in `managedFields`: `fieldManager`, else the User-Agent's product.
pub(super) fn field_manager(
    q: &Query,
    headers: &HeaderMap,
) -> Result<Option<FieldManager>, ApiError> {
    let ua = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    FieldManager::from_request(q.get("fieldManager"), ua)
}

/// Handles one request on a resource path.
pub async fn resource(
    state: &ApiState,
    method: Method,
    r: ResourcePath,
    q: Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let reg = &state.registry;
    let def = r.def;
    let ns = r.namespace.as_deref();
    let repr = negotiate(headers, &q);
    match (r.name.as_deref(), r.subresource.as_deref()) {
        (None, _) => match method {
            Method::GET if q.flag("watch") => watch::serve(state, def, ns, None, &q, repr).await,
            Method::GET => {
                let params = q.list_params()?;
                let list = reg.list_json(def, ns, &params).await?;
                Ok(list_response(def, list, repr))
            }
            Method::POST => {
                if def.namespaced && ns.is_none() {
                    return Err(not_allowed());
                }
                let mut obj = decode_body(headers, &body)?;
                let warnings = check_unknown_fields(def, q.get("fieldValidation"), &mut obj)?;
                let manager = field_manager(&q, headers)?;
                let created = reg
                    .create_json_as(def, ns, obj, write_params(&q)?, manager)
                    .await?;
                Ok(warnings.attach(object_response(StatusCode::CREATED, def, &created, repr)))
            }
            Method::DELETE => {
                let opts_body = decode_body(headers, &body).ok();
                let params = q.delete_params(opts_body.as_ref())?;
                let deleted = reg
                    .delete_collection_json(def, ns, &q.list_params()?, &params)
                    .await?;
                let list = JsonList {
                    items: deleted,
                    resource_version: reg.store().revision(),
                    continue_token: None,
                };
                Ok(list_response(def, list, Representation::Json))
            }
            _ => Err(not_allowed()),
        },
        (Some(name), None) => match method {
            Method::GET if q.flag("watch") => {
                watch::serve(state, def, ns, Some(name), &q, repr).await
            }
            Method::GET => Ok(object_response(
                StatusCode::OK,
                def,
                &reg.get_json(def, ns, name).await?,
                repr,
            )),
            Method::PUT => {
                put(
                    state,
                    def,
                    ns,
                    name,
                    Subresource::Main,
                    &q,
                    headers,
                    &body,
                    repr,
                )
                .await
            }
            Method::PATCH => {
                patch(
                    state,
                    def,
                    ns,
                    name,
                    Subresource::Main,
                    &q,
                    headers,
                    &body,
                    repr,
                )
                .await
            }
            Method::DELETE => {
                let opts_body = decode_body(headers, &body).ok();
                let params = q.delete_params(opts_body.as_ref())?;
                let obj = reg.delete_json(def, ns, name, &params).await?;
                Ok(object_response(
                    StatusCode::OK,
                    def,
                    &obj,
                    Representation::Json,
                ))
            }
            _ => Err(not_allowed()),
        },
        (Some(name), Some("status")) => match method {
            Method::GET => Ok(object_response(
                StatusCode::OK,
                def,
                &reg.get_json(def, ns, name).await?,
                repr,
            )),
            Method::PUT => {
                put(
                    state,
                    def,
                    ns,
                    name,
                    Subresource::Status,
                    &q,
                    headers,
                    &body,
                    repr,
                )
                .await
            }
            Method::PATCH => {
                patch(
                    state,
                    def,
                    ns,
                    name,
                    Subresource::Status,
                    &q,
                    headers,
                    &body,
                    repr,
                )
                .await
            }
            _ => Err(not_allowed()),
        },
        (Some(name), Some("binding")) => match method {
            Method::POST => {
                let binding = decode_body(headers, &body)?;
                let target = binding["target"]["name"].as_str().unwrap_or_default();
                if target.is_empty() {
                    return Err(ApiError::invalid(
                        "",
                        "Binding",
                        name,
                        vec![crate::apiserver::error::FieldError::required("target.name")],
                    ));
                }
                if let Some(n) = binding["metadata"]["name"]
                    .as_str()
                    .filter(|n| !n.is_empty() && *n != name)
                {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                if !write_params(&q)?.dry_run {
                    reg.bind_pod_json(ns.unwrap_or_default(), name, target)
                        .await?;
                }
                Ok(json_response(
                    StatusCode::CREATED,
                    &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
                ))
            }
            _ => Err(not_allowed()),
        },
        (Some(name), Some("scale")) => {
            scale::serve(state, method, def, ns, name, &q, headers, &body).await
        }
        (Some(name), Some("log")) => match method {
            Method::GET => logs::serve(state, ns.unwrap_or_default(), name, &q).await,
            _ => Err(not_allowed()),
        },
        _ => Err(ApiError::no_route()),
    }
}

/// PUT of an object or its status: a full replacement, unknown fields checked first.
#[allow(clippy::too_many_arguments, reason = "the parts of a PUT request")]
async fn put(
    state: &ApiState,
    def: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Subresource,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
    repr: Representation,
) -> Result<Response, ApiError> {
    let mut obj = decode_body(headers, body)?;
    let warnings = check_unknown_fields(def, q.get("fieldValidation"), &mut obj)?;
    let manager = field_manager(q, headers)?;
    let updated = state
        .registry
        .update_json_as(def, ns, name, obj, sub, write_params(q)?, manager)
        .await?;
    Ok(warnings.attach(object_response(StatusCode::OK, def, &updated, repr)))
}

#[allow(clippy::too_many_arguments, reason = "the parts of a PATCH request")]
async fn patch(
    state: &ApiState,
    def: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Subresource,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
    repr: Representation,
) -> Result<Response, ApiError> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if is_apply_content_type(ct) {
        return apply(state, def, (ns, name), sub, q, body, repr).await;
    }
    let kind =
        PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    let mut patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let warnings = match kind {
        PatchType::Json => Warnings::default(),
        _ => check_unknown_fields(def, q.get("fieldValidation"), &mut patch)?,
    };
    let manager = field_manager(q, headers)?;
    let obj = state
        .registry
        .patch_json_as(def, ns, name, kind, &patch, sub, write_params(q)?, manager)
        .await?;
    Ok(warnings.attach(object_response(StatusCode::OK, def, &obj, repr)))
}

/// Server-side apply: the body is the applied configuration (YAML or JSON); `fieldManager` is
/// required, `force=true` takes conflicting fields over. 201 when the apply created the object.
async fn apply(
    state: &ApiState,
    def: &'static ResourceDef,
    (ns, name): (Option<&str>, &str),
    sub: Subresource,
    q: &Query,
    body: &[u8],
    repr: Representation,
) -> Result<Response, ApiError> {
    let manager = match q.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => FieldManager::new(m)?,
        None => return Err(manager_required()),
    };
    let mut config: Value = serde_yaml::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    let warnings = check_unknown_fields(def, q.get("fieldValidation"), &mut config)?;
    let existed = state.registry.get_json(def, ns, name).await.is_ok();
    let obj = state
        .registry
        .apply_json(
            def,
            ns,
            name,
            &config,
            q.flag("force"),
            sub,
            write_params(q)?,
            Some(manager),
        )
        .await?;
    let code = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(warnings.attach(object_response(code, def, &obj, repr)))
}
