//! InterPodAffinity: required pod affinity and anti-affinity of the incoming pod, the required
//! anti-affinity of pods already placed (filter), and the preferred terms of both (score).
//! Counts are kept per topology domain (`topologyKey` → value → matching pods), computed once
//! per cycle from the namespaces the terms name.

use std::collections::HashMap;
use std::sync::Arc;

use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::framework::{
    CycleState, FilterPlugin, MAX_NODE_SCORE, PreFilterResult, Rejection, ScorePlugin,
};
use crate::scheduler::labels::{Labels, selector_matches};
use crate::scheduler::pod_info::{AffinityTerm, PodInfo};

const EXISTING_ANTI: &str = "node(s) didn't satisfy existing pods anti-affinity rules";
const ANTI: &str = "node(s) didn't match pod anti-affinity rules";
const AFFINITY: &str = "node(s) didn't match pod affinity rules";

/// topologyKey → value → count (or weight).
#[derive(Clone, Default, Debug)]
struct TopologyCounts(HashMap<String, HashMap<String, i64>>);

impl TopologyCounts {
    fn add(&mut self, key: &str, labels: &Labels, delta: i64) {
        if let Some(v) = labels.get(key) {
            self.add_value(key, v, delta);
        }
    }

    fn get(&self, key: &str, labels: &Labels) -> i64 {
        labels
            .get(key)
            .and_then(|v| self.0.get(key)?.get(v))
            .copied()
            .unwrap_or(0)
    }

    fn add_value(&mut self, key: &str, value: &str, delta: i64) {
        if !self.0.contains_key(key) {
            self.0.insert(key.to_string(), HashMap::new());
        }
        let values = self.0.get_mut(key).expect("inserted above");
        match values.get_mut(value) {
            Some(n) => *n += delta,
            None => {
                values.insert(value.to_string(), delta);
            }
        }
    }

    fn any_positive(&self) -> bool {
        self.0.values().flat_map(|m| m.values()).any(|c| *c > 0)
    }
}

#[derive(Clone, Default)]
struct FilterState {
    existing_anti: TopologyCounts,
    affinity: TopologyCounts,
    anti: TopologyCounts,
    /// The pod matches all its own affinity terms (so the first of a group can go anywhere).
    self_match: bool,
    namespaces: HashMap<String, Labels>,
}

/// Placed pods a term selects: its namespaces (named, or picked by its namespace selector),
/// then its label selector, through the cache's label index.
fn selected<'a>(
    cache: &'a Cache,
    t: &AffinityTerm,
    ns_labels: &HashMap<String, Labels>,
) -> Vec<(&'a Arc<PodInfo>, &'a str)> {
    let namespaces: Vec<&str> = match &t.namespace_selector {
        Some(nsel) => cache
            .pod_namespaces()
            .filter(|ns| {
                t.namespaces.contains(ns)
                    || ns_labels
                        .get(ns.as_str())
                        .is_some_and(|l| selector_matches(nsel, l))
            })
            .map(String::as_str)
            .collect(),
        None => t.namespaces.iter().map(String::as_str).collect(),
    };
    namespaces
        .into_iter()
        .flat_map(|ns| cache.pods_selected(ns, t.selector.as_ref()))
        .collect()
}

fn count_existing_anti(
    st: &mut FilterState,
    pod: &PodInfo,
    existing: &PodInfo,
    node: &Labels,
    d: i64,
) {
    for t in &existing.required_anti_affinity {
        if t.matches(pod, &st.namespaces) {
            st.existing_anti.add(&t.topology_key, node, d);
        }
    }
}

fn count_incoming(st: &mut FilterState, pod: &PodInfo, existing: &PodInfo, node: &Labels, d: i64) {
    let ns = &st.namespaces;
    if !pod.required_affinity.is_empty()
        && pod
            .required_affinity
            .iter()
            .all(|t| t.matches(existing, ns))
    {
        for t in &pod.required_affinity {
            st.affinity.add(&t.topology_key, node, d);
        }
    }
    for t in &pod.required_anti_affinity {
        if t.matches(existing, ns) {
            st.anti.add(&t.topology_key, node, d);
        }
    }
}

