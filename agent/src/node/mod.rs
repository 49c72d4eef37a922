//! The agent side of the node protocol: the authenticated gRPC channel, registration, the Lease
//! and node-status heartbeats.

pub mod info;
pub mod objects;

use std::path::Path;
use std::time::Duration;

use skiff_proto::node::node_client::NodeClient;
use skiff_proto::node::{NodeStatusUpdate, RegisterRequest, RegisterResponse, RenewLeaseRequest};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Errors talking to the control plane.
#[derive(Debug, thiserror::Error)]
pub enum NodeProtocolError {
    /// The CA or token file could not be read.
    #[error("reading {path}: {source}")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
    /// The server URL or TLS settings are unusable.
    #[error("control plane endpoint {url}: {source}")]
    Endpoint {
        url: String,
        source: tonic::transport::Error,
    },
    /// The control plane refused or failed a call.
    #[error("control plane call {call} failed: {status}")]
    Call {
        call: &'static str,
        status: tonic::Status,
    },
}

/// Adds the node token to every call.
#[derive(Clone)]
pub struct BearerToken(MetadataValue<tonic::metadata::Ascii>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// The authenticated client every part of the agent clones.
pub type Client = NodeClient<InterceptedService<Channel, BearerToken>>;

/// Opens a lazily connected, TLS-verified channel to the control plane.
pub fn connect(
    server: &str,
    ca_file: &Path,
    token_file: &Path,
) -> Result<Client, NodeProtocolError> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| NodeProtocolError::ReadFile {
            path: p.display().to_string(),
            source,
        })
    };
    let ca = read(ca_file)?;
    let token = read(token_file)?;
    let endpoint_err = |source| NodeProtocolError::Endpoint {
        url: server.to_string(),
        source,
    };
    let endpoint = Endpoint::from_shared(server.to_string())
        .map_err(endpoint_err)?
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .map_err(endpoint_err)?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(15))
        .keep_alive_while_idle(true);
    let header = format!("Bearer {}", token.trim());
    let value =
        MetadataValue::try_from(header.as_str()).map_err(|_| NodeProtocolError::ReadFile {
            path: token_file.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "token is not ASCII"),
        })?;
    Ok(NodeClient::with_interceptor(
        endpoint.connect_lazy(),
        BearerToken(value),
    ))
}

/// Registers (creates or updates) this node; retries until the control plane answers.
pub async fn register(
    client: &mut Client,
    node: &k8s_openapi::api::core::v1::Node,
) -> RegisterResponse {
    let mut delay = Duration::from_millis(200);
    loop {
        let req = RegisterRequest {
            node_json: skiff_proto::to_json(node),
        };
        match client.register(req).await {
            Ok(resp) => return resp.into_inner(),
            Err(status) => {
                tracing::warn!(%status, "registering node failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Renews the Lease and posts node status every `interval`, forever.
pub async fn heartbeat(
    mut client: Client,
    node_name: String,
    interval: Duration,
    status: impl Fn() -> k8s_openapi::api::core::v1::NodeStatus,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let lease = client
            .renew_lease(RenewLeaseRequest {
                node_name: node_name.clone(),
            })
            .await;
        if let Err(status) = lease {
            tracing::warn!(%status, "renewing the node lease failed");
        }
        let update = NodeStatusUpdate {
            node_name: node_name.clone(),
            status_json: skiff_proto::to_json(&status()),
        };
        if let Err(status) = client.update_node_status(update).await {
            tracing::warn!(%status, "posting node status failed");
        }
    }
}
