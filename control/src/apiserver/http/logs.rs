//! `GET pods/{name}/log`: resolves the container and the node, then streams what the node
//! returns through [`NodeStreams`](crate::apiserver::streams::NodeStreams) as chunked text.

use axum::body::Body;
use axum::response::Response;
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};

use super::ApiState;
use super::request::Query;
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::resource;
use crate::apiserver::streams::LogRequest;

/// Picks the container: the one named, or the only one; several and none named is a 400.
pub fn resolve_container(
    pod: &serde_json::Value,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names = |list: &str| -> Vec<String> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let containers = names("containers");
    let init = names("initContainers");
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if containers.iter().chain(&init).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => {
            let mut msg = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                msg.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(msg))
        }
    }
}

pub async fn serve(
    state: &ApiState,
    ns: &str,
    name: &str,
    q: &Query,
) -> Result<Response, ApiError> {
    let def = resource("", "pods")?;
    let pod = state.registry.get_json(def, Some(ns), name).await?;
    let container = resolve_container(&pod, q.get("container"))?;
    let node = pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let req = LogRequest {
        namespace: ns.to_string(),
        pod: name.to_string(),
        uid: pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        container,
        follow: q.flag("follow"),
        tail_lines: q.int("tailLines")?,
        since_seconds: q.int("sinceSeconds")?,
        since_time: q.get("sinceTime").map(str::to_string),
        timestamps: q.flag("timestamps"),
        previous: q.flag("previous"),
        limit_bytes: q.int("limitBytes")?,
    };
    if req.since_seconds.is_some() && req.since_time.is_some() {
        return Err(ApiError::bad_request(
            "at most one of sinceTime or sinceSeconds may be specified",
        ));
    }
    let stream = state.node_streams.logs(&node, req).await?;
    // An error mid-stream ends the body; the client sees a truncated log, as with a kubelet.
    let body = stream.map(|r| r.map_err(|e| std::io::Error::other(e.to_string())));
    let mut r = Response::new(Body::from_stream(body));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_resolution() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        assert_eq!(resolve_container(&one, None).unwrap(), "a");
        assert_eq!(
            resolve_container(&one, Some("b")).unwrap_err().to_string(),
            "container b is not valid for pod p"
        );
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let e = resolve_container(&two, None).unwrap_err();
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.to_string(),
            "a container name must be specified for pod p, choose one of: [a b]"
        );
        assert_eq!(resolve_container(&two, Some("b")).unwrap(), "b");
    }
}
