//! What custom resources need from the HTTP layer beyond the generic handlers: the `scale`
//! subresource over the CRD's replica paths, and the 415 upstream answers to a strategic merge
//! patch (custom kinds have no patch strategies).

use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};

use super::kinds::{CustomKind, by_def};
use super::schema::{json_path, path_fields};
use crate::apiserver::error::ApiError;
use crate::apiserver::http::json_response;
use crate::apiserver::http::request::{Query, decode_body};
use crate::apiserver::registry::{PatchType, Registry, Subresource, WriteParams, object};
use crate::apiserver::resources::ResourceDef;
use crate::apiserver::resources::scale::requested_replicas;

const RETRIES: usize = 8;

/// Computes the new Scale from the current one.
type ScaleFn = Box<dyn Fn(&Value) -> Result<Value, ApiError> + Send + Sync>;

/// 415 for a strategic merge patch of a custom object (or `None`: not applicable).
pub fn reject_strategic(
    def: &ResourceDef,
    method: &Method,
    headers: &HeaderMap,
) -> Option<ApiError> {
    if *method != Method::PATCH || by_def(def).is_none() {
        return None;
    }
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ct.starts_with("application/strategic-merge-patch+json")
        .then(|| ApiError::unsupported_media_type(ct))
}

/// The `Scale` view of a custom object.
fn scale_of(kind: &CustomKind, obj: &Value) -> Value {
    let paths = kind.scale.as_ref();
    let int = |p: Option<&str>| {
        p.and_then(|p| json_path(obj, p))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let selector = paths
        .and_then(|p| p.label_selector.as_deref())
        .and_then(|p| json_path(obj, p))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"],
            "namespace": m["namespace"],
            "uid": m["uid"],
            "resourceVersion": m["resourceVersion"],
            "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": int(paths.map(|p| p.spec_replicas.as_str()))},
        "status": {
            "replicas": int(paths.map(|p| p.status_replicas.as_str())),
            "selector": selector,
        },
    })
}

fn set_path(obj: &mut Value, path: &str, value: Value) {
    let mut cur = obj;
    let fields = path_fields(path);
    for (i, f) in fields.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        if i + 1 == fields.len() {
            cur[*f] = value;
            return;
        }
        cur = &mut cur[*f];
    }
}

fn patched(scale: &Value, kind: PatchType, patch: &Value) -> Result<Value, ApiError> {
    let mut out = scale.clone();
    match kind {
        PatchType::Json => {
            let p: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut out, &p).map_err(|e| {
                ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                ))
            })?;
        }
        _ if !patch.is_object() => {
            return Err(ApiError::bad_request("a merge patch must be a JSON object"));
        }
        _ => json_patch::merge(&mut out, patch),
    }
    Ok(out)
}

/// GET, PUT and PATCH of `<custom object>/scale`.
#[allow(clippy::too_many_arguments, reason = "the parts of a request")]
pub async fn scale(
    registry: &Registry,
    method: &Method,
    def: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let kind = by_def(def)
        .filter(|k| k.scale.is_some())
        .ok_or_else(ApiError::no_route)?;
    let paths = kind.scale.clone().ok_or_else(ApiError::no_route)?;
    let params = WriteParams {
        dry_run: q.dry_run()?,
    };
    let (new_scale, precondition): (ScaleFn, _) = match *method {
        Method::GET => {
            let obj = registry.get_json(def, ns, name).await?;
            return Ok(json_response(StatusCode::OK, &scale_of(&kind, &obj)));
        }
        Method::PUT => {
            let s = decode_body(headers, body)?;
            if let Some(n) = s["metadata"]["name"]
                .as_str()
                .filter(|n| !n.is_empty() && *n != name)
            {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            let pre = object::resource_version(&s)?;
            (Box::new(move |_| Ok(s.clone())), pre)
        }
        Method::PATCH => {
            let ct = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let pt = PatchType::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            (Box::new(move |cur| patched(cur, pt, &patch)), None)
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    for _ in 0..RETRIES {
        let mut obj = registry.get_json(def, ns, name).await?;
        let rv = object::resource_version(&obj)?;
        if precondition.is_some() && precondition != rv {
            return Err(ApiError::conflict(def.group, def.plural, name));
        }
        let s = new_scale(&scale_of(&kind, &obj))?;
        let replicas = requested_replicas(def, name, &s)?;
        set_path(&mut obj, &paths.spec_replicas, json!(replicas));
        match registry
            .update_json(def, ns, name, obj, Subresource::Main, params)
            .await
        {
            Ok(updated) => return Ok(json_response(StatusCode::OK, &scale_of(&kind, &updated))),
            Err(ApiError::Conflict { .. }) if precondition.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(def.group, def.plural, name))
}
