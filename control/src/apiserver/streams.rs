//! The seam to the nodes for streaming subresources: the API server does not read container
//! logs or run commands itself; whoever talks to the nodes (the node-protocol server) implements
//! `NodeStreams`.

use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use super::error::ApiError;

/// What `GET pods/{name}/log` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
    pub follow: bool,
    pub tail_lines: Option<i64>,
    pub since_seconds: Option<i64>,
    /// RFC 3339.
    pub since_time: Option<String>,
    pub timestamps: bool,
    pub previous: bool,
    pub limit_bytes: Option<i64>,
}

/// What `pods/{name}/exec` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// What `pods/{name}/portforward` asks for, per forwarded connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortForwardRequest {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub pod_ip: String,
    pub port: u16,
}

/// From the API server to the node in a session. Channels are the Kubernetes stream channels
/// (0 stdin for exec, 0 data for port-forward).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToNode {
    Data {
        channel: u8,
        data: Bytes,
    },
    /// Nothing more comes on this channel (stdin closed).
    Close {
        channel: u8,
    },
    Resize {
        width: u16,
        height: u16,
    },
}

/// From the node to the API server in a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromNode {
    /// Exec: 1 stdout, 2 stderr; port-forward: 0.
    Data { channel: u8, data: Bytes },
    /// The session is over: the command's exit code, or why it failed.
    End {
        exit_code: Option<i32>,
        error: Option<String>,
    },
}

/// An interactive session with a node: send on `input`, read `output` until `End` (or until
/// it closes, which means the node went away).
#[derive(Debug)]
pub struct NodeSession {
    pub input: mpsc::Sender<ToNode>,
    pub output: mpsc::Receiver<FromNode>,
}

/// Streams served by the node a pod runs on.
#[async_trait::async_trait]
pub trait NodeStreams: Send + Sync {
    /// The container's log as a byte stream (ends at EOF, or stays open with `follow`).
    async fn logs(
        &self,
        node_name: &str,
        req: LogRequest,
    ) -> Result<BoxStream<'static, Result<Bytes, ApiError>>, ApiError>;

    /// Runs a command in a container of a pod on the node.
    async fn exec(&self, node_name: &str, _req: ExecRequest) -> Result<NodeSession, ApiError> {
        Err(ApiError::bad_request(format!(
            "node {node_name:?} does not serve exec"
        )))
    }

    /// Opens a connection from the node to a port of one of its pods.
    async fn port_forward(
        &self,
        node_name: &str,
        _req: PortForwardRequest,
    ) -> Result<NodeSession, ApiError> {
        Err(ApiError::bad_request(format!(
            "node {node_name:?} does not serve port-forward"
        )))
    }
}

/// A `NodeStreams` for a control plane without nodes: every request fails with 503-like
/// BadRequest naming the node.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNodeStreams;

#[async_trait::async_trait]
impl NodeStreams for NoNodeStreams {
    async fn logs(
        &self,
        node_name: &str,
        _req: LogRequest,
    ) -> Result<BoxStream<'static, Result<Bytes, ApiError>>, ApiError> {
        Err(ApiError::bad_request(format!(
            "node {node_name:?} is not connected"
        )))
    }
}
