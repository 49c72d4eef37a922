//! The seam to the nodes for streaming subresources: the API server does not read container
//! logs itself; whoever talks to the nodes (the node-protocol server) implements `NodeStreams`.

use bytes::Bytes;
use futures::stream::BoxStream;

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

/// Streams served by the node a pod runs on.
#[async_trait::async_trait]
pub trait NodeStreams: Send + Sync {
    /// The container's log as a byte stream (ends at EOF, or stays open with `follow`).
    async fn logs(
        &self,
        node_name: &str,
        req: LogRequest,
    ) -> Result<BoxStream<'static, Result<Bytes, ApiError>>, ApiError>;
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
