//! Which nodes can take a pod, and which fits best: readiness, cordons, taints, node selectors
//! and allocatable CPU, memory and pod count (the filters and score of kube-scheduler's core).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use skiff_proto::quantity::{parse_bytes, parse_cpu_millis};

/// What a pod (or a node's pods together) asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
    pub pods: i64,
}

impl std::ops::AddAssign for Requests {
    fn add_assign(&mut self, other: Requests) {
        self.cpu_millis += other.cpu_millis;
        self.memory_bytes += other.memory_bytes;
        self.pods += other.pods;
    }
}

/// A pod's effective requests: the sum over its containers, or the largest init container if
/// that is more (as Kubernetes computes it). Limits stand in for missing requests.
pub fn pod_requests(pod: &Pod) -> Requests {
    let Some(spec) = &pod.spec else {
        return Requests::default();
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        let res = c.resources.clone().unwrap_or_default();
        let get = |name: &str| {
            res.requests
                .as_ref()
                .and_then(|r| r.get(name))
                .or_else(|| res.limits.as_ref().and_then(|l| l.get(name)))
                .cloned()
        };
        Requests {
            cpu_millis: get("cpu")
                .and_then(|q| parse_cpu_millis(&q).ok())
                .unwrap_or(0),
            memory_bytes: get("memory")
                .and_then(|q| parse_bytes(&q).ok())
                .unwrap_or(0),
            pods: 0,
        }
    };
    let mut sum = Requests {
        pods: 1,
        ..Default::default()
    };
    for c in &spec.containers {
        sum += of(c);
    }
    for c in spec.init_containers.iter().flatten() {
        let r = of(c);
        sum.cpu_millis = sum.cpu_millis.max(r.cpu_millis);
        sum.memory_bytes = sum.memory_bytes.max(r.memory_bytes);
    }
    sum
}

/// The node's allocatable resources.
pub fn allocatable(node: &Node) -> Requests {
    let alloc: BTreeMap<_, _> = node
        .status
        .as_ref()
        .and_then(|s| s.allocatable.clone())
        .unwrap_or_default();
    Requests {
        cpu_millis: alloc
            .get("cpu")
            .and_then(|q| parse_cpu_millis(q).ok())
            .unwrap_or(0),
        memory_bytes: alloc
            .get("memory")
            .and_then(|q| parse_bytes(q).ok())
            .unwrap_or(0),
        pods: alloc
            .get("pods")
            .and_then(|q| q.0.parse().ok())
            .unwrap_or(110),
    }
}

/// Why a node cannot take a pod, in kube-scheduler's words (aggregated per reason).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unfit {
    NotReady,
    Unschedulable,
    Taint(String),
    Selector,
    Insufficient(&'static str),
    TooManyPods,
}

impl std::fmt::Display for Unfit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unfit::NotReady => write!(
                f,
                "node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}"
            ),
            Unfit::Unschedulable => write!(f, "node(s) were unschedulable"),
            Unfit::Taint(t) => write!(f, "node(s) had untolerated taint {{{t}}}"),
            Unfit::Selector => write!(f, "node(s) didn't match Pod's node affinity/selector"),
            Unfit::Insufficient(what) => write!(f, "Insufficient {what}"),
            Unfit::TooManyPods => write!(f, "Too many pods"),
        }
    }
}

fn tolerates(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| {
        let key_ok = t
            .key
            .as_deref()
            .is_none_or(|k| k.is_empty() || k == taint.key);
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == taint.effect);
        let value_ok = match t.operator.as_deref() {
            Some("Exists") => true,
            _ => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        };
        key_ok
            && effect_ok
            && value_ok
            && (t.key.is_some() || t.operator.as_deref() == Some("Exists"))
    })
}

