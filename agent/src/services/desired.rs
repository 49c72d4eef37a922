//! The desired load-balancer state: Services and EndpointSlices as received, and what they mean
//! for the maps — per service, each (cluster IP, port, protocol) and its backend list.
//!
//! kube-proxy's rules: a slice belongs to the service its `kubernetes.io/service-name` label
//! names; a service port's backends are the slice ports of the same name and protocol (the
//! slice carries the resolved number, which is how named targetPorts resolve); only ready
//! endpoints count, with serving+terminating ones as the fallback when none is ready; headless
//! and ExternalName services get no entries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::lb::{L4Proto, Vip};

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A namespaced name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsName {
    pub namespace: String,
    pub name: String,
}

impl NsName {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Self> {
        Some(Self::new(
            meta.namespace.as_deref().unwrap_or("default"),
            meta.name.as_deref()?,
        ))
    }
}

impl std::fmt::Display for NsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One service's entries: service address → backends (sorted).
pub type Entries = BTreeMap<Vip, Vec<SocketAddrV4>>;

/// One service's ClientIP session affinity: service address → timeout in seconds.
pub type Affinity = BTreeMap<Vip, u32>;

/// kube-proxy's default ClientIP affinity timeout (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

/// Every Service and EndpointSlice the agent knows.
#[derive(Debug, Default)]
pub struct Desired {
    services: HashMap<NsName, Service>,
    slices: HashMap<NsName, EndpointSlice>,
    /// Service → the slices labelled with it.
    slices_of: HashMap<NsName, BTreeSet<NsName>>,
    /// Entries the agent adds itself (the cluster DNS address), kept across snapshots.
    statics: HashMap<NsName, Entries>,
}

fn owner(slice: &EndpointSlice) -> Option<NsName> {
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some(NsName::new(
        slice.metadata.namespace.as_deref().unwrap_or("default"),
        service,
    ))
}

impl Desired {
    /// Every service name known (with or without a Service object: slices may come first).
    pub fn service_names(&self) -> BTreeSet<NsName> {
        self.services
            .keys()
            .chain(self.slices_of.keys())
            .chain(self.statics.keys())
            .cloned()
            .collect()
    }

    /// Records a Service; returns the service whose entries may have changed.
    pub fn upsert_service(&mut self, service: Service) -> Option<NsName> {
        let key = NsName::of(&service.metadata)?;
        self.services.insert(key.clone(), service);
        Some(key)
    }

    pub fn remove_service(&mut self, key: &NsName) -> NsName {
        self.services.remove(key);
        key.clone()
    }

    /// Records a slice; returns the services whose entries may have changed (its old owner
    /// too, if the label changed).
    pub fn upsert_slice(&mut self, slice: EndpointSlice) -> Vec<NsName> {
        let Some(key) = NsName::of(&slice.metadata) else {
            return Vec::new();
        };
        let mut affected = self.remove_slice(&key);
        if let Some(service) = owner(&slice) {
            self.slices_of
                .entry(service.clone())
                .or_default()
                .insert(key.clone());
            if !affected.contains(&service) {
                affected.push(service);
            }
        }
        self.slices.insert(key, slice);
        affected
    }

    /// Forgets a slice; returns the service it belonged to.
    pub fn remove_slice(&mut self, key: &NsName) -> Vec<NsName> {
        let Some(old) = self.slices.remove(key) else {
            return Vec::new();
        };
        let Some(service) = owner(&old) else {
            return Vec::new();
        };
        if let Some(set) = self.slices_of.get_mut(&service) {
            set.remove(key);
            if set.is_empty() {
                self.slices_of.remove(&service);
            }
        }
        vec![service]
    }

    /// Replaces everything (a snapshot).
    pub fn replace_all(&mut self, services: Vec<Service>, slices: Vec<EndpointSlice>) {
        let statics = std::mem::take(&mut self.statics);
        *self = Self {
            statics,
            ..Self::default()
        };
        for s in services {
            self.upsert_service(s);
        }
        for s in slices {
            self.upsert_slice(s);
        }
    }

