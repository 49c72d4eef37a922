//! Resource requests with custom resources in mind: a custom object's `scale` subresource and
//! strategic-merge patches are answered by the crd module, everything else by the generic
//! handlers; after a write to a CRD the served kinds are synced before the answer goes out.

use axum::body::Bytes;
use axum::response::Response;
use http::{HeaderMap, Method};

use super::request::{Query, ResourcePath};
use super::{ApiState, handlers};
use crate::apiserver::crd;
use crate::apiserver::error::ApiError;

/// Handles one request on a resource path.
pub async fn serve(
    state: &ApiState,
    method: Method,
    r: ResourcePath,
    q: Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if let Some(e) = crd::http::reject_strategic(r.def, &method, headers) {
        return Err(e);
    }
    if r.subresource.as_deref() == Some("scale")
        && crd::custom_kind(r.def).is_some()
        && let Some(name) = r.name.as_deref()
    {
        return crd::http::scale(
            &state.registry,
            &method,
            r.def,
            r.namespace.as_deref(),
            name,
            &q,
            headers,
            &body,
        )
        .await;
    }
    let crd_write = crd::is_crd(r.def) && method != Method::GET;
    let resp = handlers::resource(state, method, r, q, headers, body).await;
    if crd_write && let Err(e) = crd::sync(&state.registry).await {
        tracing::warn!(error = %e, "syncing custom resource definitions");
    }
    resp
}
