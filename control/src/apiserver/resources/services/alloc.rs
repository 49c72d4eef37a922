//! Service range bookkeeping: the configured ClusterIP range and NodePort range, and the
//! allocation hook that assigns or checks a service's ClusterIP and NodePorts against the
//! other stored services (run by the registry under its allocation lock).

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::{needs_node_ports, svc_type};
use crate::apiserver::error::FieldError;

/// A service range that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceNetworkError {
    /// Not `a.b.c.d/n`.
    #[error("invalid service CIDR {0:?}: expected an IPv4 a.b.c.d/n")]
    Cidr(String),
    /// Too small to hold the `kubernetes` service and anything else.
    #[error("service CIDR {0:?} is too small (need at least a /29)")]
    TooSmall(String),
}

/// The ranges services get their ClusterIPs and NodePorts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceNetwork {
    network: u32,
    prefix: u8,
    /// Inclusive NodePort range.
    pub node_ports: (u16, u16),
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        ServiceNetwork::parse("10.43.0.0/16").expect("the default range is valid")
    }
}

impl ServiceNetwork {
    /// A range like `10.43.0.0/16` (NodePorts 30000-32767).
    pub fn parse(cidr: &str) -> Result<Self, ServiceNetworkError> {
        let bad = || ServiceNetworkError::Cidr(cidr.to_string());
        let (ip, len) = cidr.split_once('/').ok_or_else(bad)?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        let prefix: u8 = len.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        if prefix > 29 {
            return Err(ServiceNetworkError::TooSmall(cidr.to_string()));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(ServiceNetwork {
            network: u32::from(ip) & mask,
            prefix,
            node_ports: (30000, 32767),
        })
    }

    /// `10.43.0.0/16`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }

    /// The first usable address, which the `kubernetes` service gets.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.network + 1)
    }

    /// Whether `ip` is a usable address (not the network or broadcast address).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let ip = u32::from(ip);
        ip > self.network && ip < self.network + self.size() - 1
    }

    /// Offsets handed out dynamically: the upper band first, then the lower one, which
    /// upstream keeps for static addresses (`kubernetes` at .1, cluster DNS at .10).
    pub(super) fn dynamic_order(&self) -> impl Iterator<Item = u32> {
        let size = self.size();
        let band = (size / 16).clamp(16, 256).min(size - 2);
        (band..size - 1).chain(1..band)
    }
}

fn ip_list_value(ip: &str) -> String {
    format!("[]string{{{ip:?}}}")
}

/// Assigns (or checks) the ClusterIP and NodePorts of `svc` against `others`.
pub fn allocate(
    svc: &mut Value,
    old: Option<&Value>,
    others: &[Value],
    net: &ServiceNetwork,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if svc_type(svc) != "ExternalName" {
        allocate_ip(svc, old, others, net, &mut errs);
    } else if let Some(spec) = svc["spec"].as_object_mut() {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    if needs_node_ports(svc) {
        allocate_node_ports(svc, old, others, net, &mut errs);
    }
    errs
}

fn allocate_ip(
    svc: &mut Value,
    old: Option<&Value>,
    others: &[Value],
    net: &ServiceNetwork,
    errs: &mut Vec<FieldError>,
) {
    let mut ip = svc["spec"]["clusterIP"].as_str().unwrap_or("").to_string();
    let old_ip = old
        .and_then(|o| o["spec"]["clusterIP"].as_str())
        .unwrap_or("")
        .to_string();
    if ip.is_empty() && !old_ip.is_empty() {
        ip = old_ip.clone();
    }
    if ip == "None" {
        svc["spec"]["clusterIP"] = json!("None");
        svc["spec"]["clusterIPs"] = json!(["None"]);
        return;
    }
    let used: HashSet<&str> = others
        .iter()
        .filter_map(|o| o["spec"]["clusterIP"].as_str())
        .collect();
    if ip.is_empty() {
        let free = net
            .dynamic_order()
            .map(|off| Ipv4Addr::from(net.network + off).to_string())
            .find(|c| !used.contains(c.as_str()));
        match free {
            Some(c) => ip = c,
            None => {
                errs.push(FieldError {
                    field: "spec.clusterIPs".into(),
                    kind: crate::apiserver::error::FieldErrorKind::Invalid,
                    value: Some("[]string{}".into()),
                    detail: "failed to allocate a serviceIP: range is full".into(),
                });
                return;
            }
        }
    } else if ip != old_ip {
        let Ok(addr) = ip.parse::<Ipv4Addr>() else {
            return; // validation reported it
        };
        let why = if !net.contains(addr) {
            Some(format!(
                "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                net.cidr()
            ))
        } else if used.contains(ip.as_str()) {
            Some("provided IP is already allocated".into())
        } else {
            None
        };
        if let Some(why) = why {
            errs.push(FieldError::invalid_raw(
                "spec.clusterIPs",
                ip_list_value(&ip),
                format!("failed to allocate IP {ip}: {why}"),
            ));
            return;
        }
    }
    svc["spec"]["clusterIP"] = json!(ip);
    svc["spec"]["clusterIPs"] = json!([ip]);
}

fn port_key(p: &Value) -> (i64, String) {
    (
        p["port"].as_i64().unwrap_or(0),
        p["protocol"].as_str().unwrap_or("TCP").to_string(),
    )
}

fn allocate_node_ports(
    svc: &mut Value,
    old: Option<&Value>,
    others: &[Value],
    net: &ServiceNetwork,
    errs: &mut Vec<FieldError>,
) {
    let mut used: HashSet<i64> = others
        .iter()
        .flat_map(|o| o["spec"]["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["nodePort"].as_i64())
        .collect();
    let old_ports: Vec<Value> = old
        .filter(|o| needs_node_ports(o))
        .and_then(|o| o["spec"]["ports"].as_array().cloned())
        .unwrap_or_default();
    let old_node_ports: HashSet<i64> = old_ports
        .iter()
        .filter_map(|p| p["nodePort"].as_i64())
        .collect();
    let Some(ports) = svc["spec"]["ports"].as_array_mut() else {
        return;
    };
    let (lo, hi) = (i64::from(net.node_ports.0), i64::from(net.node_ports.1));
    // Explicit ports first, so a generated one never takes a port asked for later in the list.
    let mut pending = Vec::new();
    for (i, p) in ports.iter_mut().enumerate() {
        let requested = p["nodePort"].as_i64().filter(|n| *n != 0).or_else(|| {
            old_ports
                .iter()
                .find(|o| port_key(o) == port_key(p))
                .and_then(|o| o["nodePort"].as_i64())
        });
        let Some(n) = requested else {
            pending.push(i);
            continue;
        };
        let field = format!("spec.ports[{i}].nodePort");
        if !old_node_ports.contains(&n) {
            if !(lo..=hi).contains(&n) {
                errs.push(FieldError::invalid_raw(
                    field,
                    n,
                    format!("provided port is not in the valid range. The range of valid ports is {lo}-{hi}"),
                ));
                continue;
            }
            if used.contains(&n) {
                errs.push(FieldError::invalid_raw(
                    field,
                    n,
                    "provided port is already allocated",
                ));
                continue;
            }
        }
        used.insert(n);
        p["nodePort"] = json!(n);
    }
    for i in pending {
        match (lo..=hi).find(|n| !used.contains(n)) {
            Some(n) => {
                used.insert(n);
                ports[i]["nodePort"] = json!(n);
            }
            None => errs.push(FieldError::invalid_raw(
                format!("spec.ports[{i}].nodePort"),
                0,
                "failed to allocate a nodePort: range is full",
            )),
        }
    }
}
