//! What a Service's endpoints should be, from its pods: which pods count, their IPv4 address,
//! the service ports resolved per pod (named targetPorts looked up in the pod's container
//! ports) and each pod's endpoint with its ready/serving/terminating conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controllers::common::{is_ready, phase};

/// The endpoints of one set of resolved ports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortGroup {
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

/// A Service's desired endpoints, grouped by resolved port set (keyed by [`port_key`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    pub groups: BTreeMap<String, PortGroup>,
}

impl Desired {
    pub fn is_empty(&self) -> bool {
        self.groups.values().all(|g| g.endpoints.is_empty())
    }
}

/// The service's selector when it has a non-empty one (services without one are managed by
/// their users).
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

/// Whether `labels` carry every `key=value` of `selector`.
pub fn selects(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The selector in label-selector syntax (`a=b,c=d`) for list calls.
pub fn selector_string(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None")
}

pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// The pod's IPv4 address, if it has one.
pub fn pod_ipv4(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let from_list = status
        .pod_ips
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|p| p.ip.as_str());
    status
        .pod_ip
        .as_deref()
        .into_iter()
        .chain(from_list)
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_string)
}

/// Upstream's ShouldPodBeInEndpoints: not finished, has an IP, and (unless
/// `include_terminating`) not being deleted.
pub fn should_include(pod: &Pod, include_terminating: bool) -> bool {
    if matches!(phase(pod), "Succeeded" | "Failed") {
        return false;
    }
    if pod_ipv4(pod).is_none() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// The container port a service port reaches on `pod` (upstream's FindPort): a number as is,
/// a name looked up among the pod's container ports of the same protocol.
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = sp.protocol.as_deref().unwrap_or("TCP");
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .as_deref()
                .unwrap_or_default()
                .iter()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.as_deref().unwrap_or_default())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The service's ports as resolved on `pod` (ports the pod cannot serve are left out).
pub fn resolve_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|sp| {
            find_port(pod, sp).map(|port| EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// A canonical key of a port set (order-independent).
pub fn port_key(ports: &[EndpointPort]) -> String {
    let mut parts: Vec<String> = ports
        .iter()
        .map(|p| {
            format!(
                "{}/{}/{}/{}",
                p.name.as_deref().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.as_deref().unwrap_or("TCP"),
                p.app_protocol.as_deref().unwrap_or_default()
            )
        })
        .collect();
    parts.sort();
    parts.join(",")
}

/// The pod's `targetRef`.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The pod's DNS hostname for this service (spec.hostname when spec.subdomain names it).
pub fn hostname(svc: &Service, pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let host = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| host.to_string())
}

fn node_name(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

/// The pod's slice endpoint (upstream's podToEndpoint); `zone` looks up a node's zone label.
pub fn endpoint(svc: &Service, pod: &Pod, zone: &dyn Fn(&str) -> Option<String>) -> Endpoint {
    let publish = publish_not_ready(svc);
    let serving = publish || is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = publish || (serving && !terminating);
    let node = node_name(pod);
    Endpoint {
        addresses: pod_ipv4(pod).into_iter().collect(),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: hostname(svc, pod),
        zone: node.as_deref().and_then(zone),
        node_name: node,
        target_ref: Some(pod_ref(pod)),
        ..Default::default()
    }
}

/// The desired slice endpoints of `svc` over the pods its selector matches, sorted by pod name
/// within each port group so the result does not depend on list order.
pub fn desired(svc: &Service, pods: &[Pod], zone: &dyn Fn(&str) -> Option<String>) -> Desired {
    let mut pods: Vec<&Pod> = pods.iter().filter(|p| should_include(p, true)).collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out = Desired::default();
    for pod in pods {
        let ports = resolve_ports(svc, pod);
        let group = out
            .groups
            .entry(port_key(&ports))
            .or_insert_with(|| PortGroup {
                ports,
                endpoints: Vec::new(),
            });
        group.endpoints.push(endpoint(svc, pod, zone));
    }
    out
}

/// The latest change among the service and its pods (creation, readiness transition,
/// deletion): the `endpoints.kubernetes.io/last-change-trigger-time` of the objects written.
pub fn trigger_time(svc: &Service, pods: &[Pod]) -> Option<jiff::Timestamp> {
    let pod_times = pods.iter().flat_map(|p| {
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .filter(|c| c.type_ == "Ready")
            .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0));
        p.metadata
            .creation_timestamp
            .iter()
            .chain(p.metadata.deletion_timestamp.iter())
            .map(|t| t.0)
            .chain(ready)
            .collect::<Vec<_>>()
    });
    svc.metadata
        .creation_timestamp
        .iter()
        .map(|t| t.0)
        .chain(pod_times)
        .max()
}
