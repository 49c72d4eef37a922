//! The node protocol server: what agents call (registration, leases, node and pod status, the
//! command stream of their pods, log streams, exec and port-forward sessions, the services
//! stream for their load balancers). It is the only way an agent reaches the cluster, and it
//! goes through the same registry as the REST API.

mod commands;
mod fanout;
mod objects;
mod services;
pub mod streams;

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Event, Node, NodeStatus, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use skiff_proto::node::node_server::{self, NodeServer};
use skiff_proto::node::*;
use tonic::{Request, Response, Status};

use crate::apiserver::ApiError;
use crate::apiserver::registry::Registry;
pub use streams::StreamHub;

/// The cluster's network settings handed to every node.
#[derive(Debug, Clone)]
pub struct ClusterNetwork {
    /// e.g. 10.42.0.0/16, cut into one /24 per node.
    pub cluster_cidr: String,
    pub service_cidr: String,
    pub cluster_dns: String,
}

/// How long a node's Lease is valid without renewal.
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// The gRPC service behind `skiff.node.v1.Node`.
#[derive(Clone)]
pub struct NodeService {
    registry: Registry,
    token: String,
    network: ClusterNetwork,
    hub: StreamHub,
    pods: fanout::PodFanout,
    /// The pod CIDRs handed out (read from the nodes once, then kept up to date here); held
    /// from choosing a CIDR until the registering node holds it, so two nodes registering at
    /// once never get the same one. A deleted node's CIDR stays taken until a restart.
    registering: Arc<tokio::sync::Mutex<Option<HashSet<String>>>>,
}

impl NodeService {
    pub fn new(
        registry: Registry,
        token: String,
        network: ClusterNetwork,
        hub: StreamHub,
    ) -> NodeService {
        NodeService {
            pods: fanout::PodFanout::start(registry.clone()),
            registry,
            token,
            network,
            hub,
            registering: Arc::default(),
        }
    }

    /// The tonic service, ready to be routed.
    pub fn into_server(self) -> NodeServer<NodeService> {
        NodeServer::new(self)
    }

