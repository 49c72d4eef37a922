//! Streams the API server asks of nodes: each open stream is an id, announced to the node over
//! its command stream. Logs come back with the client-streaming `StreamData`; interactive
//! sessions (exec, port-forward) with the bidirectional `Session` rpc (see [`StreamHub::take_session`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use skiff_proto::node::{
    ExecRequest as WireExecRequest, LogRequest as WireLogRequest, NodeCommand, OpenStream,
    PortForwardRequest as WirePortForwardRequest, SessionFrame, node_command::Command,
    open_stream::Kind,
};
use tokio::sync::mpsc;

use crate::apiserver::streams::{ExecRequest, FromNode, NodeSession, PortForwardRequest, ToNode};
use crate::apiserver::{ApiError, LogRequest, NodeStreams};

/// How long a node has to start answering a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

type Sink = mpsc::Sender<Result<Bytes, ApiError>>;

/// The hub's ends of a session a node has not picked up yet: what to send the node, where to put
/// what it answers.
pub type SessionEnds = (mpsc::Receiver<ToNode>, mpsc::Sender<FromNode>);

/// Connected nodes' command channels and the streams waiting for data.
#[derive(Default, Clone)]
pub struct StreamHub {
    inner: Arc<Mutex<HubState>>,
}

#[derive(Default)]
struct HubState {
    nodes: HashMap<String, mpsc::Sender<NodeCommand>>,
    pending: HashMap<String, Sink>,
    sessions: HashMap<String, SessionEnds>,
    next_id: u64,
}

impl StreamHub {
    /// Records the command channel of a node that just connected (replacing an older one).
    pub fn connect(&self, node: &str, commands: mpsc::Sender<NodeCommand>) {
        self.inner
            .lock()
            .expect("hub lock")
            .nodes
            .insert(node.to_string(), commands);
    }

    /// Forgets a node's channel if it is still `commands` (a newer connection may have replaced it).
    pub fn disconnect(&self, node: &str, commands: &mpsc::Sender<NodeCommand>) {
        let mut state = self.inner.lock().expect("hub lock");
        if state
            .nodes
            .get(node)
            .is_some_and(|c| c.same_channel(commands))
        {
            state.nodes.remove(node);
        }
    }

    /// The sink for a stream the node starts answering (taken once).
    pub fn take(&self, id: &str) -> Option<Sink> {
        self.inner.lock().expect("hub lock").pending.remove(id)
    }

    /// The ends of a session the node starts answering (taken once).
    pub fn take_session(&self, id: &str) -> Option<SessionEnds> {
        self.inner.lock().expect("hub lock").sessions.remove(id)
    }

    /// Registers a new stream id with `register` and sends the node its OpenStream command.
    fn announce(
        &self,
        node: &str,
        kind: Kind,
        register: impl FnOnce(&mut HubState, String),
    ) -> Result<String, ApiError> {
        let mut state = self.inner.lock().expect("hub lock");
        let commands = state.nodes.get(node).cloned().ok_or_else(|| {
            ApiError::internal(format!(
                "no connection to node {node:?}: its agent is not connected"
            ))
        })?;
        state.next_id += 1;
        let id = format!("{node}-{}", state.next_id);
        register(&mut state, id.clone());
        let command = NodeCommand {
            command: Some(Command::OpenStream(OpenStream {
                stream_id: id.clone(),
                kind: Some(kind),
            })),
        };
        if commands.try_send(command).is_err() {
            state.pending.remove(&id);
            state.sessions.remove(&id);
            return Err(ApiError::internal(format!(
                "node {node:?} is not accepting commands"
            )));
        }
        Ok(id)
    }

    fn open(
        &self,
        node: &str,
        kind: Kind,
    ) -> Result<(mpsc::Receiver<Result<Bytes, ApiError>>, String), ApiError> {
        let (tx, rx) = mpsc::channel(16);
        let id = self.announce(node, kind, |state, id| {
            state.pending.insert(id, tx);
        })?;
        Ok((rx, id))
    }

    /// Opens a session; if the node has not picked it up after [`OPEN_TIMEOUT`], it is dropped
    /// and the session's output ends without an `End`.
    fn open_session(&self, node: &str, kind: Kind) -> Result<NodeSession, ApiError> {
        let (input, to_node) = mpsc::channel(32);
        let (from_node, output) = mpsc::channel(32);
        let id = self.announce(node, kind, |state, id| {
            state.sessions.insert(id, (to_node, from_node));
        })?;
        let hub = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(OPEN_TIMEOUT).await;
            if hub.take_session(&id).is_some() {
                tracing::warn!(stream = %id, "node did not pick up the session");
            }
        });
        Ok(NodeSession { input, output })
    }
}

