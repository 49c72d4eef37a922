//! Streams the API server asks of nodes (logs today; exec and port-forward later): each open
//! stream is an id, announced to the node over its command stream, whose data the node sends
//! back with `StreamData`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use skiff_proto::node::{
    LogRequest as WireLogRequest, NodeCommand, OpenStream, node_command::Command, open_stream::Kind,
};
use tokio::sync::mpsc;

use crate::apiserver::{ApiError, LogRequest, NodeStreams};

/// How long a node has to start answering a stream.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

type Sink = mpsc::Sender<Result<Bytes, ApiError>>;

/// Connected nodes' command channels and the streams waiting for data.
#[derive(Default, Clone)]
pub struct StreamHub {
    inner: Arc<Mutex<HubState>>,
}

#[derive(Default)]
struct HubState {
    nodes: HashMap<String, mpsc::Sender<NodeCommand>>,
    pending: HashMap<String, Sink>,
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

    fn open(
        &self,
        node: &str,
        kind: Kind,
    ) -> Result<(mpsc::Receiver<Result<Bytes, ApiError>>, String), ApiError> {
        let (tx, rx) = mpsc::channel(16);
        let mut state = self.inner.lock().expect("hub lock");
        let commands = state.nodes.get(node).cloned().ok_or_else(|| {
            ApiError::internal(format!(
                "no connection to node {node:?}: its agent is not connected"
            ))
        })?;
        state.next_id += 1;
        let id = format!("{node}-{}", state.next_id);
        state.pending.insert(id.clone(), tx);
        let command = NodeCommand {
            command: Some(Command::OpenStream(OpenStream {
                stream_id: id.clone(),
                kind: Some(kind),
            })),
        };
        commands
            .try_send(command)
            .map_err(|_| ApiError::internal(format!("node {node:?} is not accepting commands")))?;
        Ok((rx, id))
    }
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
}
