//! What the scheduler needs to know about a pod, computed once: requests, priority, host
//! ports, labels and its pod (anti-)affinity terms with namespaces resolved to a rule.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::labels::{Labels, selector_matches};
use super::resources::{Resources, non_zero_requests, pod_requests};

/// A host port a pod's container binds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

impl HostPort {
    fn wildcard(ip: &str) -> bool {
        ip.is_empty() || ip == "0.0.0.0" || ip == "::"
    }

    /// Two bindings collide on the same protocol and port when either address is a wildcard
    /// or both are the same.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (Self::wildcard(&self.ip) || Self::wildcard(&other.ip) || self.ip == other.ip)
    }
}

/// One pod (anti-)affinity term, ready to match pods.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    /// `None` matches no pod.
    pub selector: Option<LabelSelector>,
    /// Namespaces named explicitly (the pod's own when neither these nor a selector is given).
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<LabelSelector>,
    pub topology_key: String,
}

impl AffinityTerm {
    fn new(term: &PodAffinityTerm, own_ns: &str, own_labels: &Labels) -> AffinityTerm {
        let mut selector = term.label_selector.clone();
        // matchLabelKeys / mismatchLabelKeys: this pod's values joined into the selector.
        if let Some(sel) = selector.as_mut() {
            for (keys, op) in [
                (&term.match_label_keys, "In"),
                (&term.mismatch_label_keys, "NotIn"),
            ] {
                for key in keys.iter().flatten() {
                    if let Some(v) = own_labels.get(key) {
                        sel.match_expressions.get_or_insert_with(Vec::new).push(
                            LabelSelectorRequirement {
                                key: key.clone(),
                                operator: op.into(),
                                values: Some(vec![v.clone()]),
                            },
                        );
                    }
                }
            }
        }
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.push(own_ns.to_string());
        }
        AffinityTerm {
            selector,
            namespaces,
            namespace_selector: term.namespace_selector.clone(),
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether `pod` is one this term selects (namespace and labels).
    pub fn matches(&self, pod: &PodInfo, ns_labels: &HashMap<String, Labels>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || self.namespace_selector.as_ref().is_some_and(|s| {
                ns_labels
                    .get(&pod.namespace)
                    .is_some_and(|l| selector_matches(s, l))
            });
        ns_ok
            && self
                .selector
                .as_ref()
                .is_some_and(|s| selector_matches(s, &pod.labels))
    }
}

/// The scheduler's view of one pod.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub pod: Arc<Pod>,
    pub labels: Labels,
    pub requests: Resources,
    pub non_zero: (i64, i64),
    pub priority: i32,
    pub host_ports: Vec<HostPort>,
    pub terminating: bool,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<(i32, AffinityTerm)>,
    pub preferred_anti_affinity: Vec<(i32, AffinityTerm)>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let host_ports = spec
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                p.host_port.filter(|hp| *hp > 0).map(|port| HostPort {
                    ip: p.host_ip.clone().unwrap_or_default(),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    port,
                })
            })
            .collect();
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let term = |t: &PodAffinityTerm| AffinityTerm::new(t, &namespace, &labels);
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required =
            |v: Option<&Vec<PodAffinityTerm>>| v.into_iter().flatten().map(term).collect();
        let preferred = |v: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            v.into_iter()
                .flatten()
                .map(|w| (w.weight, term(&w.pod_affinity_term)))
                .collect()
        };
        PodInfo {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            requests: pod_requests(&pod),
            non_zero: non_zero_requests(&pod),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            host_ports,
            terminating: pod.metadata.deletion_timestamp.is_some(),
            required_affinity: required(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: required(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            namespace,
            labels,
            pod,
        }
    }

    pub fn has_pod_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// Whether this pod's placement depends on where other pods are (pod affinity or
    /// topology spread), so an assigned pod's arrival may make it schedulable.
    pub fn depends_on_other_pods(&self) -> bool {
        self.has_pod_affinity()
            || self
                .pod
                .spec
                .as_ref()
                .is_some_and(|s| s.topology_spread_constraints.is_some())
    }

    /// The pod's `preemptionPolicy` is `Never`.
    pub fn never_preempts(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.preemption_policy.as_deref())
            == Some("Never")
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}
