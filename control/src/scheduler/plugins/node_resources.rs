//! NodeResourcesFit (requests against allocatable, counting pods nominated to the node with at
//! least this pod's priority; LeastAllocated score) and NodeResourcesBalancedAllocation.

use std::collections::HashMap;

use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, PreFilterResult, Rejection, ScorePlugin,
};
use crate::scheduler::pod_info::PodInfo;
use crate::scheduler::resources::Resources;

/// Requests of nominated pods that outrank (or equal) the pod being scheduled, per node.
#[derive(Clone, Default)]
struct Nominated(HashMap<String, Resources>);

pub struct NodeResourcesFit;

/// The reasons `want` does not fit on `node` given `extra` already reserved there, and
/// whether any is beyond the node's whole allocatable (no preemption can help then).
pub fn insufficient(
    want: &Resources,
    node: &NodeInfo,
    extra: Option<&Resources>,
) -> (Vec<String>, bool) {
    let used = &node.requested;
    let zero = Resources::default();
    let extra = extra.unwrap_or(&zero);
    let alloc = &node.allocatable;
    let mut reasons = Vec::new();
    let mut unresolvable = false;
    if used.pods + extra.pods + 1 > alloc.pods {
        reasons.push("Too many pods".to_string());
    }
    let mut check = |name: &str, want: i64, used: i64, alloc: i64| {
        if want > 0 && want > alloc - used {
            reasons.push(format!("Insufficient {name}"));
            unresolvable |= want > alloc;
        }
    };
    check(
        "cpu",
        want.cpu_millis,
        used.cpu_millis + extra.cpu_millis,
        alloc.cpu_millis,
    );
    check(
        "memory",
        want.memory,
        used.memory + extra.memory,
        alloc.memory,
    );
    check(
        "ephemeral-storage",
        want.ephemeral_storage,
        used.ephemeral_storage + extra.ephemeral_storage,
        alloc.ephemeral_storage,
    );
    for (name, q) in &want.scalar {
        let u = used.scalar.get(name).copied().unwrap_or(0)
            + extra.scalar.get(name).copied().unwrap_or(0);
        let a = alloc.scalar.get(name).copied().unwrap_or(0);
        check(name, *q, u, a);
    }
    (reasons, unresolvable)
}

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn pre_filter(&self, pod: &PodInfo, cache: &Cache, state: &mut CycleState) -> PreFilterResult {
        let mut per_node: HashMap<String, Resources> = HashMap::new();
        for nom in cache.nominated() {
            if nom.info.uid != pod.uid && nom.info.priority >= pod.priority {
                per_node
                    .entry(nom.node.clone())
                    .or_default()
                    .add(&nom.info.requests);
            }
        }
        if !per_node.is_empty() {
            state.write(Nominated(per_node));
        }
        PreFilterResult::AllNodes
    }

    fn filter(&self, pod: &PodInfo, state: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let extra = state.read::<Nominated>().and_then(|n| n.0.get(&node.name));
        let (reasons, unresolvable) = insufficient(&pod.requests, node, extra);
        if reasons.is_empty() {
            return Ok(());
        }
        Err(Rejection {
            plugin: FilterPlugin::name(self),
            reasons,
            resolvable: !unresolvable,
        })
    }
}

fn least_allocated(requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 || requested > capacity {
        0
    } else {
        (capacity - requested) * MAX_NODE_SCORE / capacity
    }
}

impl ScorePlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn weight(&self) -> i64 {
        1
    }

    /// LeastAllocated over CPU and memory (weight 1 each), with non-zero default requests.
    fn score(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> i64 {
        let cpu = least_allocated(
            node.non_zero_requested.0 + pod.non_zero.0,
            node.allocatable.cpu_millis,
        );
        let mem = least_allocated(
            node.non_zero_requested.1 + pod.non_zero.1,
            node.allocatable.memory,
        );
        (cpu + mem) / 2
    }
}

