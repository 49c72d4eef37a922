//! Pod networking: node bridge, per-pod netns and veth, host-local IPAM, local blackhole routes.
//!
//! Architecture invariant: nothing here enables forwarding or NAT. Pods reach each other and
//! the node over the bridge (L2); the blackhole routes for the cluster and service CIDRs make
//! a packet for an unknown pod or a service address the eBPF programs missed die locally
//! instead of leaving through the default route.

mod ipam;
mod links;
mod netns;
#[cfg(test)]
mod tests;

use std::{
    net::Ipv4Addr,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

pub use ipam::{Ipam, Ipv4Cidr};
use rtnetlink::Handle;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

/// Name of the pod side of the veth pair, inside the pod's netns.
pub const POD_IFNAME: &str = "eth0";

/// Node network settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Bridge name, e.g. "skiff0".
    pub bridge: String,
    /// This node's pod CIDR, e.g. "10.42.0.0/24"; the bridge takes its first address.
    pub pod_cidr: String,
    /// The whole cluster's pod CIDR, e.g. "10.42.0.0/16" (blackholed locally).
    pub cluster_cidr: String,
    /// The service CIDR, e.g. "10.43.0.0/16" (blackholed locally).
    pub service_cidr: String,
    /// Where named netns files live, e.g. /run/netns.
    pub netns_dir: PathBuf,
    /// The agent's network state (IPAM), e.g. `<root-dir>/network`.
    pub state_dir: PathBuf,
}

/// What a pod's containers need to join its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetworkInfo {
    /// The pod's netns (a bind-mounted nsfs file).
    pub netns_path: PathBuf,
    /// The pod's address on eth0.
    pub ip: Ipv4Addr,
    /// Prefix length of the pod network.
    pub prefix_len: u8,
    /// The bridge address, the pod's default gateway.
    pub gateway: Ipv4Addr,
    /// Host side of the veth pair.
    pub host_veth: String,
}

/// Errors of pod networking.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A CIDR in the config did not parse or does not fit.
    #[error("invalid CIDR {0:?}")]
    InvalidCidr(String),
    /// A pod uid that cannot name a netns.
    #[error("invalid pod uid {0:?}")]
    InvalidUid(String),
    /// No free address is left in the pod CIDR.
    #[error("no free address left in {0}")]
    Exhausted(String),
    /// A link that should exist does not.
    #[error("link {0} is missing")]
    Missing(String),
    /// A filesystem or namespace operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("{what} {target}: {source}")]
    Netlink {
        what: &'static str,
        target: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// The netns worker thread died.
    #[error("netns worker thread failed")]
    Thread,
}

/// The parsed config plus a netlink handle in the agent's netns.
#[derive(Debug)]
struct Node {
    cfg: NetworkConfig,
    pod_net: Ipv4Cidr,
    cluster: Ipv4Cidr,
    services: Ipv4Cidr,
    handle: Handle,
    ipam: Ipam,
}

impl Node {
    fn open(cfg: NetworkConfig) -> Result<Self, NetworkError> {
        let pod_net: Ipv4Cidr = cfg.pod_cidr.parse()?;
        let ipam = Ipam::open(&cfg.state_dir.join("ipam"), pod_net)?;
        Ok(Self {
            pod_net,
            cluster: cfg.cluster_cidr.parse()?,
            services: cfg.service_cidr.parse()?,
            handle: links::connect()?,
            ipam,
            cfg,
        })
    }

    fn gateway(&self) -> Ipv4Addr {
        self.pod_net.nth(1)
    }

    async fn remove_pod(&self, uid: &str) -> Result<(), NetworkError> {
        check_uid(uid)?;
        links::delete(&self.handle, &host_veth_name(uid)).await?;
        netns::delete(&self.cfg.netns_dir.join(netns_name(uid)))?;
        self.ipam.release(uid)
    }

    async fn teardown(&self) -> Result<(), NetworkError> {
        for (_, uid) in self.ipam.allocations()? {
            if let Err(e) = self.remove_pod(&uid).await {
                warn!(%uid, error = %e, "removing pod network during teardown");
            }
        }
        links::delete(&self.handle, &self.cfg.bridge).await?;
        links::del_blackhole(&self.handle, self.cluster).await?;
        links::del_blackhole(&self.handle, self.services).await?;
        self.ipam.remove_all()?;
        info!(bridge = %self.cfg.bridge, "node network torn down");
        Ok(())
    }
}

fn check_uid(uid: &str) -> Result<(), NetworkError> {
    let ok = !uid.is_empty()
        && uid.len() <= 64
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(NetworkError::InvalidUid(uid.to_owned()))
    }
}

/// The netns file name of a pod.
pub fn netns_name(uid: &str) -> String {
    format!("skiff-{uid}")
}

/// The host-side veth name of a pod: "veth" + 11 hex digits of sha256(uid) (IFNAMSIZ is 16).
pub fn host_veth_name(uid: &str) -> String {
    let digest = hex::encode(Sha256::digest(uid.as_bytes()));
    format!("veth{}", &digest[..11])
}

