//! What one Service (with its EndpointSlices) means in cluster DNS: its kind (cluster IPs,
//! headless, ExternalName), its named ports for SRV records, and the endpoints a headless
//! service answers with.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// How a service name resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// A records with the cluster IPs.
    ClusterIp(Vec<Ipv4Addr>),
    /// A records with the endpoints' addresses.
    Headless,
    /// A CNAME to this name.
    ExternalName(String),
}

/// A named port (SRV `_<name>._<proto>`); `proto` is lower case (`tcp`, `udp`, `sctp`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamedPort {
    pub name: String,
    pub proto: String,
    pub port: u16,
}

/// One endpoint of a headless service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    /// `hostname` from the slice (StatefulSet pods); the dashed IP names it otherwise.
    pub hostname: Option<String>,
    /// The slice's named ports (SRV records of headless services point at endpoints).
    pub ports: Vec<NamedPort>,
}

impl Endpoint {
    /// The endpoint's label under the service name: its hostname, or its IP with dashes.
    pub fn label(&self) -> String {
        match &self.hostname {
            Some(h) => h.to_ascii_lowercase(),
            None => dashed(self.ip),
        }
    }
}

/// `10.42.0.5` → `10-42-0-5`.
pub fn dashed(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{a}-{b}-{c}-{d}")
}

/// Everything DNS needs to know about one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub kind: ServiceKind,
    /// The service's named ports (for SRV of non-headless services).
    pub ports: Vec<NamedPort>,
    /// Endpoints to publish: ready ones (all of them with `publishNotReadyAddresses`).
    pub endpoints: Vec<Endpoint>,
}

fn proto_label(protocol: Option<&str>) -> String {
    protocol.unwrap_or("TCP").to_ascii_lowercase()
}

/// The DNS view of `svc` given its slices; `None` for a service without a spec.
pub fn service_record(svc: &Service, slices: &[&EndpointSlice]) -> Option<ServiceRecord> {
    let spec = svc.spec.as_ref()?;
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        ServiceKind::ExternalName(spec.external_name.clone().unwrap_or_default())
    } else if spec.cluster_ip.as_deref() == Some("None") {
        ServiceKind::Headless
    } else {
        let ips: Vec<&String> = match &spec.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.iter().collect(),
            _ => spec.cluster_ip.iter().collect(),
        };
        ServiceKind::ClusterIp(ips.into_iter().filter_map(|ip| ip.parse().ok()).collect())
    };
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(NamedPort {
                name: p.name.clone().filter(|n| !n.is_empty())?,
                proto: proto_label(p.protocol.as_deref()),
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let mut endpoints = BTreeSet::new();
    for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
        let slice_ports: Vec<NamedPort> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(NamedPort {
                    name: p.name.clone().filter(|n| !n.is_empty())?,
                    proto: proto_label(p.protocol.as_deref()),
                    port: u16::try_from(p.port?).ok()?,
                })
            })
            .collect();
        for ep in &slice.endpoints {
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready && !publish_not_ready {
                continue;
            }
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse().ok()) else {
                continue;
            };
            endpoints.insert(Endpoint {
                ip,
                hostname: ep.hostname.clone().filter(|h| !h.is_empty()),
                ports: slice_ports.clone(),
            });
        }
    }
    Some(ServiceRecord {
        kind,
        ports,
        endpoints: endpoints.into_iter().collect(),
    })
}