/// A frame for the node.
pub fn to_wire(stream_id: &str, msg: ToNode) -> SessionFrame {
    let mut f = SessionFrame {
        stream_id: stream_id.to_string(),
        ..Default::default()
    };
    match msg {
        ToNode::Data { channel, data } => {
            f.channel = channel.into();
            f.data = data.to_vec();
        }
        ToNode::Close { channel } => {
            f.channel = channel.into();
            f.close = true;
        }
        ToNode::Resize { width, height } => {
            f.width = width.into();
            f.height = height.into();
        }
    }
    f
}

/// What a node's frame means (None: nothing to pass on, e.g. the opening frame).
pub fn from_wire(f: SessionFrame) -> Option<FromNode> {
    if f.end {
        return Some(FromNode::End {
            exit_code: f.exit_code,
            error: (!f.error.is_empty()).then_some(f.error),
        });
    }
    if f.data.is_empty() {
        return None;
    }
    Some(FromNode::Data {
        channel: u8::try_from(f.channel).unwrap_or(u8::MAX),
        data: Bytes::from(f.data),
    })
}

#[async_trait::async_trait]
impl NodeStreams for StreamHub {
    async fn logs(
        &self,
        node_name: &str,
        req: LogRequest,
    ) -> Result<BoxStream<'static, Result<Bytes, ApiError>>, ApiError> {
        let wire = WireLogRequest {
            namespace: req.namespace,
            pod: req.pod,
            uid: req.uid,
            container: req.container,
            follow: req.follow,
            tail_lines: req.tail_lines,
            since_seconds: req.since_seconds,
            timestamps: req.timestamps,
            previous: req.previous,
            limit_bytes: req.limit_bytes,
            since_time: req.since_time,
        };
        let (mut rx, id) = self.open(node_name, Kind::Logs(wire))?;
        // The node's first message (possibly empty, possibly an error) opens the stream.
        let first = tokio::time::timeout(OPEN_TIMEOUT, rx.recv()).await;
        let first = match first {
            Ok(Some(Ok(bytes))) => bytes,
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => Bytes::new(),
            Err(_) => {
                self.take(&id);
                return Err(ApiError::internal(format!(
                    "node {node_name:?} did not answer the log request"
                )));
            }
        };
        let rest = tokio_stream::wrappers::ReceiverStream::new(rx);
        Ok(futures::stream::once(async move { Ok(first) })
            .chain(rest)
            .boxed())
    }

    async fn exec(&self, node_name: &str, req: ExecRequest) -> Result<NodeSession, ApiError> {
        let wire = WireExecRequest {
            namespace: req.namespace,
            pod: req.pod,
            uid: req.uid,
            container: req.container,
            command: req.command,
            stdin: req.stdin,
            stdout: req.stdout,
            stderr: req.stderr,
            tty: req.tty,
        };
        self.open_session(node_name, Kind::Exec(wire))
    }

    async fn port_forward(
        &self,
        node_name: &str,
        req: PortForwardRequest,
    ) -> Result<NodeSession, ApiError> {
        let wire = WirePortForwardRequest {
            namespace: req.namespace,
            pod: req.pod,
            uid: req.uid,
            pod_ip: req.pod_ip,
            port: req.port.into(),
        };
        self.open_session(node_name, Kind::PortForward(wire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_reaches_the_node_and_back() {
        let hub = StreamHub::default();
        let (tx, mut commands) = mpsc::channel(4);
        hub.connect("n1", tx);
        let mut session = hub
            .exec(
                "n1",
                ExecRequest {
                    command: vec!["cat".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let Some(Command::OpenStream(open)) = commands.recv().await.unwrap().command else {
            panic!("expected OpenStream");
        };
        let Some(Kind::Exec(req)) = open.kind else {
            panic!("expected an exec request");
        };
        assert_eq!(req.command, ["cat"]);
        let (mut to_node, from_node) = hub.take_session(&open.stream_id).unwrap();
        assert!(hub.take_session(&open.stream_id).is_none(), "taken once");
        session
            .input
            .send(ToNode::Data {
                channel: 0,
                data: Bytes::from_static(b"hi"),
            })
            .await
            .unwrap();
        let frame = to_wire(&open.stream_id, to_node.recv().await.unwrap());
        assert_eq!((frame.channel, frame.data.as_slice()), (0, &b"hi"[..]));
        let end = SessionFrame {
            end: true,
            exit_code: Some(3),
            ..Default::default()
        };
        from_node.send(from_wire(end).unwrap()).await.unwrap();
        assert_eq!(
            session.output.recv().await,
            Some(FromNode::End {
                exit_code: Some(3),
                error: None
            })
        );
    }

    #[tokio::test]
    async fn exec_on_a_disconnected_node_fails() {
        let hub = StreamHub::default();
        let e = hub.exec("gone", ExecRequest::default()).await.unwrap_err();
        assert!(e.to_string().contains("not connected"), "{e}");
    }
}