/// The node's pod network; cheap to share (`&self` methods).
#[derive(Debug)]
pub struct PodNetwork {
    node: Node,
    bridge_index: u32,
    /// Serialises add/remove so one uid never races itself.
    lock: tokio::sync::Mutex<()>,
}

impl PodNetwork {
    /// Brings the bridge up with the pod CIDR's first address and installs the blackhole
    /// routes, in the netns the agent runs in. Idempotent: re-adopts what an earlier agent made.
    pub async fn setup_node(cfg: NetworkConfig) -> Result<Self, NetworkError> {
        let node = Node::open(cfg)?;
        let bridge = &node.cfg.bridge;
        let bridge_index = links::ensure_bridge(&node.handle, bridge).await?;
        links::add_address(
            &node.handle,
            bridge_index,
            node.gateway(),
            node.pod_net.prefix_len,
            bridge,
        )
        .await?;
        links::add_blackhole(&node.handle, node.cluster).await?;
        links::add_blackhole(&node.handle, node.services).await?;
        info!(
            %bridge,
            gateway = %node.gateway(),
            pod_cidr = %node.cfg.pod_cidr,
            "node network ready"
        );
        Ok(Self {
            node,
            bridge_index,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The config this network was set up with.
    pub fn config(&self) -> &NetworkConfig {
        &self.node.cfg
    }

    /// Gives pod `uid` a netns with eth0 (its IP, lo up, default route via the bridge) wired
    /// to the bridge. Idempotent for the same uid: returns the existing setup.
    pub async fn add_pod(
        &self,
        uid: &str,
        namespace: &str,
        name: &str,
    ) -> Result<PodNetworkInfo, NetworkError> {
        check_uid(uid)?;
        let _guard = self.lock.lock().await;
        let node = &self.node;
        let ip = node.ipam.allocate(uid)?;
        let netns_path = netns::create(&node.cfg.netns_dir, &netns_name(uid))?;
        let host_veth = host_veth_name(uid);

        let has_eth0 = netns::run_in(&netns_path, || async {
            let handle = links::connect()?;
            Ok(links::index(&handle, POD_IFNAME).await?.is_some())
        })
        .await?;
        let host_link = links::get(&node.handle, &host_veth).await?;
        let complete = has_eth0 && host_link.is_some();
        if !complete {
            // Half-made (agent died midway): start the pair over.
            links::delete(&node.handle, &host_veth).await?;
            if has_eth0 {
                netns::run_in(&netns_path, || async {
                    links::delete(&links::connect()?, POD_IFNAME).await
                })
                .await?;
            }
            let ns = std::fs::File::open(&netns_path).map_err(|source| NetworkError::Io {
                what: "opening netns",
                path: netns_path.clone(),
                source,
            })?;
            links::add_veth(&node.handle, &host_veth, POD_IFNAME, ns.as_raw_fd()).await?;
        }
        let host_index = links::index(&node.handle, &host_veth)
            .await?
            .ok_or_else(|| NetworkError::Missing(host_veth.clone()))?;
        if host_link.as_ref().and_then(links::controller) != Some(self.bridge_index) || !complete {
            links::attach(&node.handle, host_index, self.bridge_index, &host_veth).await?;
        }

        let (gateway, prefix_len) = (node.gateway(), node.pod_net.prefix_len);
        netns::run_in(&netns_path, move || async move {
            let handle = links::connect()?;
            let lo = links::index(&handle, "lo")
                .await?
                .ok_or_else(|| NetworkError::Missing("lo".into()))?;
            links::set_up(&handle, lo, "lo").await?;
            let eth0 = links::index(&handle, POD_IFNAME)
                .await?
                .ok_or_else(|| NetworkError::Missing(POD_IFNAME.into()))?;
            links::add_address(&handle, eth0, ip, prefix_len, POD_IFNAME).await?;
            links::set_up(&handle, eth0, POD_IFNAME).await?;
            links::set_default_route(&handle, gateway).await
        })
        .await?;
        debug!(%uid, %namespace, %name, %ip, netns = %netns_path.display(), "pod network ready");
        Ok(PodNetworkInfo {
            netns_path,
            ip,
            prefix_len,
            gateway,
            host_veth,
        })
    }

    /// Removes the pod's veth pair and netns and frees its address. Idempotent.
    pub async fn remove_pod(&self, uid: &str) -> Result<(), NetworkError> {
        let _guard = self.lock.lock().await;
        self.node.remove_pod(uid).await?;
        debug!(%uid, "pod network removed");
        Ok(())
    }

    /// Removes every pod's netns and veth, the bridge, the blackhole routes and IPAM state.
    pub async fn teardown_node(&self) -> Result<(), NetworkError> {
        let _guard = self.lock.lock().await;
        self.node.teardown().await
    }
}

/// [`PodNetwork::teardown_node`] without a live `PodNetwork` (for `skiff-agent cleanup`).
pub async fn cleanup(cfg: &NetworkConfig) -> Result<(), NetworkError> {
    Node::open(cfg.clone())?.teardown().await
}

/// Whether `path` is a mounted netns (for callers checking a recorded pod netns).
pub fn netns_exists(path: &Path) -> bool {
    netns::is_netns(path)
}
