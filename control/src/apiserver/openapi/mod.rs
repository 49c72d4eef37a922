//! OpenAPI documents for kubectl's client-side validation, `kubectl explain` and strategic merge:
//! `/openapi/v3` (index), `/openapi/v3/{api/v1 | apis/g/v}` (one OpenAPI 3.0 document per served
//! group-version, immutable under `?hash=`), `/openapi/v2` (Swagger 2.0 as JSON or gnostic
//! protobuf). Schemas come from k8s-openapi (generated from the upstream definitions), paths
//! from the resource table; documents are computed once. Also server-side `fieldValidation`.
//!
//! Layout: `catalog` (k8s-openapi's kinds and definitions), `defs` (the definitions a set of
//! resources needs), `paths` (operations), `documents` (assembly, hashes, cache), `gnostic`
//! (v2 protobuf messages), `fields` (unknown-field pruning).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};

use crate::apiserver::error::ApiError;

mod catalog;
mod defs;
mod documents;
mod fields;
pub mod gnostic;
mod paths;

pub use fields::{FieldValidation, Warnings, check_unknown_fields};

use documents::{Doc, Documents};

#[cfg(test)]
mod kubectl_tests;
#[cfg(test)]
mod tests;

/// The media type of the gnostic protobuf form of `/openapi/v2` (what the response says; clients
/// ask for the older `...spec.v2@v1.0+protobuf`, which Go's MIME parser rejects in a response).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

fn response(
    code: StatusCode,
    doc: Option<&Doc>,
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    let mut r = Response::new(match doc {
        Some(d) => Body::from(d.bytes.clone()),
        None => Body::empty(),
    });
    *r.status_mut() = code;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

/// A document with an ETag; 304 when the client already has it.
fn with_etag(doc: &Doc, headers: &HeaderMap, content_type: &'static str) -> Response {
    let etag = format!("\"{}\"", doc.hash);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if fresh {
        response(
            StatusCode::NOT_MODIFIED,
            None,
            content_type,
            "no-cache, private",
        )
    } else {
        response(StatusCode::OK, Some(doc), content_type, "no-cache, private")
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// Serves a request under `/openapi/`.
pub fn serve(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let docs = Documents::get();
    let path = uri.path().trim_end_matches('/');
    match path {
        "/openapi/v2" => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept.contains("protobuf") {
                Ok(with_etag(&docs.v2_proto, headers, V2_PROTOBUF))
            } else {
                Ok(with_etag(&docs.v2_json, headers, "application/json"))
            }
        }
        "/openapi/v3" => Ok(with_etag(&docs.v3_index, headers, "application/json")),
        _ => {
            let key = path
                .strip_prefix("/openapi/v3/")
                .ok_or_else(ApiError::no_route)?;
            let doc = docs.v3.get(key).ok_or_else(ApiError::no_route)?;
            let hash = uri.query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| k == "hash")
                    .map(|(_, v)| v.into_owned())
            });
            match hash {
                None => Ok(with_etag(doc, headers, "application/json")),
                Some(h) if h == doc.hash => {
                    let mut r = response(
                        StatusCode::OK,
                        Some(doc),
                        "application/json",
                        "public, immutable",
                    );
                    let expires = jiff::Timestamp::now()
                        .checked_add(jiff::SignedDuration::from_hours(24 * 365))
                        .unwrap_or_else(|_| jiff::Timestamp::now());
                    let text = jiff::fmt::rfc2822::DateTimePrinter::new()
                        .timestamp_to_rfc9110_string(&expires)
                        .unwrap_or_default();
                    if let Ok(v) = HeaderValue::from_str(&text) {
                        r.headers_mut().insert(header::EXPIRES, v);
                    }
                    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", doc.hash)) {
                        r.headers_mut().insert(header::ETAG, v);
                    }
                    Ok(r)
                }
                Some(_) => {
                    // An outdated hash: send the client to the current document.
                    let mut r = response(
                        StatusCode::MOVED_PERMANENTLY,
                        None,
                        "application/json",
                        "no-cache, private",
                    );
                    let to = format!("/openapi/v3/{key}?hash={}", doc.hash);
                    if let Ok(v) = HeaderValue::from_str(&to) {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    Ok(r)
                }
            }
        }
    }
}