/// Checks one node; `used` is what the pods already on it request.
pub fn check(pod: &Pod, node: &Node, used: Requests) -> Result<(), Unfit> {
    let spec = pod.spec.clone().unwrap_or_default();
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    if !ready {
        let not_ready = Taint {
            key: "node.kubernetes.io/not-ready".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerates(&tolerations, &not_ready) {
            return Err(Unfit::NotReady);
        }
    }
    let node_spec = node.spec.clone().unwrap_or_default();
    if node_spec.unschedulable == Some(true) {
        let cordon = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if !tolerates(&tolerations, &cordon) {
            return Err(Unfit::Unschedulable);
        }
    }
    for taint in node_spec.taints.iter().flatten() {
        if matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
            && !tolerates(&tolerations, taint)
        {
            return Err(Unfit::Taint(format!(
                "{}: {}",
                taint.key,
                taint.value.clone().unwrap_or_default()
            )));
        }
    }
    let labels = node.metadata.labels.clone().unwrap_or_default();
    if let Some(selector) = &spec.node_selector
        && selector.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return Err(Unfit::Selector);
    }
    let want = pod_requests(pod);
    let have = allocatable(node);
    if used.pods + 1 > have.pods {
        return Err(Unfit::TooManyPods);
    }
    if want.cpu_millis > 0 && used.cpu_millis + want.cpu_millis > have.cpu_millis {
        return Err(Unfit::Insufficient("cpu"));
    }
    if want.memory_bytes > 0 && used.memory_bytes + want.memory_bytes > have.memory_bytes {
        return Err(Unfit::Insufficient("memory"));
    }
    Ok(())
}

/// Least-allocated score (0–100, higher is emptier) after placing `want`.
pub fn score(node: &Node, used: Requests, want: Requests) -> i64 {
    let have = allocatable(node);
    let free = |cap: i64, used: i64| {
        if cap <= 0 {
            0
        } else {
            ((cap - used).max(0) * 100) / cap
        }
    };
    (free(have.cpu_millis, used.cpu_millis + want.cpu_millis)
        + free(have.memory_bytes, used.memory_bytes + want.memory_bytes))
        / 2
}

/// The best node for `pod`, or kube-scheduler's message for why there is none
/// (`0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were unschedulable.`).
pub fn choose<'a>(
    pod: &Pod,
    nodes: &'a [Node],
    used: &BTreeMap<String, Requests>,
) -> Result<&'a Node, String> {
    if nodes.is_empty() {
        return Err("no nodes available to schedule pods".into());
    }
    let want = pod_requests(pod);
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(&Node, i64)> = None;
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let on_node = used.get(&name).copied().unwrap_or_default();
        match check(pod, node, on_node) {
            Ok(()) => {
                let s = score(node, on_node, want);
                if best.is_none_or(|(_, b)| s > b) {
                    best = Some((node, s));
                }
            }
            Err(why) => *reasons.entry(why.to_string()).or_default() += 1,
        }
    }
    if let Some((node, _)) = best {
        return Ok(node);
    }
    let parts: Vec<String> = reasons
        .iter()
        .map(|(why, n)| format!("{n} {why}"))
        .collect();
    Err(format!(
        "0/{} nodes are available: {}.",
        nodes.len(),
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, NodeCondition, NodeSpec, NodeStatus, PodSpec, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn node(name: &str, cpu: &str, ready: bool) -> Node {
        Node {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                allocatable: Some(BTreeMap::from([
                    ("cpu".into(), Quantity(cpu.into())),
                    ("memory".into(), Quantity("1Gi".into())),
                    ("pods".into(), Quantity("110".into())),
                ])),
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn pod(cpu: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some(BTreeMap::from([("cpu".into(), Quantity(cpu.into()))])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn picks_the_emptier_ready_node() {
        let nodes = vec![
            node("a", "2", true),
            node("b", "4", true),
            node("c", "8", false),
        ];
        let used = BTreeMap::from([(
            "b".to_string(),
            Requests {
                cpu_millis: 3500,
                memory_bytes: 0,
                pods: 3,
            },
        )]);
        let chosen = choose(&pod("250m"), &nodes, &used).unwrap();
        assert_eq!(chosen.metadata.name.as_deref(), Some("a"));
    }

    #[test]
    fn explains_why_nothing_fits() {
        let nodes = vec![node("a", "1", true), node("b", "1", false)];
        let err = choose(&pod("2"), &nodes, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err,
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."
        );
        assert_eq!(
            choose(&pod("1"), &[], &BTreeMap::new()).unwrap_err(),
            "no nodes available to schedule pods"
        );
    }

    #[test]
    fn honours_cordon_and_selector() {
        let mut cordoned = node("a", "4", true);
        cordoned.spec.as_mut().unwrap().unschedulable = Some(true);
        assert_eq!(
            check(&pod("1"), &cordoned, Requests::default()),
            Err(Unfit::Unschedulable)
        );
        let mut p = pod("1");
        p.spec.as_mut().unwrap().node_selector =
            Some(BTreeMap::from([("disk".into(), "ssd".into())]));
        assert_eq!(
            check(&p, &node("b", "4", true), Requests::default()),
            Err(Unfit::Selector)
        );
    }
}