pub struct InterPodAffinity;

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn pre_filter(&self, pod: &PodInfo, cache: &Cache, state: &mut CycleState) -> PreFilterResult {
        let has_terms =
            !(pod.required_affinity.is_empty() && pod.required_anti_affinity.is_empty());
        if !has_terms && cache.anti_affinity_groups().next().is_none() {
            return PreFilterResult::AllNodes;
        }
        let mut st = FilterState {
            namespaces: cache.namespaces().clone(),
            ..Default::default()
        };
        for g in cache.anti_affinity_groups() {
            if g.term.matches(pod, &st.namespaces) {
                for (value, n) in &g.counts {
                    st.existing_anti.add_value(&g.term.topology_key, value, *n);
                }
            }
        }
        for t in &pod.required_anti_affinity {
            for (_, node) in selected(cache, t, &st.namespaces) {
                if let Some(n) = cache.node(node) {
                    st.anti.add(&t.topology_key, &n.labels, 1);
                }
            }
        }
        if let Some(first) = pod.required_affinity.first() {
            for (existing, node) in selected(cache, first, &st.namespaces) {
                let all = pod
                    .required_affinity
                    .iter()
                    .all(|t| t.matches(existing, &st.namespaces));
                if let (true, Some(n)) = (all, cache.node(node)) {
                    for t in &pod.required_affinity {
                        st.affinity.add(&t.topology_key, &n.labels, 1);
                    }
                }
            }
            st.self_match = pod
                .required_affinity
                .iter()
                .all(|t| t.matches(pod, &st.namespaces));
        }
        state.write(st);
        PreFilterResult::AllNodes
    }

    fn filter(&self, pod: &PodInfo, state: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let Some(st) = state.read::<FilterState>() else {
            return Ok(());
        };
        let labels = &node.labels;
        if st.existing_anti.0.iter().any(|(k, vals)| {
            labels
                .get(k)
                .and_then(|v| vals.get(v))
                .is_some_and(|c| *c > 0)
        }) {
            return Err(Rejection::new(FilterPlugin::name(self), EXISTING_ANTI));
        }
        if pod
            .required_anti_affinity
            .iter()
            .any(|t| st.anti.get(&t.topology_key, labels) > 0)
        {
            return Err(Rejection::new(FilterPlugin::name(self), ANTI));
        }
        let satisfied = pod
            .required_affinity
            .iter()
            .all(|t| st.affinity.get(&t.topology_key, labels) > 0);
        if !satisfied {
            // No pod matches anywhere: the pod may start its own group if it matches itself.
            let first_of_group = !st.affinity.any_positive()
                && st.self_match
                && pod
                    .required_affinity
                    .iter()
                    .all(|t| labels.contains_key(&t.topology_key));
            if !first_of_group {
                return Err(Rejection::unresolvable(FilterPlugin::name(self), AFFINITY));
            }
        }
        Ok(())
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        if let Some(st) = state.read_mut::<FilterState>() {
            count_existing_anti(st, pod, victim, &node.labels, -1);
            count_incoming(st, pod, victim, &node.labels, -1);
        }
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        if let Some(st) = state.read_mut::<FilterState>() {
            count_existing_anti(st, pod, victim, &node.labels, 1);
            count_incoming(st, pod, victim, &node.labels, 1);
        }
    }
}

#[derive(Clone, Default)]
struct ScoreState(TopologyCounts);

/// How much a required affinity term of an existing pod counts toward the score.
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

impl ScorePlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn weight(&self) -> i64 {
        2
    }

    fn pre_score(&self, pod: &PodInfo, cache: &Cache, _: &[&NodeInfo], state: &mut CycleState) {
        let ns = cache.namespaces();
        let mut topo = TopologyCounts::default();
        for (sign, terms) in [
            (1, &pod.preferred_affinity),
            (-1, &pod.preferred_anti_affinity),
        ] {
            for (w, t) in terms {
                for (_, node) in selected(cache, t, ns) {
                    if let Some(n) = cache.node(node) {
                        topo.add(&t.topology_key, &n.labels, sign * i64::from(*w));
                    }
                }
            }
        }
        for (existing, node) in cache.pods_with_affinity() {
            let Some(n) = cache.node(node) else { continue };
            for t in &existing.required_affinity {
                if t.matches(pod, ns) {
                    topo.add(&t.topology_key, &n.labels, HARD_POD_AFFINITY_WEIGHT);
                }
            }
            for (w, t) in &existing.preferred_affinity {
                if t.matches(pod, ns) {
                    topo.add(&t.topology_key, &n.labels, i64::from(*w));
                }
            }
            for (w, t) in &existing.preferred_anti_affinity {
                if t.matches(pod, ns) {
                    topo.add(&t.topology_key, &n.labels, -i64::from(*w));
                }
            }
        }
        state.write(ScoreState(topo));
    }

    fn score(&self, _: &PodInfo, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(ScoreState(topo)) = state.read::<ScoreState>() else {
            return 0;
        };
        topo.0
            .iter()
            .filter_map(|(k, vals)| node.labels.get(k).and_then(|v| vals.get(v)))
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        let max = scores.iter().copied().max().unwrap_or(0);
        let min = scores.iter().copied().min().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 {
                MAX_NODE_SCORE * (*s - min) / diff
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests;
