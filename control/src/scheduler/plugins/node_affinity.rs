//! NodeAffinity: `nodeSelector` and required node affinity as a filter (a `matchFields`
//! `metadata.name` pin narrows the cycle to those nodes, as DaemonSet pods use it), and
//! preferred node affinity as a score.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{NodeSelector, PodSpec};

use crate::scheduler::cache::{Cache, NodeInfo};
use crate::scheduler::framework::{
    CycleState, FilterPlugin, PreFilterResult, Rejection, ScorePlugin, default_normalize,
};
use crate::scheduler::labels::{Labels, node_term_matches, pinned_node_names};
use crate::scheduler::pod_info::PodInfo;

pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

fn required(spec: &PodSpec) -> Option<&NodeSelector> {
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
}

/// Whether a node satisfies the pod's `nodeSelector` and required node affinity.
pub fn node_matches(spec: &PodSpec, labels: &Labels, node_name: &str) -> bool {
    if let Some(sel) = &spec.node_selector
        && sel.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    match required(spec) {
        Some(req) => req
            .node_selector_terms
            .iter()
            .any(|t| node_term_matches(t, labels, node_name)),
        None => true,
    }
}

pub struct NodeAffinity;

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn pre_filter(&self, pod: &PodInfo, _: &Cache, _: &mut CycleState) -> PreFilterResult {
        let Some(req) = pod.pod.spec.as_ref().and_then(required) else {
            return PreFilterResult::AllNodes;
        };
        // Only when every term pins node names can the cycle skip the other nodes.
        let mut names = HashSet::new();
        for term in &req.node_selector_terms {
            match pinned_node_names(term) {
                Some(pinned) => names.extend(pinned),
                None => return PreFilterResult::AllNodes,
            }
        }
        if req.node_selector_terms.is_empty() {
            return PreFilterResult::AllNodes;
        }
        PreFilterResult::Only(
            names,
            Rejection::unresolvable(FilterPlugin::name(self), REASON),
        )
    }

    fn filter(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> Result<(), Rejection> {
        let Some(spec) = pod.pod.spec.as_ref() else {
            return Ok(());
        };
        if node_matches(spec, &node.labels, &node.name) {
            Ok(())
        } else {
            Err(Rejection::unresolvable(FilterPlugin::name(self), REASON))
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn weight(&self) -> i64 {
        2
    }

    /// The summed weights of the preferred terms the node matches.
    fn score(&self, pod: &PodInfo, _: &CycleState, node: &NodeInfo) -> i64 {
        pod.pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|p| p.weight != 0 && node_term_matches(&p.preference, &node.labels, &node.name))
            .map(|p| i64::from(p.weight))
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{filter_all, node, pod, score_all};
    use serde_json::json;

    fn zone(name: &str, z: &str) -> crate::scheduler::plugins::testing::TestNode {
        node(
            name,
            json!({"metadata": {"labels": {"zone": z, "cores": "8"}}}),
        )
    }

    fn required(terms: serde_json::Value) -> serde_json::Value {
        json!({"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}})
    }

    #[test]
    fn selector_and_required_affinity_table() {
        let nodes = [zone("a", "east"), zone("b", "west")];
        let no = Err(REASON.to_string());
        let cases = [
            (
                json!({"spec": {"nodeSelector": {"zone": "west"}}}),
                vec![no.clone(), Ok(())],
            ),
            (
                json!({"spec": {"nodeSelector": {"zone": "north"}}}),
                vec![no.clone(), no.clone()],
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["east"]}]}]),
                ),
                vec![Ok(()), no.clone()],
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["east"]}]}]),
                ),
                vec![no.clone(), Ok(())],
            ),
            (
                required(json!([{"matchExpressions": [{"key": "zone", "operator": "Exists"}]}])),
                vec![Ok(()), Ok(())],
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}]),
                ),
                vec![Ok(()), Ok(())],
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}]),
                ),
                vec![Ok(()), Ok(())],
            ),
            (
                required(
                    json!([{"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["4"]}]}]),
                ),
                vec![no.clone(), no.clone()],
            ),
            // Terms are ORed.
            (
                required(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["north"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["west"]}]}])),
                vec![no.clone(), Ok(())],
            ),
            // matchFields metadata.name, as DaemonSet pods carry it.
            (
                required(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]),
                ),
                vec![no.clone(), Ok(())],
            ),
            (
                required(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["b"]}]}]),
                ),
                vec![Ok(()), no.clone()],
            ),
        ];
        for (i, (extra, want)) in cases.into_iter().enumerate() {
            assert_eq!(
                filter_all(&NodeAffinity, &pod(extra), &nodes),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn match_fields_pin_narrows_the_cycle() {
        let p = pod(required(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]),
        ));
        let info = PodInfo::new(std::sync::Arc::new(p));
        let mut state = CycleState::default();
        match NodeAffinity.pre_filter(&info, &Cache::default(), &mut state) {
            PreFilterResult::Only(names, why) => {
                assert_eq!(names, HashSet::from(["b".to_string()]));
                assert_eq!(why.reasons, vec![REASON.to_string()]);
            }
            PreFilterResult::AllNodes => panic!("expected a narrowed node set"),
        }
    }

    #[test]
    fn preferred_affinity_score() {
        let p = pod(
            json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["east"]}]}},
                {"weight": 30, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["west"]}]}}
            ]}}}}),
        );
        let nodes = [zone("a", "east"), zone("b", "west"), zone("c", "north")];
        assert_eq!(score_all(&NodeAffinity, &p, &nodes), vec![33, 100, 0]);
    }
}
