//! PodTopologySpread: `DoNotSchedule` constraints as a filter (maxSkew against the least
//! loaded eligible domain, minDomains, nodeAffinityPolicy Honor / nodeTaintsPolicy Ignore by
//! default) and `ScheduleAnyway` constraints as a score (fewer matching pods is better).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::node_affinity::node_matches;
use super::node_basic::tolerated;
use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, PreFilterResult, Rejection, ScorePlugin,
};
use crate::scheduler::labels::opt_selector_matches;
use crate::scheduler::pod_info::PodInfo;

const MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
const SKEW: &str = "node(s) didn't match pod topology spread constraints";

#[derive(Clone, Debug)]
struct Constraint {
    key: String,
    max_skew: i64,
    min_domains: usize,
    selector: Option<LabelSelector>,
    honor_affinity: bool,
    honor_taints: bool,
    /// Domain value → matching pods on eligible nodes there.
    counts: HashMap<String, i64>,
}

fn constraints(pod: &PodInfo, when: &str) -> Vec<Constraint> {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.topology_spread_constraints
        .iter()
        .flatten()
        .filter(|c| c.when_unsatisfiable == when)
        .map(|c: &TopologySpreadConstraint| {
            let mut selector = c.label_selector.clone();
            if let Some(sel) = selector.as_mut() {
                for key in c.match_label_keys.iter().flatten() {
                    if let Some(v) = pod.labels.get(key) {
                        sel.match_expressions.get_or_insert_with(Vec::new).push(
                            LabelSelectorRequirement {
                                key: key.clone(),
                                operator: "In".into(),
                                values: Some(vec![v.clone()]),
                            },
                        );
                    }
                }
            }
            Constraint {
                key: c.topology_key.clone(),
                max_skew: i64::from(c.max_skew.max(1)),
                min_domains: c.min_domains.unwrap_or(1).max(1) as usize,
                selector,
                honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
                counts: HashMap::new(),
            }
        })
        .collect()
}

fn counts_toward(c: &Constraint, pod: &PodInfo, other: &PodInfo) -> bool {
    other.namespace == pod.namespace
        && !other.terminating
        && opt_selector_matches(c.selector.as_ref(), &other.labels)
}

/// Whether `node` takes part in constraint `c` (its policies) — it must also carry every
/// constraint's key.
fn included(c: &Constraint, pod: &PodInfo, node: &NodeInfo) -> bool {
    let spec = pod.pod.spec.as_ref();
    if c.honor_affinity && spec.is_some_and(|s| !node_matches(s, &node.labels, &node.name)) {
        return false;
    }
    if c.honor_taints {
        let tols = spec
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        let blocked = node.taints.iter().any(|t| {
            matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && !tolerated(tols, t)
        });
        if blocked {
            return false;
        }
    }
    true
}

/// Fills each constraint's per-domain counts from the cache.
fn count(pod: &PodInfo, cache: &Cache, cs: &mut [Constraint]) {
    let mut per_node: HashMap<&str, Vec<i64>> = HashMap::new();
    for (i, c) in cs.iter().enumerate() {
        for (other, node) in cache.pods_selected(&pod.namespace, c.selector.as_ref()) {
            if !other.terminating {
                per_node.entry(node).or_insert_with(|| vec![0; cs.len()])[i] += 1;
            }
        }
    }
    for node in cache.nodes() {
        if !cs.iter().all(|c| node.labels.contains_key(&c.key)) {
            continue;
        }
        for (i, c) in cs.iter_mut().enumerate() {
            if !included(c, pod, node) {
                continue;
            }
            let n = per_node.get(node.name.as_str()).map_or(0, |v| v[i]);
            let domain = &node.labels[&c.key];
            match c.counts.get_mut(domain) {
                Some(count) => *count += n,
                None => {
                    c.counts.insert(domain.clone(), n);
                }
            }
        }
    }
}

#[derive(Clone)]
struct FilterState(Vec<Constraint>);

pub struct PodTopologySpread;

impl FilterPlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn pre_filter(&self, pod: &PodInfo, cache: &Cache, state: &mut CycleState) -> PreFilterResult {
        let mut cs = constraints(pod, "DoNotSchedule");
        if !cs.is_empty() {
            count(pod, cache, &mut cs);
            state.write(FilterState(cs));
        }
        PreFilterResult::AllNodes
    }

    fn filter(&self, pod: &PodInfo, state: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let Some(FilterState(cs)) = state.read::<FilterState>() else {
            return Ok(());
        };
        for c in cs {
            let Some(value) = node.labels.get(&c.key) else {
                return Err(Rejection::unresolvable(
                    FilterPlugin::name(self),
                    MISSING_LABEL,
                ));
            };
            let min = if c.counts.len() < c.min_domains {
                0
            } else {
                c.counts.values().copied().min().unwrap_or(0)
            };
            let own = i64::from(opt_selector_matches(c.selector.as_ref(), &pod.labels));
            let here = c.counts.get(value).copied().unwrap_or(0);
            if here + own - min > c.max_skew {
                return Err(Rejection::new(FilterPlugin::name(self), SKEW));
            }
        }
        Ok(())
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        adjust(state, pod, victim, node, -1);
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        adjust(state, pod, victim, node, 1);
    }
}

fn adjust(state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, d: i64) {
    let Some(FilterState(cs)) = state.read_mut::<FilterState>() else {
        return;
    };
    for c in cs.iter_mut() {
        if counts_toward(c, pod, other)
            && let Some(v) = node.labels.get(&c.key)
            && let Some(n) = c.counts.get_mut(v)
        {
            *n += d;
        }
    }
}

