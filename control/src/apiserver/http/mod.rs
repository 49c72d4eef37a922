//! The HTTP face of the API server: an axum Router with the version and health endpoints,
//! bearer auth, and one dispatcher that parses Kubernetes resource paths and maps each verb onto
//! the registry. Handlers only parse and encode; the semantics live in the registry.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::{Value, json};

use super::auth::{Auth, require_token};
use super::error::ApiError;
use super::registry::Registry;
use super::streams::NodeStreams;

mod channel;
mod custom;
mod discovery;
mod exec;
mod handlers;
mod logs;
pub mod request;
mod scale;
mod spdy;
mod watch;

#[cfg(test)]
mod tests;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    pub registry: Registry,
    pub node_streams: Arc<dyn NodeStreams>,
    pub version_minor: u32,
    /// Authentication and the authorizer the request path consults.
    pub auth: Auth,
}

/// The API server's Router (serve it with [`super::serve`]).
pub fn router(
    registry: Registry,
    node_streams: Arc<dyn NodeStreams>,
    auth: Auth,
    version_minor: u32,
) -> Router {
    crate::apiserver::crd::spawn(registry.clone());
    let state = ApiState {
        registry,
        node_streams,
        version_minor,
        auth: auth.clone(),
    };
    Router::new()
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/healthz/{check}", get(ok))
        .route("/livez/{check}", get(ok))
        .route("/readyz/{check}", get(ok))
        // No fallback: the control binary merges this Router with the node protocol's (tonic)
        // one, and axum refuses to merge two fallbacks. Unknown paths under these prefixes get
        // a NotFound Status from the dispatcher.
        .route("/api", any(dispatch))
        .route("/api/{*rest}", any(dispatch))
        .route("/apis", any(dispatch))
        .route("/apis/{*rest}", any(dispatch))
        .route("/openapi/{*rest}", any(dispatch))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(auth, require_token))
}

/// `/version`: the reported minor picks the kubectl the dispatcher runs.
pub fn version_info(minor: u32) -> Value {
    json!({
        "major": "1",
        "minor": minor.to_string(),
        "gitVersion": format!("v1.{minor}.0-skiff"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": format!("linux/{}", match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

async fn version(State(state): State<ApiState>) -> Response {
    json_response(StatusCode::OK, &version_info(state.version_minor))
}

async fn ok() -> &'static str {
    "ok"
}

/// A JSON response.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    json_response_typed(code, body, "application/json")
}

pub(crate) fn json_response_typed(
    code: StatusCode,
    body: &Value,
    content_type: &'static str,
) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The Status response for an error.
pub fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_value(e.status()).unwrap_or(Value::Null);
    json_response(code, &body)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

async fn dispatch(State(state): State<ApiState>, req: Request) -> Response {
    // Authorization: one decision per request, from its RequestInfo attributes.
    let user = req.extensions().get::<super::auth::UserInfo>().cloned();
    if let Err(e) = super::authz::authorize_request(
        state.auth.authorizer(),
        user.as_ref(),
        req.method(),
        req.uri(),
    )
    .await
    {
        return error_response(&e);
    }
    // Streaming subresources take the request's parts (they upgrade the connection); the rest
    // read the body first.
    if let Some((ns, name, sub)) = stream_subresource(req.uri().path()) {
        let (parts, _body) = req.into_parts();
        let served = match sub.as_str() {
            "portforward" => spdy::portforward::serve(&state, parts, &ns, &name).await,
            _ => exec::serve(&state, parts, &ns, &name, &sub).await,
        };
        return served.unwrap_or_else(|e| error_response(&e));
    }
    let (method, uri, headers) = (
        req.method().clone(),
        req.uri().clone(),
        req.headers().clone(),
    );
    let body = match Bytes::from_request(req, &state).await {
        Ok(b) => b,
        Err(rejection) => return rejection.into_response(),
    };
    let path = uri.path();
    // The create-only authentication/authorization objects (token requests, reviews).
    if let Some(r) = super::authz::api::serve(
        &state.auth,
        &state.registry,
        user.as_ref(),
        &method,
        path,
        &headers,
        &body,
    )
    .await
    {
        return r.unwrap_or_else(|e| error_response(&e));
    }
    let query = request::Query::parse(uri.query());
    let result = if path.starts_with("/openapi/") {
        super::openapi::serve(&method, &uri, &headers)
    } else {
        match request::parse_path(path) {
            Ok(request::Target::Resource(r)) => {
                custom::serve(&state, method, r, query, &headers, body).await
            }
            Ok(other) if method == Method::GET => Ok(discovery::serve(other, &headers)),
            Ok(_) => Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            )),
            Err(e) => Err(e),
        }
    };
    result.unwrap_or_else(|e| error_response(&e))
}

/// `(namespace, pod, subresource)` when `path` names a pod's exec, attach or portforward.
fn stream_subresource(path: &str) -> Option<(String, String, String)> {
    let request::Target::Resource(r) = request::parse_path(path).ok()? else {
        return None;
    };
    let sub = r.subresource.as_deref()?;
    if r.def.group.is_empty()
        && r.def.plural == "pods"
        && matches!(sub, "exec" | "attach" | "portforward")
    {
        return Some((r.namespace?, r.name?, sub.to_string()));
    }
    None
}
