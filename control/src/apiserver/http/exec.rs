//! `pods/{name}/exec` (and `attach`, refused for now): checks the pod and the request, then
//! relays a WebSocket `v5.channel.k8s.io` / `v4.channel.k8s.io` connection (see
//! [`super::channel`]) or, for kubectl before 1.30, a SPDY/3.1 one (see [`super::spdy::exec`])
//! to a session on the pod's node.

use axum::extract::FromRequestParts;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use serde_json::Value;

use super::ApiState;
use super::channel::{self, ClientFrame, Protocol};
use super::logs::resolve_container;
use super::spdy;
use crate::apiserver::error::ApiError;
use crate::apiserver::registry::resource;
use crate::apiserver::streams::{ExecRequest, FromNode, ToNode};

/// The parameters of an exec request (`command` repeats, one per argument).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecParams {
    pub command: Vec<String>,
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecParams {
    pub fn parse(raw: Option<&str>) -> Result<ExecParams, ApiError> {
        let mut p = ExecParams::default();
        let flag = |v: &str| matches!(v, "true" | "1" | "True");
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            match &*k {
                "command" => p.command.push(v.into_owned()),
                "container" => p.container = Some(v.into_owned()),
                "stdin" => p.stdin = flag(&v),
                "stdout" => p.stdout = flag(&v),
                "stderr" => p.stderr = flag(&v),
                "tty" => p.tty = flag(&v),
                _ => {}
            }
        }
        if !(p.stdin || p.stdout || p.stderr) {
            return Err(ApiError::bad_request(
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        // With a terminal, stderr is merged into stdout.
        if p.tty {
            p.stderr = false;
        }
        Ok(p)
    }
}

/// Serves `GET|POST pods/{name}/exec` or `attach` (`sub`).
pub async fn serve(
    state: &ApiState,
    mut parts: Parts,
    ns: &str,
    name: &str,
    sub: &str,
) -> Result<Response, ApiError> {
    if sub == "attach" {
        return Err(ApiError::bad_request(
            "attach is not supported by this node yet: containers' stdio go to their log files; use exec",
        ));
    }
    let params = ExecParams::parse(parts.uri.query())?;
    if params.command.is_empty() {
        return Err(ApiError::bad_request(
            "you must specify at least one command for the container",
        ));
    }
    let def = resource("", "pods")?;
    let pod = state.registry.get_json(def, Some(ns), name).await?;
    let container = resolve_container(&pod, params.container.as_deref())?;
    let node = check_pod(&pod, name)?;
    let req = ExecRequest {
        namespace: ns.to_string(),
        pod: name.to_string(),
        uid: pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        container,
        command: params.command.clone(),
        stdin: params.stdin,
        stdout: params.stdout,
        stderr: params.stderr,
        tty: params.tty,
    };
    if spdy::conn::wants_spdy(&parts.headers) {
        spdy::exec::check(&parts.headers)?;
        let on_upgrade = spdy::conn::take_upgrade(&mut parts)?;
        let session = state.node_streams.exec(&node, req).await?;
        return Ok(spdy::exec::start(on_upgrade, params, session));
    }
    let is_websocket = parts
        .headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_websocket {
        return Err(ApiError::bad_request(
            "exec needs a WebSocket (v5.channel.k8s.io) or SPDY/3.1 (v4.channel.k8s.io) upgrade",
        ));
    }
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, state)
        .await
        .map_err(|e| ApiError::bad_request(format!("bad WebSocket upgrade: {e}")))?
        .protocols(Protocol::NAMES);
    let Some(protocol) = upgrade
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Protocol::from_name)
    else {
        return Err(ApiError::bad_request(format!(
            "no supported WebSocket subprotocol; use one of {:?}",
            Protocol::NAMES
        )));
    };
    let session = state.node_streams.exec(&node, req).await?;
    Ok(upgrade.on_upgrade(move |ws| async move {
        relay(ws, protocol, params, session).await;
    }))
}