#[derive(Clone)]
struct ScoreState(Vec<(Constraint, f64)>);

/// Raw score of a node missing a constraint's key (it ends at 0 after normalizing).
const NO_DOMAIN: i64 = -1;

impl ScorePlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn weight(&self) -> i64 {
        2
    }

    fn pre_score(&self, pod: &PodInfo, cache: &Cache, nodes: &[&NodeInfo], state: &mut CycleState) {
        let mut cs = constraints(pod, "ScheduleAnyway");
        if cs.is_empty() {
            return;
        }
        count(pod, cache, &mut cs);
        let weighted = cs
            .into_iter()
            .map(|c| {
                let domains: std::collections::HashSet<&String> =
                    nodes.iter().filter_map(|n| n.labels.get(&c.key)).collect();
                let w = ((domains.len() + 2) as f64).ln();
                (c, w)
            })
            .collect();
        state.write(ScoreState(weighted));
    }

    fn score(&self, _: &PodInfo, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(ScoreState(cs)) = state.read::<ScoreState>() else {
            return 0;
        };
        let mut total = 0.0;
        for (c, w) in cs {
            let Some(v) = node.labels.get(&c.key) else {
                return NO_DOMAIN;
            };
            let n = c.counts.get(v).copied().unwrap_or(0) as f64;
            total += n * w + (c.max_skew - 1) as f64;
        }
        (total * 100.0).round() as i64
    }

    /// Fewer matching pods is better; nodes without the keys get 0.
    fn normalize(&self, scores: &mut [i64]) {
        let valid = || scores.iter().copied().filter(|s| *s != NO_DOMAIN);
        let (Some(max), Some(min)) = (valid().max(), valid().min()) else {
            return;
        };
        for s in scores.iter_mut() {
            *s = if *s == NO_DOMAIN {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{
        TestNode, filter_all, merge, node, pod, score_all, with_pods,
    };
    use serde_json::{Value, json};

    fn zone(name: &str, z: &str, extra: Value) -> TestNode {
        let mut e = json!({"metadata": {"labels": {"zone": z}}});
        merge(&mut e, extra);
        node(name, e)
    }

    fn web() -> k8s_openapi::api::core::v1::Pod {
        pod(json!({"metadata": {"labels": {"app": "web"}}}))
    }

    fn spread(when: &str, extra: Value) -> k8s_openapi::api::core::v1::Pod {
        let mut c = json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}});
        merge(&mut c, extra);
        pod(json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"topologySpreadConstraints": [c]}}))
    }

    #[test]
    fn max_skew_table() {
        let nodes = [
            with_pods(zone("a", "east", json!({})), &[web(), web()]),
            with_pods(zone("b", "west", json!({})), &[web()]),
            node("c", json!({})),
        ];
        let skew = Err(SKEW.to_string());
        let missing = Err(MISSING_LABEL.to_string());
        // east 2, west 1, min 1: east → 2+1-1 = 2 > 1; west → 1+1-1 = 1.
        assert_eq!(
            filter_all(
                &PodTopologySpread,
                &spread("DoNotSchedule", json!({})),
                &nodes
            ),
            vec![skew.clone(), Ok(()), missing.clone()]
        );
        assert_eq!(
            filter_all(
                &PodTopologySpread,
                &spread("DoNotSchedule", json!({"maxSkew": 2})),
                &nodes
            ),
            vec![Ok(()), Ok(()), missing.clone()]
        );
        // minDomains 3 with 2 domains: the global minimum counts as 0.
        assert_eq!(
            filter_all(
                &PodTopologySpread,
                &spread("DoNotSchedule", json!({"minDomains": 3})),
                &nodes
            ),
            vec![skew.clone(), skew, missing]
        );
        // ScheduleAnyway constraints never filter.
        assert_eq!(
            filter_all(
                &PodTopologySpread,
                &spread("ScheduleAnyway", json!({})),
                &nodes
            ),
            vec![Ok(()), Ok(()), Ok(())]
        );
    }

    #[test]
    fn node_affinity_policy_decides_which_domains_count() {
        let nodes = [
            with_pods(zone("a", "east", json!({})), &[web()]),
            zone(
                "b",
                "west",
                json!({"metadata": {"labels": {"disk": "hdd"}}}),
            ),
        ];
        let mut honor = spread("DoNotSchedule", json!({}));
        honor.spec.as_mut().unwrap().node_selector =
            Some([("zone".to_string(), "east".to_string())].into());
        // west is not eligible for this pod, so east's minimum is its own 1: 1+1-1 = 1 ≤ 1.
        assert_eq!(filter_all(&PodTopologySpread, &honor, &nodes)[0], Ok(()));
        let mut ignore = spread("DoNotSchedule", json!({"nodeAffinityPolicy": "Ignore"}));
        ignore.spec.as_mut().unwrap().node_selector =
            Some([("zone".to_string(), "east".to_string())].into());
        assert_eq!(
            filter_all(&PodTopologySpread, &ignore, &nodes)[0],
            Err(SKEW.to_string())
        );
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let nodes = [
            with_pods(zone("a", "east", json!({})), &[web(), web()]),
            with_pods(zone("b", "west", json!({})), &[web()]),
            zone("c", "north", json!({})),
            node("d", json!({})),
        ];
        let scores = score_all(
            &PodTopologySpread,
            &spread("ScheduleAnyway", json!({})),
            &nodes,
        );
        assert!(scores[2] > scores[1] && scores[1] > scores[0], "{scores:?}");
        assert_eq!(scores[2], 100);
        assert_eq!(scores[3], 0);
    }
}
