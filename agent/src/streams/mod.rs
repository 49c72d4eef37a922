//! The streams the control plane asks of this node (OpenStream commands): log files sent with
//! `StreamData`, and interactive sessions (exec, port-forward) over the bidirectional `Session`
//! rpc, whose first frame names the stream and whose last frame from here has `end` set.

mod exec;
mod forward;

use std::time::Duration;

use futures::StreamExt;
use skiff_proto::node::{LogRequest, SessionFrame, StreamChunk};
use tokio::sync::mpsc;

use crate::pods::{PodManager, logs};
use crate::runtime::ContainerState;

pub use exec::serve_exec;
pub use forward::serve_port_forward;

/// How long output is still relayed after a command ended (a background process that kept the
/// pipe open must not hold the session).
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// The frames this side sends in one session.
#[derive(Clone)]
struct Outbound {
    stream_id: String,
    tx: mpsc::Sender<SessionFrame>,
}

impl Outbound {
    fn frame(&self) -> SessionFrame {
        SessionFrame {
            stream_id: self.stream_id.clone(),
            ..Default::default()
        }
    }

    /// Sends data on `channel`; false when the control plane is gone.
    async fn data(&self, channel: u32, data: &[u8]) -> bool {
        let f = SessionFrame {
            channel,
            data: data.to_vec(),
            ..self.frame()
        };
        self.tx.send(f).await.is_ok()
    }

    /// The last frame: how the session ended.
    async fn end(&self, exit_code: Option<i32>, error: Option<String>) {
        let f = SessionFrame {
            end: true,
            exit_code,
            error: error.unwrap_or_default(),
            ..self.frame()
        };
        let _ = self.tx.send(f).await;
    }
}

/// How long this side waits, after its last frame, for the control plane to close the session
/// (dropping the call earlier could reset the stream before the last frame got through).
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Ends a session that never got going: sends `error` as the last frame, then waits for the
/// control plane to close.
async fn fail(out: Outbound, mut inbound: tonic::Streaming<SessionFrame>, error: String) {
    out.end(None, Some(error)).await;
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Ok(Some(_)) = inbound.message().await {}
    })
    .await;
}

/// Opens the `Session` call: returns what to send on and the control plane's frames (None when
/// the call could not be made).
async fn open_session(
    client: &mut crate::node::Client,
    stream_id: String,
) -> Option<(Outbound, tonic::Streaming<SessionFrame>)> {
    let (tx, rx) = mpsc::channel(32);
    let out = Outbound { stream_id, tx };
    // The opening frame names the stream.
    out.tx.send(out.frame()).await.ok()?;
    match client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
    {
        Ok(resp) => Some((out, resp.into_inner())),
        Err(status) => {
            tracing::warn!(%status, stream = %out.stream_id, "opening a session failed");
            None
        }
    }
}

/// Answers a log request by streaming the container's log file to the control plane.
pub fn serve_logs(
    manager: &PodManager,
    mut client: crate::node::Client,
    stream_id: String,
    req: LogRequest,
) {
    let target = manager.log_target(&req.uid, &req.container, req.previous);
    let deps = manager.deps().clone();
    tokio::spawn(async move {
        let Some((path, id)) = target else {
            let what = if req.previous {
                "previous terminated container"
            } else {
                "container"
            };
            let msg = format!(
                "{what} \"{}\" in pod \"{}\" is waiting to start",
                req.container, req.pod
            );
            let only = StreamChunk {
                stream_id,
                data: Vec::new(),
                error: msg,
            };
            let _ = client.stream_data(futures::stream::iter([only])).await;
            return;
        };
        let since = req
            .since_time
            .as_deref()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .or_else(|| {
                req.since_seconds
                    .map(|s| jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s))
            });
        let opts = logs::LogOptions {
            tail_lines: req.tail_lines,
            since,
            timestamps: req.timestamps,
            limit_bytes: req.limit_bytes,
            follow: req.follow,
        };
        let still_running = move || {
            id.as_deref()
                .is_some_and(|id| matches!(deps.runtime.state(id), ContainerState::Running { .. }))
        };
        let rx = logs::stream(path, opts, still_running);
        let id = stream_id.clone();
        let body = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |item| match item {
            Ok(data) => StreamChunk {
                stream_id: id.clone(),
                data: data.to_vec(),
                error: String::new(),
            },
            Err(error) => StreamChunk {
                stream_id: id.clone(),
                data: Vec::new(),
                error,
            },
        });
        // The first chunk names the stream even when the log is empty.
        let opening = StreamChunk {
            stream_id,
            data: Vec::new(),
            error: String::new(),
        };
        let chunks = futures::stream::iter([opening]).chain(body);
        if let Err(status) = client.stream_data(chunks).await {
            tracing::debug!(%status, "log stream ended early");
        }
    });
}
