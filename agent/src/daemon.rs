//! The agent process: wires the parts together, follows the control plane's command stream
//! (reconnecting as needed), hands stream requests to [`crate::streams`], runs the service
//! load balancer's stream ([`crate::services`]), and removes everything on `cleanup`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
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
    /// The cgroup2 dir the socket load-balancing programs attach to (`None`: the cgroup2
    /// root, so node processes are covered too).
    pub lb_cgroup_root: Option<PathBuf>,
    /// Where cluster DNS relays names outside the cluster domain (`None`: REFUSED).
    pub dns_upstream: Option<SocketAddr>,
    /// A container log file is rotated past this many bytes, keeping this many files.
    pub container_log_max_size: u64,
    pub container_log_max_files: u32,
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
        Path::new(UNIFIED_ROOT).join(&self.cgroup_root)
    }

    fn lb_cgroup_dir(&self) -> PathBuf {
        self.lb_cgroup_root.clone().unwrap_or_else(cgroup2_root)
    }
}

/// The cgroup2 mount on this (hybrid) host.
const UNIFIED_ROOT: &str = "/sys/fs/cgroup/unified";

/// The root of the cgroup2 hierarchy: the hybrid layout's `unified` mount, or `/sys/fs/cgroup`
/// itself on a pure cgroup2 host.
fn cgroup2_root() -> PathBuf {
    use nix::sys::statfs::{CGROUP2_SUPER_MAGIC, statfs};
    let is_cgroup2 = |p: &str| statfs(p).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC);
    if !is_cgroup2(UNIFIED_ROOT) && is_cgroup2("/sys/fs/cgroup") {
        return PathBuf::from("/sys/fs/cgroup");
    }
    PathBuf::from(UNIFIED_ROOT)
}

/// The key of the cluster DNS address's static load-balancer entries.
fn cluster_dns_key() -> crate::services::NsName {
    crate::services::NsName::new("", "cluster-dns")
}

/// The pod bridge's address: the pod CIDR's first host address.
fn bridge_address(pod_cidr: &str) -> anyhow::Result<Ipv4Addr> {
    let (net, _) = pod_cidr
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("pod CIDR {pod_cidr} has no prefix length"))?;
    let net: Ipv4Addr = net.parse()?;
    Ok(Ipv4Addr::from(u32::from(net) + 1))
}

/// Starts cluster DNS on the bridge address, port 53, and returns its zone with the static
/// socket-LB entries that send the cluster DNS address there (UDP and TCP).
async fn start_dns(
    config: &AgentConfig,
    pod_cidr: &str,
    cluster_dns: &str,
) -> anyhow::Result<crate::services::Extras> {
    use crate::lb::{L4Proto, Vip};
    let listen = SocketAddrV4::new(bridge_address(pod_cidr)?, 53);
    let zone = Arc::new(crate::dns::Zone::default());
    let server = crate::dns::DnsServer::bind(listen.into()).await?;
    server.spawn(zone.clone(), config.dns_upstream);
    let vip_ip: Ipv4Addr = cluster_dns.parse()?;
    let entries = [L4Proto::Udp, L4Proto::Tcp]
        .into_iter()
        .map(|proto| (Vip::new(SocketAddrV4::new(vip_ip, 53), proto), vec![listen]))
        .collect();
    tracing::info!(%listen, cluster_dns, "cluster DNS listening");
    Ok(crate::services::Extras {
        zone: Some(zone),
        statics: vec![(cluster_dns_key(), entries)],
    })
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
    let lb = ServiceLb::load(&config.bpffs_dir, &config.lb_cgroup_dir())?;
    let extras = start_dns(&config, &cidrs[0], &registration.cluster_dns).await?;
    // ClusterIP services: the maps follow the control plane's Services stream from here on.
    let (_services, _programming_stats) =
        crate::services::spawn(client.clone(), config.node_name.clone(), lb, extras);
    let registries = match &config.registries {
        Some(path) => RegistryConfig::load(path)?,
        None => RegistryConfig::default(),
    };
    let images = ImageStore::new(root_dir.join("images"), registries)?;
    let runtime = Runtime::new(root_dir.join("containers"), std::env::current_exe()?)?
        .with_log_limits(
            config.container_log_max_size,
            config.container_log_max_files,
        );
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