    fn authorize<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let token = header.strip_prefix("Bearer ").unwrap_or("");
        if token.is_empty() || !constant_time_eq(token.as_bytes(), self.token.as_bytes()) {
            return Err(Status::unauthenticated("invalid or missing node token"));
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Maps API errors to gRPC statuses the agent can act on.
pub(crate) fn to_status(e: ApiError) -> Status {
    match e.code() {
        404 => Status::not_found(e.to_string()),
        409 => Status::aborted(e.to_string()),
        400 | 422 => Status::invalid_argument(e.to_string()),
        401 => Status::unauthenticated(e.to_string()),
        403 => Status::permission_denied(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    skiff_proto::from_json(bytes).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Takes the next free /24 of `cluster_cidr` not in `taken`.
fn allocate_pod_cidr(cluster_cidr: &str, taken: &HashSet<String>) -> Result<String, Status> {
    let (base, bits) = cluster_cidr
        .split_once('/')
        .ok_or_else(|| Status::internal("bad cluster CIDR"))?;
    let base: std::net::Ipv4Addr = base
        .parse()
        .map_err(|_| Status::internal("bad cluster CIDR"))?;
    let bits: u32 = bits
        .parse()
        .map_err(|_| Status::internal("bad cluster CIDR"))?;
    if bits > 24 {
        return Err(Status::internal("cluster CIDR must be /24 or larger"));
    }
    let base = u32::from(base) & (u32::MAX << (32 - bits));
    for i in 0..(1u32 << (24 - bits)) {
        let cidr = format!("{}/24", std::net::Ipv4Addr::from(base + (i << 8)));
        if !taken.contains(&cidr) {
            return Ok(cidr);
        }
    }
    Err(Status::resource_exhausted(format!(
        "no free /24 left in {cluster_cidr}"
    )))
}

type CommandStream = Pin<Box<dyn Stream<Item = Result<NodeCommand, Status>> + Send>>;

#[tonic::async_trait]
impl node_server::Node for NodeService {
    async fn register(
        &self,
        req: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        self.authorize(&req)?;
        let mut node: Node = decode(&req.get_ref().node_json)?;
        let name = node
            .metadata
            .name
            .clone()
            .ok_or_else(|| Status::invalid_argument("node has no name"))?;
        let mut taken = self.registering.lock().await;
        let existing = match self.registry.get::<Node>(None, &name).await {
            Ok(n) => Some(n),
            Err(e) if e.code() == 404 => None,
            Err(e) => return Err(to_status(e)),
        };
        let pod_cidr = match existing
            .as_ref()
            .and_then(|n| n.spec.as_ref()?.pod_cidr.clone())
        {
            Some(cidr) => cidr,
            None => {
                if taken.is_none() {
                    let nodes = self
                        .registry
                        .list::<Node>(None, &Default::default())
                        .await
                        .map_err(to_status)?;
                    *taken = Some(
                        nodes
                            .items
                            .iter()
                            .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
                            .collect(),
                    );
                }
                let taken = taken.get_or_insert_with(HashSet::new);
                let cidr = allocate_pod_cidr(&self.network.cluster_cidr, taken)?;
                // Taken from now on, even if storing the node fails (never handed out twice).
                taken.insert(cidr.clone());
                cidr
            }
        };
        match existing {
            Some(mut current) => {
                // Keep what users set (cordon, taints); take the agent's labels and status.
                let spec = current.spec.get_or_insert_with(Default::default);
                spec.pod_cidr = Some(pod_cidr.clone());
                spec.pod_cidrs = Some(vec![pod_cidr.clone()]);
                let labels = current.metadata.labels.get_or_insert_with(Default::default);
                labels.extend(node.metadata.labels.take().unwrap_or_default());
                let updated = self
                    .registry
                    .replace::<Node>(&current)
                    .await
                    .map_err(to_status)?;
                let mut with_status = updated;
                with_status.status = node.status.take();
                self.registry
                    .replace_status::<Node>(&with_status)
                    .await
                    .map_err(to_status)?;
            }
            None => {
                let spec = node.spec.get_or_insert_with(Default::default);
                spec.pod_cidr = Some(pod_cidr.clone());
                spec.pod_cidrs = Some(vec![pod_cidr.clone()]);
                let status = node.status.take();
                let mut created = self
                    .registry
                    .create::<Node>(&node)
                    .await
                    .map_err(to_status)?;
                created.status = status;
                self.registry
                    .replace_status::<Node>(&created)
                    .await
                    .map_err(to_status)?;
            }
        }
        tracing::info!(node = %name, %pod_cidr, "node registered");
        Ok(Response::new(RegisterResponse {
            pod_cidr,
            cluster_cidr: self.network.cluster_cidr.clone(),
            service_cidr: self.network.service_cidr.clone(),
            cluster_dns: self.network.cluster_dns.clone(),
            lease_duration_seconds: LEASE_DURATION_SECONDS as i64,
        }))
    }

    async fn renew_lease(&self, req: Request<RenewLeaseRequest>) -> Result<Response<Ack>, Status> {
        self.authorize(&req)?;
        let node = req.into_inner().node_name;
        let now = MicroTime(jiff::Timestamp::now());
        match self
            .registry
            .get::<Lease>(Some("kube-node-lease"), &node)
            .await
        {
            Ok(mut lease) => {
                let spec = lease.spec.get_or_insert_with(Default::default);
                spec.renew_time = Some(now);
                spec.holder_identity = Some(node.clone());
                spec.lease_duration_seconds = Some(LEASE_DURATION_SECONDS);
                self.registry
                    .replace::<Lease>(&lease)
                    .await
                    .map_err(to_status)?;
            }
            Err(e) if e.code() == 404 => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(node.clone()),
                        namespace: Some("kube-node-lease".into()),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(node.clone()),
                        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
                        renew_time: Some(now.clone()),
                        acquire_time: Some(now),
                        ..Default::default()
                    }),
                };
                self.registry
                    .create::<Lease>(&lease)
                    .await
                    .map_err(to_status)?;
            }
            Err(e) => return Err(to_status(e)),
        }
        Ok(Response::new(Ack {}))
    }

    async fn update_node_status(
        &self,
        req: Request<NodeStatusUpdate>,
    ) -> Result<Response<Ack>, Status> {
        self.authorize(&req)?;
        let update = req.into_inner();
        let mut status: NodeStatus = decode(&update.status_json)?;
        for _ in 0..5 {
            let mut node = self
                .registry
                .get::<Node>(None, &update.node_name)
                .await
                .map_err(to_status)?;
            // A condition keeps its transition time while its status stays the same.
            let previous = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            for c in status.conditions.iter_mut().flatten() {
                let same = previous
                    .iter()
                    .find(|p| p.type_ == c.type_ && p.status == c.status);
                c.last_transition_time = same
                    .and_then(|p| p.last_transition_time.clone())
                    .or_else(|| c.last_heartbeat_time.clone());
            }
            node.status = Some(status.clone());
            match self.registry.replace_status::<Node>(&node).await {
                Ok(_) => return Ok(Response::new(Ack {})),
                Err(e) if e.code() == 409 => continue,
                Err(e) => return Err(to_status(e)),
            }
        }
        Err(Status::aborted("node status kept changing; try again"))
    }

    type CommandsStream = CommandStream;

    async fn commands(
        &self,
        req: Request<CommandsRequest>,
    ) -> Result<Response<Self::CommandsStream>, Status> {
        self.authorize(&req)?;
        let node = req.into_inner().node_name;
        let rx = commands::follow(self.pods.clone(), self.hub.clone(), node);
        Ok(Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx)
                .map(Ok)
                .boxed(),
        ))
    }

    async fn update_pod_status(
        &self,
        req: Request<PodStatusUpdate>,
    ) -> Result<Response<Ack>, Status> {
        self.authorize(&req)?;
        let update = req.into_inner();
        let status: PodStatus = decode(&update.status_json)?;
        for _ in 0..5 {
            let mut pod = self
                .registry
                .get::<Pod>(Some(&update.namespace), &update.name)
                .await
                .map_err(to_status)?;
            if pod.metadata.uid.as_deref() != Some(update.uid.as_str()) {
                return Err(Status::not_found(format!(
                    "pod {}/{} has another uid now",
                    update.namespace, update.name
                )));
            }
            pod.status = Some(status.clone());
            match self.registry.replace_status::<Pod>(&pod).await {
                Ok(_) => return Ok(Response::new(Ack {})),
                Err(e) if e.code() == 409 => continue,
                Err(e) => return Err(to_status(e)),
            }
        }
        Err(Status::aborted("pod kept changing; try again"))
    }

    async fn pod_terminated(&self, req: Request<PodRef>) -> Result<Response<Ack>, Status> {
        self.authorize(&req)?;
        let r = req.into_inner();
        self.registry
            .finalize_pod_deletion(&r.namespace, &r.name, Some(&r.uid))
            .await
            .map_err(to_status)?;
        Ok(Response::new(Ack {}))
    }

    async fn record_event(&self, req: Request<EventRecord>) -> Result<Response<Ack>, Status> {
        self.authorize(&req)?;
        let event: Event = decode(&req.get_ref().event_json)?;
        self.registry
            .create::<Event>(&event)
            .await
            .map_err(to_status)?;
        Ok(Response::new(Ack {}))
    }

    async fn get_object(
        &self,
        req: Request<ObjectRequest>,
    ) -> Result<Response<ObjectReply>, Status> {
        self.authorize(&req)?;
        objects::get(&self.registry, req.get_ref())
            .await
            .map(Response::new)
    }

    type ServicesStream = Pin<Box<dyn Stream<Item = Result<ServiceUpdate, Status>> + Send>>;

    async fn services(
        &self,
        req: Request<ServicesRequest>,
    ) -> Result<Response<Self::ServicesStream>, Status> {
        self.authorize(&req)?;
        let rx = services::follow(self.registry.clone(), req.into_inner());
        Ok(Response::new(
            tokio_stream::wrappers::ReceiverStream::new(rx).boxed(),
        ))
    }

    type SessionStream = Pin<Box<dyn Stream<Item = Result<SessionFrame, Status>> + Send>>;

    async fn session(
        &self,
        req: Request<tonic::Streaming<SessionFrame>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        self.authorize(&req)?;
        let mut frames = req.into_inner();
        let first = frames
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("a session starts with a frame naming it"))?;
        let id = first.stream_id.clone();
        let (to_node, from_node) = self
            .hub
            .take_session(&id)
            .ok_or_else(|| Status::not_found("no such stream"))?;
        let reader_id = id.clone();
        tokio::spawn(async move {
            let id = reader_id;
            let mut next = Some(first);
            while let Some(frame) = next {
                let end = frame.end;
                if let Some(msg) = streams::from_wire(frame)
                    && from_node.send(msg).await.is_err()
                {
                    break; // the client went away
                }
                if end {
                    break;
                }
                next = match frames.message().await {
                    Ok(f) => f,
                    Err(status) => {
                        tracing::debug!(%status, stream = %id, "session from node failed");
                        None
                    }
                };
            }
        });
        Ok(Response::new(
            tokio_stream::wrappers::ReceiverStream::new(to_node)
                .map(move |msg| Ok(streams::to_wire(&id, msg)))
                .boxed(),
        ))
    }

    async fn stream_data(
        &self,
        req: Request<tonic::Streaming<StreamChunk>>,
    ) -> Result<Response<Ack>, Status> {
        self.authorize(&req)?;
        let mut chunks = req.into_inner();
        let Some(first) = chunks.message().await? else {
            return Ok(Response::new(Ack {}));
        };
        let sink = self
            .hub
            .take(&first.stream_id)
            .ok_or_else(|| Status::not_found("no such stream"))?;
        let mut next = Some(first);
        while let Some(chunk) = next {
            let item = if chunk.error.is_empty() {
                Ok(bytes::Bytes::from(chunk.data))
            } else {
                Err(ApiError::bad_request(chunk.error))
            };
            let failed = item.is_err();
            if sink.send(item).await.is_err() || failed {
                // The client went away (or the stream failed): stop reading.
                break;
            }
            next = chunks.message().await?;
        }
        Ok(Response::new(Ack {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidrs_are_handed_out_in_order_without_reuse() {
        assert_eq!(
            allocate_pod_cidr("10.42.0.0/16", &HashSet::new()).unwrap(),
            "10.42.0.0/24"
        );
        let taken = HashSet::from(["10.42.0.0/24".to_string(), "10.42.2.0/24".to_string()]);
        assert_eq!(
            allocate_pod_cidr("10.42.0.0/16", &taken).unwrap(),
            "10.42.1.0/24"
        );
        let all: HashSet<String> = (0..4).map(|i| format!("10.42.{i}.0/24")).collect();
        assert!(allocate_pod_cidr("10.42.0.0/22", &all).is_err());
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