pub struct BalancedAllocation;

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn weight(&self) -> i64 {
        1
    }

    /// 100 × (1 − the standard deviation of the CPU and memory fractions after placing the
    /// pod): nodes whose resources stay evenly used score higher.
    fn score(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> i64 {
        let fraction = |req: i64, cap: i64| {
            if cap <= 0 {
                1.0
            } else {
                (req as f64 / cap as f64).min(1.0)
            }
        };
        let cpu = fraction(
            node.requested.cpu_millis + pod.requests.cpu_millis,
            node.allocatable.cpu_millis,
        );
        let mem = fraction(
            node.requested.memory + pod.requests.memory,
            node.allocatable.memory,
        );
        let std = (cpu - mem).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{
        cache_of, filter_all, filter_in, node, pod, pod_req, score_all, with_pods,
    };
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn fit_table() {
        let small = |name: &str| {
            node(
                name,
                json!({"status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "2", "example.com/gpu": "1"}}}),
            )
        };
        let half = || pod_req("500m", "512Mi", json!({}));
        let busy = with_pods(small("busy"), &[half(), half()]);
        let cases: Vec<(_, _, Result<(), &str>)> = vec![
            (pod_req("500m", "", json!({})), small("a"), Ok(())),
            (
                pod_req("2", "", json!({})),
                small("a"),
                Err("Insufficient cpu"),
            ),
            (
                pod_req("", "2Gi", json!({})),
                small("a"),
                Err("Insufficient memory"),
            ),
            (
                pod_req("2", "2Gi", json!({})),
                small("a"),
                Err("Insufficient cpu, Insufficient memory"),
            ),
            (pod(json!({})), busy.clone(), Err("Too many pods")),
            (
                pod_req("1", "1Gi", json!({})),
                busy,
                Err("Too many pods, Insufficient cpu, Insufficient memory"),
            ),
            (
                pod(json!({"spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"example.com/gpu": "2"}}}]}})),
                small("a"),
                Err("Insufficient example.com/gpu"),
            ),
            (
                pod(json!({"spec": {"containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"example.com/gpu": "1"}}}]}})),
                small("a"),
                Ok(()),
            ),
        ];
        for (i, (p, n, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                filter_all(&NodeResourcesFit, &p, &[n]),
                vec![want.map_err(str::to_string)],
                "case {i}"
            );
        }
    }

    #[test]
    fn beyond_allocatable_is_unresolvable() {
        let n = with_pods(node("a", json!({})), &[pod_req("3", "", json!({}))]);
        let cache = cache_of(&[n]);
        let check = |p| {
            let info = PodInfo::new(Arc::new(p));
            let mut state = CycleState::default();
            NodeResourcesFit.pre_filter(&info, &cache, &mut state);
            NodeResourcesFit
                .filter(&info, &state, cache.node("a").unwrap())
                .unwrap_err()
                .resolvable
        };
        assert!(
            check(pod_req("2", "", json!({}))),
            "evicting the 3-cpu pod would help"
        );
        assert!(
            !check(pod_req("5", "", json!({}))),
            "nothing helps a 5-cpu pod on 4 cpus"
        );
    }

    #[test]
    fn nominated_pods_reserve_room() {
        let mut cache = cache_of(&[node("a", json!({}))]);
        let high = PodInfo::new(Arc::new(pod_req(
            "3",
            "",
            json!({"spec": {"priority": 100}}),
        )));
        cache.set_nominated(Arc::new(high), "a");
        let names = ["a".to_string()];
        let low = pod_req("2", "", json!({"spec": {"priority": 1}}));
        assert_eq!(
            filter_in(&NodeResourcesFit, &low, &cache, &names),
            vec![Err("Insufficient cpu".to_string())]
        );
        let higher = pod_req("2", "", json!({"spec": {"priority": 1000}}));
        assert_eq!(
            filter_in(&NodeResourcesFit, &higher, &cache, &names),
            vec![Ok(())]
        );
    }

    #[test]
    fn least_allocated_and_balanced_scores() {
        let empty = node("empty", json!({}));
        let cpu_heavy = with_pods(node("cpu", json!({})), &[pod_req("3", "1Gi", json!({}))]);
        let even = with_pods(node("even", json!({})), &[pod_req("2", "4Gi", json!({}))]);
        let p = pod_req("1", "2Gi", json!({}));
        let nodes = [empty, cpu_heavy, even];
        // cpu: (4-1)/4=75, mem: (8-2)/8=75 → 75; (4-4)/4=0, (8-3)/8=62 → 31; 25, 25 → 25.
        assert_eq!(score_all(&NodeResourcesFit, &p, &nodes), vec![75, 31, 25]);
        // fractions 0.25/0.25 → 100; 1.0/0.375 → 68; 0.75/0.75 → 100.
        assert_eq!(
            score_all(&BalancedAllocation, &p, &nodes),
            vec![100, 68, 100]
        );
    }
}
