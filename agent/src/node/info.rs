//! What the agent tells the control plane about its machine: the Node object, capacity,
//! conditions and the node-info block `kubectl get nodes -o wide` shows.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::{
    ContainerImage, Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// The kubelet version skiff reports (the API minor it implements).
pub const KUBELET_VERSION: &str = "v1.33.0-skiff";
/// Pods per node, as the kubelet's default.
pub const MAX_PODS: u32 = 110;

/// Static facts about this machine, read once at start.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub node_name: String,
    pub node_ip: IpAddr,
    pub cpus: usize,
    pub memory_bytes: u64,
    pub ephemeral_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
}

impl HostFacts {
    /// Reads CPU count, memory, disk under `root_dir`, kernel and OS identity.
    pub fn read(node_name: &str, node_ip: IpAddr, root_dir: &Path) -> HostFacts {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        let ephemeral_bytes = nix::sys::statvfs::statvfs(root_dir)
            .map(|s| s.blocks() * s.fragment_size())
            .unwrap_or(0);
        let os_image = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| "Linux".into());
        HostFacts {
            node_name: node_name.to_string(),
            node_ip,
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_bytes: memory_kib * 1024,
            ephemeral_bytes,
            kernel_version: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            os_image,
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }

    fn capacity(&self) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity(self.cpus.to_string())),
            (
                "memory".to_string(),
                Quantity(format!("{}Ki", self.memory_bytes / 1024)),
            ),
            ("pods".to_string(), Quantity(MAX_PODS.to_string())),
            (
                "ephemeral-storage".to_string(),
                Quantity(format!("{}Ki", self.ephemeral_bytes / 1024)),
            ),
        ])
    }

    /// The Node object to register.
    pub fn node(&self) -> Node {
        let labels = BTreeMap::from([
            ("kubernetes.io/hostname".to_string(), self.node_name.clone()),
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), arch().to_string()),
            ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
            ("beta.kubernetes.io/arch".to_string(), arch().to_string()),
        ]);
        Node {
            metadata: ObjectMeta {
                name: Some(self.node_name.clone()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(self.status(&[])),
        }
    }

    /// The node's status now: capacity, Ready and pressure conditions, addresses, images.
    pub fn status(&self, images: &[ContainerImage]) -> NodeStatus {
        let now = Time(jiff::Timestamp::now());
        let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: None,
        };
        NodeStatus {
            capacity: Some(self.capacity()),
            allocatable: Some(self.capacity()),
            conditions: Some(vec![
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition(
                    "Ready",
                    "True",
                    "KubeletReady",
                    "skiff-agent is posting ready status",
                ),
            ]),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: self.node_ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: self.node_name.clone(),
                },
            ]),
            node_info: Some(NodeSystemInfo {
                architecture: arch().into(),
                boot_id: self.boot_id.clone(),
                container_runtime_version: format!("skiff://{}", env!("CARGO_PKG_VERSION")),
                kernel_version: self.kernel_version.clone(),
                kube_proxy_version: KUBELET_VERSION.into(),
                kubelet_version: KUBELET_VERSION.into(),
                machine_id: self.machine_id.clone(),
                operating_system: "linux".into(),
                os_image: self.os_image.clone(),
                system_uuid: self.machine_id.clone(),
                ..Default::default()
            }),
            images: (!images.is_empty()).then(|| images.to_vec()),
            ..Default::default()
        }
    }
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The address of the interface that holds the default route, else the first non-loopback
/// IPv4 address, else 127.0.0.1 (e.g. inside a test namespace with only loopback).
pub fn detect_node_ip() -> IpAddr {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0");
    // connect() on UDP sends nothing; it only asks the kernel which source address it would use.
    if let Ok(sock) = sock
        && sock.connect("192.0.2.255:9").is_ok()
        && let Ok(addr) = sock.local_addr()
        && !addr.ip().is_unspecified()
    {
        return addr.ip();
    }
    nix::ifaddrs::getifaddrs()
        .ok()
        .and_then(|mut addrs| {
            addrs.find_map(|a| {
                let ip = a.address?.as_sockaddr_in()?.ip();
                (!ip.is_loopback()).then_some(IpAddr::V4(ip))
            })
        })
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_reports_capacity_and_ready() {
        let facts = HostFacts::read("n1", IpAddr::from([10, 0, 0, 2]), Path::new("/"));
        assert!(facts.cpus >= 1);
        assert!(facts.memory_bytes > 0);
        let node = facts.node();
        let status = node.status.unwrap();
        let cap = status.capacity.unwrap();
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(cap["cpu"].0, facts.cpus.to_string());
        let ready = status
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        assert_eq!(
            node.metadata.labels.unwrap()["kubernetes.io/hostname"],
            "n1"
        );
    }
}
