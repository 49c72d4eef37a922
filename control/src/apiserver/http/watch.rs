//! Watch over HTTP: newline-delimited `{"type","object"}` JSON on a chunked response, objects
//! as one-row Tables when the client asked for a Table, ended by `timeoutSeconds`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use rand::Rng;
use serde_json::json;

use super::ApiState;
use super::request::{Query, Representation};
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::WatchEventType;
use crate::apiserver::resources::ResourceDef;
use crate::apiserver::table::table;

/// Starts a watch. With `name`, only that object (as `fieldSelector=metadata.name=<name>`).
pub async fn serve(
    state: &ApiState,
    def: &'static ResourceDef,
    ns: Option<&str>,
    name: Option<&str>,
    q: &Query,
    repr: Representation,
) -> Result<Response, ApiError> {
    let mut params = q.list_params()?;
    if let Some(n) = name {
        let pin = format!("metadata.name={n}");
        params.field_selector = Some(
            match params.field_selector.take().filter(|f| !f.is_empty()) {
                Some(f) => format!("{f},{pin}"),
                None => pin,
            },
        );
    }
    let timeout = match q.int("timeoutSeconds")? {
        Some(t) if t > 0 => Duration::from_secs(t as u64),
        // Kubernetes picks a random timeout between the minimum request timeout and twice it.
        _ => Duration::from_secs(rand::rng().random_range(1800..3600)),
    };
    let events = state
        .registry
        .watch_json(def, ns, &params, q.get("resourceVersion"))
        .await?;
    let mut first = true;
    let lines = events
        .take_until(tokio::time::sleep(timeout))
        .map(move |ev| {
            let object = match (repr, ev.kind) {
                (
                    Representation::Table(v, include),
                    WatchEventType::Added | WatchEventType::Modified | WatchEventType::Deleted,
                ) => {
                    let meta = json!({"resourceVersion": ev.object["metadata"]["resourceVersion"]});
                    let mut t = table(def, std::slice::from_ref(&ev.object), meta, include, first);
                    t["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
                    first = false;
                    t
                }
                _ => ev.object,
            };
            let mut line = serde_json::to_vec(&json!({"type": ev.kind.as_str(), "object": object}))
                .unwrap_or_default();
            line.push(b'\n');
            Ok::<_, std::convert::Infallible>(Bytes::from(line))
        });
    let mut r = Response::new(Body::from_stream(lines));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}
