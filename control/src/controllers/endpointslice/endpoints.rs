//! The legacy core/v1 Endpoints object of a Service (upstream's endpoints controller): one
//! object named as the Service, subsets of ready and not-ready addresses per resolved port set,
//! capped at [`MAX_ENDPOINTS_ADDRESSES`] addresses with the over-capacity annotation.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};

use super::desired::{
    hostname, is_headless, pod_ipv4, pod_ref, port_key, publish_not_ready, resolve_ports,
    should_include,
};
use super::{HEADLESS, TRIGGER_TIME};
use crate::controllers::common::is_ready;

/// The most addresses an Endpoints object holds.
pub const MAX_ENDPOINTS_ADDRESSES: usize = 1000;
/// Marks an Endpoints object whose addresses were cut to the maximum.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// The label upstream (1.33) puts on the Endpoints objects its controller manages.
pub const ENDPOINTS_MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
pub const ENDPOINTS_CONTROLLER: &str = "endpoint-controller";

fn address(svc: &Service, pod: &Pod) -> EndpointAddress {
    EndpointAddress {
        ip: pod_ipv4(pod).unwrap_or_default(),
        hostname: hostname(svc, pod),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(pod_ref(pod)),
    }
}

/// The subsets of `svc` over its selected pods, and whether they were truncated to `max`
/// addresses (ready addresses are kept first).
pub fn subsets(svc: &Service, pods: &[Pod], max: usize) -> (Vec<EndpointSubset>, bool) {
    let publish = publish_not_ready(svc);
    let headless_without_ports = is_headless(svc)
        && svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_deref())
            .is_none_or(|p| p.is_empty());
    // Port key → (ports, ready, not ready).
    type Group = (
        Vec<EndpointPort>,
        Vec<EndpointAddress>,
        Vec<EndpointAddress>,
    );
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for pod in pods.iter().filter(|p| should_include(p, publish)) {
        let ports = resolve_ports(svc, pod);
        if ports.is_empty() && !headless_without_ports {
            continue;
        }
        let entry = groups.entry(port_key(&ports)).or_insert_with(|| {
            let ports = ports
                .into_iter()
                .map(|p| EndpointPort {
                    name: p.name.filter(|n| !n.is_empty()),
                    port: p.port.unwrap_or_default(),
                    protocol: p.protocol,
                    app_protocol: p.app_protocol,
                })
                .collect();
            (ports, Vec::new(), Vec::new())
        });
        if publish || is_ready(pod) {
            entry.1.push(address(svc, pod));
        } else {
            entry.2.push(address(svc, pod));
        }
    }
    let total: usize = groups.values().map(|g| g.1.len() + g.2.len()).sum();
    let truncated = total > max;
    let mut budget = max;
    let mut out = Vec::new();
    let mut groups: Vec<Group> = groups.into_values().collect();
    for g in &mut groups {
        sort_addresses(&mut g.1);
        g.1.truncate(budget);
        budget -= g.1.len();
    }
    for (ports, ready, mut not_ready) in groups {
        sort_addresses(&mut not_ready);
        not_ready.truncate(budget);
        budget -= not_ready.len();
        if ready.is_empty() && not_ready.is_empty() {
            continue;
        }
        out.push(EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then_some(ports),
        });
    }
    (out, truncated)
}

fn sort_addresses(a: &mut [EndpointAddress]) {
    a.sort_by(|x, y| {
        let ip = |e: &EndpointAddress| e.ip.parse::<std::net::Ipv4Addr>().ok();
        ip(x).cmp(&ip(y)).then_with(|| x.ip.cmp(&y.ip))
    });
}

/// The Endpoints object `svc` should have; `trigger` is the last change time to record.
pub fn build(svc: &Service, pods: &[Pod], max: usize, trigger: Option<String>) -> Endpoints {
    let (subsets, truncated) = subsets(svc, pods, max);
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS);
    if is_headless(svc) {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels.insert(ENDPOINTS_MANAGED_BY.into(), ENDPOINTS_CONTROLLER.into());
    let mut annotations = BTreeMap::new();
    if truncated {
        annotations.insert(OVER_CAPACITY.into(), "truncated".into());
    }
    if let Some(t) = trigger {
        annotations.insert(TRIGGER_TIME.into(), t);
    }
    Endpoints {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..Default::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    }
}

/// `current` updated to `want` (keeping its identity and unrelated annotations), or `None`
/// when nothing but the trigger time would change.
pub fn updated(current: &Endpoints, want: &Endpoints) -> Option<Endpoints> {
    let mut annotations = current.metadata.annotations.clone().unwrap_or_default();
    annotations.remove(OVER_CAPACITY);
    let trigger = annotations.remove(TRIGGER_TIME);
    let want_annotations = want.metadata.annotations.clone().unwrap_or_default();
    let same = current.subsets.as_deref().unwrap_or_default()
        == want.subsets.as_deref().unwrap_or_default()
        && current.metadata.labels == want.metadata.labels
        && current
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(OVER_CAPACITY))
            == want_annotations.get(OVER_CAPACITY);
    if same {
        return None;
    }
    annotations.extend(want_annotations);
    if !annotations.contains_key(TRIGGER_TIME)
        && let Some(t) = trigger
    {
        annotations.insert(TRIGGER_TIME.into(), t);
    }
    let mut out = current.clone();
    out.metadata.labels = want.metadata.labels.clone();
    out.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    out.subsets = want.subsets.clone();
    Some(out)
}
