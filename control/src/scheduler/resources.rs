//! Resource arithmetic: what a pod requests (containers, init containers, overhead, extended
//! resources) and what a node can allocate, as kube-scheduler's NodeResourcesFit computes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_proto::quantity::{parse_bytes, parse_cpu_millis};

/// The CPU a container without a CPU request counts as when scoring (upstream's non-zero
/// default: 100m).
pub const DEFAULT_MILLI_CPU: i64 = 100;
/// The memory a container without a memory request counts as when scoring (200 MiB).
pub const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;
/// Allocatable pods when a node does not say.
const DEFAULT_MAX_PODS: i64 = 110;

/// A set of resource amounts: cpu in millicores, memory and ephemeral storage in bytes, a pod
/// count, and extended / hugepages resources by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    pub fn add(&mut self, other: &Resources) {
        self.cpu_millis += other.cpu_millis;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Resources) {
        self.cpu_millis -= other.cpu_millis;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
        self.scalar.retain(|_, v| *v != 0);
    }

    /// Element-wise maximum (init containers run one at a time).
    fn max_with(&mut self, other: &Resources) {
        self.cpu_millis = self.cpu_millis.max(other.cpu_millis);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// Reads a `ResourceList`.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
        let mut r = Resources::default();
        for (name, q) in list {
            match name.as_str() {
                "cpu" => r.cpu_millis = parse_cpu_millis(q).unwrap_or(0),
                "memory" => r.memory = parse_bytes(q).unwrap_or(0),
                "ephemeral-storage" => r.ephemeral_storage = parse_bytes(q).unwrap_or(0),
                "pods" => r.pods = parse_bytes(q).unwrap_or(0),
                other if is_scalar(other) => {
                    let v = parse_bytes(q).unwrap_or(0);
                    if v != 0 {
                        r.scalar.insert(other.to_string(), v);
                    }
                }
                _ => {}
            }
        }
        r
    }
}

/// Extended resources (`example.com/foo`, not in the `kubernetes.io` namespace) and hugepages.
fn is_scalar(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("kubernetes.io/"))
}

fn container_requests(c: &Container) -> Resources {
    c.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref().or(r.limits.as_ref()))
        .map(Resources::from_list)
        .unwrap_or_default()
}

/// A pod's effective requests: the sum over its containers, or the largest init container if
/// that is more, plus the pod overhead; `pods` is 1.
pub fn pod_requests(pod: &Pod) -> Resources {
    let mut sum = Resources::default();
    let Some(spec) = &pod.spec else {
        sum.pods = 1;
        return sum;
    };
    for c in &spec.containers {
        sum.add(&container_requests(c));
    }
    // Restartable (sidecar) init containers keep running: they add to the sum.
    let mut sidecars = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            sum.add(&r);
        } else {
            let mut with_sidecars = r;
            with_sidecars.add(&sidecars);
            sum.max_with(&with_sidecars);
        }
    }
    if let Some(overhead) = &spec.overhead {
        sum.add(&Resources::from_list(overhead));
    }
    sum.pods = 1;
    sum
}

/// CPU and memory for scoring: like [`pod_requests`] but a container without a request
/// counts as 100m / 200Mi, so empty pods still spread.
pub fn non_zero_requests(pod: &Pod) -> (i64, i64) {
    let Some(spec) = &pod.spec else {
        return (DEFAULT_MILLI_CPU, DEFAULT_MEMORY);
    };
    let (mut cpu, mut mem) = (0, 0);
    for c in &spec.containers {
        let r = container_requests(c);
        cpu += if r.cpu_millis == 0 {
            DEFAULT_MILLI_CPU
        } else {
            r.cpu_millis
        };
        mem += if r.memory == 0 {
            DEFAULT_MEMORY
        } else {
            r.memory
        };
    }
    (cpu, mem)
}

/// The node's allocatable resources (110 pods when unset).
pub fn allocatable(node: &Node) -> Resources {
    let mut r = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
        .map(Resources::from_list)
        .unwrap_or_default();
    let has_pods = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
        .is_some_and(|a| a.contains_key("pods"));
    if !has_pods {
        r.pods = DEFAULT_MAX_PODS;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn container(reqs: &[(&str, &str)], restart: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            restart_policy: restart.map(str::to_string),
            resources: Some(ResourceRequirements {
                requests: Some(
                    reqs.iter()
                        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn init_containers_sidecars_overhead_and_extended() {
        let pod = Pod {
            spec: Some(PodSpec {
                containers: vec![
                    container(&[("cpu", "100m"), ("example.com/gpu", "1")], None),
                    container(&[("cpu", "200m"), ("memory", "1Mi")], None),
                ],
                init_containers: Some(vec![
                    container(&[("cpu", "1")], None),
                    container(&[("memory", "10Mi")], Some("Always")),
                ]),
                overhead: Some(BTreeMap::from([("cpu".into(), Quantity("10m".into()))])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = pod_requests(&pod);
        assert_eq!(r.cpu_millis, 1010);
        assert_eq!(r.memory, 11 * 1024 * 1024);
        assert_eq!(r.pods, 1);
        assert_eq!(r.scalar.get("example.com/gpu"), Some(&1));
        assert_eq!(non_zero_requests(&pod), (300, DEFAULT_MEMORY + 1024 * 1024));
    }
}
