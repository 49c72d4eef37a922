//! `pods/{name}/portforward` over SPDY/3.1 (`X-Stream-Protocol-Version: portforward.k8s.io`):
//! the client opens two streams per forwarded connection, `streamType: error` and
//! `streamType: data`, tied by `requestID` and naming the `port`. Each pair becomes one
//! port-forward session on the pod's node: data bytes both ways, and the node's error (if any)
//! written on the error stream before both are finished.

use std::collections::HashMap;
use std::sync::Arc;

use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::Frame;
use super::conn::{header, header_lists, spawn_reader, spawn_writer, switching, take_upgrade};
use crate::apiserver::error::ApiError;
use crate::apiserver::http::ApiState;
use crate::apiserver::registry::resource;
use crate::apiserver::streams::{FromNode, NodeStreams, PortForwardRequest, ToNode};

/// The only port-forward protocol version there is.
pub const PROTOCOL: &str = "portforward.k8s.io";

/// What every forwarded connection of one request shares.
#[derive(Clone)]
struct Target {
    streams: Arc<dyn NodeStreams>,
    node: String,
    template: PortForwardRequest,
}

/// Serves the upgrade request; the SPDY connection runs on after the 101 answer.
pub async fn serve(
    state: &ApiState,
    mut parts: Parts,
    ns: &str,
    name: &str,
) -> Result<Response, ApiError> {
    if !header_lists(&parts.headers, "upgrade", "SPDY/3.1") {
        // kubectl 1.31+ first tries a WebSocket tunnel and falls back to SPDY on this error.
        return Err(ApiError::bad_request(
            "port-forward needs an upgrade to SPDY/3.1",
        ));
    }
    if !header_lists(&parts.headers, "x-stream-protocol-version", PROTOCOL) {
        return Err(ApiError::bad_request(format!(
            "port-forward needs X-Stream-Protocol-Version: {PROTOCOL}"
        )));
    }
    let def = resource("", "pods")?;
    let pod = state.registry.get_json(def, Some(ns), name).await?;
    let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
    if node.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    if pod["status"]["phase"].as_str() != Some("Running") {
        return Err(ApiError::bad_request(format!(
            "unable to forward port because pod is not running. Current status={}",
            pod["status"]["phase"].as_str().unwrap_or("Unknown")
        )));
    }
    let target = Target {
        streams: state.node_streams.clone(),
        node: node.to_string(),
        template: PortForwardRequest {
            namespace: ns.to_string(),
            pod: name.to_string(),
            uid: pod["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            pod_ip: pod["status"]["podIP"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            port: 0,
        },
    };
    let on_upgrade = take_upgrade(&mut parts)?;
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run(TokioIo::new(upgraded), target).await,
            Err(e) => tracing::debug!(error = %e, "port-forward upgrade failed"),
        }
    });
    Ok(switching(PROTOCOL))
}

/// The two streams of one forwarded connection.
#[derive(Default)]
struct Pair {
    port: u16,
    data: Option<u32>,
    error: Option<u32>,
    /// To the session's task, once both streams exist.
    input: Option<mpsc::Sender<ToNode>>,
}

/// Runs one SPDY connection until the client goes away.
async fn run<T: AsyncRead + AsyncWrite + Send + 'static>(io: T, target: Target) {
    let (rd, wr) = tokio::io::split(io);
    let (frames, writer) = spawn_writer(wr);
    let mut incoming = spawn_reader(rd, frames.clone());
    // stream id → request id; request id → pair.
    let mut streams: HashMap<u32, String> = HashMap::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    while let Some(frame) = incoming.recv().await {
        match frame {
            Frame::SynStream {
                stream_id, headers, ..
            } => {
                let port = header(&headers, "port").and_then(|p| p.parse::<u16>().ok());
                let kind = header(&headers, "streamtype").unwrap_or_default();
                let (Some(port), "data" | "error") = (port.filter(|p| *p > 0), kind) else {
                    let _ = frames
                        .send(Frame::RstStream {
                            stream_id,
                            status: 1,
                        })
                        .await;
                    continue;
                };
                let _ = frames
                    .send(Frame::SynReply {
                        stream_id,
                        fin: false,
                        headers: Vec::new(),
                    })
                    .await;
                let request_id = header(&headers, "requestid")
                    .map_or_else(|| format!("port-{port}"), str::to_string);
                streams.insert(stream_id, request_id.clone());
                let pair = pairs.entry(request_id).or_default();
                pair.port = port;
                if kind == "data" {
                    pair.data = Some(stream_id);
                } else {
                    pair.error = Some(stream_id);
                }
                if let (Some(data), Some(error), None) = (pair.data, pair.error, &pair.input) {
                    let (tx, rx) = mpsc::channel(32);
                    pair.input = Some(tx);
                    let ids = (data, error);
                    tokio::spawn(forward(target.clone(), port, ids, rx, frames.clone()));
                }
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let Some(pair) = streams.get(&stream_id).and_then(|r| pairs.get(r)) else {
                    continue;
                };
                // Only the data stream carries bytes to the pod; the client just closes the
                // error stream.
                let (Some(input), true) = (&pair.input, pair.data == Some(stream_id)) else {
                    continue;
                };
                if !data.is_empty() {
                    let _ = input.send(ToNode::Data { channel: 0, data }).await;
                }
                if fin {
                    let _ = input.send(ToNode::Close { channel: 0 }).await;
                }
            }
            Frame::RstStream { stream_id, .. } => {
                // The client is done with this connection: drop the pair (ends its session).
                if let Some(request_id) = streams.remove(&stream_id)
                    && pairs
                        .get(&request_id)
                        .is_some_and(|p| p.data == Some(stream_id))
                {
                    pairs.remove(&request_id);
                }
            }
            _ => {}
        }
    }
    drop(pairs);
    drop(frames);
    let _ = writer.await;
}

/// One forwarded connection: a session on the node relayed to the pair's streams.
async fn forward(
    target: Target,
    port: u16,
    (data_id, error_id): (u32, u32),
    mut from_client: mpsc::Receiver<ToNode>,
    frames: mpsc::Sender<Frame>,
) {
    let req = PortForwardRequest {
        port,
        ..target.template.clone()
    };
    let data_frame = |stream_id, fin, data| Frame::Data {
        stream_id,
        fin,
        data,
    };
    let error = match target.streams.port_forward(&target.node, req).await {
        Err(e) => Some(e.to_string()),
        Ok(mut session) => loop {
            tokio::select! {
                msg = from_client.recv() => match msg {
                    Some(m) => {
                        if session.input.send(m).await.is_err() {
                            break Some("the node closed the connection".to_string());
                        }
                    }
                    // The client reset the streams or went away.
                    None => return,
                },
                out = session.output.recv() => match out {
                    Some(FromNode::Data { data, .. }) => {
                        if frames.send(data_frame(data_id, false, data)).await.is_err() {
                            return;
                        }
                    }
                    Some(FromNode::End { error, .. }) => break error,
                    None => break Some("the node did not answer or went away".to_string()),
                },
            }
        },
    };
    if let Some(e) = error {
        let _ = frames
            .send(data_frame(error_id, false, Bytes::from(e.into_bytes())))
            .await;
    }
    let _ = frames.send(data_frame(data_id, true, Bytes::new())).await;
    let _ = frames.send(data_frame(error_id, true, Bytes::new())).await;
}
