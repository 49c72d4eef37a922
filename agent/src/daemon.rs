//! The agent process: wires the parts together, follows the control plane's command stream
//! (reconnecting as needed), hands stream requests to [`crate::streams`], runs the service
//! load balancer's stream ([`crate::services`]), and removes everything on `cleanup`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use skiff_proto::node::CommandsRequest;
use skiff_proto::node::node_command::Command;
use skiff_proto::node::open_stream::Kind;

use crate::cgroups::CgroupManager;
use crate::images::{ImageRef, ImageStore, RegistryConfig};
use crate::lb::ServiceLb;
use crate::network::{NetworkConfig, PodNetwork};
use crate::node::info::HostFacts;
use crate::pods::{Deps, PodManager};
use crate::runtime::Runtime;

/// Everything `skiff-agent run` is told.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub server: String,
    pub token_file: PathBuf,
    pub ca_file: PathBuf,
    pub node_name: String,
    pub node_ip: Option<IpAddr>,
    pub root_dir: PathBuf,
    pub registries: Option<PathBuf>,
    pub cgroup_root: String,
    pub bpffs_dir: PathBuf,
    pub bridge: String,
    pub netns_dir: PathBuf,
}

impl AgentConfig {
    fn network(&self, pod_cidr: &str, cluster_cidr: &str, service_cidr: &str) -> NetworkConfig {
        NetworkConfig {
            bridge: self.bridge.clone(),
            pod_cidr: pod_cidr.into(),
            cluster_cidr: cluster_cidr.into(),
            service_cidr: service_cidr.into(),
            netns_dir: self.netns_dir.clone(),
            state_dir: self.root_dir.join("network"),
        }
    }

    fn cgroup2_dir(&self) -> PathBuf {
        PathBuf::from("/sys/fs/cgroup/unified").join(&self.cgroup_root)
    }
}

/// Runs the agent until SIGINT/SIGTERM. Running pods are left running (a restarted agent
/// re-adopts them); `cleanup` removes them.
pub async fn run(config: AgentConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.root_dir)?;
    let root_dir = std::fs::canonicalize(&config.root_dir)?;
    let mut client = crate::node::connect(&config.server, &config.ca_file, &config.token_file)?;
    let node_ip = config
        .node_ip
        .unwrap_or_else(crate::node::info::detect_node_ip);
    let facts = Arc::new(HostFacts::read(&config.node_name, node_ip, &root_dir));
    tracing::info!(node = %config.node_name, %node_ip, server = %config.server, "registering");
    let registration = crate::node::register(&mut client, &facts.node()).await;
    tracing::info!(pod_cidr = %registration.pod_cidr, "registered");

    let cgroups = CgroupManager::new(&config.cgroup_root)?;
    cgroups.ensure_node_levels()?;
    let cidrs = [
        registration.pod_cidr.clone(),
        registration.cluster_cidr.clone(),
        registration.service_cidr.clone(),
    ];
    // `cleanup` needs the CIDRs to remove the routes, possibly without a control plane.
    std::fs::write(root_dir.join("cidrs.json"), serde_json::to_vec(&cidrs)?)?;
    let network = PodNetwork::setup_node(config.network(&cidrs[0], &cidrs[1], &cidrs[2])).await?;
    let lb = ServiceLb::load(&config.bpffs_dir, &config.cgroup2_dir())?;
    // ClusterIP services: the maps follow the control plane's Services stream from here on.
    let (_services, _programming_stats) =
        crate::services::spawn(client.clone(), config.node_name.clone(), lb);
    let registries = match &config.registries {
        Some(path) => RegistryConfig::load(path)?,
        None => RegistryConfig::default(),
    };
    let images = ImageStore::new(root_dir.join("images"), registries)?;
    let runtime = Runtime::new(root_dir.join("containers"), std::env::current_exe()?)?;
    let deps = Arc::new(Deps {
        runtime,
        images,
        cgroups,
        network,
        client: client.clone(),
        objects: crate::node::objects::ObjectCache::new(client.clone(), config.node_name.clone()),
        pods_root: root_dir.join("pods"),
        node_name: config.node_name.clone(),
        host_ip: node_ip.to_string(),
        cluster_dns: registration.cluster_dns.clone(),
    });

    let heartbeat_deps = deps.clone();
    let heartbeat_facts = facts.clone();
    let interval =
        Duration::from_secs((registration.lease_duration_seconds / 4).clamp(1, 10) as u64);
    tokio::spawn(crate::node::heartbeat(
        client.clone(),
        config.node_name.clone(),
        interval,
        move || {
            let images: Vec<_> = heartbeat_deps
                .images
                .list()
                .into_iter()
                .map(|i| k8s_openapi::api::core::v1::ContainerImage {
                    names: Some(vec![
                        format!(
                            "{}@{}",
                            ImageRef::parse(&i.name)
                                .map_or_else(|_| i.name.clone(), |r| r.repository()),
                            i.digest
                        ),
                        i.name.clone(),
                    ]),
                    size_bytes: Some(i.size as i64),
                })
                .collect();
            heartbeat_facts.status(&images)
        },
    ));

    let mut manager = PodManager::new(deps.clone());
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            _ = follow_commands(&mut client, &config.node_name, &mut manager) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::info!("shutting down; pods keep running until `skiff-agent cleanup`");
    Ok(())
}