    /// Sets entries the agent programs on its own under `key` (a name no API object has,
    /// e.g. an empty namespace); they survive snapshots.
    pub fn set_static(&mut self, key: NsName, entries: Entries) {
        self.statics.insert(key, entries);
    }

    fn slices_for(&self, service: &NsName) -> Vec<&EndpointSlice> {
        self.slices_of
            .get(service)
            .into_iter()
            .flatten()
            .filter_map(|k| self.slices.get(k))
            .collect()
    }

    /// What the maps should hold for `service` (empty when it does not exist or gets no LB).
    pub fn entries(&self, service: &NsName) -> Entries {
        if let Some(entries) = self.statics.get(service) {
            return entries.clone();
        }
        let Some(svc) = self.services.get(service) else {
            return Entries::new();
        };
        service_entries(svc, &self.slices_for(service))
    }

    /// The session affinity of `service`'s entries (empty unless `sessionAffinity: ClientIP`).
    pub fn affinity(&self, service: &NsName) -> Affinity {
        let Some(spec) = self.services.get(service).and_then(|s| s.spec.as_ref()) else {
            return Affinity::new();
        };
        if spec.session_affinity.as_deref() != Some("ClientIP") {
            return Affinity::new();
        }
        let timeout = spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT);
        self.entries(service)
            .into_keys()
            .map(|vip| (vip, timeout))
            .collect()
    }

    /// What cluster DNS should answer for `service` (`None`: the name does not exist).
    pub fn dns_record(&self, service: &NsName) -> Option<crate::dns::ServiceRecord> {
        let svc = self.services.get(service)?;
        crate::dns::service_record(svc, &self.slices_for(service))
    }

    /// The DNS view of every service.
    pub fn dns_records(&self) -> HashMap<NsName, crate::dns::ServiceRecord> {
        self.services
            .keys()
            .filter_map(|k| Some((k.clone(), self.dns_record(k)?)))
            .collect()
    }
}

/// The IPv4 cluster IPs a service is reachable on (none for headless and ExternalName).
fn cluster_ips(svc: &Service) -> Vec<Ipv4Addr> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let ips: Vec<&String> = match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ips.iter().collect(),
        _ => spec.cluster_ip.iter().collect(),
    };
    ips.into_iter().filter_map(|ip| ip.parse().ok()).collect()
}

/// The backends of service port `name`/`proto` across `slices`: ready endpoints, or the
/// serving terminating ones when none is ready.
fn port_backends(slices: &[&EndpointSlice], name: &str, proto: L4Proto) -> Vec<SocketAddrV4> {
    let mut ready = BTreeSet::new();
    let mut fallback = BTreeSet::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == name
                && L4Proto::from_k8s(p.protocol.as_deref()) == Some(proto)
        });
        let Some(port) = port
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for ep in &slice.endpoints {
            let Some(addr) = ep
                .addresses
                .first()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let c = ep.conditions.as_ref();
            let is_ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(is_ready);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            let backend = SocketAddrV4::new(addr, port);
            if is_ready && !terminating {
                ready.insert(backend);
            } else if serving && terminating {
                fallback.insert(backend);
            }
        }
    }
    let chosen = if ready.is_empty() { fallback } else { ready };
    chosen.into_iter().collect()
}

/// The entries of one service given its slices.
pub fn service_entries(svc: &Service, slices: &[&EndpointSlice]) -> Entries {
    let mut out = Entries::new();
    let ips = cluster_ips(svc);
    if ips.is_empty() {
        return out;
    }
    for port in svc.spec.iter().flat_map(|s| s.ports.iter().flatten()) {
        let Some(proto) = L4Proto::from_k8s(port.protocol.as_deref()) else {
            continue;
        };
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        let backends = port_backends(slices, port.name.as_deref().unwrap_or(""), proto);
        for ip in &ips {
            out.insert(
                Vip::new(SocketAddrV4::new(*ip, number), proto),
                backends.clone(),
            );
        }
    }
    out
}
