//! Table-test helpers for the plugins: nodes and pods from JSON fragments, a cache built from
//! them, and one plugin's filter results or normalized scores over every node.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::scheduler::cache::Cache;
use crate::scheduler::framework::{CycleState, FilterPlugin, PreFilterResult, ScorePlugin};
use crate::scheduler::pod_info::PodInfo;

/// A node and the pods already on it.
#[derive(Clone)]
pub struct TestNode {
    pub node: Node,
    pub pods: Vec<Pod>,
}

/// Merges `extra` into `base` (objects recursively, everything else replaced).
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, e) => *b = e,
    }
}

/// A Ready node with 4 CPUs, 8Gi, 110 pods and the hostname label, plus `extra`.
pub fn node(name: &str, extra: Value) -> TestNode {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut n, extra);
    TestNode {
        node: serde_json::from_value(n).unwrap(),
        pods: Vec::new(),
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A pod in `default` with one container and a unique name and uid, plus `extra`.
pub fn pod(extra: Value) -> Pod {
    let i = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut p = json!({
        "metadata": {"name": format!("p{i}"), "namespace": "default", "uid": format!("uid-{i}")},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    merge(&mut p, extra);
    serde_json::from_value(p).unwrap()
}

/// A pod requesting `cpu` and `memory` (empty: none), plus `extra`.
pub fn pod_req(cpu: &str, memory: &str, extra: Value) -> Pod {
    let mut req = serde_json::Map::new();
    if !cpu.is_empty() {
        req.insert("cpu".into(), json!(cpu));
    }
    if !memory.is_empty() {
        req.insert("memory".into(), json!(memory));
    }
    let mut base = json!({"spec": {"containers": [{"name": "c", "image": "busybox",
        "resources": {"requests": req}}]}});
    merge(&mut base, extra);
    pod(base)
}

pub fn with_pods(mut n: TestNode, pods: &[Pod]) -> TestNode {
    n.pods.extend(pods.iter().cloned());
    n
}

/// A cache holding these nodes and pods, and the `default` and `other` namespaces.
pub fn cache_of(nodes: &[TestNode]) -> Cache {
    let mut cache = Cache::default();
    for ns in ["default", "other"] {
        cache.upsert_namespace(
            ns,
            [("kubernetes.io/metadata.name".to_string(), ns.to_string())].into(),
        );
    }
    for n in nodes {
        cache.upsert_node(n.node.clone());
        let name = n.node.metadata.name.clone().unwrap();
        for p in &n.pods {
            cache.upsert_pod(PodInfo::new(Arc::new(p.clone())), &name);
        }
    }
    cache
}

/// One filter's verdict on each node of the cache, in the nodes' order (reasons joined).
pub fn filter_in(
    plugin: &dyn FilterPlugin,
    pod: &Pod,
    cache: &Cache,
    names: &[String],
) -> Vec<Result<(), String>> {
    let info = PodInfo::new(Arc::new(pod.clone()));
    let mut state = CycleState::default();
    let only = match plugin.pre_filter(&info, cache, &mut state) {
        PreFilterResult::AllNodes => None,
        PreFilterResult::Only(set, why) => Some((set, why)),
    };
    names
        .iter()
        .map(|name| {
            let node = cache.node(name).unwrap();
            if let Some((set, why)) = &only
                && !set.contains(name)
            {
                return Err(why.reasons.join(", "));
            }
            plugin
                .filter(&info, &state, node)
                .map_err(|r| r.reasons.join(", "))
        })
        .collect()
}

fn names(nodes: &[TestNode]) -> Vec<String> {
    nodes
        .iter()
        .map(|n| n.node.metadata.name.clone().unwrap())
        .collect()
}

pub fn filter_all(
    plugin: &dyn FilterPlugin,
    pod: &Pod,
    nodes: &[TestNode],
) -> Vec<Result<(), String>> {
    filter_in(plugin, pod, &cache_of(nodes), &names(nodes))
}

/// One score plugin's normalized scores for each node.
pub fn score_all(plugin: &dyn ScorePlugin, pod: &Pod, nodes: &[TestNode]) -> Vec<i64> {
    let cache = cache_of(nodes);
    let info = PodInfo::new(Arc::new(pod.clone()));
    let infos: Vec<_> = names(nodes)
        .iter()
        .map(|n| cache.node(n).unwrap())
        .collect();
    let mut state = CycleState::default();
    plugin.pre_score(&info, &cache, &infos, &mut state);
    let mut scores: Vec<i64> = infos
        .iter()
        .map(|n| plugin.score(&info, &state, n))
        .collect();
    plugin.normalize(&mut scores);
    scores
}
