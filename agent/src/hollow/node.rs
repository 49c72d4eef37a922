//! One hollow node: registers, renews its Lease, posts status now and then, and follows its pod
//! command stream through the fake runtime, reconnecting whenever the stream breaks.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Pod,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use skiff_proto::node::node_command::Command;
use skiff_proto::node::{
    CommandsRequest, NodeStatusUpdate, PodRef, PodStatusUpdate, RenewLeaseRequest,
};
use tracing::Instrument;

use super::HollowConfig;
use super::pods::{FakeRuntime, Report};
use crate::node::Client;

/// A simulated node.
pub struct HollowNode {
    config: Arc<HollowConfig>,
    name: String,
    ip: Ipv4Addr,
    zone: Option<String>,
}

impl HollowNode {
    pub fn new(config: Arc<HollowConfig>, index: usize) -> Self {
        // Node addresses are only data here (nothing is sent to them): 10.255.0.0/16 onwards.
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 255, 0, 0)) + index as u32 + 1);
        HollowNode {
            name: config.node_name(index),
            zone: (config.zones > 0).then(|| format!("zone-{}", index % config.zones)),
            config,
            ip,
        }
    }

    /// Runs the node forever.
    pub async fn run(self: Arc<Self>, mut client: Client) {
        let span = tracing::info_span!("hollow", node = %self.name);
        async move {
            let registration = crate::node::register(&mut client, &self.node()).await;
            let lease_every =
                Duration::from_secs((registration.lease_duration_seconds / 4).clamp(1, 10) as u64);
            tokio::spawn(
                self.clone()
                    .heartbeat(client.clone(), lease_every)
                    .in_current_span(),
            );
            let mut runtime = FakeRuntime::new(&registration.pod_cidr, self.ip.to_string());
            loop {
                self.follow_commands(&mut client, &mut runtime).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        .instrument(span)
        .await
    }

    /// The Node object to register.
    fn node(&self) -> Node {
        let mut labels = BTreeMap::from(
            [
                ("kubernetes.io/hostname", self.name.as_str()),
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "amd64"),
                ("skiff.dev/hollow", "true"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        if let Some(zone) = &self.zone {
            labels.insert("topology.kubernetes.io/zone".into(), zone.clone());
        }
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(self.status()),
        }
    }

    fn status(&self) -> NodeStatus {
        let now = Time(jiff::Timestamp::now());
        let condition = |type_: &str, status: &str, reason: &str| NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(format!("hollow node: {reason}")),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: None,
        };
        let capacity = BTreeMap::from([
            ("cpu".to_string(), Quantity(self.config.cpu.clone())),
            ("memory".to_string(), Quantity(self.config.memory.clone())),
            (
                "pods".to_string(),
                Quantity(self.config.max_pods.to_string()),
            ),
            ("ephemeral-storage".to_string(), Quantity("100Gi".into())),
        ]);
        NodeStatus {
            allocatable: Some(capacity.clone()),
            capacity: Some(capacity),
            conditions: Some(vec![
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                condition("Ready", "True", "KubeletReady"),
            ]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: self.ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.name.clone(),
                },
            ]),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                operating_system: "linux".into(),
                os_image: "skiff hollow node".into(),
                kernel_version: "hollow".into(),
                kubelet_version: format!("v1.33.0-skiff-{}", env!("CARGO_PKG_VERSION")),
                kube_proxy_version: String::new(),
                container_runtime_version: "hollow://0".into(),
                machine_id: self.name.clone(),
                system_uuid: self.name.clone(),
                boot_id: self.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Renews the Lease every `lease_every`; posts the full status every `status_every` (the
    /// first one at once, since registration's status may be stale by then).
    async fn heartbeat(self: Arc<Self>, mut client: Client, lease_every: Duration) {
        let mut lease = tokio::time::interval(lease_every);
        let mut status = tokio::time::interval(self.config.status_every);
        for tick in [&mut lease, &mut status] {
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                _ = lease.tick() => {
                    let req = RenewLeaseRequest { node_name: self.name.clone() };
                    if let Err(status) = client.renew_lease(req).await {
                        tracing::warn!(%status, "renewing the lease failed");
                    }
                }
                _ = status.tick() => {
                    let update = NodeStatusUpdate {
                        node_name: self.name.clone(),
                        status_json: skiff_proto::to_json(&self.status()),
                    };
                    if let Err(status) = client.update_node_status(update).await {
                        tracing::warn!(%status, "posting node status failed");
                    }
                }
            }
        }
    }

    /// Follows one command stream until it ends or fails.
    async fn follow_commands(&self, client: &mut Client, runtime: &mut FakeRuntime) {
        let request = CommandsRequest {
            node_name: self.name.clone(),
        };
        let mut stream = match client.commands(request).await {
            Ok(resp) => resp.into_inner(),
            Err(status) => {
                tracing::warn!(%status, "opening the command stream failed");
                return;
            }
        };
        while let Some(message) = stream.next().await {
            let reports = match message.map(|m| m.command) {
                Ok(Some(Command::Snapshot(s))) => {
                    let reports =
                        runtime.snapshot(s.pods_json.iter().filter_map(|j| decode(j)).collect());
                    tracing::debug!(pods = runtime.len(), "pod snapshot");
                    reports
                }
                Ok(Some(Command::Pod(p))) => decode(&p.pod_json)
                    .and_then(|pod| runtime.upsert(pod))
                    .into_iter()
                    .collect(),
                Ok(Some(Command::PodRemoved(r))) => {
                    runtime.removed(&r.uid);
                    Vec::new()
                }
                // Streams (logs, exec) and anything newer have nothing to act on here.
                Ok(_) => Vec::new(),
                Err(status) => {
                    tracing::warn!(%status, "command stream broke; reconnecting");
                    return;
                }
            };
            for report in reports {
                tokio::spawn(
                    send(client.clone(), report, self.config.start_delay).in_current_span(),
                );
            }
        }
    }
}

/// Tells the control plane what the fake runtime decided, retrying a few times: the fake
/// runtime considers the pod handled, so nothing else would repeat a lost report.
async fn send(mut client: Client, report: Report, start_delay: Duration) {
    if matches!(report, Report::Running { .. }) {
        tokio::time::sleep(start_delay).await;
    }
    let mut delay = Duration::from_millis(200);
    for _ in 0..6 {
        let result = match report.clone() {
            Report::Running {
                namespace,
                name,
                uid,
                status,
            } => {
                let update = PodStatusUpdate {
                    namespace,
                    name,
                    uid,
                    status_json: skiff_proto::to_json(&*status),
                };
                client.update_pod_status(update).await
            }
            Report::Terminated {
                namespace,
                name,
                uid,
            } => {
                let pod = PodRef {
                    namespace,
                    name,
                    uid,
                };
                client.pod_terminated(pod).await
            }
        };
        match result {
            Ok(_) => return,
            // The pod is gone (or replaced under the same name): nothing left to report.
            Err(status) if status.code() == tonic::Code::NotFound => return,
            Err(status) => tracing::debug!(%status, "reporting a pod failed; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    tracing::warn!("giving up reporting a pod");
}

fn decode(json: &[u8]) -> Option<Pod> {
    skiff_proto::from_json(json)
        .map_err(|e| tracing::warn!(error = %e, "ignoring undecodable pod"))
        .ok()
}
