//! The `scale` subresource (GET, PUT, PATCH of an autoscaling/v1 `Scale`), as `kubectl scale`
//! and autoscalers use it: the Scale is a view of the workload's `spec.replicas`, and a write
//! is a read-modify-write of the workload through the registry (retried on conflicts unless
//! the client sent a resourceVersion precondition).

use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use serde_json::Value;

use super::request::{Query, decode_body};
use super::{ApiState, json_response};
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::{PatchType, Subresource, WriteParams, object};
use crate::apiserver::resources::ResourceDef;
use crate::apiserver::resources::scale::{requested_replicas, scale_of};

const RETRIES: usize = 8;

/// Handles one request on `<workload>/scale`.
#[allow(clippy::too_many_arguments, reason = "the parts of a request")]
pub async fn serve(
    state: &ApiState,
    method: Method,
    def: &'static ResourceDef,
    ns: Option<&str>,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let reg = &state.registry;
    let params = WriteParams {
        dry_run: q.dry_run()?,
    };
    match method {
        Method::GET => Ok(json_response(
            StatusCode::OK,
            &scale_of(&reg.get_json(def, ns, name).await?),
        )),
        Method::PUT => {
            let scale = decode_body(headers, body)?;
            check_name(&scale, name)?;
            let precondition = object::resource_version(&scale)?;
            write(
                state,
                (def, ns, name),
                (q, headers),
                params,
                precondition,
                |_| Ok(scale.clone()),
            )
            .await
        }
        Method::PATCH => {
            let ct = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let kind = PatchType::from_content_type(ct)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            write(
                state,
                (def, ns, name),
                (q, headers),
                params,
                None,
                |current| {
                    let mut scale = current.clone();
                    apply(&mut scale, kind, &patch)?;
                    Ok(scale)
                },
            )
            .await
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn check_name(scale: &Value, name: &str) -> Result<(), ApiError> {
    match scale["metadata"]["name"].as_str() {
        Some(n) if !n.is_empty() && n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

/// A Scale has no lists, so a strategic merge patch is a merge patch here.
fn apply(scale: &mut Value, kind: PatchType, patch: &Value) -> Result<(), ApiError> {
    if matches!(kind, PatchType::Json) {
        let p: json_patch::Patch = serde_json::from_value(patch.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
        json_patch::patch(scale, &p).map_err(|e| {
            ApiError::bad_request(format!(
                "the server rejected our request due to an error in our request: {e}"
            ))
        })
    } else {
        if !patch.is_object() {
            return Err(ApiError::bad_request("a merge patch must be a JSON object"));
        }
        json_patch::merge(scale, patch);
        Ok(())
    }
}

/// Reads the workload, computes the new Scale from the current one, and writes the replicas.
async fn write(
    state: &ApiState,
    (def, ns, name): (&'static ResourceDef, Option<&str>, &str),
    (q, headers): (&Query, &HeaderMap),
    params: WriteParams,
    precondition: Option<crate::store::Revision>,
    new_scale: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<Response, ApiError> {
    let reg = &state.registry;
    let manager = super::handlers::field_manager(q, headers)?.map(|m| m.via("scale"));
    for _ in 0..RETRIES {
        let mut obj = reg.get_json(def, ns, name).await?;
        let current_rv = object::resource_version(&obj)?;
        if precondition.is_some() && precondition != current_rv {
            return Err(ApiError::conflict(def.group, def.plural, name));
        }
        let scale = new_scale(&scale_of(&obj))?;
        obj["spec"]["replicas"] = Value::from(requested_replicas(def, name, &scale)?);
        match reg
            .update_json_as(def, ns, name, obj, Subresource::Main, params, manager)
            .await
        {
            Ok(updated) => return Ok(json_response(StatusCode::OK, &scale_of(&updated))),
            Err(ApiError::Conflict { .. }) if precondition.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(def.group, def.plural, name))
}