/// Follows one command stream until it ends or fails.
async fn follow_commands(
    client: &mut crate::node::Client,
    node_name: &str,
    manager: &mut PodManager,
) {
    let request = CommandsRequest {
        node_name: node_name.to_string(),
    };
    let mut stream = match client.commands(request).await {
        Ok(resp) => resp.into_inner(),
        Err(status) => {
            tracing::warn!(%status, "opening the command stream failed");
            return;
        }
    };
    while let Some(message) = stream.next().await {
        let command = match message {
            Ok(m) => m.command,
            Err(status) => {
                tracing::warn!(%status, "command stream broke; reconnecting");
                return;
            }
        };
        match command {
            Some(Command::Snapshot(s)) => {
                let pods = s.pods_json.iter().filter_map(|j| decode(j)).collect();
                manager.snapshot(pods);
            }
            Some(Command::Pod(p)) => {
                if let Some(pod) = decode(&p.pod_json) {
                    manager.upsert(pod);
                }
            }
            Some(Command::PodRemoved(r)) => manager.removed(&r.uid),
            Some(Command::OpenStream(open)) => match open.kind {
                Some(Kind::Logs(req)) => {
                    crate::streams::serve_logs(manager, client.clone(), open.stream_id, req)
                }
                Some(Kind::Exec(req)) => {
                    crate::streams::serve_exec(manager, client.clone(), open.stream_id, req)
                }
                Some(Kind::PortForward(req)) => {
                    crate::streams::serve_port_forward(manager, client.clone(), open.stream_id, req)
                }
                None => tracing::warn!("ignoring stream request of unknown kind"),
            },
            None => {}
        }
    }
    tracing::info!("command stream ended; reconnecting");
}

fn decode(json: &[u8]) -> Option<k8s_openapi::api::core::v1::Pod> {
    skiff_proto::from_json(json)
        .map_err(|e| tracing::warn!(error = %e, "ignoring undecodable pod"))
        .ok()
}

/// Removes everything an agent made on this node: containers, pods' network and cgroups, the
/// bridge and routes, eBPF attachments and pins. Safe to run when nothing is there.
pub async fn cleanup(config: AgentConfig) -> anyhow::Result<()> {
    let root_dir = config.root_dir.clone();
    let runtime = Runtime::new(root_dir.join("containers"), std::env::current_exe()?)?;
    for id in runtime.list() {
        tracing::info!(container = %id, "stopping");
        if let Err(e) = runtime.stop(&id, Duration::from_secs(2)).await {
            tracing::warn!(container = %id, error = %e, "stop failed");
        }
        if let Err(e) = runtime.remove(&id).await {
            tracing::warn!(container = %id, error = %e, "remove failed");
        }
    }
    let cidrs: Option<[String; 3]> = std::fs::read(root_dir.join("cidrs.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some([pod, cluster, service]) = &cidrs {
        let network = config.network(pod, cluster, service);
        if let Err(e) = crate::network::cleanup(&network).await {
            tracing::warn!(error = %e, "network cleanup failed");
        }
    }
    match CgroupManager::new(&config.cgroup_root) {
        Ok(cgroups) => {
            if let Err(e) = cgroups.remove_all() {
                tracing::warn!(error = %e, "cgroup cleanup failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cgroups unavailable"),
    }
    if let Err(e) = ServiceLb::unload(&config.bpffs_dir, &config.cgroup2_dir()) {
        tracing::warn!(error = %e, "eBPF cleanup failed");
    }
    let pods = root_dir.join("pods");
    // Volumes' tmpfs mounts first, or removing the directories fails.
    if let Err(e) = crate::pods::volumes::mounts::unmount_all(&pods) {
        tracing::warn!(error = %e, "unmounting pod volumes failed");
    }
    if pods.exists() {
        std::fs::remove_dir_all(&pods)?;
    }
    Ok(())
}
