//! The hollow node's fake runtime: which pods to report Running (with an IP from the node's pod
//! CIDR) and which to finalize, decided from the pod command stream without any container.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::cgroups::qos_class;

/// What the node must tell the control plane.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The pod's containers "started": post this status.
    Running {
        namespace: String,
        name: String,
        uid: String,
        status: Box<PodStatus>,
    },
    /// The pod is being deleted and has "stopped": finalize its deletion.
    Terminated {
        namespace: String,
        name: String,
        uid: String,
    },
}

/// Pod IPs from a /24 (or larger) pod CIDR: host offsets 2.. (offset 1 is the bridge on a real
/// node), lowest free first.
#[derive(Debug)]
struct PodIps {
    base: u32,
    size: u32,
    used: BTreeSet<u32>,
}

impl PodIps {
    fn new(cidr: &str) -> Option<Self> {
        let (addr, prefix) = cidr.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let prefix: u32 = prefix.parse().ok().filter(|p| *p <= 30)?;
        Some(PodIps {
            base: u32::from(addr),
            size: 1 << (32 - prefix),
            used: BTreeSet::new(),
        })
    }

    fn take(&mut self) -> Option<Ipv4Addr> {
        let offset = (2..self.size - 1).find(|o| !self.used.contains(o))?;
        self.used.insert(offset);
        Some(Ipv4Addr::from(self.base + offset))
    }

    fn mark(&mut self, ip: Ipv4Addr) {
        let offset = u32::from(ip).wrapping_sub(self.base);
        if offset < self.size {
            self.used.insert(offset);
        }
    }

    fn free(&mut self, ip: Ipv4Addr) {
        self.used.remove(&u32::from(ip).wrapping_sub(self.base));
    }
}

/// The pods a hollow node knows, by uid.
#[derive(Debug)]
pub struct FakeRuntime {
    host_ip: String,
    ips: Option<PodIps>,
    pods: HashMap<String, Ipv4Addr>,
}

impl FakeRuntime {
    pub fn new(pod_cidr: &str, host_ip: String) -> Self {
        FakeRuntime {
            host_ip,
            ips: PodIps::new(pod_cidr),
            pods: HashMap::new(),
        }
    }

    /// The whole set of pods bound to the node (after a reconnect): pods no longer listed are
    /// forgotten, the others handled as upserts.
    pub fn snapshot(&mut self, pods: Vec<Pod>) -> Vec<Report> {
        let listed: BTreeSet<String> = pods.iter().filter_map(uid).collect();
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|u| !listed.contains(*u))
            .cloned()
            .collect();
        gone.iter().for_each(|u| self.removed(u));
        pods.into_iter().filter_map(|p| self.upsert(p)).collect()
    }

    /// A pod was bound to the node or changed.
    pub fn upsert(&mut self, pod: Pod) -> Option<Report> {
        let uid = uid(&pod)?;
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            self.removed(&uid);
            return Some(Report::Terminated {
                namespace,
                name,
                uid,
            });
        }
        if self.pods.contains_key(&uid) {
            return None;
        }
        // Already reported Running by an earlier connection: adopt its IP.
        let reported = pod
            .status
            .as_ref()
            .filter(|s| s.phase.as_deref() == Some("Running"));
        if let Some(ip) = reported
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok())
        {
            if let Some(ips) = &mut self.ips {
                ips.mark(ip);
            }
            self.pods.insert(uid, ip);
            return None;
        }
        let ip = self.ips.as_mut()?.take()?;
        self.pods.insert(uid.clone(), ip);
        Some(Report::Running {
            namespace,
            name,
            uid,
            status: Box::new(running_status(&pod, ip, &self.host_ip)),
        })
    }

    /// The pod is gone from the node.
    pub fn removed(&mut self, uid: &str) {
        if let (Some(ip), Some(ips)) = (self.pods.remove(uid), &mut self.ips) {
            ips.free(ip);
        }
    }

    /// How many pods the node runs.
    pub fn len(&self) -> usize {
        self.pods.len()
    }
}

fn uid(pod: &Pod) -> Option<String> {
    pod.metadata.uid.clone()
}

/// The status a kubelet posts once every container of the pod runs and is ready.
fn running_status(pod: &Pod, ip: Ipv4Addr, host_ip: &str) -> PodStatus {
    let now = Time(jiff::Timestamp::now());
    let condition = |type_: &str| PodCondition {
        type_: type_.to_string(),
        status: "True".to_string(),
        last_transition_time: Some(now.clone()),
        ..Default::default()
    };
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let container_statuses = containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            image_id: format!("hollow://{}", c.image.clone().unwrap_or_default()),
            container_id: Some(format!("hollow://{}", c.name)),
            ready: true,
            started: Some(true),
            restart_count: 0,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(now.clone()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    PodStatus {
        phase: Some("Running".to_string()),
        conditions: Some(
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            ]
            .into_iter()
            .map(condition)
            .collect(),
        ),
        host_ip: Some(host_ip.to_string()),
        pod_ip: Some(ip.to_string()),
        pod_ips: Some(vec![PodIP { ip: ip.to_string() }]),
        start_time: Some(now.clone()),
        qos_class: Some(format!("{:?}", qos_class(pod))),
        container_statuses: Some(container_statuses),
        ..Default::default()
    }
}

#[cfg(test)]
#[path = "pods_tests.rs"]
mod tests;
