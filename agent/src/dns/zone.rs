//! The cluster DNS zone (`cluster.local`): the services the agent knows, and the answer to one
//! question — kube-dns's schema: `<svc>.<ns>.svc` (A: cluster IPs, or a headless service's
//! endpoints; CNAME for ExternalName), `<endpoint>.<svc>.<ns>.svc`,
//! `_<port>._<proto>.<svc>.<ns>.svc` (SRV for named ports) and `<a-b-c-d>.<ns>.pod`.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::RwLock;

use hickory_proto::rr::rdata::{A, CNAME, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::records::{ServiceKind, ServiceRecord};
use crate::services::NsName;

/// The cluster domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// TTL of every answer, in seconds (kube-dns's default: endpoints change often).
pub const TTL: u32 = 5;

/// The outcome of a lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The name exists; the answer (possibly empty: no data of that type) and additional
    /// records (addresses of SRV targets).
    Found {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// The name is in the cluster domain but does not exist.
    NxDomain,
    /// The name is outside the cluster domain.
    NotOurs,
}

/// The services known, by namespace and name (shared by the DNS server and the services
/// stream that updates it).
#[derive(Debug, Default)]
pub struct Zone {
    services: RwLock<HashMap<NsName, ServiceRecord>>,
}

fn name(s: &str) -> Name {
    // Every name built here comes from DNS-1123 labels, which always parse.
    Name::from_str(s).unwrap_or_else(|_| Name::root())
}

fn a(owner: &str, ip: Ipv4Addr) -> Record {
    Record::from_rdata(name(owner), TTL, RData::A(A(ip)))
}

/// A `1-2-3-4` label as an address.
fn undashed(label: &str) -> Option<Ipv4Addr> {
    label.replace('-', ".").parse().ok()
}

impl Zone {
    /// Sets (or with `None` removes) one service.
    pub fn set(&self, key: &NsName, record: Option<ServiceRecord>) {
        let mut services = self.services.write().unwrap_or_else(|e| e.into_inner());
        match record {
            Some(r) => services.insert(key.clone(), r),
            None => services.remove(key),
        };
    }

    /// Replaces every service.
    pub fn replace_all(&self, all: HashMap<NsName, ServiceRecord>) {
        *self.services.write().unwrap_or_else(|e| e.into_inner()) = all;
    }

    /// How many services the zone holds.
    pub fn len(&self) -> usize {
        self.services
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Whether the zone holds no service.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The zone's SOA record (authority section of negative answers).
    pub fn soa() -> Record {
        let soa = SOA::new(
            name(&format!("ns.dns.{CLUSTER_DOMAIN}.")),
            name(&format!("hostmaster.{CLUSTER_DOMAIN}.")),
            1,
            7200,
            1800,
            86400,
            TTL,
        );
        Record::from_rdata(name(&format!("{CLUSTER_DOMAIN}.")), TTL, RData::SOA(soa))
    }

    /// Answers `qname`/`qtype`.
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        let fqdn = qname.to_ascii().to_ascii_lowercase();
        let fqdn = fqdn.trim_end_matches('.');
        let Some(rest) = fqdn
            .strip_suffix(CLUSTER_DOMAIN)
            .filter(|r| r.is_empty() || r.ends_with('.'))
        else {
            return Lookup::NotOurs;
        };
        let labels: Vec<&str> = rest.trim_end_matches('.').split('.').collect();
        let owner = format!("{fqdn}.");
        let services = self.services.read().unwrap_or_else(|e| e.into_inner());
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        match labels.as_slice() {
            // The zone apex and the `svc`/`pod` subdomains exist, with no data.
            [""] | ["svc"] | ["pod"] => {}
            [ns, "svc"] | [ns, "pod"] if services.keys().any(|k| k.namespace == *ns) => {}
            [ip, _ns, "pod"] => {
                let Some(ip) = undashed(ip) else {
                    return Lookup::NxDomain;
                };
                if qtype == RecordType::A {
                    answers.push(a(&owner, ip));
                }
            }
            [svc, ns, "svc"] => {
                let Some(record) = services.get(&NsName::new(ns, svc)) else {
                    return Lookup::NxDomain;
                };
                match &record.kind {
                    ServiceKind::ExternalName(target) if qtype != RecordType::SOA => {
                        let target = name(&format!("{}.", target.trim_end_matches('.')));
                        let cname = RData::CNAME(CNAME(target));
                        answers.push(Record::from_rdata(name(&owner), TTL, cname));
                    }
                    ServiceKind::ClusterIp(ips) if qtype == RecordType::A => {
                        answers.extend(ips.iter().map(|ip| a(&owner, *ip)));
                    }
                    ServiceKind::Headless if qtype == RecordType::A => {
                        answers.extend(record.endpoints.iter().map(|e| a(&owner, e.ip)));
                    }
                    _ => {}
                }
            }
            [port, proto, svc, ns, "svc"] if port.starts_with('_') && proto.starts_with('_') => {
                let Some(record) = services.get(&NsName::new(ns, svc)) else {
                    return Lookup::NxDomain;
                };
                let (port, proto) = (&port[1..], &proto[1..]);
                let matches = |p: &super::records::NamedPort| p.name == port && p.proto == proto;
                let service_fqdn = format!("{svc}.{ns}.svc.{CLUSTER_DOMAIN}.");
                match &record.kind {
                    ServiceKind::Headless => {
                        let mut any = false;
                        for e in &record.endpoints {
                            let Some(p) = e.ports.iter().find(|p| matches(p)) else {
                                continue;
                            };
                            any = true;
                            if qtype == RecordType::SRV {
                                let target = format!("{}.{service_fqdn}", e.label());
                                let srv = SRV::new(0, 100, p.port, name(&target));
                                answers.push(Record::from_rdata(
                                    name(&owner),
                                    TTL,
                                    RData::SRV(srv),
                                ));
                                additionals.push(a(&target, e.ip));
                            }
                        }
                        if !any {
                            return Lookup::NxDomain;
                        }
                    }
                    ServiceKind::ClusterIp(ips) => {
                        let Some(p) = record.ports.iter().find(|p| matches(p)) else {
                            return Lookup::NxDomain;
                        };
                        if qtype == RecordType::SRV {
                            let srv = SRV::new(0, 100, p.port, name(&service_fqdn));
                            answers.push(Record::from_rdata(name(&owner), TTL, RData::SRV(srv)));
                            additionals.extend(ips.iter().map(|ip| a(&service_fqdn, *ip)));
                        }
                    }
                    ServiceKind::ExternalName(_) => return Lookup::NxDomain,
                }
            }
            [endpoint, svc, ns, "svc"] => {
                let Some(record) = services.get(&NsName::new(ns, svc)) else {
                    return Lookup::NxDomain;
                };
                let found: Vec<Ipv4Addr> = record
                    .endpoints
                    .iter()
                    .filter(|e| e.label() == *endpoint)
                    .map(|e| e.ip)
                    .collect();
                if found.is_empty() {
                    return Lookup::NxDomain;
                }
                if qtype == RecordType::A {
                    answers.extend(found.into_iter().map(|ip| a(&owner, ip)));
                }
            }
            _ => return Lookup::NxDomain,
        }
        if qtype == RecordType::SOA && labels == [""] {
            answers.push(Self::soa());
        }
        Lookup::Found {
            answers,
            additionals,
        }
    }
}
