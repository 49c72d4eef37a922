//! Planning a Service's EndpointSlices with little churn (upstream's reconciler, simplified):
//! existing slices keep the endpoints that are still wanted (updated in place), new endpoints
//! fill slices already being written, then slices freed up, then new slices of at most
//! `max` endpoints; a Service without endpoints keeps one empty placeholder slice.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::desired::{Desired, is_headless, port_key};
use super::{HEADLESS, MANAGED_BY, SERVICE_NAME, SLICE_CONTROLLER};
use crate::controllers::common::controller_ref_to;

/// The writes that bring a Service's slices to the desired state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The labels of the service's slices: the service's own (but the reserved ones), the service
/// name, the managing controller, and the headless marker.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != SERVICE_NAME && k != MANAGED_BY && k != HEADLESS)
        .collect();
    labels.insert(
        SERVICE_NAME.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY.into(), SLICE_CONTROLLER.into());
    if is_headless(svc) {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels
}

/// Whether this controller manages `slice` for `svc`.
pub fn is_managed(slice: &EndpointSlice, svc_name: &str) -> bool {
    let labels = slice.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    label(MANAGED_BY) == Some(SLICE_CONTROLLER) && label(SERVICE_NAME) == Some(svc_name)
}

/// A slice being planned: an existing one (`base`) or a new one.
struct Draft {
    base: Option<EndpointSlice>,
    ports: Vec<EndpointPort>,
    endpoints: Vec<Endpoint>,
    dirty: bool,
}

impl Draft {
    fn room(&self, max: usize) -> usize {
        max.saturating_sub(self.endpoints.len())
    }

    /// Rewrites this draft for another port set (a freed slice reused).
    fn retarget(&mut self, ports: &[EndpointPort]) {
        if port_key(&self.ports) != port_key(ports) {
            self.ports = ports.to_vec();
            self.dirty = true;
        }
    }
}

fn address(e: &Endpoint) -> &str {
    e.addresses.first().map(String::as_str).unwrap_or_default()
}

fn ports_of(s: &EndpointSlice) -> Vec<EndpointPort> {
    s.ports.clone().unwrap_or_default()
}

/// Plans the slices of `svc` from `desired` and its `existing` managed slices.
pub fn plan(svc: &Service, desired: &Desired, existing: Vec<EndpointSlice>, max: usize) -> Plan {
    let max = max.max(1);
    let labels = slice_labels(svc);
    let owner = controller_ref_to(svc);
    let mut by_key: BTreeMap<String, Vec<EndpointSlice>> = BTreeMap::new();
    let mut plan = Plan::default();
    for s in existing {
        if s.address_type == "IPv4" {
            by_key.entry(port_key(&ports_of(&s))).or_default().push(s);
        } else {
            plan.delete.push(s);
        }
    }

    // Keep what is still wanted in the slices of each port set.
    let mut drafts: Vec<Draft> = Vec::new();
    let mut spare: Vec<Draft> = Vec::new();
    let mut remaining: Vec<(String, Vec<Endpoint>)> = Vec::new();
    for (key, group) in &desired.groups {
        let mut want: HashMap<&str, &Endpoint> =
            group.endpoints.iter().map(|e| (address(e), e)).collect();
        for s in by_key.remove(key).unwrap_or_default() {
            let kept: Vec<Endpoint> = s
                .endpoints
                .iter()
                .filter_map(|e| want.remove(address(e)).cloned())
                .collect();
            let draft = Draft {
                dirty: kept != s.endpoints,
                ports: ports_of(&s),
                endpoints: kept,
                base: Some(s),
            };
            if draft.endpoints.is_empty() {
                spare.push(draft);
            } else {
                drafts.push(draft);
            }
        }
        let new: Vec<Endpoint> = group
            .endpoints
            .iter()
            .filter(|e| want.contains_key(address(e)))
            .cloned()
            .collect();
        remaining.push((key.clone(), new));
    }
    // Slices of port sets no longer wanted can be reused.
    spare.extend(by_key.into_values().flatten().map(|s| Draft {
        ports: ports_of(&s),
        endpoints: Vec::new(),
        dirty: !s.endpoints.is_empty(),
        base: Some(s),
    }));

    // Place the new endpoints.
    for (key, mut new) in remaining {
        let ports = &desired.groups[&key].ports;
        // 1. Slices of this port set that are being written anyway.
        for d in drafts
            .iter_mut()
            .filter(|d| d.dirty && port_key(&d.ports) == key)
        {
            let n = d.room(max).min(new.len());
            d.endpoints.extend(new.drain(..n));
        }
        // 2. An unchanged slice of this port set that takes all that is left.
        if !new.is_empty()
            && let Some(d) = drafts
                .iter_mut()
                .filter(|d| !d.dirty && port_key(&d.ports) == key && d.room(max) >= new.len())
                .min_by_key(|d| d.room(max))
        {
            d.endpoints.append(&mut new);
            d.dirty = true;
        }
        // 3. Freed slices, then new ones.
        while !new.is_empty() {
            let mut d = spare.pop().unwrap_or(Draft {
                base: None,
                ports: ports.clone(),
                endpoints: Vec::new(),
                dirty: true,
            });
            d.retarget(ports);
            d.endpoints = new.drain(..max.min(new.len())).collect();
            d.dirty = true;
            drafts.push(d);
        }
    }

    // A service without endpoints keeps one empty placeholder slice.
    if drafts.is_empty() {
        let mut d = spare.pop().unwrap_or(Draft {
            base: None,
            ports: Vec::new(),
            endpoints: Vec::new(),
            dirty: true,
        });
        d.retarget(&[]);
        drafts.push(d);
    }
    plan.delete.extend(spare.into_iter().filter_map(|d| d.base));

    let name = svc.metadata.name.clone().unwrap_or_default();
    for mut d in drafts {
        let meta_ok = d.base.as_ref().is_some_and(|b| {
            b.metadata.labels.as_ref() == Some(&labels)
                && b.metadata.owner_references.as_deref() == Some(std::slice::from_ref(&owner))
        });
        if !d.dirty && meta_ok {
            continue;
        }
        let ports = (!d.ports.is_empty()).then(|| std::mem::take(&mut d.ports));
        match d.base {
            Some(mut s) => {
                s.metadata.labels = Some(labels.clone());
                s.metadata.owner_references = Some(vec![owner.clone()]);
                s.endpoints = d.endpoints;
                s.ports = ports;
                plan.update.push(s);
            }
            None => plan.create.push(EndpointSlice {
                metadata: ObjectMeta {
                    generate_name: Some(format!("{name}-")),
                    namespace: svc.metadata.namespace.clone(),
                    labels: Some(labels.clone()),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: d.endpoints,
                ports,
            }),
        }
    }
    plan
}
