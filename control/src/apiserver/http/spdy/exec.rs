//! `kubectl exec` over SPDY/3.1 (kubectl before 1.30), protocol `v4.channel.k8s.io`: the
//! client opens one stream per channel, named by its `streamType` header (error, stdin, stdout,
//! stderr, resize); stdin ends with a FIN; the server finishes stdout and stderr, then writes
//! the JSON `Status` on the error stream and finishes it.

use std::collections::HashMap;
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use super::Frame;
use super::conn::{header, header_lists, spawn_reader, spawn_writer, switching};
use crate::apiserver::error::ApiError;
use crate::apiserver::http::channel;
use crate::apiserver::http::exec::ExecParams;
use crate::apiserver::streams::{FromNode, NodeSession, ToNode};

/// The one remote-command version served over SPDY (its error stream carries a JSON Status).
pub const PROTOCOL: &str = "v4.channel.k8s.io";

/// How long the client has to open the streams it asked for.
const STREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// Refuses clients that do not speak [`PROTOCOL`] (kubectl 1.27+ all do).
pub fn check(headers: &HeaderMap) -> Result<(), ApiError> {
    if header_lists(headers, "x-stream-protocol-version", PROTOCOL) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "exec over SPDY needs X-Stream-Protocol-Version: {PROTOCOL}"
        )))
    }
}

/// Answers 101 and runs the session once the connection is upgraded.
pub fn start(
    on_upgrade: hyper::upgrade::OnUpgrade,
    params: ExecParams,
    session: NodeSession,
) -> Response {
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run(TokioIo::new(upgraded), params, session).await,
            Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
        }
    });
    switching(PROTOCOL)
}

/// Whether every stream the request asked for is open.
fn ready(ids: &HashMap<String, u32>, p: &ExecParams) -> bool {
    let has = |k: &str| ids.contains_key(k);
    has("error")
        && (!p.stdin || has("stdin"))
        && (!p.stdout || has("stdout"))
        && (!p.stderr || has("stderr"))
        && (!p.tty || has("resize"))
}

/// Terminal sizes on the resize stream: JSON objects one after another.
fn resizes(data: &[u8]) -> Vec<ToNode> {
    serde_json::Deserializer::from_slice(data)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .map(|v| {
            let dim = |k: &str| {
                v[k].as_u64()
                    .and_then(|n| u16::try_from(n).ok())
                    .unwrap_or(0)
            };
            ToNode::Resize {
                width: dim("Width"),
                height: dim("Height"),
            }
        })
        .collect()
}

async fn run<T: AsyncRead + AsyncWrite + Send + 'static>(
    io: T,
    params: ExecParams,
    mut session: NodeSession,
) {
    let (rd, wr) = tokio::io::split(io);
    let (frames, writer) = spawn_writer(wr);
    let mut incoming = spawn_reader(rd, frames.clone());
    let mut ids: HashMap<String, u32> = HashMap::new();
    let deadline = tokio::time::Instant::now() + STREAM_TIMEOUT;
    let data = |stream_id, fin, data| Frame::Data {
        stream_id,
        fin,
        data,
    };
    let status = loop {
        let is_ready = ready(&ids, &params);
        tokio::select! {
            frame = incoming.recv() => match frame {
                // The client went away: dropping the session stops the command.
                None | Some(Frame::RstStream { .. }) => return,
                Some(Frame::SynStream { stream_id, headers, .. }) => {
                    let kind = header(&headers, "streamtype").unwrap_or_default().to_string();
                    let _ = frames
                        .send(Frame::SynReply { stream_id, fin: false, headers: Vec::new() })
                        .await;
                    ids.insert(kind, stream_id);
                }
                Some(Frame::Data { stream_id, fin, data }) => {
                    let msgs = if ids.get("stdin") == Some(&stream_id) {
                        let mut m = Vec::new();
                        if !data.is_empty() {
                            m.push(ToNode::Data { channel: channel::STDIN, data });
                        }
                        if fin {
                            m.push(ToNode::Close { channel: channel::STDIN });
                        }
                        m
                    } else if ids.get("resize") == Some(&stream_id) {
                        resizes(&data)
                    } else {
                        Vec::new()
                    };
                    for m in msgs {
                        if session.input.send(m).await.is_err() {
                            break;
                        }
                    }
                }
                Some(_) => {}
            },
            out = session.output.recv(), if is_ready => match out {
                Some(FromNode::Data { channel, data: bytes }) => {
                    let target = match channel {
                        1 => ids.get("stdout"),
                        2 => ids.get("stderr"),
                        _ => None,
                    };
                    if let Some(&id) = target {
                        let _ = frames.send(data(id, false, bytes)).await;
                    }
                }
                Some(FromNode::End { exit_code, error }) => {
                    break channel::exit_status(exit_code, error.as_deref(), &params.command);
                }
                None => break channel::failure_status("the node did not answer or went away"),
            },
            _ = tokio::time::sleep_until(deadline), if !is_ready => {
                break channel::failure_status("timed out waiting for the client's streams");
            }
        }
    };
    drop(session);
    for kind in ["stdout", "stderr"] {
        if let Some(&id) = ids.get(kind) {
            let _ = frames.send(data(id, true, Bytes::new())).await;
        }
    }
    if let Some(&id) = ids.get("error") {
        let body = serde_json::to_vec(&status).unwrap_or_default();
        let _ = frames.send(data(id, false, Bytes::from(body))).await;
        let _ = frames.send(data(id, true, Bytes::new())).await;
    }
    // Give the client a moment to read everything and close; then close the connection.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while incoming.recv().await.is_some() {}
    })
    .await;
    drop(frames);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_waits_for_the_streams_asked_for() {
        let p = ExecParams {
            command: vec!["cat".into()],
            stdin: true,
            stdout: true,
            ..Default::default()
        };
        let mut ids = HashMap::new();
        ids.insert("error".to_string(), 1);
        ids.insert("stdout".to_string(), 5);
        assert!(!ready(&ids, &p), "stdin is missing");
        ids.insert("stdin".to_string(), 3);
        assert!(ready(&ids, &p));
    }

    #[test]
    fn resize_messages_follow_each_other() {
        let got = resizes(br#"{"Width":80,"Height":24}{"Width":100,"Height":30}"#);
        assert_eq!(
            got,
            vec![
                ToNode::Resize {
                    width: 80,
                    height: 24
                },
                ToNode::Resize {
                    width: 100,
                    height: 30
                },
            ]
        );
    }
}