/// The node of a pod that can run commands: bound, and not finished.
fn check_pod(pod: &Value, name: &str) -> Result<String, ApiError> {
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    if let Some(phase @ ("Succeeded" | "Failed")) = pod["status"]["phase"].as_str() {
        return Err(ApiError::bad_request(format!(
            "cannot exec into a container in a completed pod; current phase is {phase}"
        )));
    }
    Ok(node.to_string())
}

/// Moves bytes between the client's WebSocket and the node's session until the command ends,
/// then sends the Status on the error channel and closes.
async fn relay(
    mut ws: WebSocket,
    protocol: Protocol,
    params: ExecParams,
    mut session: crate::apiserver::streams::NodeSession,
) {
    let status = loop {
        tokio::select! {
            msg = ws.recv() => {
                let data = match msg {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Text(t))) => Bytes::from(t.as_str().as_bytes().to_vec()),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        // The client is gone: dropping the session stops the command.
                        return;
                    }
                    Some(Ok(_)) => continue,
                };
                let to_node = match channel::decode_client(protocol, &data) {
                    Some(ClientFrame::Stdin(d)) if params.stdin => ToNode::Data { channel: 0, data: d },
                    Some(ClientFrame::CloseStdin) => ToNode::Close { channel: 0 },
                    Some(ClientFrame::Resize { width, height }) => ToNode::Resize { width, height },
                    _ => continue,
                };
                if session.input.send(to_node).await.is_err() {
                    break channel::failure_status("the node ended the session");
                }
            }
            out = session.output.recv() => match out {
                Some(FromNode::Data { channel, data }) => {
                    let wanted = match channel {
                        1 => params.stdout,
                        2 => params.stderr,
                        _ => false,
                    };
                    if wanted && ws.send(Message::Binary(channel::encode(channel, &data))).await.is_err() {
                        return;
                    }
                }
                Some(FromNode::End { exit_code, error }) => {
                    break channel::exit_status(exit_code, error.as_deref(), &params.command);
                }
                None => break channel::failure_status("the node did not answer or went away"),
            }
        }
    };
    // Closing the session tells the node it may go.
    drop(session);
    let body = serde_json::to_vec(&status).unwrap_or_default();
    let _ = ws
        .send(Message::Binary(channel::encode(channel::ERROR, &body)))
        .await;
    // A normal closure (1000) is what the client reads as the end of every stream.
    let close = axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    };
    let _ = ws.send(Message::Close(Some(close))).await;
    // Let the client read the Status and close its side.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(m)) = ws.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_keep_every_command_argument_in_order() {
        let p = ExecParams::parse(Some(
            "command=sh&command=-c&command=echo+a%20b&container=app&stdout=true&stderr=true",
        ))
        .unwrap();
        assert_eq!(p.command, ["sh", "-c", "echo a b"]);
        assert_eq!(p.container.as_deref(), Some("app"));
        assert!(p.stdout && p.stderr && !p.stdin && !p.tty);
    }

    #[test]
    fn params_need_a_stream_and_tty_merges_stderr() {
        let e = ExecParams::parse(Some("command=true")).unwrap_err();
        assert_eq!(e.code(), 400);
        let p = ExecParams::parse(Some("command=sh&stdin=1&stdout=1&stderr=1&tty=1")).unwrap();
        assert!(p.tty && p.stdin && p.stdout && !p.stderr);
    }

    #[test]
    fn finished_or_unscheduled_pods_refuse_exec() {
        let pending = serde_json::json!({"spec": {}});
        assert!(
            check_pod(&pending, "p")
                .unwrap_err()
                .to_string()
                .contains("does not have a host assigned")
        );
        let done = serde_json::json!({"spec": {"nodeName": "n"}, "status": {"phase": "Succeeded"}});
        assert_eq!(check_pod(&done, "p").unwrap_err().code(), 400);
        let running =
            serde_json::json!({"spec": {"nodeName": "n"}, "status": {"phase": "Running"}});
        assert_eq!(check_pod(&running, "p").unwrap(), "n");
    }
}
